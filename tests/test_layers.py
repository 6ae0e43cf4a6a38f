"""The code's shape: the layers of ``docs/architecture.md`` (a module imports only its own
layer and those before it), no import cycle among the modules of ``curate/`` and ``stages/``
(deferred imports included: one that closes a cycle only hides it), and no class or function
too long to read in one go."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("curate", "stages")
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 250

LAYERS = (
    ("curate", "curate.gates", "curate.schema", "curate.hints", "curate.timing", "curate.config"),
    ("curate.storage", "curate.media", "curate.models"),
    ("curate.config.analyze",),
    ("curate.signals",),
    ("curate.contract",),
    ("curate.config.sections", "curate.config.errors", "curate.config.loading"),
    ("curate.config.reference", "curate.caption", "curate.inputs", "curate.copy_detection"),
    ("curate.output",),
    ("curate.report",),
    ("curate.run",),
    ("stages",),
    ("curate.run.registry", "curate.run.pipeline"),
    ("curate.cli",),
)
"""The layers, first to last, as module-name prefixes (the longest matching prefix decides):
the tree in ``docs/architecture.md``."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def imported_names(tree: ast.AST) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every import in ``tree`` (``name`` for ``from m import name``),
    at module level and inside functions, leaving out ``if TYPE_CHECKING:`` blocks."""
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.extend((node.module, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Which of ``sources`` (module name → code) each module imports. ``from p import m``
    where ``p.m`` is a module depends on ``p.m``. Importing a module also runs its packages'
    ``__init__``: that counts as a dependency on the package from outside it only (a package
    importing its own modules, whose siblings import each other, is the usual shape)."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, code in sources.items():
        for module, attr in imported_names(ast.parse(code)):
            target = f"{module}.{attr}" if f"{module}.{attr}" in sources else module
            if target not in sources:
                continue
            graph[name].add(target)
            parts = target.split(".")
            for i in range(1, len(parts)):
                package = ".".join(parts[:i])
                if package in sources and not name.startswith(package + "."):
                    graph[name].add(package)
    for name in graph:
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def project_sources() -> dict[str, str]:
    return {
        module_name(path): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def layer_of(module: str) -> int | None:
    matches = [
        (len(prefix), rank)
        for rank, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def test_every_module_imports_only_its_layer_and_those_before():
    graph = import_graph(project_sources())
    assert [m for m in graph if layer_of(m) is None] == []
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, f"imports of a later layer: {upward}"


def test_no_import_cycle():
    found = cycles(import_graph(project_sources()))
    assert not found, f"import cycles: {found}"


def test_cycle_check_sees_cycles():
    # Guards the test above against passing by not seeing an edge.
    sources = {
        "p": "from p.a import A\n",
        "p.a": "from p import b\n",  # a package's own modules may import each other
        "p.b": "import q\n",
        "q": "def f():\n    from p.a import A\n",  # deferred, still a dependency
        "r": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import s\n",
        "s": "import r\n",
    }
    graph = import_graph(sources)
    assert graph["q"] == {"p.a", "p"} and graph["r"] == set()
    assert cycles(graph) == [["p", "p.a", "p.b", "q"]]


def oversized(folders: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    limit = MAX_FUNCTION_LINES
                elif isinstance(node, ast.ClassDef):
                    limit = MAX_CLASS_LINES
                else:
                    continue
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    rel = path.relative_to(ROOT)
                    found.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_or_class_is_too_long():
    found = oversized(("curate", "stages", "scripts"))
    assert not found, (
        f"functions over {MAX_FUNCTION_LINES} or classes over {MAX_CLASS_LINES} lines: {found}"
    )

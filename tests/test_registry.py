"""Registries in step: every backend choice the config offers is implemented under exactly that
name, every Ray stage keeps the :class:`~curate.run.stage.Stage` contract and has its resources
section, and the framework (``curate``) reaches the stages only through ``curate.run.registry``."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

import curate
from curate.config.sections import CAPTION_BACKENDS, CurateConfig, RayConfig, StageResources
from curate.run.registry import STAGES
from curate.run.stage import Stage
from curate.signals.shots import SHOT_DETECTORS
from curate.signals.text import TEXT_DETECTORS
from stages.captioners import CAPTIONERS
from stages.embed import EMBEDDERS

RUNTIME_KWARGS: dict[str, set[str]] = {
    "caption": {"captioner", "api_key"},  # one pool per captioner, with its key from check()
    "export": {"output"},  # the run's output folder is not in the config
}
"""Constructor arguments the pipeline passes at run time (``map_stage(..., **runtime)``), by
stage; every other constructor argument comes from ``Stage.inputs``."""

NOT_RAY_DATA_STAGES = {"phase2"}
"""``ray.<name>`` sections whose work is no :class:`Stage` class (phase 2 runs as Ray tasks)."""

MAY_IMPORT_STAGES = {"run/registry.py"}
"""The modules of ``curate/`` that may import ``stages``: the rest of the framework must not
depend on the stages it runs."""


def literals(key: str) -> set[str]:
    """The values a ``Literal`` config key such as ``embed.backend`` admits."""
    model: Any = CurateConfig
    *sections, leaf = key.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), key
    values = get_args(model.model_fields[leaf].annotation)
    assert values and all(isinstance(v, str) for v in values), f"{key} is not a string Literal"
    return set(values)


# backend registries --------------------------------------------------------------------------


def test_embed_backends_match_the_embedders():
    assert literals("embed.backend") == set(EMBEDDERS)


def test_caption_backends_match_the_captioners():
    assert len(CAPTION_BACKENDS) == len(set(CAPTION_BACKENDS))
    assert set(CAPTION_BACKENDS) == set(CAPTIONERS)


def test_shot_detectors_match_the_detector_registry():
    assert literals("analyze.shots.detector") == set(SHOT_DETECTORS)


def test_text_detectors_match_the_detector_registry():
    assert literals("analyze.text.detector") == set(TEXT_DETECTORS)


# stages --------------------------------------------------------------------------------------


def test_every_stage_keeps_the_contract():
    for name, stage in STAGES.items():
        assert inspect.isclass(stage) and issubclass(stage, Stage), name
        assert stage.name == name
        assert not inspect.isabstract(stage), f"{name} leaves abstract methods"


def test_stages_and_ray_resource_sections_match():
    sections = {
        field for field, info in RayConfig.model_fields.items() if info.annotation is StageResources
    }
    assert sections >= NOT_RAY_DATA_STAGES
    assert not NOT_RAY_DATA_STAGES & set(STAGES)
    assert set(STAGES) == sections - NOT_RAY_DATA_STAGES


@pytest.mark.parametrize("name", list(STAGES))
def test_inputs_are_the_constructor_arguments(name):
    stage = STAGES[name]
    params = inspect.signature(stage.__init__).parameters
    kinds = {p.kind for p in params.values()}
    # Sections are passed by keyword and must be spelled out, not swallowed by **kwargs.
    assert (
        inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    )
    args = set(params) - {"self"}
    runtime = RUNTIME_KWARGS.get(name, set())
    assert runtime <= args, f"{name}: documented run-time arguments it does not take"
    assert set(stage.inputs(CurateConfig())) == args - runtime


@pytest.mark.parametrize("name", list(STAGES))
def test_check_of_the_default_config_returns_facts(name):
    assert isinstance(STAGES[name].check(CurateConfig()), dict)


# import boundary -----------------------------------------------------------------------------


def _imports_stages(node: ast.AST) -> bool:
    def is_stages(module: str | None) -> bool:
        return module is not None and (module == "stages" or module.startswith("stages."))

    if isinstance(node, ast.Import):
        return any(is_stages(alias.name) for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and is_stages(node.module)
    # importlib.import_module("stages.x") / __import__("stages.x") with a literal name.
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        arg = node.args[0].value
        return called in ("import_module", "__import__") and isinstance(arg, str) and is_stages(arg)
    return False


def test_framework_does_not_import_stages():
    root = Path(curate.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in MAY_IMPORT_STAGES:
            continue
        # ast.walk visits function bodies too: a deferred import is still a dependency.
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [
            f"curate/{rel}:{node.lineno}" for node in ast.walk(tree) if _imports_stages(node)
        ]
    assert not offenders, f"only {sorted(MAY_IMPORT_STAGES)} may import stages: {offenders}"


def test_boundary_check_sees_every_form_of_import():
    # Guards the test above against passing by not recognising an import.
    source = (
        "import stages\nimport stages.embed as e\nfrom stages import caption\n"
        "from stages.captioners import Secret\n"
        "def f():\n    import importlib\n    importlib.import_module('stages.probe')\n"
        "import stagesx\nfrom curate import stage\nfrom . import stages\n"
    )
    found = [n.lineno for n in ast.walk(ast.parse(source)) if _imports_stages(n)]
    assert sorted(found) == [1, 2, 3, 4, 7]

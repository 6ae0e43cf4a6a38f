"""Security basics.

- Input names with spaces, quotes, unicode, leading dashes, shell metacharacters, ``..`` and
  FFmpeg protocol syntax (``concat:``, ``pipe:``) work end to end through the CLI, round-trip
  exactly in ``source``, and never reach a path under the output folder (exported clips are
  named by ids only); nothing is written outside it and no shell ever runs.
- Configs and ``--set`` values are parsed with YAML's safe loader (no object construction);
  input lists are read as data.
- No module of the package or its scripts calls a shell, ``eval``/``exec``, pickle, an
  unsafe YAML loader or ``torch.load`` without ``weights_only=True`` (an AST scan).
- Ray's authentication settings (``RAY_AUTH_MODE``, the token) pass through untouched.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DEFAULT_CONFIG, ROOT, run_pipeline

from curate.cli import main
from curate.config import ConfigError
from curate.config.loading import load_config
from curate.inputs import discover
from scripts.common.synth import pan_frames, textured_image, write_video

GOOD = [
    "with spaces.mp4",
    "it's 'quoted'.mp4",
    'say "cheese".mp4',
    "café — 東京 🎬.mp4",
    "-rf.mp4",
    "--help.mp4",
    "$(touch pwned).mp4",
    "`touch pwned`.mp4",
    "a;b&c|d>e<f*g?h[i]{j}~!#%^=+,\\ %s %n.mp4",
    "..weird.mp4",
    "concat:trick.mp4",
    "12:30 pipe:0.mp4",
    "sub 'dir' $(touch pwned)/--version.mp4",
]
"""Valid videos with hostile names (relative to the videos folder; the last one is nested)."""

BROKEN = "$(touch pwned) broken.mp4"
"""Zero bytes: rejected as unreadable, its source must still round-trip."""

VIDEOS_DIR = "vids; $(touch pwned) 'x'"
"""The input folder's own name is hostile too."""

QUICK = ["--set", "dedup.enabled=false", "--set", "rebalance.mode=weight"]
"""Every distinct good video must reach the tier: no dedup or re-balancing drops."""

ID_PATHS = re.compile(
    r"^(manifest\.json|journal/run\.json"
    r"|(shots|analysis|rejects|tiers/default|tiers/images|journal/phase1-rejects)"
    r"/part-\d{5}\.parquet"
    r"|clips/[A-Za-z0-9_.]+/[0-9a-f]{2}/[0-9a-f]+\.mp4)$"
)
"""Every path a run writes under OUT: fixed names, shard numbers and clip ids only."""


def _video(path: Path, k: int) -> None:
    """A 5 s 640x360 pan over its own texture and hue (distinct from every other one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = textured_image(300 + k, 400, 960, hue=(k * 37) % 180)
    write_video(path, pan_frames(image, 125, 2.0))


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> Path:
    """``ROOT/VIDEOS_DIR`` holding every GOOD video and the BROKEN file."""
    root = tmp_path_factory.mktemp("odd")
    videos = root / VIDEOS_DIR
    for k, name in enumerate(GOOD):
        _video(videos / name, k)
    (videos / BROKEN).write_bytes(b"")
    return root


def _tree(folder: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime) of every file under ``folder``, ``skip`` left out."""
    found = {}
    for dirpath, dirs, files in os.walk(folder):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(dirpath, d) != skip]
        for name in files:
            p = Path(dirpath, name)
            st = p.stat()
            found[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


def _no_pwned(*folders: Path, deep: tuple[Path, ...] = ()) -> None:
    """No file named ``pwned`` in ``folders`` (where a shell would run: the test's cwd, Ray's
    workers' cwd) nor anywhere under the ``deep`` ones."""
    for folder in folders:
        assert not (folder / "pwned").exists(), folder
    for folder in deep:
        assert not list(folder.rglob("pwned")), folder


def _sources(out: Path) -> set[str]:
    """Every source the run accounted for: analysed, or rejected as a whole input."""
    analysed = pq.read_table(out / "analysis", columns=["source"])["source"].to_pylist()
    rejects = pq.read_table(out / "rejects", columns=["source", "clip_id"]).to_pylist()
    return set(analysed) | {r["source"] for r in rejects if r["clip_id"] is None}


def _check_output(out: Path, good: list[str], names: list[str]) -> list[dict]:
    """Shared assertions for a run over hostile names; returns the tier rows."""
    assert main(["validate", str(out)]) == 0
    tier = pq.read_table(out / "tiers" / "default").to_pylist()
    assert sorted({r["source"] for r in tier}) == sorted(good)  # each good video reaches it
    for r in tier:
        assert json.loads(r["caption"])["tags"]["source"] == r["source"]
        rel = r["clip_path"]
        assert ID_PATHS.match(rel) and rel.endswith(f"/{r['clip_id']}.mp4"), rel
        target = (out / rel).resolve()
        assert target.is_relative_to((out / "clips").resolve()) and target.is_file()
    written = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()]
    assert written and all(ID_PATHS.match(w) for w in written), written
    # No fragment of any input name (a name's stem, its folder) reaches a path under OUT.
    fragments = {Path(n).stem for n in names} | ({Path(n).parent.name for n in names} - {""})
    for w in written:
        assert not [f for f in fragments if f in w], w
    return tier


ESCAPE = "../" * 40 + "no-such-curate-dir/../escape.mp4"
"""An input list entry climbing out of every folder: resolves to ``/escape.mp4``, which does not
exist (a rejects row, nothing written there)."""


def _write_input_lists(odd: Path, pwned: Path) -> tuple[list[Path], list[str]]:
    """``.txt``/``.csv``/``.jsonl``/``.parquet`` input lists in ``odd/lists`` naming the hostile
    videos by ``../`` paths (and one absolute path, and ESCAPE); returns them and the sources
    they must resolve to."""
    lists = odd / "lists"
    lists.mkdir(exist_ok=True)
    up = f"../{VIDEOS_DIR}/"
    txt = ["with spaces.mp4", "-rf.mp4", "..weird.mp4"]
    (lists / "list.txt").write_text(
        "# hostile names, relative to this folder\n"
        + "".join(f"{up}{n}\n" for n in txt)
        + f"{odd / VIDEOS_DIR / GOOD[3]}\n{ESCAPE}\n",
        encoding="utf-8",
    )
    csv_names = ["$(touch pwned).mp4", 'say "cheese".mp4', GOOD[8], "with spaces.mp4"]
    with (lists / "list.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "path"])
        w.writerows([[f"x,{i}", up + n] for i, n in enumerate(csv_names)])
    jsonl_names = ["concat:trick.mp4", GOOD[-1], BROKEN]
    (lists / "list.jsonl").write_text(
        "".join(json.dumps({"path": up + n, "note": "`touch pwned`"}) + "\n" for n in jsonl_names)
    )
    # Parquet: a pickled payload in another column stays bytes; nothing unpickles it.
    payload = pickle.dumps(_Pwn(str(pwned)))
    pq.write_table(pa.table({"path": [up + GOOD[11]], "blob": [payload]}), lists / "l.parquet")
    videos = str(odd / VIDEOS_DIR)
    listed = (
        [os.path.join(videos, n) for n in txt]
        + [os.path.join(videos, GOOD[3]), "/escape.mp4"]
        + [os.path.join(videos, n) for n in [*csv_names, *jsonl_names, GOOD[11]]]
    )
    input_lists = [lists / n for n in ("list.txt", "list.csv", "list.jsonl", "l.parquet")]
    return input_lists, list(dict.fromkeys(listed))


@pytest.mark.ray
def test_odd_names_from_a_folder_and_input_lists(ray_local, odd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a `touch pwned` run by a shell would land
    videos = odd / VIDEOS_DIR
    input_lists, listed = _write_input_lists(odd, tmp_path / "pwned")
    # Every input list entry resolves to exactly the file it names (or to /escape.mp4).
    assert discover([str(m) for m in input_lists]) == listed
    before = _tree(odd)
    out = tmp_path / "out"
    assert run_pipeline([videos, *input_lists], out, *QUICK) == 0

    good = [str(videos / n) for n in GOOD]
    broken = str(videos / BROKEN)
    # Sources exactly as discovered; the input lists' entries are the folder's files again.
    assert _sources(out) == {*good, broken, "/escape.mp4"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["discovered"] == len(GOOD) + 2
    rejects = pq.read_table(out / "rejects").to_pylist()
    whole = {r["source"]: r["reason"] for r in rejects if r["clip_id"] is None}
    assert whole == {broken: "unreadable", "/escape.mp4": "unreadable"}
    _check_output(out, good, [*GOOD, f"{VIDEOS_DIR}/{BROKEN}", "escape.mp4"])
    assert _tree(odd) == before  # inputs untouched, nothing written beside them
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert not Path("/escape.mp4").exists() and not Path("/no-such-curate-dir").exists()
    _no_pwned(ROOT, Path.home(), deep=(tmp_path, odd))


class _Pwn:
    """Unpickling this creates ``path``: the proof that nobody unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.ray
def test_leading_dash_and_colon_names_relative_to_cwd(odd, tmp_path):
    """The CLI as a user types it, from inside the videos folder, with names that look like
    options and like FFmpeg protocols (``concat:``, ``pipe:``). A fresh process, so Ray's
    workers start in that folder too (workers keep the cwd Ray was started in)."""
    videos = odd / VIDEOS_DIR
    out = tmp_path / "out"
    before = _tree(odd)
    args = [
        "--input=-rf.mp4",  # `-i -rf.mp4` is refused by argparse: see the test below
        "-i",
        "./--help.mp4",
        "-i",
        "concat:trick.mp4",  # FFmpeg would read this as its concat protocol over trick.mp4
        "-i",
        "12:30 pipe:0.mp4",  # ... and this as an unknown protocol "12"
    ]
    cmd = [sys.executable, "-m", "curate.cli", "run", "-c", DEFAULT_CONFIG, "-o", str(out)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [*cmd, "--no-progress", *QUICK, *args],
        cwd=videos,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Stored absolute, normalised (`./--help.mp4` -> `<videos>/--help.mp4`).
    good = [
        str(videos / n) for n in ["-rf.mp4", "--help.mp4", "concat:trick.mp4", "12:30 pipe:0.mp4"]
    ]
    assert _sources(out) == set(good)
    _check_output(out, good, GOOD)
    assert _tree(odd) == before
    _no_pwned(deep=(tmp_path, odd))


def test_leading_dash_input_needs_equals_or_a_path(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "-o", "out", "-i", "-rf.mp4"])
    assert e.value.code == 2 and "expected one argument" in capsys.readouterr().err
    from curate.cli import _parser

    for form, given in [("--input=-rf.mp4", "-rf.mp4"), ("-i./-rf.mp4", "./-rf.mp4")]:
        assert _parser().parse_args(["run", "-o", "out", form]).input == [given]


def test_ffmpeg_never_reads_a_local_name_as_a_protocol(tmp_path, monkeypatch):
    from curate.media.video import ffmpeg_url, probe

    monkeypatch.chdir(tmp_path)
    image = textured_image(1, 400, 700)
    for name, frames in [("trick.mp4", 10), ("concat:trick.mp4", 50), ("pipe:0.mp4", 25)]:
        # Written under a plain name: FFmpeg would take these names as protocols here too.
        write_video(tmp_path / "plain.mp4", pan_frames(image, frames, 1.0)).rename(name)
    assert probe("concat:trick.mp4", max_pixels=10**8).duration_s == pytest.approx(2.0, abs=0.1)
    assert probe("pipe:0.mp4", max_pixels=10**8).duration_s == pytest.approx(1.0, abs=0.1)
    assert ffmpeg_url("-rf.mp4") == "file:-rf.mp4"
    assert ffmpeg_url("/a/12:30.mp4") == "file:/a/12:30.mp4"
    assert ffmpeg_url("https://host/v.mp4") == "https://host/v.mp4"  # URIs go to FFmpeg as is


# --- safe parsing ---------------------------------------------------------------------------

TAGS = [
    '!!python/object/apply:os.system ["touch pwned"]',
    '!!python/object/new:os.system ["touch pwned"]',
    '!!python/object/apply:subprocess.check_call [["touch", "pwned"]]',
    "!!python/name:os.system",
    "!!python/module:os",
]


@pytest.mark.parametrize("tag", TAGS)
def test_config_with_python_tags_is_refused(tag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"probe:\n  min_short_side: {tag}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    out = tmp_path / "out"
    assert main(["run", "-c", str(bad), "-i", str(tmp_path), "-o", str(out)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not out.exists()
    _no_pwned(ROOT, deep=(tmp_path,))


@pytest.mark.parametrize("tag", TAGS)
def test_set_with_python_tags_is_refused(tag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"probe\.min_short_side"):
        load_config(None, [f"probe.min_short_side={tag}"])
    out = tmp_path / "out"
    args = ["run", "-i", str(tmp_path), "-o", str(out), "--set", f"probe.min_short_side={tag}"]
    assert main(args) == 2
    assert "--set probe.min_short_side: value is not valid YAML" in capsys.readouterr().err
    assert not out.exists()
    _no_pwned(ROOT, deep=(tmp_path,))


def test_set_with_broken_yaml_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "-i", str(tmp_path), "-o", str(out), "--set", "tiers=[unclosed"]) == 2
    assert "--set tiers" in capsys.readouterr().err and not out.exists()


def test_tier_names_cannot_leave_the_output_folder():
    # Tier names become folder names (tiers/<name>/): no separators, no leading dot.
    for name in ["../x", "a/b", "..", ".hidden", "/abs"]:
        with pytest.raises(ConfigError, match=r"tiers\.0\.name"):
            load_config(None, [f"tiers.0.name={json.dumps(name)}"])


# --- static scan: no shell, no eval, no pickle, no unsafe loaders ----------------------------

SCANNED = ["curate", "stages", "scripts"]

SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` of a Name/Attribute chain, '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _not_false(node: ast.expr | None) -> bool:
    """A keyword that is present and not the literal False/None (a variable counts)."""
    return node is not None and not (isinstance(node, ast.Constant) and node.value in (False, None))


ALWAYS_UNSAFE = re.compile(
    r"(builtins\.)?(eval|exec)|__import__"
    r"|os\.(system|popen|exec\w*|spawn\w*|posix_spawn\w*)|pty\.spawn"
    r"|subprocess\.(getoutput|getstatusoutput)|asyncio\.create_subprocess_shell"
    r"|yaml\.(unsafe_load|unsafe_load_all|full_load|full_load_all)"
    r"|(pandas|pd)\.read_pickle"
)
"""Calls that are unsafe whatever their arguments: a shell, code from text, a pickle."""

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}


def _unsafe_call(name: str, call: ast.Call) -> str | None:
    if ALWAYS_UNSAFE.fullmatch(name):
        return name
    if name.startswith("subprocess.") and _not_false(_kw(call, "shell")):
        return f"{name}(shell=...)"
    if name in {"yaml.load", "yaml.load_all"}:
        loader = _kw(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
            return f"{name} without a safe Loader"
    if name == "torch.load" and not _is_true(_kw(call, "weights_only")):
        return "torch.load without weights_only=True"
    if name in {"numpy.load", "np.load"} and _not_false(_kw(call, "allow_pickle")):
        return f"{name}(allow_pickle=...)"
    return None


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every unsafe construct in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    # `from x import y [as z]`: a call `z(...)` is checked as `x.y(...)`.
    aliases: dict[str, str] = {}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        else:
            continue
        found += [
            f"{filename}:{node.lineno}: import {m}"
            for m in modules
            if m.split(".")[0] in PICKLE_MODULES
        ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            head, dot, rest = _dotted(node.func).partition(".")
            name = aliases.get(head, head) + dot + rest
            bad = _unsafe_call(name, node)
            if bad:
                found.append(f"{filename}:{node.lineno}: {bad}")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import os\nos.system(f'ffmpeg -i {x}')",
        "import os\nos.popen('ls ' + x)",
        "from os import system as s\ns(x)",
        "import subprocess\nsubprocess.run(cmd, shell=True)",
        "import subprocess\nsubprocess.Popen(cmd, shell=use_shell)",
        "from subprocess import check_output\ncheck_output(cmd, shell=True)",
        "eval(text)",
        "exec(code)",
        "import pickle\npickle.loads(b)",
        "import yaml\nyaml.load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)",
        "import yaml\nyaml.unsafe_load(text)",
        "import torch\ntorch.load(p)",
        "import torch\ntorch.load(p, weights_only=False)",
        "import numpy as np\nnp.load(p, allow_pickle=True)",
    ],
)
def test_scanner_catches(snippet):
    assert unsafe_calls(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import subprocess\nsubprocess.run([sys.executable, '-m', 'x', path], check=False)",
        "import yaml\nyaml.safe_load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
        "model.eval()",  # a method, not the builtin
    ],
)
def test_scanner_allows(snippet):
    assert unsafe_calls(snippet) == []


def test_no_shell_eval_pickle_or_unsafe_loaders_in_the_code():
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    found = [
        hit
        for p in files
        for hit in unsafe_calls(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
    ]
    # Nothing is allowlisted: scripts/bench.py runs PySceneDetect through subprocess with an
    # argument list (no shell), which the scan accepts on its own.
    assert found == []


# --- Ray authentication: passed through, never overridden ------------------------------------

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@pytest.mark.parametrize("address", [None, "auto", "ray://head:10001"])
def test_ray_session_leaves_auth_to_the_environment(address, monkeypatch):
    import ray

    from curate.config.sections import CurateConfig
    from curate.run.runner import ray_session

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/nonexistent/token")
    env = {k: os.environ.get(k) for k in AUTH_ENV}
    with ray_session(CurateConfig(), address):
        assert {k: os.environ.get(k) for k in AUTH_ENV} == env
    assert {k: os.environ.get(k) for k in AUTH_ENV} == env
    [(args, kwargs)] = calls
    # Ray reads RAY_AUTH_MODE and the token from the environment only (a `_system_config`
    # AUTH_MODE is an error in Ray): curate passes nothing that could override it.
    assert not args and not {"_system_config", "runtime_env", "job_config"} & set(kwargs)
    assert not [k for k in kwargs if "auth" in k.lower() or "token" in k.lower()]
    assert kwargs.get("address") == address

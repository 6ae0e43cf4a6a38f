"""``curate run`` as a subprocess, as a user runs it: a fresh process and a local Ray of its
own, with the code of a chosen checkout (this one, or a baseline to compare against)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.common.paths import REPO_ROOT
from scripts.common.timing import Stopwatch


def code_env(code_root: Path = REPO_ROOT) -> dict[str, str]:
    """This environment with ``code_root`` first on ``PYTHONPATH``, so its ``curate`` and
    ``stages`` shadow the installed (editable) ones, and without ``RAY_ADDRESS``: the run
    starts a local Ray (a cluster would not see another checkout, nor count as the run's
    memory)."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root), env.get("PYTHONPATH")]))
    return env


def curate_command(
    config: str | Path, inputs: Sequence[str | Path], output: Path, *extra: str
) -> list[str]:
    """``python -m curate.cli run`` with this interpreter; ``extra`` goes last."""
    return [
        sys.executable, "-m", "curate.cli", "run",
        "--config", str(config),
        *(f"--input={i}" for i in inputs),
        "--output", str(output),
        *extra,
    ]  # fmt: skip


def start_curate(
    config: str | Path,
    inputs: Sequence[str | Path],
    output: Path,
    *extra: str,
    log: Path,
    code_root: Path = REPO_ROOT,
) -> subprocess.Popen:
    """Start ``curate run`` of the code in ``code_root`` (also its working directory), its
    console output (stdout and stderr) to ``log``, which starts with the command line."""
    cmd = curate_command(config, inputs, output, *extra)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        f.write(f"$ cd {code_root} && PYTHONPATH={code_root} {' '.join(cmd)}\n")
        f.flush()
        return subprocess.Popen(
            cmd,
            cwd=code_root,
            env=code_env(code_root),
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def run_curate(
    config: str | Path,
    inputs: Sequence[str | Path],
    output: Path,
    *extra: str,
    log: Path,
    code_root: Path = REPO_ROOT,
) -> tuple[int, float]:
    """:func:`start_curate` and wait: (exit status, wall seconds)."""
    watch = Stopwatch()
    rc = start_curate(config, inputs, output, *extra, log=log, code_root=code_root).wait()
    return rc, watch.seconds


def log_tail(log: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a run's log ("" when it cannot be read)."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

"""Smoke test of every script in scripts/: each runs at a tiny size and exits 0.

The test is parametrized over the files in scripts/, so a new script without an entry in
``SMOKE`` fails here (and so does an entry whose script is gone). The scripts run as
subprocesses with this interpreter, as a user would run them, so a module they import that has
moved or an option that no longer parses shows up here rather than on the next benchmark run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, VIDEOS

SCRIPTS = ROOT / "scripts"


def _synthetic_output(tmp: Path) -> None:
    from scripts.common.synth import synthetic_output

    synthetic_output(tmp / "out", 200)


@dataclass(frozen=True)
class Smoke:
    args: tuple[str, ...]
    """Arguments; ``{tmp}`` is a fresh temporary folder, ``{videos}`` the shared videos."""
    expect: tuple[str, ...]
    """Each of these appears in the script's stdout."""
    shared: bool = False
    """Needs ../shared/testdata/videos (skipped when absent)."""
    ray: bool = False
    """Starts a local Ray instance."""
    setup: Callable[[Path], None] | None = None
    """Prepares ``{tmp}`` before the run."""
    timeout: int = 180


SMOKE: dict[str, Smoke] = {
    "bench.py": Smoke(
        ("{videos}", "--repeats", "1", "--cut-heavy", "4", "--without", "watermark"),
        (
            *("cut-heavy video:", "repeat 1/1 done", "summary: 1 files", "where the time went"),
            "the signal costs",
        ),
        shared=True,
    ),
    "bench_export.py": Smoke(
        # One 8 s clip; the repository itself stands in for the baseline checkout.
        (
            *("--videos", "{videos}", "--duration", "8", "--cache", "{tmp}"),
            *("--repeats", "1", "--checkout", ".", "--presets", "ultrafast"),
        ),
        ("1 clips", "this / checkout frames/s", "x264 presets alone", "copied: 1 of 1"),
        shared=True,
    ),
    "bench_images.py": Smoke(
        ("--images", "6", "--workdir", "{tmp}"),
        ("6 images from", "Pillow decode only", "x decode-only", "where the time went"),
        timeout=300,
    ),
    "bench_inspect.py": Smoke(
        ("--clips", "200", "--workdir", "{tmp}"),
        ("built 200 clips", "inspect (all candidates)", "validate"),
    ),
    "bench_isolation.py": Smoke(
        ("--videos", "{videos}", "--limit", "1", "--repeats", "1"),
        ("isolation  on", "isolation off", "ratio on/off"),
        shared=True,
    ),
    "bench_memory.py": Smoke(
        (
            *("--runs", "few", "--few", "1", "--many", "1", "--export", "reference"),
            *("--workdir", "{tmp}/work", "--results", "{tmp}/results"),
        ),
        ("PASS few", "overall: PASS"),
        ray=True,
        timeout=300,
    ),
    "bench_small_run.py": Smoke(
        # Three runs, not five: the repository itself stands in for another checkout; the
        # per-stage and Ray Data layouts are covered by the pipeline tests.
        (
            *("--videos", "{videos}", "--limit", "1", "--checkout", "."),
            *("--variants", "rule-based,checkout"),
        ),
        ("1 videos", "default:", "rule-based:", "checkout:", "dedup+rebalance", "total"),
        shared=True,
        timeout=300,
    ),
    "bench_phase2.py": Smoke(
        ("--clips", "2000", "--concepts", "50", "--workdir", "{tmp}/work"),
        ("phase 2 over 2000 clips: wall", "peak memory", "recall", "precision", "rebalance:"),
        ray=True,
    ),
    "compare_outputs.py": Smoke(("--help",), ("usage:",)),
    "cut_heavy_video.py": Smoke(
        ("--videos", "{videos}", "--duration", "2", "--out", "{tmp}/cut.mp4"),
        ("cut-heavy video:", "joins at frames"),
        shared=True,
    ),
    "eval_camera_motion.py": Smoke(
        ("--videos", "{videos}", "--per-class", "1", "--limit", "2"),
        ("real footage: ", "| static |", "reliability", "synthetic camera moves"),
        shared=True,
        timeout=300,
    ),
    "eval_text.py": Smoke(
        ("--videos", "{videos}", "--limit", "2", "--per-case", "1", "--short", "2"),
        ("real footage", "| ocr |", "| morphology |", "synthetic text cases", "in 2 s clips"),
        shared=True,
        timeout=400,
    ),
    "eval_dedup.py": Smoke(
        ("--videos", "{videos}", "--originals", "1", "--seconds", "6", "--workdir", "{tmp}"),
        ("files: 1 originals", "| crop 20% |", "| combined |", "false merges", "ms |"),
        shared=True,
        timeout=400,
    ),
    "eval_overlays.py": Smoke(
        (
            *("--videos", "{videos}", "--originals", "1", "--seconds", "5"),
            *("--drifting", "1", "--shared", "1", "--workdir", "{tmp}"),
        ),
        (
            *("files: 15", "| corner logo 100% |", "| app mark |", "| subtitle (text) |"),
            *("| camera drifting (clean) |", "kind right", "margin"),
        ),
        shared=True,
        timeout=400,
    ),
    "eval_shots.py": Smoke(
        ("--videos", "{videos}", "--limit", "2", "--detectors", "combined,scenedetect-content"),
        ("real footage", "| combined |", "| scenedetect-content |", "synthetic: 8 videos"),
        shared=True,
        timeout=300,
    ),
    "gpu_check.py": Smoke(
        # No GPU in CI: the same parts on the CPU at the tiny size.
        ("--videos", "{videos}", "--tiny"),
        ("transnetv2", "pp-ocr", "nudenet", "open_clip", "curate run", "gpu check done"),
        shared=True,
        ray=True,
        timeout=300,
    ),
    "inspect_shards.py": Smoke(
        ("{tmp}/out", "--tier", "strict", "--sample", "2"),
        ("(200 candidate clips)", "selection: tiers/strict"),
        setup=_synthetic_output,
    ),
    "ray_placement.py": Smoke(("--address", "local"), ("nodes:", "head", "CPU="), ray=True),
    "submit_ray_job.sh": Smoke(
        (
            *("--address", "http://127.0.0.1:8265", "--config", "configs/default.yaml"),
            *("--input", "s3://bucket/raw/", "--output", "s3://bucket/curated/run"),
            *("--aws", "--submission-id", "smoke", "--dry-run"),
        ),
        ("ray job submit", "--submission-id smoke", "curate.cli run"),
    ),
}


def _script_names() -> list[str]:
    # Package files (``__init__.py``) are not scripts.
    on_disk = {p.name for p in SCRIPTS.iterdir() if p.is_file() and p.name[0] not in "._"}
    return sorted(on_disk | set(SMOKE))


def _param(name: str):
    smoke = SMOKE.get(name)
    marks = []
    if smoke and smoke.ray:
        marks.append(pytest.mark.ray)
    if smoke and smoke.shared:
        marks.append(pytest.mark.shared)
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in _script_names()])
def test_script_smoke(name: str, tmp_path: Path) -> None:
    path = SCRIPTS / name
    smoke = SMOKE.get(name)
    if smoke is None:
        pytest.fail(f"scripts/{name} has no smoke entry: add one to SMOKE in {__file__}")
    if not path.is_file():
        pytest.fail(f"SMOKE has an entry for scripts/{name}, which does not exist: remove it")
    if smoke.shared and not VIDEOS.is_dir():
        pytest.skip(f"scripts/{name} needs the shared test videos, not found at {VIDEOS}")
    if smoke.setup:
        smoke.setup(tmp_path)
    args = [a.format(tmp=tmp_path, videos=VIDEOS) for a in smoke.args]
    interpreter = ["bash"] if name.endswith(".sh") else [sys.executable]
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a local Ray instance of its own, never a cluster
    # ``python3`` inside shell scripts is this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    try:
        proc = subprocess.run(
            [*interpreter, str(path), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=smoke.timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        pytest.fail(f"scripts/{name} ran past {smoke.timeout} s; stdout:\n{out}")
    report = f"scripts/{name} {' '.join(args)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{report}"
    for text in smoke.expect:
        assert text in proc.stdout, f"{text!r} not in the output\n{report}"

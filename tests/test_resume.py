"""Resume: a run killed part-way and run again ends with exactly the rows of an uninterrupted
run; settings that would make old and new results inconsistent are refused."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import DEFAULT_CONFIG, ROOT
from conftest import run_pipeline as run

from curate.cli import main
from curate.output.validate import accounting_problems
from scripts.common.synth import bad_inputs, pan_frames, shots_video, textured_image, write_video

FAST = ["--set", "output.checkpoint_interval_s=0", "--set", "embed.sources_per_batch=1"]
"""Journal every analyzed source, so a kill always finds some sources done."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume-inputs")
    for k in range(8):
        write_video(folder / f"pan{k}.mp4", pan_frames(textured_image(20 + k), 130, 1.0 + k / 4))
    shots_video(folder / "shots.mp4", [110, 30, 105])
    bad_inputs(folder / "bad")
    return folder


@pytest.fixture(scope="module")
def uninterrupted(ray_local, inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume-baseline") / "out"
    assert run([inputs], out, *FAST) == 0
    return out


def command(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "curate.cli",
        "run",
        "-c",
        DEFAULT_CONFIG,
        "-i",
        str(inputs),
        "-o",
        str(out),
        "--no-progress",
        *FAST,
        *extra,
    ]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def row_set(folder: Path) -> set[str]:
    """Every row of every shard under ``folder`` as canonical JSON (binary as hex)."""
    rows = set()
    for path in sorted(folder.rglob("part-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            rows.add(json.dumps(row, sort_keys=True, default=lambda b: b.hex()))
    return rows


def discovered(out: Path) -> int:
    return json.loads((out / "manifest.json").read_text())["inputs"]["discovered"]


def assert_same_results(out: Path, baseline: Path) -> None:
    assert (out / "manifest.json").is_file()
    assert accounting_problems(out) == []
    for table in ("rejects", "tiers", "analysis", "shots"):
        got, want = row_set(out / table), row_set(baseline / table)
        assert got == want, f"{table}: {len(got - want)} extra rows, {len(want - got)} missing"
    assert sorted(p.name for p in (out / "clips").rglob("*.mp4")) == sorted(
        p.name for p in (baseline / "clips").rglob("*.mp4")
    )


def test_driver_killed_mid_run_then_rerun_matches_uninterrupted(inputs, uninterrupted, tmp_path):
    out = tmp_path / "out"
    chunks = out / "journal" / "phase1"
    proc = subprocess.Popen(
        command(inputs, out),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(chunks.glob("chunk-*.parquet")):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no progress recorded in the journal"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, mid phase 1
        proc.wait(timeout=30)
    finally:
        # Whatever the driver had started (its local Ray) goes too, as with a lost node.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "manifest.json").exists()
    state = json.loads((out / "journal" / "run.json").read_text())
    assert state["phase1"] is None
    done_before = set()
    for chunk in chunks.glob("chunk-*.parquet"):
        done_before.update(pq.read_table(chunk)["source_index"].to_pylist())
    assert 0 < len(done_before) < discovered(uninterrupted)

    rerun = subprocess.run(command(inputs, out), env=env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "sources were analyzed before" in rerun.stderr
    assert_same_results(out, uninterrupted)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["invocations"] == 2
    assert manifest["run"]["sources_done_before"] == len(done_before)
    # The timings cover the sources of the killed invocation too.
    stages = manifest["timing"]["stages"]
    baseline = json.loads((uninterrupted / "manifest.json").read_text())["timing"]["stages"]
    for stage, part, count in [("analyze", "decode", "frames"), ("embed", "model", "keyframes")]:
        assert stages[stage]["parts"][part][count] == baseline[stage]["parts"][part][count] > 0
    assert not chunks.exists()  # folded into the tables
    assert main(["validate", str(out)]) == 0


def test_interrupted_phase3_restarts_from_analysis(inputs, uninterrupted, tmp_path):
    """A run that died after phase 1 (analysis written) but before its tiers and manifest:
    the re-run redoes only phase 2 and 3, replacing whatever they had half written."""

    out = tmp_path / "out"
    shutil.copytree(uninterrupted, out)
    state_file = out / "journal" / "run.json"
    state = json.loads(state_file.read_text())
    state["finished_unix"] = None
    state_file.write_text(json.dumps(state))
    (out / "manifest.json").unlink()
    # Half-rewritten rejects and tiers, a stale clip.
    shutil.rmtree(out / "rejects")
    shutil.rmtree(out / "tiers" / "default")
    stale = out / "clips" / "fullres" / "zz" / "zz-stale.mp4"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    assert run([inputs], out, *FAST) == 0
    assert_same_results(out, uninterrupted)
    assert not stale.exists()
    manifest = json.loads((out / "manifest.json").read_text())
    # No source was analyzed again; phase 1's timings are those of the first invocation.
    assert manifest["run"]["sources_done_before"] == discovered(uninterrupted)
    baseline = json.loads((uninterrupted / "manifest.json").read_text())
    for stage in ("probe", "analyze", "detect", "embed"):
        assert manifest["timing"]["stages"][stage] == baseline["timing"]["stages"][stage]


def test_changed_settings_are_refused_and_fresh_starts_over(
    inputs, uninterrupted, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(uninterrupted, out)
    assert run([inputs], out, *FAST, "--set", "analyze.short_side=128") == 2
    err = capsys.readouterr().err
    assert "analyze.short_side: 256 -> 128" in err and "--fresh" in err
    assert run([inputs / "bad"], out, *FAST) == 2
    assert "inputs differ" in capsys.readouterr().err
    # Later phases may change freely: they are recomputed from analysis/.
    assert run([inputs], out, *FAST, "--set", "tiers.0.gates.min_sharpness=1e9") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tiers"]["default"]["clips"] == 0
    assert manifest["run"]["sources_done_before"] == discovered(uninterrupted)
    # --fresh starts over with the new settings.
    assert run([inputs / "bad"], out, *FAST, "--fresh") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["discovered"] == len(list((inputs / "bad").iterdir()))
    assert manifest["run"]["invocations"] == 1
    assert accounting_problems(out) == []

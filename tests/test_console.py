"""What a person sees on the console: the progress display, a quiet run, the closing summary."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from conftest import DEFAULT_CONFIG, ROOT

from curate.cli import main
from curate.run.progress import Progress, ProgressLogHandler
from scripts.common.synth import pan_frames, shots_video, still_frames, textured_image, write_video

RAY_INTERNALS = re.compile(
    r"Token authentication|RAY_AUTH_MODE|core_worker|\.cc:\d+|Progress will be logged|"
    r"progress UI|dataset_[0-9A-Za-z]|Running Dataset|MapBatches|HashShuffle|ListFiles|"
    r"logging_progress|streaming_executor|autoscaler|raylet"
)
"""Lines of Ray's own console output that a default run must not print."""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_output_prints_one_line_per_step():
    out = io.StringIO()
    progress = Progress(stream=out)
    with progress.step("analyze", 3, "sources") as step:
        for _ in range(3):
            step.advance()
    with progress.step("dedup") as step:
        step.note = "2 of 2 clips kept"
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"analyze 3/3 sources \(\d+\.\d s\)", lines[0]), lines
    assert re.fullmatch(r"dedup, 2 of 2 clips kept \(\d+\.\d s\)", lines[1]), lines
    assert "\r" not in out.getvalue()


def test_live_line_is_redrawn_and_log_records_never_tear_it():
    term = Terminal()
    progress = Progress(stream=term)
    log = logging.getLogger("curate.test_console")
    handler = ProgressLogHandler(progress)
    log.addHandler(handler)
    try:
        with progress.step("export", 2, "clips") as step:
            step.advance()
            log.warning("a clip failed to export")
            step.advance()
    finally:
        log.removeHandler(handler)
    text = term.getvalue()
    # The record clears the live line first and is a line of its own; the line comes back.
    assert "\r\x1b[Ka clip failed to export\n" in text
    after = text.split("a clip failed to export\n", 1)[1]
    assert after.startswith("\r\x1b[Kexport 1/2 clips")
    assert re.search(r"\r\x1b\[Kexport 2/2 clips \(\d+\.\d s\)\n$", text), text[-80:]


def test_hidden_progress_still_shows_log_records():
    out = io.StringIO()
    progress = Progress(enabled=False, stream=out)
    with progress.step("analyze", 1, "sources") as step:
        step.advance()
        progress.message("WARNING: something to know")
    assert out.getvalue() == "WARNING: something to know\n"


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    image = textured_image(5)
    write_video(folder / "pan.mp4", pan_frames(image, 150, 2.0))  # 6 s, one clip
    write_video(folder / "still.mp4", still_frames(image, 125))  # static: rejected by the tier
    shots_video(folder / "shots.mp4", [110, 30])  # 4.4 s clip + a 1.2 s shot: too short
    return [folder / n for n in ("pan.mp4", "still.mp4", "shots.mp4")]


def test_a_default_run_is_quiet_and_ends_with_the_output_and_next_commands(three_videos, tmp_path):
    out = tmp_path / "out"
    inputs = [a for v in three_videos for a in ("-i", str(v))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", "-c", DEFAULT_CONFIG, *inputs, "-o", str(out)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # both streams, as a log file or CI sees them
        text=True,
        timeout=600,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(lines) <= 60, proc.stdout
    assert not [line for line in lines if RAY_INTERNALS.search(line)], proc.stdout
    # One plain line per step, no live redraws in a log.
    assert "\r" not in proc.stdout and "\x1b[" not in proc.stdout
    for step in ("analyze 3/3 sources", "tiers", "dedup", "rebalance", "captions", "export"):
        assert any(line.startswith(step) for line in lines), (step, proc.stdout)
    finished = next(i for i, line in enumerate(lines) if line.startswith("finished in"))
    assert lines[finished].endswith(str(out))
    summary = "\n".join(lines[finished:])
    assert "static" in summary and "still.mp4" in summary  # rejects name their inputs
    assert "too_short" in summary and "shots.mp4" in summary
    assert lines[-5] == "next:"
    for command in ("inspect", "report", "validate", "retier"):
        assert any(line.strip().startswith(f"curate {command} {out}") for line in lines[-4:])
    timing = json.loads((out / "manifest.json").read_text())["timing"]
    phase2 = timing["phase2_tiers_s"] + timing["phase2_dedup_rebalance_s"]
    print(f"phase 2: {phase2:.2f} s, whole run {timing['total_s']:.1f} s")


def test_a_foreign_output_folder_is_refused_with_what_to_do(three_videos, tmp_path, capsys):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    assert main(["run", "-i", str(three_videos[0]), "-o", str(foreign), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not empty and holds no curate run" in err
    assert "choose a new or empty folder for --output" in err
    assert (foreign / "holiday.jpg").read_bytes() == b"not ours"


def test_ray_native_notices_are_dropped_from_stderr_and_the_rest_passes(capfd):
    from curate.run.runner import native_notices_dropped

    with native_notices_dropped():
        os.write(2, b"[2026-12-01 13:49:16,975 E 356 356] core_worker.cc:2465: Actor with ...\n")
        os.write(2, b"\r\x1b[Kanalyze 1/3 sources  2.0 s")  # a live line: no newline yet
        os.write(2, b"\nWARNING: a real warning\n")
    err = capfd.readouterr().err
    assert "core_worker" not in err
    assert err == "\r\x1b[Kanalyze 1/3 sources  2.0 s\nWARNING: a real warning\n"

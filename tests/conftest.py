from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "testdata"
VIDEOS = SHARED / "videos"
GROUNDTRUTH = SHARED / "groundtruth"
DEFAULT_CONFIG = str(ROOT / "configs" / "default.yaml")
ARTIFACTS = ROOT / "test-artifacts"
"""Files tests leave for people to look at (screenshots); ignored by git."""

needs_shared = pytest.mark.skipif(
    not VIDEOS.is_dir(),
    reason=f"shared test videos not found at {VIDEOS} (clone the project next to shared/)",
)


@pytest.fixture(scope="session")
def ray_local():
    """One local 2-CPU Ray for the whole test session (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def run_pipeline(inputs, output, *extra) -> int:
    """``curate run`` with the default config through the CLI; returns the exit code."""
    from curate.cli import main

    args = ["run", "--config", DEFAULT_CONFIG, "--output", str(output), "--no-progress", *extra]
    for i in inputs:
        args += ["--input", str(i)]
    return main(args)


@pytest.fixture(scope="session")
def shared_run(ray_local, tmp_path_factory):
    """The default config over the shared videos plus known-bad inputs, run once per session
    (about a minute). Returns ``(output, {bad file name: reject reason}, bad folder)``; tests
    must not modify the output (copy it first)."""
    from scripts.common.synth import bad_inputs

    bad = tmp_path_factory.mktemp("bad")
    expected = bad_inputs(bad)
    out = tmp_path_factory.mktemp("run") / "out"
    assert run_pipeline([VIDEOS, bad], out) == 0
    return out, expected, bad

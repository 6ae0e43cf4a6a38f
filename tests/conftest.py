from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "testdata"
VIDEOS = SHARED / "videos"
GROUNDTRUTH = SHARED / "groundtruth"

sys.path.insert(0, str(Path(__file__).parent))

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

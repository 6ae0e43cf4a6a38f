"""Where this checkout and the shared test footage (``../shared/testdata``) are, so a script
finds them from any working directory."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout these scripts belong to."""
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
SHARED_VIDEOS = SHARED_TESTDATA / "videos"
SHARED_GROUNDTRUTH = SHARED_TESTDATA / "groundtruth"
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
TRUTH = REPO_ROOT / "scripts" / "truth"
"""Labels the evaluation scripts score against (checked by eye)."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Photos:
    """A folder of real photographs and the image cases built from them."""

    folder: Path
    originals: list[Path]
    """scikit-image's sample photos, as they ship."""
    copies: dict[str, dict[str, Path]]
    """Edited copies by photo stem and edit (``scripts.common.photos.edited_copies``)."""
    broken: dict[str, str]
    """Broken or odd images: file name -> expected outcome (a reason, or ``ok``)."""
    frames: list[Path]
    """Frames exported from shared footage as JPEG, PNG and WebP (none without it)."""

    @property
    def count(self) -> int:
        return (
            len(self.originals)
            + sum(map(len, self.copies.values()))
            + len(self.broken)
            + len(self.frames)
        )


FRAMES_FROM = "co-tracker/teddy.mp4"
"""The shared video whose frames stand in as photographs beside it."""


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Photos:
    """Real photographs (scikit-image's samples), edited copies of two of them, broken images
    and, with the shared footage, frames exported from it."""
    from scripts.common.photos import broken_images, edited_copies, sample_photos, video_frames

    folder = tmp_path_factory.mktemp("photos")
    originals = sample_photos(folder)
    copies = {
        photo.stem: edited_copies(photo, folder / "edited")
        for photo in originals
        if photo.stem in ("astronaut", "motorcycle_left")
    }
    broken = broken_images(folder / "broken")
    frames = video_frames(VIDEOS / FRAMES_FROM, folder / "frames") if VIDEOS.is_dir() else []
    return Photos(folder, originals, copies, broken, frames)


@pytest.fixture(scope="session")
def shared_run(ray_local, tmp_path_factory, photos):
    """The default config over the shared videos, real photographs beside them (``photos``)
    and known-bad inputs, run once per session (about a minute). Returns ``(output, {bad file
    name: reject reason}, bad folder)``; tests must not modify the output (copy it first)."""
    from scripts.common.synth import bad_inputs

    bad = tmp_path_factory.mktemp("bad")
    expected = bad_inputs(bad)
    out = tmp_path_factory.mktemp("run") / "out"
    assert run_pipeline([VIDEOS, bad, photos.folder], out) == 0
    return out, expected, bad

"""Still images held for seconds are rejected as static; real hand-held and panning footage
is not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VIDEOS, needs_shared
from synth import camera_motion_frames, real_frames, write_video

from curate import schema
from curate.config import CurateConfig
from stages.analyze import AnalyzeStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers

DEFAULT_GATES = {"tiers": [{"name": "t", "gates": {"min_motion": 0.002, "max_motion": 1.5}}]}


def clips_of(path, min_duration=4.0):
    config = CurateConfig.model_validate({"analyze": {"clips": {"min_duration_s": min_duration}}})
    probed = ProbeStage(config).probe_one(str(path), 0)
    return AnalyzeStage(config).analyze_one(probed)["clips"]


def reasons(clips):
    config = CurateConfig.model_validate(DEFAULT_GATES)
    result = assign_tiers(schema.from_rows(clips, schema.ANALYSIS), config.tiers)
    return [r["reason"] for r in result.rejects]


def noisy_still(image, seconds, sigma, seed=0):
    rng = np.random.default_rng(seed)
    base = next(camera_motion_frames(image, "static", 1.0, n=1, size=(360, 640)))
    for _ in range(int(seconds * 25)):
        yield np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)


@needs_shared
@pytest.mark.parametrize(("sigma", "crf"), [(0.0, 23), (3.0, 12), (6.0, 30)])
def test_still_image_with_noise_is_static(tmp_path, sigma, crf):
    image = real_frames(VIDEOS)[3]
    path = write_video(tmp_path / "still.mp4", noisy_still(image, 6, sigma), crf=crf)
    clips = clips_of(path)
    assert len(clips) == 1
    assert clips[0]["camera_motion"] == "static"
    assert reasons(clips) == ["static"]


@needs_shared
@pytest.mark.parametrize(
    "name",
    [
        "learning-area/rabbit.webm",
        "sam2/bedroom.mp4",
        "moviepy/video_with_failing_audio.mp4",
        "opencv-for-python/faces.mp4",
        "face_recognition/short_hamilton_clip.mp4",
    ],
)
def test_handheld_footage_is_not_static(name):
    clips = clips_of(VIDEOS / name)
    assert clips and reasons(clips) == []


@needs_shared
def test_panning_footage_is_not_static():
    clips = clips_of(VIDEOS / "co-tracker/paragliding-launch.mp4", min_duration=2.0)
    assert clips and reasons(clips) == []
    assert clips[0]["camera_motion"] == "pan_right"

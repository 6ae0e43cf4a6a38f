"""Still images held for seconds are rejected as static; real hand-held and panning footage
is not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate import contract, schema
from curate.config.sections import CurateConfig
from scripts.common.synth import real_frames, write_video
from stages.analyze import AnalyzeStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers

DEFAULT_GATES = {
    "tiers": [
        {
            "name": "t",
            "gates": {
                "min_motion": 0.002,
                "max_motion": 1.5,
                "reject_slideshow": True,
                "reject_chaotic": True,
            },
        }
    ]
}


def clips_of(path, min_duration=4.0):
    config = CurateConfig.model_validate({"analyze": {"clips": {"min_duration_s": min_duration}}})
    probed = ProbeStage.from_config(config).probe_one(str(path), 0)
    return AnalyzeStage.from_config(config).analyze_one(probed)["clips"]


def reasons(clips):
    config = CurateConfig.model_validate(DEFAULT_GATES)
    result = assign_tiers(schema.from_rows(clips, contract.ANALYSIS), config.tiers)
    return [r["reason"] for r in result.rejects]


def noisy_still(image, seconds, sigma, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA).astype(np.float32)
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
    assert clips[0]["motion_pattern"] == "still"
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
    assert {c["motion_pattern"] for c in clips} == {"moving"}


@needs_shared
def test_panning_footage_is_not_static():
    clips = clips_of(VIDEOS / "co-tracker/paragliding-launch.mp4", min_duration=2.0)
    assert clips and reasons(clips) == []
    assert clips[0]["camera_motion"] == "pan_right"
    assert clips[0]["motion_pattern"] == "moving"


def slideshow(image, seconds, hold_s, seed=0, fade=8):
    """Crops of one picture, each held ``hold_s`` with a little noise, joined by ``fade``-frame
    dissolves (hard cuts would split the shot: each slide alone is too short for a clip)."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(image, (960, 540), interpolation=cv2.INTER_AREA)

    def crop():
        x, y = int(rng.integers(0, 320)), int(rng.integers(0, 180))
        return image[y : y + 360, x : x + 640].astype(np.float32)

    per_slide = int(hold_s * 25)
    slide, following = crop(), crop()
    for i in range(int(seconds * 25)):
        k = i % per_slide
        if k == 0 and i:
            slide, following = following, crop()
        a = max(0.0, (k - (per_slide - fade)) / fade)
        frame = (1 - a) * slide + a * following
        yield np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)


def violent_shake(image, seconds, seed=0):
    """A camera thrown around: every frame a random shift and turn of the picture."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(image, (960, 540), interpolation=cv2.INTER_AREA)
    for _ in range(int(seconds * 25)):
        m = cv2.getRotationMatrix2D((480, 270), float(rng.uniform(-20, 20)), 1.0)
        m[:, 2] += rng.uniform(-120, 120, 2) - (160, 90)
        yield cv2.warpAffine(image, m, (640, 360), borderMode=cv2.BORDER_REFLECT)


@needs_shared
@pytest.mark.parametrize(("seed", "hold_s"), [(0, 1.5), (1, 2.0), (2, 1.0)])
def test_slideshow_is_rejected(tmp_path, seed, hold_s):
    image = real_frames(VIDEOS)[seed]
    path = write_video(tmp_path / "slides.mp4", slideshow(image, 8, hold_s, seed))
    clips = clips_of(path)
    # TransNetV2 sees each cross-fade as a transition, so the slides may already be shots too
    # short for a clip (rejected as too_short); whatever clips remain are called a slideshow.
    assert [c["motion_pattern"] for c in clips] == ["slideshow"] * len(clips)
    if clips:
        assert set(reasons(clips)) == {"slideshow"}


@needs_shared
@pytest.mark.parametrize("seed", [0, 1])
def test_violent_shake_is_chaotic(tmp_path, seed):
    image = real_frames(VIDEOS)[seed + 2]
    path = write_video(tmp_path / "shake.mp4", violent_shake(image, 6, seed))
    clips = clips_of(path)
    assert clips, "the shaking clip was cut into pieces too short for a clip"
    assert {c["motion_pattern"] for c in clips} == {"chaotic"}
    assert reasons(clips) and set(reasons(clips)) <= {"chaotic_motion", "excessive_motion"}

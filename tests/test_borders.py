"""Letterbox/pillarbox measurement, dark scenes without bars, the border gate and cropping."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate import contract
from curate.config.sections import CurateConfig
from curate.signals.borders import bar_size
from scripts.common.synth import camera_motion_frames, real_frames, write_video
from stages.analyze import AnalyzeStage
from stages.export import ExportStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers


def analyse(path, config=None):
    config = config or CurateConfig()
    probed = ProbeStage.from_config(config).probe_one(str(path), 0)
    assert probed["ok"], probed
    return AnalyzeStage.from_config(config).analyze_one(probed)


def with_bars(frames, top=0.0, bottom=0.0, left=0.0, right=0.0, level=0):
    for f in frames:
        f = f.copy()
        h, w = f.shape[:2]
        f[: round(top * h)] = level
        f[h - round(bottom * h) :] = level
        f[:, : round(left * w)] = level
        f[:, w - round(right * w) :] = level
        yield f


BARS = [
    {"top": 0.12, "bottom": 0.12},
    {"top": 0.10, "bottom": 0.10, "level": 40},  # dark grey solid bars
    {"left": 0.125, "right": 0.125},
    {"left": 0.08, "right": 0.08, "level": 16},
    {"top": 0.15, "bottom": 0.15, "left": 0.05, "right": 0.05},
]


@needs_shared
@pytest.mark.parametrize("bars", BARS)
def test_added_bars_measured_within_two_percent(tmp_path, bars):
    image = real_frames(VIDEOS)[1]
    frames = camera_motion_frames(image, "pan_left", 1.0, n=110, size=(360, 640))
    path = write_video(tmp_path / "barred.mp4", with_bars(frames, **bars))
    (clip,) = analyse(path)["clips"]
    for side in ("top", "bottom", "left", "right"):
        assert abs(clip[f"border_{side}"] - bars.get(side, 0.0)) < 0.02, (side, clip)


NO_BARS = [
    "opencv-for-python/faces.mp4",
    "sam2/05_default_juggle.mp4",
    "sam2/bedroom.mp4",
    "OpenCVTutorial/vtest.avi",
    "sample-videos/bottle-detection.mp4",
    "moviepy/video_with_failing_audio.mp4",  # fades to black
    "media-samples/sample.mov",  # dark surface
    "mediaelement-files/echo-hereweare.webm",  # dark background
]


@needs_shared
@pytest.mark.parametrize("name", NO_BARS)
def test_clips_without_bars_measure_under_one_percent(name):
    clips = analyse(VIDEOS / name)["clips"]
    assert clips
    for clip in clips:
        if clip["brightness"] < 16:
            continue  # a black card with a word on it (sample.mov's credits): no picture to bound
        for side in ("top", "bottom", "left", "right"):
            assert clip[f"border_{side}"] < 0.01, (name, side, clip[f"border_{side}"])


@needs_shared
def test_letterboxed_sample_is_detected():
    config = CurateConfig.model_validate(
        {"analyze": {"clips": {"min_duration_s": 1.5}}, "probe": {"min_short_side": 100}}
    )
    (clip,) = analyse(VIDEOS / "moviepy/example3.mp4", config)["clips"]
    assert clip["border_top"] == pytest.approx(58 / 480, abs=0.02)
    assert clip["border_bottom"] == pytest.approx(58 / 480, abs=0.02)
    assert clip["border_left"] < 0.01 and clip["border_right"] < 0.01


def test_blank_frames_are_not_bars():
    profiles = np.zeros((5, 2, 100), np.float32)
    assert bar_size(profiles) == (0.0, 0.0)


@needs_shared
def test_border_gate_and_crop_on_export(tmp_path):
    image = real_frames(VIDEOS)[2]
    frames = camera_motion_frames(image, "pan_right", 1.0, n=110, size=(360, 640))
    path = write_video(tmp_path / "lb.mp4", with_bars(frames, top=0.125, bottom=0.125))
    config = CurateConfig.model_validate({"tiers": [{"name": "t", "gates": {"max_border": 0.02}}]})
    out = analyse(path, config)
    (clip,) = out["clips"]
    from curate import schema

    result = assign_tiers(schema.from_rows([clip], contract.ANALYSIS), config.tiers)
    assert [r["reason"] for r in result.rejects] == ["border"]
    job = {
        "clip_id": clip["clip_id"],
        "export_key": "crop",
        "start_s": clip["start_s"],
        "end_s": clip["end_s"],
        "short_side": None,
        "fps": None,
        "crop": [clip["border_top"], clip["border_bottom"], 0.0, 0.0],
    }
    (row,) = ExportStage.from_config(config, output=str(tmp_path)).export_source(
        {"source": str(path), "jobs": [job]}
    )
    with av.open(str(tmp_path / row["clip_path"])) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="gray")
    assert frame.shape[0] == pytest.approx(360 * 0.75, abs=4)
    assert frame[:3].mean() > 20 and frame[-3:].mean() > 20  # no black rows left

"""Shot boundaries, sharpness, motion and clip windows on real and synthetic footage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import GROUNDTRUTH, VIDEOS, needs_shared

from curate.config.analyze import ClipsConfig
from curate.config.sections import CurateConfig
from curate.media.video import probe
from curate.signals.shots import Shots
from scripts.common.synth import (
    blurred,
    pan_frames,
    shots_video,
    still_frames,
    textured_image,
    write_video,
)
from stages.analyze import AnalyzeStage, FrameSeries, decode_series, plan_windows


def series_of(path, config: CurateConfig | None = None) -> FrameSeries:
    config = config or CurateConfig()
    info = probe(str(path), max_pixels=config.probe.max_pixels)
    return decode_series(str(path), info, config.analyze)


def shot_starts(path, config=None):
    return series_of(path, config)["shots"].cuts


GROUND_TRUTH = json.loads((GROUNDTRUTH / "shots.json").read_text()) if GROUNDTRUTH.exists() else {}
FRAME_TRUTH = {k: v for k, v in GROUND_TRUTH.items() if isinstance(v, dict) and "cuts" in v}


KNOWN_DISAGREEMENTS = {
    "PySceneDetect/counter.mp4": "TransNetV2 calls the counter's changes of background colour "
    "cuts (so do PySceneDetect's adaptive and histogram detectors); the shared truth does not",
}


@needs_shared
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DISAGREEMENTS[n]))
        if n in KNOWN_DISAGREEMENTS
        else n
        for n in sorted(FRAME_TRUTH)
    ],
)
def test_real_cuts_within_one_frame(name):
    found = shot_starts(VIDEOS / name)
    expected = FRAME_TRUTH[name]["cuts"]
    assert len(found) == len(expected), (found, expected)
    for got, want in zip(found, expected):
        assert abs(got - want) <= 1, (found, expected)


@needs_shared
@pytest.mark.parametrize(
    "name", ["face_recognition/short_hamilton_clip.mp4", "PySceneDetect/issue-195-aspect-ratio.mp4"]
)
def test_adaptive_detector_finds_every_real_cut(name):
    config = CurateConfig.model_validate({"analyze": {"shots": {"detector": "adaptive"}}})
    found = shot_starts(VIDEOS / name, config)
    for want in FRAME_TRUTH[name]["cuts"]:
        assert any(abs(got - want) <= 1 for got in found), (found, want)


@needs_shared
def test_focus_pull_is_not_a_cut():
    found = shot_starts(VIDEOS / "PySceneDetect/issue-195-aspect-ratio.mp4")
    assert all(abs(c - 463) > 1 for c in found)


@needs_shared
def test_variable_frame_rate_cuts_by_timestamp():
    truth = GROUND_TRUTH["PySceneDetect/goldeneye-vfr-drop3.mp4"]["cut_times_s"]
    series = series_of(VIDEOS / "PySceneDetect/goldeneye-vfr-drop3.mp4")
    found = [series.times[c] for c in series["shots"].cuts]
    frame = np.median(np.diff(series.times))
    assert len(found) == len(truth)
    for got, want in zip(found, truth):
        assert abs(got - want) <= frame + 1e-3, (found, truth)


@needs_shared
def test_avi_with_reordered_timestamps_gets_monotonic_times():
    series = series_of(VIDEOS / "OpenCVTutorial/vtest.avi")
    steps = np.diff(series.times)
    assert np.allclose(steps, 0.1, atol=1e-6)
    assert series["flow"].magnitude.max() < 1.0


def test_synthetic_cuts_exact(tmp_path):
    cuts = shots_video(tmp_path / "shots.mp4", [50, 70, 40, 90])
    found = shot_starts(tmp_path / "shots.mp4")
    assert len(found) == len(cuts)
    assert all(abs(a - b) <= 1 for a, b in zip(found, cuts)), (found, cuts)


def test_sharpness_ranks_blur(tmp_path):
    image = textured_image(3)
    scores = []
    for sigma in (0, 2, 5):
        path = write_video(tmp_path / f"s{sigma}.mp4", blurred(pan_frames(image, 125, 1.0), sigma))
        scores.append(float(np.median(series_of(path)["sharpness"])))
    assert scores[0] > scores[1] > scores[2], scores
    assert scores[0] > 2 * scores[2]


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_motion_ranks_still_slow_fast(tmp_path, method):
    config = CurateConfig.model_validate({"analyze": {"flow": {"method": method}}})
    image = textured_image(4)
    clips = {
        "still": still_frames(image, 150),
        "slow": pan_frames(image, 150, 1.0),
        "fast": pan_frames(image, 150, 8.0),
    }
    motion = {}
    for name, frames in clips.items():
        path = write_video(tmp_path / f"{name}.mp4", frames)
        stage = AnalyzeStage.from_config(config)
        row = stage.analyze_one({**_probed(path), "source_index": 0})["clips"][0]
        motion[name] = row["motion_score"]
    assert motion["still"] < motion["slow"] < motion["fast"], motion
    assert motion["still"] < 0.1 * motion["slow"]
    # 8 px/frame at 25 fps over a 640x360 frame: 200 px/s / 734 px diagonal.
    assert motion["fast"] == pytest.approx(200 / np.hypot(640, 360), rel=0.3)


def _probed(path):
    from stages.probe import ProbeStage

    return ProbeStage.from_config(CurateConfig()).probe_one(str(path), 0)


def _series(times, sharp, cuts=()):
    """``plan_windows``' view of a decode pass: times, end time, shots and sharpness."""
    times = np.asarray(times, dtype=float)
    spans = Shots.from_cuts(list(cuts), len(times)).spans
    return times, times[-1] + (times[1] - times[0]), spans, np.asarray(sharp, np.float32)


def test_windows_cut_long_shots_and_reject_short_pieces():
    times = np.arange(0, 34.5, 0.1)  # one 34.5 s shot: 16 + 16 + a 2.5 s remainder
    series = _series(times, np.ones(len(times)))
    clips, short = plan_windows(*series, ClipsConfig(lead_in_s=0))
    bounds = np.append(times, 34.5)
    assert [round(bounds[w.end] - times[w.start], 3) for w in clips] == [16.0, 16.0]
    assert [(w.start, w.end) for w in short] == [(320, 345)]


def test_windows_start_at_sharpest_frame_of_lead_in():
    fps = 10
    times = np.arange(0, 8.0, 1 / fps)
    sharp = np.ones(len(times))
    sharp[7] = 50.0  # 0.7 s in: inside the 1 s lead-in
    sharp[30] = 99.0  # 3 s in: outside it
    clips, short = plan_windows(*_series(times, sharp), ClipsConfig(lead_in_s=1.0))
    assert [(w.start, w.shift) for w in clips] == [(7, 7)]
    assert not short


def test_windows_never_shift_below_minimum_duration():
    times = np.arange(0, 4.2, 0.1)
    sharp = np.ones(len(times))
    sharp[9] = 50.0  # starting here would leave 3.3 s
    clips, _ = plan_windows(*_series(times, sharp), ClipsConfig(lead_in_s=1.0))
    assert clips and 4.2 - times[clips[0].start] >= 4.0 - 1e-9


def test_short_shots_between_cuts_are_rejected():
    times = np.arange(0, 10.0, 0.1)
    clips, short = plan_windows(*_series(times, np.ones(100), cuts=[30]), ClipsConfig())
    assert [(w.shot_index, w.start) for w in short] == [(0, 0)]
    assert [(w.shot_index, w.start, w.end) for w in clips] == [(1, 30, 100)]


def test_truncated_media_data_keeps_the_decodable_part(tmp_path):
    """Header intact, media data cut: the decoded part is analysed, the run does not fail."""
    path = write_video(tmp_path / "full.mp4", pan_frames(textured_image(5), 250, 1.0))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    probed = _probed(cut)
    assert probed["ok"]
    out = AnalyzeStage.from_config(CurateConfig()).analyze_one({**probed, "source_index": 0})
    assert 0 < out["frames"] < 250
    assert out["clips"] or out["rejects"]


def test_shot_detector_scores_equal_pyscenedetects():
    """The OpenCV frame distance gives PySceneDetect's own frame scores."""
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    from curate.signals.shots import FastAdaptiveDetector, FastContentDetector

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (128, 228, 3), dtype=np.uint8) for _ in range(4)]
    for ours, theirs in (
        (FastContentDetector(), ContentDetector()),
        (FastContentDetector(luma_only=True), ContentDetector(luma_only=True)),
        (FastAdaptiveDetector(), AdaptiveDetector()),
    ):
        for i, frame in enumerate(frames):
            assert ours._calculate_frame_score(i, frame) == pytest.approx(
                theirs._calculate_frame_score(i, frame), rel=1e-12
            )

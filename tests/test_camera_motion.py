"""Camera motion from the background: the robust fit, the classifier on synthetic moves and
composites with moving objects, real static and hand-held footage, and subject motion."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import ROOT, VIDEOS, needs_shared

from curate.config.sections import CurateConfig
from curate.media.video import probe
from curate.signals import camera_motion
from curate.signals.flow import fit_global_motion
from scripts.common.synth import (
    CAMERA_CLASSES,
    camera_motion_frames,
    movers,
    real_frames,
    write_video,
)
from stages.analyze import analyze_source

TRUTH = json.loads((ROOT / "scripts/truth/camera_motion.json").read_text())
SHORT_CLIPS = CurateConfig.model_validate({"analyze": {"clips": {"min_duration_s": 2.0}}})


def clips(path) -> list[dict]:
    info = probe(str(path), max_pixels=SHORT_CLIPS.probe.max_pixels)
    return analyze_source(str(path), info, SHORT_CLIPS.analyze)["clips"]


def similarity_field(h: int, w: int, tx: float, ty: float, s: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs - (w - 1) / 2, ys - (h - 1) / 2
    return np.dstack([tx + s * x - r * y, ty + r * x + s * y]).astype(np.float32)


def test_global_motion_fit_recovers_a_known_field():
    h, w = 90, 160
    tx, ty, s, r = 2.0, -1.0, 0.01, 0.02
    m = fit_global_motion(similarity_field(h, w, tx, ty, s, r), dt=0.5)
    diag = np.hypot(h, w)
    assert abs(m.tx - tx / diag / 0.5) < 1e-3
    assert abs(m.ty - ty / diag / 0.5) < 1e-3
    assert abs(m.scale - s / 0.5) < 1e-3 and abs(m.rotation - r / 0.5) < 1e-3
    assert m.residual < 1e-3 and m.support == 1.0 and m.subject < 1e-6


def test_a_large_moving_object_does_not_pull_the_camera_fit():
    h, w = 128, 228
    flow = similarity_field(h, w, 0.0, 0.0, 0.0, 0.0)
    flow[20:100, 30:110] = (3.0, 1.0)  # a person walking through a third of the picture
    m = fit_global_motion(flow, dt=1 / 30)
    assert abs(m.tx) < 1e-6 and abs(m.ty) < 1e-6 and abs(m.scale) < 1e-6
    moving = 80 * 80 / (h * w)
    assert abs(m.support - (1 - moving)) < 0.01
    # What moves relative to the background is measured, averaged over the frame.
    assert abs(m.subject - moving * np.hypot(3, 1) / np.hypot(h, w) * 30) < 1e-3


def test_no_samples_gives_no_label():
    assert camera_motion.classify(np.zeros((0, 8))) == (None, None)


def test_every_label_has_a_phrase_and_a_shot_type():
    from curate.caption.prompts import CAMERA_PHRASES
    from stages.captioners.template import SHOT_TYPES

    assert set(CAMERA_PHRASES) == set(SHOT_TYPES) == set(camera_motion.CAMERA_MOTIONS)


@needs_shared
def test_classifier_on_synthetic_camera_moves_and_moving_objects(tmp_path):
    images = real_frames(VIDEOS)
    assert len(images) >= 5
    results = []
    cases = [(kind, k, ()) for kind in CAMERA_CLASSES for k in range(3)]
    cases += [
        (kind, k, movers(images[(k + 1) % len(images)], 1 + k % 3, seed=k))
        for kind in ("static", "pan_right")
        for k in range(3)
    ]
    for kind, k, objects in cases:
        speed = 1.0 if objects else 0.6 + 0.6 * k  # 0.6x .. 1.8x
        frames = camera_motion_frames(images[k % len(images)], kind, speed, seed=k, objects=objects)
        for clip in clips(write_video(tmp_path / f"{kind}{k}{len(objects)}.mp4", frames)):
            assert 0 <= clip["camera_motion_confidence"] <= 1
            results.append((kind, clip["camera_motion"]))
    accuracy = sum(t == p for t, p in results) / len(results)
    print("accuracy", accuracy, Counter(results))
    assert accuracy >= 0.95


@needs_shared
@pytest.mark.parametrize(
    "name",
    [
        "sample-videos/bottle-detection.mp4",
        "sam2/05_default_juggle.mp4",
        "sample-videos/book.mkv",
        "learning-area/rabbit.webm",
        "co-tracker/paragliding-launch.mp4",
    ],
)
def test_real_footage_gets_its_labelled_camera_motion(name):
    truth = TRUTH[name]["camera"]
    for clip in clips(VIDEOS / name):
        assert clip["camera_motion"] == truth, (clip["start_s"], clip["camera_motion"])


@needs_shared
def test_subject_motion_tells_moving_subjects_from_still_scenes_and_camera_moves(tmp_path):
    images = real_frames(VIDEOS)
    image, other = images[0], images[1]

    def subject(kind: str, objects=()) -> float:
        frames = camera_motion_frames(image, kind, 1.0, n=100, objects=objects)
        (clip,) = clips(write_video(tmp_path / f"{kind}{len(objects)}.mp4", frames))
        return clip["subject_motion"]

    still, pan, tilt = subject("static"), subject("pan_left"), subject("tilt_up")
    people = subject("static", movers(other, 2, seed=1))
    people_in_pan = subject("pan_left", movers(other, 2, seed=1))
    assert max(still, pan, tilt) < 0.01 < 0.02 < min(people, people_in_pan)
    # Real footage: a tripod shot of a juggler and of a hand moving bottles.
    juggler = clips(VIDEOS / "sam2/05_default_juggle.mp4")[0]
    assert juggler["camera_motion"] == "static" and juggler["subject_motion"] > 0.005
    bottles = clips(VIDEOS / "sample-videos/bottle-detection.mp4")
    assert all(c["subject_motion"] > 0.005 for c in bottles)

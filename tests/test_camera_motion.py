"""Camera-motion classifier on real frames warped by a virtual camera with known motion."""

from __future__ import annotations

from collections import Counter

import numpy as np
from conftest import VIDEOS, needs_shared
from synth import CAMERA_CLASSES, camera_motion_frames, real_frames, write_video

from curate.config import CurateConfig
from curate.signals import camera_motion
from curate.signals.flow import fit_global_motion
from curate.video import probe
from stages.analyze import decode_series


def test_global_motion_fit_recovers_a_known_field():
    h, w = 90, 160
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs - (w - 1) / 2, ys - (h - 1) / 2
    tx, ty, s, r = 2.0, -1.0, 0.01, 0.02
    flow = np.dstack([tx + s * x - r * y, ty + r * x + s * y]).astype(np.float32)
    m = fit_global_motion(flow, dt=0.5)
    diag = np.hypot(h, w)
    assert abs(m.tx - tx / diag / 0.5) < 1e-4
    assert abs(m.ty - ty / diag / 0.5) < 1e-4
    assert abs(m.scale - s / 0.5) < 1e-4 and abs(m.rotation - r / 0.5) < 1e-4
    assert m.residual < 1e-4


def test_no_samples_gives_no_label():
    assert camera_motion.classify(np.zeros((0, 5))) == (None, None)


@needs_shared
def test_classifier_on_synthetic_camera_moves(tmp_path, capsys):
    config = CurateConfig()
    images = real_frames(VIDEOS)
    assert len(images) >= 5
    results = []
    for kind in CAMERA_CLASSES:
        for k in range(5):
            speed = 0.6 + 0.3 * k  # 0.6x .. 1.8x
            path = write_video(
                tmp_path / f"{kind}{k}.mp4",
                camera_motion_frames(images[k % len(images)], kind, speed, seed=k),
            )
            series = decode_series(str(path), probe(str(path), max_pixels=1 << 40), config.analyze)
            label, confidence = camera_motion.classify(series["flow"].motion)
            assert 0 <= confidence <= 1
            results.append((kind, label))
    accuracy = sum(t == p for t, p in results) / len(results)
    per_class = {c: sum(p == c for t, p in results if t == c) / 5 for c in CAMERA_CLASSES}
    print("accuracy", accuracy, per_class, Counter(results))
    assert accuracy >= 0.9
    assert min(per_class.values()) >= 0.8, per_class

"""Offline technical-quality score: ranks degraded copies of real frames below the original."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import VIDEOS, needs_shared
from synth import real_frames

from curate.signals import technical_quality


@needs_shared
def test_degradations_lower_the_score():
    for image in real_frames(VIDEOS)[:4]:
        bgr = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (398, 224))
        original = technical_quality(bgr)
        rng = np.random.default_rng(0)
        degraded = {
            "blurred": cv2.GaussianBlur(bgr, (0, 0), 3),
            "dark": (bgr * 0.15).astype(np.uint8),
            "washed out": (bgr * 0.3 + 170).astype(np.uint8),
            "noisy": np.clip(bgr + rng.normal(0, 25, bgr.shape), 0, 255).astype(np.uint8),
            "grey": cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
        }
        for name, worse in degraded.items():
            assert technical_quality(worse) < original, name
        assert 0 <= original <= 10


def test_flat_frame_scores_low():
    assert technical_quality(np.full((224, 398, 3), 128, np.uint8)) < 4

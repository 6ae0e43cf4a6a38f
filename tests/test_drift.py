"""The picture's drift between two frames (``curate/signals/drift.py``), on frames moved by a
known similarity, so the truth is exact."""

from __future__ import annotations

import cv2
import numpy as np

from curate.signals.drift import DriftFields, fit_similarity
from scripts.common.synth import textured_image

SIZE = (128, 228)
"""Height and width of the frames the watermark signal judges."""


def moved(picture: np.ndarray, zoom: float, turn_deg: float, shift: tuple[float, float]):
    """``picture`` zoomed and turned about its centre, then shifted: and the true drift field
    ``(m, t)`` at every pixel ``p``: ``m @ p + t``."""
    h, w = picture.shape
    a = cv2.getRotationMatrix2D((w / 2, h / 2), turn_deg, zoom)
    a[:, 2] += shift
    frame = cv2.warpAffine(picture, a, (w, h), borderMode=cv2.BORDER_REFLECT)
    return frame, (a[:, :2] - np.eye(2), a[:, 2])


def frames_and_truth(zoom: float, turn_deg: float, shift: tuple[float, float]):
    picture = cv2.cvtColor(textured_image(3, *SIZE), cv2.COLOR_RGB2GRAY).astype(np.float32)
    frame, truth = moved(picture, zoom, turn_deg, shift)
    return np.stack([picture, frame]), truth


def test_a_similarity_is_fitted_through_an_outlier():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 200, (9, 2))
    m = np.array([[0.02, -0.01], [0.01, 0.02]])
    t = np.array([3.0, -1.5])
    shifts = points @ m.T + t
    shifts[4] = (0.0, 0.0)  # a tile a mark holds still
    fitted_m, fitted_t = fit_similarity(points, shifts)
    assert np.allclose(fitted_m, m, atol=1e-6) and np.allclose(fitted_t, t, atol=1e-4)


def test_too_few_agreeing_tiles_fit_nothing():
    points = np.array([[0, 0], [100, 0], [0, 100], [100, 100], [50, 50]], float)
    shifts = np.array([[5, 0], [-5, 3], [0, -7], [6, 6], [-4, 2]], float)  # no one motion
    assert fit_similarity(points, shifts) is None


def test_the_drift_of_a_pan_a_zoom_and_a_roll_is_measured_across_the_frame():
    ys, xs = np.mgrid[10 : SIZE[0] - 10 : 20, 10 : SIZE[1] - 10 : 20]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    for zoom, turn, shift in ((1.0, 0.0, (3.0, -2.0)), (1.03, 0.0, (0.0, 0.0)), (1.0, 1.5, (1, 0))):
        frames, (m, t) = frames_and_truth(zoom, turn, shift)
        fitted = DriftFields(frames).between(0, 1)
        assert fitted is not None
        error = (pixels @ fitted[0].T + fitted[1]) - (pixels @ m.T + t)
        assert np.abs(error).max() < 0.75, (zoom, turn, shift)


def test_unrelated_frames_show_no_drift():
    a = cv2.cvtColor(textured_image(3, *SIZE), cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(textured_image(4, *SIZE), cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert DriftFields(np.stack([a, b])).between(0, 1) is None


def test_the_frames_are_left_as_they_were():
    """OpenCV's phase correlation windows its inputs in place: the fields must not."""
    frames, _ = frames_and_truth(1.0, 0.0, (2.0, 1.0))
    before = frames.copy()
    DriftFields(frames).between(0, 1)
    assert np.array_equal(frames, before)

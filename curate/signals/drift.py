"""How the picture drifted between two frames of a window: the camera's small moves (pan, tilt,
zoom, roll, a hand's shake) as a similarity transform, fitted to the shifts phase correlation
measures in a grid of tiles.

Each tile's shift is a sample of the motion field at its centre. A tile a mark or a passer-by
dominates measures their motion, not the camera's, and is dropped from the fit as an outlier;
so the field at a mark's place is the picture's drift under it, not the mark's own stillness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

TILES = 3
"""Tiles across the frame's width and height whose shifts the field is fitted to."""

TILE_SHARE = 0.5
"""Side of a tile as a share of the frame's: tiles overlap by half. Phase correlation
underestimates a shift that is a sizeable share of the window (the window holds still while
the picture moves under it): a third of the frame's height misses a third of a 2-px shift."""

MIN_LOCK = 0.05
"""Phase correlation's peak below which a tile's two crops do not show one picture shifted (a
cut, or content that changed there): it measures nothing."""

MIN_TILES = 4
"""Tiles that must agree with the fit (:data:`MAX_RESIDUAL`): fewer, and the frames show no
one drifting picture."""

MAX_RESIDUAL = 1.5
"""Distance, pixels, between a tile's shift and the fitted field past which the tile is an
outlier: something moving on its own, or a mark holding still."""

Drift = tuple[np.ndarray, np.ndarray]
"""``(m, t)``: the drift at pixel ``p = (x, y)`` is ``m @ p + t`` (pixels)."""


def fit_similarity(points: np.ndarray, shifts: np.ndarray) -> Drift | None:
    """The similarity field (shift, small zoom and turn) that fits ``shifts`` measured at
    ``points`` (``(k, 2)`` each, x and y), robustly (RANSAC, as ``flow.fit_global_motion``
    fits the camera's motion): tiles off by more than :data:`MAX_RESIDUAL` are left out; None
    where fewer than :data:`MIN_TILES` agree with it."""
    if len(points) < MIN_TILES:
        return None
    src = points.astype(np.float32)
    fitted, inliers = cv2.estimateAffinePartial2D(
        src, src + shifts.astype(np.float32), method=cv2.RANSAC, ransacReprojThreshold=MAX_RESIDUAL
    )
    if fitted is None or inliers.sum() < MIN_TILES:
        return None
    return fitted[:, :2] - np.eye(2), fitted[:, 2]


@dataclass
class DriftFields:
    """The drift between pairs of ``frames`` (``(n, h, w)`` float32), each measured once, when
    first asked for."""

    frames: np.ndarray
    _fields: dict[tuple[int, int], Drift | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _, h, w = self.frames.shape
        th, tw = int(h * TILE_SHARE), int(w * TILE_SHARE)
        ys = np.linspace(0, h - th, TILES).astype(int)
        xs = np.linspace(0, w - tw, TILES).astype(int)
        self._tiles = [(slice(y, y + th), slice(x, x + tw)) for y in ys for x in xs]
        self._windows = [
            cv2.createHanningWindow((c.stop - c.start, r.stop - r.start), cv2.CV_32F)
            for r, c in self._tiles
        ]
        self._centres = np.array(
            [((c.start + c.stop) / 2, (r.start + r.stop) / 2) for r, c in self._tiles]
        )

    def between(self, i: int, j: int) -> Drift | None:
        """The picture's drift from frame ``i`` to frame ``j``; None where they show no one
        drifting picture."""
        if (i, j) not in self._fields:
            points, shifts = [], []
            for tile, window, centre in zip(self._tiles, self._windows, self._centres):
                # Copies: OpenCV windows its inputs in place.
                a, b = self.frames[i][tile].copy(), self.frames[j][tile].copy()
                shift, peak = cv2.phaseCorrelate(a, b, window)
                if peak >= MIN_LOCK:
                    points.append(centre)
                    shifts.append(shift)
            self._fields[(i, j)] = fit_similarity(np.array(points), np.array(shifts))
        return self._fields[(i, j)]

"""Optical flow between sampled pairs of adjacent frames: how fast the picture moves
(``motion_score``) and the global motion the camera-motion classifier labels.

Pairs of adjacent frames keep displacements small, which low-resolution flow measures well;
the magnitude is divided by the pair's time gap and by the frame diagonal, so the score is in
diagonals per second and compares across frame rates and resolutions.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from functools import lru_cache

import cv2
import numpy as np
import pyarrow as pa

from curate.config import FlowConfig
from curate.gates import Gate, at_least, at_most
from curate.imaging import downscale
from curate.signals import camera_motion
from curate.signals.base import ClipWindow, FrameSignal
from curate.video import DecodedFrame


@dataclass(frozen=True)
class GlobalMotion:
    """Similarity motion of the image content, fitted to a flow field. Image axes: x right,
    y down; lengths in frame diagonals, rates per second."""

    tx: float
    """Content translation to the right."""
    ty: float
    """Content translation downwards."""
    scale: float
    """Relative growth of the content about the centre (> 0: expands)."""
    rotation: float
    """Radians; > 0 turns the content clockwise on screen (y points down)."""
    residual: float
    """RMS of the flow the model does not explain (moving objects, parallax, noise)."""


@lru_cache(maxsize=8)
def _grid(h: int, w: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred sample coordinates of a flow grid, in frame diagonals."""
    diag = float(np.hypot(h, w))
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step].astype(np.float32)
    return (xs.ravel() - (w - 1) / 2) / diag, (ys.ravel() - (h - 1) / 2) / diag


def fit_global_motion(flow: np.ndarray, dt: float, step: int = 4) -> GlobalMotion:
    """Least-squares fit of ``u = tx + s*x - r*y, v = ty + r*x + s*y`` on a grid of the flow,
    refitted once without the worst quarter of points (moving foreground)."""
    h, w = flow.shape[:2]
    diag = float(np.hypot(h, w))
    x, y = _grid(h, w, step)
    sampled = flow[step // 2 :: step, step // 2 :: step]
    u = sampled[..., 0].ravel() / diag
    v = sampled[..., 1].ravel() / diag
    keep = slice(None)
    for _ in range(2):
        xk, yk, uk, vk = x[keep], y[keep], u[keep], v[keep]
        xm, ym = float(xk.mean()), float(yk.mean())
        xc, yc = xk - xm, yk - ym
        norm = float(xc @ xc + yc @ yc) or 1.0
        s = float(uk @ xc + vk @ yc) / norm
        r = float(vk @ xc - uk @ yc) / norm
        tx = float(uk.mean()) - s * xm + r * ym
        ty = float(vk.mean()) - r * xm - s * ym
        err = np.hypot(u - (tx + s * x - r * y), v - (ty + r * x + s * y))
        keep = err <= np.partition(err, (3 * err.size) // 4)[(3 * err.size) // 4]
    residual = float(np.sqrt((err[keep] ** 2).mean()))
    return GlobalMotion(tx / dt, ty / dt, s / dt, r / dt, residual / dt)


@dataclass
class FlowSeries:
    index: np.ndarray
    """First frame index of each flow pair (the pair is ``index, index + 1``)."""
    magnitude: np.ndarray
    """Flow magnitude of each pair, frame diagonals per second."""
    motion: np.ndarray
    """Global motion of each pair: rows of ``(tx, ty, scale, rotation, residual)``."""


class FlowSignal(FrameSignal):
    """Dense optical flow between a frame sampled at ``fps`` and the next decoded frame."""

    name = "flow"
    fields = (
        pa.field("motion_score", pa.float32()),
        pa.field("motion_p90", pa.float32()),
        pa.field("camera_motion", pa.string()),
        pa.field("camera_motion_confidence", pa.float32()),
    )
    gates = (
        Gate("min_motion", "motion_score", "static", ("motion_score",), at_least),
        Gate("max_motion", "motion_score", "excessive_motion", ("motion_score",), at_most),
    )

    def __init__(self, cfg: FlowConfig) -> None:
        self.cfg = cfg
        self.index: list[int] = []
        self.magnitude: list[float] = []
        self.motion: list[GlobalMotion] = []
        self._next_t = 0.0
        self._prev: np.ndarray | None = None
        self._prev_index = -1
        self._prev_t = 0.0
        self._engine = (
            cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
            if cfg.method == "dis"
            else None
        )

    def wants(self, frame: DecodedFrame) -> bool:
        return self._prev is not None or frame.time >= self._next_t

    def update(self, frame: DecodedFrame) -> None:
        t = frame.time
        small = downscale(frame.gray, self.cfg.short_side)
        if self._prev is not None and frame.index == self._prev_index + 1:
            dt = t - self._prev_t
            if dt > 0:
                flow = self._flow(self._prev, small)
                # OpenCV's magnitude: numpy's sum over a length-2 last axis is ten times slower.
                mag = cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0]
                diag = float(np.hypot(*small.shape[:2]))
                self.index.append(self._prev_index)
                self.magnitude.append(mag / diag / dt)
                self.motion.append(fit_global_motion(flow, dt))
            self._prev = None
        if t >= self._next_t:
            self._prev, self._prev_index, self._prev_t = small, frame.index, t
            self._next_t = t + 1.0 / self.cfg.fps

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._engine is not None:
            return self._engine.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    def finish(self) -> FlowSeries:
        return FlowSeries(
            index=np.asarray(self.index, dtype=np.int64),
            magnitude=np.asarray(self.magnitude, dtype=np.float32),
            motion=np.asarray([astuple(m) for m in self.motion], dtype=np.float32).reshape(-1, 5),
        )

    def clip_values(self, series: FlowSeries, clip: ClipWindow) -> dict:
        # Flow pairs count when both frames lie inside the clip.
        in_clip = (series.index >= clip.start) & (series.index + 1 < clip.end)
        motion = series.magnitude[in_clip]
        camera, confidence = camera_motion.classify(series.motion[in_clip])
        return {
            "motion_score": float(motion.mean()) if motion.size else None,
            "motion_p90": float(np.percentile(motion, 90)) if motion.size else None,
            "camera_motion": camera,
            "camera_motion_confidence": confidence,
        }

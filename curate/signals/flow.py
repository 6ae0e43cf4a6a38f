"""Optical flow between sampled pairs of adjacent frames: how fast the picture moves
(``motion_score``), how much of that is the camera (``camera_speed``, fitted to the background)
and how much is what moves relative to the background (``subject_motion``), and the camera
motion the classifier labels.

Pairs of adjacent frames keep displacements small, which low-resolution flow measures well;
the magnitude is divided by the pair's time gap and by the frame diagonal, so the score is in
diagonals per second and compares across frame rates and resolutions.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.gates import Gate, at_least, at_most, score
from curate.media.imaging import downscale
from curate.media.video import DecodedFrame
from curate.signals import camera_motion
from curate.signals.base import ClipWindow, FrameSignal
from curate.signals.camera_motion import MOTION_FIELDS, GlobalMotion

INLIER_PX = 0.25
"""Flow error (pixels at the flow resolution) within which a point moves with the camera; it
grows with the motion (``INLIER_SHARE`` of the median flow), since flow error does too."""

INLIER_SHARE = 0.15

TEXTURE_SHARE = 0.01
"""Points whose corner strength (smallest structure-tensor eigenvalue) is below this share
of the frame's 95th percentile carry no reliable flow (flat sky, walls, defocus)."""

TEXTURE_FLOOR = 1e-4
"""Absolute corner strength below which a point is flat whatever the rest of the frame is
(a blank wall's noise)."""

MIN_POINTS = 12
"""Textured points below which the camera motion cannot be told from noise."""


@lru_cache(maxsize=8)
def _grid(h: int, w: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates of a flow grid, in pixels from the frame centre."""
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step].astype(np.float32)
    return xs.ravel() - (w - 1) / 2, ys.ravel() - (h - 1) / 2


def fit_global_motion(
    flow: np.ndarray, dt: float, gray: np.ndarray | None = None, step: int = 4
) -> GlobalMotion:
    """The camera motion of a flow field: a similarity ``u = tx + s*x - r*y, v = ty + r*x +
    s*y`` fitted with RANSAC to the textured points of ``gray`` (all points without it), so
    that people, cars and hands moving through the picture do not pull it; the points it
    leaves out are what moves relative to the background."""
    h, w = flow.shape[:2]
    diag = float(np.hypot(h, w))
    x, y = _grid(h, w, step)
    sampled = flow[step // 2 :: step, step // 2 :: step].reshape(-1, 2)
    if gray is not None:
        corner = cv2.cornerMinEigenVal(gray, 5, 3)[step // 2 :: step, step // 2 :: step].ravel()
        textured = corner >= max(TEXTURE_FLOOR, TEXTURE_SHARE * np.percentile(corner, 95))
    else:
        textured = np.ones(len(x), bool)
    src = np.column_stack([x, y])
    if textured.sum() < MIN_POINTS:
        # A blank frame: nothing to tell the camera's motion by.
        return GlobalMotion(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    pts, moved = src[textured], src[textured] + sampled[textured]
    magnitude = np.hypot(sampled[textured, 0], sampled[textured, 1])
    threshold = max(INLIER_PX, INLIER_SHARE * float(np.median(magnitude)))
    m, inliers = cv2.estimateAffinePartial2D(
        pts, moved, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=500
    )
    if m is None:
        m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        inliers = np.zeros((len(pts), 1), np.uint8)
    a, b = float(m[0, 0]), float(m[1, 0])
    model = src @ m[:, :2].T + m[:, 2] - src
    error = np.hypot(*(sampled - model).T)[textured]
    inlier = inliers.ravel().astype(bool)
    residual = float(np.sqrt((error[inlier] ** 2).mean())) if inlier.any() else 0.0
    subject = float(error[~inlier].sum() / len(error))
    speed = float(np.hypot(model[:, 0], model[:, 1]).mean())
    return GlobalMotion(
        tx=float(m[0, 2]) / diag / dt,
        ty=float(m[1, 2]) / diag / dt,
        scale=(float(np.hypot(a, b)) - 1.0) / dt,
        rotation=float(np.arctan2(b, a)) / dt,
        residual=residual / diag / dt,
        support=float(inlier.mean()),
        subject=subject / diag / dt,
        speed=speed / diag / dt,
    )


@dataclass
class FlowSeries:
    index: np.ndarray
    """First frame index of each flow pair (the pair is ``index, index + 1``)."""
    magnitude: np.ndarray
    """Flow magnitude of each pair, frame diagonals per second."""
    motion: np.ndarray
    """Global motion of each pair: rows of :class:`GlobalMotion`'s fields, in order."""


class FlowConfig(SignalConfig):
    method: Literal["dis", "farneback"] = "dis"
    fps: float = Field(4.0, gt=0, description="Flow samples per second of video.")
    short_side: int = Field(128, ge=16, description="Flow is computed at this short side.")


class FlowSignal(FrameSignal):
    """Dense optical flow between a frame sampled at ``fps`` and the next decoded frame."""

    name = "flow"
    media = ("video",)
    fields = (
        pa.field("motion_score", pa.float32()),
        pa.field("motion_p90", pa.float32()),
        pa.field("camera_speed", pa.float32()),
        pa.field("subject_motion", pa.float32()),
        pa.field("camera_motion", pa.string()),
        pa.field("camera_motion_confidence", pa.float32()),
    )
    config = FlowConfig
    gates = (
        Gate(
            "min_motion",
            "motion_score",
            "static",
            ("motion_score",),
            at_least,
            threshold=score(ge=0),
            description="Lowest mean flow magnitude (diagonals/s).",
        ),
        Gate(
            "max_motion",
            "motion_score",
            "excessive_motion",
            ("motion_score",),
            at_most,
            threshold=score(gt=0),
            description="Highest mean flow magnitude (diagonals/s).",
        ),
        Gate(
            "min_subject_motion",
            "subject_motion",
            "no_subject_motion",
            ("subject_motion",),
            at_least,
            threshold=score(ge=0),
            description="Lowest motion relative to the background (diagonals/s): drops clips "
            "where nothing moves, even when the camera does (a pan over an empty landscape).",
        ),
        Gate(
            "max_subject_motion",
            "subject_motion",
            "excessive_subject_motion",
            ("subject_motion",),
            at_most,
            threshold=score(gt=0),
            description="Highest motion relative to the background (diagonals/s).",
        ),
        Gate(
            "max_camera_speed",
            "camera_speed",
            "excessive_camera_motion",
            ("camera_speed",),
            at_most,
            threshold=score(gt=0),
            description="Fastest camera motion (diagonals/s): drops whip pans and wild shake.",
        ),
    )
    scores = (
        "motion_score",
        "motion_p90",
        "camera_speed",
        "subject_motion",
        "camera_motion_confidence",
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
                self.motion.append(fit_global_motion(flow, dt, self._prev))
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
            motion=np.asarray([astuple(m) for m in self.motion], dtype=np.float32).reshape(
                -1, len(MOTION_FIELDS)
            ),
        )

    def clip_values(self, series: FlowSeries, clip: ClipWindow) -> dict:
        # Flow pairs count when both frames lie inside the clip.
        in_clip = (series.index >= clip.start) & (series.index + 1 < clip.end)
        motion = series.magnitude[in_clip]
        fits = series.motion[in_clip]
        camera, confidence = camera_motion.classify(fits)
        speed, subject = (fits[:, MOTION_FIELDS.index(k)] for k in ("speed", "subject"))
        return {
            "motion_score": float(motion.mean()) if motion.size else None,
            "motion_p90": float(np.percentile(motion, 90)) if motion.size else None,
            "camera_speed": float(speed.mean()) if speed.size else None,
            "subject_motion": float(subject.mean()) if subject.size else None,
            "camera_motion": camera,
            "camera_motion_confidence": confidence,
        }

"""Per-frame signals tapped from the single decode pass.

Signals are fed frames the decoder already scaled (gray at the analysis short side, colour at
half of it) and keep only what they need: a float per frame, or a float per flow sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from scenedetect.detectors import AdaptiveDetector, ContentDetector, content_detector

from curate.config import FlowConfig, ShotsConfig


def _mean_pixel_distance(left: np.ndarray, right: np.ndarray) -> float:
    """PySceneDetect's ``_mean_pixel_distance`` (mean absolute difference of two 8-bit
    planes) as one OpenCV pass: the same sum, without numpy's int32 copies of both planes,
    which cost more than the rest of the shot detector."""
    return cv2.norm(left, right, cv2.NORM_L1) / float(left.shape[0] * left.shape[1])


# ContentDetector and AdaptiveDetector score every frame through this module-level helper.
content_detector._mean_pixel_distance = _mean_pixel_distance


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the Laplacian: high for crisp edges, low for blur (HunyuanVideo's measure)."""
    # 16-bit output holds every 3x3 Laplacian of 8-bit input; meanStdDev is one fused pass.
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S))
    return float(std[0, 0]) ** 2


def downscale(image: np.ndarray, short_side: int) -> np.ndarray:
    """Downscale to about ``short_side`` (never upscales).

    Whole-number factors take OpenCV's fast area-averaging path (the image is cropped by at
    most ``factor - 1`` pixels to make the factor exact); other factors are bilinear, since
    OpenCV's general area resampling costs more than decoding a frame.
    """
    h, w = image.shape[:2]
    factor = min(h, w) / short_side
    if factor <= 1:
        return image
    k = round(factor)
    if abs(factor - k) < 0.1:
        cropped = image[: h - h % k, : w - w % k]
        return cv2.resize(cropped, (w // k, h // k), interpolation=cv2.INTER_AREA)
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def make_shot_detector(cfg: ShotsConfig):
    """Build the configured PySceneDetect detector; frames are fed to it one by one."""
    if cfg.detector == "adaptive":
        a = cfg.adaptive
        return AdaptiveDetector(
            adaptive_threshold=a.adaptive_threshold,
            min_scene_len=a.min_scene_len,
            window_width=a.window_width,
            min_content_val=a.min_content_val,
            luma_only=a.luma_only,
        )
    c = cfg.content
    return ContentDetector(
        threshold=c.threshold, min_scene_len=c.min_scene_len, luma_only=c.luma_only
    )


class ShotSignal:
    """Feeds a PySceneDetect detector frame by frame and collects cut frame indices.

    The detector sees frames at half the analysis size (128 px short side by default: about
    what PySceneDetect's own auto-downscale gives 720p input); cuts are still exact frames.
    """

    def __init__(self, cfg: ShotsConfig) -> None:
        self.detector = make_shot_detector(cfg)
        self.cuts: list[int] = []
        self._last = -1

    def update(self, index: int, bgr: np.ndarray) -> None:
        self.cuts.extend(self.detector.process_frame(index, bgr))
        self._last = index

    def finish(self) -> list[int]:
        if self._last >= 0:
            self.cuts.extend(self.detector.post_process(self._last))
        # A cut at frame 0 is not a boundary between two shots.
        return sorted({c for c in self.cuts if 0 < c <= self._last})


@dataclass
class FlowSample:
    index: int
    """Decoded index of the first frame of the pair; the second is ``index + 1``."""
    magnitude: float
    """Mean flow magnitude in frame diagonals per second."""
    motion: GlobalMotion


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
class FlowSignal:
    """Dense optical flow between a sampled frame and the next decoded frame.

    Pairs of adjacent frames keep displacements small, which low-resolution flow measures
    well; the magnitude is divided by the pair's time gap and by the frame diagonal, so the
    score is in diagonals per second and compares across frame rates and resolutions.
    """

    cfg: FlowConfig
    samples: list[FlowSample] = field(default_factory=list)
    _next_t: float = 0.0
    _prev: np.ndarray | None = None
    _prev_index: int = -1
    _prev_t: float = 0.0
    _engine: object = None

    def __post_init__(self) -> None:
        if self.cfg.method == "dis":
            self._engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)

    def wants(self, t: float) -> bool:
        """Whether the frame at time ``t`` needs to be looked at (cheap, before any resize)."""
        return self._prev is not None or t >= self._next_t

    def update(self, index: int, t: float, gray: np.ndarray) -> None:
        small = downscale(gray, self.cfg.short_side)
        if self._prev is not None and index == self._prev_index + 1:
            dt = t - self._prev_t
            if dt > 0:
                flow = self._flow(self._prev, small)
                # OpenCV's magnitude: numpy's sum over a length-2 last axis is ten times slower.
                mag = cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0]
                diag = float(np.hypot(*small.shape[:2]))
                self.samples.append(
                    FlowSample(self._prev_index, mag / diag / dt, fit_global_motion(flow, dt))
                )
            self._prev = None
        if t >= self._next_t:
            self._prev, self._prev_index, self._prev_t = small, index, t
            self._next_t = t + 1.0 / self.cfg.fps

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._engine is not None:
            return self._engine.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


BAR_STD = 3.0
"""A row or column this uniform (gray-level std at analysis size) may belong to a bar."""

BAR_DRIFT = 4.0
"""A bar's level varies less than this over the clip (bars are static, scenes are not)."""

BAR_LEVEL = 8.0
"""Rows of one bar have levels within this of the outermost row."""

BAR_PAIRING = 0.25
"""Opposite bars may differ by this share of the larger one (encoders round bar sizes)."""

MAX_BARS = 0.8
"""Bars covering more than this much of an axis mean a blank frame, not a border."""


@dataclass
class BorderSignal:
    """Row and column profiles (mean and spread of gray levels) of frames sampled at ``fps``."""

    fps: float
    times: list[float] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    _next_t: float = 0.0

    def wants(self, t: float) -> bool:
        return t >= self._next_t

    def update(self, t: float, gray: np.ndarray) -> None:
        g = gray.astype(np.float32)
        squares = g * g
        for axis, out in ((1, self.rows), (0, self.cols)):
            # One pass each for E[x] and E[x^2]: cheaper than numpy's two-pass std.
            mean = cv2.reduce(g, axis, cv2.REDUCE_AVG).ravel()
            mean_sq = cv2.reduce(squares, axis, cv2.REDUCE_AVG).ravel()
            out.append(np.stack([mean, np.sqrt(np.maximum(mean_sq - mean * mean, 0))]))
        self.times.append(t)
        self._next_t = t + 1.0 / self.fps


def bar_size(profiles: np.ndarray) -> tuple[float, float]:
    """Fractions of the axis covered by static, uniform, paired bars at its start and end.

    ``profiles``: ``(samples, 2, n)`` of per-line mean and std over the clip's samples."""
    if len(profiles) == 0:
        return 0.0, 0.0
    means, stds = profiles[:, 0, :], profiles[:, 1, :]
    uniform = (stds.max(axis=0) < BAR_STD) & (np.ptp(means, axis=0) < BAR_DRIFT)
    level = means.mean(axis=0)
    n = uniform.size

    def run(order: np.ndarray) -> int:
        count = 0
        for i in order:
            if not uniform[i] or abs(level[i] - level[order[0]]) > BAR_LEVEL:
                break
            count += 1
        return count

    start, end = run(np.arange(n)), run(np.arange(n)[::-1])
    if start + end > MAX_BARS * n:
        return 0.0, 0.0
    # Letterbox and pillarbox bars come in matching pairs; a uniform band on one side only
    # is a dark sky, a black title card or a shadow, not a border.
    if abs(start - end) > max(2, BAR_PAIRING * max(start, end)):
        return 0.0, 0.0
    return start / n, end / n


AESTHETIC_WEIGHTS = {
    "exposure": 0.2,
    "contrast": 0.2,
    "colourfulness": 0.15,
    "noise": 0.15,
    "sharpness": 0.3,
}
"""How the technical-quality components add up to the ``aesthetic`` score (0-10)."""

TECHNICAL = "technical"
"""``aesthetic_model`` of clips scored by :func:`technical_quality` (no aesthetic head)."""


def technical_quality(bgr: np.ndarray) -> float:
    """Offline aesthetic proxy, 0-10: good exposure, contrast, colourfulness, little noise and
    crisp detail each add up to their weight.

    - exposure: mean luminance near mid-grey (1 at 0.5, 0 at black or white);
    - contrast: luminance standard deviation, full marks from 0.25;
    - colourfulness: Hasler & Suesstrunk's metric, full marks from 100;
    - noise: Immerkaer's fast noise sigma, 0 marks from sigma 10 (8-bit levels);
    - sharpness: log10 of the Laplacian variance after a 3x3 median (so noise does not pass
      for detail), full marks from 1000.
    """
    gray8 = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    gray = gray8.astype(np.float32)
    lum = gray / 255.0
    b, g, r = (bgr[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    h, w = gray.shape
    sigma = np.abs(cv2.filter2D(gray, -1, kernel))[1:-1, 1:-1].sum()
    sigma *= np.sqrt(np.pi / 2) / (6 * (w - 2) * (h - 2))
    parts = {
        "exposure": 1 - min(1.0, abs(float(lum.mean()) - 0.5) * 2),
        "contrast": min(1.0, float(lum.std()) / 0.25),
        "colourfulness": min(1.0, float(colourfulness) / 100),
        "noise": 1 - min(1.0, float(sigma) / 10),
        "sharpness": min(1.0, np.log10(1 + laplacian_variance(cv2.medianBlur(gray8, 3))) / 3),
    }
    return 10 * sum(AESTHETIC_WEIGHTS[k] * v for k, v in parts.items())

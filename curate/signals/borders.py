"""Borders: static, uniform, paired bars at the frame's edges (letterbox and pillarbox).

Frames sampled at ``analyze.borders.fps`` leave a row profile and a column profile (mean and
spread of gray levels per line); a clip's bars are the lines that stay uniform and unchanged
over all of its samples. Tier gate ``max_border`` rejects bordered clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.gates import Gate, at_most, floats, number
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal

SIDES = ("top", "bottom", "left", "right")

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


def largest_border(t: pa.Table) -> np.ndarray:
    sides = [floats(t, f"border_{side}") for side in SIDES]
    return np.nan_to_num(np.max(sides, axis=0), nan=0.0) if t.num_rows else np.zeros(0)


@dataclass
class BorderSeries:
    times: np.ndarray
    rows: np.ndarray
    """``(samples, 2, height)``: per-row gray mean and std of the sampled frames."""
    cols: np.ndarray
    """``(samples, 2, width)``: the same per column."""


class BordersConfig(SignalConfig):
    moved_keys: ClassVar[dict[str, str]] = {"borders_fps": "fps"}

    fps: float = Field(2.0, gt=0, description="Frames per second profiled for bars.")


class BorderSignal(FrameSignal):
    name = "borders"
    config = BordersConfig
    fields = tuple(pa.field(f"border_{side}", pa.float32()) for side in SIDES)
    gates = (
        Gate(
            "max_border",
            "largest border",
            "border",
            tuple(f"border_{side}" for side in SIDES),
            at_most,
            value=largest_border,
            threshold=number(ge=0, le=1),
            description="Largest bar (fraction of height/width) a clip may have.",
        ),
    )
    scores = tuple(f"border_{side}" for side in SIDES)

    def __init__(self, cfg: BordersConfig) -> None:
        self.fps = cfg.fps
        self.times: list[float] = []
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self._next_t = 0.0

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t

    def update(self, frame: DecodedFrame) -> None:
        g = frame.gray.astype(np.float32)
        squares = g * g
        for axis, out in ((1, self.rows), (0, self.cols)):
            # One pass each for E[x] and E[x^2]: cheaper than numpy's two-pass std.
            mean = cv2.reduce(g, axis, cv2.REDUCE_AVG).ravel()
            mean_sq = cv2.reduce(squares, axis, cv2.REDUCE_AVG).ravel()
            out.append(np.stack([mean, np.sqrt(np.maximum(mean_sq - mean * mean, 0))]))
        self.times.append(frame.time)
        self._next_t = frame.time + 1.0 / self.fps

    def finish(self) -> BorderSeries:
        return BorderSeries(
            np.asarray(self.times),
            np.asarray(self.rows, np.float32),
            np.asarray(self.cols, np.float32),
        )

    def clip_values(self, series: BorderSeries, clip: ClipWindow) -> dict:
        sampled = (series.times >= clip.start_s) & (series.times < clip.end_s)
        top, bottom = bar_size(series.rows[sampled])
        left, right = bar_size(series.cols[sampled])
        return {
            "border_top": top,
            "border_bottom": bottom,
            "border_left": left,
            "border_right": right,
        }

"""Motion pattern: how much a small thumbnail changes from frame to frame.

A clip is ``still`` (nothing changes), a ``slideshow`` (piecewise still with jumps),
``chaotic`` (frames jump all the time) or ``moving`` (anything else: smooth or hand-held
motion). Tier gates ``reject_slideshow`` and ``reject_chaotic`` drop the middle two.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from curate.config import SignalConfig
from curate.gates import Gate, equals, not_flagged
from curate.media.imaging import downscale
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal

CHANGE_FACTOR = 8
"""Consecutive frames are compared on thumbnails this many times smaller than the analysis
frame (about 57×32 at the 256 px default): an integer factor keeps the area resize cheap."""

STILL_CHANGE = 1.0
"""Mean absolute thumbnail difference (gray levels) below which a frame did not change:
sensor noise and compression flicker stay under it."""

JUMP_CHANGE = 12.0
"""Difference above which the picture jumped: no camera move or subject motion changes a
small thumbnail this much in one frame, and a brief movement in a still scene leaves it
unchanged after; a new slide or a violent shake does."""

MAX_TRANSITION_FRAMES = 15
"""Longest run of changing frames between two still pictures that counts as a slide
transition; longer runs are motion in the scene (someone walking through a still shot)."""

SLIDESHOW_STILL_SHARE = 0.6
"""Share of unchanged frames that, with jumps, makes a clip a slideshow."""

SLIDESHOW_JUMPS = 2
"""Jumps a slideshow clip needs: one alone is more likely a flash or a fade."""

CHAOTIC_JUMP_SHARE = 0.2
"""Share of jumping frames that makes a clip's motion chaotic."""

MOTION_PATTERNS = ("still", "slideshow", "chaotic", "moving")
"""``motion_pattern`` values: nothing changes; piecewise still with jumps; frames jump all
the time; anything else (smooth or hand-held motion)."""


@dataclass
class ChangeSeries:
    change: np.ndarray
    """Per frame, how much the thumbnail changed since the previous frame."""
    jump: np.ndarray
    """On a still frame that ends a short run of changing ones, the change since the last
    still frame before that run (what a transition between two still pictures changed)."""


class MotionPatternConfig(SignalConfig):
    """Thumbnail change of every frame: still, slideshow, chaotic or moving (no settings)."""


class MotionPatternSignal(FrameSignal):
    name = "motion_pattern"
    media = ("video",)
    config = MotionPatternConfig
    fields = (pa.field("motion_pattern", pa.string()),)
    gates = (
        Gate(
            "reject_slideshow",
            "motion pattern",
            "slideshow",
            ("motion_pattern",),
            not_flagged,
            value=equals("motion_pattern", "slideshow"),
            flag=True,
            description="Drop piecewise-still clips with jumps.",
        ),
        Gate(
            "reject_chaotic",
            "motion pattern",
            "chaotic_motion",
            ("motion_pattern",),
            not_flagged,
            value=equals("motion_pattern", "chaotic"),
            flag=True,
            description="Drop clips whose frames jump constantly.",
        ),
    )

    def __init__(self, cfg: MotionPatternConfig) -> None:
        self.change: list[float] = []
        self.jump: list[float] = []
        self._previous: np.ndarray | None = None
        self._last_still: np.ndarray | None = None
        self._moving = 0

    def update(self, frame: DecodedFrame) -> None:
        gray = frame.gray
        small = downscale(gray, max(1, min(gray.shape) // CHANGE_FACTOR))
        change = _difference(self._previous, small)
        jump = 0.0
        if change < STILL_CHANGE:
            if self._moving <= MAX_TRANSITION_FRAMES:
                jump = _difference(self._last_still, small)
            self._last_still = small
            self._moving = 0
        else:
            self._moving += 1
        self.change.append(change)
        self.jump.append(jump)
        self._previous = small

    def finish(self) -> ChangeSeries:
        return ChangeSeries(
            np.asarray(self.change, dtype=np.float32), np.asarray(self.jump, dtype=np.float32)
        )

    def clip_values(self, series: ChangeSeries, clip: ClipWindow) -> dict:
        window = slice(clip.start, clip.end)
        return {"motion_pattern": motion_pattern(series.change[window], series.jump[window])}


def _difference(a: np.ndarray | None, b: np.ndarray) -> float:
    return 0.0 if a is None else cv2.norm(a, b, cv2.NORM_L1) / b.size


def motion_pattern(change: np.ndarray, jump: np.ndarray) -> str | None:
    """Classify a clip from its frames' ``change`` and ``jump`` (the first frame's values look
    outside the clip and are ignored)."""
    change, jump = change[1:], jump[1:]
    if change.size == 0:
        return None
    still = float((change < STILL_CHANGE).mean())
    if (change > JUMP_CHANGE).mean() >= CHAOTIC_JUMP_SHARE:
        return "chaotic"
    if still >= SLIDESHOW_STILL_SHARE and (jump > JUMP_CHANGE).sum() >= SLIDESHOW_JUMPS:
        return "slideshow"
    return "still" if still == 1.0 else "moving"

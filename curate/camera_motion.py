"""Camera-motion classifier: per-clip label from the global motion fitted to each flow sample.

Each flow sample gives the content's translation, zoom and roll rates (``GlobalMotion``). Over
a clip, the medians say what the camera does steadily; the spread around them says how much
it shakes. Translation, zoom and roll are compared as the speed they give a frame corner, in
frame diagonals per second. Direction = what the camera does: content sliding left means the
camera pans right, content moving down means it tilts up, content expanding means zoom in.
"""

from __future__ import annotations

import cv2
import numpy as np

from curate.signals import downscale

STATIC_SPEED = 0.008
"""Diagonals per second below which a component counts as still (~6 px/s at 720p)."""

CORNER = 0.5
"""Distance of a frame corner from the centre, in diagonals: converts zoom/roll rates."""

DOMINANCE = 0.5
"""Share of all motion the leading component needs for a single-class label."""


def classify(motion: np.ndarray) -> tuple[str | None, float | None]:
    """``motion``: rows of ``(tx, ty, scale, rotation, residual)`` per flow sample.

    Returns ``(label, confidence)`` from the camera-motion vocabulary; ``(None, None)`` when
    the clip has no flow sample."""
    if len(motion) == 0:
        return None, None
    tx, ty, scale, rotation = (np.median(motion[:, i]) for i in range(4))
    steady = {
        "pan": abs(tx),
        "tilt": abs(ty),
        "zoom": abs(scale) * CORNER,
        "roll": abs(rotation) * CORNER,
    }
    # Shake: how far each sample's motion strays from the steady motion.
    stray = np.hypot(motion[:, 0] - tx, motion[:, 1] - ty) + CORNER * (
        np.abs(motion[:, 2] - scale) + np.abs(motion[:, 3] - rotation)
    )
    shake = float(np.median(stray))
    residual = float(np.median(motion[:, 4]))
    leader = max(steady, key=steady.get)
    total = sum(steady.values()) + shake
    if max(steady[leader], shake) < STATIC_SPEED:
        return "static", float(1.0 - max(steady[leader], shake) / STATIC_SPEED * 0.5)
    if shake >= steady[leader]:
        if residual > 4 * shake:
            return "complex", float(min(1.0, residual / (residual + shake)))
        return "handheld", float(shake / total)
    confidence = float(steady[leader] / total)
    if confidence < DOMINANCE:
        return "complex", float(1.0 - confidence)
    if leader == "pan":
        return ("pan_right" if tx < 0 else "pan_left"), confidence
    if leader == "tilt":
        return ("tilt_up" if ty > 0 else "tilt_down"), confidence
    if leader == "zoom":
        return ("zoom_in" if scale > 0 else "zoom_out"), confidence
    # Content turning clockwise on screen means the camera rolls counter-clockwise.
    return ("roll_ccw" if rotation > 0 else "roll_cw"), confidence


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


class ChangeSignal:
    """Per frame, how much a small thumbnail changed since the previous frame (``change``)
    and, on a still frame that ends a short run of changing ones, since the last still frame
    before that run (``jump``: what a transition between two still pictures changed)."""

    def __init__(self) -> None:
        self.change: list[float] = []
        self.jump: list[float] = []
        self._previous: np.ndarray | None = None
        self._last_still: np.ndarray | None = None
        self._moving = 0

    def update(self, gray: np.ndarray) -> None:
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


def _difference(a: np.ndarray | None, b: np.ndarray) -> float:
    return 0.0 if a is None else cv2.norm(a, b, cv2.NORM_L1) / b.size


def motion_pattern(change: np.ndarray, jump: np.ndarray) -> str | None:
    """Classify a clip from its frames' ``change`` and ``jump`` (see :class:`ChangeSignal`;
    the first frame's values look outside the clip and are ignored)."""
    change, jump = change[1:], jump[1:]
    if change.size == 0:
        return None
    still = float((change < STILL_CHANGE).mean())
    if (change > JUMP_CHANGE).mean() >= CHAOTIC_JUMP_SHARE:
        return "chaotic"
    if still >= SLIDESHOW_STILL_SHARE and (jump > JUMP_CHANGE).sum() >= SLIDESHOW_JUMPS:
        return "slideshow"
    return "still" if still == 1.0 else "moving"

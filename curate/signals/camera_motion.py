"""Camera-motion classifier: a clip's label from the camera motion of its flow samples
(``curate.signals.flow``).

Each flow sample gives the camera's translation, zoom and roll rates, fitted to the background
only (``GlobalMotion``: RANSAC over the textured points, so people, cars and hands moving
through the picture do not count). Over a clip, the medians say what the camera does steadily;
the spread around them says how much it shakes. Translation, zoom and roll are compared as the
speed they give a frame corner, in frame diagonals per second. Direction = what the camera
does: content sliding left means the camera pans right, content moving down means it tilts
up, content expanding means zoom in.

Two steady moves of similar speed make a combined class (``pan_left_tilt_up``,
``zoom_in_pan_right``); moves the vocabulary has no name for are ``complex``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class GlobalMotion:
    """The camera's motion between two frames, fitted to the background of a flow field, and
    what moves relative to it. Image axes: x right, y down; lengths in frame diagonals, rates
    per second."""

    tx: float
    """Content translation to the right."""
    ty: float
    """Content translation downwards."""
    scale: float
    """Relative growth of the content about the centre (> 0: expands)."""
    rotation: float
    """Radians; > 0 turns the content clockwise on screen (y points down)."""
    residual: float
    """RMS of the background flow the camera model does not explain (parallax, noise)."""
    support: float
    """Share of the textured points that move with the camera model: 1 when the whole
    background agrees, low when moving objects or parallax dominate the picture."""
    subject: float
    """Motion relative to the background, averaged over the frame: what the people, cars and
    hands do, whatever the camera does."""
    speed: float
    """Mean speed of the camera's motion field over the frame."""


MOTION_FIELDS = tuple(f.name for f in fields(GlobalMotion))
"""Columns of a flow series' ``motion`` rows (``curate.signals.flow.FlowSeries``)."""

STEADY_SPEED = 0.004
"""Diagonals per second from which a steady move counts (6 px/s at 720p: a tripod camera's
fit stays under a third of it, the slowest drift of a dolly shot is twice it)."""

SHAKE_SPEED = 0.04
"""Diagonals per second of frame-to-frame jitter from which the camera is hand-held (about
0.5 px per frame at 320 px and 30 fps; tripods and surveillance cameras measure under 0.015,
hand-held footage 0.1-0.3)."""

CORNER = 0.5
"""Distance of a frame corner from the centre, in diagonals: converts zoom/roll rates."""

COMBINE = 0.5
"""Speed, relative to the leading move, from which a second move joins the label."""

DOMINANCE = 0.5
"""Share of the steady motion the label's moves need; below it the clip is ``complex``."""

SIGNIFICANCE = 3.0
"""Standard errors a steady move needs to stand out of the jitter: a short clip of a shaky
tripod has medians off zero by chance."""

COMBINATIONS = {
    frozenset({"pan", "tilt"}): ("pan", "tilt"),
    frozenset({"zoom", "pan"}): ("zoom", "pan"),
}
"""Pairs of moves with a combined class, and the order their names take in it."""


_PANS, _TILTS, _ZOOMS = ("pan_left", "pan_right"), ("tilt_up", "tilt_down"), ("zoom_in", "zoom_out")
CAMERA_MOTIONS = (
    "static",
    *_PANS,
    *_TILTS,
    *_ZOOMS,
    "roll_cw",
    "roll_ccw",
    *(f"{p}_{t}" for p in _PANS for t in _TILTS),
    *(f"{z}_{p}" for z in _ZOOMS for p in _PANS),
    "handheld",
    "complex",
)
"""Every label :func:`classify` gives (direction = what the camera does)."""


def _name(move: str, tx: float, ty: float, scale: float, rotation: float) -> str:
    if move == "pan":
        return "pan_right" if tx < 0 else "pan_left"
    if move == "tilt":
        return "tilt_up" if ty > 0 else "tilt_down"
    if move == "zoom":
        return "zoom_in" if scale > 0 else "zoom_out"
    # Content turning clockwise on screen means the camera rolls counter-clockwise.
    return "roll_ccw" if rotation > 0 else "roll_cw"


def classify(motion: np.ndarray) -> tuple[str | None, float | None]:
    """``motion``: one row of :data:`MOTION_FIELDS` per flow sample.

    Returns ``(label, confidence)`` from :data:`CAMERA_MOTIONS`; ``(None, None)`` when the clip
    has no flow sample. The confidence is the label's margin, scaled by how much of the
    textured picture the camera model explains (the background's support)."""
    if len(motion) == 0:
        return None, None
    tx, ty, scale, rotation = (float(np.median(motion[:, i])) for i in range(4))
    support = float(np.median(motion[:, MOTION_FIELDS.index("support")]))
    steady = {
        "pan": abs(tx),
        "tilt": abs(ty),
        "zoom": abs(scale) * CORNER,
        "roll": abs(rotation) * CORNER,
    }
    # Shake: how far each sample's camera motion strays from the steady motion.
    stray = np.hypot(motion[:, 0] - tx, motion[:, 1] - ty) + CORNER * (
        np.abs(motion[:, 2] - scale) + np.abs(motion[:, 3] - rotation)
    )
    shake = float(np.median(stray))
    # Standard error of each median (1.25 x that of a mean; the MAD estimates the spread).
    spread = 1.4826 * np.median(np.abs(motion[:, :4] - (tx, ty, scale, rotation)), axis=0)
    error = 1.25 * spread / np.sqrt(len(motion)) * (1, 1, CORNER, CORNER)
    steady = {m: v if v >= SIGNIFICANCE * e else 0.0 for (m, v), e in zip(steady.items(), error)}
    leader = max(steady, key=steady.get)
    if steady[leader] < STEADY_SPEED and shake < SHAKE_SPEED:
        margin = max(steady[leader] / STEADY_SPEED, shake / SHAKE_SPEED)
        return "static", support * (1.0 - 0.5 * margin)
    if shake >= SHAKE_SPEED and shake >= steady[leader]:
        return "handheld", support * shake / (shake + steady[leader])
    moves = [m for m in steady if steady[m] >= max(STEADY_SPEED, COMBINE * steady[leader])]
    share = sum(steady[m] for m in moves) / sum(steady.values())
    # Jitter under half the hand-held level is the fit's noise, not a competing motion.
    clarity = steady[leader] / (steady[leader] + max(0.0, shake - SHAKE_SPEED / 2))
    if share < DOMINANCE:
        return "complex", support * (1.0 - share)
    order = COMBINATIONS.get(frozenset(moves)) if len(moves) > 1 else (leader,)
    if order is None:
        return "complex", support * share
    label = "_".join(_name(m, tx, ty, scale, rotation) for m in order)
    return label, support * share * clarity

"""Camera-motion classifier: a clip's label from the global motion of its flow samples
(``curate.signals.flow``).

Each flow sample gives the content's translation, zoom and roll rates (``GlobalMotion``). Over
a clip, the medians say what the camera does steadily; the spread around them says how much
it shakes. Translation, zoom and roll are compared as the speed they give a frame corner, in
frame diagonals per second. Direction = what the camera does: content sliding left means the
camera pans right, content moving down means it tilts up, content expanding means zoom in.
"""

from __future__ import annotations

import numpy as np

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

"""Template captioner: no model. It fills what the pipeline measures — lighting from the
keyframes' exposure statistics, a shot type from the camera motion — and leaves the
descriptions null, saying so in the caption's ``note``. Camera motion, motion level,
orientation, resolution and duration come with every caption as measured fields and tags."""

from __future__ import annotations

import cv2
import numpy as np

from curate.caption.structured import ClipInfo
from curate.signals.camera_motion import CAMERA_MOTIONS
from stages.captioners.base import Captioner, CaptionOutcome

NOTE = (
    "template captioner: no model looked at this clip; descriptions are absent and the other "
    "fields are measured"
)

LUMA_LEVELS = ((45, "dark, low-key"), (85, "dim"), (170, "medium-key"), (210, "bright"))
"""Mean luma (0-255) below each bound gets that phrase; above the last, ``very bright,
high-key``."""

LOW_CONTRAST, HIGH_CONTRAST = 25.0, 70.0
"""Luma standard deviation bounds of low and high contrast."""

WARM_COOL = 15.0
"""Mean red minus mean blue (0-255) beyond which tones read as warm (or cool)."""

SHOT_TYPES = {
    "static": "static shot",
    "pan_left": "panning shot",
    "pan_right": "panning shot",
    "tilt_up": "tilt shot",
    "tilt_down": "tilt shot",
    "zoom_in": "zoom shot",
    "zoom_out": "zoom shot",
    "roll_cw": "rolling shot",
    "roll_ccw": "rolling shot",
    "handheld": "handheld shot",
    "complex": "moving-camera shot",
}
SHOT_TYPES |= {
    label: "zoom shot" if label.startswith("zoom") else "panning shot"
    for label in CAMERA_MOTIONS
    if label not in SHOT_TYPES
}
"""The shot type a camera motion implies (framing — close-up, wide — is not measured)."""


def exposure(images: list[bytes]) -> tuple[float, float, float] | None:
    """Mean luma, luma standard deviation and mean red-minus-blue over decodable JPEGs."""
    lumas, warmth = [], []
    for data in images:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        lumas.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32).ravel())
        warmth.append(float(bgr[..., 2].mean()) - float(bgr[..., 0].mean()))
    if not lumas:
        return None
    luma = np.concatenate(lumas)
    return float(luma.mean()), float(luma.std()), float(np.mean(warmth))


def lighting(mean: float, std: float, warmth: float) -> str:
    """An adjective phrase: "dim, low-contrast and warm-toned"."""
    words = [next((text for bound, text in LUMA_LEVELS if mean < bound), "very bright, high-key")]
    if std < LOW_CONTRAST:
        words.append("low-contrast")
    elif std > HIGH_CONTRAST:
        words.append("high-contrast")
    if warmth > WARM_COOL:
        words.append("warm-toned")
    elif warmth < -WARM_COOL:
        words.append("cool-toned")
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class TemplateCaptioner(Captioner):
    def __init__(self, name: str = "template") -> None:
        self.name = name

    def caption(self, clips: list[ClipInfo]) -> list[CaptionOutcome]:
        return [self.caption_one(clip) for clip in clips]

    def caption_one(self, clip: ClipInfo) -> CaptionOutcome:
        stats = exposure(clip.images)
        fields: dict[str, str | None] = {
            "shot_type": SHOT_TYPES.get(clip.camera_motion or ""),
            "lighting": lighting(*stats) if stats else None,
        }
        return CaptionOutcome(fields=fields, note=NOTE)

"""Brightness: the mean luma of frames sampled at ``analyze.brightness.fps``.

Clips that are nearly black (fades to black, night shots with nothing visible, a lens cap)
teach a video model little; tier gate ``min_brightness`` drops them (``too_dark``). A clip's
``brightness`` is the mean over its samples and ``brightness_min`` the darkest sample, from
0 (black) to 255 (white): decoded video-range luma (16-235) mapped to the full 8-bit range.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.gates import Gate, at_least, score
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, SampledSignal

VIDEO_BLACK, VIDEO_WHITE = 16, 235
"""Luma levels of black and white in video-range frames, as the decoder delivers them."""


class BrightnessConfig(SignalConfig):
    fps: float = Field(2.0, gt=0, description="Frames per second whose mean luma is measured.")


class BrightnessSignal(SampledSignal):
    name = "brightness"
    fields = (pa.field("brightness", pa.float32()), pa.field("brightness_min", pa.float32()))
    config = BrightnessConfig
    gates = (
        Gate(
            "min_brightness",
            "brightness",
            "too_dark",
            ("brightness",),
            at_least,
            threshold=score(ge=0, le=255),
            description="Lowest mean luma (0-255) of a clip: drops near-black clips.",
        ),
    )
    scores = ("brightness",)

    def measure(self, frame: DecodedFrame) -> float:
        luma = (cv2.mean(frame.gray)[0] - VIDEO_BLACK) * 255 / (VIDEO_WHITE - VIDEO_BLACK)
        return min(255.0, max(0.0, luma))

    def clip_values(self, series: tuple[np.ndarray, np.ndarray], clip: ClipWindow) -> dict:
        luma = self.in_clip(series, clip)
        return {
            "brightness": float(luma.mean()) if luma.size else None,
            "brightness_min": float(luma.min()) if luma.size else None,
        }

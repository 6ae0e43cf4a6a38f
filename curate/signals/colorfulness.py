"""Colourfulness: Hasler and Süsstrunk's metric (2003) on frames sampled at
``analyze.colorfulness.fps``.

For the opponent channels ``rg = R - G`` and ``yb = (R + G) / 2 - B`` of a frame,
``M = sqrt(σ_rg² + σ_yb²) + 0.3 · sqrt(μ_rg² + μ_yb²)``: 0 for a grey picture, about 15
"slightly", 33 "moderately", 59 "quite" and 82+ "highly colourful" on the authors' perceptual
scale. A clip's ``colorfulness`` is the mean over its samples. Tier gate ``min_colorfulness``
drops greyscale and washed-out footage (``low_colorfulness``), which aesthetic tiers do not
want.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.gates import Gate, at_least, score
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, SampledSignal


class ColorfulnessConfig(SignalConfig):
    fps: float = Field(2.0, gt=0, description="Frames per second whose colourfulness is measured.")


def colorfulness(bgr: np.ndarray) -> float:
    """Hasler and Süsstrunk's ``M`` of one BGR frame (8-bit, full range)."""
    b, g, r = (bgr[..., i].astype(np.float32) for i in range(3))
    rg = r - g
    yb = (r + g) / 2 - b
    spread = np.hypot(rg.std(), yb.std())
    mean = np.hypot(rg.mean(), yb.mean())
    return float(spread + 0.3 * mean)


class ColorfulnessSignal(SampledSignal):
    name = "colorfulness"
    config = ColorfulnessConfig
    fields = (pa.field("colorfulness", pa.float32()),)
    gates = (
        Gate(
            "min_colorfulness",
            "colorfulness",
            "low_colorfulness",
            ("colorfulness",),
            at_least,
            threshold=score(ge=0),
            description="Lowest mean colourfulness (Hasler-Süsstrunk, 0 for grey; ~15 slightly, "
            "~33 moderately colourful): drops greyscale and washed-out clips.",
        ),
    )
    scores = ("colorfulness",)

    def measure(self, frame: DecodedFrame) -> float:
        # Half the analysis size: the statistics of colour need no detail.
        return colorfulness(frame.small_bgr)

    def clip_values(self, series: tuple[np.ndarray, np.ndarray], clip: ClipWindow) -> dict:
        inside = self.in_clip(series, clip)
        return {"colorfulness": float(inside.mean()) if inside.size else None}

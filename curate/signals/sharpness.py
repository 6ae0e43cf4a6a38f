"""Sharpness: the Laplacian variance of every frame (HunyuanVideo's measure).

Its series also moves each clip's start to the sharpest frame of the lead-in (the analyze
stage's window planning); a clip's score is the median over its frames.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.config import SignalConfig
from curate.gates import Gate, at_least, score
from curate.media.imaging import laplacian_variance
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal


class SharpnessConfig(SignalConfig):
    """Laplacian variance of every frame at the analysis size (no settings)."""


class SharpnessSignal(FrameSignal):
    name = "sharpness"
    fields = (
        pa.field("sharpness", pa.float32()),
        pa.field("sharpness_start", pa.float32()),
        pa.field("start_shift_s", pa.float32()),
    )
    config = SharpnessConfig
    gates = (
        Gate(
            "min_sharpness",
            "sharpness",
            "blurry",
            ("sharpness",),
            at_least,
            threshold=score(ge=0),
            description="Lowest median Laplacian variance of a clip's frames.",
        ),
    )
    scores = ("sharpness",)

    def __init__(self, cfg: SharpnessConfig) -> None:
        self.values: list[float] = []

    def update(self, frame: DecodedFrame) -> None:
        self.values.append(laplacian_variance(frame.gray))

    def finish(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float32)

    def clip_values(self, series: np.ndarray, clip: ClipWindow) -> dict:
        sharp = series[clip.start : clip.end]
        return {
            "sharpness": float(np.median(sharp)),
            "sharpness_start": float(sharp[0]),
            "start_shift_s": float(clip.start_s - clip.planned_start_s),
        }

"""Keyframes: small JPEGs kept at a fixed rate during the decode pass, for the embed stage,
captions and thumbnails, each scored for technical quality (the offline ``aesthetic``).

A clip gets up to ``per_clip`` keyframes spread over it (the nearest one if none lies inside),
a thumbnail from its middle keyframe, and the mean quality of its keyframes. With an aesthetic
head configured (``embed.aesthetic_head``), the embed stage replaces ``aesthetic`` with the
head's score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.config.analyze import ThumbnailConfig
from curate.gates import Gate, at_least, score
from curate.media.imaging import downscale, from_jpeg, jpeg, laplacian_variance
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal, samples_in

if TYPE_CHECKING:
    from curate.contract import AnalyzeConfig

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


@dataclass
class KeyframeSeries:
    times: np.ndarray
    quality: np.ndarray
    """Technical-quality score (0-10) of every keyframe."""
    jpegs: list[bytes]


class KeyframesConfig(SignalConfig):
    """Small JPEG keyframes kept during the decode pass, for embeddings, thumbnails and the
    technical-quality ``aesthetic`` score."""

    short_side: int = Field(224, ge=16)
    fps: float = Field(1.0, gt=0, description="Keyframes kept per second of video.")
    quality: int = Field(90, ge=10, le=100)
    per_clip: int = Field(3, ge=1, description="Keyframes per clip handed to the embed stage.")


class KeyframeSignal(FrameSignal):
    name = "keyframes"
    fields = (
        pa.field("aesthetic", pa.float32()),
        pa.field("aesthetic_model", pa.string()),
        pa.field("thumbnail", pa.binary()),
        pa.field("keyframes", pa.list_(pa.binary())),
    )
    config = KeyframesConfig
    gates = (
        Gate(
            "min_aesthetic",
            "aesthetic",
            "low_aesthetic",
            ("aesthetic",),
            at_least,
            threshold=score(ge=0, le=10),
            description="Lowest aesthetic score (0-10; the technical-quality score without an "
            "aesthetic head, see embed.aesthetic_head).",
        ),
    )
    scores = ("aesthetic",)

    def __init__(self, cfg: KeyframesConfig, thumbnail: ThumbnailConfig) -> None:
        self.cfg = cfg
        self.thumbnail = thumbnail
        self.times: list[float] = []
        self.quality: list[float] = []
        self.jpegs: list[bytes] = []
        self._next_t = -1.0

    @classmethod
    def from_config(cls, analyze: AnalyzeConfig) -> KeyframeSignal:
        return cls(analyze.keyframes, analyze.thumbnail)

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t

    def update(self, frame: DecodedFrame) -> None:
        image = downscale(frame.to_bgr(), self.cfg.short_side)
        self.jpegs.append(jpeg(image, self.cfg.quality))
        self.quality.append(technical_quality(image))
        self.times.append(frame.time)
        self._next_t = frame.time + 1.0 / self.cfg.fps

    def finish(self) -> KeyframeSeries:
        return KeyframeSeries(
            np.asarray(self.times), np.asarray(self.quality, np.float32), self.jpegs
        )

    def clip_values(self, series: KeyframeSeries, clip: ClipWindow) -> dict:
        keyed = (series.times >= clip.start_s) & (series.times < clip.end_s)
        quality = series.quality[keyed]
        keyframes = clip_keyframes(series, clip, self.cfg.per_clip)
        thumbnail = None
        if keyframes:
            middle = from_jpeg(keyframes[len(keyframes) // 2])
            thumbnail = jpeg(downscale(middle, self.thumbnail.short_side), self.thumbnail.quality)
        return {
            "aesthetic": float(quality.mean()) if quality.size else None,
            "aesthetic_model": TECHNICAL if quality.size else None,
            "thumbnail": thumbnail,
            "keyframes": keyframes,
        }


def clip_keyframes(series: KeyframeSeries, clip: ClipWindow, n: int) -> list[bytes]:
    """Up to ``n`` keyframes spread evenly over the clip (the nearest one if none inside)."""
    if not series.jpegs:
        return []
    inside = samples_in(series.times, clip.start_s, clip.end_s)
    picks = inside[np.linspace(0, inside.size - 1, min(n, inside.size)).round().astype(int)]
    return [series.jpegs[i] for i in picks]

"""On-screen text: captions, subtitles, titles and watermarks.

A detector maps a gray frame to text-line boxes; ``text_ratio`` is the share of the frame
those boxes cover, counting only lines that hold still on screen (overlay text: subtitles,
titles, watermarks; not signs that move with the scene). Tier gate ``max_text``
(``text_heavy``) applies to a clip's mean.

The default detector, ``ocr``, is PP-OCR's learned text detector (``curate.signals.ocr``) on
frames read at ``analyze.text.ocr.short_side`` from the same decode, large enough for small
subtitles. ``morphology`` needs no model: it finds character-like connected components of
the analysis frame and keeps those that line up as text lines. Another detector plugs in by
implementing :class:`TextDetector` and adding itself to :data:`TEXT_DETECTORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import pyarrow as pa

from curate.config import TextConfig
from curate.gates import Gate, at_most
from curate.signals.base import ClipWindow, FrameSignal, samples_in
from curate.video import DecodedFrame


class TextDetector(Protocol):
    short_side: int | None
    """Short side of the frames the detector reads; ``None``: the analysis frame."""

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        """Text-line boxes of an 8-bit gray frame, as ``(n, 4)`` rows of ``x0, y0, x1, y1``,
        and what each line reads (``None`` from a detector that does not read)."""
        ...


TOPHAT_SIZE = 17
"""Structuring element of the top-hat/black-hat filters, pixels at the 256 px analysis size:
strokes thinner than this stand out from their background, large flat areas do not."""

CONTRASTS = (35, 100)
"""Gray-level contrasts at which the filtered frame is cut into components: several levels
separate text from touching bright or dark surroundings (a cheap stand-in for MSER)."""

MAX_CHAR_HEIGHT = 0.35
"""Tallest character, as a share of the frame height."""

MAX_STROKE_RATIO = 0.45
"""Stroke width over character height above which a blob is filled, not drawn with strokes."""

MAX_STROKE_SPREAD = 0.5
"""Spread (std/mean) of a component's stroke widths above which it is texture, not a glyph:
letters are drawn with one pen (the stroke-width-transform observation)."""

MAX_WORD_HEIGHT = 0.07
"""Letters of text smaller than this share of the frame height merge into one component per
word at analysis resolution; such components are accepted when they show enough strokes."""

MIN_LINE_CHARS = 3
"""Characters a line needs to count as text."""


class MorphologyTextDetector:
    """Top-hat and black-hat filtering (bright and dark text), components at a few contrast
    levels, glyph filters (size, fill, stroke width and its consistency), then grouping into
    horizontal lines of similar-height, similar-stroke, similar-colour characters."""

    short_side = None

    def __init__(self, cfg: TextConfig | None = None) -> None:
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TOPHAT_SIZE, TOPHAT_SIZE))
        self._ridge = np.ones((3, 3), np.uint8)

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, None]:
        boxes = [
            line
            for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT)
            for contrast in self._levels(cv2.morphologyEx(gray, op, self._kernel))
            for line in text_lines(self._characters(gray, contrast))
        ]
        return np.asarray(boxes, np.int32).reshape(-1, 4), None

    @staticmethod
    def _levels(response: np.ndarray):
        for level in CONTRASTS:
            yield (response > level).astype(np.uint8)

    def _characters(self, gray: np.ndarray, binary: np.ndarray) -> np.ndarray:
        """Glyph-like components of ``binary``: rows of ``x, y, w, h, stroke, luminance,
        letters`` (letters > 1 for a word whose letters merged)."""
        height = gray.shape[0]
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4)
        x, y, w, h, area = (stats[1:, i] for i in range(5))
        candidate = (h >= 6) & (h <= MAX_CHAR_HEIGHT * height) & (w >= 2) & (area >= 15)
        if not candidate.any():
            return np.zeros((0, 7), np.float32)
        # Stroke width: twice the distance to the background along each component's ridge.
        dist = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
        ridge = ((dist >= cv2.dilate(dist, self._ridge)) & (binary > 0)).ravel()
        flat = labels.ravel()
        on_ridge, width = flat[ridge], 2.0 * dist.ravel()[ridge].astype(np.float64)
        count = np.maximum(np.bincount(on_ridge, minlength=n), 1)
        stroke = np.bincount(on_ridge, weights=width, minlength=n) / count
        spread = np.bincount(on_ridge, weights=width * width, minlength=n) / count - stroke**2
        spread = np.sqrt(np.maximum(spread, 0)) / np.maximum(stroke, 1e-3)
        lum = np.bincount(flat, weights=gray.ravel().astype(np.float64), minlength=n)
        lum /= np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
        stroke, spread, lum = stroke[1:], spread[1:], lum[1:]
        fill = area / (w * h)
        keep = (
            candidate
            & (fill > 0.15)
            & (fill < 0.85)
            & (stroke < MAX_STROKE_RATIO * h)
            & (spread < MAX_STROKE_SPREAD)
            & ((w <= 1.5 * h) | (h <= MAX_WORD_HEIGHT * height))
        )
        chars = np.ones(len(x))
        for i in np.flatnonzero(keep & (w > 1.5 * h)):
            # A merged word crosses its middle row once per stroke, about twice per letter.
            row = labels[y[i] + h[i] // 2, x[i] : x[i] + w[i]] == i + 1
            strokes = int(np.count_nonzero(row[1:] & ~row[:-1])) + int(row[0])
            letters = w[i] / (0.6 * h[i])
            if strokes < max(4, 1.2 * letters) or fill[i] > 0.6:
                keep[i] = False
            chars[i] = max(1.0, round(letters))
        i = np.flatnonzero(keep)
        return np.column_stack([x[i], y[i], w[i], h[i], stroke[i], lum[i], chars[i]]).astype(
            np.float32
        )


def text_lines(chars: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Group character candidates into text lines: each character links to its nearest
    right-hand neighbour of similar height, stroke and colour on the same baseline band."""
    n = len(chars)
    if n == 0:
        return []
    x, y, w, h, stroke, lum, count = chars[np.argsort(chars[:, 0], kind="stable")].T
    right, bottom = x + w, y + h
    gap = x[None, :] - right[:, None]
    h_max, h_min = np.maximum.outer(h, h), np.minimum.outer(h, h)
    overlap = np.minimum.outer(bottom, bottom) - np.maximum.outer(y, y)
    s_max, s_min = np.maximum.outer(stroke, stroke), np.minimum.outer(stroke, stroke)
    linked = (
        (gap > -0.15 * h_min)
        & (gap < 0.9 * h_max)
        & (h_max < 1.7 * h_min)
        & (overlap > 0.7 * h_min)
        & (s_max < 2.0 * np.maximum(s_min, 1.0))
        & (np.abs(np.subtract.outer(lum, lum)) < 40)
        & np.triu(np.ones((n, n), bool), 1)
    )
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        js = np.flatnonzero(linked[i])
        if js.size:
            parent[root(i)] = root(js[np.argmin(gap[i, js])])
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    lines = []
    for members in groups.values():
        g = np.asarray(members)
        median = np.median(h[g])
        g = g[(h[g] >= 0.6 * median) & (h[g] <= 1.6 * median)]  # stray dots and blobs
        if count[g].sum() < MIN_LINE_CHARS:
            continue
        x0, y0, x1, y1 = x[g].min(), y[g].min(), right[g].max(), bottom[g].max()
        # A line is longer than tall, one character high, with even character heights.
        if x1 - x0 < 2 * (y1 - y0) or y1 - y0 > 1.6 * median:
            continue
        if len(g) > 1 and h[g].std() > 0.3 * h[g].mean():
            continue
        lines.append((int(x0), int(y0), int(x1), int(y1)))
    return lines


def coverage(boxes: np.ndarray, shape: tuple[int, ...]) -> float:
    """Share of a frame of ``shape`` covered by the union of ``boxes``."""
    mask = np.zeros(shape[:2], np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = 1
    return float(mask.mean())


def _ocr(cfg: TextConfig) -> TextDetector:
    from curate.signals.ocr import OcrTextDetector

    return OcrTextDetector(cfg.ocr)


TEXT_DETECTORS: dict[str, Callable[[TextConfig], TextDetector]] = {
    "ocr": _ocr,
    "morphology": MorphologyTextDetector,
}
"""Text detectors by the name used in ``analyze.text.detector``."""


STABLE_AFTER_S = 0.25
"""Text lines found in a sampled frame are looked at again this much later."""

MIN_STABILITY = 0.55
"""Correlation a line's patch needs with the same patch :data:`STABLE_AFTER_S` later to
count: captions, titles and watermarks hold still on screen for seconds, while texture that
happens to line up like letters moves, flickers or falls apart (0.5 and below on moving
texture, 0.9 and above on overlaid text)."""


def stability(before: np.ndarray, after: np.ndarray) -> float:
    """Zero-mean normalised correlation of two patches of the same place."""
    a = before.astype(np.float32) - before.mean()
    b = after.astype(np.float32) - after.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-6))


def first_word(reading: str) -> str:
    """The leading run of letters and digits of a reading (at least two, else empty)."""
    word = ""
    for ch in reading:
        if not ch.isalnum():
            break
        word += ch
    return word if len(word) >= 2 else ""


MAX_CONTENT_CHARS = 500
"""Longest ``text_content`` kept per clip."""


@dataclass
class TextSeries:
    times: np.ndarray
    ratios: np.ndarray
    """Share of the frame covered by overlay text, per sample."""
    readings: list[list[str]]
    """What the overlay lines of each sample read (empty from a detector that does not read)."""


class TextSignal(FrameSignal):
    """Text coverage of frames sampled at ``fps``, counting only lines that stay put on
    screen for :data:`STABLE_AFTER_S` (the temporal filter against texture and scene text),
    and what those lines read when the detector reads."""

    name = "text"
    fields = (
        pa.field("text_ratio", pa.float32()),
        pa.field("text_ratio_max", pa.float32()),
        pa.field("text_content", pa.string()),
    )
    gates = (Gate("max_text", "text_ratio", "text_heavy", ("text_ratio",), at_most),)

    def __init__(self, cfg: TextConfig) -> None:
        self.detector: TextDetector = TEXT_DETECTORS[cfg.detector](cfg)
        self.fps = cfg.fps
        self.times: list[float] = []
        self.ratios: list[float] = []
        self.readings: list[list[str]] = []
        self._next_t = 0.0
        self._pending: tuple[float, np.ndarray, list[str] | None, list[np.ndarray]] | None = None
        """Sample time, line boxes, their readings and patches, waiting for the frame that
        confirms them."""

    @classmethod
    def check(cls, cfg: TextConfig) -> None:
        if cfg.detector == "ocr":
            from curate.signals.ocr import OcrTextDetector

            OcrTextDetector.check(cfg.ocr)

    def _gray(self, frame: DecodedFrame) -> np.ndarray:
        side = self.detector.short_side
        return frame.gray if side is None else frame.gray_at(side)

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t or (
            self._pending is not None and frame.time >= self._pending[0] + STABLE_AFTER_S
        )

    def _add(self, t: float, ratio: float, readings: list[str]) -> None:
        self.times.append(t)
        self.ratios.append(ratio)
        self.readings.append(readings)

    def update(self, frame: DecodedFrame) -> None:
        t, gray = frame.time, self._gray(frame)
        if self._pending is not None and t >= self._pending[0] + STABLE_AFTER_S:
            sampled, boxes, texts, patches = self._pending
            stable = [
                i
                for i, (box, patch) in enumerate(zip(boxes, patches))
                if stability(patch, gray[box[1] : box[3], box[0] : box[2]]) >= MIN_STABILITY
                or self._reads_the_same(gray, box, texts[i] if texts else "")
            ]
            readings = [texts[i] for i in stable] if texts is not None else []
            self._add(sampled, coverage(boxes[stable].reshape(-1, 4), gray.shape), readings)
            self._pending = None
        if t >= self._next_t:
            boxes, texts = self.detector.detect(gray)
            if len(boxes):
                patches = [gray[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in boxes]
                self._pending = (t, boxes, texts, patches)
            else:
                self._add(t, 0.0, [])
            self._next_t = t + 1.0 / self.fps

    def _reads_the_same(self, gray: np.ndarray, box: np.ndarray, reading: str) -> bool:
        """Does the line still read the same at the same place? Rendered labels flicker
        (their numbers change every frame) yet keep their first word in place; scene text
        sliding past does not."""
        read = getattr(self.detector, "read", None)
        if read is None or not reading:
            return False
        (again,) = read(gray, box[None])
        return again is not None and first_word(again) == first_word(reading) != ""

    def finish(self) -> TextSeries:
        return TextSeries(
            np.asarray(self.times), np.asarray(self.ratios, np.float32), self.readings
        )

    def clip_values(self, series: TextSeries, clip: ClipWindow) -> dict:
        inside = samples_in(series.times, clip.start_s, clip.end_s)
        text = series.ratios[inside]
        lines = dict.fromkeys(line for i in inside for line in series.readings[i])
        content = "\n".join(lines)[:MAX_CONTENT_CHARS] or None
        return {
            "text_ratio": float(text.mean()) if text.size else None,
            "text_ratio_max": float(text.max()) if text.size else None,
            "text_content": content,
        }

"""On-screen text: captions, subtitles, titles and watermarks.

A detector maps a gray frame to text-line boxes; ``text_ratio`` is the share of the frame
those boxes cover, counting only lines on the screen (overlay text: subtitles, titles,
credits, watermarks; not signs that the camera moves over, :func:`on_screen`). Tier gate
``max_text`` (``text_heavy``) applies to a clip's mean.

The default detector, ``ocr``, is PP-OCR's learned text detector (``curate.signals.ocr``) on
frames read at ``analyze.text.ocr.short_side`` from the same decode, large enough for small
subtitles. ``morphology`` needs no model: it finds character-like connected components of
the analysis frame and keeps those that line up as text lines. Another detector plugs in by
implementing :class:`TextDetector` and adding itself to :data:`TEXT_DETECTORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.gates import Gate, at_most, score
from curate.media.imaging import jpeg
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal, samples_in
from curate.signals.ocr import OcrConfig, OcrTextDetector

if TYPE_CHECKING:
    from curate.contract import AnalyzeConfig


class TextDetector(Protocol):
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
    return OcrTextDetector(cfg.ocr)


TEXT_DETECTORS: dict[str, Callable[[TextConfig], TextDetector]] = {
    "ocr": _ocr,
    "morphology": MorphologyTextDetector,
}
"""Text detectors by the name used in ``analyze.text.detector``."""


SAMPLES_PER_CLIP = 3
"""Samples the shortest clip (``analyze.clips.min_duration_s``) holds at least: a clip reads
two or more frames spread over it whatever its length, never only its first."""

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


MAX_TRAVEL = 0.15
"""Farthest a moving line is looked for in the confirming frame, as a share of the frame's
larger side (credits rolling, words flying in): 0.6 frame heights per second at 0.25 s."""

MIN_MOVED_MATCH = 0.75
"""Correlation a line's strokes need with those of the place it is found at in the confirming
frame to have moved there: moved text keeps its letters (0.8 and above, over a panning
picture too), moving texture and things turning in the scene fall apart."""

SURROUND = 2
"""Line heights around a line that show whether the picture moved with it."""

CHANGED = 12
"""Gray levels by which a pixel around a line must differ a moment later to have changed
(compression noise stays well below); pixels whose neighbourhood spans less than twice this
are plain and show no motion."""

HELD_STILL = 0.2
"""Largest share of the textured pixels around a line that may change while the picture
there counts as held still."""

MOVED_WITH = 0.5
"""Share of the changed pixels around a moved line that its shift must explain for the
picture there to have moved with it (scene text)."""


def strokes(gray: np.ndarray, size: int) -> np.ndarray:
    """The thin bright and dark strokes of ``gray`` (white and black top-hats of ``size``):
    letters, with the picture behind them, which may move otherwise, taken away."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return np.maximum(
        cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel),
        cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel),
    )


def moved_to(frame: np.ndarray, confirm: np.ndarray, box: np.ndarray) -> tuple[int, int] | None:
    """Where line ``box`` of ``frame`` moved to in ``confirm`` (its shift in pixels), if its
    letters are found again nearby, whatever the picture behind them did."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = frame.shape[:2]
    if x1 <= x0 or y1 <= y0:
        return None
    size = max(3, (y1 - y0) // 4) | 1  # odd, wider than a stroke
    line = strokes(frame[y0:y1, x0:x1], size)
    if line.std() < 1.0:
        return None
    reach = int(MAX_TRAVEL * max(h, w))
    sx0, sy0 = max(0, x0 - reach), max(0, y0 - reach)
    sx1, sy1 = min(w, x1 + reach), min(h, y1 + reach)
    found = cv2.matchTemplate(strokes(confirm[sy0:sy1, sx0:sx1], size), line, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(found)
    return (sx0 + bx - x0, sy0 + by - y0) if best >= MIN_MOVED_MATCH else None


def surroundings(
    frame: np.ndarray, confirm: np.ndarray, boxes: np.ndarray, i: int, shift: tuple[int, int]
) -> tuple[float, float] | None:
    """What the picture around line ``i`` (other lines left out) did by ``confirm``: the share
    of its textured pixels that changed, and the share of those that moving by ``shift``
    explains (they moved with the line: the scene or the object the line is on). None where
    it is plain and shows no motion of its own."""
    x0, y0, x1, y1 = (int(v) for v in boxes[i])
    dx, dy = shift
    h, w = frame.shape[:2]
    pad = SURROUND * (y1 - y0)
    ax0, ay0 = max(0, x0 - pad, -dx), max(0, y0 - pad, -dy)
    ax1, ay1 = min(w, x1 + pad, w - dx), min(h, y1 + pad, h - dy)
    if ax1 <= ax0 or ay1 <= ay0:
        return None
    around = np.ones((ay1 - ay0, ax1 - ax0), bool)
    margin = (y1 - y0) // 3
    for bx0, by0, bx1, by1 in boxes.tolist():  # in credits the lines around move with it
        around[
            max(0, by0 - margin - ay0) : max(0, by1 + margin - ay0),
            max(0, bx0 - margin - ax0) : max(0, bx1 + margin - ax0),
        ] = False
    patch = frame[ay0:ay1, ax0:ax1]
    textured = around & (cv2.morphologyEx(patch, cv2.MORPH_GRADIENT, None) >= 2 * CHANGED)
    if textured.sum() < (x1 - x0) * (y1 - y0) // 4:
        return None
    before = patch.astype(np.int16)
    stayed = np.abs(before - confirm[ay0:ay1, ax0:ax1])[textured]
    carried = np.abs(before - confirm[ay0 + dy : ay1 + dy, ax0 + dx : ax1 + dx])[textured]
    changed = stayed > CHANGED
    explained = changed & (carried <= CHANGED)
    return float(changed.mean()), float(explained.sum() / max(1, changed.sum()))


def on_screen(
    detector: TextDetector,
    frame: np.ndarray,
    confirm: np.ndarray,
    boxes: np.ndarray,
    i: int,
    reading: str,
) -> tuple[bool, bool]:
    """Whether line ``i`` of ``frame`` is text on the screen rather than in a scene the camera
    moves over, judged against ``confirm`` (the same place a moment later): it held still;
    or text is read there again (the same first word, or any while the picture around held
    still: rendered labels whose words change every few frames, a ticker); or it moved while
    the picture around did not move with it (credits rolling, kinetic typography, a label
    following its object). And, where it is not, whether its letters were lost
    (:func:`moved_to` does not find them again): only then may it have :func:`jumped`."""
    x0, y0, x1, y1 = boxes[i]
    if stability(frame[y0:y1, x0:x1], confirm[y0:y1, x0:x1]) >= MIN_STABILITY:
        return True, False
    read = getattr(detector, "read", None)
    if read is not None and reading:
        again = read(confirm, boxes[i][None])[0]
        if again is not None:
            if first_word(again) == first_word(reading) != "":
                return True, False
            around = surroundings(frame, confirm, boxes, i, (0, 0))
            if around is None or around[0] <= HELD_STILL:
                return True, False
    shift = moved_to(frame, confirm, boxes[i])
    if shift is None:
        return False, True
    return moved_on_its_own(frame, confirm, boxes, i, shift), False


def moved_on_its_own(
    frame: np.ndarray, confirm: np.ndarray, boxes: np.ndarray, i: int, shift: tuple[int, int]
) -> bool:
    """Whether line ``i`` moved by ``shift`` (pixels, by ``confirm``) on its own: scene text
    moves with what is around it (the camera pans, the object it is on moves), so most of
    what changed there is where it was, moved as the line moved."""
    if max(map(abs, shift)) < 2:
        return False
    around = surroundings(frame, confirm, boxes, i, shift)
    return around is None or around[0] <= HELD_STILL or around[1] < MOVED_WITH


BOX_JITTER = 2
"""Pixels by which the detector's boxes of one line wander between frames: a shift taken
from two boxes is only known to within this."""


def jumped(
    frame: np.ndarray,
    confirm: np.ndarray,
    boxes: np.ndarray,
    i: int,
    reading: str,
    again: tuple[np.ndarray, list[str] | None],
) -> bool:
    """Whether line ``i`` (``reading``), whose letters :func:`moved_to` does not find again
    (:func:`on_screen` says so), is read again nearby in ``confirm`` (``again``: the lines
    found there), the same first word, moved on its own (:func:`moved_on_its_own`) by every
    shift within :data:`BOX_JITTER` of its box's: rendered labels that jump with their boxes,
    their scores changing as they go. A label read joined to the one beside it (a box wider
    than the line's by more than the line's height) keeps one of its ends: its shift is taken
    from the boxes' left edges and from their right ones, and must pass for both where both
    are within reach (where the picture moved by one of them, it is scene text the camera
    revealed more of)."""
    word = first_word(reading)
    boxes_again, texts_again = again
    if not word or not texts_again:
        return False
    reach = MAX_TRAVEL * max(frame.shape[:2])
    x0, y0, x1, y1 = boxes[i]
    candidates = []  # per box read with the same first word, its shifts within reach
    for (bx0, by0, bx1, _), text in zip(boxes_again.tolist(), texts_again):
        if first_word(text) != word:
            continue
        joined = bx1 - bx0 > (x1 - x0) + (y1 - y0)
        shifts = [
            (int(dx), int(by0 - y0)) for dx in ((bx0 - x0, bx1 - x1) if joined else (bx0 - x0,))
        ]
        if near := [s for s in shifts if max(map(abs, s)) <= reach]:
            candidates.append(near)
    if not candidates:
        return False
    nearest = min(candidates, key=lambda near: min(abs(dx) + abs(dy) for dx, dy in near))
    jitter = range(-BOX_JITTER, BOX_JITTER + 1)
    return all(
        moved_on_its_own(frame, confirm, boxes, i, (dx + ex, dy + ey))
        for dx, dy in nearest
        for ex in jitter
        for ey in jitter
    )


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

DEFERRED_DETECTORS = frozenset({"ocr"})
"""Detectors that run in the detect stage's pool (on the GPU where there is one) on frames
the decode pass keeps, rather than in the decode pass itself."""

SAMPLE_QUALITY = 90
"""JPEG quality of the frames kept for a deferred detector."""

TEXT_SAMPLE = pa.struct(
    [
        pa.field("time", pa.float64()),
        pa.field("frame", pa.binary()),
        pa.field("confirm", pa.binary()),
    ]
)
"""A frame kept for a deferred detector and the frame :data:`STABLE_AFTER_S` later (gray
JPEGs at the detector's size)."""


@dataclass(frozen=True)
class TextLine:
    """A line the detector found in a sampled frame."""

    box: tuple[float, float, float, float]
    """``x0, y0, x1, y1`` as shares of the frame's width and height."""
    reading: str
    """What it reads (empty from a detector that does not read)."""
    stable: bool
    """Whether it held still until the confirming frame (overlay text)."""


def overlay_text(
    detector: TextDetector, frame: np.ndarray, confirm: np.ndarray
) -> tuple[float, list[str], list[TextLine]]:
    """Share of ``frame`` covered by overlay text, what its lines read, and every line found:
    overlay lines are those ``detector`` finds that are on the screen rather than in the scene
    (:func:`on_screen`, judged against ``confirm``, the same place a moment later, or
    :func:`jumped` to another place there)."""
    boxes, texts = detector.detect(frame)
    judged = [
        on_screen(detector, frame, confirm, boxes, i, texts[i] if texts else "")
        for i in range(len(boxes))
    ]
    stable = [i for i, (on, _) in enumerate(judged) if on]
    # Where its letters were found again, on_screen judged the line's move; where they were
    # lost, it may have jumped with its box.
    unsure = [i for i, t in enumerate(texts or []) if judged[i][1] and first_word(t)]
    if unsure:  # read the confirming frame whole only where a read line's letters were lost
        again = detector.detect(confirm)
        stable = sorted(
            [*stable, *(i for i in unsure if jumped(frame, confirm, boxes, i, texts[i], again))]
        )
    readings = [texts[i] for i in stable if texts[i]] if texts else []
    lines = found_lines(boxes, texts, frame.shape, set(stable))
    return coverage(boxes[stable].reshape(-1, 4), frame.shape), readings, lines


def found_lines(
    boxes: np.ndarray, texts: list[str] | None, shape: tuple[int, ...], stable: set[int]
) -> list[TextLine]:
    """The :class:`TextLine` of every box (pixels of a frame of ``shape``), with what it
    reads, stable where its index is in ``stable``."""
    h, w = shape[:2]
    return [
        TextLine((x0 / w, y0 / h, x1 / w, y1 / h), texts[i] if texts else "", i in stable)
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist())
    ]


def read_lines(detector: TextDetector, gray: np.ndarray, stable: bool) -> list[TextLine]:
    """Every line ``detector`` finds in ``gray``, with what it reads, marked ``stable`` or not
    (no confirming frame is looked at)."""
    boxes, texts = detector.detect(gray)
    return found_lines(boxes, texts, gray.shape, set(range(len(boxes))) if stable else set())


def clip_samples(
    times: np.ndarray, start_s: float, end_s: float, at_most: int | None = None
) -> np.ndarray:
    """Indices of the samples a clip reads: those inside it, or, past ``at_most``, the ones
    nearest the middles of ``at_most`` equal parts of the clip (a quarter and three quarters
    in at 2), so that fades at its ends and its first frame alone never decide."""
    inside = samples_in(times, start_s, end_s)
    if at_most is None or len(inside) <= at_most:
        return inside
    targets = start_s + (np.arange(at_most) + 0.5) * (end_s - start_s) / at_most
    picked = [inside[int(np.argmin(np.abs(times[inside] - t)))] for t in targets]
    return np.asarray(sorted(set(picked)), inside.dtype)


def clip_text_values(ratios: np.ndarray, readings: list[list[str]], inside: np.ndarray) -> dict:
    """``text_ratio``, ``text_ratio_max`` and ``text_content`` of one clip from the samples it
    reads (``inside``: :func:`clip_samples`)."""
    text = ratios[inside]
    lines = dict.fromkeys(line for i in inside for line in readings[i])
    return {
        "text_ratio": float(text.mean()) if text.size else None,
        "text_ratio_max": float(text.max()) if text.size else None,
        "text_content": "\n".join(lines)[:MAX_CONTENT_CHARS] or None,
    }


@dataclass
class TextSeries:
    times: np.ndarray
    ratios: np.ndarray
    """Share of the frame covered by overlay text, per sample."""
    readings: list[list[str]]
    """What the overlay lines of each sample read (empty from a detector that does not read)."""
    kept: list[dict] | None = None
    """The sampled frames, for a deferred detector (rows of :data:`TEXT_SAMPLE`)."""


class TextConfig(SignalConfig):
    detector: Literal["ocr", "morphology"] = Field(
        "ocr",
        description="Text detector, by its name in curate.signals.text.TEXT_DETECTORS: ocr "
        "(PP-OCR, learned) or morphology (no model).",
    )
    fps: float = Field(
        0.5,
        gt=0,
        description="Frames per second searched for on-screen text, at least: sampling is "
        f"denser where clips are short, so that the shortest clip holds {SAMPLES_PER_CLIP} "
        "samples (analyze.clips.min_duration_s).",
    )
    ocr: OcrConfig = OcrConfig()


class TextSignal(FrameSignal):
    """Text coverage of frames sampled at ``fps``, counting only lines on the screen, judged
    against the frame :data:`STABLE_AFTER_S` later (the temporal filter against texture and
    scene text: :func:`on_screen`), and what those lines read when the detector reads. A
    deferred detector (``ocr``) gets the sampled frames through ``text_samples`` and runs in
    the detect stage."""

    name = "text"
    fields = (
        pa.field("text_ratio", pa.float32()),
        pa.field("text_ratio_max", pa.float32()),
        pa.field("text_content", pa.string()),
    )
    config = TextConfig
    gates = (
        Gate(
            "max_text",
            "text_ratio",
            "text_heavy",
            ("text_ratio",),
            at_most,
            threshold=score(ge=0, le=1),
            description="Largest mean share of the frame covered by on-screen text.",
        ),
    )
    scores = ("text_ratio",)
    source_fields = (pa.field("text_samples", pa.list_(TEXT_SAMPLE)),)

    def __init__(self, cfg: TextConfig, min_clip_s: float | None = None) -> None:
        self.deferred = cfg.detector in DEFERRED_DETECTORS
        self.short_side = cfg.ocr.short_side if self.deferred else None
        self.detector: TextDetector | None = (
            None if self.deferred else TEXT_DETECTORS[cfg.detector](cfg)
        )
        self.interval = 1.0 / cfg.fps
        if min_clip_s is not None:
            self.interval = min(self.interval, min_clip_s / SAMPLES_PER_CLIP)
        self.times: list[float] = []
        self.ratios: list[float] = []
        self.readings: list[list[str]] = []
        self.kept: list[dict] = []
        self._next_t = 0.0
        self._pending: tuple[float, np.ndarray] | None = None
        """Sample time and frame, waiting for the frame that confirms its lines."""

    @classmethod
    def from_config(cls, analyze: AnalyzeConfig) -> TextSignal:
        return cls(analyze.text, analyze.clips.min_duration_s)

    @classmethod
    def check(cls, cfg: TextConfig) -> None:
        if cfg.detector == "ocr":
            OcrTextDetector.check(cfg.ocr)

    def _gray(self, frame: DecodedFrame) -> np.ndarray:
        return frame.gray if self.short_side is None else frame.gray_at(self.short_side)

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t or (
            self._pending is not None and frame.time >= self._pending[0] + STABLE_AFTER_S
        )

    def update(self, frame: DecodedFrame) -> None:
        t, gray = frame.time, self._gray(frame)
        if self._pending is not None and t >= self._pending[0] + STABLE_AFTER_S:
            self._confirm(gray)
        if t >= self._next_t:
            self._pending = (t, gray)
            self._next_t = t + self.interval

    def update_still(self, frame: DecodedFrame) -> None:
        # Every line of a still holds still: the frame confirms itself.
        gray = self._gray(frame)
        self._pending = (frame.time, gray)
        self._confirm(gray)

    def _confirm(self, gray: np.ndarray) -> None:
        """Measure the pending sample, ``gray`` being the same place a moment later."""
        assert self._pending is not None
        sampled, before = self._pending
        if self.detector is None:
            jpegs = [jpeg(image, SAMPLE_QUALITY) for image in (before, gray)]
            self.kept.append({"time": sampled, "frame": jpegs[0], "confirm": jpegs[1]})
        else:
            ratio, readings, _ = overlay_text(self.detector, before, gray)
            self.times.append(sampled)
            self.ratios.append(ratio)
            self.readings.append(readings)
        self._pending = None

    def finish(self) -> TextSeries:
        return TextSeries(
            np.asarray(self.times),
            np.asarray(self.ratios, np.float32),
            self.readings,
            self.kept if self.deferred else None,
        )

    def clip_values(self, series: TextSeries, clip: ClipWindow) -> dict:
        if series.kept is not None:
            return {}  # filled by the detect stage
        inside = clip_samples(series.times, clip.start_s, clip.end_s)
        return clip_text_values(series.ratios, series.readings, inside)

    def source_values(self, series: TextSeries) -> dict:
        return {"text_samples": series.kept}

"""PP-OCR for the on-screen text signal: the DB (differentiable binarisation) text detector
and the CTC text recogniser of PP-OCRv6 small, as ONNX, run with onnxruntime.

The detector maps a frame to a per-pixel text probability; connected regions above
``BINARY_THRESHOLD`` whose mean probability reaches ``analyze.text.ocr.threshold`` are
candidate lines. DB predicts a shrunken text kernel, so each region is grown back by
``UNCLIP_RATIO`` x area / perimeter (the reference post-processing); a region tilted past
``TILTED`` degrees (a diagonal watermark) is scored and read in its own rotated rectangle,
straightened; one too tall for a line (``MAX_LINE_HEIGHT``) is split into the lines it holds,
or its core is taken as one big line (:func:`split_lines`), or it is dropped. The recogniser
then reads every candidate. A line counts as text when it reads as at least
``MIN_CHARACTERS`` letters or digits with mean confidence ``MIN_CONFIDENCE``, or, unread,
when its box score reaches ``SURE_SCORE`` and it is shaped like a line (``LINE_ASPECT``) and
was not cut from a taller region.
Texture the detector half-believes is text (bottle bases, foliage, round blobs) reads as
nothing or noise and is dropped; readings are kept for ``text_content``.

Weights come from the ``rapidocr`` package (Apache-2.0), which ships them inside its wheel,
or from the file in ``analyze.text.ocr.weights``. Frames are read at
``analyze.text.ocr.short_side`` from the same decode as the rest of the analysis.
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from curate.config import ConfigError, Model
from curate.models.model_files import model_file
from curate.models.onnx import providers, session

Rect = tuple[tuple[float, float], tuple[float, float], float]
"""A rotated rectangle as ``cv2.minAreaRect`` gives it: centre, size, angle in degrees."""


class OcrConfig(Model):
    """PP-OCR text detection (``curate/signals/ocr.py``)."""

    weights: str | None = Field(
        None,
        description="Detection model (ONNX); null: PP-OCRv6 small, shipped in the rapidocr "
        "package.",
    )
    recogniser: str | None = Field(
        None,
        description="Recognition model (ONNX, character list in its metadata) that confirms "
        "and reads each detected line; null: PP-OCRv6 small from the rapidocr package.",
    )
    short_side: int = Field(
        540,
        ge=64,
        description="Frames are read for text at this short side (never upscaled): subtitles 2 % "
        "of the frame high are 11 px tall at 540.",
    )
    threshold: float = Field(
        0.6, gt=0, lt=1, description="Mean text probability a detected line's box needs."
    )
    max_frames_per_clip: int | None = Field(
        3,
        ge=1,
        description="Sampled frames read per clip, the ones nearest the middles of that many "
        "equal parts of it (1/6, 1/2 and 5/6 of the way through at 3): each costs about 0.1 s "
        "of CPU (0.2 s where a line read there does not hold still and the frame a quarter "
        "second later is read too). null: every sample inside the clip.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: onnxruntime's CUDA provider when installed and a GPU is there."
    )


PACKAGE = "rapidocr"
DEVICE_KEY = "analyze.text.ocr.device"
MODEL_FILE = "models/PP-OCRv6_det_small.onnx"
RECOGNISER_FILE = "models/PP-OCRv6_rec_small.onnx"
REC_HEIGHT = 48
REC_MAX_WIDTH = 1280
MIN_CHARACTERS = 2
MIN_CONFIDENCE = 0.6
SURE_SCORE = 0.75
"""Box score from which a line is text without a reading, if it is also :data:`LINE_ASPECT`
times as wide as tall: the recogniser knows Latin and Chinese script only, and lines of
Cyrillic, Arabic or Devanagari score this high too (round blobs of texture can as well)."""
LINE_ASPECT = 2.0
NORM = 127.5
"""PP-OCRv6 detection reads pixels scaled to -1..1 (mean and std 0.5)."""
BINARY_THRESHOLD = 0.3
UNCLIP_RATIO = 1.6
MIN_HEIGHT = 3
"""Smallest text region, pixels of the frame read (a 2 %-high subtitle at 540 px is 11)."""
MAX_LINE_HEIGHT = 0.25
"""Tallest text line, as a share of the frame height: DB separates lines, so a taller region
is texture the network took for text (close-ups of wood grain, cut glass), unless it parts
into lines (:func:`split_lines`)."""

SPLIT_FILL = 0.5
"""A region too tall for one line is cut at a row that fills less than this share of its
fullest rows above and below: big lines set with tight leading (a title's two lines, kinetic
typography) touch where a letter of one reaches the next."""

SPLIT_THRESHOLD = 0.6
"""Higher text probability at which a region too tall for one line that does not narrow into
lines is taken again: motion blur or a glow spreads a big line's probability over more rows
than its letters fill, while its core stays a line."""

MAX_SPLIT_LINES = 4
"""Most lines a region too tall for one is cut into; one that parts into more is texture."""

MIN_SPLIT_SHARE = 0.1
"""Smallest share of the region a line taken from its core must hold (fragments are not)."""

MAX_CORE_HEIGHT = 0.5
"""Tallest line, as a share of the frame height, taken from a region's core: one word may
fill half a title card or a kinetic-typography frame, and its blurred glow makes the region
taller still. Such a line must read, as every line cut from a taller region must."""


TILTED = 5.0
"""Degrees from the horizontal and the vertical past which a line is taken along its own
direction (a diagonal watermark) and straightened before it is read, rather than in its
upright box, which it fills too little to count."""

INSTALL = (
    "analyze.text.detector=ocr needs PP-OCR models: install the rapidocr package (pip install "
    "rapidocr), point analyze.text.ocr.weights and .recogniser at model files, or choose "
    "analyze.text.detector=morphology"
)


def weights_path(cfg: OcrConfig) -> Path:
    """The detection model to load; raises :class:`ConfigError` naming the key to fix when
    onnxruntime, the package or the file is missing (checked at start-up)."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(
            "analyze.text.detector=ocr needs onnxruntime (pip install onnxruntime), or choose "
            "analyze.text.detector=morphology"
        )
    return model_file(cfg.weights, "analyze.text.ocr.weights", PACKAGE, MODEL_FILE, INSTALL)


def recogniser_path(cfg: OcrConfig) -> Path:
    """The recognition model, checked like the detector's."""
    return model_file(
        cfg.recogniser, "analyze.text.ocr.recogniser", PACKAGE, RECOGNISER_FILE, INSTALL
    )


class OcrTextDetector:
    """PP-OCR's text detector behind the ``TextDetector`` interface."""

    def __init__(self, cfg: OcrConfig) -> None:
        self.cfg = cfg
        self.short_side = cfg.short_side

    @classmethod
    def check(cls, cfg: OcrConfig) -> None:
        weights_path(cfg)
        recogniser_path(cfg)
        if cfg.device == "cuda":
            providers(cfg.device, DEVICE_KEY)

    @cached_property
    def detector(self) -> Any:
        return session(str(weights_path(self.cfg)), self.cfg.device, DEVICE_KEY)

    @cached_property
    def recogniser(self) -> Any:
        return session(str(recogniser_path(self.cfg)), self.cfg.device, DEVICE_KEY)

    @cached_property
    def alphabet(self) -> list[str]:
        """CTC classes: blank, the model's characters (from its metadata), space."""
        characters = self.recogniser.get_modelmeta().custom_metadata_map["character"]
        return ["", *characters.split("\n"), " "]

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """Text probability of every pixel of ``gray``, read at ``short_side`` (small sources
        are enlarged, as the reference does: the network finds small text poorly)."""
        h, w = gray.shape
        scale = self.short_side / min(h, w)
        # The network downsamples by 32.
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        image = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR) if size != (w, h) else gray
        planes = np.repeat((image.astype(np.float32)[None] - NORM) / NORM, 3, axis=0)
        detector = self.detector
        (out,) = detector.run(None, {detector.get_inputs()[0].name: planes[None]})
        return cv2.resize(out[0, 0], (w, h), interpolation=cv2.INTER_LINEAR)

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, list[str]]:
        boxes, scores, rects, whole = self.candidates(gray)
        texts = self.read(gray, boxes, rects)
        wide = (boxes[:, 2] - boxes[:, 0]) >= LINE_ASPECT * (boxes[:, 3] - boxes[:, 1])
        # A line cut from a region too tall for one must read: unread, it is texture's.
        sure = [scores[i] >= SURE_SCORE and wide[i] and whole[i] for i in range(len(boxes))]
        keep = [i for i, t in enumerate(texts) if t is not None or sure[i]]
        return boxes[keep].reshape(-1, 4), [texts[i] or "" for i in keep]

    def read(
        self, gray: np.ndarray, boxes: np.ndarray, rects: list[Rect | None] | None = None
    ) -> list[str | None]:
        """The reading of every box (of its tilted line, straightened, where ``rects`` gives
        one), or ``None`` where it does not read as text."""
        if not len(boxes):
            return []
        crops, turns = [], []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            rect = rects[i] if rects is not None else None
            if rect is not None:
                ways = [straightened(gray, rect)]
            elif y1 - y0 >= 1.5 * (x1 - x0):
                # A tall line is written top to bottom (or the video is stored turned): read
                # it turned both ways; the better reading wins.
                crop = gray[y0:y1, x0:x1]
                ways = [np.rot90(crop), np.rot90(crop, 3)]
            else:
                ways = [gray[y0:y1, x0:x1]]
            crops += ways
            turns.append(len(ways))
        widths = [
            min(REC_MAX_WIDTH, int(np.ceil(REC_HEIGHT * c.shape[1] / c.shape[0]))) for c in crops
        ]
        batch = np.zeros((len(crops), 3, REC_HEIGHT, max(widths)), np.float32)
        for i, (crop, width) in enumerate(zip(crops, widths)):
            line = cv2.resize(crop, (width, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
            batch[i, :, :, :width] = (line.astype(np.float32) - NORM) / NORM
        recogniser = self.recogniser
        (out,) = recogniser.run(None, {recogniser.get_inputs()[0].name: batch})
        readings = []
        for probs in out:
            best, confidence = probs.argmax(axis=1), probs.max(axis=1)
            # CTC: drop repeats and blanks.
            keep = (best != 0) & np.append(True, best[1:] != best[:-1])
            reading = "".join(self.alphabet[c] for c in best[keep]).strip()
            mean = float(confidence[keep].mean()) if keep.any() else 0.0
            good = sum(ch.isalnum() for ch in reading) >= MIN_CHARACTERS and mean >= MIN_CONFIDENCE
            readings.append((mean if good else -1.0, reading if good else None))
        texts: list[str | None] = []
        for n in turns:
            texts.append(max(readings[:n], key=lambda r: r[0])[1])
            readings = readings[n:]
        return texts

    def candidates(
        self, gray: np.ndarray
    ) -> tuple[np.ndarray, list[float], list[Rect | None], list[bool]]:
        """Upright boxes of the regions the detector takes for text lines, their scores, for
        a tilted line its rotated rectangle, grown as its box is (else None), and whether
        each is a whole region (not a line cut from a taller one, :func:`split_lines`)."""
        prob = self.probabilities(gray)
        h, w = gray.shape
        # A region's score is the mean probability over its box (the reference's "fast" box
        # score): a text line fills its box, a blob of texture does not.
        total = cv2.integral(prob.astype(np.float64))
        boxes, scores, rects, whole = [], [], [], []
        for x, y, bw, bh, area, rect, cut in regions(prob):
            if rect is not None:
                (cx, cy), (rw, rh), angle = rect
                score = polygon_score(prob, cv2.boxPoints(rect))
                thickness, grow = min(rw, rh), UNCLIP_RATIO * area / (2 * (rw + rh))
                line = ((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)
                corners = cv2.boxPoints(line)
                (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
            else:
                inside = total[y + bh, x + bw] - total[y, x + bw] - total[y + bh, x] + total[y, x]
                score, thickness, line = inside / (bw * bh), min(bw, bh), None
                grow = UNCLIP_RATIO * area / (2 * (bw + bh))
                x0, y0, x1, y1 = x - grow, y - grow, x + bw + grow, y + bh + grow
            # A line cut from a taller region is as tall as split_lines lets it be.
            if thickness < MIN_HEIGHT or (not cut and thickness > MAX_LINE_HEIGHT * h):
                continue
            if score < self.cfg.threshold:
                continue
            scores.append(float(score))
            rects.append(line)
            whole.append(not cut)
            boxes.append(
                (
                    max(0, int(x0)),
                    max(0, int(y0)),
                    min(w, int(np.ceil(x1))),
                    min(h, int(np.ceil(y1))),
                )
            )
        return np.asarray(boxes, np.int32).reshape(-1, 4), scores, rects, whole


Region = tuple[int, int, int, int, int, Rect | None, bool]
"""A text region: ``x, y, width, height, area``, for a tilted one its rotated rectangle, and
whether it is a line cut from a taller region."""


def regions(prob: np.ndarray) -> list[Region]:
    """The connected regions of ``prob`` above :data:`BINARY_THRESHOLD`; one thicker than
    :data:`MAX_LINE_HEIGHT` is replaced by the lines it splits into (:func:`split_lines`)."""
    tallest = MAX_LINE_HEIGHT * prob.shape[0]
    out: list[Region] = []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (prob > BINARY_THRESHOLD).astype(np.uint8), connectivity=4
    )
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        own = labels[y : y + bh, x : x + bw] == i
        ys, xs = np.nonzero(own)
        rect = cv2.minAreaRect(np.stack([xs + x, ys + y], axis=1).astype(np.float32))
        tilted = TILTED < rect[2] % 90 < 90 - TILTED and min(bw, bh) >= MIN_HEIGHT
        if tilted or min(bw, bh) <= tallest:
            out.append((x, y, bw, bh, area, rect if tilted else None, False))
            continue
        for line in split_lines(own, prob[y : y + bh, x : x + bw], prob.shape[0]):
            ly, lx = np.nonzero(line)
            x0, y0 = int(lx.min()), int(ly.min())
            box = (x + x0, y + y0, int(lx.max()) + 1 - x0, int(ly.max()) + 1 - y0)
            out.append((*box, int(line.sum()), None, True))
    return out


def split_lines(region: np.ndarray, prob: np.ndarray, height: int) -> list[np.ndarray]:
    """The lines (masks in ``region``'s box) of a region too tall for one in a frame
    ``height`` pixels high: the bands it narrows between (:func:`line_rows`), if there are at
    most :data:`MAX_SPLIT_LINES`; or else the line-shaped parts of its core above
    :data:`SPLIT_THRESHOLD` up to :data:`MAX_CORE_HEIGHT`, if there are at most as many. No
    lines otherwise (texture)."""
    rows = line_rows(region.mean(axis=1), 0, len(region), MAX_LINE_HEIGHT * height)
    if rows is not None and 2 <= len(rows) <= MAX_SPLIT_LINES:
        out = []
        for top, bottom in rows:
            line = np.zeros_like(region)
            line[top:bottom] = region[top:bottom]
            out.append(line)
        return out
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (region & (prob > SPLIT_THRESHOLD)).astype(np.uint8), connectivity=4
    )
    smallest = MIN_SPLIT_SHARE * int(region.sum())
    parts = [i for i in range(1, n) if stats[i, 4] >= smallest]
    if not 1 <= len(parts) <= MAX_SPLIT_LINES:
        return []
    highest = MAX_CORE_HEIGHT * height
    if any(stats[i, 3] > highest or stats[i, 2] < LINE_ASPECT * stats[i, 3] for i in parts):
        return []
    return [labels == i for i in parts]


def line_rows(
    fill: np.ndarray, top: int, bottom: int, tallest: float
) -> list[tuple[int, int]] | None:
    """Rows ``[top, bottom)`` of a region (``fill``: the share of each row it fills) cut into
    bands no taller than ``tallest``, each cut at the thinnest row between two lines (one that
    fills less than :data:`SPLIT_FILL` of the fullest rows on both sides); None where a band
    too tall has no such row."""
    if bottom - top <= tallest:
        return [(top, bottom)]
    inner = np.arange(top + MIN_HEIGHT, bottom - MIN_HEIGHT)
    if not inner.size:
        return None
    row = int(inner[np.argmin(fill[inner])])
    if fill[row] >= SPLIT_FILL * min(fill[top:row].max(), fill[row + 1 : bottom].max()):
        return None
    upper = line_rows(fill, top, row, tallest)
    lower = line_rows(fill, row + 1, bottom, tallest)
    return None if upper is None or lower is None else upper + lower


def polygon_score(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean of ``prob`` inside the polygon ``corners``."""
    (x0, y0), (x1, y1) = np.floor(corners.min(axis=0)), np.ceil(corners.max(axis=0))
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(prob.shape[1], int(x1) + 1), min(prob.shape[0], int(y1) + 1)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - (x0, y0)).astype(np.int32)], 1)
    return float(prob[y0:y1, x0:x1][mask.astype(bool)].mean()) if mask.any() else 0.0


def straightened(gray: np.ndarray, rect: Rect) -> np.ndarray:
    """The rotated rectangle ``rect`` of ``gray``, turned so that its long side
    runs left to right and its top stays up (a line tilted less than a right angle is read
    as written)."""
    (cx, cy), (rw, rh), angle = rect
    if rw < rh:
        rw, rh, angle = rh, rw, angle + 90
    along = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))], np.float32)
    along *= np.sign(along[0]) or 1.0  # left to right
    down = np.array([-along[1], along[0]], np.float32)  # a quarter turn clockwise: down
    width, height = max(1, round(rw)), max(1, round(rh))
    centre = np.array([cx, cy], np.float32)
    top_left = centre - along * rw / 2 - down * rh / 2
    source = np.float32([top_left, top_left + along * rw, top_left + down * rh])
    target = np.float32([[0, 0], [width, 0], [0, height]])
    warp = cv2.getAffineTransform(source, target)
    return cv2.warpAffine(gray, warp, (width, height), flags=cv2.INTER_LINEAR)

"""PP-OCR text detection for the on-screen text signal: the DB (differentiable binarisation)
detector of PP-OCRv6 small, as ONNX, run with onnxruntime.

The network maps a frame to a per-pixel text probability; connected regions above
``BINARY_THRESHOLD`` whose mean probability reaches ``analyze.text.ocr.threshold`` are text
lines. DB predicts a shrunken text kernel, so each region is grown back by
``UNCLIP_RATIO`` x area / perimeter (the reference post-processing, for axis-aligned boxes).

Weights come from the ``rapidocr`` package (Apache-2.0), which ships them inside its wheel,
or from the file in ``analyze.text.ocr.weights``. Frames are read at
``analyze.text.ocr.short_side`` from the same decode as the rest of the analysis.
"""

from __future__ import annotations

import importlib.util
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curate.config import ConfigError, OcrConfig

PACKAGE = "rapidocr"
MODEL_FILE = "models/PP-OCRv6_det_small.onnx"
NORM = 127.5
"""PP-OCRv6 detection reads pixels scaled to -1..1 (mean and std 0.5)."""
BINARY_THRESHOLD = 0.3
UNCLIP_RATIO = 1.6
MIN_HEIGHT = 3
"""Smallest text region, pixels of the frame read (a 2 %-high subtitle at 540 px is 11)."""
MAX_LINE_HEIGHT = 0.25
"""Tallest text line, as a share of the frame height: DB separates lines, so a taller region
is texture the network took for text (close-ups of wood grain, cut glass)."""


def weights_path(cfg: OcrConfig) -> Path:
    """The detection model to load; raises :class:`ConfigError` naming the key to fix when
    onnxruntime, the package or the file is missing (checked at start-up)."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(
            "analyze.text.detector=ocr needs onnxruntime (pip install onnxruntime), or choose "
            "analyze.text.detector=morphology"
        )
    if cfg.weights is not None:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"analyze.text.ocr.weights: no file at {path}")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "analyze.text.detector=ocr needs PP-OCR weights: install the rapidocr package "
            "(pip install rapidocr), set analyze.text.ocr.weights to a detection model, or "
            "choose analyze.text.detector=morphology"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ConfigError(
            f"analyze.text.ocr.weights: the rapidocr package has no {MODEL_FILE} (reinstall it "
            "or point this key at a PP-OCR detection model)"
        )
    return path


def providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ConfigError(
            "analyze.text.ocr.device: cuda requested but onnxruntime has no CUDA provider "
            "(install onnxruntime-gpu)"
        )
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@lru_cache(maxsize=2)
def load_session(weights: str, device: str) -> Any:
    """The detector as an onnxruntime session (once per process)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Analysis runs one source per worker process: two threads match its CPU share.
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(weights, options, providers=providers(device))


class OcrTextDetector:
    """PP-OCR's text detector behind the ``TextDetector`` interface."""

    def __init__(self, cfg: OcrConfig) -> None:
        self.cfg = cfg
        self.short_side = cfg.short_side

    @classmethod
    def check(cls, cfg: OcrConfig) -> None:
        weights_path(cfg)
        if cfg.device == "cuda":
            providers(cfg.device)

    @cached_property
    def session(self) -> Any:
        return load_session(str(weights_path(self.cfg)), self.cfg.device)

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """Text probability of every pixel of ``gray``."""
        h, w = gray.shape
        # The network downsamples by 32.
        size = (max(32, round(w / 32) * 32), max(32, round(h / 32) * 32))
        image = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR) if size != (w, h) else gray
        planes = np.repeat((image.astype(np.float32)[None] - NORM) / NORM, 3, axis=0)
        session = self.session
        (out,) = session.run(None, {session.get_inputs()[0].name: planes[None]})
        return cv2.resize(out[0, 0], (w, h), interpolation=cv2.INTER_LINEAR)

    def detect(self, gray: np.ndarray) -> np.ndarray:
        prob = self.probabilities(gray)
        h, w = gray.shape
        n, _, stats, _ = cv2.connectedComponentsWithStats(
            (prob > BINARY_THRESHOLD).astype(np.uint8), connectivity=4
        )
        if n <= 1:
            return np.zeros((0, 4), np.int32)
        # A region's score is the mean probability over its bounding box (the reference's
        # "fast" box score): a text line fills its box, a blob of texture does not.
        total = cv2.integral(prob.astype(np.float64))
        boxes = []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            inside = total[y + bh, x + bw] - total[y, x + bw] - total[y + bh, x] + total[y, x]
            if (
                min(bw, bh) < MIN_HEIGHT
                or bh > MAX_LINE_HEIGHT * h
                or inside / (bw * bh) < self.cfg.threshold
            ):
                continue
            grow = UNCLIP_RATIO * area / (2 * (bw + bh))
            boxes.append(
                (
                    max(0, int(x - grow)),
                    max(0, int(y - grow)),
                    min(w, int(np.ceil(x + bw + grow))),
                    min(h, int(np.ceil(y + bh + grow))),
                )
            )
        return np.asarray(boxes, np.int32).reshape(-1, 4)

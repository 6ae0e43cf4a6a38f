"""YOLO-family object detectors exported to ONNX (Ultralytics YOLOv8/v11 layout), run with
onnxruntime: NudeNet's ``320n.onnx`` and any COCO or custom model of that family.

The model reads an RGB image scaled to 0..1; its output is ``(1, 4 + classes, N)``: box
centre, width and height in input pixels, then one score per class. An image is scaled so
that its long side is the input size and padded at the bottom and right (the layout NudeNet
was trained with): to a square for a model with a fixed input, only to the network's stride
for one that takes any size (Ultralytics' rectangular inference: a 16:9 keyframe costs 40 %
less than its square). Boxes are returned as shares of the image, after non-maximum
suppression.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curate.config import ConfigError
from curate.models.onnx import session

NMS_IOU = 0.45
DEFAULT_SIZE = 640
"""Input side for a model that takes any size and is given none (Ultralytics' default)."""
STRIDE = 32
"""The network's largest downsampling: a free-size input is padded to a multiple of it."""
BATCH = 16
"""Images per forward pass."""


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 as shares of the image width and height."""

    @property
    def area(self) -> float:
        """Share of the image the box covers."""
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class YoloDetector:
    """One YOLO-family ONNX model and its class names (in the model's class order)."""

    def __init__(
        self,
        path: str,
        labels: list[str],
        device: str,
        key: str,
        size: int | None = None,
        device_key: str = "detect.device",
    ) -> None:
        """``key`` names the model setting in errors (``detect.nsfw.model``); ``size`` is its
        sibling ``input_size``; ``device_key`` names the ``device`` setting."""
        self.session = session(path, device, device_key)
        fixed = self.session.get_inputs()[0].shape[2]
        self.square = isinstance(fixed, int)
        if size is None:
            size = fixed if isinstance(fixed, int) else DEFAULT_SIZE
        elif isinstance(fixed, int) and size != fixed:
            size_key = key.rsplit(".", 1)[0] + ".input_size"
            raise ConfigError(
                f"{size_key}: the model at {key} reads {fixed} px images, not {size} "
                f"(set {fixed}, or null)"
            )
        self.size = size
        batch = self.session.get_inputs()[0].shape[0]
        # A model exported with a fixed batch (Ultralytics' default) reads that many at once.
        self.batch = batch if isinstance(batch, int) else BATCH
        classes = self.session.get_outputs()[0].shape[1]
        if isinstance(classes, int) and classes - 4 != len(labels):
            raise ConfigError(
                f"{key}: the model scores {classes - 4} classes but {len(labels)} class names "
                "are configured"
            )
        self.labels = labels

    def letterbox(self, bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """The network's input for ``bgr`` (``1 × 3 × H × W``) and the scale applied."""
        h, w = bgr.shape[:2]
        scale = self.size / max(h, w)
        scaled_w, scaled_h = max(1, round(w * scale)), max(1, round(h * scale))
        if self.square:
            input_w = input_h = self.size
        else:
            input_w = -(-scaled_w // STRIDE) * STRIDE
            input_h = -(-scaled_h // STRIDE) * STRIDE
        scaled = cv2.resize(bgr, (scaled_w, scaled_h), interpolation=cv2.INTER_LINEAR)
        padded = cv2.copyMakeBorder(
            scaled, 0, input_h - scaled_h, 0, input_w - scaled_w, cv2.BORDER_CONSTANT
        )
        return cv2.dnn.blobFromImage(padded, 1 / 255.0, swapRB=True), scale

    def detect(self, bgr: np.ndarray, min_score: float) -> list[Detection]:
        return self.detect_many([bgr], min_score)[0]

    def detect_many(self, images: list[np.ndarray], min_score: float) -> list[list[Detection]]:
        """The detections of every image (BGR), up to :data:`BATCH` images of one input size
        per forward pass (a GPU runs a batch for about the cost of one image; a CPU the same
        per image either way)."""
        found: list[list[Detection]] = []
        name = self.session.get_inputs()[0].name
        for start in range(0, len(images), self.batch):
            part = images[start : start + self.batch]
            blobs = [self.letterbox(image) for image in part]
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, (blob, _) in enumerate(blobs):
                by_shape.setdefault(blob.shape, []).append(i)
            results: list[list[Detection]] = [[] for _ in part]
            for indices in by_shape.values():
                batch = np.concatenate([blobs[i][0] for i in indices])
                (out,) = self.session.run(None, {name: batch})
                for i, rows in zip(indices, out):
                    h, w = part[i].shape[:2]
                    results[i] = self._detections(rows.T, blobs[i][1], w, h, min_score)
            found += results
        return found

    def _detections(
        self, rows: np.ndarray, scale: float, w: int, h: int, min_score: float
    ) -> list[Detection]:
        """Boxes above ``min_score`` after non-maximum suppression, from the network's rows."""
        scores = rows[:, 4:]
        best = scores.argmax(axis=1)
        score = scores[np.arange(len(rows)), best]
        keep = np.flatnonzero(score >= min_score)
        if not keep.size:
            return []
        cx, cy, bw, bh = (rows[keep, i] / scale for i in range(4))
        boxes = np.column_stack([cx - bw / 2, cy - bh / 2, bw, bh])
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), score[keep].tolist(), min_score, NMS_IOU)
        detections = []
        for i in np.asarray(chosen, dtype=int).ravel():
            x, y, bw_i, bh_i = boxes[i]
            box = (
                float(np.clip(x / w, 0, 1)),
                float(np.clip(y / h, 0, 1)),
                float(np.clip((x + bw_i) / w, 0, 1)),
                float(np.clip((y + bh_i) / h, 0, 1)),
            )
            detections.append(Detection(self.labels[best[keep[i]]], float(score[keep[i]]), box))
        return detections

"""The main subject's size: any YOLO-family ONNX detector (a COCO model, for instance) on each
clip's keyframes, with ``detect.objects.model``.

- ``subject_share``: the median over keyframes of the largest subject's share of the frame
  (Movie Gen drops clips that show only small objects: gate ``min_subject_share``);
- ``objects``: the classes seen.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from curate.config import ConfigError, SignalConfig
from curate.gates import Gate, at_least, score
from curate.models.yolo import Detection, YoloDetector
from curate.signals.base import KeyframeDetector


class ObjectsConfig(SignalConfig):
    """Any YOLO-family ONNX detector on the keyframes (a COCO model, for instance)."""

    model: str | None = Field(None, description="ONNX model; null: no object detection.")
    classes: list[str] = Field(
        default_factory=list, description="Class names, in the model's class order."
    )
    subjects: list[str] | None = Field(
        None, description="Classes that can be the main subject; null: every class."
    )
    threshold: float = Field(0.35, gt=0, lt=1, description="Score from which a box counts.")
    input_size: int | None = Field(
        None,
        ge=32,
        multiple_of=32,
        description="Side the keyframe's long side is scaled to (padded to a square for a model "
        "of fixed size, to a multiple of 32 otherwise); null: the model's own input size, or "
        "640 where the model takes any size.",
    )


class ObjectDetector(KeyframeDetector):
    name = "objects"
    config = ObjectsConfig
    fields = (pa.field("subject_share", pa.float32()), pa.field("objects", pa.list_(pa.string())))
    gates = (
        Gate(
            "min_subject_share",
            "subject_share",
            "small_subject",
            ("subject_share",),
            at_least,
            threshold=score(ge=0, le=1),
            description="Smallest share of the frame the main subject may take (needs "
            "detect.objects.model).",
        ),
    )
    scores = ("subject_share",)

    @classmethod
    def load(cls, block: ObjectsConfig, device: str) -> ObjectDetector | None:
        """The ``detect.objects`` model when one is configured, checked against its class
        list."""
        if block.model is None:
            return None
        path = Path(block.model).expanduser()
        if not path.is_file():
            raise ConfigError(f"detect.objects.model: no file at {path}")
        if not block.classes:
            raise ConfigError("detect.objects.classes: list the model's class names, in its order")
        unknown = set(block.subjects or ()) - set(block.classes)
        if unknown:
            raise ConfigError(f"detect.objects.subjects: not among the classes: {sorted(unknown)}")
        model = YoloDetector(
            str(path), block.classes, device, "detect.objects.model", block.input_size
        )
        return cls(model, block)

    def clip_values(self, found: list[list[Detection]]) -> dict[str, Any]:
        return object_values(found, self.block.subjects)


def object_values(found: list[list[Detection]], subjects: list[str] | None) -> dict[str, Any]:
    """A YOLO model's detections on each keyframe → ``subject_share``, ``objects``."""
    largest = [
        max((d.area for d in ds if subjects is None or d.label in subjects), default=0.0)
        for ds in found
    ]
    return {
        "subject_share": statistics.median(largest),
        "objects": sorted({d.label for ds in found for d in ds}),
    }

"""Sensitive content and faces: NudeNet (YOLOv8, MIT) on each clip's keyframes.

- ``nsfw_score`` / ``nsfw_classes``: NudeNet's highest score for an exposed sensitive body part
  over the keyframes, and which parts scored above ``detect.nsfw.threshold``;
- ``faces`` / ``face_share``: most faces in one keyframe and the largest face's share of the
  frame, from the same detections (a privacy signal).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pyarrow as pa
from pydantic import Field

from curate.config import ConfigError, SignalConfig
from curate.gates import Gate, at_most, number
from curate.models.model_files import model_file
from curate.models.yolo import Detection, YoloDetector
from curate.signals.base import KeyframeDetector

NUDENET_LABELS = [
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
]
"""NudeNet 3's classes, in its model's order."""

SENSITIVE = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
"""The classes that make a clip sensitive (NudeNet's exposed bellies, feet and armpits
do not)."""

FACES = frozenset({"FACE_FEMALE", "FACE_MALE"})


class NsfwConfig(SignalConfig):
    """NudeNet (YOLOv8, MIT) on the keyframes: sensitive content and faces."""

    enabled: bool = True
    model: str | None = Field(
        None, description="ONNX model; null: 320n.onnx from the nudenet package."
    )
    threshold: float = Field(
        0.4, gt=0, lt=1, description="Score from which a body part or face counts as found."
    )
    input_size: int | None = Field(
        None,
        ge=32,
        multiple_of=32,
        description="Side the keyframe's long side is scaled to (padded to a square for a model "
        "of fixed size, to a multiple of 32 otherwise); null: the model's own input size, or "
        "640 where it takes any (as 320n.onnx does). The nudenet package reads 320 px, a "
        "quarter of the cost, but misses faces and parts a 720p frame shows small.",
    )


class NsfwDetector(KeyframeDetector):
    name = "nsfw"
    config = NsfwConfig
    fields = (
        pa.field("nsfw_score", pa.float32()),
        pa.field("nsfw_classes", pa.list_(pa.string())),
        pa.field("faces", pa.int32()),
        pa.field("face_share", pa.float32()),
    )
    gates = (
        Gate(
            "max_nsfw",
            "nsfw_score",
            "nsfw",
            ("nsfw_score",),
            at_most,
            threshold=number(ge=0, le=1),
            description="Highest NudeNet score for an exposed sensitive body part.",
        ),
        Gate(
            "max_faces",
            "faces",
            "faces",
            ("faces",),
            at_most,
            threshold=number(int, ge=0),
            description="Most faces in one keyframe.",
        ),
        Gate(
            "max_face_share",
            "face_share",
            "face_close_up",
            ("face_share",),
            at_most,
            threshold=number(ge=0, le=1),
            description="Largest face's share of the frame (privacy close-ups).",
        ),
    )
    scores = ("nsfw_score", "face_share")

    @classmethod
    def load(cls, block: NsfwConfig, device: str) -> NsfwDetector | None:
        if not block.enabled:
            return None
        if importlib.util.find_spec("onnxruntime") is None:
            raise ConfigError(
                "detect.nsfw needs onnxruntime (pip install onnxruntime), or set "
                "detect.nsfw.enabled=false"
            )
        path = model_file(
            block.model,
            "detect.nsfw.model",
            "nudenet",
            "320n.onnx",
            "detect.nsfw needs NudeNet's model: install the nudenet package (pip install "
            "nudenet), set detect.nsfw.model to its 320n.onnx, or set detect.nsfw.enabled=false",
        )
        model = YoloDetector(
            str(path), NUDENET_LABELS, device, "detect.nsfw.model", block.input_size
        )
        return cls(model, block)

    @property
    def min_score(self) -> float:
        # ``nsfw_score`` is the highest score found, also below the threshold.
        return self.block.threshold / 2

    def clip_values(self, found: list[list[Detection]]) -> dict[str, Any]:
        return nsfw_values(found, self.block.threshold)


def nsfw_values(found: list[list[Detection]], threshold: float) -> dict[str, Any]:
    """NudeNet's detections on each keyframe → ``nsfw_score``, ``nsfw_classes``, ``faces``,
    ``face_share``."""
    sensitive = [d for ds in found for d in ds if d.label in SENSITIVE]
    faces = [[d for d in ds if d.label in FACES and d.score >= threshold] for ds in found]
    return {
        "nsfw_score": max((d.score for d in sensitive), default=0.0),
        "nsfw_classes": sorted({d.label for d in sensitive if d.score >= threshold}),
        "faces": max(len(f) for f in faces),
        "face_share": max((d.area for f in faces for d in f), default=0.0),
    }

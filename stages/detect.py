"""Detect stage: learned detectors in their own actor pool after the decode pass
(onnxruntime's CUDA provider where there is one), on frames the analyze stage kept (no
second decode).

- PP-OCR (``analyze.text.detector: ocr``): on-screen text in the frames the text signal
  sampled (``text_samples``), with the same temporal filter as in the decode pass;
- NudeNet (``detect.nsfw``): exposed sensitive body parts and faces, on the keyframes;
- any YOLO-family ONNX model (``detect.objects``): the main subject's share of the frame.

Text columns and gates are the text signal's (``curate.signals.text``); the keyframe
detectors' are declared in ``curate.signals.detections``.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate import schema
from curate.config import ConfigError, CurateConfig, DetectConfig, TextConfig
from curate.imaging import from_jpeg
from curate.model_files import model_file
from curate.signals.text import (
    DEFERRED_DETECTORS,
    TEXT_DETECTORS,
    TextDetector,
    clip_samples,
    clip_text_values,
    overlay_text,
)
from curate.stage import Stage
from curate.yolo import Detection, YoloDetector

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


def nudenet_detector(cfg: DetectConfig) -> YoloDetector | None:
    """NudeNet's detector when ``detect.nsfw`` is on; :class:`ConfigError` naming the key to
    fix when its model is missing."""
    if not cfg.nsfw.enabled:
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(
            "detect.nsfw needs onnxruntime (pip install onnxruntime), or set "
            "detect.nsfw.enabled=false"
        )
    path = model_file(
        cfg.nsfw.model,
        "detect.nsfw.model",
        "nudenet",
        "320n.onnx",
        "detect.nsfw needs NudeNet's model: install the nudenet package (pip install nudenet), "
        "set detect.nsfw.model to its 320n.onnx, or set detect.nsfw.enabled=false",
    )
    return YoloDetector(
        str(path), NUDENET_LABELS, cfg.device, "detect.nsfw.model", cfg.nsfw.input_size
    )


def objects_detector(cfg: DetectConfig) -> YoloDetector | None:
    """The ``detect.objects`` model when one is configured, checked against its class list."""
    objects = cfg.objects
    if objects.model is None:
        return None
    path = Path(objects.model).expanduser()
    if not path.is_file():
        raise ConfigError(f"detect.objects.model: no file at {path}")
    if not objects.classes:
        raise ConfigError("detect.objects.classes: list the model's class names, in its order")
    unknown = set(objects.subjects or ()) - set(objects.classes)
    if unknown:
        raise ConfigError(f"detect.objects.subjects: not among the classes: {sorted(unknown)}")
    return YoloDetector(
        str(path), objects.classes, cfg.device, "detect.objects.model", objects.input_size
    )


class DetectStage(Stage):
    """Runs the configured keyframe detectors over every candidate clip of a batch of
    analyzed sources, filling the ``curate.signals.detections`` columns."""

    name = "detect"

    def __init__(self, detect: DetectConfig, text: TextConfig, dim: int) -> None:
        self.cfg = detect
        self.text_cfg = text
        self.schema = schema.analyzed_source_schema(dim)
        self.loaded = False

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {"detect": config.detect, "text": config.analyze.text, "dim": config.embed.dim}

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        # Loading the models checks files, class counts and the device (sessions are cached).
        nudenet_detector(config.detect)
        objects_detector(config.detect)
        return {}

    @cached_property
    def text(self) -> TextDetector | None:
        if self.text_cfg.detector not in DEFERRED_DETECTORS:
            return None
        return TEXT_DETECTORS[self.text_cfg.detector](self.text_cfg)

    @cached_property
    def nudenet(self) -> YoloDetector | None:
        return nudenet_detector(self.cfg)

    @cached_property
    def objects(self) -> YoloDetector | None:
        return objects_detector(self.cfg)

    def load(self) -> float:
        """Load the models before the first source (seconds it took; 0 once loaded), so that
        the first source's timings are the models' work, not their loading."""
        if self.loaded:
            return 0.0
        started = time.perf_counter()
        if self.text is not None:
            # PP-OCR opens its sessions on its first frame.
            self.text.detect(np.zeros((224, 400), np.uint8))
        _ = self.nudenet, self.objects
        self.loaded = True
        return time.perf_counter() - started

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        load_s = self.load()
        for row in rows:
            started = time.perf_counter() - load_s  # the first source's busy time includes it
            timing = dict(row.get("timing") or ())
            if load_s:
                timing["detect.load.model_s"], load_s = load_s, 0.0
            samples = row.pop("text_samples", None)
            if self.text is not None and samples is not None:
                self.read_text(samples, row["clips"], timing)
            keyframes = [[from_jpeg(k) for k in clip["keyframes"] or []] for clip in row["clips"]]
            for clip, values in zip(row["clips"], self.scores(keyframes, timing)):
                clip.update(values)
            timing["detect.busy_s"] = time.perf_counter() - started
            row["timing"] = timing
        return schema.from_rows(rows, self.schema)

    def read_text(
        self, samples: list[dict], clips: list[dict], timing: dict[str, float] | None = None
    ) -> None:
        """The text columns of every clip from the source's sampled frames (only the samples
        some clip reads are run through the detector, at most
        ``analyze.text.ocr.max_frames_per_clip`` per clip: the rest of a source is no clip's).
        ``timing`` gets the detector's seconds and frames (``curate.timing``)."""
        times = np.asarray([s["time"] for s in samples])
        at_most = self.text_cfg.ocr.max_frames_per_clip
        reads = [clip_samples(times, c["start_s"], c["end_s"], at_most) for c in clips]
        ratios = np.zeros(len(samples), np.float32)
        readings: list[list[str]] = [[] for _ in samples]
        read = sorted({int(i) for inside in reads for i in inside})
        seconds = 0.0
        for i in read:
            frame, confirm = (from_jpeg(samples[i][k], gray=True) for k in ("frame", "confirm"))
            started = time.perf_counter()
            ratios[i], readings[i] = overlay_text(self.text, frame, confirm)
            seconds += time.perf_counter() - started
        if timing is not None:
            _add(timing, f"detect.{self.text_cfg.detector}", seconds, frames=len(read))
        for clip, inside in zip(clips, reads):
            clip.update(clip_text_values(ratios, readings, inside))

    def scores(
        self, keyframes: list[list[np.ndarray]], timing: dict[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """The detection columns of each clip from its keyframes (BGR), every clip's keyframes
        read by each model together; ``timing`` gets each model's seconds and keyframes
        (``curate.timing``)."""
        out: list[dict[str, Any]] = [{} for _ in keyframes]
        flat = [k for clip in keyframes for k in clip]
        models = (
            (self.nudenet, "nsfw", self.cfg.nsfw.threshold / 2, self._nsfw_values),
            (self.objects, "objects", self.cfg.objects.threshold, self._object_values),
        )
        for model, part, min_score, values_of in models:
            if model is None or not flat:
                continue
            started = time.perf_counter()
            found = iter(model.detect_many(flat, min_score))
            if timing is not None:
                _add(timing, f"detect.{part}", time.perf_counter() - started, keyframes=len(flat))
            for values, clip in zip(out, keyframes):
                if clip:
                    values.update(values_of([next(found) for _ in clip]))
        return out

    def _nsfw_values(self, found: list[list[Detection]]) -> dict[str, Any]:
        return nsfw_values(found, self.cfg.nsfw.threshold)

    def _object_values(self, found: list[list[Detection]]) -> dict[str, Any]:
        return object_values(found, self.cfg.objects.subjects)


def _add(timing: dict[str, float], part: str, seconds: float, **counts: int) -> None:
    """Add a model's seconds and counts to ``timing`` under ``part`` (``detect.nsfw``)."""
    for key, value in {"model_s": seconds, **counts}.items():
        timing[f"{part}.{key}"] = timing.get(f"{part}.{key}", 0.0) + value


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

"""Detect stage: learned detectors in their own actor pool after the decode pass
(onnxruntime's CUDA provider where there is one), on frames the analyze stage kept (no
second decode).

- PP-OCR (``analyze.text.detector: ocr``): on-screen text in the frames the text signal
  sampled (``text_samples``), with the same temporal filter as in the decode pass; lines that
  read like a watermark (a web address, a handle, a stock site's or a video app's name …,
  ``curate.signals.watermark.reads_like_a_mark``) also raise ``watermark_score`` (read
  in the clip's frames, or in the median and the low frame of the source's, where a faint
  mark stands out over the blurred or darkened picture), and a mark found in a clip's
  subtitles is cleared from it;
- every registered keyframe detector (``curate.signals.KeyframeDetector``: NudeNet's
  ``detect.nsfw``, a YOLO-family ``detect.objects`` model), on the keyframes.

Columns and gates are the signals' own (``curate.signals.text``, ``curate.signals.nsfw`` …).
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from curate import contract, schema
from curate.config.sections import CurateConfig, DetectConfig
from curate.media.imaging import from_jpeg
from curate.run.stage import Stage
from curate.signals import KeyframeDetector
from curate.signals.text import (
    DEFERRED_DETECTORS,
    TEXT_DETECTORS,
    TextConfig,
    TextDetector,
    TextLine,
    clip_samples,
    clip_text_values,
    overlay_text,
    read_lines,
)
from curate.signals.watermark import (
    LOOK_AGAIN_SAMPLES,
    MIN_STACKED_SAMPLES,
    STACKED_SAMPLES,
    reads_like_a_mark,
    stacked_marks,
    vouching,
    with_read_lines,
)


class DetectStage(Stage):
    """Runs the configured keyframe detectors over every candidate clip of a batch of
    analyzed sources, filling their columns (and the text columns, where OCR runs here)."""

    name = "detect"

    def __init__(self, detect: DetectConfig, text: TextConfig, dim: int) -> None:
        self.cfg = detect
        self.text_cfg = text
        self.schema = contract.analyzed_source_schema(dim)
        self.loaded = False

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {"detect": config.detect, "text": config.analyze.text, "dim": config.embed.dim}

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        # Loading the models checks files, class counts and the device (sessions are cached).
        load_detectors(config.detect)
        return {}

    @cached_property
    def text(self) -> TextDetector | None:
        if self.text_cfg.detector not in DEFERRED_DETECTORS:
            return None
        return TEXT_DETECTORS[self.text_cfg.detector](self.text_cfg)

    @cached_property
    def detectors(self) -> list[KeyframeDetector]:
        return load_detectors(self.cfg)

    def load(self) -> float:
        """Load the models before the first source (seconds it took; 0 once loaded), so that
        the first source's timings are the models' work, not their loading."""
        if self.loaded:
            return 0.0
        started = time.perf_counter()
        if self.text is not None:
            # PP-OCR opens its sessions on its first frame.
            self.text.detect(np.zeros((224, 400), np.uint8))
        _ = self.detectors
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
        ``analyze.text.ocr.max_frames_per_clip`` per clip: the rest of a source is no clip's,
        unless a mark is to be looked for again, :meth:`look_again`), and the watermark
        columns after the lines read in the clip's frames and those that vouch for it
        (``curate.signals.watermark``'s ``vouching`` and ``with_read_lines``: raised where
        they read like a mark, cleared where the mark is the subtitles) and those read in the
        stack of the source's frames (:meth:`stacked_marks`). ``timing`` gets the detector's
        seconds and frames (``curate.timing``)."""
        times = np.asarray([s["time"] for s in samples])
        at_most = self.text_cfg.ocr.max_frames_per_clip
        reads = [clip_samples(times, c["start_s"], c["end_s"], at_most) for c in clips]
        ratios = np.zeros(len(samples), np.float32)
        readings: list[list[str]] = [[] for _ in samples]
        lines: list[list[TextLine]] = [[] for _ in samples]
        read = sorted({int(i) for inside in reads for i in inside})
        started = time.perf_counter()
        for i in read:
            frame, confirm = (from_jpeg(samples[i][k], gray=True) for k in ("frame", "confirm"))
            ratios[i], readings[i], lines[i] = overlay_text(self.text, frame, confirm)
        marked = [i for i in read if any(map(reads_like_a_mark, lines[i]))]
        if len(marked) == 1:
            # One reading is no proof either way: look again over the rest of the source.
            again = self.look_again(samples, read, lines)
            read = sorted({*read, *again})
            marked = [i for i in read if any(map(reads_like_a_mark, lines[i]))]
        if timing is not None:
            seconds = time.perf_counter() - started
            _add(timing, f"detect.{self.text_cfg.detector}", seconds, frames=len(read))
        # A mark stays through the source: read in two of its frames, it marks each clip it
        # is read in, or read before and after (vouching).
        source = (len(marked), len(read))
        started = time.perf_counter()
        stacked = self.stacked_marks(samples) if clips else None
        if timing is not None and clips:
            _add(timing, "detect.stacked_marks", time.perf_counter() - started)
        for clip, inside in zip(clips, reads):
            clip.update(clip_text_values(ratios, readings, inside))
            seen = {*inside.tolist(), *vouching(times, marked, clip["start_s"], clip["end_s"])}
            # A mark read in the stack of the source's frames is on most of them: every clip.
            clip.update(with_read_lines(clip, [lines[i] for i in sorted(seen)], source, stacked))

    def look_again(
        self, samples: list[dict], read: list[int], lines: list[list[TextLine]]
    ) -> list[int]:
        """Read up to ``LOOK_AGAIN_SAMPLES`` more of the source's sampled frames, spread over
        it and not read yet, into ``lines``; the indices read."""
        again = spread(sorted(set(range(len(samples))) - set(read)), LOOK_AGAIN_SAMPLES)
        for i in again:
            lines[i] = read_lines(self.text, from_jpeg(samples[i]["frame"], gray=True), False)
        return again

    def stacked_marks(self, samples: list[dict]) -> dict | None:
        """The watermark columns read in the stack of up to ``STACKED_SAMPLES`` of the
        source's sampled frames spread over it (``curate.signals.watermark.stacked_marks``)."""
        if len(samples) < MIN_STACKED_SAMPLES:
            return None
        picked = spread(list(range(len(samples))), STACKED_SAMPLES)
        frames = [from_jpeg(samples[i]["frame"], gray=True) for i in picked]
        return stacked_marks(self.text, frames)

    def scores(
        self, keyframes: list[list[np.ndarray]], timing: dict[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """The detection columns of each clip from its keyframes (BGR), every clip's keyframes
        read by each model together; ``timing`` gets each model's seconds and keyframes
        (``curate.timing``)."""
        out: list[dict[str, Any]] = [{} for _ in keyframes]
        flat = [k for clip in keyframes for k in clip]
        for detector in self.detectors if flat else ():
            started = time.perf_counter()
            found = iter(detector.model.detect_many(flat, detector.min_score))
            if timing is not None:
                seconds = time.perf_counter() - started
                _add(timing, f"detect.{detector.name}", seconds, keyframes=len(flat))
            for values, clip in zip(out, keyframes):
                if clip:
                    values.update(detector.clip_values([next(found) for _ in clip]))
        return out


def spread(items: list[int], count: int) -> list[int]:
    """Up to ``count`` of ``items``, spread evenly over them, the first and the last
    included."""
    picks = np.linspace(0, len(items) - 1, min(count, len(items)))
    return sorted({items[round(k)] for k in picks})


def load_detectors(cfg: DetectConfig) -> list[KeyframeDetector]:
    """The keyframe detectors ``detect`` turns on, in registry order, with their models
    loaded (``ConfigError`` naming the key to fix when one cannot load)."""
    loaded = (d.load(getattr(cfg, d.name), cfg.device) for d in contract.KEYFRAME_DETECTORS)
    return [d for d in loaded if d is not None]


def _add(timing: dict[str, float], part: str, seconds: float, **counts: int) -> None:
    """Add a model's seconds and counts to ``timing`` under ``part`` (``detect.nsfw``)."""
    for key, value in {"model_s": seconds, **counts}.items():
        timing[f"{part}.{key}"] = timing.get(f"{part}.{key}", 0.0) + value

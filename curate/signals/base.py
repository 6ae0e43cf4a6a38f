"""What a signal is: the declarations every signal makes beside its code (:class:`Signal`),
and the two kinds of signal.

- A :class:`FrameSignal` is fed the frames of the single decode pass one by one (``wants`` /
  ``update``), keeps only what it needs (a number per frame, a few samples, tiny keyframes),
  hands over its per-frame series at the end (``finish``) and turns that series into the
  values of one clip window (``clip_values``). Its block is ``analyze.<name>``.
- A :class:`KeyframeDetector` runs a learned detector over each clip's keyframes in the detect
  stage's own actor pool (on the GPU where there is one), not per frame. Its block is
  ``detect.<name>``.

The config sections, the analysis schema, the tier gates, the reject vocabulary and the scores
that ``inspect`` and the report summarise are all assembled from these declarations
(``curate.contract``), in the order of ``curate.signals.SIGNALS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from curate.config import SignalConfig
from curate.gates import Gate

if TYPE_CHECKING:
    from curate.contract import AnalyzeConfig
    from curate.media.video import DecodedFrame
    from curate.models.yolo import Detection, YoloDetector


@dataclass(frozen=True)
class ClipWindow:
    """One candidate clip: frames ``[start, end)`` of shot ``shot_index``."""

    shot_index: int
    start: int
    end: int
    start_s: float
    """Presentation time of the first frame."""
    end_s: float
    """End of the last frame (exclusive)."""
    planned_start_s: float
    """Where the clip could have started before its start moved to the sharpest frame."""


class Signal:
    """Everything a signal declares about itself, read by ``curate.contract``."""

    name: ClassVar[str]
    """Its config block's key in :attr:`section` (``analyze.<name>``)."""
    section: ClassVar[str]
    """The config section holding its block: ``analyze`` or ``detect``."""
    config: ClassVar[type[SignalConfig]] = SignalConfig
    """Its config block: a :class:`~curate.config.SignalConfig` subclass with a default and a
    description for every setting (the bare class for a signal without settings)."""
    fields: ClassVar[tuple[pa.Field, ...]] = ()
    """The ``analysis`` columns it fills."""
    gates: ClassVar[tuple[Gate, ...]] = ()
    """The tier gates on those columns, with the types their thresholds take."""
    scores: ClassVar[tuple[str, ...]] = ()
    """Its numeric columns that ``curate inspect`` and the report summarise."""
    media: ClassVar[tuple[str, ...]] = ("video", "image")
    """The kinds of media it measures: a signal of change over time (shots, motion) declares
    ``("video",)``; it does not run on images, its columns stay null there and its gates
    apply to video tiers only."""


class FrameSignal(Signal, ABC):
    """A signal computed in the decode pass, from every frame it wants."""

    section = "analyze"
    source_fields: ClassVar[tuple[pa.Field, ...]] = ()
    """Per-source values handed to a later stage with the analyzed source (frames kept for a
    learned model that runs in its own pool); that stage clears them, they are not stored."""

    @classmethod
    def from_config(cls, analyze: AnalyzeConfig) -> FrameSignal:
        """A fresh signal for one source, from its own block of ``analyze``."""
        return cls(getattr(analyze, cls.name))

    @classmethod
    def check(cls, block: Any) -> None:
        """Fail at start-up, with a ``ConfigError`` naming the key to fix, when the signal
        cannot run as configured by ``block`` (its ``analyze.<name>`` section): a model that
        is not installed, a weights file that is missing. (A keyframe detector's check is its
        :meth:`KeyframeDetector.load`.)"""
        return None

    @classmethod
    def warm_up(cls, block: Any) -> None:
        """Load the models the signal runs (once per process), so that the first source does
        not pay for it; a signal without a model does nothing."""
        return None

    def wants(self, frame: DecodedFrame) -> bool:
        """Whether ``frame`` needs to be looked at (cheap: called for every frame)."""
        return True

    @abstractmethod
    def update(self, frame: DecodedFrame) -> None:
        """Take in one decoded frame (in decode order; only frames it wants)."""

    def update_still(self, frame: DecodedFrame) -> None:
        """Take in the one frame of a still image: a picture that holds still, so what the
        signal would confirm on a later frame it confirms on this one."""
        if self.wants(frame):
            self.update(frame)

    @abstractmethod
    def finish(self) -> Any:
        """The per-frame series of the whole source."""

    def model_timing(self) -> dict[str, float]:
        """Work the signal handed to a model running on a thread of its own, read after
        :meth:`finish` for ``curate.timing``: ``<part>.<measure>`` keys, seconds ending in
        ``_s``, counts otherwise (``transnetv2.network_s``, ``transnetv2.frames``)."""
        return {}

    def clip_values(self, series: Any, clip: ClipWindow) -> dict[str, Any]:
        """The values of :attr:`fields` for one clip window of ``series``."""
        return {}

    def source_values(self, series: Any) -> dict[str, Any]:
        """The values of :attr:`source_fields` for the whole source."""
        return {}


def samples_in(times: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Indices of the samples inside the clip, or of the nearest one if none is."""
    inside = np.flatnonzero((times >= start_s) & (times < end_s))
    if inside.size == 0 and times.size:
        inside = np.array([int(np.argmin(np.abs(times - (start_s + end_s) / 2)))])
    return inside


class SampledSignal(FrameSignal):
    """A per-frame signal that measures one number (:meth:`measure`) on frames sampled at its
    block's ``fps``; a clip's values come from the samples inside it (:meth:`in_clip`)."""

    def __init__(self, cfg: Any) -> None:
        self.fps = cfg.fps
        self.times: list[float] = []
        self.values: list[float] = []
        self._next_t = 0.0

    @abstractmethod
    def measure(self, frame: DecodedFrame) -> float:
        """The number of one sampled frame."""

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t

    def update(self, frame: DecodedFrame) -> None:
        self.times.append(frame.time)
        self.values.append(self.measure(frame))
        self._next_t = frame.time + 1.0 / self.fps

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.times), np.asarray(self.values, np.float32)

    @staticmethod
    def in_clip(series: tuple[np.ndarray, np.ndarray], clip: ClipWindow) -> np.ndarray:
        """The values of the samples inside ``clip`` (the nearest one if none is)."""
        times, values = series
        return values[samples_in(times, clip.start_s, clip.end_s)]


class KeyframeDetector(Signal, ABC):
    """A learned detector run on the keyframes the decode pass kept (the detect stage runs
    every registered one over a batch of sources, all keyframes through the model at once)."""

    section = "detect"

    def __init__(self, model: YoloDetector, block: Any) -> None:
        self.model = model
        self.block = block

    @classmethod
    @abstractmethod
    def load(cls, block: Any, device: str) -> KeyframeDetector | None:
        """The detector with its model loaded on ``device`` (``detect.device``), or ``None``
        when ``block`` turns it off; a ``ConfigError`` naming the key to fix when its model
        is missing or does not fit its settings."""

    @property
    def min_score(self) -> float:
        """The lowest score a detection needs to be reported to :meth:`clip_values`."""
        return float(self.block.threshold)

    @abstractmethod
    def clip_values(self, found: list[list[Detection]]) -> dict[str, Any]:
        """The values of :attr:`fields` for one clip from the detections on each of its
        keyframes."""

"""Shot boundaries: where one shot ends and the next begins, and the transitions between them.

Four detectors, chosen by ``analyze.shots.detector`` (:data:`SHOT_DETECTORS`):

- ``combined`` (default): a cheap test on every frame flags where a boundary may be — a frame
  that differs from its neighbours far more than they differ from each other (hard cuts, also
  in greyscale footage), or a colour distribution that drifts far within a few frames (fades,
  dissolves) — and TransNetV2 runs on the 50-frame chunks around those frames only, with the
  reference's context (within 0.07 of a full pass where neighbouring chunks run together).
- ``transnetv2``: TransNetV2 on every frame (cheap on a GPU, about 320 frames/s in bfloat16
  on 2 CPU threads).
- ``adaptive``, ``content``: PySceneDetect's AdaptiveDetector and ContentDetector fed frame by
  frame at half the analysis size (128 px short side by default: about what PySceneDetect's own
  auto-downscale gives 720p input).

The series is a :class:`Shots`: the shots as frame spans. A gradual transition (TransNetV2's
transition head above ``transition_threshold`` around a boundary) belongs to neither shot, so
no clip is planned across or inside it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field
from scenedetect.detectors import AdaptiveDetector, ContentDetector

from curate.config import Model, SignalConfig
from curate.media.video import DecodedFrame
from curate.signals import transnet
from curate.signals.base import FrameSignal
from curate.signals.transnet import ChunkedTransNet, TransNetV2Config, tiny_rgb, weights_path


class ContentDetectorConfig(Model):
    """PySceneDetect ContentDetector parameters (see its documentation)."""

    threshold: float = Field(27.0, gt=0)
    min_scene_len: int = Field(15, ge=1, description="Frames.")
    luma_only: bool = False


class AdaptiveDetectorConfig(Model):
    """PySceneDetect AdaptiveDetector parameters (see its documentation)."""

    adaptive_threshold: float = Field(3.0, gt=0)
    min_scene_len: int = Field(15, ge=1, description="Frames.")
    window_width: int = Field(2, ge=1)
    min_content_val: float = Field(15.0, ge=0)
    luma_only: bool = False


class CandidatesConfig(Model):
    """The combined detector's cheap per-frame test for where TransNetV2 should look."""

    cut_ratio: float = Field(
        3.0,
        gt=1,
        description="A frame is a cut candidate when its difference to the previous frame is "
        "this many times the median difference around it ...",
    )
    min_cut_difference: float = Field(
        2.0, ge=0, description="... and at least this mean absolute difference (0-255)."
    )
    sure_cut_difference: float = Field(
        40.0,
        gt=0,
        description="A difference this large needs only half of cut_ratio to be a candidate.",
    )
    gradual_lag: int = Field(
        8, ge=2, description="Frames between the two pictures compared for slow transitions."
    )
    gradual_distance: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Colour-histogram distance (0-1) over gradual_lag frames that marks a "
        "possible fade or dissolve.",
    )
    gradual_contrast: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A picture whose contrast (standard deviation of luma) falls below, or "
        "rises from below, this share of the other's over gradual_lag frames marks a possible "
        "fade (through black or white, or of titles over a plain background).",
    )


class ShotsConfig(SignalConfig):
    detector: Literal["combined", "transnetv2", "adaptive", "content"] = Field(
        "combined",
        description="combined: TransNetV2 on the stretches a cheap test flags; transnetv2: "
        "TransNetV2 on every frame; adaptive, content: PySceneDetect's detectors.",
    )
    content: ContentDetectorConfig = ContentDetectorConfig()
    adaptive: AdaptiveDetectorConfig = AdaptiveDetectorConfig()
    transnetv2: TransNetV2Config = TransNetV2Config()
    candidates: CandidatesConfig = CandidatesConfig()


@dataclass
class Shots:
    spans: list[tuple[int, int]]
    """Each shot's frames ``[start, end)``, in order; frames between two shots (a fade or a
    dissolve) belong to neither."""
    probabilities: np.ndarray | None = None
    """TransNetV2's per-frame probability that a frame ends a shot (NaN where it did not run);
    None for the PySceneDetect detectors."""

    @property
    def cuts(self) -> list[int]:
        """First frame of every shot but the first."""
        return [start for start, _ in self.spans[1:]]

    @classmethod
    def from_cuts(cls, cuts: list[int], num_frames: int) -> Shots:
        edges = [0, *sorted({c for c in cuts if 0 < c < num_frames}), num_frames]
        return cls([(a, b) for a, b in itertools.pairwise(edges) if b > a])


def spans_from_probabilities(
    single: np.ndarray, many: np.ndarray, cfg: TransNetV2Config
) -> list[tuple[int, int]]:
    """Shots from TransNetV2's two heads: every run of frames above ``threshold`` is one
    boundary; the transition head widens it to the whole fade or dissolve around it. A
    boundary of one or two frames is a hard cut: the new shot starts after its last frame."""
    n = len(single)
    above = np.nan_to_num(single, nan=0.0) > cfg.threshold
    inside = np.nan_to_num(many, nan=0.0) > cfg.transition_threshold
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    while i < n:
        if not above[i]:
            i += 1
            continue
        first = i
        while i < n and above[i]:
            i += 1
        last = i - 1
        lo, hi = first, last
        while lo > start and inside[lo - 1]:
            lo -= 1
        while hi + 1 < n and inside[hi + 1]:
            hi += 1
        end, next_start = (last + 1, last + 1) if hi - lo < 2 else (lo, hi + 1)
        if end > start:
            spans.append((start, end))
        start = max(next_start, start)
        i = max(i, next_start)
    if n > start:
        spans.append((start, n))
    return spans


class ShotDetector(ABC):
    """One way of finding shots, fed every decoded frame."""

    def __init__(self, cfg: ShotsConfig) -> None:
        self.cfg = cfg

    @classmethod
    def check(cls, cfg: ShotsConfig) -> None:
        """Fail at start-up (``ConfigError`` naming the key) when the detector cannot run."""
        return None

    @classmethod
    def warm_up(cls, cfg: ShotsConfig) -> None:
        return None

    @abstractmethod
    def update(self, frame: DecodedFrame) -> None: ...

    @abstractmethod
    def finish(self, num_frames: int) -> Shots: ...


# PySceneDetect -------------------------------------------------------------------------------


def _mean_pixel_distance(left: np.ndarray, right: np.ndarray) -> float:
    """PySceneDetect's mean absolute difference of two 8-bit planes as one OpenCV pass: the
    same sum, without numpy's int32 copies of both planes, which cost more than the rest of
    the shot detector."""
    return cv2.norm(left, right, cv2.NORM_L1) / float(left.shape[0] * left.shape[1])


class _FastFrameScore:
    """ContentDetector's frame score (``_calculate_frame_score`` of scenedetect 0.6, without
    its stats manager) with the OpenCV distance above."""

    def _calculate_frame_score(self, frame_num: int, frame_img: np.ndarray) -> float:
        hue, sat, lum = cv2.split(cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV))
        edges = self._detect_edges(lum) if self._weights.delta_edges > 0.0 else None
        last = self._last_frame
        self._last_frame = ContentDetector._FrameData(hue, sat, lum, edges)
        if last is None:
            return 0.0
        components = ContentDetector.Components(
            delta_hue=_mean_pixel_distance(hue, last.hue),
            delta_sat=_mean_pixel_distance(sat, last.sat),
            delta_lum=_mean_pixel_distance(lum, last.lum),
            delta_edges=0.0 if edges is None else _mean_pixel_distance(edges, last.edges),
        )
        return sum(c * w for c, w in zip(components, self._weights)) / sum(
            abs(w) for w in self._weights
        )


class FastContentDetector(_FastFrameScore, ContentDetector):
    pass


class FastAdaptiveDetector(_FastFrameScore, AdaptiveDetector):
    pass


class _SceneDetectDetector(ShotDetector):
    def __init__(self, cfg: ShotsConfig) -> None:
        super().__init__(cfg)
        self.detector = self.make(cfg)
        self.cuts: list[int] = []
        self.last = -1

    @staticmethod
    @abstractmethod
    def make(cfg: ShotsConfig) -> ContentDetector: ...

    def update(self, frame: DecodedFrame) -> None:
        self.cuts.extend(self.detector.process_frame(frame.index, frame.small_bgr))
        self.last = frame.index

    def finish(self, num_frames: int) -> Shots:
        if self.last >= 0:
            self.cuts.extend(self.detector.post_process(self.last))
        return Shots.from_cuts(self.cuts, num_frames)


class ContentShots(_SceneDetectDetector):
    @staticmethod
    def make(cfg: ShotsConfig) -> ContentDetector:
        c = cfg.content
        return FastContentDetector(
            threshold=c.threshold, min_scene_len=c.min_scene_len, luma_only=c.luma_only
        )


class AdaptiveShots(_SceneDetectDetector):
    @staticmethod
    def make(cfg: ShotsConfig) -> ContentDetector:
        a = cfg.adaptive
        return FastAdaptiveDetector(
            adaptive_threshold=a.adaptive_threshold,
            min_scene_len=a.min_scene_len,
            window_width=a.window_width,
            min_content_val=a.min_content_val,
            luma_only=a.luma_only,
        )


# TransNetV2 ----------------------------------------------------------------------------------


class TransNetV2Shots(ShotDetector):
    """TransNetV2 on every frame."""

    every_chunk: ClassVar[bool] = True

    def __init__(self, cfg: ShotsConfig) -> None:
        super().__init__(cfg)
        self.net = ChunkedTransNet(
            cfg.transnetv2, every_chunk=self.every_chunk, settle=self.settle(cfg)
        )

    @classmethod
    def settle(cls, cfg: ShotsConfig) -> int:
        """Frames after a chunk's last frame within which ``update`` may still ask for it."""
        return 0

    @classmethod
    def check(cls, cfg: ShotsConfig) -> None:
        weights_path(cfg.transnetv2)

    @classmethod
    def warm_up(cls, cfg: ShotsConfig) -> None:
        transnet.warm_up(cfg.transnetv2)

    def update(self, frame: DecodedFrame) -> None:
        self.net.add(tiny_rgb(frame.small_bgr))

    def finish(self, num_frames: int) -> Shots:
        single, many = self.net.finish()
        return Shots(spans_from_probabilities(single, many, self.cfg.transnetv2), single)


HISTOGRAM_BITS = 3
"""Bits per RGB channel of the colour histogram (512 bins, as TransNetV2's own)."""


def colour_histogram(tiny: np.ndarray) -> np.ndarray:
    q = tiny >> (8 - HISTOGRAM_BITS)
    code = (q[..., 0].astype(np.int32) << 6) | (q[..., 1].astype(np.int32) << 3) | q[..., 2]
    return np.bincount(code.ravel(), minlength=512).astype(np.float32) / code.size


MIN_FADE_CONTRAST = 8.0
"""Luma standard deviation below which a picture is plain anyway (a black frame's noise
halving is no fade)."""


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the picture whose colour moved to another bin (0: same, 1: disjoint)."""
    return 0.5 * float(np.abs(a - b).sum())


class CombinedShots(TransNetV2Shots):
    """TransNetV2 only around candidate boundaries.

    Hard cuts: the frame difference (mean absolute, 48×27 RGB) against ``cut_ratio`` times the
    median difference of the ``RATIO_WINDOW`` frames on either side — a jump cut in a
    greyscale film is small in absolute terms but still stands far out of its neighbours,
    while motion raises the neighbours too. Gradual transitions: against the frame
    ``gradual_lag`` frames back, the colour histogram distance (a dissolve between two shots
    drives it up, a moving camera over one scene does not) and the contrast (a fade through
    black or white, or of titles over a plain background, halves it).
    """

    every_chunk = False
    RATIO_WINDOW = 8

    @classmethod
    def settle(cls, cfg: ShotsConfig) -> int:
        # A frame is judged RATIO_WINDOW frames after it arrives and asks for the two frames
        # before it too; a fade is asked for gradual_lag frames back. Both asks come after the
        # frame was added (+1), and one frame spare.
        return max(cls.RATIO_WINDOW + 2, cfg.candidates.gradual_lag) + 2

    def __init__(self, cfg: ShotsConfig) -> None:
        super().__init__(cfg)
        self.c = cfg.candidates
        self.prev: np.ndarray | None = None
        self.diffs: list[float] = []
        """Difference of every frame to the one before (a float per frame: cheap to keep)."""
        self.hists: deque[np.ndarray] = deque(maxlen=self.c.gradual_lag + 1)
        self.contrasts: deque[float] = deque(maxlen=self.c.gradual_lag + 1)

    def update(self, frame: DecodedFrame) -> None:
        tiny = tiny_rgb(frame.small_bgr)
        self.net.add(tiny)
        index = len(self.diffs)
        diff = 0.0 if self.prev is None else cv2.norm(tiny, self.prev, cv2.NORM_L1) / tiny.size
        self.prev = tiny
        self.diffs.append(diff)
        if index >= self.RATIO_WINDOW:
            self._test_cut(index - self.RATIO_WINDOW)
        hist = colour_histogram(tiny)
        contrast = float(cv2.cvtColor(tiny, cv2.COLOR_RGB2GRAY).std())
        if len(self.hists) == self.hists.maxlen and (
            histogram_distance(hist, self.hists[0]) >= self.c.gradual_distance
            or self._fading(contrast, self.contrasts[0])
        ):
            self.net.want(index - self.c.gradual_lag, index)
        self.hists.append(hist)
        self.contrasts.append(contrast)

    def _fading(self, now: float, before: float) -> bool:
        low, high = sorted((now, before))
        return high >= MIN_FADE_CONTRAST and low < self.c.gradual_contrast * high

    def _test_cut(self, index: int) -> None:
        """Is frame ``index`` a cut candidate, judged against the frames around it?"""
        diff = self.diffs[index]
        if index == 0 or diff < self.c.min_cut_difference:
            return
        w = self.RATIO_WINDOW
        # The neighbours, without the frames right next to it (a cut can spread over two).
        around = self.diffs[max(1, index - w) : index - 1] + self.diffs[index + 2 : index + w + 1]
        baseline = float(np.median(around)) if around else 0.0
        # A very large change needs to stand out less; steady fast motion never stands out.
        ratio = self.c.cut_ratio / 2 if diff >= self.c.sure_cut_difference else self.c.cut_ratio
        if diff >= ratio * (baseline + 0.5):
            # TransNetV2 marks the last frame of the old shot; the cut may be a frame off.
            self.net.want(index - 2, index + 1)

    def finish(self, num_frames: int) -> Shots:
        # The last frames never got their full set of later neighbours.
        for index in range(max(0, len(self.diffs) - self.RATIO_WINDOW), len(self.diffs)):
            self._test_cut(index)
        return super().finish(num_frames)


SHOT_DETECTORS: dict[str, type[ShotDetector]] = {
    "combined": CombinedShots,
    "transnetv2": TransNetV2Shots,
    "adaptive": AdaptiveShots,
    "content": ContentShots,
}
"""Shot detectors by the name used in ``analyze.shots.detector``."""


class ShotSignal(FrameSignal):
    """The shots of the configured detector."""

    name = "shots"
    media = ("video",)
    config = ShotsConfig

    def __init__(self, cfg: ShotsConfig) -> None:
        self.detector = SHOT_DETECTORS[cfg.detector](cfg)
        self.frames = 0

    @classmethod
    def check(cls, cfg: ShotsConfig) -> None:
        SHOT_DETECTORS[cfg.detector].check(cfg)

    @classmethod
    def warm_up(cls, cfg: ShotsConfig) -> None:
        SHOT_DETECTORS[cfg.detector].warm_up(cfg)

    def update(self, frame: DecodedFrame) -> None:
        self.detector.update(frame)
        self.frames = frame.index + 1

    def finish(self) -> Shots:
        return self.detector.finish(self.frames)

    def model_timing(self) -> dict[str, float]:
        if not isinstance(self.detector, TransNetV2Shots):
            return {}
        net = self.detector.net
        return {"transnetv2.network_s": net.network_s, "transnetv2.frames": float(net.frames_sent)}

"""Shot boundaries: a PySceneDetect detector fed frame by frame.

The detector sees frames at half the analysis size (128 px short side by default: about what
PySceneDetect's own auto-downscale gives 720p input); cuts are still exact frames. Its series
is the list of cuts (first frame of every shot but the first): clips are planned inside shots.
"""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect.detectors import AdaptiveDetector, ContentDetector

from curate.config import ShotsConfig
from curate.signals.base import FrameSignal
from curate.video import DecodedFrame


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


def make_shot_detector(cfg: ShotsConfig) -> ContentDetector:
    """The configured PySceneDetect detector; frames are fed to it one by one."""
    if cfg.detector == "adaptive":
        a = cfg.adaptive
        return FastAdaptiveDetector(
            adaptive_threshold=a.adaptive_threshold,
            min_scene_len=a.min_scene_len,
            window_width=a.window_width,
            min_content_val=a.min_content_val,
            luma_only=a.luma_only,
        )
    c = cfg.content
    return FastContentDetector(
        threshold=c.threshold, min_scene_len=c.min_scene_len, luma_only=c.luma_only
    )


class ShotSignal(FrameSignal):
    """Collects the cut frame indices of the configured detector."""

    name = "shots"

    def __init__(self, cfg: ShotsConfig) -> None:
        self.detector = make_shot_detector(cfg)
        self.cuts: list[int] = []
        self._last = -1

    def update(self, frame: DecodedFrame) -> None:
        self.cuts.extend(self.detector.process_frame(frame.index, frame.small_bgr))
        self._last = frame.index

    def finish(self) -> list[int]:
        if self._last >= 0:
            self.cuts.extend(self.detector.post_process(self._last))
        # A cut at frame 0 is not a boundary between two shots.
        return sorted({c for c in self.cuts if 0 < c <= self._last})

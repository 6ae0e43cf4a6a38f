"""Analyze stage: decode each source once and derive shots, candidate clips and their scores.

Decoded frames are scaled to the analysis short side by the decoder itself and feed, in the
same pass, the shot detector, Laplacian sharpness, sampled optical flow and small keyframes.
Clips are then windows over those per-frame series: no second decode.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import astuple, dataclass

import cv2
import numpy as np
import pyarrow as pa

from curate import camera_motion, schema
from curate.config import AnalyzeConfig, ClipsConfig, CurateConfig
from curate.sandbox import Sandbox
from curate.signals import (
    TECHNICAL,
    BorderSignal,
    FlowSignal,
    ShotSignal,
    bar_size,
    downscale,
    laplacian_variance,
    technical_quality,
)
from curate.text import TEXT_DETECTORS, TextSignal
from curate.video import (
    DECODE_ERRORS,
    MediaError,
    VideoInfo,
    iter_scaled_frames,
    open_video,
    orientation,
    scaled_size,
)

log = logging.getLogger(__name__)


@dataclass
class FrameSeries:
    """What one decode pass keeps of a source: a few numbers per frame, tiny keyframes."""

    times: np.ndarray
    """Presentation time of every decoded frame, seconds."""
    end_time: float
    """End of the last frame, seconds."""
    sharpness: np.ndarray
    """Laplacian variance of every frame at the analysis resolution."""
    change: np.ndarray
    jump: np.ndarray
    """Thumbnail change of every frame (see ``camera_motion.ChangeSignal``)."""
    cuts: list[int]
    """First frame index of every shot but the first."""
    flow_index: np.ndarray
    """First frame index of each flow pair (the pair is ``index, index + 1``)."""
    flow_magnitude: np.ndarray
    """Flow magnitude of each pair, frame diagonals per second."""
    flow_motion: np.ndarray
    """Global motion of each pair: rows of ``(tx, ty, scale, rotation, residual)``."""
    border_times: np.ndarray
    border_rows: np.ndarray
    """``(samples, 2, height)``: per-row gray mean and std of frames sampled for borders."""
    border_cols: np.ndarray
    """``(samples, 2, width)``: the same per column."""
    text_times: np.ndarray
    text_ratio: np.ndarray
    """Share of the frame covered by on-screen text, per frame sampled for text."""
    keyframe_times: np.ndarray
    keyframe_quality: np.ndarray
    """Technical-quality score (0-10) of every keyframe."""
    keyframes: list[bytes]
    """JPEG keyframes at ``analyze.keyframes`` size and rate."""

    @property
    def num_frames(self) -> int:
        return len(self.times)


def decode_series(source: str, info: VideoInfo, cfg: AnalyzeConfig) -> FrameSeries:
    """The single decode pass over ``source``."""
    container, stream = open_video(source, cfg.decode_threads, fast=cfg.skip_loop_filter)
    # A multiple of 8 keeps the half-size frame's chroma planes even.
    size = scaled_size(info, cfg.short_side, multiple=8)
    shots = ShotSignal(cfg.shots)
    flow = FlowSignal(cfg.flow)
    borders = BorderSignal(cfg.borders_fps)
    text = TextSignal(TEXT_DETECTORS[cfg.text.detector](), cfg.text.fps)
    key_every = 1.0 / cfg.keyframes.fps
    times: list[float] = []
    sharpness: list[float] = []
    changes = camera_motion.ChangeSignal()
    key_times: list[float] = []
    key_quality: list[float] = []
    keyframes: list[bytes] = []
    next_key = -1.0
    frames = iter_scaled_frames(container, stream, info, size)
    try:
        for frame in frames:
            gray, t = frame.gray, frame.time
            shots.update(frame.index, frame.small_bgr)
            sharpness.append(laplacian_variance(gray))
            changes.update(gray)
            if flow.wants(t):
                flow.update(frame.index, t, gray)
            if borders.wants(t):
                borders.update(t, gray)
            if text.wants(t):
                text.update(t, gray)
            if t >= next_key:
                image = downscale(frame.to_bgr(), cfg.keyframes.short_side)
                keyframes.append(_jpeg(image, cfg.keyframes.quality))
                key_quality.append(technical_quality(image))
                key_times.append(t)
                next_key = t + key_every
            times.append(t)
    except DECODE_ERRORS as e:
        if not times:
            raise MediaError("decode_error", f"decoding failed before the first frame: {e}") from e
        # Keep what decoded cleanly; the damaged tail simply yields no clips.
        log.warning("%s: decoding stopped after %d frames: %s", source, len(times), e)
    finally:
        frames.close()  # stops the decode thread before its container goes away
        container.close()
    if not times:
        raise MediaError("decode_error", "no frame could be decoded")
    # The last frame lasts one typical frame interval.
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / (info.fps or 25.0)
    return FrameSeries(
        times=np.asarray(times),
        end_time=times[-1] + step,
        sharpness=np.asarray(sharpness, dtype=np.float32),
        change=np.asarray(changes.change, dtype=np.float32),
        jump=np.asarray(changes.jump, dtype=np.float32),
        cuts=shots.finish(),
        flow_index=np.asarray([s.index for s in flow.samples], dtype=np.int64),
        flow_magnitude=np.asarray([s.magnitude for s in flow.samples], dtype=np.float32),
        flow_motion=np.asarray([astuple(s.motion) for s in flow.samples], dtype=np.float32).reshape(
            -1, 5
        ),
        border_times=np.asarray(borders.times),
        border_rows=np.asarray(borders.rows, np.float32),
        border_cols=np.asarray(borders.cols, np.float32),
        text_times=np.asarray(text.times),
        text_ratio=np.asarray(text.ratios, np.float32),
        keyframe_times=np.asarray(key_times),
        keyframe_quality=np.asarray(key_quality, np.float32),
        keyframes=keyframes,
    )


def _jpeg(bgr: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


@dataclass(frozen=True)
class Window:
    shot_index: int
    start: int
    """First frame index (inclusive)."""
    end: int
    """Frame index after the last frame (exclusive)."""
    shift: int = 0
    """Frames the start moved forward to reach the sharpest frame of the lead-in."""


def shot_bounds(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    edges = [0, *cuts, num_frames]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def plan_windows(series: FrameSeries, cfg: ClipsConfig) -> tuple[list[Window], list[Window]]:
    """Cut every shot into consecutive clip windows of ``min..max`` seconds.

    Each window starts at the sharpest frame within ``lead_in_s`` of where it could start
    (HunyuanVideo's clearest-frame-first), as long as the window can still reach the minimum
    duration. Returns ``(clips, too_short_pieces)``.
    """
    times = series.times
    bounds = np.append(times, series.end_time)
    clips: list[Window] = []
    short: list[Window] = []
    for shot_index, (first, stop) in enumerate(shot_bounds(series.cuts, series.num_frames)):
        shot_end = bounds[stop]
        start = first
        while start < stop:
            if shot_end - times[start] < cfg.min_duration_s - 1e-6:
                short.append(Window(shot_index, start, stop))
                break
            # Candidate starts: inside the lead-in and still leaving a full minimum clip.
            last = int(np.searchsorted(times, times[start] + cfg.lead_in_s, side="right"))
            latest = int(np.searchsorted(times, shot_end - cfg.min_duration_s, side="right"))
            hi = max(start + 1, min(last, latest, stop))
            best = start + int(np.argmax(series.sharpness[start:hi]))
            end = int(np.searchsorted(times, times[best] + cfg.max_duration_s - 1e-6, side="left"))
            end = min(max(end, best + 1), stop)
            clips.append(Window(shot_index, best, end, best - start))
            start = end
    return clips, short


class AnalyzeStage:
    """Decode once per source; emit its shots, candidate clips and rejects as one row.

    The decode runs in a sandbox process (``isolation``): a source that crashes, hangs or
    exhausts the memory of the decoder is rejected (``decode_error``, ``timeout``) instead of
    taking the worker down."""

    name = "analyze"

    def __init__(self, config: CurateConfig) -> None:
        self.cfg = config.analyze
        self.isolation = config.isolation
        self.schema = schema.analyzed_source_schema(config.embed.dim)
        self.sandbox = Sandbox(config.isolation, self.name, preload=(__name__,))

    def __call__(self, batch: pa.Table) -> pa.Table:
        return schema.from_rows([self.analyze_one(r) for r in batch.to_pylist()], self.schema)

    def timeout_s(self, info: VideoInfo) -> float:
        """Time limit for one source: a base plus an allowance per minute of video."""
        iso = self.isolation
        return iso.analyze_timeout_s + iso.analyze_timeout_per_minute_s * info.duration_s / 60

    def analyze_one(self, probed: dict) -> dict:
        source = probed["source"]
        out = {
            "source": source,
            "source_index": probed["source_index"],
            "shots": [],
            "clips": [],
            "rejects": [],
            "frames": 0,
            "probe_s": probed.get("probe_s"),
        }
        if not probed["ok"]:
            out["rejects"].append(_reject(source, "probe", probed["reason"], probed["detail"]))
            return out
        info = VideoInfo.from_row(probed)
        started = time.perf_counter()
        try:
            result = self.sandbox.run(
                analyze_source,
                source,
                info,
                self.cfg,
                source=source,
                timeout_s=self.timeout_s(info),
                timeout_key="isolation.analyze_timeout_s + analyze_timeout_per_minute_s",
            )
        except MediaError as e:
            out["rejects"].append(_reject(source, self.name, e.reason, e.detail))
            log.info("analyze rejected %s: %s (%s)", source, e.reason, e.detail)
            return out
        finally:
            out["analyze_s"] = time.perf_counter() - started
        out.update(result)
        log.info(
            "analyzed %s: %d frames, %d shots, %d clips in %.1f s",
            source,
            out["frames"],
            len(out["shots"]),
            len(out["clips"]),
            out["analyze_s"],
        )
        return out


def analyze_source(source: str, info: VideoInfo, cfg: AnalyzeConfig) -> dict:
    """Decode ``source`` once and derive its ``shots``, candidate ``clips`` and ``rejects``
    (``frames``: frames decoded). Runs in the sandbox process; raises :class:`MediaError`."""
    series = decode_series(source, info, cfg)
    out: dict = {"frames": series.num_frames, "shots": _shot_rows(source, series), "rejects": []}
    clips, short = plan_windows(series, cfg.clips)
    out["clips"] = [_clip_row(source, info, series, w, cfg) for w in clips]
    for w in short:
        start_s, end_s = _span(series, w)
        out["rejects"].append(
            _reject(
                source,
                AnalyzeStage.name,
                "too_short",
                f"shot {w.shot_index}: {end_s - start_s:.2f} s left < "
                f"analyze.clips.min_duration_s {cfg.clips.min_duration_s}",
                clip_id=schema.clip_id(source, start_s, end_s),
                start_s=start_s,
                end_s=end_s,
            )
        )
    if not out["clips"]:
        longest = max((r["duration_s"] for r in out["shots"]), default=0.0)
        out["rejects"].append(
            _reject(
                source,
                AnalyzeStage.name,
                "too_short",
                f"no shot yields a clip: longest shot {longest:.2f} s < "
                f"analyze.clips.min_duration_s {cfg.clips.min_duration_s}",
            )
        )
    return out


def _reject(source: str, stage: str, reason: str, detail: str, **extra) -> dict:
    return {"source": source, "stage": stage, "reason": reason, "detail": detail, **extra}


def _span(series: FrameSeries, w: Window) -> tuple[float, float]:
    end = series.times[w.end] if w.end < series.num_frames else series.end_time
    return float(series.times[w.start]), float(end)


def _shot_rows(source: str, series: FrameSeries) -> list[dict]:
    rows = []
    for i, (a, b) in enumerate(shot_bounds(series.cuts, series.num_frames)):
        start_s, end_s = _span(series, Window(i, a, b))
        rows.append(
            {
                "source": source,
                "shot_index": i,
                "start_frame": a,
                "end_frame": b,
                "start_s": start_s,
                "end_s": end_s,
                "duration_s": end_s - start_s,
            }
        )
    return rows


def _clip_row(
    source: str, info: VideoInfo, series: FrameSeries, w: Window, cfg: AnalyzeConfig
) -> dict:
    start_s, end_s = _span(series, w)
    sharp = series.sharpness[w.start : w.end]
    # Flow pairs count when both frames lie inside the clip.
    in_clip = (series.flow_index >= w.start) & (series.flow_index + 1 < w.end)
    motion = series.flow_magnitude[in_clip]
    camera, confidence = camera_motion.classify(series.flow_motion[in_clip])
    keyed = (series.keyframe_times >= start_s) & (series.keyframe_times < end_s)
    quality = series.keyframe_quality[keyed]
    sampled = (series.border_times >= start_s) & (series.border_times < end_s)
    top, bottom = bar_size(series.border_rows[sampled])
    left, right = bar_size(series.border_cols[sampled])
    text = series.text_ratio[_samples_in(series.text_times, start_s, end_s)]
    keyframes = _clip_keyframes(series, start_s, end_s, cfg.keyframes.per_clip)
    thumbnail = None
    if keyframes:
        middle = cv2.imdecode(
            np.frombuffer(keyframes[len(keyframes) // 2], np.uint8), cv2.IMREAD_COLOR
        )
        thumbnail = _jpeg(downscale(middle, cfg.thumbnail.short_side), cfg.thumbnail.quality)
    return {
        "clip_id": schema.clip_id(source, start_s, end_s),
        "source": source,
        "shot_index": w.shot_index,
        "start_s": start_s,
        "end_s": end_s,
        "duration_s": end_s - start_s,
        "start_frame": w.start,
        "end_frame": w.end,
        "num_frames": w.end - w.start,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "orientation": orientation(info.width, info.height),
        "sharpness": float(np.median(sharp)),
        "sharpness_start": float(sharp[0]),
        "start_shift_s": float(start_s - series.times[w.start - w.shift]),
        "motion_score": float(motion.mean()) if motion.size else None,
        "motion_p90": float(np.percentile(motion, 90)) if motion.size else None,
        "aesthetic": float(quality.mean()) if quality.size else None,
        "aesthetic_model": TECHNICAL if quality.size else None,
        "text_ratio": float(text.mean()) if text.size else None,
        "text_ratio_max": float(text.max()) if text.size else None,
        "border_top": top,
        "border_bottom": bottom,
        "border_left": left,
        "border_right": right,
        "motion_pattern": camera_motion.motion_pattern(
            series.change[w.start : w.end], series.jump[w.start : w.end]
        ),
        "camera_motion": camera,
        "camera_motion_confidence": confidence,
        "thumbnail": thumbnail,
        "keyframes": keyframes,
    }


def _samples_in(times: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Indices of the samples inside the clip, or of the nearest one if none is."""
    inside = np.flatnonzero((times >= start_s) & (times < end_s))
    if inside.size == 0 and times.size:
        inside = np.array([int(np.argmin(np.abs(times - (start_s + end_s) / 2)))])
    return inside


def _clip_keyframes(series: FrameSeries, start_s: float, end_s: float, n: int) -> list[bytes]:
    """Up to ``n`` keyframes spread evenly over the clip (the nearest one if none inside)."""
    if not series.keyframes:
        return []
    inside = _samples_in(series.keyframe_times, start_s, end_s)
    picks = inside[np.linspace(0, inside.size - 1, min(n, inside.size)).round().astype(int)]
    return [series.keyframes[i] for i in picks]

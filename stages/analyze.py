"""Analyze stage: decode each source once and derive shots, candidate clips and their scores.

Decoded frames are scaled to the analysis short side by the decoder itself and feed, in the
same pass, every per-frame signal registered in ``curate.signals.SIGNALS``. Clips are then
windows over those per-frame series: no second decode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from curate import contract, schema
from curate.config.analyze import ClipsConfig
from curate.config.sections import AnalyzeConfig, CurateConfig, IsolationConfig
from curate.contract import FRAME_SIGNALS, build_signals, reject_row
from curate.media.image import decode_image
from curate.media.sandbox import Sandbox
from curate.media.video import (
    DECODE_ERRORS,
    MediaError,
    VideoDecoder,
    VideoInfo,
    orientation,
    scaled_size,
)
from curate.models.devices import check_decoder, resolve_analyze, resolve_decoder
from curate.run.stage import Stage
from curate.signals import ClipWindow, FrameSignal

log = logging.getLogger(__name__)


@dataclass
class FrameSeries:
    """What one decode pass keeps of a source: each signal's per-frame series."""

    times: np.ndarray
    """Presentation time of every decoded frame, seconds."""
    end_time: float
    """End of the last frame, seconds."""
    signals: list[FrameSignal]
    values: dict[str, Any]
    """Each signal's series, by signal name."""
    decoder: str = "cpu"
    """The decoder that produced the frames: ``nvdec`` or ``cpu``."""
    refused: str | None = None
    """Why NVDEC did not decode the source, where it was asked to."""
    timing: dict[str, float] = field(default_factory=dict)
    """Seconds and counts of the pass by part (``curate.timing`` keys)."""

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def __getitem__(self, signal: str) -> Any:
        return self.values[signal]


def decode_series(
    source: str, info: VideoInfo, cfg: AnalyzeConfig, signals: list[FrameSignal] | None = None
) -> FrameSeries:
    """The single decode pass over ``source``: every frame goes to every signal that wants
    it (``signals``: all of the configured ones by default)."""
    signals = build_signals(cfg) if signals is None else signals
    clock = time.perf_counter
    # Where the pass spends its time: waiting for the decoder thread, and each signal's
    # ``wants`` + ``update`` (one clock reading per signal and frame).
    waited = 0.0
    spent = [0.0] * len(signals)
    taken = [0] * len(signals)
    mark = clock()
    decoder = resolve_decoder(cfg.decoder) if cfg.decoder == "auto" else cfg.decoder
    video = VideoDecoder(source, cfg.decode_threads, cfg.skip_loop_filter, decoder)
    # A multiple of 8 keeps the half-size frame's chroma planes even.
    size = scaled_size(info, cfg.short_side, multiple=8)
    times: list[float] = []
    frames = video.frames(info, size)
    try:
        for frame in frames:
            now = clock()
            waited += now - mark
            mark = now
            for i, signal in enumerate(signals):
                if signal.wants(frame):
                    signal.update(frame)
                    taken[i] += 1
                now = clock()
                spent[i] += now - mark
                mark = now
            times.append(frame.time)
    except DECODE_ERRORS as e:
        if not times:
            raise MediaError("decode_error", f"decoding failed before the first frame: {e}") from e
        # Keep what decoded cleanly; the damaged tail simply yields no clips.
        log.warning("%s: decoding stopped after %d frames: %s", source, len(times), e)
    finally:
        frames.close()  # stops the decode thread before its container goes away
        video.close()
    if not times:
        raise MediaError("decode_error", "no frame could be decoded")
    timing = {"analyze.decode.wait_s": waited, "analyze.decode.frames": float(len(times))}
    values = finish_signals(signals, spent, taken, timing)
    # The last frame lasts one typical frame interval.
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / (info.fps or 25.0)
    return FrameSeries(
        times=np.asarray(times),
        end_time=times[-1] + step,
        signals=signals,
        decoder=video.decoder,
        refused=video.refused,
        values=values,
        timing=timing,
    )


def finish_signals(
    signals: list[FrameSignal], spent: list[float], taken: list[int], timing: dict[str, float]
) -> dict[str, Any]:
    """Each signal's series by name, its seconds in ``update`` (``spent``), in ``finish``
    and its model's, and the frames it took (``taken``) added to ``timing``."""
    values = {}
    for signal, seconds, count in zip(signals, spent, taken):
        started = time.perf_counter()
        values[signal.name] = signal.finish()
        timing[f"analyze.{signal.name}.update_s"] = seconds
        timing[f"analyze.{signal.name}.finish_s"] = time.perf_counter() - started
        timing[f"analyze.{signal.name}.frames"] = float(count)
        timing.update({f"analyze.{k}": v for k, v in signal.model_timing().items()})
    return values


@dataclass(frozen=True)
class Window:
    shot_index: int
    start: int
    """First frame index (inclusive)."""
    end: int
    """Frame index after the last frame (exclusive)."""
    shift: int = 0
    """Frames the start moved forward to reach the sharpest frame of the lead-in."""


def plan_windows(
    times: np.ndarray,
    end_time: float,
    shots: list[tuple[int, int]],
    sharpness: np.ndarray,
    cfg: ClipsConfig,
) -> tuple[list[Window], list[Window]]:
    """Cut every shot into consecutive clip windows of ``min..max`` seconds.

    Each window starts at the sharpest frame within ``lead_in_s`` of where it could start
    (HunyuanVideo's clearest-frame-first), as long as the window can still reach the minimum
    duration. Returns ``(clips, too_short_pieces)``.
    """
    bounds = np.append(times, end_time)
    clips: list[Window] = []
    short: list[Window] = []
    for shot_index, (first, stop) in enumerate(shots):
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
            best = start + int(np.argmax(sharpness[start:hi]))
            end = int(np.searchsorted(times, times[best] + cfg.max_duration_s - 1e-6, side="left"))
            end = min(max(end, best + 1), stop)
            clips.append(Window(shot_index, best, end, best - start))
            start = end
    return clips, short


class AnalyzeStage(Stage):
    """Decode once per source; emit its shots, candidate clips and rejects as one row.

    The decode runs in a sandbox process (``isolation``): a source that crashes, hangs or
    exhausts the memory of the decoder is rejected (``decode_error``, ``timeout``) instead of
    taking the worker down."""

    name = "analyze"

    def __init__(
        self, analyze: AnalyzeConfig, isolation: IsolationConfig, dim: int, max_pixels: int
    ) -> None:
        # ``auto`` decided here, where Ray's GPU assignment is known (not in the sandbox).
        self.cfg = resolve_analyze(analyze)
        self.isolation = isolation
        self.max_pixels = max_pixels
        self.schema = contract.analyzed_source_schema(dim)
        self.sandbox = Sandbox(isolation, self.name, preload=(__name__,))

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        # Images are decoded here for the first time: the probe's pixel limit holds again.
        return {
            "analyze": config.analyze,
            "isolation": config.isolation,
            "dim": config.embed.dim,
            "max_pixels": config.probe.max_pixels,
        }

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        for signal in FRAME_SIGNALS:
            signal.check(getattr(config.analyze, signal.name))
        check_decoder(config)
        return {}

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
            out["rejects"].append(reject_row(source, "probe", probed["reason"], probed["detail"]))
            return out
        info = VideoInfo.from_row(probed)
        started = time.perf_counter()
        job: tuple = (analyze_source, source, info, self.cfg)
        if probed.get("media") == "image":
            job = (analyze_image, source, info, self.cfg, self.max_pixels)
        try:
            result = self.sandbox.run(
                *job,
                source=source,
                timeout_s=self.timeout_s(info),
                timeout_key="isolation.analyze_timeout_s + analyze_timeout_per_minute_s",
            )
        except MediaError as e:
            out["rejects"].append(reject_row(source, self.name, e.reason, e.detail))
            log.info("analyze rejected %s: %s (%s)", source, e.reason, e.detail)
            return out
        finally:
            out["analyze_s"] = time.perf_counter() - started
        out.update(result)
        if result.get("decoder_refused"):
            refused = result["decoder_refused"]
            log.info("%s: NVDEC refused it (%s); decoded on the CPU", source, refused)
        log.debug("%s: decoded with %s", source, result.get("decoder"))
        log.info(
            "analyzed %s: %d frames, %d shots, %d clips in %.1f s",
            source,
            out["frames"],
            len(out["shots"]),
            len(out["clips"]),
            out["analyze_s"],
        )
        return out


def analyze_source(
    source: str, info: VideoInfo, cfg: AnalyzeConfig, signals: list[FrameSignal] | None = None
) -> dict:
    """Decode ``source`` once and derive its ``shots``, candidate ``clips`` and ``rejects``
    (``frames``: frames decoded), with ``signals`` (all configured ones by default; shots and
    sharpness are always needed). Runs in the sandbox process; raises :class:`MediaError`."""
    series = decode_series(source, info, cfg, signals)
    out: dict = {
        "frames": series.num_frames,
        "shots": _shot_rows(source, series),
        "rejects": [],
        "timing": series.timing,
    }
    clips, short = plan_windows(
        series.times, series.end_time, series["shots"].spans, series["sharpness"], cfg.clips
    )
    out["clips"] = [_clip_row(source, info, series, w) for w in clips]
    for signal in series.signals:
        out.update(signal.source_values(series[signal.name]))
    # Not a column: the worker logs it.
    out.update(decoder=series.decoder, decoder_refused=series.refused)
    minimum = f"analyze.clips.min_duration_s {cfg.clips.min_duration_s}"
    for w in short:
        start_s, end_s = _span(series, w)
        out["rejects"].append(
            reject_row(
                source,
                AnalyzeStage.name,
                "too_short",
                f"shot {w.shot_index}: {end_s - start_s:.2f} s left < {minimum}",
                clip_id=schema.clip_id(source, start_s, end_s),
                start_s=start_s,
                end_s=end_s,
            )
        )
    if not out["clips"]:
        longest = max((r["duration_s"] for r in out["shots"]), default=0.0)
        detail = f"no shot yields a clip: longest shot {longest:.2f} s < {minimum}"
        out["rejects"].append(reject_row(source, AnalyzeStage.name, "too_short", detail))
    return out


STILL_S = 1.0
"""The span the one frame of an image covers for the signals' clip windows."""


def analyze_image(
    source: str,
    info: VideoInfo,
    cfg: AnalyzeConfig,
    max_pixels: int,
    signals: list[FrameSignal] | None = None,
) -> dict:
    """Decode the image ``source`` and measure it with every signal that measures images
    (``signals``: all of them by default): one ``analysis`` row, no shots. Runs in the
    sandbox process; raises :class:`MediaError`."""
    clock = time.perf_counter
    started = clock()
    # The largest picture a signal reads: OCR's, and the keyframes'.
    detail = max(cfg.short_side, cfg.keyframes.short_side, cfg.text.ocr.short_side)
    frame = decode_image(source, info, cfg.short_side, max_pixels, detail)
    timing = {"analyze.decode.wait_s": clock() - started, "analyze.decode.frames": 1.0}
    signals = build_signals(cfg, "image") if signals is None else signals
    spent = []
    for signal in signals:
        started = clock()
        signal.update_still(frame)
        spent.append(clock() - started)
    values = finish_signals(signals, spent, [1] * len(signals), timing)
    series = FrameSeries(np.zeros(1), STILL_S, signals, values, timing=timing)
    width, height = frame.source.width, frame.source.height  # upright, before scaling
    if (width > height) != (info.width > info.height) and width != height:
        # An orientation the header did not tell (a PNG's trailing eXIf chunk) turned it.
        info = replace(info, width=info.height, height=info.width)
    row = _clip_row(source, info, series, Window(0, 0, 1))
    # A still spans no time.
    row.update(
        clip_id=schema.clip_id(source, 0.0, 0.0),
        media="image",
        shot_index=None,
        end_s=0.0,
        duration_s=0.0,
        fps=None,
    )
    out: dict = {"frames": 1, "shots": [], "rejects": [], "timing": timing, "clips": [row]}
    for signal in signals:
        out.update(signal.source_values(values[signal.name]))
    return out


def _span(series: FrameSeries, w: Window) -> tuple[float, float]:
    end = series.times[w.end] if w.end < series.num_frames else series.end_time
    return float(series.times[w.start]), float(end)


def _shot_rows(source: str, series: FrameSeries) -> list[dict]:
    shots = series["shots"]
    rows = []
    previous_end = 0
    for i, (a, b) in enumerate(shots.spans):
        start_s, end_s = _span(series, Window(i, a, b))
        probabilities = None
        if shots.probabilities is not None:
            probabilities = [
                None if np.isnan(p) else float(p) for p in shots.probabilities[previous_end:b]
            ]
        rows.append(
            {
                "source": source,
                "shot_index": i,
                "start_frame": a,
                "end_frame": b,
                "start_s": start_s,
                "end_s": end_s,
                "duration_s": end_s - start_s,
                "transition_frames": a - previous_end,
                "boundary_probabilities": probabilities,
            }
        )
        previous_end = b
    return rows


def _clip_row(source: str, info: VideoInfo, series: FrameSeries, w: Window) -> dict:
    """The clip's own columns, then every signal's values for its window."""
    start_s, end_s = _span(series, w)
    clip = ClipWindow(
        w.shot_index, w.start, w.end, start_s, end_s, float(series.times[w.start - w.shift])
    )
    row = {
        "clip_id": schema.clip_id(source, start_s, end_s),
        "source": source,
        "media": "video",
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
    }
    timing = series.timing
    for signal in series.signals:
        started = time.perf_counter()
        row.update(signal.clip_values(series[signal.name], clip))
        key = f"analyze.{signal.name}.clip_values_s"
        timing[key] = timing.get(key, 0.0) + time.perf_counter() - started
    return row

"""Export stage: encode accepted clips to H.264 at each tier's target size and frame rate.

Clips are cut at exact frame boundaries (``start_s`` inclusive, ``end_s`` exclusive, both
frame presentation times from the analysis pass) and resampled to a constant frame rate, so
an exported clip lasts its stated duration to within one frame.

Where it pays, the work is cut down: only the span is decoded (from the keyframe before it),
frames before the span and frames a lower output rate drops are never converted, decoding
runs in a thread of its own ahead of the encoder (FFmpeg releases the GIL), and with
``export.codec: copy`` a clip that needs no pixel change and starts on a keyframe is cut
from the source's packets without decoding at all.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
from av.video.reformatter import VideoReformatter

from curate import schema
from curate.config import ConfigError
from curate.config.sections import CurateConfig, ExportConfig
from curate.media.image import IMAGE_ERRORS, encode_image, open_header, read_bytes
from curate.media.video import (
    DECODE_ERRORS,
    SCALER_THREADS,
    MediaError,
    VideoInfo,
    ffmpeg_url,
    open_video,
    prefetch,
    probe,
    scaled_size,
    upright,
    with_times,
)
from curate.models.devices import cluster_driver, cuda_devices, ray_gave_no_gpu
from curate.models.threads import cpu_share
from curate.run.exporting import clip_relpath
from curate.run.stage import Stage
from curate.storage import Store

log = logging.getLogger(__name__)

EPS = 1e-4
"""Seconds of slack when comparing frame times (timestamps are rounded by containers)."""

PREFETCH_FRAMES = 8
"""Converted frames the decode thread may run ahead of the encoder."""

NVENC_OPTIONS = {"preset": "p4", "tune": "hq", "rc": "vbr"}
"""h264_nvenc settings: its middle preset, constant quality (``cq`` from ``export.crf``)."""


class ExportStage(Stage):
    """Encodes every job of one source with a single open of that source.

    ``output`` (the run's output folder or URI) is a run-time argument: the pipeline knows it,
    the config does not."""

    name = "export"

    def __init__(self, export: ExportConfig, max_pixels: int, output: str) -> None:
        self.cfg = export
        self.output = Store(output)
        self.max_pixels = max_pixels
        # Decided once per worker: NVENC where it opens here, else libx264.
        self.encoder = resolve_encoder(export.encoder)

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        # The export re-probes each source and must refuse oversized frames as the probe
        # stage did: hence probe.max_pixels.
        return {"export": config.export, "max_pixels": config.probe.max_pixels}

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        """``export.encoder: h264_nvenc`` must be able to open an encoder (on the driver of a
        cluster run, whose GPUs are elsewhere: only PyAV's FFmpeg must have it)."""
        cfg = config.export
        if cfg.mode == "reference":
            return {}
        if cfg.encoder == "h264_nvenc":
            if not cluster_driver(config.ray.address):
                resolve_encoder("h264_nvenc")
            elif "h264_nvenc" not in av.codecs_available:
                raise ConfigError(f"export.encoder: h264_nvenc {NVENC_FIX}: {NO_NVENC_BUILD}")
        else:
            # A misspelt preset or x264 setting would otherwise fail every clip.
            try:
                _tiny_encoder("libx264", x264_options(cfg))
            except DECODE_ERRORS as e:
                raise ConfigError(
                    f"export.preset / export.x264_params: x264 does not take preset "
                    f"{cfg.preset!r} with {cfg.x264_params!r} ({e})"
                ) from None
        return {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict] = []
        for item in batch.to_pylist():
            rows.extend(self.export_source(item))
        return schema.from_rows(rows, schema.EXPORTED)

    def export_source(self, item: dict) -> list[dict]:
        if item.get("media") == "image":
            return export_image(item, self.cfg, self.max_pixels)
        rows = []
        try:
            # Re-probing costs one frame; it keeps the export items small.
            info = probe(item["source"], max_pixels=self.max_pixels)
            container, stream = open_video(item["source"])
        except MediaError as e:
            return [_failed(job, e.detail) for job in item["jobs"]]
        # The MP4 muxer needs a seekable file; inline clips go through a scratch folder.
        scratch = tempfile.TemporaryDirectory(prefix="curate-export-")
        try:
            for job in sorted(item["jobs"], key=lambda j: j["start_s"]):
                started = time.perf_counter()
                rel = clip_relpath(job["export_key"], job["clip_id"])
                if self.cfg.mode == "inline" or not self.output.local:
                    tmp = Path(scratch.name) / f"{job['clip_id']}.mp4"
                else:
                    # Written next to its final place under a temporary name, renamed when
                    # complete.
                    target = self.output.local_path(rel)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp.mp4")
                try:
                    done = None
                    if self.cfg.codec == "copy":
                        done = self._copy(container, stream, info, job, tmp)
                    if done is None:
                        done = self._encode(container, stream, info, job, tmp)
                except DECODE_ERRORS as e:
                    tmp.unlink(missing_ok=True)
                    rows.append(_failed(job, f"{type(e).__name__}: {e}"))
                    continue
                row = {"clip_id": job["clip_id"], "export_key": job["export_key"], **done}
                if self.cfg.mode == "inline":
                    row["video"] = tmp.read_bytes()
                    tmp.unlink()
                else:
                    self.output.put_file(tmp, rel)
                    row["clip_path"] = rel
                row["export_s"] = time.perf_counter() - started
                rows.append(row)
        finally:
            container.close()
            scratch.cleanup()
        return rows

    def _copy(
        self, container, stream, info: VideoInfo, job: dict, target: Path
    ) -> dict[str, Any] | None:
        """Cut the span out of the source's packets, without decoding; ``None`` (and nothing
        written) where that would not give exactly the re-encoded clip's frames."""
        why = _copy_refused(info, job)
        if why is None:
            began = time.perf_counter()
            packets, why = _span_packets(container, stream, job["start_s"], job["end_s"])
            read_s = time.perf_counter() - began
        if why is not None:
            log.debug("clip %s: re-encoded, not copied (%s)", job["clip_id"], why)
            return None
        began = time.perf_counter()
        offset = packets[0].pts
        with av.open(
            ffmpeg_url(str(target)), "w", format="mp4", options={"movflags": "+faststart"}
        ) as out:
            ost = out.add_stream_from_template(stream)
            for packet in packets:
                # Timestamps from 0: the span's keyframe is the clip's first frame.
                packet.pts -= offset
                packet.dts -= offset
                packet.stream = ost
                out.mux(packet)
        return {
            "export_method": "copy",
            "frames": len(packets),
            "decode_s": read_s,
            "encode_s": time.perf_counter() - began,
        }

    def _encode(
        self, container, stream, info: VideoInfo, job: dict, target: Path
    ) -> dict[str, Any]:
        start, end = job["start_s"], job["end_s"]
        fps = job["fps"] or info.fps or 25.0
        rate = Fraction(fps).limit_denominator(1001)
        n_out = max(1, round((end - start) * float(rate)))
        short = min(job["short_side"] or 10**9, info.width, info.height)
        size = scaled_size(info, short)
        upright_w, upright_h = (size[1], size[0]) if info.quarter_turns % 2 else size
        # Bars come off after scaling: (top, bottom, left, right) fractions, even sizes.
        top, bottom, left, right = job.get("crop") or (0.0, 0.0, 0.0, 0.0)
        y0, x0 = 2 * round(top * upright_h / 2), 2 * round(left * upright_w / 2)
        y1 = upright_h - 2 * round(bottom * upright_h / 2)
        x1 = upright_w - 2 * round(right * upright_w / 2)
        scaler = VideoReformatter()
        # Frames that need neither turning nor cropping go to the encoder in its own pixel
        # format, scaled by one conversion (about twice as fast as through RGB arrays); at
        # the source's size and format that conversion is no work at all.
        direct = not info.quarter_turns and (y0, x0, y1, x1) == (0, 0, size[1], size[0])

        def convert(frame: av.VideoFrame) -> av.VideoFrame:
            if direct:
                return scaler.reformat(frame, *size, format="yuv420p", threads=SCALER_THREADS)
            image = scaler.reformat(frame, *size, format="rgb24", threads=SCALER_THREADS)
            turned = upright(image.to_ndarray(), info)[y0:y1, x0:x1]
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(turned), format="rgb24")

        decode_s = 0.0

        def timed(
            frames: Iterator[tuple[av.VideoFrame, int]],
        ) -> Iterator[tuple[av.VideoFrame, int]]:
            # Runs on the decode thread: its seconds are decoding and converting only.
            nonlocal decode_s
            began = time.perf_counter()
            for item in frames:
                decode_s += time.perf_counter() - began
                yield item
                began = time.perf_counter()
            decode_s += time.perf_counter() - began

        options = {"movflags": "+faststart"}
        encode_s = 0.0
        k = 0
        with av.open(ffmpeg_url(str(target)), "w", format="mp4", options=options) as out:
            ost = out.add_stream(self.encoder, rate=rate)
            ost.width, ost.height = x1 - x0, y1 - y0
            ost.pix_fmt = "yuv420p"
            if self.encoder == "h264_nvenc":
                ost.options = {**NVENC_OPTIONS, "cq": str(self.cfg.crf)}
                ost.codec_context.bit_rate = 0
            else:
                ost.options = x264_options(self.cfg)
                # x264's own threads sized to the actor's CPUs, as the other native pools are:
                # on a machine the pool already fills, extra threads only cost switching.
                ost.codec_context.thread_count = cpu_share() or 0
            ost.codec_context.time_base = 1 / rate
            shown = _shown_frames(container, stream, info, start, end, rate, n_out, convert)
            frames = prefetch(timed(shown), PREFETCH_FRAMES)
            try:
                for frame, slots in frames:
                    began = time.perf_counter()
                    for _ in range(slots):
                        frame.pts, frame.time_base = k, 1 / rate
                        out.mux(ost.encode(frame))
                        k += 1
                    encode_s += time.perf_counter() - began
            finally:
                # The decode thread lets go of the source before the next clip seeks it.
                frames.close()
            began = time.perf_counter()
            out.mux(ost.encode(None))
        encode_s += time.perf_counter() - began
        return {
            "export_method": self.encoder,
            "frames": k,
            "decode_s": decode_s,
            "encode_s": encode_s,
        }


def _shown_frames(
    container,
    stream,
    info: VideoInfo,
    start: float,
    end: float,
    rate: Fraction,
    n_out: int,
    convert: Callable[[av.VideoFrame], av.VideoFrame],
) -> Iterator[tuple[av.VideoFrame, int]]:
    """The span at a constant rate: (converted frame, output slots it fills), in order.

    Slot k shows the newest source frame at or before ``start + k / rate``. A frame is
    converted only once its successor says it fills a slot: frames before the span and
    frames a lower output rate drops are decoded (the decoder needs them) but never scaled.
    """
    container.seek(int(start / stream.time_base), stream=stream, backward=True)
    held: av.VideoFrame | None = None
    k = 0
    for frame, t in with_times(container.decode(stream), info.fps):
        if t < start - EPS:
            continue
        if t >= end - EPS:
            break
        slots = 0
        while k + slots < n_out and start + (k + slots) / float(rate) < t - EPS:
            slots += 1
        if held is not None and slots:
            yield convert(held), slots
            k += slots
        held = frame
    if held is None:
        raise ValueError(f"no frame decoded in [{start:.3f}, {end:.3f})")
    if k < n_out:
        yield convert(held), n_out - k


def _copy_refused(info: VideoInfo, job: dict) -> str | None:
    """Why the clip cannot be a copy of the source's packets (``None``: it may be, when its
    span also starts on a keyframe)."""
    if info.codec != "h264":
        return f"the source is {info.codec}, clips are H.264"
    if job["short_side"] and job["short_side"] < min(info.width, info.height):
        return "scaled"
    if job.get("crop") and any(job["crop"]):
        return "cropped"
    if job["fps"] and abs(job["fps"] - info.fps) > 1e-3:
        return "frame rate changed"
    if info.quarter_turns or abs(info.sar - 1.0) > 1e-3:
        return "rotated or non-square pixels"
    return None


def _span_packets(
    container, stream, start: float, end: float
) -> tuple[list[av.Packet], str | None]:
    """The packets of the frames in ``[start, end)`` in decode order, and ``None``; or the
    reason they are not a clip of their own: the span does not start on a keyframe, or the
    frames it holds cannot be cut from the rest at a packet boundary (a frame inside the span
    decoded after one past its end, as B-frames are)."""
    tb = stream.time_base
    # A tick past the start: truncating the float start could land on the keyframe before.
    container.seek(int((start + EPS) / tb), stream=stream, backward=True)
    packets: list[av.Packet] = []
    first: float | None = None
    past_end = False
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the flush packet at the end of the stream
        if packet.pts is None or packet.dts is None:
            return [], "packets without timestamps"
        t = float(packet.pts * tb)
        if first is None:
            if not packet.is_keyframe or t < start - EPS:
                return [], "the span does not start on a keyframe"
            first = t
        if float(packet.dts * tb) >= end - EPS:
            break  # this and every later packet is shown at or after the end
        if t < first - EPS:
            return [], "a frame decoded after the keyframe is shown before it (open GOP)"
        if t >= end - EPS:
            past_end = True
        elif past_end:
            return [], "a frame of the span is decoded after one past its end (B-frames)"
        else:
            packets.append(packet)
    if not packets:
        return [], "no packet in the span"
    return packets, None


def x264_options(cfg: ExportConfig) -> dict[str, str]:
    options = {"crf": str(cfg.crf), "preset": cfg.preset}
    if cfg.x264_params:
        options["x264-params"] = cfg.x264_params
    return options


def _tiny_encoder(codec: str, options: dict[str, str]) -> None:
    """Open (and drop) a 256x256 encoder: raises what opening ``codec`` with ``options``
    raises."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 256, 256, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = options
    encoder.open()


NVENC_FIX = "cannot encode here (set export.encoder to auto or libx264)"
NO_NVENC_BUILD = "PyAV's FFmpeg has no h264_nvenc"
NO_CUDA = "no CUDA device is visible"


@lru_cache(maxsize=1)
def nvenc_problem() -> str | None:
    """Why h264_nvenc cannot encode in this process, or ``None`` when it can: opens a tiny
    encoder once (a build may have NVENC while the GPU has no encoder, as an H100)."""
    if "h264_nvenc" not in av.codecs_available:
        return NO_NVENC_BUILD
    if not cuda_devices():
        return NO_CUDA
    try:
        _tiny_encoder("h264_nvenc", {})
    except (av.FFmpegError, OSError, RuntimeError, ValueError) as e:
        # What a GPU without a video encoder (an H100) answers.
        return f"no NVENC on this GPU ({type(e).__name__}: {e})"
    return None


def resolve_encoder(setting: str) -> str:
    """``export.encoder`` as the encoder this process uses. ``auto`` takes h264_nvenc where
    Ray gave the worker a GPU (or outside Ray) and an encoder opens, libx264 otherwise (saying
    why); an explicit ``h264_nvenc`` that cannot open raises :class:`ConfigError`."""
    if setting == "libx264":
        return "libx264"
    if setting == "auto" and ray_gave_no_gpu():
        log.debug("export: no GPU given to this worker: encoding with libx264")
        return "libx264"
    problem = nvenc_problem()
    if problem is None:
        return "h264_nvenc"
    if setting == "h264_nvenc":
        raise ConfigError(f"export.encoder: h264_nvenc {NVENC_FIX}: {problem}")
    # A machine without a GPU is the ordinary case; a GPU without an encoder is worth a word.
    log.log(
        logging.DEBUG if problem == NO_CUDA else logging.INFO,
        "export: %s: encoding with libx264",
        problem,
    )
    return "libx264"


def export_image(item: dict, cfg: ExportConfig, max_pixels: int) -> list[dict]:
    """The image of ``item`` as each of its jobs (one per export spec) wants it in an image
    tier: its own bytes, or re-encoded (``export.image_format``, the tier's scale or crop)."""
    try:
        data = read_bytes(item["source"])
        open_header(data, max_pixels)  # the probe's checks, on the file as it is now
    except (MediaError, OSError) as e:
        return [_failed(job, str(e)) for job in item["jobs"]]
    rows = []
    for job in item["jobs"]:
        started = time.perf_counter()
        try:
            encoded, method = encode_image(
                data, cfg.image_format, cfg.image_quality, job["short_side"], job["crop"]
            )
        except IMAGE_ERRORS as e:
            rows.append(_failed(job, f"{type(e).__name__}: {e}"))
            continue
        seconds = time.perf_counter() - started
        rows.append(
            {
                "clip_id": job["clip_id"],
                "export_key": job["export_key"],
                "image": encoded,
                "export_method": method,
                "frames": 1,
                "encode_s": seconds,
                "export_s": seconds,
            }
        )
    return rows


def _failed(job: dict, detail: str) -> dict:
    return {"clip_id": job["clip_id"], "export_key": job["export_key"], "error": detail}

"""PyAV helpers shared by the probe, analyze and export stages."""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import av
import cv2
import numpy as np
from av.codec.hwaccel import HWAccel, HWDeviceType, hwdevices_available
from av.video.reformatter import VideoReformatter

from curate.models.threads import cpu_share
from curate.storage import IO_BUFFER_BYTES, ffmpeg_reads, is_uri, open_input

log = logging.getLogger(__name__)

DECODE_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError)
"""Errors PyAV raises for unreadable, truncated or corrupt media."""


class MediaError(Exception):
    """An input that cannot be used; ``reason`` is a rejects reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VideoInfo:
    width: int
    """Display width: after rotation and pixel aspect ratio."""
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    """Counter-clockwise degrees from the display matrix (FFmpeg's sign convention)."""
    sar: float
    fps: float
    duration_s: float
    codec: str

    @classmethod
    def from_row(cls, row: dict) -> VideoInfo:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    @property
    def quarter_turns(self) -> int:
        """Counter-clockwise quarter turns that bring a decoded frame upright."""
        return round(self.rotation / 90) % 4


def orientation(width: int, height: int) -> str:
    if width > height:
        return "landscape"
    if height > width:
        return "portrait"
    return "square"


def ffmpeg_url(path: str) -> str:
    """What to hand FFmpeg for ``path``: a URI (``scheme://…``) as is, anything else pinned to
    the file protocol. FFmpeg reads a leading ``name:`` as a protocol, so without ``file:`` a
    relative file named ``concat:a.mp4`` would open ``a.mp4``, ``pipe:0.mp4`` standard input,
    and ``12:30.mp4`` nothing at all ("Protocol not found")."""
    return path if "://" in path else f"file:{path}"


def open_video(
    source: str, threads: int = 0, fast: bool = False, *, hwaccel: HWAccel | None = None
) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open ``source`` and its first video stream with threaded decoding (``threads``; 0:
    the worker's CPU share, :func:`curate.models.threads.cpu_share`, or FFmpeg's choice outside a
    worker); ``fast`` skips the in-loop deblocking filter (for analysis, never for export);
    ``hwaccel`` decodes on a device (:class:`VideoDecoder` uses it for NVDEC)."""
    try:
        if is_uri(source) and not ffmpeg_reads(source):
            container = av.open(
                open_input(source),
                metadata_errors="ignore",
                buffer_size=IO_BUFFER_BYTES,
                hwaccel=hwaccel,
            )
        else:
            container = av.open(ffmpeg_url(source), metadata_errors="ignore", hwaccel=hwaccel)
    except DECODE_ERRORS as e:
        raise MediaError("unreadable", f"cannot open: {e}") from e
    if not container.streams.video:
        container.close()
        raise MediaError("no_video_stream", "the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    # In a Ray worker, as many decoder threads as the actor reserved CPUs: the pool already
    # runs one decoder per share, and more threads per decoder only contend for the cores.
    stream.codec_context.thread_count = threads or cpu_share() or 0
    if fast:
        # Deblocking is invisible at analysis resolution and costs ~15% of H.264 decoding.
        stream.codec_context.options = {"skip_loop_filter": "all"}
    return container, stream


def probe(source: str, *, max_pixels: int) -> VideoInfo:
    """Read display size, rotation, frame rate and duration; decodes only the first frame,
    because the display matrix (rotation) arrives as frame side data."""
    container, stream = open_video(source)
    try:
        cc = stream.codec_context
        coded_w, coded_h = cc.width, cc.height
        if coded_w <= 0 or coded_h <= 0:
            raise MediaError("unreadable", "the video stream has no frame size")
        if coded_w * coded_h > max_pixels:
            raise MediaError(
                "unreadable",
                f"frame size {coded_w}x{coded_h} exceeds probe.max_pixels={max_pixels}",
            )
        try:
            first = next(container.decode(stream), None)
        except DECODE_ERRORS as e:
            raise MediaError("decode_error", f"cannot decode the first frame: {e}") from e
        if first is None:
            raise MediaError("decode_error", "the video stream holds no decodable frame")
        rotation = round(first.rotation or 0)
        sar = _float(stream.sample_aspect_ratio) or 1.0
        fps = _float(stream.average_rate) or _float(stream.guessed_rate) or 0.0
        duration = _duration(container, stream, fps)
        display_w, display_h = round(coded_w * sar), coded_h
        if round(rotation / 90) % 2:
            display_w, display_h = display_h, display_w
        return VideoInfo(
            width=int(display_w),
            height=int(display_h),
            coded_width=coded_w,
            coded_height=coded_h,
            rotation=rotation,
            sar=sar,
            fps=fps,
            duration_s=duration,
            codec=cc.name,
        )
    finally:
        container.close()


def _float(value: Fraction | None) -> float | None:
    if value is None or value == 0:
        return None
    return float(value)


def _duration(container, stream, fps: float) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.frames and fps:
        return stream.frames / fps
    return 0.0


def scaled_size(info: VideoInfo, short_side: int, multiple: int = 2) -> tuple[int, int]:
    """Decoded-frame size (before rotation) whose upright display has ``short_side`` and the
    display aspect ratio, rounded to a ``multiple`` (even numbers for the scaler)."""
    w, h = info.coded_width * info.sar, info.coded_height
    scale = short_side / min(w, h)
    m = multiple
    return max(m, round(w * scale / m) * m), max(m, round(h * scale / m) * m)


def upright(image: np.ndarray, info: VideoInfo) -> np.ndarray:
    """Apply the display rotation to a decoded image."""
    return _turn(image, info.quarter_turns)


def _turn(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


REORDER_DEPTH = 8
"""Frames held back to repair timestamps that arrive in decode order (see ``with_times``)."""


def with_times(
    frames: Iterable[av.VideoFrame], fps: float
) -> Iterator[tuple[av.VideoFrame, float]]:
    """Pair decoded frames with strictly increasing presentation times.

    Decoders emit frames in display order, but some containers (AVI with B-frames) label them
    with timestamps in decode order. The set of timestamps is right, only their order is not,
    so each frame takes the smallest timestamp among the next few; missing or repeated ones
    are filled in at the nominal frame rate.
    """
    step = 1.0 / fps if fps else 1.0 / 25
    pending: deque[av.VideoFrame] = deque()
    times: list[float] = []
    last = -math.inf

    def next_time() -> float:
        nonlocal last
        t = heapq.heappop(times) if times else last + step
        if t <= last:
            t = last + step
        last = t
        return t

    for frame in frames:
        pending.append(frame)
        if frame.time is not None:
            heapq.heappush(times, frame.time)
        if len(pending) > REORDER_DEPTH:
            yield pending.popleft(), next_time()
    while pending:
        yield pending.popleft(), next_time()


@dataclass
class DecodedFrame:
    index: int
    time: float
    gray: np.ndarray
    """Upright luma at the analysis size."""
    small_bgr: np.ndarray
    """Upright colour image at half the analysis size (chroma's native resolution)."""
    yuv: np.ndarray
    """The scaled I420 frame as decoded (not rotated), for the occasional full-size colour
    image (``to_bgr``)."""
    quarter_turns: int
    source: av.VideoFrame | None = None
    """The decoded frame at full size, for the occasional larger picture (``gray_at``)."""
    detail_scaler: VideoReformatter | None = None
    """The reformatter ``gray_at`` uses, one per stream and used by the consumer only: a
    fresh one per frame rebuilds the swscale context, which costs twice the scaling."""

    def to_bgr(self) -> np.ndarray:
        """Upright colour image at the analysis size."""
        return _turn(cv2.cvtColor(self.yuv, cv2.COLOR_YUV2BGR_I420), self.quarter_turns)

    def gray_at(self, short_side: int) -> np.ndarray:
        """Upright luma with ``short_side`` pixels on its short side (never more than the
        source has), in the analysis frame's aspect ratio; from the same decode."""
        h, w = self.gray.shape
        if self.source is None:
            return self.gray
        available = min(self.source.width, self.source.height)
        scale = min(short_side, available) / min(h, w)
        height, width = max(2, round(h * scale)), max(2, round(w * scale))
        if self.quarter_turns % 2:
            height, width = width, height
        scaler = self.detail_scaler or VideoReformatter()
        luma = scaler.reformat(
            self.source, width=width, height=height, format="gray", threads=SCALER_THREADS
        ).to_ndarray()
        return _turn(luma, self.quarter_turns)


SCALER_THREADS = 1
"""swscale's threads per conversion. Its default (one per core) adds slice threads next to
the decoder's own frame threads, which already keep the cores busy: on 2 cores a single
thread analyses 720p 5–10 % faster, with the same pixels."""

PREFETCH_FRAMES = 16
"""Scaled frames a decode thread may run ahead of the analysis."""


def _scaled_frames(container, stream, info: VideoInfo, size: tuple[int, int]):
    # One reformatter for the whole stream: a fresh one per frame rebuilds the swscale
    # context every time and costs more than decoding.
    scaler = VideoReformatter()
    detail_scaler = VideoReformatter()
    for index, (frame, t) in enumerate(with_times(container.decode(stream), info.fps)):
        yield decoded_frame(frame, index, t, info, size, scaler, detail_scaler)


def decoded_frame(
    frame: av.VideoFrame,
    index: int,
    t: float,
    info: VideoInfo,
    size: tuple[int, int],
    scaler: VideoReformatter,
    detail_scaler: VideoReformatter | None = None,
) -> DecodedFrame:
    """``frame`` as the signals take it: scaled to ``size`` (before rotation), upright."""
    width, height = size
    half = (width // 2, height // 2)
    quarter = (width // 4, height // 4)
    chroma = half[0] * half[1]
    # Scaling to planar YUV is cheaper than to BGR: its Y plane is the gray image, and a
    # half-size I420 built from it converts to a small colour image for next to nothing
    # (OpenCV's I420 conversion expects video-range levels, as decoders deliver).
    yuv = scaler.reformat(
        frame, width=width, height=height, format="yuv420p", threads=SCALER_THREADS
    ).to_ndarray()
    gray = yuv[:height]
    planes = yuv[height:].reshape(-1)
    small_yuv = np.concatenate(
        [
            cv2.resize(gray, half, interpolation=cv2.INTER_AREA).reshape(-1),
            cv2.resize(
                planes[:chroma].reshape(half[1], half[0]), quarter, interpolation=cv2.INTER_AREA
            ).reshape(-1),
            cv2.resize(
                planes[chroma:].reshape(half[1], half[0]), quarter, interpolation=cv2.INTER_AREA
            ).reshape(-1),
        ]
    ).reshape(-1, half[0])
    small = cv2.cvtColor(small_yuv, cv2.COLOR_YUV2BGR_I420)
    return DecodedFrame(
        index,
        t,
        upright(gray, info),
        upright(small, info),
        yuv,
        info.quarter_turns,
        frame,
        detail_scaler,
    )


_DONE = object()


def prefetch(items: Iterator, depth: int) -> Generator:
    """Run ``items`` in a daemon thread, ``depth`` items ahead; exceptions are re-raised here."""
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(item)
            buffer.put(_DONE)
        except BaseException as e:  # handed to the consumer, which re-raises it
            buffer.put(e)

    worker = threading.Thread(target=produce, name="decode", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # Unblock a producer waiting on a full buffer, then wait for it to let go of the decoder.
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                buffer.get(timeout=0.05)
        worker.join()


NVDEC_DEVICE_OPTIONS = {"primary_ctx": "1"}
"""Open the device's primary CUDA context (the one torch uses too) rather than a context of
its own per opened source: each costs hundreds of MB of GPU memory and time to set up."""

NVDEC_THREADS = 1
"""Decoder threads on NVDEC: the GPU decodes, so frame threads only hold more surfaces and
copies (torchcodec measured one thread fastest with CUDA decoding)."""

NVDEC_PROBE_CODEC = "h264"
"""The decoder whose NVDEC support the start-up check asks about."""

_NVDEC_ERRORS = (av.FFmpegError, OSError, RuntimeError, NotImplementedError, ValueError)
"""What PyAV raises when it cannot set up a CUDA device (no driver, no GPU, out of memory)."""


def nvdec_build_problem() -> str | None:
    """Why this PyAV's FFmpeg cannot use NVDEC on any machine, or ``None``."""
    if "cuda" not in hwdevices_available():
        return "PyAV's FFmpeg was built without CUDA"
    configs = av.codec.Codec(NVDEC_PROBE_CODEC, "r").hardware_configs
    if not any(c.device_type == HWDeviceType.cuda and c.is_supported for c in configs):
        return "PyAV's FFmpeg was built without NVDEC decoders"
    return None


def nvdec_accel() -> HWAccel:
    """PyAV's settings for decoding on NVDEC. No software decoding inside FFmpeg: a refusal
    must show, so that :class:`VideoDecoder` hands the source to the CPU decoder with its own
    threads. Frames are copied back to system memory as they come out."""
    return HWAccel("cuda", allow_software_fallback=False, options=NVDEC_DEVICE_OPTIONS)


@lru_cache(maxsize=1)
def nvdec_problem() -> str | None:
    """Why NVDEC cannot decode in this process, or ``None`` when it can. Opens (and closes) a
    CUDA device once, as every source would; the answer is kept for the process."""
    problem = nvdec_build_problem()
    if problem is not None:
        return problem
    try:
        nvdec_accel().create(av.codec.Codec(NVDEC_PROBE_CODEC, "r"))
    except _NVDEC_ERRORS as e:
        return f"PyAV cannot open a CUDA device ({type(e).__name__}: {e})"
    return None


@lru_cache(maxsize=1)
def _held_device() -> HWAccel | None:
    """A CUDA device held open while the process decodes: the primary context then outlives
    each source's container, and the next source does not set it up again."""
    try:
        return nvdec_accel().create(av.codec.Codec(NVDEC_PROBE_CODEC, "r"))
    except _NVDEC_ERRORS:
        return None  # the source's own open says why


class VideoDecoder:
    """One source's decoder: NVDEC when ``decoder`` is ``nvdec`` and it takes the source,
    the CPU otherwise (``decoder`` and ``refused`` then say so and why).

    NVDEC refuses a source when it is opened (no NVDEC decoder for its codec: AV1, which
    FFmpeg reads with dav1d, or ProRes) or on its first frames (a codec or profile the GPU
    lacks: VP8 or MPEG-4 part 2 on some GPUs, 4:2:2 H.264). Either way no frame has reached
    the caller yet, so the source is opened again for the CPU decoder and the caller sees one
    stream of frames, the same arrays either way (NVDEC's frames are copied to system memory
    and scaled there)."""

    def __init__(
        self, source: str, threads: int = 0, fast: bool = False, decoder: str = "cpu"
    ) -> None:
        self.source = source
        self.threads = threads
        self.fast = fast
        self.decoder = decoder
        self.refused: str | None = None
        if decoder != "nvdec":
            self._open_cpu(None)
            return
        _held_device()
        try:
            self.container, self.stream = open_video(
                source, NVDEC_THREADS, fast, hwaccel=nvdec_accel()
            )
        except (MediaError, RuntimeError) as e:
            self._open_cpu(str(e))
            return
        if not self.stream.codec_context.is_hwaccel:
            name = self.stream.codec_context.name
            self.container.close()
            self._open_cpu(f"NVDEC has no decoder for {name}")

    def _open_cpu(self, refused: str | None) -> None:
        if refused is not None:
            log.debug("%s: NVDEC refused it (%s); decoding on the CPU", self.source, refused)
        self.decoder, self.refused = "cpu", refused
        self.container, self.stream = open_video(self.source, self.threads, self.fast)

    def frames(self, info: VideoInfo, size: tuple[int, int]) -> Generator[DecodedFrame, None, None]:
        """Every frame once, scaled while converting (never at full size), upright, with
        repaired presentation times. Decoding and scaling run in a background thread (FFmpeg
        and OpenCV release the GIL), so they overlap with whatever the caller computes on
        each frame."""
        return prefetch(self._frames(info, size), PREFETCH_FRAMES)

    def _frames(self, info: VideoInfo, size: tuple[int, int]) -> Iterator[DecodedFrame]:
        if self.decoder == "nvdec":
            started = False
            try:
                for frame in _scaled_frames(self.container, self.stream, info, size):
                    started = True
                    yield frame
            except DECODE_ERRORS as e:
                if started:
                    raise  # the caller has frames: a damaged tail, as on the CPU
                refused = f"{type(e).__name__}: {e}"
            else:
                if started:
                    return
                refused = "it decoded no frame"
            self.container.close()
            self._open_cpu(refused)
        yield from _scaled_frames(self.container, self.stream, info, size)

    def close(self) -> None:
        self.container.close()

"""Edited copies of real footage, as re-uploads on the web make them, for copy-detection tests.

Every edit takes the original's RGB frames and frame rate and returns the copy's frames and
frame rate (and the x264 quality to encode them at): crops, bars, overlays, colour changes,
mirroring, speed and frame-rate changes, a picture-in-picture and an excerpt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from curate.config.sections import CurateConfig
from curate.copy_detection import ClipEvidence
from curate.media.video import probe
from curate.signals.base import ClipWindow
from curate.signals.fingerprint import FingerprintSignal
from curate.signals.keyframes import KeyframeSignal
from scripts.common.synth import write_video
from stages.analyze import decode_series

Frames = list[np.ndarray]


@dataclass(frozen=True)
class Edit:
    name: str
    apply: Callable[[Frames, float], tuple[Frames, float]]
    crf: int = 20


def read_segment(path: Path, start_s: float, seconds: float, max_width: int = 640):
    """RGB frames of ``[start_s, start_s + seconds)`` of a video (at most ``max_width`` wide,
    upright), and its frame rate."""
    frames: Frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            if t < start_s:
                continue
            if t >= start_s + seconds:
                break
            scale = min(1.0, max_width / frame.width)
            w, h = int(frame.width * scale) // 2 * 2, int(frame.height * scale) // 2 * 2
            frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
    return frames, fps


def _each(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Frames, float], tuple]:
    return lambda frames, fps: ([fn(f) for f in frames], fps)


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[: h // 2 * 2, : w // 2 * 2]


def crop(share: float) -> Callable[[np.ndarray], np.ndarray]:
    """Cut ``share`` of the width and of the height off each side."""

    def fn(f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        dy, dx = int(h * share), int(w * share)
        return _even(f[dy : h - dy, dx : w - dx])

    return fn


def levels(gain: float = 1.0, offset: float = 0.0, gamma: float = 1.0):
    lut = np.clip(((np.arange(256) / 255.0) ** gamma * 255 * gain + offset), 0, 255)
    return lambda f: lut.astype(np.uint8)[f]


def greyscale(f: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def resample(speed: float = 1.0, fps: float | None = None):
    """Play ``speed`` times faster, at ``fps`` frames per second (the original's by default)."""

    def fn(frames: Frames, src_fps: float) -> tuple[Frames, float]:
        out_fps = fps or src_fps
        n = int(len(frames) / src_fps / speed * out_fps)
        picks = [min(len(frames) - 1, int(k * speed * src_fps / out_fps)) for k in range(n)]
        return [frames[i] for i in picks], out_fps

    return fn


def logo(f: np.ndarray) -> np.ndarray:
    """An opaque broadcaster-style logo in the top-right corner."""
    out = f.copy()
    h, w = f.shape[:2]
    x0, y0, x1, y1 = int(w * 0.78), int(h * 0.05), int(w * 0.96), int(h * 0.17)
    cv2.rectangle(out, (x0, y0), (x1, y1), (200, 30, 30), -1)
    cv2.putText(
        out, "NEWS 24", (x0 + 4, y1 - 6), cv2.FONT_HERSHEY_SIMPLEX, (x1 - x0) / 130, (255,) * 3, 2
    )
    return out


def subtitle(f: np.ndarray) -> np.ndarray:
    """A two-line white subtitle with a black outline in the lower third."""
    out = f.copy()
    h, w = f.shape[:2]
    scale = w / 900
    for k, line in enumerate(("I told you we would find it here,", "right where we left it.")):
        org = (int(w * 0.12), int(h * (0.82 + 0.08 * k)))
        for colour, thick in (((0, 0, 0), 5), ((255, 255, 255), 2)):
            cv2.putText(out, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick)
    return out


def bars(vertical: bool):
    """Letterbox (bars above and below) or pillarbox (left and right), 15 % of the size."""

    def fn(f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        pad = int((h if vertical else w) * 0.15) // 2 * 2
        shape = (h + 2 * pad, w, 3) if vertical else (h, w + 2 * pad, 3)
        out = np.zeros(shape, np.uint8)
        if vertical:
            out[pad : pad + h] = f
        else:
            out[:, pad : pad + w] = f
        return out

    return fn


def picture_in_picture(scale: float = 0.6, at: tuple[float, float] = (0.3, 0.25)):
    """The original at ``scale`` over a blurred, darkened copy of itself, its top-left corner at
    ``at`` (shares of the width and height)."""

    def fn(f: np.ndarray) -> np.ndarray:
        h, w = f.shape[:2]
        back = (cv2.GaussianBlur(f, (0, 0), 25) * 0.5).astype(np.uint8)
        small = cv2.resize(f, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
        x, y = int(w * at[0]), int(h * at[1])
        x, y = min(x, w - small.shape[1]), min(y, h - small.shape[0])
        back[y : y + small.shape[0], x : x + small.shape[1]] = small
        return back

    return fn


def excerpt(start_s: float, seconds: float):
    def fn(frames: Frames, fps: float) -> tuple[Frames, float]:
        first = int(start_s * fps)
        return frames[first : first + int(seconds * fps)], fps

    return fn


EDITS: tuple[Edit, ...] = (
    Edit("re-encode low bitrate", lambda fr, fps: (fr, fps), crf=42),
    Edit("downscale x0.5", _each(lambda f: _even(cv2.resize(f, None, fx=0.5, fy=0.5)))),
    Edit("crop 4%", _each(crop(0.04))),
    Edit("crop 10%", _each(crop(0.10))),
    Edit("crop 20%", _each(crop(0.20))),
    Edit("brightness +20", _each(levels(offset=20))),
    Edit("brightness -20", _each(levels(offset=-20))),
    Edit("contrast/gamma", _each(levels(gain=1.25, offset=-20, gamma=0.8))),
    Edit("greyscale", _each(greyscale)),
    Edit("mirror", _each(lambda f: np.ascontiguousarray(f[:, ::-1]))),
    Edit("speed 0.8x", resample(speed=0.8)),
    Edit("speed 1.25x", resample(speed=1.25)),
    Edit("frame rate 15", resample(fps=15)),
    Edit("logo overlay", _each(logo)),
    Edit("subtitle overlay", _each(subtitle)),
    Edit("letterbox", _each(bars(vertical=True))),
    Edit("pillarbox", _each(bars(vertical=False))),
    Edit("picture-in-picture 60%", _each(picture_in_picture())),
    Edit("excerpt 5 s", excerpt(2.0, 5.0)),
)
"""Every edit the copy-detection evaluation makes (crops are per side)."""


def write_copy(path: Path, frames: Frames, fps: float, edit: Edit) -> Path:
    """Encode ``edit`` of ``frames`` to H.264 at ``path``."""
    edited, out_fps = edit.apply(frames, fps)
    return write_video(
        path, edited, fps=float(Fraction(out_fps).limit_denominator(1001)), crf=edit.crf
    )


def whole_file_evidence(path: Path, cfg: CurateConfig) -> ClipEvidence:
    """What the dedup stage reads of a clip, for a whole file taken as one clip: the decode
    pass's frame hashes and keyframes."""
    info = probe(str(path), max_pixels=cfg.probe.max_pixels)
    signals = [FingerprintSignal.from_config(cfg.analyze), KeyframeSignal.from_config(cfg.analyze)]
    series = decode_series(str(path), info, cfg.analyze, signals)
    window = ClipWindow(0, 0, series.num_frames, 0.0, series.end_time, 0.0)
    hashes = signals[0].clip_values(series["fingerprint"], window)
    return ClipEvidence(
        duration=series.end_time,
        fingerprint=hashes["fingerprint"],
        times=np.asarray(hashes["fingerprint_times"], np.float32),
        keyframes=signals[1].clip_values(series["keyframes"], window)["keyframes"],
    )

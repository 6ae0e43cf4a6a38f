"""Fingerprint: PDQ-style frame hashes at ``analyze.fingerprint.fps``, for copy detection.

Each sampled frame, with its dark bars trimmed, gets one 256-bit hash per centred region in
:data:`SCALES` (the whole picture, then smaller centre crops): the signs of the 16 x 16
lowest-frequency DCT coefficients of the region's luma at 64 x 64, as Meta's PDQ does. Signs
do not move with brightness, contrast, gamma, greyscale conversion, re-encoding or downscaling;
a crop or a frame around the picture changes the scale, which the centre crops absorb (a copy
cropped by 10 % on each side matches the original's 0.8 crop); a horizontal mirror flips
exactly the signs of the odd horizontal frequencies, so it is matched without a second hash
(:func:`curate.copy_detection.mirrored`). Frames with too little contrast to hash (fades, black
frames) are left out rather than hashed into noise.

A clip keeps the hashes of the samples inside it with their times from the clip's start; the
dedup stage aligns them between candidate pairs (``curate.copy_detection``).
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal

SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)
"""Centred regions hashed per frame, as a share of the bar-trimmed picture's width and height."""

HASH_BYTES = 32
"""Bytes per region hash (256 bits)."""

DCT_SIZE, KEPT = 64, 16
"""Luma is hashed at DCT_SIZE x DCT_SIZE; the KEPT x KEPT lowest frequencies give the bits."""

BAR_LEVEL = 40
"""Rows and columns whose brightest pixel is at most this (video-range luma, black = 16) are
bars, trimmed before hashing."""

MIN_CONTRAST = 6.0
"""Luma standard deviation below which a frame is too flat to hash (fades, black frames)."""


class FingerprintConfig(SignalConfig):
    """Frame hashes for copy detection (read by the dedup stage)."""

    fps: float = Field(1.0, gt=0, description="Frames hashed per second of video.")


def content_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the picture inside black bars (the whole frame when
    trimming would leave less than half of it)."""
    h, w = gray.shape
    rows = np.flatnonzero(gray.max(axis=1) > BAR_LEVEL)
    cols = np.flatnonzero(gray.max(axis=0) > BAR_LEVEL)
    if rows.size < h // 2 or cols.size < w // 2:
        return 0, h, 0, w
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def frame_hashes(gray: np.ndarray) -> bytes | None:
    """The concatenated region hashes of one luma frame (``len(SCALES) * HASH_BYTES`` bytes),
    or None for a frame too flat to hash."""
    top, bottom, left, right = content_box(gray)
    picture = gray[top:bottom, left:right]
    if float(picture.std()) < MIN_CONTRAST:
        return None
    h, w = picture.shape
    out = []
    for scale in SCALES:
        dy, dx = round(h * (1 - scale) / 2), round(w * (1 - scale) / 2)
        region = picture[dy : h - dy, dx : w - dx]
        small = cv2.resize(region, (DCT_SIZE, DCT_SIZE), interpolation=cv2.INTER_AREA)
        coeffs = cv2.dct(small.astype(np.float32))[:KEPT, :KEPT]
        bits = coeffs.ravel() > 0
        bits[0] = False  # the DC term is always positive: no information
        out.append(np.packbits(bits).tobytes())
    return b"".join(out)


class FingerprintSignal(FrameSignal):
    name = "fingerprint"
    fields = (
        pa.field("fingerprint", pa.list_(pa.binary())),
        pa.field("fingerprint_times", pa.list_(pa.float32())),
    )
    config = FingerprintConfig

    def __init__(self, cfg: FingerprintConfig) -> None:
        self.fps = cfg.fps
        self.times: list[float] = []
        self.hashes: list[bytes] = []
        self._next_t = 0.0

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t

    def update(self, frame: DecodedFrame) -> None:
        self._next_t = frame.time + 1.0 / self.fps
        hashed = frame_hashes(frame.gray)
        if hashed is not None:
            self.times.append(frame.time)
            self.hashes.append(hashed)

    def finish(self) -> tuple[np.ndarray, list[bytes]]:
        return np.asarray(self.times), self.hashes

    def clip_values(self, series: tuple[np.ndarray, list[bytes]], clip: ClipWindow) -> dict:
        times, hashes = series
        inside = np.flatnonzero((times >= clip.start_s) & (times < clip.end_s))
        return {
            "fingerprint": [hashes[i] for i in inside],
            "fingerprint_times": [float(times[i] - clip.start_s) for i in inside],
        }

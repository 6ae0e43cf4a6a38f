"""Small image helpers shared by the signals, the analyze stage and the embedders."""

from __future__ import annotations

import cv2
import numpy as np


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the Laplacian: high for crisp edges, low for blur (HunyuanVideo's measure)."""
    # 16-bit output holds every 3x3 Laplacian of 8-bit input; meanStdDev is one fused pass.
    _, std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S))
    return float(std[0, 0]) ** 2


def downscale(image: np.ndarray, short_side: int) -> np.ndarray:
    """Downscale to about ``short_side`` (never upscales).

    Whole-number factors take OpenCV's fast area-averaging path (the image is cropped by at
    most ``factor - 1`` pixels to make the factor exact); other factors are bilinear, since
    OpenCV's general area resampling costs more than decoding a frame.
    """
    h, w = image.shape[:2]
    factor = min(h, w) / short_side
    if factor <= 1:
        return image
    k = round(factor)
    if abs(factor - k) < 0.1:
        cropped = image[: h - h % k, : w - w % k]
        return cv2.resize(cropped, (w // k, h // k), interpolation=cv2.INTER_AREA)
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def jpeg(bgr: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


def from_jpeg(data: bytes, gray: bool = False) -> np.ndarray:
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


OUTLINE_BGR = (0, 0, 255)


def outlined(thumbnail: bytes, box: dict[str, float], quality: int = 90) -> bytes:
    """A JPEG with ``box`` (``x0, y0, x1, y1`` as shares of its size) drawn on it in red."""
    image = from_jpeg(thumbnail)
    h, w = image.shape[:2]
    corners = (
        (round(box["x0"] * w), round(box["y0"] * h)),
        (round(box["x1"] * w), round(box["y1"] * h)),
    )
    cv2.rectangle(image, corners[0], corners[1], OUTLINE_BGR, max(2, round(min(h, w) / 60)))
    return jpeg(image, quality)

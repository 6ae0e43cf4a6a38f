"""Still images: probed and decoded with Pillow, in the same sandbox and under the same pixel
limit as videos, into the one frame the signals take.

What reaches the signals is the picture as a viewer shows it: EXIF orientation applied, CMYK
and palette images in RGB, transparency laid over white, 16-bit samples scaled to 8 bits (not
clipped). An animated GIF or WebP is curated as an image: its first frame.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageOps, UnidentifiedImageError

from curate.media.video import DecodedFrame, MediaError, VideoInfo, decoded_frame, scaled_size
from curate.storage import is_uri, resolve

IMAGE_EXTENSIONS = frozenset(
    [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"]
    + [ext for ext in (".avif", ".heic", ".heif") if ext in Image.registered_extensions()]
)
"""Extensions read as images (AVIF and HEIC where an installed Pillow plugin reads them)."""

EXIF_ORIENTATION = 0x0112
"""The EXIF tag holding how the camera was turned (5 to 8: a quarter turn)."""

IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
"""What Pillow raises for unreadable, truncated or corrupt images."""


def read_bytes(source: str) -> bytes:
    """The file's bytes, local or in object storage."""
    if not is_uri(source):
        with open(source, "rb") as f:
            return f.read()
    fs, path = resolve(source)
    with fs.open_input_stream(path) as f:
        return f.read()


@contextmanager
def opened_image(source: str, max_pixels: int) -> Iterator[Image.Image]:
    """``source`` opened with its header read (see :func:`open_header`); the rest of
    the file is read if the image is decoded inside the ``with`` block."""
    try:
        # An object is read in one request: Pillow's many small reads would each be one.
        stream: BinaryIO = (
            io.BytesIO(read_bytes(source)) if is_uri(source) else open(source, "rb")  # noqa: SIM115 -- closed when the block ends
        )
    except OSError as e:
        raise MediaError("unreadable", f"cannot read: {e}") from e
    with stream:
        yield open_header(stream, max_pixels)


def open_header(data: bytes | BinaryIO, max_pixels: int) -> Image.Image:
    """The image file ``data`` (its bytes, or a seekable file), its header read;
    ``MediaError`` for a file that is no image Pillow reads, or whose declared size exceeds
    ``max_pixels`` (a decompression bomb is refused before a pixel is decoded)."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    # Pillow's own limit must not refuse what probe.max_pixels allows (checked below).
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    if not stream.read(1):
        raise MediaError("unreadable", "the file is empty")
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own limit and twice that; ours is probe.max_pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except UnidentifiedImageError:
        raise MediaError("unreadable", "not an image format Pillow reads") from None
    except Image.DecompressionBombError as e:
        raise MediaError("unreadable", f"refused before decoding: {e}") from None
    except IMAGE_ERRORS as e:
        raise MediaError("unreadable", f"cannot open: {e}") from e
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError("unreadable", "the image has no size")
    if width * height > max_pixels:
        raise MediaError(
            "unreadable", f"image size {width}x{height} exceeds probe.max_pixels={max_pixels}"
        )
    return image


def _turned(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the picture by a quarter (width and height swap), as
    far as the header says: a PNG's ``getexif`` would decode every pixel to reach an eXIf
    chunk after them (``decode_image`` applies what the whole file says)."""
    try:
        if image.format == "PNG":
            exif = Image.Exif()
            if image.info.get("exif"):
                exif.load(image.info["exif"])
        else:
            exif = image.getexif()
        return exif.get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except IMAGE_ERRORS:
        return False


def probe_image(source: str, *, max_pixels: int) -> VideoInfo:
    """Display size (after EXIF orientation) and format, from the header alone."""
    with opened_image(source, max_pixels) as image:
        width, height = image.size
        if _turned(image):
            width, height = height, width
        codec = (image.format or "unknown").lower()
    return VideoInfo(
        width=width,
        height=height,
        coded_width=width,
        coded_height=height,
        rotation=0,
        sar=1.0,
        fps=0.0,
        duration_s=0.0,
        codec=codec,
    )


def rgb8(image: Image.Image) -> np.ndarray:
    """The decoded picture as upright 8-bit RGB: EXIF orientation applied, transparency over
    white, 16- and 32-bit samples scaled to 8 bits."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, np.float64)
        top = 65535.0 if image.mode != "F" and values.max() > 255 else 255.0
        if image.mode == "F":
            top = max(float(values.max()), 1e-6)
        gray = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def decode_image(
    source: str, info: VideoInfo, short_side: int, max_pixels: int, detail_side: int
) -> DecodedFrame:
    """The image as the one frame of a still: at the analysis size like a video frame, with
    a picture of at least ``detail_side`` on its short side kept for the signals that read
    it larger (``gray_at``)."""
    with opened_image(source, max_pixels) as image:
        try:
            if image.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with a preview
                # A JPEG decodes at 1/2, 1/4 or 1/8 of its size for a fraction of the work:
                # the signals never read more than detail_side.
                scale = detail_side / min(image.size)
                if scale < 1:
                    size = (ceil(image.width * scale), ceil(image.height * scale))
                    image.draft(image.mode, size)
            image.load()
            rgb = rgb8(image)
        except IMAGE_ERRORS as e:
            raise MediaError("decode_error", f"cannot decode the image: {e}") from e
    height, width = rgb.shape[:2]
    full = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    upright = VideoInfo(width, height, width, height, 0, 1.0, 0.0, 0.0, info.codec)
    size = scaled_size(upright, short_side, multiple=8)
    return decoded_frame(full, 0, 0.0, upright, size, VideoReformatter(), VideoReformatter())


WRITABLE = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
"""Formats an image tier re-encodes into (Pillow's names)."""


def encode_image(
    data: bytes,
    image_format: str,
    quality: int,
    short_side: int | None = None,
    crop: list[float] | None = None,
) -> tuple[bytes, str]:
    """The bytes an image tier holds for the image file ``data``, and how they were made:
    ``original`` when nothing asks for a change, else re-encoded as ``image_format``
    (``original``: the file's own format where Pillow writes it, else JPEG) after cutting
    ``crop`` (top, bottom, left, right shares) off and scaling to ``short_side`` (never up)."""
    cropping = crop is not None and any(crop)
    with Image.open(io.BytesIO(data)) as image:
        scaling = short_side is not None and min(image.size) > short_side
        if image_format == "original" and not scaling and not cropping:
            return data, "original"
        source_format = (image.format or "").lower()
        picture = Image.fromarray(rgb8(image))
    if cropping:
        top, bottom, left, right = crop
        w, h = picture.size
        picture = picture.crop(
            (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
        )
    if short_side is not None and min(picture.size) > short_side:  # after the crop
        scale = short_side / min(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    target = image_format
    if target == "original":
        target = source_format if source_format in WRITABLE else "jpeg"
    out = io.BytesIO()
    picture.save(out, WRITABLE[target], quality=quality)
    return out.getvalue(), target

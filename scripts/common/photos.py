"""Real photographs and the image cases built from them: scikit-image's bundled sample photos,
frames exported from footage, edited copies whose truth is known (blurred, letterboxed,
captioned, downscaled, mirrored) and broken images with the outcome each must get."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from scripts.common.synth import png_image

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
"""Colour photographs scikit-image ships (no download): a portrait, a still life, a cat, a
launch pad at night, a motorcycle."""

LETTERBOX = 0.12
"""Bar height added above and below a letterboxed copy, as a share of the photo's height."""

CAPTION = "Summer sale: everything must go"
"""The line burned into a captioned copy."""

DOWNSCALE = 0.6
"""Scale of a downscaled copy (large enough to pass a 256-px tier: it is a duplicate to find,
not a low-resolution image)."""

BLUR_RADIUS = 4
"""Gaussian blur radius (pixels at the photo's size) of a blurred copy."""


def photo_path(name: str) -> Path:
    """Where scikit-image keeps the sample photo ``name``."""
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def sample_photos(folder: Path, names: tuple[str, ...] = PHOTOS) -> list[Path]:
    """Copy scikit-image's sample photos into ``folder`` as they ship (PNG or JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        target = folder / name
        target.write_bytes(photo_path(name).read_bytes())
        paths.append(target)
    return paths


def letterbox_share(height: int) -> float:
    """The true bar share (each of top and bottom) of a letterboxed copy of a photo
    ``height`` pixels high."""
    bar = round(LETTERBOX * height)
    return bar / (height + 2 * bar)


def edited_copies(photo: Path, folder: Path) -> dict[str, Path]:
    """Copies of ``photo`` with known truth, by edit: ``blurred`` (fails a sharpness gate),
    ``letterboxed`` (bars of :func:`letterbox_share`), ``captioned`` (a burned-in line, text
    heavy), ``downscaled`` (:data:`DOWNSCALE`, JPEG) and ``mirrored`` (duplicates of the
    photo)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.open(photo).convert("RGB")
    w, h = image.size
    stem = photo.stem
    copies = {}

    def save(edit: str, picture: Image.Image, ext: str = "png") -> None:
        copies[edit] = folder / f"{stem}_{edit}.{ext}"
        picture.save(copies[edit], quality=90)

    save("blurred", image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))
    bar = round(LETTERBOX * h)
    boxed = Image.new("RGB", (w, h + 2 * bar))
    boxed.paste(image, (0, bar))
    save("letterboxed", boxed)
    captioned = image.copy()
    font = ImageFont.load_default(size=max(16, h // 14))
    ImageDraw.Draw(captioned).text(
        (w * 0.05, h * 0.78), CAPTION, fill="white", font=font, stroke_width=2, stroke_fill="black"
    )
    save("captioned", captioned)
    small = (round(w * DOWNSCALE), round(h * DOWNSCALE))
    save("downscaled", image.resize(small, Image.Resampling.LANCZOS), "jpg")
    save("mirrored", image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return copies


def video_frames(video: Path, folder: Path, formats: tuple[str, ...] = ("jpg", "png", "webp")):
    """One frame of ``video`` per format, from its middle, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_image() for _, f in zip(range(60), container.decode(stream))]
    paths = []
    for i, ext in enumerate(formats):
        path = folder / f"{video.stem}_frame{i}.{ext}"
        frames[min(len(frames) - 1, 20 * i + 10)].save(path, quality=90)
        paths.append(path)
    return paths


def broken_images(folder: Path) -> dict[str, str]:
    """Images a run must survive, written into ``folder``; file name -> expected outcome: a
    rejects reason, or ``ok`` for an odd but sound image that must come out right (see
    :data:`ODD_IMAGES`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_bytes.jpg").write_bytes(b"")
    (folder / "text_named.jpg").write_text("this is not an image\n" * 20)
    whole = io.BytesIO()
    Image.open(photo_path("rocket.jpg")).save(whole, "JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    # Declares 50000 x 50000 px (7.5 GB decoded) in a few bytes.
    (folder / "bomb.png").write_bytes(png_image(50000, 50000, zlib.compress(bytes(64))))
    photo = np.asarray(Image.open(photo_path("coffee.png")).convert("RGB"))
    Image.fromarray(photo).convert("CMYK").save(folder / "cmyk.jpg", quality=92)
    gray16 = (np.asarray(Image.fromarray(photo).convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")  # 16-bit samples, 0-65535
    rotated_jpeg(folder / "exif_rotated.jpg")
    return {
        "zero_bytes.jpg": "unreadable",
        "text_named.jpg": "unreadable",
        "truncated.jpg": "decode_error",
        "bomb.png": "unreadable",
        "cmyk.jpg": "ok",
        "gray16.png": "ok",
        "exif_rotated.jpg": "ok",
    }


ODD_IMAGES = {
    "cmyk.jpg": (600, 400),
    "gray16.png": (600, 400),
    "exif_rotated.jpg": (451, 300),
}
"""The display size each odd but sound image of :func:`broken_images` must be read at."""


def rotated_jpeg(path: Path) -> None:
    """The cat photo (451 x 300) stored turned on its side (300 x 451), with EXIF orientation
    6 ("rotate 90° clockwise to view"): upright, it is the 451 x 300 photo again."""
    cat = Image.open(photo_path("chelsea.png")).convert("RGB")
    stored = cat.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=92, exif=exif.tobytes())

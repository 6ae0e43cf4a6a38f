"""Synthetic test videos whose truth is exact: known cuts, pans, blur, stills, bad files."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from curate import contract
from curate.signals.camera_motion import CAMERA_MOTIONS


def textured_image(seed: int, height: int = 720, width: int = 1280, hue: int | None = None):
    """A detailed RGB image: smoothed noise at several scales plus shapes, tinted by ``hue``."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for scale in (4, 16, 64):
        noise = rng.random((height // scale + 1, width // scale + 1)).astype(np.float32)
        img += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) / 3
    img = np.clip(img * 255, 0, 255).astype(np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(8, 60))
        cv2.circle(img, (x, y), r, int(rng.integers(0, 255)), -1)
        cv2.rectangle(img, (x, y), (x + r, y + r // 2), int(rng.integers(0, 255)), 2)
    hsv = np.zeros((height, width, 3), np.uint8)
    hsv[..., 0] = (hue if hue is not None else int(rng.integers(0, 180))) % 180
    hsv[..., 1] = 150
    hsv[..., 2] = img
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def write_video(
    path: Path, frames: Iterable[np.ndarray], fps: float = 25, crf: int = 18, faststart=True
) -> Path:
    """Encode RGB frames to H.264 in MP4 with PyAV."""
    path = Path(path)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "ultrafast"}
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def pan_frames(image: np.ndarray, n: int, px_per_frame: float, size=(360, 640)):
    """Frames of a window sliding right over ``image`` (content moves left: camera pans right)."""
    h, w = size
    for i in range(n):
        x = px_per_frame * i
        m = np.float32([[1, 0, -x], [0, 1, 0]])
        yield cv2.warpAffine(
            image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )


def still_frames(image: np.ndarray, n: int, size=(360, 640)):
    h, w = size
    frame = np.ascontiguousarray(image[:h, :w])
    for _ in range(n):
        yield frame


def blurred(frames: Iterable[np.ndarray], sigma: float):
    for f in frames:
        yield cv2.GaussianBlur(f, (0, 0), sigma) if sigma else f


def shots_video(path: Path, lengths: list[int], fps: float = 25, size=(360, 640)) -> list[int]:
    """Consecutive shots of distinct scenes, each gently panning; returns the cut frames."""

    def frames():
        for k, n in enumerate(lengths):
            image = textured_image(100 + k, hue=(k * 47) % 180)
            yield from pan_frames(image, n, 1.5, size)

    write_video(path, frames(), fps)
    return list(np.cumsum(lengths)[:-1])


def audio_only(path: Path, seconds: float = 2.0) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        samples = 1024
        t = 0
        for _ in range(int(seconds * 44100 / samples)):
            wave = np.sin(2 * np.pi * 440 * (np.arange(samples) + t) / 44100).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(wave[None, :], format="fltp", layout="mono")
            frame.sample_rate = 44100
            frame.pts = t
            t += samples
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def one_pixel_video(path: Path, frames: int = 125) -> Path:
    """A valid 5 s H.264 video of 1x1 px (4:4:4, since 4:2:0 needs even sizes)."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 1
        stream.pix_fmt = "yuv444p"
        for i in range(frames):
            frame = np.full((1, 1, 3), i % 256, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_image(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """An RGB PNG whose header says ``width`` x ``height``. Without ``pixels`` its image data
    are those of an all-black image of that size: highly compressible, so a 16000 px square is
    a 750 KB file that decodes to 770 MB (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    if pixels is None:
        packer = zlib.compressobj()
        rows = bytes((3 * width + 1) * 256)  # per row: filter byte + black pixels
        parts = [packer.compress(rows) for _ in range(height // 256)]
        parts.append(packer.compress(bytes((3 * width + 1) * (height % 256))))
        pixels = b"".join(parts) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def bad_inputs(folder: Path, *, poison: bool = False) -> dict[str, str]:
    """Write broken inputs into ``folder``; returns file name -> expected rejects reason (each
    gets exactly one rejects row, with a null ``clip_id``, from the probe stage).

    With ``poison``, also ``hang.mp4`` and ``crash.mp4``: valid videos that make the decoder
    hang or segfault under the ``POISON_FAULTS`` test hook (``isolation.faults``, see
    :func:`poison_overrides`), whose rejects come from the probe (hang: ``timeout``) and the
    analyze stage (crash: ``decode_error``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_bytes.mp4").write_bytes(b"")
    (folder / "text_file.mp4").write_text("this is not a video\n" * 50)
    good = write_video(folder / "full.tmp", still_frames(textured_image(7), 150), faststart=False)
    data = good.read_bytes()
    good.unlink()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    audio_only(folder / "audio_only.mp4")
    one_pixel_video(folder / "one_pixel.mp4")
    # A PNG (named .mp4) whose header claims 30000 x 30000 px, over FFmpeg's own size limit:
    # FFmpeg refuses to allocate it, so the stream has no frame size.
    (folder / "huge_header.mp4").write_bytes(png_image(30000, 30000, zlib.compress(bytes(64))))
    expected = {
        "zero_bytes.mp4": "unreadable",
        "text_file.mp4": "unreadable",
        "truncated.mp4": "unreadable",
        "audio_only.mp4": "no_video_stream",
        "one_pixel.mp4": "low_resolution",
        "huge_header.mp4": "unreadable",
    }
    if poison:
        frames = list(still_frames(textured_image(8), 125))
        write_video(folder / "hang.mp4", frames)
        write_video(folder / "crash.mp4", frames)
        expected.update({"hang.mp4": "timeout", "crash.mp4": "decode_error"})
    return expected


POISON_FAULTS = {"*/hang.mp4": "hang", "*/crash.mp4": "analyze:crash"}
"""``isolation.faults`` that turn :func:`bad_inputs`'s ``hang.mp4`` and ``crash.mp4`` into
poison: the probe hangs on the first, the analyze decoder segfaults on the second."""


def poison_overrides(probe_timeout_s: float = 5.0) -> list[str]:
    """``--set`` arguments that arm ``POISON_FAULTS``, with a short probe time limit so that
    the hang costs a test only seconds."""
    import json

    return [
        f"isolation.faults={json.dumps(POISON_FAULTS)}",
        f"isolation.probe_timeout_s={probe_timeout_s}",
    ]


CAMERA_CLASSES = tuple(m for m in CAMERA_MOTIONS if m != "complex")
"""Camera moves the generator can make (every label but ``complex``)."""

_MOVES = {
    "pan_right": (-1.6, 0, 0, 0),
    "pan_left": (1.6, 0, 0, 0),
    "tilt_up": (0, 1.6, 0, 0),
    "tilt_down": (0, -1.6, 0, 0),
    "zoom_in": (0, 0, 0.008, 0),
    "zoom_out": (0, 0, -0.008, 0),
    "roll_cw": (0, 0, 0, 0.35),  # OpenCV: positive angle = counter-clockwise on screen
    "roll_ccw": (0, 0, 0, -0.35),
}
"""Per-frame content motion of each single move at speed 1: dx, dy (px at 320 px), growth
rate, angle (degrees). Pan, tilt and zoom move a frame corner equally fast (0.004 diagonals
per frame), so each part of a combined move is plain to see."""


def _parts(kind: str) -> list[str]:
    """The single moves of a (possibly combined) class: ``zoom_in_pan_left`` → both."""
    words = kind.split("_")
    return ["_".join(words[i : i + 2]) for i in range(0, len(words), 2)]


@dataclass(frozen=True)
class Mover:
    """A real image patch crossing the frame: a person, a car, a hand."""

    patch: np.ndarray
    start: tuple[float, float]
    """Top-left corner at the first frame, as a share of the frame size."""
    velocity: tuple[float, float]
    """Pixels per frame (at 320 px), on screen: independent of the camera."""
    wobble: float = 0.0
    """Up-and-down bounce amplitude, pixels (a walking gait, a juggled ball)."""


def movers(image: np.ndarray, count: int, seed: int) -> list[Mover]:
    """``count`` patches cut from ``image`` (a different picture from the background), each
    6-15 % of the frame area, moving at 1-4 px per frame in random directions."""
    rng = np.random.default_rng(seed)
    out = []
    h, w = image.shape[:2]
    for _ in range(count):
        ph, pw = int(rng.uniform(0.3, 0.5) * 240), int(rng.uniform(0.15, 0.3) * 320)
        scale = min(h / 240, w / 320)
        y0 = int(rng.integers(0, h - ph * scale))
        x0 = int(rng.integers(0, w - pw * scale))
        patch = image[y0 : y0 + int(ph * scale), x0 : x0 + int(pw * scale)]
        patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(1.0, 4.0)
        out.append(
            Mover(
                patch,
                (float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.1, 0.5))),
                (speed * float(np.cos(angle)), speed * float(np.sin(angle))),
                float(rng.uniform(0, 6)),
            )
        )
    return out


def camera_motion_frames(
    image: np.ndarray,
    kind: str,
    speed: float,
    n: int = 75,
    size=(240, 320),
    seed: int = 0,
    objects: list[Mover] = (),
):
    """Frames of a virtual camera moving over ``image`` (BGR or RGB, larger than ``size``),
    with ``objects`` moving across the picture on their own.

    ``kind`` is a class of :data:`CAMERA_CLASSES`; combined classes (``pan_left_tilt_up``,
    ``zoom_in_pan_right``) do both moves at once. ``speed`` in 0.5..2 scales the motion.
    Directions follow the camera: panning right slides the content left, tilting up moves it
    down, rolling clockwise turns it counter-clockwise on screen, zooming in enlarges it.
    Handheld is a smoothed random shake.
    """
    h, w = size
    # The picture is large enough that the fastest move never leaves it (a mirrored edge would
    # move against the camera), yet the view still shows much of it, not a featureless detail.
    image = cv2.resize(image, (int(w * 2.8), int(h * 2.8)), interpolation=cv2.INTER_AREA)
    ih, iw = image.shape[:2]
    cx, cy = iw / 2, ih / 2
    rng = np.random.default_rng(seed)
    shake = np.cumsum(rng.normal(scale=1.2 * speed, size=(n, 2)), axis=0)
    shake -= np.linspace(0, 1, n)[:, None] * shake[-1]  # wander around, end where it started
    rot_shake = np.cumsum(rng.normal(scale=0.08 * speed, size=n))
    parts = [] if kind in ("static", "handheld") else _parts(kind)
    for i in range(n):
        dx = dy = angle = 0.0
        zoom = 1.0
        for part in parts:
            mx, my, rate, ma = _MOVES[part]
            dx += mx * speed * i
            dy += my * speed * i
            angle += ma * speed * i
            if rate:
                # Zooming out starts close and ends wide, so the view stays in the picture.
                zoom *= (1 + rate * speed) ** (i if rate > 0 else i - n)
        if kind == "handheld":
            dx, dy = shake[i]
            angle = rot_shake[i]
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
        # Move the content, then zoom and roll about the centre of the view (as a lens does),
        # and centre the output window on the image centre.
        m[:, 2] += m[:, :2] @ (dx, dy) - (cx - w / 2, cy - h / 2)
        frame = cv2.warpAffine(
            image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        for obj in objects:
            ph, pw = obj.patch.shape[:2]
            x = round(obj.start[0] * w + obj.velocity[0] * i)
            y = round(obj.start[1] * h + obj.velocity[1] * i + obj.wobble * np.sin(i / 3))
            # Bounce off the frame edges so the object stays in view.
            x = int(abs((x + w - pw) % (2 * (w - pw)) - (w - pw)))
            y = int(abs((y + h - ph) % (2 * (h - ph)) - (h - ph)))
            frame[y : y + ph, x : x + pw] = obj.patch
        yield frame


def real_frames(videos: Path, min_width: int = 640, count: int = 6) -> list[np.ndarray]:
    """One detailed RGB frame (at 40 % of the duration) from each of ``count`` shared videos."""
    frames = []
    for path in sorted(videos.rglob("*")):
        if path.suffix.lower() not in {".mp4", ".webm", ".mov", ".mkv", ".avi"}:
            continue
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            if s.codec_context.width < min_width:
                continue
            duration = float(s.duration * s.time_base) if s.duration else c.duration / 1e6
            for f in c.decode(s):
                if f.time is not None and f.time >= 0.4 * duration:
                    image = f.to_ndarray(format="rgb24")
                    break
            else:
                continue
        # Keep frames with texture over most of the picture (flow needs it everywhere).
        gray = cv2.cvtColor(cv2.resize(image, (320, 180)), cv2.COLOR_RGB2GRAY)
        grad = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        if (cv2.blur(grad, (15, 15)) > 40).mean() > 0.6:
            frames.append(image)
        if len(frames) == count:
            break
    return frames


TEXT_KINDS = ("subtitle", "title", "watermark", "fullscreen")
"""On-screen text :func:`draw_text` can add."""

_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "morning", "river")


def _put_lines(image, lines, y, height, *, align="center", outline=True, alpha=1.0, font=None):
    """``lines`` of ``height`` px text from baseline ``y``; white, black-outlined if asked."""
    w = image.shape[1]
    font = cv2.FONT_HERSHEY_SIMPLEX if font is None else font
    scale = cv2.getFontScaleFromHeight(font, int(height), 2)
    thick = max(1, int(height / 10))
    layer = image.copy()
    colour = (255, 255, 255) if image.mean() < 140 or outline else (20, 20, 20)
    for text in lines:
        (tw, _), _ = cv2.getTextSize(text, font, scale, thick)
        x = (w - tw) // 2 if align == "center" else w - tw - int(0.04 * w)
        if outline:
            cv2.putText(layer, text, (x, y), font, scale, (0, 0, 0), 2 * thick + 2, cv2.LINE_AA)
        cv2.putText(layer, text, (x, y), font, scale, colour, thick, cv2.LINE_AA)
        y += int(height * 1.6)
    return cv2.addWeighted(layer, alpha, image, 1 - alpha, 0) if alpha < 1 else layer


def draw_text(image: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """``image`` with on-screen text of ``kind``: a subtitle line, a title, a corner
    watermark (semi-transparent) or full-screen text."""
    rng = np.random.default_rng(seed)
    h = image.shape[0]

    def words(n: int) -> str:
        return " ".join(rng.choice(_WORDS, n))

    if kind == "subtitle":
        return _put_lines(image, [words(4)], int(0.9 * h), 0.06 * h)
    if kind == "title":
        title = words(2).upper()
        return _put_lines(image, [title], int(0.55 * h), 0.12 * h, font=cv2.FONT_HERSHEY_DUPLEX)
    if kind == "watermark":
        return _put_lines(image, ["NEWS 24 HD"], int(0.12 * h), 0.065 * h, align="right", alpha=0.7)
    if kind == "fullscreen":
        return _put_lines(
            image, [words(4) for _ in range(6)], int(0.15 * h), 0.07 * h, outline=False
        )
    raise ValueError(kind)


TEXT_CASES = {
    "subtitle 2%": True,
    "subtitle 3%": True,
    "subtitle 4%": True,
    "subtitle 6%": True,
    "title": True,
    "watermark": True,
    "fullscreen": True,
    "copyright over black": True,
    "title over black": True,
    "subtitle over busy texture": True,
    "credits rolling": True,
    "words sliding over a still": True,
    "text moving with the scene": False,
    "plain": False,
    "black": False,
    "busy texture": False,
}
"""Synthetic on-screen text cases of :func:`text_case_frames` and whether each shows overlay
text (words painted into the scene, moving with it, are scene text, not overlay; credits rolling
up over a pan and words sliding over a still picture move on the screen, not with a scene)."""

_CREDITS = ("Directed by Ada Byron", "Music by Clara Wieck", "Edited by Alma Reville")


def text_case_frames(kind: str, image: np.ndarray, seed: int = 0, n: int = 125, size=(360, 640)):
    """5 s (``n`` frames at 25 fps) of footage for a :data:`TEXT_CASES` case: a slow pan over
    ``image`` (or black, or busy synthetic texture), with the case's text."""
    h, w = size
    rng = np.random.default_rng(seed)
    words = " ".join(rng.choice(_WORDS, 4))
    if "black" in kind:
        background = np.zeros((h, w, 3), np.uint8)
        background += rng.integers(0, 6, background.shape, dtype=np.uint8)  # sensor noise
        frames = (background for _ in range(n))
    else:
        if "busy" in kind:
            image = textured_image(seed, h * 2, w * 2)
        if kind == "text moving with the scene":
            image = image.copy()
            big = image.shape[0]
            _put_lines(image, [words.upper()], int(0.5 * big), 0.05 * big, outline=True)
        # Signs in the scene slide past at a hand-held pan's pace; overlays hold still on it.
        speed = 2.0 if kind == "text moving with the scene" else 0.5
        camera = "static" if kind == "words sliding over a still" else "pan_right"
        frames = camera_motion_frames(image, camera, speed, n=n, size=size, seed=seed)
    for i, frame in enumerate(frames):
        if kind.startswith("subtitle"):
            share = float(kind.split()[1].rstrip("%")) / 100 if "%" in kind else 0.04
            frame = _put_lines(frame, [words], int(0.93 * h), share * h)
        elif kind in ("title", "title over black"):
            frame = draw_text(frame, "title", seed)
        elif kind in ("watermark", "fullscreen"):
            frame = draw_text(frame, kind, seed)
        elif kind == "copyright over black":
            font = cv2.FONT_HERSHEY_SIMPLEX
            scale = cv2.getFontScaleFromHeight(font, int(0.025 * h), 1)
            line = "(c) 2026 Example Pictures. All rights reserved."
            cv2.putText(frame, line, (int(0.2 * w), int(0.6 * h)), font, scale, (128,) * 3, 1)
        elif kind == "credits rolling":  # up a frame height in 5 s
            frame = _put_lines(frame, _CREDITS, int(0.8 * h - i * h / (5 * 25)), 0.05 * h)
        elif kind == "words sliding over a still":  # across most of the frame in 5 s
            font = cv2.FONT_HERSHEY_DUPLEX
            scale = cv2.getFontScaleFromHeight(font, int(0.06 * h), 2)
            x, y = int(0.05 * w + i * 0.8 * w / n), int(0.7 * h)
            cv2.putText(frame, words.upper(), (x, y), font, scale, (0, 0, 0), 6, cv2.LINE_AA)
            cv2.putText(frame, words.upper(), (x, y), font, scale, (255,) * 3, 2, cv2.LINE_AA)
        yield frame


SHORT_TEXT_CASES = {
    "line fading in": (0.2, 0.0),
    "line fading out": (0.0, 0.2),
    "subtitle 1.5%": (0.0, 0.0),
    "plain": None,
}
"""Text cases for short clips (:func:`short_text_frames`): seconds after the start at which
the line starts fading in and before the end at which it has faded out (``FADE_S`` each),
or None for a case without text."""

FADE_S = 0.4


def short_text_frames(
    kind: str, image: np.ndarray, seconds: float = 6.0, fps: float = 25.0, size=(720, 1280)
):
    """A slow pan over ``image`` with the :data:`SHORT_TEXT_CASES` case's line: a subtitle
    3 % of the frame high that fades in after the start or out before the end, a 1.5 %-high
    subtitle on screen throughout, or no text."""
    h = size[0]
    n = int(seconds * fps)
    frames = camera_motion_frames(image, "pan_right", 0.5, n=n, size=size)
    height = (0.015 if kind == "subtitle 1.5%" else 0.03) * h
    for i, frame in enumerate(frames):
        if SHORT_TEXT_CASES[kind] is None:
            yield frame
            continue
        t, (lead, tail) = i / fps, SHORT_TEXT_CASES[kind]
        fade_in = (t - lead) / FADE_S if lead else 1.0
        fade_out = (seconds - tail - t) / FADE_S if tail else 1.0
        alpha = float(np.clip(min(fade_in, fade_out), 0.0, 1.0))
        line = ["the light over the harbour"]
        yield _put_lines(frame, line, int(0.9 * h), height, alpha=alpha) if alpha > 0 else frame


SYNTH_TIERS = {"loose": 20.0, "strict": 100.0}
"""Tiers of ``synthetic_output`` (loosest first) and their ``min_sharpness`` gate."""


@dataclass
class _SynthClips:
    """The per-clip arrays of :func:`synthetic_output` that its tables and manifest share."""

    n: int
    sources: np.ndarray
    ids: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    sizes: np.ndarray
    sharpness: np.ndarray
    cluster: np.ndarray
    strictest: np.ndarray
    """The strictest tier a clip passes (None: none)."""
    passed: np.ndarray
    dups: np.ndarray
    duplicate_of: np.ndarray
    kept: np.ndarray

    @classmethod
    def make(cls, n: int, rng: np.random.Generator) -> _SynthClips:
        sources = np.array([f"/data/videos/src{i // 4:06d}.mp4" for i in range(n)], dtype=object)
        ids = np.array([f"{i:016x}" for i in range(n)], dtype=object)
        start = (np.arange(n) % 4) * 20.0
        duration = rng.uniform(4, 16, n)
        sizes = np.array([(1280, 720), (720, 1280), (640, 360)])[rng.integers(0, 3, n)]
        sharpness = rng.lognormal(4.0, 1.0, n).astype(np.float32)
        cluster = (np.arange(n) % 8).astype(np.int32)
        strictest = np.full(n, None, dtype=object)
        for name, threshold in SYNTH_TIERS.items():
            strictest[sharpness >= threshold] = name
        passed = np.flatnonzero(strictest != None)  # noqa: E711 (element-wise)
        duplicate_of = np.full(n, None, dtype=object)
        dups = passed[1::50]
        duplicate_of[dups] = ids[passed[0::50][: len(dups)]]
        kept = (strictest != None) & (duplicate_of == None)  # noqa: E711
        return cls(
            n, sources, ids, start, duration, sizes, sharpness, cluster, strictest, passed, dups,
            duplicate_of, kept,
        )  # fmt: skip


def _synthetic_analysis(c: _SynthClips, rng: np.random.Generator):
    """The ``analysis`` table of :func:`synthetic_output`."""
    import pyarrow as pa

    from curate import schema

    n = c.n
    orientation = np.where(c.sizes[:, 0] > c.sizes[:, 1], "landscape", "portrait").astype(object)
    thumbs = [
        cv2.imencode(".jpg", np.full((72, 128, 3), 30 * k, np.uint8))[1].tobytes() for k in range(8)
    ]
    centroids = rng.normal(size=(8, schema.EMBEDDING_DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    # Captions are written in phase 3, for clips that reach a tier.
    captions = np.where(c.kept & (np.arange(n) % 2 == 1), "a synthetic clip of a grey square", None)
    return schema.conform(
        pa.table(
            {
                "clip_id": c.ids,
                "source": c.sources,
                "shot_index": np.zeros(n, np.int32),
                "start_s": c.start,
                "end_s": c.start + c.duration,
                "duration_s": c.duration,
                "width": c.sizes[:, 0].astype(np.int32),
                "height": c.sizes[:, 1].astype(np.int32),
                "fps": np.full(n, 25, np.float32),
                "orientation": orientation,
                "sharpness": c.sharpness,
                "motion_score": rng.uniform(0, 0.3, n).astype(np.float32),
                "camera_motion": np.array(CAMERA_MOTIONS, dtype=object)[
                    rng.integers(0, len(CAMERA_MOTIONS), n)
                ],
                "camera_motion_confidence": rng.uniform(0.3, 1, n).astype(np.float32),
                "aesthetic": rng.uniform(2, 9, n).astype(np.float32),
                "border_top": np.zeros(n, np.float32),
                "embedding": pa.FixedSizeListArray.from_arrays(
                    centroids[c.cluster].reshape(-1), schema.EMBEDDING_DIM
                ),
                "embedding_model": np.full(n, "synthetic", dtype=object),
                "cluster_id": c.cluster,
                "duplicate_of": c.duplicate_of,
                **_synthetic_duplicates(c),
                "sample_weight": pa.array(np.ones(n, np.float32), mask=~c.kept),
                "tier": c.strictest,
                "thumbnail": pa.array([thumbs[k] for k in c.cluster], pa.binary()),
                "caption": pa.array(captions, pa.string()),
                "prompt": pa.array(captions, pa.string()),
            }
        ),
        contract.ANALYSIS,
    )


def _synthetic_duplicates(c: _SynthClips) -> dict:
    """The dedup columns of :func:`synthetic_output`: each duplicate matches its original by
    embedding, over the shorter of the two clips."""
    import pyarrow as pa

    dup = c.duplicate_of != None  # noqa: E711
    row_of = {cid: k for k, cid in enumerate(c.ids)}
    spans = [
        {
            "start_s": 0.0,
            "end_s": float(min(c.duration[k], c.duration[row_of[o]])),
            "of_start_s": 0.0,
            "of_end_s": float(min(c.duration[k], c.duration[row_of[o]])),
        }
        if o is not None
        else None
        for k, o in enumerate(c.duplicate_of)
    ]
    return {
        "duplicate_similarity": pa.array(np.full(len(dup), 0.97, np.float32), mask=~dup),
        "duplicate_method": np.where(dup, "embedding", None),
        "duplicate_span": spans,
    }


_SYNTH_BROKEN = [f"/data/videos/broken{j}.mp4" for j in range(2)]
"""The unreadable inputs of :func:`synthetic_output`, rejected by probe."""


def _synthetic_rejects(c: _SynthClips):
    """The ``rejects`` table of :func:`synthetic_output`: probe, tier and dedup rejects."""
    from curate import schema

    reject_rows = [
        {"source": s, "stage": "probe", "reason": "unreadable", "detail": "not a video"}
        for s in _SYNTH_BROKEN
    ]
    clip_rejects = [(i, "tiers", "blurry") for i in np.flatnonzero(c.strictest == None)]  # noqa: E711
    clip_rejects += [(i, "dedup", "duplicate") for i in c.dups]
    for i, stage, reason in clip_rejects:
        detail = (
            f"sharpness {c.sharpness[i]:.4g} fails loose.gates.min_sharpness=20"
            if reason == "blurry"
            else f"cosine 0.970 >= dedup.threshold 0.95 with {c.duplicate_of[i]}"
        )
        reject_rows.append(
            {
                "source": c.sources[i],
                "clip_id": c.ids[i],
                "stage": stage,
                "reason": reason,
                "detail": detail,
                "start_s": c.start[i],
                "end_s": c.start[i] + c.duration[i],
            }
        )
    return schema.from_rows(reject_rows, schema.REJECTS)


def _synthetic_manifest(c: _SynthClips, sizes_of: dict[str, dict]):
    """The ``manifest.json`` of :func:`synthetic_output`, consistent with its tables."""
    from curate import schema
    from curate.contract import SCORE_COLUMNS, SIGNAL_FIELDS
    from curate.output.record import FunnelStage, Inputs, Manifest, TierSize

    n, kept, cluster = c.n, int(c.kept.sum()), c.cluster
    blurry = int((c.strictest == None).sum())  # noqa: E711 (element-wise)
    reasons = {"blurry": blurry, "duplicate": len(c.dups), "unreadable": 2}
    inputs = len(np.unique(c.sources)) + len(_SYNTH_BROKEN)
    clusters = {str(k): int((cluster[c.kept] == k).sum()) for k in range(8)}
    return Manifest(
        inputs=Inputs(given=["/data/videos"], discovered=inputs),
        embedding_model="synthetic",
        funnel={
            "discover": FunnelStage(in_=inputs, out=inputs),
            "probe": FunnelStage(in_=inputs, out=inputs - 2, rejected={"unreadable": 2}),
            "analyze": FunnelStage(in_=inputs - 2, out=n, extra={"shots": inputs - 2}),
            "tiers": FunnelStage(
                in_=n,
                out=len(c.passed),
                rejected={"blurry": reasons["blurry"]},
                extra={
                    "thresholds": {name: {"min_sharpness": t} for name, t in SYNTH_TIERS.items()}
                },
            ),
            "dedup": FunnelStage(in_=len(c.passed), out=kept, rejected={"duplicate": len(c.dups)}),
            "rebalance": FunnelStage(
                in_=kept,
                out=kept,
                extra={"mode": "weight", "clusters_before": clusters, "clusters_after": clusters},
            ),
            "export": FunnelStage(in_=kept, out=kept),
        },
        tiers={name: TierSize(**size) for name, size in sizes_of.items()},
        rejects=dict(sorted(reasons.items())),
        config={
            "tiers": [
                {"name": name, "gates": {"min_sharpness": t}} for name, t in SYNTH_TIERS.items()
            ]
        },
        signal_columns=schema.fields_to_json(SIGNAL_FIELDS),
        score_columns=list(SCORE_COLUMNS),
    )


def synthetic_output(folder: Path, clips: int, *, rows_per_file: int = 25_000, seed: int = 0):
    """A complete output folder of ``clips`` candidate clips, built directly with pyarrow.

    Four clips per source plus two unreadable inputs; tiers gate on sharpness
    (``SYNTH_TIERS``); every 50th clip that passed is a duplicate of the clip before it; half
    of the tier rows have a caption. It keeps the accounting invariant, so corrupting it is
    the only way to make ``curate validate`` fail. Returns the folder.
    """
    import pyarrow as pa

    from curate import schema
    from curate.output.tables import ShardWriter
    from curate.storage import Store

    rng = np.random.default_rng(seed)
    c = _SynthClips.make(clips, rng)
    analysis = _synthetic_analysis(c, rng)

    def write(name: str, table: pa.Table, table_schema: pa.Schema) -> None:
        with ShardWriter(
            folder / name, table_schema, rows_per_file=rows_per_file, compression="zstd"
        ) as writer:
            writer.write(table)

    folder.mkdir(parents=True, exist_ok=True)
    write("analysis", analysis, contract.ANALYSIS)
    write("rejects", _synthetic_rejects(c), schema.REJECTS)
    sources = np.unique(c.sources)
    shots = {"source": sources, "shot_index": np.zeros(len(sources), np.int32)}
    write("shots", schema.conform(pa.table(shots), schema.SHOTS), schema.SHOTS)
    names = list(SYNTH_TIERS)
    sizes_of = {}
    for k, name in enumerate(names):
        member = c.kept & np.isin(c.strictest, names[k:])
        rows = analysis.filter(pa.array(member))
        rows = rows.set_column(
            rows.schema.get_field_index("tier"), "tier", pa.array([name] * rows.num_rows)
        )
        write(f"tiers/{name}", schema.conform(rows, contract.TIER), contract.TIER)
        sizes_of[name] = {
            "clips": int(member.sum()),
            "hours": round(c.duration[member].sum() / 3600, 6),
        }
    _synthetic_manifest(c, sizes_of).write(Store(folder))
    return folder


@dataclass(frozen=True)
class ShotCase:
    """A synthetic video with exact shot truth (decoded-frame indices)."""

    name: str
    path: Path
    cuts: tuple[int, ...] = ()
    transitions: tuple[tuple[int, int], ...] = ()
    """Gradual transitions ``(first, last)``: frames that mix two shots (or fade through black)."""

    @property
    def single_shot(self) -> bool:
        return not self.cuts and not self.transitions


def _crop(image: np.ndarray, zoom: float, cx: float, cy: float, size=(360, 640)) -> np.ndarray:
    """The ``size`` window of ``image`` magnified ``zoom`` times around ``(cx, cy)`` (0-1)."""
    h, w = size
    ih, iw = image.shape[:2]
    ch, cw = ih / zoom, iw / zoom
    x0 = min(max(cx * iw - cw / 2, 0), iw - cw)
    y0 = min(max(cy * ih - ch / 2, 0), ih - ch)
    m = np.float32([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]])
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def _drift(image: np.ndarray, n: int, seed: int, px: float = 1.0) -> list[np.ndarray]:
    """A slow hand-held-like drift over ``image`` with sensor noise: frames that move a little."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out = []
    for i in range(n):
        m = np.float32([[1, 0, -px * i + rng.normal(0, 0.3)], [0, 1, rng.normal(0, 0.3)]])
        frame = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT).astype(np.int16)
        frame += rng.normal(0, 2, frame.shape).astype(np.int16)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def _grey(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in frames]


def shot_cases(folder: Path, images: list[np.ndarray], fps: float = 25) -> list[ShotCase]:
    """Hard cases for shot detection, written as H.264 into ``folder``: jump cuts inside one
    scene (colour and greyscale), cuts between greyscale scenes, a dissolve, a fade through
    black, and single shots that must not be cut — a white flash, a fast pan, and a dark hand
    sweeping across the lens. ``images``: at least three detailed RGB pictures (real frames
    make the cases realistic; :func:`textured_image` serves without them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a, b, c = (cv2.resize(im, (1280, 720), interpolation=cv2.INTER_AREA) for im in images[:3])
    n = 60
    cases: list[ShotCase] = []

    def write(name: str, frames: list[np.ndarray], **truth) -> None:
        path = write_video(folder / f"{name}.mp4", frames, fps)
        cases.append(ShotCase(name, path, **truth))

    # Jump cuts: the same scene re-framed (closer, to the side), as an editor cuts an interview.
    jumps = [_crop(a, 1.0, 0.5, 0.5), _crop(a, 1.35, 0.42, 0.45), _crop(a, 1.15, 0.6, 0.55)]
    frames = [f for k, im in enumerate(jumps) for f in _drift(im, n, k)]
    write("jump_cuts_colour", frames, cuts=(n, 2 * n))
    write("jump_cuts_grey", _grey(frames), cuts=(n, 2 * n))
    scenes = [_crop(im, 1.0, 0.5, 0.5) for im in (a, b, c)]
    frames = [f for k, im in enumerate(scenes) for f in _drift(im, n, 10 + k)]
    write("cuts_grey", _grey(frames), cuts=(n, 2 * n))

    first, second = _drift(scenes[0], n, 20), _drift(scenes[1], n, 21)
    mix = 16
    dissolve = [
        cv2.addWeighted(
            first[n - mix + i], 1 - (i + 1) / (mix + 1), second[i], (i + 1) / (mix + 1), 0
        )
        for i in range(mix)
    ]
    write("dissolve", first[: n - mix] + dissolve + second[mix:], transitions=((n - mix, n - 1),))
    fade = 12
    out = [(f * (1 - (i + 1) / fade)).astype(np.uint8) for i, f in enumerate(first[n - fade :])]
    into = [(f * ((i + 1) / fade)).astype(np.uint8) for i, f in enumerate(second[:fade])]
    write(
        "fade_through_black",
        first[: n - fade] + out + into + second[fade:],
        transitions=((n - fade, n + fade - 1),),
    )

    frames = _drift(scenes[2], 2 * n, 30)
    for i in (n, n + 1):
        frames[i] = np.full_like(frames[i], 250)
    write("flash", frames)
    write("fast_pan", list(pan_frames(a, 2 * n, 14.0)))
    frames = _drift(scenes[1], 2 * n, 40)
    h, w = frames[0].shape[:2]
    for i in range(n - 12, n + 12):
        # A dark, out-of-focus hand crossing close to the lens, covering most of the picture.
        x = int(-0.6 * w + (i - n + 12) / 24 * 2.2 * w)
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (x, h // 2), (int(0.45 * w), int(0.8 * h)), 20, 0, 360, 255, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 15).astype(np.float32)[..., None] / 255
        hand = np.array([90, 60, 45], np.float32)
        frames[i] = (frames[i] * (1 - mask) + hand * mask).astype(np.uint8)
    write("hand_over_lens", frames)
    return cases

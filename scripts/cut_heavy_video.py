"""Build a cut-heavy 720p H.264 benchmark video from the shared real footage.

Segments of real videos (stop-motion film, kinetic-typography promo, Big Buck Bunny's titles
and cuts, a BBC documentary with many cuts, static-camera and hand-held clips) are cut
together, each scaled to fill 1280×720 (centre crop) and resampled to 25 fps, and encoded with
x264. Every join is a hard cut whose frame is known exactly; the multi-shot sources add cuts
of their own inside their segments. At the default 180 s the video holds 23 joins.

The file is cached (``--cache``, default ``~/.cache/curate-bench``) under a name derived from
the segment list and the size, so a benchmark pays for the encode once.

Run from the repo root::

    python scripts/cut_heavy_video.py [--duration 180] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from scripts.common.paths import SHARED_VIDEOS

SIZE = (1280, 720)
FPS = 25

SEGMENTS: tuple[tuple[str, float, float], ...] = (
    # (path under the shared videos, start s, seconds)
    ("moviepy/big_buck_bunny_0_30.webm", 0.0, 11.0),
    ("media-samples/sample.mov", 4.0, 14.0),
    ("mediaelement-files/echo-hereweare.webm", 0.0, 10.0),
    ("sam2/05_default_juggle.mp4", 0.0, 7.0),
    ("PySceneDetect/issue-195-aspect-ratio.mp4", 0.0, 12.0),
    ("opencv-for-python/faces.mp4", 0.0, 6.0),
    ("sample-videos/bottle-detection.mp4", 10.0, 6.0),
    ("face_recognition/short_hamilton_clip.mp4", 0.0, 9.0),
    ("media-samples/sample.mov", 30.0, 10.0),
    ("OpenCVTutorial/vtest.avi", 0.0, 6.0),
    ("mediaelement-files/echo-hereweare.webm", 20.0, 9.0),
    ("sam2/bedroom.mp4", 0.0, 6.0),
    ("learning-area/crystal.webm", 0.0, 7.0),
    ("moviepy/big_buck_bunny_0_30.webm", 15.0, 10.0),
    ("co-tracker/teddy.mp4", 0.0, 5.0),
    ("moviepy/video_with_failing_audio.mp4", 0.0, 8.0),
    ("learning-area/rabbit.webm", 0.0, 5.0),
    ("mmaction2/S001C001P001R001A001_rgb.avi", 0.0, 3.4),
    ("media-samples/sample.mov", 45.0, 12.0),
    ("co-tracker/paragliding-launch.mp4", 0.0, 2.6),
    ("mediaelement-files/echo-hereweare.webm", 32.0, 8.0),
    ("PySceneDetect/issue-195-aspect-ratio.mp4", 13.0, 9.0),
    ("sample-videos/book.mkv", 0.0, 3.6),
    ("sam2/05_default_juggle.mp4", 7.0, 3.0),
    ("opencv-for-python/faces.mp4", 6.0, 3.4),
)


def fill(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to cover :data:`SIZE` and centre-cropped to it."""
    w, h = SIZE
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interpolation)
    x0, y0 = (sw - w) // 2, (sh - h) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + h, x0 : x0 + w])


def segment_frames(path: Path, start: float, seconds: float, n_out: int):
    """``n_out`` RGB frames at :data:`FPS` from ``start``: each slot shows the newest source
    frame at or before its time (the source's rate is kept, with repeats where it is lower)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        shown = None
        k = 0
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            if t < start - 1e-3:
                shown = frame
                continue
            while shown is not None and k < n_out and start + k / FPS < t - 1e-3:
                yield fill(shown.to_ndarray(format="rgb24"))
                k += 1
            shown = frame
            if k >= n_out:
                return
            if t >= start + seconds:
                break
        while shown is not None and k < n_out:  # a source shorter than asked: hold its last frame
            yield fill(shown.to_ndarray(format="rgb24"))
            k += 1


def plan(duration: float) -> list[tuple[str, float, int]]:
    """The segments that fill ``duration`` seconds, as (path, start, frames)."""
    out = []
    left = round(duration * FPS)
    for rel, start, seconds in SEGMENTS:
        n = min(left, round(seconds * FPS))
        if n <= 0:
            break
        out.append((rel, start, n))
        left -= n
    return out


def build(
    videos: Path, duration: float = 180.0, out: Path | None = None, cache: Path | None = None
) -> tuple[Path, list[int]]:
    """The video (built once, then reused) and the frame index of every join."""
    segments = plan(duration)
    joins = [int(x) for x in np.cumsum([n for _, _, n in segments])[:-1]]
    if out is None:
        key = hashlib.sha256(json.dumps([segments, SIZE, FPS]).encode()).hexdigest()[:12]
        folder = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        folder = folder / "curate-bench" if cache is None else folder
        out = folder / f"cut-heavy-{duration:g}s-{key}.mp4"
    if out.exists():
        return out, joins
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.mp4")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        k = 0
        for rel, start, n in segments:
            for image in segment_frames(videos / rel, start, n / FPS, n):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = k
                container.mux(stream.encode(frame))
                k += 1
        container.mux(stream.encode(None))
    tmp.rename(out)
    return out, joins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=SHARED_VIDEOS, help="shared videos")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds (default 180)")
    parser.add_argument("--out", type=Path, help="write here instead of the cache")
    parser.add_argument("--cache", type=Path, help="cache folder (default ~/.cache/curate-bench)")
    args = parser.parse_args(argv)
    if not args.videos.is_dir():
        print(f"no shared videos at {args.videos}", file=sys.stderr)
        return 2
    path, joins = build(args.videos, args.duration, args.out, args.cache)
    print(f"cut-heavy video: {path}")
    print(f"{len(plan(args.duration))} segments, {len(joins)} joins at frames {joins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

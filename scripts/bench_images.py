"""Images per second through phase 1 (probe, decode and signals, detect, embed) with a config,
against Pillow decoding the same files alone, in one invocation; and where the time goes.

The images are real photographs: scikit-image's sample photos and, given ``--videos``, frames
of the shared footage, written as JPEG, PNG and WebP at their own sizes and, with
``--long-side``, scaled to it (phone and web photos are 1,500-4,000 px across). Each image is
cropped a little differently, so no two files are the same picture.

    python scripts/bench_images.py --images 200 --videos ../shared/testdata/videos
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import av
from PIL import Image

from curate.media.image import rgb8
from curate.timing import timing_lines
from scripts.common.curate_run import log_tail, run_curate
from scripts.common.paths import DEFAULT_CONFIG, SHARED_VIDEOS
from scripts.common.photos import photo_path
from scripts.common.timing import Stopwatch

COLOUR_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
)
"""scikit-image's colour photographs (bundled, no download)."""

FORMATS = ("jpg", "png", "webp")


def pictures(videos: Path | None, frames_per_video: int) -> list[Image.Image]:
    """The photographs, then ``frames_per_video`` frames spread over each shared video."""
    found = [Image.open(photo_path(name)).convert("RGB") for name in COLOUR_PHOTOS]
    if videos is None:
        return found
    for path in sorted(p for p in videos.rglob("*") if p.suffix in (".mp4", ".webm", ".mov")):
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                decoded = [f.to_image() for _, f in zip(range(240), container.decode(stream))]
        except (av.FFmpegError, OSError, IndexError):
            continue
        step = max(1, len(decoded) // frames_per_video)
        found += decoded[::step][:frames_per_video]
    return found


def write_images(folder: Path, count: int, sources: list[Image.Image], long_side: int | None):
    """``count`` image files made from ``sources`` in turn, each cropped differently."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        picture = sources[i % len(sources)]
        w, h = picture.size
        inset = 1 + (i // len(sources)) % 20  # a different crop on each pass over the sources
        picture = picture.crop((inset, inset, w - inset, h - inset))
        if long_side:
            scale = long_side / max(picture.size)
            picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
        picture.save(folder / f"image{i:05d}.{FORMATS[i % len(FORMATS)]}", quality=90)


def decode_only(folder: Path) -> tuple[int, float]:
    """Pillow decoding every image to 8-bit RGB, as the pipeline does: (images, seconds)."""
    watch = Stopwatch()
    files = sorted(folder.iterdir())
    for path in files:
        with Image.open(path) as image:
            image.load()
            rgb8(image)
    return len(files), watch.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="Images to curate.")
    parser.add_argument(
        "--videos", type=Path, default=None, help=f"Also frames of these videos ({SHARED_VIDEOS})."
    )
    parser.add_argument("--frames-per-video", type=int, default=4)
    parser.add_argument("--long-side", type=int, default=None, help="Scale images to this.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--workdir", type=Path, default=None, help="Kept when given.")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="curate-bench-images-"))
    images, out, log = workdir / "images", workdir / "out", workdir / "run.log"
    shutil.rmtree(images, ignore_errors=True)
    sources = pictures(args.videos, args.frames_per_video)
    write_images(images, args.images, sources, args.long_side)
    megapixels = sum(Image.open(p).size[0] * Image.open(p).size[1] for p in images.iterdir()) / 1e6
    print(
        f"{args.images} images from {len(sources)} photographs and frames, "
        f"{megapixels / args.images:.2f} MP on average, formats {', '.join(FORMATS)}"
    )
    n, decode_s = decode_only(images)
    rc, wall_s = run_curate(args.config, [images], out, "--fresh", "--no-progress", log=log)
    if rc != 0:
        print(f"curate run failed ({rc}):\n{log_tail(log)}")
        return 1
    manifest = json.loads((out / "manifest.json").read_text())
    phase1_s = manifest["timing"]["phase1_probe_analyze_embed_s"]
    decode_rate, phase1_rate = n / decode_s, n / phase1_s
    print(f"Pillow decode only:  {decode_s:7.2f} s  {decode_rate:8.1f} images/s")
    print(
        f"phase 1 ({args.config}): {phase1_s:7.2f} s  {phase1_rate:8.1f} images/s  "
        f"{phase1_rate / decode_rate:.3f}x decode-only"
    )
    print(f"whole run (phases 1-3, with Ray start): {wall_s:.2f} s  {n / wall_s:.1f} images/s")
    sizes = {name: t["clips"] for name, t in manifest["tiers"].items()}
    print(f"tiers: {sizes}; rejects: {manifest['rejects']}")
    print("\n".join(timing_lines(manifest["timing"]["stages"])))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

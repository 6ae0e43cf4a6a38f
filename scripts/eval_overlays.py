"""Watermark and logo detection on real footage: recall per kind of mark, false positives and
the separation margin of ``watermark_score``.

Positives: segments of the shared real footage (moving and static cameras, animation, a
documentary) with a mark laid over them (``scripts/common/overlays.py``): a stock-style word
across the middle at 20 % and 40 % opacity, the same tiled diagonally at 25 %, a corner
broadcaster logo opaque and at 50 %, a small URL in a corner, a word that drifts and
bounces across the frame, and a short-video app's name over a handle that moves from one
corner to the opposite one halfway through. The station logos two shared videos carry (``WH.GOV`` in
``short_hamilton_clip.mp4``, a faint ``BBC FOUR`` in ``issue-195-aspect-ratio.mp4``) are real
positives, reported on their own row.

Negatives: every other shared video as it is (static cameras, hand-held, animation, the
text-bearing clips: titles, credits, a kinetic-typography promo, rendered labels), copies
of the positives' footage with a subtitle or a title burned in: text, not watermarks, which
must stay below the default ``max_watermark``, and still real pictures under a camera that
drifts (shaken by hand, panning, zooming, rolling, slowly): the scene's broad edges pass a
pixel one after another and persist, yet go where the picture goes.

Every file goes through the real probe, analyze and detect stages (``configs/default.yaml``
with any ``--set`` overrides); each clip they cut is scored. The table gives recall at the
default ``max_watermark`` per kind of mark, the lowest positive and the highest clean score,
the marked clips given the kind of mark laid (``watermark_kind``: ``text``, ``logo`` or
``tiled``), and the margin between the scores (positive when every marked clip scores above
every clean one).

Run from the repo root::

    python scripts/eval_overlays.py [--originals 8] [--seconds 20] [--drifting 3] [--workdir DIR]
        [--set K=V]
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from curate import schema
from curate.config.loading import load_config
from curate.config.sections import CurateConfig
from scripts.common.copies import read_segment, subtitle
from scripts.common.overlays import FONT, OVERLAYS
from scripts.common.paths import DEFAULT_CONFIG, SHARED_VIDEOS
from scripts.common.synth import camera_motion_frames, real_frames, write_video
from stages.analyze import AnalyzeStage
from stages.detect import DetectStage
from stages.probe import ProbeStage

ORIGINALS = (
    ("learning-area/crystal.webm", 0.0),
    ("moviepy/big_buck_bunny_0_30.webm", 0.0),
    ("moviepy/video_with_failing_audio.mp4", 0.0),
    ("opencv-for-python/faces.mp4", 0.0),
    ("sam2/05_default_juggle.mp4", 0.0),
    ("OpenCVTutorial/vtest.avi", 0.0),
    ("sample-videos/bottle-detection.mp4", 0.0),
    ("co-tracker/teddy.mp4", 0.0),
)
"""Footage the marks are laid over (path under the shared videos, start of the segment):
hand-held, animation with cuts, hand-held with a cut, a slow camera, a portrait phone clip,
and three static cameras (the hard case: the picture under the mark hardly changes)."""

KINDS = {**{o.name: o.kind for o in OVERLAYS}, "station logo (real)": "logo"}
"""The ``watermark_kind`` each group of marked clips should be given."""

REAL_MARKS = {
    "face_recognition/short_hamilton_clip.mp4": "station logo (real)",
    "PySceneDetect/issue-195-aspect-ratio.mp4": "station logo (real)",
}
"""Shared videos that carry a real mark (checked by eye on frames every 2 s): an opaque
``WH.GOV`` in the top-right corner, a faint semi-transparent ``BBC FOUR`` in the top-left
corner; positives, on their own row."""

EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov")

DRIFTS = (("handheld", 1.0), ("pan_right", 0.1), ("zoom_in", 0.1), ("roll_cw", 0.1))
"""Moves of the camera over a still real picture for the drifting negatives
(``camera_motion_frames``): a hand-held shake, a pan of 4 px a second at 640 px, a zoom of 2 %
a second and a roll of 0.9 degrees a second."""

DRIFT_FPS = 25.0
"""Frame rate of the drifting negatives (the speeds above are per frame at this rate)."""


def title(f: np.ndarray) -> np.ndarray:
    """An opaque white title with a dark outline across the middle of the frame."""
    out = f.copy()
    h, w = f.shape[:2]
    scale = w / 700
    for colour, thick in (((0, 0, 0), 6), ((255, 255, 255), 2)):
        cv2.putText(
            out, "A Summer Story", (int(w * 0.22), int(h * 0.5)), FONT, scale, colour, thick
        )
    return out


TEXT_COPIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "subtitle (text)": subtitle,
    "title (text)": title,
}
"""Text burned into copies of the positives' footage: negatives for the watermark score."""


@dataclass
class Scored:
    name: str
    group: str
    """The mark laid over the clip, ``clean``, or a text copy's name."""
    positive: bool
    score: float
    kind: str


def analyse(path: Path, cfg: CurateConfig) -> list[dict]:
    """The clips of one file after the real probe, analyze and detect stages."""
    probed = ProbeStage.from_config(cfg).probe_one(str(path), 0)
    analyze = AnalyzeStage.from_config(cfg)
    row = schema.from_rows([analyze.analyze_one(probed)], analyze.schema)
    return DetectStage.from_config(cfg)(row).to_pylist()[0]["clips"] or []


def make_files(workdir: Path, originals: int, seconds: float) -> list[tuple[Path, str, bool]]:
    """The marked copies and text copies of the originals (made once per workdir):
    ``(path, group, positive)``."""
    files = []
    for rel, start in ORIGINALS[:originals]:
        frames, fps = read_segment(SHARED_VIDEOS / rel, start, seconds, max_width=640)
        stem = Path(rel).stem
        for overlay in OVERLAYS:
            path = workdir / f"{stem}--{overlay.name.replace(' ', '_').replace('%', '')}.mp4"
            if not path.exists():
                write_video(path, overlay.draw(frames, fps)[0], fps=fps)
            files.append((path, overlay.name, True))
        for name, draw in TEXT_COPIES.items():
            path = workdir / f"{stem}--{name.split()[0]}.mp4"
            if not path.exists():
                write_video(path, [draw(f) for f in frames], fps=fps)
            files.append((path, name, False))
    return files


def drifting_files(
    workdir: Path, videos: Path, pictures: int, seconds: float
) -> list[tuple[Path, str, bool]]:
    """Clean negatives: a real frame of each of ``pictures`` shared videos under a camera that
    drifts (:data:`DRIFTS`), made once per workdir."""
    files = []
    for k, picture in enumerate(real_frames(videos, count=pictures) if pictures else []):
        for move, speed in DRIFTS:
            path = workdir / f"drifting{k}--{move}.mp4"
            if not path.exists():
                n = int(seconds * DRIFT_FPS)
                frames = camera_motion_frames(picture, move, speed, n=n, size=(360, 640))
                write_video(path, frames, fps=DRIFT_FPS)
            files.append((path, "camera drifting (clean)", False))
    return files


def shared_files(videos: Path) -> list[tuple[Path, str, bool]]:
    """Every shared video as it is: clean, except the ones with a real mark."""
    out = []
    for path in sorted(p for p in videos.rglob("*") if p.suffix.lower() in EXTENSIONS):
        rel = path.relative_to(videos).as_posix()
        out.append((path, REAL_MARKS.get(rel, "clean"), rel in REAL_MARKS))
    return out


def score_all(files: list[tuple[Path, str, bool]], cfg: CurateConfig) -> list[Scored]:
    scored = []
    for path, group, positive in files:
        for clip in analyse(path, cfg):
            name = f"{path.name} {clip['start_s']:.1f}-{clip['end_s']:.1f}s"
            value = clip.get("watermark_score")
            scored.append(
                Scored(name, group, positive, float(value or 0.0), clip.get("watermark_kind") or "")
            )
    return scored


def report(scored: list[Scored], threshold: float) -> float:
    """Print the per-clip and per-group tables; the margin (lowest positive - highest clean)."""
    print("\n| clip | group | watermark_score | kind |")
    print("|---|---|---|---|")
    for s in sorted(scored, key=lambda s: (not s.positive, s.group, s.name)):
        print(f"| {s.name} | {s.group} | {s.score:.3f} | {s.kind} |")
    print(f"\n| group | clips | above max_watermark {threshold} | lowest | highest | kind right |")
    print("|---|---|---|---|---|---|")
    for group in dict.fromkeys(s.group for s in scored):
        values = [s.score for s in scored if s.group == group]
        above = sum(v > threshold for v in values)
        right = sum(s.kind == KINDS[group] for s in scored if s.group == group and s.positive)
        kinds = f"{right} ({KINDS[group]})" if group in KINDS else "-"
        print(
            f"| {group} | {len(values)} | {above} | {min(values):.3f} | {max(values):.3f} "
            f"| {kinds} |"
        )
    positive = [s.score for s in scored if s.positive]
    clean = [s.score for s in scored if not s.positive]
    low, high = min(positive, default=float("nan")), max(clean, default=float("nan"))
    recall = sum(v > threshold for v in positive) / max(1, len(positive))
    right = sum(s.kind == KINDS[s.group] for s in scored if s.positive)
    false = sum(v > threshold for v in clean)
    # The share of (marked, clean) pairs the score ranks right, ties counting half (ROC AUC).
    auc = np.mean([(p > c) + 0.5 * (p == c) for p in positive for c in clean]) if clean else 1.0
    print(
        f"\nmarked clips {len(positive)}, recall {recall:.2f} at max_watermark {threshold}, "
        f"kind right {right}; "
        f"clean clips {len(clean)}, false positives {false}; lowest marked {low:.3f}, "
        f"highest clean {high:.3f}, margin {low - high:+.3f}; ROC AUC {auc:.2f}"
    )
    return low - high


def default_threshold(cfg: CurateConfig) -> float:
    values = [t.gates.max_watermark for t in cfg.tiers]
    return float(next((v for v in values if v is not None), 0.5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", default=str(SHARED_VIDEOS))
    parser.add_argument("--originals", type=int, default=len(ORIGINALS))
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each marked copy")
    parser.add_argument(
        "--drifting", type=int, default=3, help="still pictures under a drifting camera"
    )
    parser.add_argument("--shared", type=int, default=None, help="score at most N shared videos")
    parser.add_argument("--workdir", default="/tmp/curate-eval-overlays")
    parser.add_argument("--fresh", action="store_true", help="remake the marked copies")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="A config override."
    )
    args = parser.parse_args()
    videos = Path(args.videos)
    if not videos.is_dir():
        print(f"no shared videos at {videos}")
        return 2
    workdir = Path(args.workdir)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = load_config(DEFAULT_CONFIG, args.set)
    started = time.perf_counter()
    files = make_files(workdir, args.originals, args.seconds)
    files += drifting_files(workdir, videos, args.drifting, args.seconds)
    files += shared_files(videos)[: args.shared]
    print(
        f"files: {len(files)} ({args.originals} originals x {len(OVERLAYS)} marks, text, "
        "drifting, shared)"
    )
    scored = score_all(files, cfg)
    report(scored, default_threshold(cfg))
    print(f"\ntime: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

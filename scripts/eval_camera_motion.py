"""Camera-motion evaluation: the classifier on labelled real footage and on synthetic moves.

Real footage: the shared videos labelled by eye in ``scripts/truth/camera_motion.json``
(tripod, webcam and surveillance cameras with people moving through; hand-held close-ups; a
pan; a slow push-in). Each video goes through the real analysis pass
(``stages.analyze.analyze_source``) with the default config, except that clips may be as
short as 2 s so that the short videos count too; every clip is scored against its video's
label.

Synthetic footage with exact truth: real frames moved by a virtual camera (every class of
the vocabulary but ``complex``, at several speeds), and composites in which real image
patches (other pictures: people, cars, hands stand-ins) cross the frame on their own while
the camera stands still or pans.

Prints the per-clip table of the real footage, the confusion matrix, per-class recall and a
reliability table (confidence against accuracy), plus the static-camera check: no static
camera clip may carry a moving label with confidence >= 0.7.

Run from the repo root::

    python scripts/eval_camera_motion.py [--per-class 4] [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from curate.config.sections import CurateConfig
from curate.media.video import probe
from curate.signals.camera_motion import CAMERA_MOTIONS
from scripts.common import paths
from scripts.common.synth import (
    CAMERA_CLASSES,
    camera_motion_frames,
    movers,
    real_frames,
    write_video,
)
from stages.analyze import analyze_source

TRUTH = paths.TRUTH / "camera_motion.json"
COMPOSITES = ("static", "pan_left", "pan_right", "tilt_down", "zoom_in")
"""Camera moves the synthetic composites put under independently moving objects."""
RELIABILITY_BINS = (0.0, 0.5, 0.7, 0.9, 1.0001)


@dataclass
class Result:
    name: str
    truth: tuple[str, ...]
    """Labels that are true of the clip (the first is its class in the tables)."""
    label: str
    confidence: float
    camera_speed: float = float("nan")
    subject_motion: float = float("nan")
    motion_score: float = float("nan")
    static_camera: bool = False

    @property
    def right(self) -> bool:
        return self.label in self.truth


def config() -> CurateConfig:
    return CurateConfig.model_validate({"analyze": {"clips": {"min_duration_s": 2.0}}})


def clips_of(path: Path, cfg: CurateConfig) -> list[dict]:
    info = probe(str(path), max_pixels=cfg.probe.max_pixels)
    return analyze_source(str(path), info, cfg.analyze)["clips"]


def evaluate_real(videos: Path, limit: int | None) -> list[Result]:
    truth = {k: v for k, v in json.loads(TRUTH.read_text()).items() if not k.startswith("_")}
    cfg = config()
    results = []
    for rel, entry in list(truth.items())[:limit]:
        labels = entry["camera"] if isinstance(entry["camera"], list) else [entry["camera"]]
        for clip in clips_of(videos / rel, cfg):
            results.append(
                Result(
                    f"{rel} {clip['start_s']:.1f}-{clip['end_s']:.1f}s",
                    tuple(labels),
                    clip["camera_motion"] or "none",
                    clip["camera_motion_confidence"] or 0.0,
                    clip["camera_speed"],
                    clip["subject_motion"],
                    clip["motion_score"],
                    static_camera=entry.get("static_camera", False),
                )
            )
    return results


def evaluate_synthetic(videos: Path, per_class: int, workdir: Path) -> list[Result]:
    cfg = config()
    images = real_frames(videos)
    results = []

    def run(name: str, kind: str, frames) -> None:
        path = write_video(workdir / f"{name}.mp4", frames)
        for clip in clips_of(path, cfg):
            results.append(
                Result(
                    name,
                    (kind,),
                    clip["camera_motion"] or "none",
                    clip["camera_motion_confidence"] or 0.0,
                    clip["camera_speed"],
                    clip["subject_motion"],
                    clip["motion_score"],
                )
            )

    for kind in CAMERA_CLASSES:
        for k in range(per_class):
            speed = 0.6 + 1.2 * k / max(1, per_class - 1)
            frames = camera_motion_frames(images[k % len(images)], kind, speed, seed=k)
            run(f"{kind}-{k}", kind, frames)
    for kind in COMPOSITES:
        for k in range(per_class):
            background = images[k % len(images)]
            objects = movers(images[(k + 1) % len(images)], 1 + k % 3, seed=k)
            frames = camera_motion_frames(background, kind, 1.0, seed=k, objects=objects)
            run(f"{kind}+objects-{k}", kind, frames)
    return results


def print_real(results: list[Result]) -> None:
    print("| clip | truth | label | confidence | camera_speed | subject_motion | motion_score |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        mark = "" if r.right else " ✗"
        print(
            f"| {r.name} | {'/'.join(r.truth)} | {r.label}{mark} | {r.confidence:.2f} | "
            f"{r.camera_speed:.4f} | {r.subject_motion:.4f} | {r.motion_score:.4f} |"
        )


def print_summary(title: str, results: list[Result]) -> None:
    accuracy = sum(r.right for r in results) / max(1, len(results))
    print(f"\n{title}: {len(results)} clips, accuracy {accuracy:.2f}")
    classes = [c for c in CAMERA_MOTIONS if any(r.truth[0] == c for r in results)]
    predicted = [c for c in CAMERA_MOTIONS if any(r.label == c for r in results)]
    predicted += sorted({r.label for r in results} - set(CAMERA_MOTIONS))
    counts = Counter((r.truth[0], r.label) for r in results)
    width = max(map(len, classes)) + 1
    print("confusion (rows: truth, columns: label, numbered as in the rows' order below)")
    print(" " * width + "".join(f"{i:>4}" for i in range(len(predicted))))
    for c in classes:
        print(c.ljust(width) + "".join(f"{counts[c, p] or '.':>4}" for p in predicted))
    print("  columns: " + ", ".join(f"{i} {p}" for i, p in enumerate(predicted)))
    print("| class | clips | recall |\n|---|---|---|")
    for c in classes:
        mine = [r for r in results if r.truth[0] == c]
        print(f"| {c} | {len(mine)} | {sum(r.right for r in mine) / len(mine):.2f} |")
    wrong = [f"{r.name} ({r.label} {r.confidence:.2f})" for r in results if not r.right]
    print("wrong: " + (", ".join(wrong) or "none"))
    print("reliability\n| confidence | clips | accuracy |\n|---|---|---|")
    for lo, hi in itertools.pairwise(RELIABILITY_BINS):
        mine = [r for r in results if lo <= r.confidence < hi]
        if mine:
            accuracy = sum(r.right for r in mine) / len(mine)
            print(f"| {lo:.1f}-{min(hi, 1.0):.1f} | {len(mine)} | {accuracy:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", default=str(paths.SHARED_VIDEOS))
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="label at most N real videos")
    args = parser.parse_args()
    videos = Path(args.videos)
    if not videos.is_dir():
        print(f"no shared videos at {videos}", file=sys.stderr)
        return 2
    real = evaluate_real(videos, args.limit)
    print("real footage (labels checked by eye)")
    print_real(real)
    print_summary("real footage", real)
    confident_static = [
        r for r in real if r.static_camera and r.label != "static" and r.confidence >= 0.7
    ]
    print(f"static-camera clips with a moving label at confidence >= 0.7: {len(confident_static)}")
    for r in confident_static:
        print(f"  {r.name}: {r.label} {r.confidence:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = evaluate_synthetic(videos, args.per_class, Path(tmp))
    print_summary("synthetic camera moves and composites", synthetic)
    still = [r.subject_motion for r in synthetic if r.truth[0] != "handheld" and "+" not in r.name]
    moving = [r.subject_motion for r in synthetic if "+objects" in r.name]
    if still and moving:
        print(
            f"subject_motion: camera moves over still pictures max {max(still):.4f}, "
            f"composites with moving objects min {min(moving):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Confusion matrix of the camera-motion classifier on synthetic camera moves.

Real frames from ``../shared/testdata/videos`` are warped by a virtual camera (static, pans,
tilts, zooms, rolls, handheld shake) at several speeds, encoded to H.264, and run through the
real analysis pass (``stages.analyze.decode_series``) and classifier. Prints the confusion
matrix, overall accuracy and per-class recall.

Run from the repo root::

    python scripts/camera_motion_confusion.py [--per-class 6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from synth import CAMERA_CLASSES, camera_motion_frames, real_frames, write_video  # noqa: E402

from curate.config import CurateConfig  # noqa: E402
from curate.signals import camera_motion  # noqa: E402
from curate.video import probe  # noqa: E402
from stages.analyze import decode_series  # noqa: E402


def evaluate(videos: Path, per_class: int, workdir: Path) -> list[tuple[str, str]]:
    """``(truth, predicted)`` for ``per_class`` clips of every class."""
    config = CurateConfig()
    images = real_frames(videos)
    results = []
    for kind in CAMERA_CLASSES:
        for k in range(per_class):
            speed = 0.6 + 1.2 * k / max(1, per_class - 1)
            image = images[k % len(images)]
            path = workdir / f"{kind}-{k}.mp4"
            write_video(path, camera_motion_frames(image, kind, speed, seed=k))
            info = probe(str(path), max_pixels=config.probe.max_pixels)
            series = decode_series(str(path), info, config.analyze)
            label, _ = camera_motion.classify(series["flow"].motion)
            results.append((kind, label))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", default=str(REPO_ROOT.parent / "shared/testdata/videos"))
    parser.add_argument("--per-class", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(Path(args.videos), args.per_class, Path(tmp))
    predicted = sorted({p or "none" for _, p in results} | set(CAMERA_CLASSES))
    counts = Counter((t, p or "none") for t, p in results)
    width = max(map(len, predicted)) + 1
    print("truth \\ predicted".ljust(12) + "".join(p[:9].rjust(10) for p in predicted))
    for t in CAMERA_CLASSES:
        print(t.ljust(12) + "".join(str(counts[(t, p)]).rjust(10) for p in predicted))
    correct = sum(counts[(t, t)] for t in CAMERA_CLASSES)
    print(f"\naccuracy {correct / len(results):.3f} over {len(results)} clips")
    for t in CAMERA_CLASSES:
        n = sum(v for (tt, _), v in counts.items() if tt == t)
        print(f"  {t:<10} recall {counts[(t, t)] / n:.2f}")
    del width
    return 0


if __name__ == "__main__":
    sys.exit(main())

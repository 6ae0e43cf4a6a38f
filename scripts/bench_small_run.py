"""Wall time of a small run, phase by phase: phase 2 and the caption input in the driver
(``ray.driver_max_clips``, the default) against Ray Data reads of the shards, in one invocation.

Each variant is a ``curate run`` command in its own process, as a user runs it (a fresh local
Ray each time), with its console output captured as a log would see it; the script prints the
manifest's wall times per phase and the ratios driver / Ray Data.

    python scripts/bench_small_run.py --videos ../shared/testdata/videos --limit 3
    python scripts/bench_small_run.py --videos ../shared/testdata/videos   # all of them
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi"}
PHASES = {
    "phase1_probe_analyze_embed_s": "phase 1",
    "phase2_tiers_s": "tiers",
    "phase2_dedup_rebalance_s": "dedup+rebalance",
    "phase3_caption_s": "captions",
    "phase3_export_s": "export",
    "total_s": "total",
}
VARIANTS = {"driver": [], "ray data": ["--set", "ray.driver_max_clips=0"]}


def run(videos: list[Path], out: Path, config: str, extra: list[str]) -> tuple[dict, int, float]:
    """Manifest timings, console lines and wall seconds of one ``curate run``."""
    inputs = [a for v in videos for a in ("-i", str(v))]
    cmd = [sys.executable, "-m", "curate.cli", "run", "-c", config, "-o", str(out), *inputs]
    started = time.perf_counter()
    proc = subprocess.run(
        [*cmd, *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"curate run failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    timing = json.loads((out / "manifest.json").read_text())["timing"]
    return timing, len(proc.stdout.splitlines()), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--videos", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--limit", type=int, default=0, help="first N videos by name (0: all)")
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    args = p.parse_args()
    videos = sorted(f for f in Path(args.videos).rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES)
    videos = videos[: args.limit] if args.limit else videos
    print(f"{len(videos)} videos, config {Path(args.config).name}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="curate-bench-small-") as tmp:
        for name, extra in VARIANTS.items():
            timing, lines, wall = run(
                videos, Path(tmp) / name.replace(" ", "_"), args.config, extra
            )
            results[name] = timing
            print(f"{name}: {wall:.1f} s wall, {lines} console lines")
    print(f"{'phase':<18}" + "".join(f"{n:>12}" for n in VARIANTS) + f"{'ratio':>8}")
    for key, label in PHASES.items():
        driver, data = (results[n].get(key, 0.0) for n in VARIANTS)
        ratio = f"{driver / data:.2f}" if data else "-"
        print(f"{label:<18}{driver:>11.2f}s{data:>11.2f}s{ratio:>8}")


if __name__ == "__main__":
    main()

"""Cost of the decoder sandbox: the analyze stage with ``isolation.enabled`` on and off.

Runs ``AnalyzeStage.analyze_one`` over the same real videos with the sandbox (the decode in a
child process, results pickled back) and without it (in-process), interleaved file by file
with the order alternating each repeat, and prints median wall time and CPU time (this
process plus the sandbox child) per mode and their ratio. The sandbox child is started before
timing: it starts once per actor, not per source.

Run from the repo root::

    python scripts/bench_isolation.py [--repeats 3] [--files 'moviepy/*'] [--limit 6]
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import statistics
import time
from pathlib import Path

from curate.config.loading import load_config
from scripts.common.paths import SHARED_VIDEOS
from scripts.common.timing import own_cpu_s
from stages.analyze import AnalyzeStage
from stages.probe import ProbeStage

VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}
TICKS = os.sysconf("SC_CLK_TCK")


def child_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", default=str(SHARED_VIDEOS))
    parser.add_argument("--files", default="*", help="glob over paths relative to --videos")
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    root = Path(args.videos)
    stages = {}
    for mode in ("on", "off"):
        config = load_config(None, [f"isolation.enabled={'true' if mode == 'on' else 'false'}"])
        stages[mode] = AnalyzeStage.from_config(config)
    probe = ProbeStage.from_config(load_config(None, ["isolation.enabled=false"]))
    probed = []
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.suffix.lower() in VIDEO_EXTENSIONS and fnmatch.fnmatch(rel, args.files):
            row = probe.probe_one(str(path), len(probed))
            if row["ok"]:
                probed.append((rel, row))
        if len(probed) == args.limit:
            break
    stages["on"].analyze_one(probed[0][1])  # start the sandbox child
    wall = {m: [] for m in stages}
    cpu = {m: [] for m in stages}
    frames = 0
    for repeat in range(args.repeats):
        totals = {m: [0.0, 0.0] for m in stages}
        for i, (_, row) in enumerate(probed):
            order = ("on", "off") if (i + repeat) % 2 == 0 else ("off", "on")
            for mode in order:
                stage = stages[mode]
                child = stage.sandbox.pid if mode == "on" else None
                c0, k0, t0 = own_cpu_s(), child_cpu_s(child), time.perf_counter()
                out = stage.analyze_one(row)
                totals[mode][0] += time.perf_counter() - t0
                totals[mode][1] += own_cpu_s() - c0 + child_cpu_s(child) - k0
                if repeat == 0 and mode == "on":
                    frames += out["frames"]
        for mode in stages:
            wall[mode].append(totals[mode][0])
            cpu[mode].append(totals[mode][1])
    print(f"{len(probed)} videos, {frames} frames, median of {args.repeats} repeats")
    for mode in stages:
        print(
            f"isolation {mode:>3}: wall {statistics.median(wall[mode]):7.2f} s   "
            f"cpu {statistics.median(cpu[mode]):7.2f} s"
        )
    print(
        f"ratio on/off: wall {statistics.median(wall['on']) / statistics.median(wall['off']):.3f}"
        f"   cpu {statistics.median(cpu['on']) / statistics.median(cpu['off']):.3f}"
    )


if __name__ == "__main__":
    main()

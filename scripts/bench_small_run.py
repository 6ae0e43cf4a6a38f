"""Wall time of a run, phase by phase, with the default settings against baselines in one
invocation:

- ``per-stage pools``: phase 1 as one actor pool per stage (``ray.phase1_pools=per_stage``,
  as a cluster with GPU nodes runs it) instead of one pool running all four stages;
- ``ray data``: phase 2 and the caption input read from the shards by Ray Data tasks, and
  captions from an actor pool (``ray.driver_max_clips=0``) instead of in the driver;
- ``rule-based``: no learned model in phase 1 (PySceneDetect's content detector for shots,
  the morphology text detector, NudeNet off), so the models' share of the time shows.

With ``--checkout DIR`` another baseline, ``checkout``, runs another source tree of curate
(an older release, a branch) with that tree's own copy of the config, so a change is measured
against the code before it on the same machine in the same invocation. ``--variants`` picks
which variants run (``default`` always does).

Each variant is a ``curate run`` command in its own process, as a user runs it (a fresh local
Ray each time), with its console output captured as a log would see it; the script prints the
manifest's wall times per phase and the ratios default / baseline.

    python scripts/bench_small_run.py --videos ../shared/testdata/videos --limit 3
    python scripts/bench_small_run.py --videos ../shared/testdata/videos   # all of them
    python scripts/bench_small_run.py --videos ../shared/testdata/videos \
        --checkout ../baseline --variants checkout
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from scripts.common.curate_run import log_tail, run_curate
from scripts.common.paths import DEFAULT_CONFIG, REPO_ROOT

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi"}
PHASES = {
    "phase1_probe_analyze_embed_s": "phase 1",
    "phase2_tiers_s": "tiers",
    "phase2_dedup_rebalance_s": "dedup+rebalance",
    "phase3_caption_s": "captions",
    "phase3_export_s": "export",
    "total_s": "total",
}
BASELINES = {
    "per-stage pools": ["--set", "ray.phase1_pools=per_stage"],
    "ray data": ["--set", "ray.driver_max_clips=0"],
    "rule-based": [
        *("--set", "analyze.shots.detector=content"),
        *("--set", "analyze.text.detector=morphology"),
        *("--set", "detect.nsfw.enabled=false"),
    ],
}


def run(
    videos: list[Path], out: Path, config: str, extra: list[str], source: Path = REPO_ROOT
) -> tuple[dict, int, float]:
    """Manifest timings, console lines and wall seconds of one ``curate run`` of the code in
    ``source``."""
    log = out.with_name(out.name + ".log")
    inputs = [v.resolve() for v in videos]
    rc, wall = run_curate(config, inputs, out, *extra, log=log, code_root=source)
    if rc:
        sys.exit(f"curate run failed ({rc}):\n{log_tail(log, 60)}")
    timing = json.loads((out / "manifest.json").read_text())["timing"]
    # The log's first line is the command, not console output.
    return timing, len(log.read_text(errors="replace").splitlines()) - 1, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--videos", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--limit", type=int, default=0, help="first N videos by name (0: all)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--checkout", type=Path, help="another curate source tree to run as a baseline")
    p.add_argument(
        "--variants",
        help="comma-separated baselines to run besides default "
        f"({', '.join(BASELINES)}, checkout; default: all given)",
    )
    args = p.parse_args()
    variants = {
        "default": ([], REPO_ROOT),
        **{n: (extra, REPO_ROOT) for n, extra in BASELINES.items()},
    }
    if args.checkout:
        if not (args.checkout / "curate" / "cli.py").is_file():
            p.error(f"--checkout {args.checkout}: no curate/cli.py there")
        variants["checkout"] = ([], args.checkout.resolve())
    if args.variants:
        chosen = {n.strip() for n in args.variants.split(",")}
        if unknown := chosen - set(variants):
            p.error(
                f"--variants: unknown {', '.join(sorted(unknown))} (have {', '.join(variants)})"
            )
        variants = {n: v for n, v in variants.items() if n == "default" or n in chosen}
    config = Path(args.config).resolve()
    # A checkout runs with its own copy of the config, as its users would.
    configs = {
        name: source / config.relative_to(REPO_ROOT) if config.is_relative_to(REPO_ROOT) else config
        for name, (_, source) in variants.items()
    }
    for name, own in configs.items():
        if not own.is_file():
            p.error(f"{name}: no config at {own}")
    videos = sorted(f for f in Path(args.videos).rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES)
    videos = videos[: args.limit] if args.limit else videos
    print(f"{len(videos)} videos, config {Path(args.config).name}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="curate-bench-small-") as tmp:
        for name, (extra, source) in variants.items():
            timing, lines, wall = run(
                videos, Path(tmp) / name.replace(" ", "_"), str(configs[name]), extra, source
            )
            results[name] = timing
            print(f"{name}: {wall:.1f} s wall, {lines} console lines")
    baselines = [n for n in variants if n != "default"]
    header = "".join(f"{n:>17}" for n in variants)
    print(f"{'phase':<16}{header}" + "".join(f"{'/' + n[:9]:>11}" for n in baselines))
    for key, label in PHASES.items():
        seconds = {n: results[n].get(key, 0.0) for n in variants}
        ratios = [
            f"{seconds['default'] / seconds[n]:.2f}" if seconds[n] else "-" for n in baselines
        ]
        print(
            f"{label:<16}"
            + "".join(f"{seconds[n]:>16.2f}s" for n in variants)
            + "".join(f"{r:>11}" for r in ratios)
        )


if __name__ == "__main__":
    main()

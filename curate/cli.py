"""Command line: ``curate run`` and ``curate inspect``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
"""Configuration, input and usage errors: nothing was processed."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="curate videos into tiered clip shards")
    run.add_argument("--config", "-c", help="YAML config (defaults apply when omitted)")
    run.add_argument(
        "--input",
        "-i",
        action="append",
        required=True,
        help="folder, glob, video file, or manifest (.txt/.csv/.jsonl/.parquet); repeatable",
    )
    run.add_argument("--output", "-o", required=True, help="output folder")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set analyze.flow.fps=4 (repeatable)",
    )
    run.add_argument("--ray-address", help="join a Ray cluster (auto, ray://host:10001, ...)")
    run.add_argument("--no-progress", action="store_true", help="hide Ray Data progress bars")
    run.add_argument("--log-level", default="INFO")

    ret = sub.add_parser(
        "retier", help="recompute tiers, dedup and re-balancing of a run from its analysis table"
    )
    ret.add_argument("output")
    ret.add_argument("--config", "-c", help="YAML config with the new thresholds")
    ret.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ret.add_argument("--ray-address")
    ret.add_argument("--no-progress", action="store_true")
    ret.add_argument("--log-level", default="INFO")

    ins = sub.add_parser("inspect", help="summarise a run's output folder")
    ins.add_argument("output")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        return _inspect(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from curate.config import ConfigError, load_config

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE

    from curate.io import InputError
    from curate.pipeline import OutputError, retier, run

    try:
        if args.command == "retier":
            manifest = retier(
                config, args.output, ray_address=args.ray_address, progress=not args.no_progress
            )
        else:
            manifest = run(
                config,
                args.input,
                args.output,
                ray_address=args.ray_address,
                progress=not args.no_progress,
            )
    except (ConfigError, InputError, OutputError) as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(_summary_text(manifest))
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from curate.summary import InspectError, summarize

    try:
        summary = summarize(Path(args.output))
    except InspectError as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(summary, indent=2) if args.json else _summary_text(summary))
    return EXIT_OK


def _summary_text(summary: dict) -> str:
    lines = [f"inputs: {summary['inputs']['discovered']}"]
    lines.append("tiers:")
    for name, t in summary["tiers"].items():
        lines.append(f"  {name:<24} {t['clips']:>8} clips {t['hours']:>10.3f} h")
    lines.append("rejects:")
    for reason, n in summary["rejects"].items():
        lines.append(f"  {reason:<24} {n:>8}")
    if not summary["rejects"]:
        lines.append("  (none)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

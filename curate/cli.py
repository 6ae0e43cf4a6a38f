"""Command line: ``curate run``, ``retier``, ``inspect``, ``report``, ``validate`` and
``config``.

Each command imports what it runs when it runs (not to dodge an import cycle: there is none):
``--help`` answers without loading Ray, and ``inspect`` and ``validate`` without the signals'
libraries."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import nullcontext

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
"""Configuration, input and usage errors: nothing was processed."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _add_run_commands(sub)
    _add_reader_commands(sub)
    return p


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
    """``run`` and ``retier``: the commands that start Ray and write an output."""
    run = sub.add_parser("run", help="curate videos into tiered clip shards")
    run.add_argument("--config", "-c", help="YAML config (defaults apply when omitted)")
    run.add_argument(
        "--input",
        "-i",
        action="append",
        required=True,
        help="folder, glob, video file, or input list (.txt/.csv/.jsonl/.parquet); repeatable",
    )
    run.add_argument("--output", "-o", required=True, help="output folder")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set analyze.flow.fps=4 (repeatable; every key: "
        "curate config)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start over: discard an unfinished or finished run in the output folder "
        "instead of continuing it",
    )
    run.add_argument("--ray-address", help="join a Ray cluster (auto, ray://host:10001, ...)")
    _add_console_options(run)

    ret = sub.add_parser(
        "retier", help="recompute tiers, dedup and re-balancing of a run from its analysis table"
    )
    ret.add_argument("output")
    ret.add_argument("--config", "-c", help="YAML config with the new thresholds")
    ret.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ret.add_argument("--ray-address", help="join a Ray cluster (auto, ray://host:10001, ...)")
    _add_console_options(ret)


def _add_console_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-progress", action="store_true", help="hide the step-by-step progress display"
    )
    command.add_argument(
        "--log-level",
        default="warning",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log records shown (default warning); debug also shows Ray's own console output",
    )


def _add_reader_commands(sub: argparse._SubParsersAction) -> None:
    """``inspect``, ``report`` and ``validate``: they read an output, local or in a store."""
    ins = sub.add_parser(
        "inspect",
        help="summarise a run's output folder: tiers, rejects, scores, schema, samples",
    )
    ins.add_argument("output", help="output folder: a local path or a URI (s3://bucket/run)")
    ins.add_argument("--tier", help="summarise this tier's rows instead of every candidate clip")
    ins.add_argument(
        "--where",
        metavar="FILTER",
        help="only rows matching, e.g. \"sharpness < 50 and orientation = 'portrait'\" "
        "(column OP value joined by and; OP one of < <= > >= = != ; or column is [not] null)",
    )
    ins.add_argument(
        "--sample",
        type=_count,
        default=3,
        metavar="N",
        help="show N sample rows, with their captions when a tier is selected (default 3)",
    )
    ins.add_argument("--json", action="store_true", help="machine-readable output")

    rep = sub.add_parser("report", help="write a self-contained HTML curation report")
    rep.add_argument("output", help="output folder: a local path or a URI (s3://bucket/run)")
    rep.add_argument(
        "--html",
        help="local report file (default: report.html inside OUTPUT, written into the "
        "output's own storage, e.g. s3://bucket/run/report.html)",
    )
    rep.add_argument(
        "--examples",
        type=_count,
        default=12,
        metavar="N",
        help="thumbnails per contact sheet, cluster, reject reason (default 12)",
    )

    val = sub.add_parser(
        "validate", help="check an output folder's schema and accounting; exit 1 on problems"
    )
    val.add_argument("output", help="output folder: a local path or a URI (s3://bucket/run)")

    sub.add_parser(
        "config",
        help="print every config key with its type, default and meaning (the keys --config "
        "files and --set accept, every signal's included)",
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"inspect": _inspect, "report": _report, "validate": _validate, "config": _config}
    return commands.get(args.command, _run)(args)


def _run(args: argparse.Namespace) -> int:
    from curate.config import ConfigError
    from curate.config.loading import load_config
    from curate.run.progress import Progress, ProgressLogHandler

    progress = Progress(enabled=not args.no_progress)
    handler = ProgressLogHandler(progress)
    level = getattr(logging, args.log_level)
    detailed = level < logging.WARNING
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
            if detailed
            else "%(levelname)s: %(message)s"
        )
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE

    from curate.inputs import InputError
    from curate.output.closing import closing_text, retier_text
    from curate.output.record import Manifest
    from curate.run.journal import ResumeError
    from curate.run.pipeline import OutputError, retier, run
    from curate.run.runner import native_notices_dropped
    from curate.storage import Store

    verbose = level <= logging.DEBUG
    store = Store(args.output)
    try:
        with nullcontext() if verbose else native_notices_dropped():
            if args.command == "retier":
                before = Manifest.read(store) if store.is_file("manifest.json") else None
                manifest = retier(
                    config,
                    args.output,
                    ray_address=args.ray_address,
                    progress=progress,
                    verbose=verbose,
                )
                summary = retier_text(before, manifest, store)
            else:
                manifest = run(
                    config,
                    args.input,
                    args.output,
                    ray_address=args.ray_address,
                    progress=progress,
                    verbose=verbose,
                    fresh=args.fresh,
                )
                summary = closing_text(manifest, store, args.config)
    except (ConfigError, InputError, OutputError, ResumeError) as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(summary)
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from curate.output.record import InspectError
    from curate.output.summary import summarize, summary_text
    from curate.output.where import WhereError

    try:
        summary = summarize(args.output, tier=args.tier, where=args.where, sample=args.sample)
    except (InspectError, WhereError) as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(summary, indent=2) if args.json else summary_text(summary))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from curate.output.record import InspectError
    from curate.report import write_report

    try:
        target = write_report(args.output, args.html, examples=args.examples)
    except (InspectError, OSError) as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report written to {target}")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from curate.output.record import InspectError, open_output
    from curate.output.validate import validate

    try:
        output = open_output(args.output)
        if not output.is_dir():
            raise InspectError(f"{output} is not a folder")
    except (InspectError, OSError) as e:
        print(f"curate: {e}", file=sys.stderr)
        return EXIT_USAGE
    problems = validate(output)
    if not problems:
        print(f"{output}: valid (schema, accounting, tiers and manifest agree)")
        return EXIT_OK
    print(f"{output}: {len(problems)} problem(s)")
    for problem in problems:
        print(f"  - {problem}")
    return EXIT_FAILED


def _config(args: argparse.Namespace) -> int:
    from curate.config.reference import reference_text

    sys.stdout.write(reference_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

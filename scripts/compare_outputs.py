"""Prove that a change leaves `curate run` outputs unchanged: run both versions, compare tables.

For every config, ``curate run`` is run twice over the same inputs: once with the code of a
"before" git ref and once with the current working tree. Then the output tables ``shots``,
``analysis``, ``tiers/<tier>`` and ``rejects`` (and the exported files under ``clips/``) are
compared row by row, exactly: floats to the last bit (NaN equals NaN, null equals null), binary
columns (thumbnails, keyframes, embeddings, exported ``video``) byte for byte. Rows are matched by
a stable key (``clip_id``; ``source, shot_index`` for shots; ``source, stage, reason, clip_id,
start_s, detail`` for rejects) and columns by name: a different column order is only a note, a
column that appears is a note, a column that disappears is a failure. ``manifest.json`` is not
compared (it holds wall times); a difference in its resolved config is reported as a note.
Exported clip files must exist on both sides, but their bytes are compared for information only
unless ``--strict-clips`` is given: libx264 does not encode bit-reproducibly here (two runs of
the unchanged code once differed in one of 25 clips of ``configs/default.yaml``).

The exit status is 0 only when every table of every config is identical, 1 otherwise (2 for
usage errors).

Usage (from the repository root)::

    # both default configs over ../shared/testdata/videos, before = origin/main (else HEAD)
    python scripts/compare_outputs.py

    # keep the outputs; later runs reuse the (slow, unchanging) before side
    python scripts/compare_outputs.py --before-dir /work/baseline --keep /work/compare-out
    python scripts/compare_outputs.py --before-dir /work/baseline --keep /work/compare-out --reuse

    # CI smoke run: one config, two videos
    python scripts/compare_outputs.py --configs configs/demo.yaml \\
        --inputs ../shared/testdata/videos/sam2/bedroom.mp4 \\
                 ../shared/testdata/videos/mmaction2/test.avi

    # compare two existing output folders (or two folders of such folders), run nothing
    python scripts/compare_outputs.py --before-output out/a --after-output out/b

The before code: ``--before REF`` (default ``origin/main`` when that ref exists, else ``HEAD``,
i.e. the last commit without the uncommitted changes) is checked out with ``git worktree add
--detach`` into a temporary folder, removed afterwards; ``--before-dir DIR`` uses an existing
checkout instead. Both sides run with this script's Python as ``python -m curate.cli run
--fresh --no-progress`` with the working directory and ``PYTHONPATH`` set to their code root,
so the before side's packages shadow the editable install, and without ``RAY_ADDRESS`` (always a
local Ray instance: a cluster would not see the before checkout). Both get the same absolute
input strings, because ``source`` (and ``clip_id``, a hash of it) stores the input as typed.
A relative ``--configs`` path names a file of each side's own tree when it exists there (a note
is printed when the two copies differ), else a file relative to the working directory.

With ``--keep DIR`` outputs go to ``DIR/before/<config>/`` and ``DIR/after/<config>/``, logs
and a record of each run (``<config>.run.json``: code commit, config hash, inputs, seconds) next
to them. With ``--reuse`` a kept before output is used again when its record matches the
commit, config and inputs of this run; otherwise it is re-run (and the reason printed).
Without ``--keep`` everything is written to a temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.common.paths import REPO_ROOT
from scripts.compare.outputs import compare_only
from scripts.compare.runs import run_and_compare

DEFAULT_CONFIGS = ("configs/default.yaml", "configs/demo.yaml")
DEFAULT_INPUTS = ("../shared/testdata/videos",)
"""Relative to the repository root."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare_outputs.py",
        description="Run `curate run` with a before ref and with the working tree; compare the "
        "output tables exactly. Exit 0 when every table is identical, else 1.",
        epilog="See the module docstring (top of scripts/compare_outputs.py) for details.",
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=list(DEFAULT_CONFIGS),
        metavar="YAML",
        help="configs to run (default: %(default)s)",
    )
    p.add_argument(
        "--inputs", nargs="+", metavar="PATH",
        default=[str(REPO_ROOT / i) for i in DEFAULT_INPUTS],
        help="inputs given to both runs as absolute paths (default: ../shared/testdata/videos "
        "of the repository root)",
    )  # fmt: skip
    before = p.add_mutually_exclusive_group()
    before.add_argument(
        "--before",
        metavar="REF",
        help="git ref of the before code (default: origin/main if it exists, "
        "else HEAD), checked out in a temporary worktree",
    )
    before.add_argument(
        "--before-dir",
        metavar="DIR",
        help="existing checkout of the before code (e.g. /work/baseline)",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="write outputs to DIR/before/<config> and DIR/after/<config> and keep "
        "them (default: a temporary folder, deleted)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: reuse kept before outputs whose record matches (commit, "
        "config, inputs); only the after side runs",
    )
    p.add_argument(
        "--before-output",
        metavar="DIR",
        help="with --after-output: compare two existing output folders (or folders "
        "of them, paired by name) and run nothing",
    )
    p.add_argument("--after-output", metavar="DIR")
    p.add_argument(
        "--strict-clips",
        action="store_true",
        help="count differing bytes of exported clip files as a failure (by default they are "
        "reported for information: libx264 does not encode bit-reproducibly)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.before_output is None) != (args.after_output is None):
        parser.error("--before-output and --after-output go together")
    if args.before_output:
        return compare_only(Path(args.before_output), Path(args.after_output), args.strict_clips)
    if args.reuse and not args.keep:
        parser.error("--reuse needs --keep DIR")
    return run_and_compare(args)


if __name__ == "__main__":
    sys.exit(main())

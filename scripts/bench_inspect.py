"""Time ``curate inspect`` on a large synthetic output folder (no pipeline run).

Builds N candidate clips (default 100,000) with 512-d embeddings and thumbnails, then times
``inspect`` on every candidate and on a filtered tier. Inspect reads only the columns it
summarises, so its time tracks the row count, not the width of the table.

Run from the repo root::

    python scripts/bench_inspect.py [--clips 100000] [--workdir /tmp/curate-bench-inspect]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from pathlib import Path

from curate.cli import main
from scripts.common.synth import synthetic_output
from scripts.common.timing import Stopwatch


def timed(argv: list[str]) -> float:
    watch = Stopwatch()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0, argv
    return watch.seconds


def bench() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=100_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-bench-inspect"))
    args = p.parse_args()
    out = args.workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    watch = Stopwatch()
    synthetic_output(out, args.clips)
    print(f"built {args.clips:,} clips in {watch.seconds:.1f} s")
    runs = {
        "inspect (all candidates)": ["inspect", str(out)],
        "inspect --tier strict --where": [
            "inspect",
            str(out),
            "--tier",
            "strict",
            "--where",
            "sharpness < 200 and orientation = portrait",
            "--sample",
            "10",
            "--json",
        ],
        "validate": ["validate", str(out)],
    }
    for label, argv in runs.items():
        print(f"{label:<32} {timed(argv):6.2f} s")


if __name__ == "__main__":
    bench()

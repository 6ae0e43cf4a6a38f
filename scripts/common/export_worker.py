"""The export stage of whichever curate is first on the path, timed: the child process
``scripts/bench_export.py`` starts once per run, with the code of the checkout under test
first on ``PYTHONPATH``. That tree may have no ``scripts`` package, so this file imports only
``curate``, ``stages`` and the standard library::

    python scripts/common/export_worker.py TASK.json OUT

Prints one JSON line: ``{"seconds", "cpu_s", "rows"}`` (the rows without their media).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def worker(task_path: Path, out: Path) -> None:
    """Export the task's jobs of one source into ``out``; print the timings and rows."""
    try:
        from curate.config.loading import load_config
    except ImportError:  # a baseline checkout from before curate/config/ was a package
        from curate.config import load_config
    from stages.export import ExportStage

    task = json.loads(task_path.read_text())
    config = load_config(task["config"], task["overrides"])
    stage = ExportStage.from_config(config, output=str(out))
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    rows = stage.export_source({"source": task["source"], "jobs": task["jobs"]})
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rows = [{k: v for k, v in r.items() if k != "video"} for r in rows]
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "rows": rows}))


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))

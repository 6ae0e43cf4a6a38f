"""What a run records as it goes: the funnel (rows in and out of every step, rejects by
reason) and wall times, both written to ``manifest.json``."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def funnel_entry(
    rows_in: int, rows_out: int, rejected: Mapping[str, int], **extra: Any
) -> dict[str, Any]:
    """One funnel entry: counts in and out, rejects by reason, the step's details."""
    return {"in": rows_in, "out": rows_out, "rejected": dict(sorted(rejected.items())), **extra}


class Funnel:
    def __init__(self) -> None:
        self.steps: dict[str, dict] = {}
        self.timings: dict[str, float] = {}

    def record(
        self, step: str, rows_in: int, rows_out: int, rejected: Mapping[str, int], **extra: Any
    ) -> None:
        self.steps[step] = funnel_entry(rows_in, rows_out, rejected, **extra)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Record the wall time of the block as ``timings[name]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started

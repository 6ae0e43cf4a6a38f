"""Wall and CPU clocks for benchmarks: one spelling of ``time.perf_counter() - started``."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Stopwatch:
    """Seconds since it was made (or last restarted), on the monotonic performance clock."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def restart(self) -> float:
        """The seconds so far; counting starts again from now."""
        now = time.perf_counter()
        seconds, self.started = now - self.started, now
        return seconds


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the wall seconds it took."""
    watch = Stopwatch()
    out = fn()
    return out, watch.seconds


def own_cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

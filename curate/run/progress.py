"""What a run shows while it works: one line per step ("analyze 12/28 sources"), redrawn in
place on a terminal and written as plain lines elsewhere, with log records that never tear it.

On a terminal the current step is a single status line on stderr, rewritten as it advances
and left behind, finished, when the step ends. When stderr is not a terminal (a CI log, a
file, a pipe) each step prints one line when it ends, plus a heartbeat line every
:data:`HEARTBEAT_S` seconds while a long step advances.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from curate.timing import duration_text

HEARTBEAT_S = 30.0
"""Seconds between plain progress lines of one long step when output is not a terminal."""

REDRAW_S = 0.1
"""Shortest interval between redraws of the live line."""

TICK_S = 1.0
"""How often the elapsed time of a step is brought up to date."""


class Step:
    """One named step of a phase; :meth:`advance` as its work completes."""

    def __init__(self, progress: Progress, name: str, total: int | None, unit: str) -> None:
        self.progress = progress
        self.name = name
        self.total = total
        self.unit = unit
        self.done = 0
        self.started = time.monotonic()
        self.note = ""
        """A short result shown after the count when the step ends (``2 duplicates``)."""

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.progress.show(self)

    def text(self) -> str:
        count = ""
        if self.total is not None:
            count = f" {self.done}/{self.total}"
        elif self.done:
            count = f" {self.done}"
        unit = f" {self.unit}" if count and self.unit else ""
        note = f", {self.note}" if self.note else ""
        return f"{self.name}{count}{unit}{note}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Progress:
    """The progress display of one command. ``enabled=False`` shows nothing."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self.current: Step | None = None
        self._drawn = False
        self._last_draw = 0.0
        self._last_line = 0.0
        # Log records arrive from other threads (Ray's log forwarding) and the clock ticks.
        self._lock = threading.RLock()

    @contextmanager
    def step(self, name: str, total: int | None = None, unit: str = "") -> Iterator[Step]:
        """A step named ``name`` of ``total`` ``unit`` (``total`` None: no count)."""
        step = Step(self, name, total, unit)
        self.current = step
        self._last_line = time.monotonic()
        self.show(step, force=True)
        stop = threading.Event()
        if self.enabled:
            # The clock runs while a step waits for its first result.
            threading.Thread(target=self._tick, args=(step, stop), daemon=True).start()
        try:
            yield step
        finally:
            stop.set()
            self.current = None
            self.finish(step)

    def _tick(self, step: Step, stop: threading.Event) -> None:
        while not stop.wait(TICK_S):
            self.show(step)

    def show(self, step: Step, force: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            if step is not self.current:
                return
            now = time.monotonic()
            if self.live:
                if force or now - self._last_draw >= REDRAW_S:
                    self._draw(f"{step.text()}  {duration_text(step.elapsed())}")
                    self._last_draw = now
            elif not force and now - self._last_line >= HEARTBEAT_S:
                self._write(f"{step.text()} ...")
                self._last_line = now

    def finish(self, step: Step) -> None:
        if self.enabled:
            with self._lock:
                self._clear()
                self._write(f"{step.text()} ({duration_text(step.elapsed())})")

    def message(self, text: str) -> None:
        """A line of its own (a log record), above the live line."""
        with self._lock:
            self._clear()
            self._write(text)
            if self.current is not None and self.live:
                self.show(self.current, force=True)

    def _draw(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class ProgressLogHandler(logging.Handler):
    """Writes log records through a :class:`Progress`, so they land above its live line."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.progress.message(self.format(record))
        except Exception:  # logging must never break the run
            self.handleError(record)

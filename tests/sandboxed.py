"""Work the sandbox tests run in the sandbox process. The child imports this module to
unpickle the functions, so it stays light (a test module would drag pytest and Ray in)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from curate.media.video import MediaError


def raise_media_error() -> None:
    raise MediaError("unreadable", "cannot open: nope")


def raise_bug() -> None:
    raise KeyError("a bug, not a bad input")


def crash_unless(marker: str) -> int:
    """Segfaults the first time (leaving ``marker`` behind), returns the pid the next."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGSEGV)
    return os.getpid()

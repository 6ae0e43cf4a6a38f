"""Per-frame signals tapped from the single decode pass, one module per signal.

The registry is :class:`curate.config.AnalyzeConfig` itself: each of its blocks that is a
:class:`~curate.config.SignalConfig` names the class that implements it, and the order of the
blocks is the order in which signals run, add their ``analysis`` columns and their tier gates.
Adding a signal is one module here plus its config block (see ``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
from functools import lru_cache

import pyarrow as pa

from curate.config import AnalyzeConfig
from curate.signals.base import ClipWindow, FrameSignal, samples_in

__all__ = [
    "ClipWindow",
    "FrameSignal",
    "build_signals",
    "samples_in",
    "signal_fields",
    "signal_type",
    "signal_types",
]


def _implementation(name: str, path: str) -> type[FrameSignal]:
    module, _, cls_name = path.partition(":")
    cls = getattr(importlib.import_module(f"{__name__}.{module}"), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, FrameSignal)) or cls.name != name:
        raise TypeError(f"analyze.{name}: {path} is not the FrameSignal named {name!r}")
    return cls


@lru_cache
def signal_types() -> tuple[type[FrameSignal], ...]:
    """Every signal class, in registry order."""
    return tuple(
        _implementation(name, type(block).signal) for name, block in AnalyzeConfig().signal_blocks()
    )


def signal_type(name: str) -> type[FrameSignal]:
    """The signal class configured by ``analyze.<name>``."""
    return next(signal for signal in signal_types() if signal.name == name)


def signal_fields() -> list[pa.Field]:
    """The ``analysis`` columns the signals fill, in registry order, then those of the
    keyframe detectors (``curate.signals.detections``)."""
    from curate.signals import detections

    return [f for signal in signal_types() for f in signal.fields] + list(detections.FIELDS)


def build_signals(cfg: AnalyzeConfig) -> list[FrameSignal]:
    """Fresh signals for one source."""
    return [signal.from_config(cfg) for signal in signal_types()]

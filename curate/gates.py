"""Tier gates: thresholds on one clip value, each with the reject reason it gives.

The base gates (resolution, duration) are declared here; every other gate is declared by the
per-frame signal whose column it reads (``FrameSignal.gates``). :func:`all_gates` puts them
together in the order they are checked: the first failure names a clip's reject reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Gate:
    key: str
    """Name of the threshold in a tier's ``gates``."""
    label: str
    """What the threshold applies to, as shown in a reject's detail."""
    reason: str
    """Rejects reason when a clip fails this gate."""
    columns: tuple[str, ...]
    """The ``analysis`` columns it reads."""
    passes: Callable[[np.ndarray, float], np.ndarray]
    value: Callable[[pa.Table], np.ndarray] | None = None
    """The clip value the threshold applies to; by default the one column, as floats."""
    flag: bool = False
    """An on/off gate (``reject_…: true``) rather than a threshold."""

    def column(self, t: pa.Table) -> np.ndarray:
        """The clip value of every row of ``t`` (a missing score is NaN)."""
        return self.value(t) if self.value is not None else floats(t, self.columns[0])


def floats(t: pa.Table, name: str) -> np.ndarray:
    """A column of the analysis table as floats (nulls become NaN)."""
    return t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def equals(name: str, value: str) -> Callable[[pa.Table], np.ndarray]:
    """1.0 where a string column holds ``value``, else 0.0 (for on/off gates)."""
    return lambda t: np.asarray([v == value for v in t.column(name).to_pylist()], np.float64)


def at_least(v: np.ndarray, threshold: float) -> np.ndarray:
    # A missing score (NaN) never passes a gate.
    return v >= threshold


def at_most(v: np.ndarray, threshold: float) -> np.ndarray:
    return v <= threshold


def not_flagged(v: np.ndarray, flag: float) -> np.ndarray:
    return v < 0.5


def _short_side(t: pa.Table) -> np.ndarray:
    return np.minimum(floats(t, "width"), floats(t, "height"))


BASE_GATES: tuple[Gate, ...] = (
    Gate(
        "min_short_side",
        "short side",
        "low_resolution",
        ("width", "height"),
        at_least,
        value=_short_side,
    ),
    Gate("min_duration_s", "duration_s", "too_short", ("duration_s",), at_least),
    Gate("max_duration_s", "duration_s", "too_long", ("duration_s",), at_most),
)
"""Gates on what the probe and the clip windows give, whatever the signals."""


def all_gates() -> tuple[Gate, ...]:
    """Every gate, in the order they are checked: the base gates, each signal's, then the
    keyframe detectors'."""
    from curate.signals import detections, signal_types

    return (
        BASE_GATES + tuple(g for signal in signal_types() for g in signal.gates) + detections.GATES
    )

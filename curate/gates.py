"""Tier gates: thresholds on one clip value, each with the reject reason it gives and the type
its threshold takes in a tier's ``gates``.

The base gates (resolution, duration) are declared here; every other gate is declared by the
signal whose column it reads (``Signal.gates``). ``curate.contract.ALL_GATES`` puts them
together in the order they are checked (the first failure names a clip's reject reason) and
builds the ``gates`` config section from their threshold types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from pydantic import Field, StringConstraints

Percentile = Annotated[str, StringConstraints(pattern=r"^p(100(\.0+)?|[1-9]?[0-9](\.[0-9]+)?)$")]
"""``p20``: the 20th percentile of that score over all candidate clips, resolved per run
(p0 to p100, decimals allowed)."""


def score(**bounds: float) -> Any:
    """The threshold type of a score gate: a number within ``bounds`` (pydantic's ``ge``,
    ``gt``, ``le``, ``lt``) or a :data:`Percentile`; ``None`` turns the gate off."""
    return Annotated[float, Field(**bounds)] | Percentile | None


def number(kind: type = float, **bounds: float) -> Any:
    """The threshold type of a gate that takes a plain number only (an absolute bound that a
    percentile would make meaningless: a bar's share of the frame, a face count)."""
    return Annotated[kind, Field(**bounds)] | None


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
    threshold: Any = None
    """The type its threshold takes (:func:`score`, :func:`number`; ``bool`` for a flag)."""
    description: str | None = None
    """What the threshold means, for the config reference."""
    media: tuple[str, ...] = ("video", "image")
    """The kinds of media it applies to (``curate.contract`` narrows a signal's gates to the
    media the signal measures): an image tier cannot set a gate on motion or duration."""

    def config_field(self) -> tuple[Any, Any]:
        """``(type, FieldInfo)`` of its key in a tier's ``gates`` (off by default)."""
        annotation = bool if self.flag else self.threshold
        if annotation is None:
            raise TypeError(f"gate {self.key}: declare the type of its threshold")
        return annotation, Field(False if self.flag else None, description=self.description)

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
        threshold=number(int, ge=1),
    ),
    Gate(
        "min_duration_s",
        "duration_s",
        "too_short",
        ("duration_s",),
        at_least,
        threshold=number(ge=0),
        media=("video",),
    ),
    Gate(
        "max_duration_s",
        "duration_s",
        "too_long",
        ("duration_s",),
        at_most,
        threshold=number(gt=0),
        media=("video",),
    ),
)
"""Gates on what the probe and the clip windows give, whatever the signals."""

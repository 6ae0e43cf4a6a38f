"""Tier stage: apply each tier's quality gates to the analysis table (phase 2, no pixels).

Tiers are ordered loosest first and nested: a clip enters a tier only if it also entered
every looser one, so each ``tiers/<name>/`` folder is a complete dataset of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.config import Gates, TierConfig


@dataclass(frozen=True)
class Gate:
    key: str
    """Name of the threshold in a tier's ``gates``."""
    label: str
    """What the threshold applies to, as shown in a reject's detail."""
    reason: str
    """Rejects reason when a clip fails this gate."""
    column: Callable[[pa.Table], np.ndarray]
    """The clip value the threshold applies to."""
    passes: Callable[[np.ndarray, float], np.ndarray]
    flag: bool = False
    """An on/off gate (``reject_…: true``) rather than a threshold."""


def _col(name: str) -> Callable[[pa.Table], np.ndarray]:
    return lambda t: t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def _short_side(t: pa.Table) -> np.ndarray:
    return np.minimum(_col("width")(t), _col("height")(t))


def _largest_border(t: pa.Table) -> np.ndarray:
    sides = [_col(f"border_{side}")(t) for side in ("top", "bottom", "left", "right")]
    return np.nan_to_num(np.max(sides, axis=0), nan=0.0) if t.num_rows else np.zeros(0)


def _pattern_is(pattern: str) -> Callable[[pa.Table], np.ndarray]:
    return lambda t: np.asarray(
        [p == pattern for p in t.column("motion_pattern").to_pylist()], np.float64
    )


def _not_flagged(v: np.ndarray, flag: float) -> np.ndarray:
    return v < 0.5


def _at_least(v: np.ndarray, threshold: float) -> np.ndarray:
    # A missing score (NaN) never passes a gate.
    return v >= threshold


def _at_most(v: np.ndarray, threshold: float) -> np.ndarray:
    return v <= threshold


GATES: tuple[Gate, ...] = (
    Gate("min_short_side", "short side", "low_resolution", _short_side, _at_least),
    Gate("min_duration_s", "duration_s", "too_short", _col("duration_s"), _at_least),
    Gate("max_duration_s", "duration_s", "too_long", _col("duration_s"), _at_most),
    Gate("min_sharpness", "sharpness", "blurry", _col("sharpness"), _at_least),
    Gate("min_motion", "motion_score", "static", _col("motion_score"), _at_least),
    Gate("max_motion", "motion_score", "excessive_motion", _col("motion_score"), _at_most),
    Gate(
        "reject_slideshow",
        "motion pattern",
        "slideshow",
        _pattern_is("slideshow"),
        _not_flagged,
        flag=True,
    ),
    Gate(
        "reject_chaotic",
        "motion pattern",
        "chaotic_motion",
        _pattern_is("chaotic"),
        _not_flagged,
        flag=True,
    ),
    Gate("min_aesthetic", "aesthetic", "low_aesthetic", _col("aesthetic"), _at_least),
    Gate("max_text", "text_ratio", "text_heavy", _col("text_ratio"), _at_most),
    Gate("max_border", "largest border", "border", _largest_border, _at_most),
)
"""Every gate, in the order they are checked (the first failure names the reject reason)."""

assert {g.key for g in GATES} == set(Gates.model_fields), "every configurable gate has a Gate"


@dataclass
class TierResult:
    passed: np.ndarray
    """``[num_tiers, num_clips]`` booleans, nested: row k implies row k-1."""
    strictest: list[str | None]
    """Per clip, the strictest tier passed (``None`` if none)."""
    rejects: list[dict]
    """One row per clip that passed no tier, named after its first failed gate."""
    gate_failures: dict[str, dict[str, int]]
    """Per tier, how many clips each gate failed (a clip may fail several)."""
    thresholds: list[dict[str, float]]
    """Per tier, the thresholds applied (percentile gates resolved)."""


def resolve_gates(analysis: pa.Table, tiers: list[TierConfig]) -> list[dict[str, float]]:
    """Each tier's active thresholds, with percentiles (``p20``) turned into values of the
    score distribution over all candidate clips (missing scores ignored)."""
    resolved = []
    for tier in tiers:
        gates = {}
        for gate in GATES:
            threshold = getattr(tier.gates, gate.key)
            if isinstance(threshold, str):
                values = gate.column(analysis)
                values = values[~np.isnan(values)]
                q = float(threshold[1:])
                threshold = float(np.percentile(values, q)) if values.size else float("nan")
            if threshold is not None and threshold is not False:
                gates[gate.key] = threshold
        resolved.append(gates)
    return resolved


def assign_tiers(analysis: pa.Table, tiers: list[TierConfig]) -> TierResult:
    n = analysis.num_rows
    resolved = resolve_gates(analysis, tiers)
    passed = np.zeros((len(tiers), n), dtype=bool)
    first_fail: list[tuple[str, str] | None] = [None] * n
    failures: dict[str, dict[str, int]] = {}
    values = {g.key: g.column(analysis) for g in GATES}
    previous = np.ones(n, dtype=bool)
    for k, tier in enumerate(tiers):
        ok = previous.copy()
        failures[tier.name] = {}
        for gate in GATES:
            threshold = resolved[k].get(gate.key)
            if threshold is None:
                continue
            v = values[gate.key]
            with np.errstate(invalid="ignore"):
                fail = ~gate.passes(v, threshold)
            failures[tier.name][gate.key] = int(fail.sum())
            if k == 0:
                for i in np.flatnonzero(fail):
                    if first_fail[i] is None:
                        if gate.flag:
                            detail = f"{gate.label} is {gate.reason}: {tier.name}.gates.{gate.key}"
                        else:
                            shown = "missing" if np.isnan(v[i]) else f"{v[i]:.4g}"
                            detail = (
                                f"{gate.label} {shown} fails {tier.name}.gates.{gate.key}="
                                f"{_shown_threshold(getattr(tier.gates, gate.key), threshold)}"
                            )
                        first_fail[i] = (gate.reason, detail)
            ok &= ~fail
        passed[k] = ok
        previous = ok
    strictest: list[str | None] = [None] * n
    for k, tier in enumerate(tiers):
        for i in np.flatnonzero(passed[k]):
            strictest[i] = tier.name
    ids = analysis.column("clip_id").to_pylist()
    sources = analysis.column("source").to_pylist()
    starts = analysis.column("start_s").to_pylist()
    ends = analysis.column("end_s").to_pylist()
    rejects = [
        {
            "source": sources[i],
            "clip_id": ids[i],
            "stage": "tiers",
            "reason": first_fail[i][0],
            "detail": first_fail[i][1],
            "start_s": starts[i],
            "end_s": ends[i],
        }
        for i in np.flatnonzero(~passed[0])
    ]
    return TierResult(passed, strictest, rejects, failures, resolved)


def _shown_threshold(configured: float | str, value: float) -> str:
    return f"{configured} ({value:.4g})" if isinstance(configured, str) else f"{value:g}"

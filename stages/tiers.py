"""Tier stage: apply each tier's quality gates to the analysis table (phase 2, no pixels).

Tiers are ordered loosest first and nested: a clip enters a tier only if it also entered
every looser one, so each ``tiers/<name>/`` folder is a complete dataset of its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curate.config.sections import CurateConfig, TierConfig
from curate.contract import ALL_GATES, reject_row
from curate.run.funnel import funnel_entry
from curate.run.phase2 import Candidates, Phase2Step, StepResult


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
        for gate in ALL_GATES:
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
    gates = ALL_GATES
    values = {g.key: g.column(analysis) for g in gates}
    previous = np.ones(n, dtype=bool)
    for k, tier in enumerate(tiers):
        ok = previous.copy()
        failures[tier.name] = {}
        for gate in gates:
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
        reject_row(
            sources[i],
            "tiers",
            *first_fail[i],
            clip_id=ids[i],
            start_s=starts[i],
            end_s=ends[i],
        )
        for i in np.flatnonzero(~passed[0])
    ]
    return TierResult(passed, strictest, rejects, failures, resolved)


def _shown_threshold(configured: float | str, value: float) -> str:
    return f"{configured} ({value:.4g})" if isinstance(configured, str) else f"{value:g}"


@dataclass
class TierStepResult(StepResult):
    passed: np.ndarray | None = None
    """``[num_tiers, num_clips]``: the nested tier membership (see :class:`TierResult`)."""


class TierStep(Phase2Step):
    """The quality gates of every tier; sets ``tier`` (the strictest tier passed)."""

    name = "tiers"

    def __init__(self, tiers: list[TierConfig]) -> None:
        self.tiers = tiers

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {"tiers": config.tiers}

    def run(self, clips: Candidates) -> TierStepResult:
        result = assign_tiers(clips.index, self.tiers)
        passed = result.passed[0]
        return TierStepResult(
            kept=clips.alive & passed,
            columns={"tier": pa.array(result.strictest, pa.string())},
            rejects=result.rejects,
            funnel=funnel_entry(
                clips.index.num_rows,
                int(passed.sum()),
                Counter(r["reason"] for r in result.rejects),
                tiers={t.name: int(p.sum()) for t, p in zip(self.tiers, result.passed)},
                thresholds={t.name: g for t, g in zip(self.tiers, result.thresholds)},
                gate_failures=result.gate_failures,
            ),
            passed=result.passed,
        )

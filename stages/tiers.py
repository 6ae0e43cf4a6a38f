"""Tier stage: apply each tier's quality gates to the analysis table (phase 2, no pixels).

Tiers are ordered loosest first and nested among the tiers of one media (``tiers[].media``:
video clips or images): a clip enters a tier only if it also entered every looser one of its
media, so each ``tiers/<name>/`` folder is a complete dataset of its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curate import schema
from curate.config.sections import CurateConfig, TierConfig
from curate.contract import ALL_GATES, gates_for, reject_row
from curate.gates import Gate
from curate.run.funnel import funnel_entry
from curate.run.phase2 import Candidates, Phase2Step, StepResult


@dataclass
class TierResult:
    passed: np.ndarray
    """``[num_tiers, num_clips]`` booleans, nested among the tiers of one media: a clip in
    tier k is in every looser tier of its media (a clip is in some tier iff it is in the
    loosest of its media: ``passed.any(axis=0)``)."""
    strictest: list[str | None]
    """Per clip, the strictest tier passed (``None`` if none)."""
    rejects: list[dict]
    """One row per clip that passed no tier, named after its first failed gate."""
    gate_failures: dict[str, dict[str, int]]
    """Per tier, how many clips each gate failed (a clip may fail several)."""
    thresholds: list[dict[str, float]]
    """Per tier, the thresholds applied (percentile gates resolved)."""


def resolve_gates(
    analysis: pa.Table, tiers: list[TierConfig], media: np.ndarray | None = None
) -> list[dict[str, float]]:
    """Each tier's active thresholds, with percentiles (``p20``) turned into values of the
    score distribution over the candidates of the tier's media (missing scores ignored)."""
    media = schema.row_media(analysis) if media is None else media
    resolved = []
    for tier in tiers:
        gates = {}
        for gate in gates_for(tier.media):
            threshold = getattr(tier.gates, gate.key)
            if isinstance(threshold, str):
                values = gate.column(analysis)[media == tier.media]
                values = values[~np.isnan(values)]
                q = float(threshold[1:])
                threshold = float(np.percentile(values, q)) if values.size else float("nan")
            if threshold is not None and threshold is not False:
                gates[gate.key] = threshold
        resolved.append(gates)
    return resolved


def _failure_detail(gate: Gate, tier: TierConfig, value: float, threshold: float) -> str:
    if gate.flag:
        return f"{gate.label} is {gate.reason}: {tier.name}.gates.{gate.key}"
    shown = "missing" if np.isnan(value) else f"{value:.4g}"
    return (
        f"{gate.label} {shown} fails {tier.name}.gates.{gate.key}="
        f"{_shown_threshold(getattr(tier.gates, gate.key), threshold)}"
    )


def assign_tiers(analysis: pa.Table, tiers: list[TierConfig]) -> TierResult:
    """Each tier's gates over the rows of its media; tiers of one media are nested, loosest
    first. A row that fails the loosest tier of its media is rejected after the first gate it
    fails there; a row of a media no tier takes, with ``no_tier``."""
    n = analysis.num_rows
    media = schema.row_media(analysis)
    resolved = resolve_gates(analysis, tiers, media)
    passed = np.zeros((len(tiers), n), dtype=bool)
    first_fail: list[tuple[str, str] | None] = [None] * n
    failures: dict[str, dict[str, int]] = {}
    values = {g.key: g.column(analysis) for g in ALL_GATES}
    previous: dict[str, np.ndarray] = {}
    for k, tier in enumerate(tiers):
        rows = media == tier.media
        loosest = tier.media not in previous
        ok = previous.get(tier.media, rows).copy()
        failures[tier.name] = {}
        for gate in gates_for(tier.media):
            threshold = resolved[k].get(gate.key)
            if threshold is None:
                continue
            v = values[gate.key]
            with np.errstate(invalid="ignore"):
                fail = ~gate.passes(v, threshold) & rows
            failures[tier.name][gate.key] = int(fail.sum())
            if loosest:
                for i in np.flatnonzero(fail):
                    if first_fail[i] is None:
                        first_fail[i] = (gate.reason, _failure_detail(gate, tier, v[i], threshold))
            ok &= ~fail
        passed[k] = ok
        previous[tier.media] = ok
    for kind in set(media) - set(previous):
        detail = f"no tier takes {kind}s: add a tier with media: {kind}"
        for i in np.flatnonzero(media == kind):
            first_fail[i] = ("no_tier", detail)
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
        for i in np.flatnonzero(~passed.any(axis=0))
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
        passed = result.passed.any(axis=0)
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

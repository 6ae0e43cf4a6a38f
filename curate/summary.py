"""Summaries of an output folder, read from its shards (only the columns needed)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from curate.io import read_table


class InspectError(ValueError):
    """The folder is not a curate output."""


def summarize(output: Path) -> dict:
    """Per-tier clips and hours, reject counts by reason and by stage."""
    manifest_path = output / "manifest.json"
    if not manifest_path.exists():
        raise InspectError(f"{output} holds no manifest.json: not a finished curate run")
    manifest = json.loads(manifest_path.read_text())
    tiers = {}
    for name in (t["name"] for t in manifest["config"]["tiers"]):
        table = read_table(output / "tiers" / name, columns=["duration_s"])
        hours = (pc.sum(table.column("duration_s")).as_py() or 0.0) / 3600
        tiers[name] = {"clips": table.num_rows, "hours": round(hours, 6)}
    rejects = read_table(output / "rejects", columns=["stage", "reason"])
    reasons = Counter(rejects.column("reason").to_pylist())
    by_stage = Counter(
        f"{s}/{r}"
        for s, r in zip(rejects.column("stage").to_pylist(), rejects.column("reason").to_pylist())
    )
    analysis = read_table(output / "analysis", columns=["clip_id"])
    return {
        "output": str(output),
        "inputs": manifest["inputs"],
        "candidates": analysis.num_rows,
        "tiers": tiers,
        "rejects": dict(sorted(reasons.items())),
        "rejects_by_stage": dict(sorted(by_stage.items())),
    }


def accounting_problems(output: Path) -> list[str]:
    """Check the accounting invariant: every input is the source of an analysis row or of a
    whole-input reject, and every analysis row is in a tier or has a reject."""
    manifest = json.loads((output / "manifest.json").read_text())
    analysis = read_table(output / "analysis", columns=["clip_id", "source"])
    rejects = read_table(output / "rejects", columns=["clip_id", "source"])
    tiered: set[str] = set()
    for name in (t["name"] for t in manifest["config"]["tiers"]):
        tiered |= set(
            read_table(output / "tiers" / name, columns=["clip_id"])["clip_id"].to_pylist()
        )
    rejected_ids = {c for c in rejects["clip_id"].to_pylist() if c is not None}
    failed_inputs = {
        s
        for s, c in zip(rejects["source"].to_pylist(), rejects["clip_id"].to_pylist())
        if c is None
    }
    analysed = set(analysis["source"].to_pylist())
    problems = []
    if len(analysed | failed_inputs) != manifest["inputs"]["discovered"]:
        problems.append(
            f"{manifest['inputs']['discovered']} inputs discovered but "
            f"{len(analysed | failed_inputs)} accounted for"
        )
    lost = set(analysis["clip_id"].to_pylist()) - tiered - rejected_ids
    if lost:
        problems.append(
            f"{len(lost)} analysis rows are in no tier and have no reject: {sorted(lost)[:5]}"
        )
    return problems

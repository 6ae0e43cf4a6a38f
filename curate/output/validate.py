"""``curate validate``: does an output folder keep the output contract?

Checks every shard's schema, the accounting invariant, that each tier folder holds exactly
the clips that passed its gates and were not rejected afterwards, and that ``manifest.json``
agrees with the tables. The output is a ``Store`` (a local folder or an object-store prefix),
read through its filesystem only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

import pyarrow as pa

from curate import contract, schema
from curate.output.record import InspectError, Manifest, open_output
from curate.output.tables import output_schema_problems, read_table
from curate.storage import Store

SHOWN_IDS = 5
"""How many offending clip ids a message names."""


def validate(output: Store | str | os.PathLike) -> list[str]:
    """Every problem found, as one readable line each; empty when the output is sound."""
    try:
        store = open_output(output)
        manifest = Manifest.read(store)
        names = manifest.tier_names
    except InspectError as e:
        return [f"manifest.json: {e}"]
    problems = output_schema_problems(store, manifest, names)
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        ("accounting", lambda: accounting_problems(store)),
        ("tiers", lambda: _tier_problems(store, manifest, names)),
        ("rejects", lambda: _reject_problems(store, manifest)),
    ]
    for what, check in checks:
        try:
            problems += check()
        except (OSError, KeyError, pa.ArrowException) as e:
            # A missing column or shard is already named by the schema check; say what it
            # kept us from checking.
            problems.append(f"{what} not checked: {e}")
    return problems


def accounting_problems(output: Store | str | os.PathLike) -> list[str]:
    """Check the accounting invariant: every input is the source of an analysis row or of a
    whole-input reject, and every analysis row is in a tier or has a reject."""
    store = open_output(output)
    manifest = Manifest.read(store)
    analysis = read_table(store, "analysis", columns=["clip_id", "source"])
    rejects = read_table(store, "rejects", columns=["clip_id", "source"])
    tiered: set[str] = set()
    for name in manifest.tier_names:
        tiered |= set(
            read_table(store, f"tiers/{name}", columns=["clip_id"])["clip_id"].to_pylist()
        )
    rejected_ids = {c for c in rejects["clip_id"].to_pylist() if c is not None}
    failed_inputs = {
        s
        for s, c in zip(rejects["source"].to_pylist(), rejects["clip_id"].to_pylist())
        if c is None
    }
    analysed = set(analysis["source"].to_pylist())
    problems = []
    if len(analysed | failed_inputs) != manifest.inputs.discovered:
        problems.append(
            f"{manifest.inputs.discovered} inputs discovered but "
            f"{len(analysed | failed_inputs)} accounted for"
        )
    lost = set(analysis["clip_id"].to_pylist()) - tiered - rejected_ids
    if lost:
        problems.append(
            f"{len(lost)} analysis rows are in no tier and have no reject: {sorted(lost)[:5]}"
        )
    return problems


def _ids(values: set[str]) -> str:
    return ", ".join(sorted(values)[:SHOWN_IDS]) + (", ..." if len(values) > SHOWN_IDS else "")


def _tier_problems(output: Store, manifest: Manifest, names: list[str]) -> list[str]:
    problems = []
    analysis = read_table(output, "analysis", columns=["clip_id", "tier"])
    ids = analysis["clip_id"].to_pylist()
    repeated = {c for c, n in Counter(ids).items() if n > 1}
    if repeated:
        problems.append(f"analysis: {len(repeated)} clip ids repeat: {_ids(repeated)}")
    rank = {name: k for k, name in enumerate(names)}
    strictest = analysis["tier"].to_pylist()
    unknown = {t for t in strictest if t is not None and t not in rank}
    if unknown:
        problems.append(f"analysis: tier values {sorted(unknown)} are not tiers of this run")
    rejected = read_table(output, "rejects", columns=["clip_id"])["clip_id"].to_pylist()
    rejected = {c for c in rejected if c is not None}
    folders = set(output.folders("tiers"))
    for extra in sorted(folders - set(names)):
        problems.append(f"tiers/{extra}: not a tier of this run's config")
    for k, name in enumerate(names):
        if name not in folders:
            continue  # named by the schema check
        table = read_table(output, f"tiers/{name}", columns=["clip_id", "tier"])
        members = table["clip_id"].to_pylist()
        size = manifest.tiers.get(name)
        recorded = size.clips if size else None
        if recorded != len(members):
            problems.append(
                f"tiers/{name}: {len(members)} rows, but manifest.json records {recorded}"
            )
        labels = set(table["tier"].to_pylist()) - {name}
        if labels:
            problems.append(f"tiers/{name}: rows labelled with tier {sorted(map(str, labels))}")
        # Tiers are nested and only dedup, re-balancing and export remove a clip that passed
        # the gates (each with a reject), so a tier's members are exactly these.
        expected = {
            c for c, t in zip(ids, strictest) if t in rank and rank[t] >= k and c not in rejected
        }
        missing, unexpected = expected - set(members), set(members) - expected
        if missing:
            problems.append(
                f"tiers/{name}: {len(missing)} clips passed its gates and have no reject "
                f"but are missing: {_ids(missing)}"
            )
        if unexpected:
            problems.append(
                f"tiers/{name}: {len(unexpected)} rows should not be there (not in analysis, "
                f"below the tier's gates, or rejected): {_ids(unexpected)}"
            )
    return problems


def _reject_problems(output: Store, manifest: Manifest) -> list[str]:
    problems = []
    rejects = read_table(output, "rejects", columns=["clip_id", "stage", "reason"])
    counts = Counter(rejects["reason"].to_pylist())
    recorded = manifest.rejects
    for reason in sorted(set(counts) | set(recorded)):
        if counts.get(reason, 0) != recorded.get(reason, 0):
            problems.append(
                f"rejects: {counts.get(reason, 0)} rows with reason {reason!r}, but "
                f"manifest.json records {recorded.get(reason, 0)}"
            )
    unknown = set(counts) - contract.REJECT_REASONS
    if unknown:
        problems.append(f"rejects: reasons outside the vocabulary: {sorted(map(str, unknown))}")
    analysed = set(read_table(output, "analysis", columns=["clip_id"])["clip_id"].to_pylist())
    # Later stages only ever reject analysis rows.
    later = {
        c
        for c, stage in zip(rejects["clip_id"].to_pylist(), rejects["stage"].to_pylist())
        if c is not None and stage not in schema.PHASE1_STAGES
    }
    if later - analysed:
        problems.append(
            f"rejects: {len(later - analysed)} rows of stages after analysis name clips that "
            f"are not in analysis: {_ids(later - analysed)}"
        )
    return problems

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
from curate.copy_detection import METHODS
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
        ("duplicates", lambda: _duplicate_problems(store)),
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
        # Tiers of one media are nested and only dedup, re-balancing and export remove a
        # clip that passed the gates (each with a reject), so a tier's members are exactly
        # these.
        media = manifest.tier_media(name)
        expected = {
            c
            for c, t in zip(ids, strictest)
            if t in rank and rank[t] >= k and manifest.tier_media(t) == media and c not in rejected
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


SPAN_SLACK_S = 0.05
"""How far past a clip's end a duplicate span may reach (rounding of frame times)."""


def _duplicate_problems(output: Store) -> list[str]:
    """Every merge is auditable: a duplicate names an analysis row it copies, how that was
    decided, how similar and where; its reject says ``duplicate``; chains end at a kept clip."""
    columns = ["clip_id", "duration_s", *schema.DUPLICATE_FIELDS]
    if "media" in output.read_schema(output.files("analysis")[0]).names:
        columns.append("media")  # a run from before images has none
    analysis = read_table(output, "analysis", columns=columns).to_pylist()
    by_id = {r["clip_id"]: r for r in analysis}
    rejects = read_table(output, "rejects", columns=["clip_id", "reason"])
    rejected = {
        c
        for c, r in zip(rejects["clip_id"].to_pylist(), rejects["reason"].to_pylist())
        if r == "duplicate"
    }
    bad: dict[str, set[str]] = {}

    def flag(problem: str, clip: str) -> None:
        bad.setdefault(problem, set()).add(clip)

    for row in analysis:
        clip, original = row["clip_id"], row["duplicate_of"]
        if original is None:
            if any(row[f] is not None for f in schema.DUPLICATE_FIELDS):
                flag("rows have duplicate details but no duplicate_of", clip)
            if clip in rejected:
                flag("rows are rejected as duplicate but have no duplicate_of", clip)
            continue
        if clip not in rejected:
            flag("duplicates have no 'duplicate' reject", clip)
        if original not in by_id or original == clip:
            flag("duplicates name a duplicate_of that is not another analysis row", clip)
            continue
        if row["duplicate_method"] not in METHODS:
            flag(f"duplicates have a duplicate_method outside {list(METHODS)}", clip)
        similarity = row["duplicate_similarity"]
        if similarity is None or not -1.0 <= similarity <= 1.0:
            flag("duplicates have no duplicate_similarity in [-1, 1]", clip)
        if row.get("media") == "image":
            if row["duplicate_span"] is not None:
                flag("image duplicates have a duplicate_span (a still spans no time)", clip)
        elif not _span_fits(row["duplicate_span"], row, by_id[original]):
            flag("duplicates have a duplicate_span outside the two clips", clip)
        seen = {clip}
        while original is not None and original not in seen and original in by_id:
            seen.add(original)
            original = by_id[original]["duplicate_of"]
        if original is not None:
            flag("duplicates are in a duplicate_of chain that never reaches a kept clip", clip)
    return [f"analysis: {len(ids)} {what}: {_ids(ids)}" for what, ids in bad.items()]


def _span_fits(span: dict | None, clip: dict, original: dict) -> bool:
    if span is None:
        return False
    return all(
        0.0 <= span[start] < span[end] <= (row["duration_s"] or 0.0) + SPAN_SLACK_S
        for start, end, row in (("start_s", "end_s", clip), ("of_start_s", "of_end_s", original))
    )

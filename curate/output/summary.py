"""``curate inspect``: a summary of an output folder, read from its shards (only the columns
needed), and that summary as text for a terminal.

The output is a ``Store``: a local folder or an object-store prefix (``s3://...``), read
through its filesystem only. Imports nothing but pyarrow, the standard library and curate's
light modules, so that ``scripts/inspect_shards.py`` works where only pyarrow is installed.
"""

from __future__ import annotations

import os
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from curate import schema
from curate.output.record import InspectError, Manifest, open_output
from curate.output.tables import output_schema_problems, shards
from curate.output.where import parse_where
from curate.storage import Store
from curate.timing import timing_lines

PERCENTILES = (0.1, 0.5, 0.9)
"""Quantiles shown for every score, besides min, max and mean."""

SAMPLE_COLUMNS = (
    "clip_id",
    "source",
    "start_s",
    "end_s",
    "tier",
    "sharpness",
    "motion_score",
    "camera_motion",
    "caption",
    "prompt",
)
"""Columns of a sample row (runs older than captioning hold ``caption``/``prompt`` in their
tier tables only)."""

MIX_COLUMNS = ("media", "orientation", "camera_motion")
"""Categorical columns whose value counts are shown."""


def dataset(output: Store, folder: str) -> ds.Dataset:
    """``curate.output.tables.shards`` for the inspecting commands: no shards is an
    ``InspectError``."""
    try:
        return shards(output, folder)
    except FileNotFoundError as e:
        raise InspectError(str(e)) from e


def unreadable(output: Store, error: Exception) -> InspectError:
    """A damaged output: name the first line of the cause (Arrow appends whole schemas)."""
    cause = (str(error).splitlines() or [type(error).__name__])[0]
    return InspectError(
        f"cannot read {output}: {cause} (`curate validate {output}` lists problems)"
    )


def summarize(
    output: Store | str | os.PathLike,
    *,
    tier: str | None = None,
    where: str | None = None,
    sample: int = 3,
) -> dict:
    """Per-tier clips and hours, reject counts by reason and by stage, the schema check, and
    score summaries, category mixes and sample rows of a selection: ``analysis`` (every
    candidate clip) or one tier, optionally filtered by ``where``."""
    store = open_output(output)
    manifest = Manifest.read(store)
    names = manifest.tier_names
    try:
        tiers = {}
        for name in names:
            media = manifest.tier_media(name)
            if media == "image":
                tiers[name] = {"clips": dataset(store, f"tiers/{name}").count_rows(), "hours": 0.0}
            else:
                durations = dataset(store, f"tiers/{name}").to_table(columns=["duration_s"])
                tiers[name] = {
                    "clips": durations.num_rows,
                    "hours": round(_sum(durations["duration_s"]) / 3600, 6),
                }
            tiers[name]["media"] = media
        rejects = dataset(store, "rejects").to_table(columns=["stage", "reason"])
        reasons = rejects["reason"].to_pylist()
        by_stage = Counter(f"{s}/{r}" for s, r in zip(rejects["stage"].to_pylist(), reasons))
        candidates = dataset(store, "analysis").count_rows()
        selection = _selection(store, manifest, tier, where, sample)
        duplicates = _duplicates(dataset(store, "analysis"), sample)
    except (pa.ArrowInvalid, KeyError, OSError) as e:
        raise unreadable(store, e) from e
    return {
        "output": str(store),
        "inputs": manifest.inputs.to_json_dict(),
        "candidates": candidates,
        "tiers": tiers,
        "thresholds": manifest.thresholds,
        "rejects": dict(sorted(Counter(reasons).items())),
        "rejects_by_stage": dict(sorted(by_stage.items())),
        "schema_problems": output_schema_problems(store, manifest, names),
        "timing": manifest.timing.stages,
        "selection": selection,
        "duplicates": duplicates,
    }


def _duplicates(analysis: ds.Dataset, sample: int) -> dict:
    """Merged clips by the method that decided them, and ``sample`` merged pairs."""
    names = ["clip_id", "source", "start_s", "end_s"]
    # Outputs of older versions lack the evidence beside ``duplicate_of``.
    present = [c for c in schema.DUPLICATE_FIELDS if c in analysis.schema.names]
    merged = analysis.to_table(columns=names + present, filter=pc.field("duplicate_of").is_valid())
    by_method = (
        _counts(merged["duplicate_method"])
        if "duplicate_method" in present
        else {"(unrecorded)": merged.num_rows}
    )
    shown = merged.take(pa.array(spread(merged.num_rows, sample), pa.int64())).to_pylist()
    originals = analysis.to_table(
        columns=names[:4],
        filter=pc.field("clip_id").isin(
            pa.array(sorted({r["duplicate_of"] for r in shown}), pa.string())
        ),
    )
    by_id = {r["clip_id"]: r for r in originals.to_pylist()}
    return {
        "clips": merged.num_rows,
        "by_method": by_method,
        "pairs": [{**row, "original": by_id.get(row["duplicate_of"])} for row in shown],
    }


def _selection(
    output: Store, manifest: Manifest, tier: str | None, where: str | None, sample: int
) -> dict:
    names = manifest.tier_names
    if tier is not None and tier not in names:
        raise InspectError(f"no tier {tier!r} in this run (tiers: {', '.join(names)})")
    table_name = f"tiers/{tier}" if tier else "analysis"
    data = dataset(output, table_name)
    condition = parse_where(where, data.schema) if where else None
    present = set(data.schema.names)
    scores = [c for c in manifest.scores if c in present]
    mixes = [c for c in MIX_COLUMNS if c in present]
    table = data.to_table(columns=[*scores, *mixes], filter=condition)
    return {
        "table": table_name,
        "where": where,
        "rows": table.num_rows,
        "hours": round(_sum(table["duration_s"]) / 3600, 6) if "duration_s" in present else None,
        "scores": {c: _stats(table[c]) for c in scores},
        **{c: _counts(table[c]) for c in mixes},
        "samples": _samples(data, condition, table.num_rows, sample),
    }


def _sum(values: pa.ChunkedArray) -> float:
    return pc.sum(values).as_py() or 0.0


def _number(value: float | None) -> float | None:
    # Six significant digits: float32 scores shown as 20.1, not 20.100000381469727.
    return None if value is None else float(f"{value:.6g}")


def _stats(values: pa.ChunkedArray) -> dict:
    if pa.types.is_floating(values.type):
        # NaN counts as missing, as in the tier gates.
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    valid = len(values) - values.null_count
    stats: dict = {"count": valid, "nulls": values.null_count}
    keys = ["min", *(f"p{round(q * 100)}" for q in PERCENTILES), "max", "mean"]
    if not valid:
        return stats | dict.fromkeys(keys)
    extremes = pc.min_max(values)
    quantiles = pc.quantile(values, q=list(PERCENTILES)).to_pylist()
    found = [extremes["min"].as_py(), *quantiles, extremes["max"].as_py(), pc.mean(values).as_py()]
    return stats | {k: _number(v) for k, v in zip(keys, found)}


def _counts(values: pa.ChunkedArray) -> dict[str, int]:
    counts = Counter(values.to_pylist())
    return {str(k): n for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def spread(total: int, n: int) -> list[int]:
    """``n`` row indices spread evenly over ``total`` rows (all of them when there are fewer)."""
    k = min(n, total)
    return [i * total // k for i in range(k)]


def _samples(data: ds.Dataset, condition, rows: int, n: int) -> list[dict]:
    """``n`` rows spread evenly over the selection."""
    indices = spread(rows, n)
    if not indices:
        return []
    columns = [c for c in SAMPLE_COLUMNS if c in data.schema.names]
    taken = data.scanner(columns=columns, filter=condition).take(pa.array(indices))
    return [
        {k: _number(v) if isinstance(v, float) else v for k, v in row.items()}
        for row in taken.to_pylist()
    ]


# Text output -------------------------------------------------------------------------------


def tiers_text(summary: dict | Manifest) -> str:
    """Inputs, per-tier clips and hours, rejects by reason (a manifest or a summary)."""
    if isinstance(summary, Manifest):
        summary = summary.to_json_dict()
    lines = [f"inputs: {summary['inputs']['discovered']}", *tier_lines(summary["tiers"])]
    lines.append("rejects:")
    for reason, n in summary["rejects"].items():
        lines.append(f"  {reason:<24} {n:>8}")
    if not summary["rejects"]:
        lines.append("  (none)")
    return "\n".join(lines)


def threshold_text(value: float | bool) -> str:
    """A gate threshold as people read it: ``on``/``off`` for switches, 4 significant digits."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:.4g}"


def tier_lines(tiers: dict[str, dict]) -> list[str]:
    """Each tier's clips and hours, one line each under a ``tiers:`` heading."""
    lines = ["tiers:"]
    for name, t in tiers.items():
        if t.get("media") == "image":
            lines.append(f"  {name:<24} {t['clips']:>8} images")
        else:
            lines.append(f"  {name:<24} {t['clips']:>8} clips {t['hours']:>10.3f} h")
    return lines


def _cell(value: float | None) -> str:
    return f"{'-':>10}" if value is None else f"{value:>10.4g}"


def summary_text(summary: dict) -> str:
    """The whole of ``summarize``'s answer for a terminal."""
    lines = [f"output: {summary['output']} ({summary['candidates']} candidate clips)"]
    lines.append(tiers_text(summary))
    lines.append("rejects by stage:")
    lines += [f"  {k:<32} {n:>8}" for k, n in summary["rejects_by_stage"].items()] or ["  (none)"]
    for name, gates in summary["thresholds"].items():
        shown = ", ".join(f"{k}={threshold_text(v)}" for k, v in gates.items())
        lines.append(f"thresholds {name}: {shown or '(none)'}")
    problems = summary["schema_problems"]
    lines.append("schema: ok" if not problems else "schema problems:")
    lines += [f"  - {p}" for p in problems]
    lines += timing_lines(summary.get("timing") or {})

    lines += duplicate_lines(summary.get("duplicates"))

    sel = summary["selection"]
    hours = "" if sel["hours"] is None else f", {sel['hours']:.3f} h"
    where = f" where {sel['where']}" if sel["where"] else ""
    lines.append(f"selection: {sel['table']}{where}: {sel['rows']} rows{hours}")
    keys = ["min", *(f"p{round(q * 100)}" for q in PERCENTILES), "max"]
    lines.append(f"  {'score':<26} {'n':>8} {'nulls':>8}" + "".join(f"{k:>10}" for k in keys))
    for column, s in sel["scores"].items():
        cells = "".join(_cell(s.get(k)) for k in keys)
        lines.append(f"  {column:<26} {s['count']:>8} {s['nulls']:>8}{cells}")
    for column in MIX_COLUMNS:
        counts = sel.get(column)
        if counts is not None:
            total = sum(counts.values()) or 1
            mix = ", ".join(f"{k} {n} ({100 * n / total:.0f}%)" for k, n in counts.items())
            lines.append(f"  {column}: {mix or '(no rows)'}")
    if sel["samples"]:
        lines.append("samples:")
    for row in sel["samples"]:
        span = _span(row)
        scores = " ".join(
            f"{k}={row[k]}"
            for k in ("tier", "sharpness", "motion_score", "camera_motion")
            if k in row
        )
        lines.append(
            " ".join(filter(None, ["", row.get("clip_id"), row.get("source"), span, scores]))
        )
        for key in ("caption", "prompt"):
            if key in row:
                lines.append(f"    {key}: {row[key] if row[key] is not None else '(none)'}")
    if sel["samples"] and "caption" not in sel["samples"][0]:
        lines.append("  (captions live in the tier tables: add --tier NAME to see them)")
    return "\n".join(lines)


def duplicate_lines(duplicates: dict | None) -> list[str]:
    """The merges, by method, and a few merged pairs with where they match."""
    if not duplicates or not duplicates["clips"]:
        return ["duplicates: none"]
    methods = ", ".join(f"{m} {n}" for m, n in duplicates["by_method"].items())
    lines = [f"duplicates: {duplicates['clips']} ({methods})"]
    for pair in duplicates["pairs"]:
        original = pair["original"] or {"source": pair["duplicate_of"]}
        evidence = pair.get("duplicate_method") or ""
        if pair.get("duplicate_similarity") is not None:
            evidence += f", similarity {pair['duplicate_similarity']:.2f}"
        span = pair.get("duplicate_span")
        if span:
            evidence += (
                f", its {span['start_s']:.1f}-{span['end_s']:.1f} s = "
                f"{span['of_start_s']:.1f}-{span['of_end_s']:.1f} s of the original"
            )
        lines.append(f"  {_clip_text(pair)} copies {_clip_text(original)}: {evidence}")
    return lines


def _span(row: dict) -> str:
    """``[12.0-16.5 s]``; empty for a whole input and an image, which span no time."""
    start, end = row.get("start_s"), row.get("end_s")
    return (
        f"[{start:.1f}-{end:.1f} s]"
        if start is not None and end is not None and end > start
        else ""
    )


def _clip_text(row: dict) -> str:
    span = _span(row)
    return f"{row.get('source')} {span}" if span else str(row.get("source"))

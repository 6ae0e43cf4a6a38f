"""``curate report``: one self-contained HTML page that shows what a run kept, dropped and why.

The funnel, a histogram per score with every tier's thresholds, the concept clusters before
and after re-balancing, a contact sheet per tier, rejected examples per reason and the
duplicate groups. Charts are matplotlib PNGs and thumbnails the JPEGs of ``analysis``, both
embedded as data URIs, so the file can be mailed or archived alone.

The output is read as a ``Store`` (a local folder or an object-store prefix); the page is
written to a local file, or into the output's own store by default.

Everything that comes from the data (file names, captions, details, tier names) goes through
``html.escape``, and a Content-Security-Policy forbids scripts, so a caption such as
``<script>`` shows as text and runs nothing.
"""

from __future__ import annotations

import base64
import html
import io
import os
import posixpath
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from matplotlib.figure import Figure

from curate.gates import all_gates
from curate.manifest import Manifest, open_output
from curate.schema import SCORE_COLUMNS
from curate.storage import Store
from curate.summary import dataset, spread, unreadable

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
"""No scripts, no network: images only from data URIs, styles only inline."""

ANALYSIS_COLUMNS = [
    "clip_id",
    "source",
    "start_s",
    "end_s",
    "width",
    "height",
    *SCORE_COLUMNS,
    "cluster_id",
    "duplicate_of",
    "tier",
]
"""The scalar columns of ``analysis`` the report reads (thumbnails only for shown clips)."""

SHEET_COLUMNS = ["clip_id", "source", "start_s", "end_s", "sharpness", "caption", "prompt"]
"""Columns of a tier's contact sheet, besides the thumbnail."""

MAX_CLUSTERS = 64
"""Clusters shown in the gallery (the largest), so a k=256 run stays readable."""

CAPTION_CHARS = 200
"""Captions are cut to this length under a thumbnail (the full text is in the tooltip)."""

TIER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PHASE_COLOURS = {
    "inputs": "#7f7f7f",
    "phase 1": "#1f77b4",
    "gates": "#ff7f0e",
    "phase 2": "#9467bd",
    "tiers": "#2ca02c",
}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 2em 3em; color: #222; }
h1 { margin-top: .6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; } figure.histogram { margin: 0; }
.chart { max-width: 100%; }
.sheet { display: flex; flex-wrap: wrap; gap: 6px; }
figure.thumb { margin: 0; width: 176px; font-size: 11px; overflow-wrap: anywhere; }
figure.thumb img { width: 176px; height: 112px; object-fit: cover; display: block; }
.noimg { width: 176px; height: 112px; background: #eee; color: #888; display: flex;
  align-items: center; justify-content: center; }
.kept img { outline: 3px solid #2ca02c; } .dropped img { outline: 3px solid #d62728; }
.group { display: flex; gap: 6px; margin: 6px 0; padding: 6px; background: #f6f6f6; }
.muted { color: #777; }
"""


REPORT = "report.html"
"""The report's name inside the output when no ``--html`` file is given."""


def write_report(
    output: Store | str | os.PathLike,
    target: str | os.PathLike | None = None,
    *,
    examples: int = 12,
) -> str:
    """Render the report of ``output`` into the local file ``target`` or, without one, into
    ``report.html`` in the output itself (local or object storage); written under a
    temporary name either way. Returns where it went."""
    store = open_output(output)
    page = render_report(store, examples=examples)
    if target is None:
        store.write_bytes(REPORT, page.encode("utf-8"))
        return store.display(REPORT)
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


def render_report(output: Store | str | os.PathLike, *, examples: int = 12) -> str:
    """The whole page, as text."""
    store = open_output(output)
    manifest = Manifest.read(store)
    names = manifest.tier_names
    try:
        analysis = _analysis_columns(dataset(store, "analysis"))
        rejects = dataset(store, "rejects").to_table(
            columns=["source", "clip_id", "stage", "reason", "detail", "start_s", "end_s"]
        )
        sheets = {name: _sheet_rows(dataset(store, f"tiers/{name}"), examples) for name in names}
        clusters = _cluster_examples(analysis, rejects, examples)
        reject_examples = _reject_examples(rejects, examples)
        duplicates = _duplicate_groups(analysis, rejects, examples)
        wanted = {r["clip_id"] for rows in clusters.values() for r in rows}
        wanted |= {r["clip_id"] for rows in reject_examples.values() for r in rows}
        wanted |= {r["clip_id"] for group in duplicates for r in group}
        thumbs = _thumbnails(dataset(store, "analysis"), wanted - {None})
    except (pa.ArrowInvalid, KeyError, OSError) as e:
        raise unreadable(store, e) from e
    sections = [
        ("overview", "Overview", _overview(store, manifest, names, analysis.num_rows)),
        ("funnel", "Funnel", _funnel(manifest, names)),
        ("scores", "Scores and thresholds", _histograms(analysis, manifest, names)),
        ("clusters", "Concept clusters", _clusters(manifest, clusters, thumbs)),
        ("tiers", "Contact sheets", _contact_sheets(sheets)),
        ("rejects", "Rejected examples", _rejects(rejects, reject_examples, thumbs)),
        ("duplicates", "Duplicate groups", _duplicates(duplicates, thumbs)),
    ]
    heading = _e(posixpath.basename(store.location.rstrip("/")))
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{_e(title)}</h2>{content}</section>'
        for key, title, content in sections
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>curate report: {heading}</title><style>{STYLE}</style></head>"
        f"<body><h1>curate report: {heading}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )


# Helpers ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escape anything shown in the page, attribute-safe."""
    return html.escape(str(value), quote=True)


def _png(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="chart" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _label(text: str) -> str:
    """A data-derived matplotlib label: a `$` would start mathtext."""
    return text.replace("$", r"\$")


def _thumb(image: bytes | None, title: str | None, lines: list[str], kind: str = "") -> str:
    if image:
        data = base64.b64encode(image).decode("ascii")
        img = f'<img src="data:image/jpeg;base64,{data}" alt="{_e(lines[0] if lines else "")}">'
    else:
        img = '<div class="noimg">no thumbnail</div>'
    text = "<br>".join(_e(line) for line in lines)
    return (
        f'<figure class="thumb {kind}" title="{_e(title or "")}">{img}'
        f"<figcaption>{text}</figcaption></figure>"
    )


def _name(source: str | None) -> str:
    return os.path.basename(source or "") or str(source)


def _span(row: dict) -> str:
    if row.get("start_s") is None or row.get("end_s") is None:
        return ""
    return f"{row['start_s']:.1f}–{row['end_s']:.1f} s"


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# Data -------------------------------------------------------------------------------------


def _sheet_rows(data: ds.Dataset, n: int) -> dict:
    """Up to ``n`` rows of a tier spread over it, with their thumbnails."""
    total = data.count_rows()
    indices = spread(total, n)
    columns = [c for c in [*SHEET_COLUMNS, "thumbnail"] if c in data.schema.names]
    rows = data.take(pa.array(indices, pa.int64()), columns=columns).to_pylist()
    return {"total": total, "rows": rows}


def _cluster_examples(analysis: pa.Table, rejects: pa.Table, n: int) -> dict[int, list[dict]]:
    """Per concept cluster, up to ``n`` clips, kept ones first; each row says why a clip
    was dropped (``reason``) or which tiers it reached (``tier``, strictest)."""
    reason = {
        c: r
        for c, r in zip(rejects["clip_id"].to_pylist(), rejects["reason"].to_pylist())
        if c is not None
    }
    members: dict[int, list[dict]] = defaultdict(list)
    rows = analysis.select(["clip_id", "cluster_id", "tier", "source"]).to_pylist()
    for row in rows:
        row["reason"] = reason.get(row["clip_id"])
    for row in sorted(rows, key=lambda r: r["reason"] is not None):
        if row["cluster_id"] is not None:
            members[row["cluster_id"]].append(row)
    largest = sorted(members, key=lambda c: (-len(members[c]), c))[:MAX_CLUSTERS]
    return {c: members[c][:n] for c in sorted(largest)}


def _reject_examples(rejects: pa.Table, n: int) -> dict[str, list[dict]]:
    by_reason: dict[str, list[dict]] = defaultdict(list)
    for row in rejects.to_pylist():
        by_reason[row["reason"]].append(row)
    order = sorted(by_reason, key=lambda r: (-len(by_reason[r]), r))
    return {
        reason: [by_reason[reason][i] for i in spread(len(by_reason[reason]), n)]
        for reason in order
    }


def _duplicate_groups(analysis: pa.Table, rejects: pa.Table, n: int) -> list[list[dict]]:
    """Up to ``n`` groups: the kept clip first, then the clips found to duplicate it."""
    detail = {
        r["clip_id"]: r["detail"]
        for r in rejects.filter(pc.equal(rejects["reason"], "duplicate")).to_pylist()
    }
    groups: dict[str, list[dict]] = defaultdict(list)
    found = analysis.filter(pc.is_valid(analysis["duplicate_of"]))
    for row in found.select(["clip_id", "source", "duplicate_of"]).to_pylist():
        row["detail"] = detail.get(row["clip_id"])
        groups[row.pop("duplicate_of")].append(row)
    shown = sorted(groups)[:n]
    kept = analysis.filter(pc.is_in(analysis["clip_id"], pa.array(shown, pa.string())))
    source_of = dict(zip(kept["clip_id"].to_pylist(), kept["source"].to_pylist()))
    return [[{"clip_id": k, "source": source_of.get(k), "detail": None}, *groups[k]] for k in shown]


def _thumbnails(analysis: ds.Dataset, ids: set[str]) -> dict[str, bytes | None]:
    if not ids:
        return {}
    table = analysis.to_table(
        columns=["clip_id", "thumbnail"], filter=pc.field("clip_id").isin(sorted(ids))
    )
    return dict(zip(table["clip_id"].to_pylist(), table["thumbnail"].to_pylist()))


# Sections ---------------------------------------------------------------------------------


def _overview(output: Store, manifest: Manifest, names: list[str], candidates: int) -> str:
    created = manifest.created_unix
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "?"
    facts = _table(
        ["", ""],
        [
            ["output", output],
            ["created", when],
            ["curate version", manifest.curate_version],
            ["embedding model", manifest.embedding_model],
            ["inputs", manifest.inputs.discovered],
            ["candidate clips", candidates],
        ],
    )
    thresholds = manifest.thresholds
    tiers = _table(
        ["tier", "clips", "hours", "thresholds"],
        [
            [
                name,
                size.clips if (size := manifest.tiers.get(name)) else None,
                f"{size.hours if size else 0:.3f}",
                ", ".join(f"{k}={v:.4g}" for k, v in thresholds.get(name, {}).items()),
            ]
            for name in names
        ],
    )
    rejected = _table(["reject reason", "rows"], list(manifest.rejects.items()))
    return facts + tiers + rejected


def _funnel_steps(manifest: Manifest, names: list[str]) -> list[tuple[str, int, str]]:
    """(label, rows, phase) from inputs to each tier; a step the manifest lacks is left out."""
    stage = manifest.stage
    steps: list[tuple[str, int, str]] = []

    def add(label: str, value: object, phase: str) -> None:
        if isinstance(value, int):
            steps.append((label, value, phase))

    add("inputs", stage("discover").in_, "inputs")
    add("readable inputs", stage("probe").out, "inputs")
    add("shots", stage("analyze").get("shots"), "phase 1")
    remaining = stage("analyze").out
    add("candidate clips", remaining, "phase 1")
    loosest = manifest.thresholds.get(names[0], {}) if names else {}
    failed = stage("tiers").rejected
    # A clip that passes no tier is rejected by the first loosest-tier gate it fails, in
    # gate order: subtracting those in that order gives the clips left after each gate.
    for gate in all_gates():
        if gate.key in loosest and isinstance(remaining, int):
            remaining -= failed.get(gate.reason, 0)
            add(f"gate {gate.key}", remaining, "gates")
    add("after dedup", stage("dedup").out, "phase 2")
    add("after re-balancing", stage("rebalance").out, "phase 2")
    add("exported", stage("export").out, "phase 2")
    for name in names:
        size = manifest.tiers.get(name)
        add(f"tier {name}", size.clips if size else None, "tiers")
    return steps


def _funnel(manifest: Manifest, names: list[str]) -> str:
    steps = _funnel_steps(manifest, names)
    if not steps:
        return '<p class="muted">The manifest records no funnel.</p>'
    fig = Figure(figsize=(8, 0.35 * len(steps) + 0.8), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(steps))
    values = [v for _, v, _ in steps]
    ax.barh(y, values, color=[PHASE_COLOURS[p] for _, _, p in steps])
    ax.set_yticks(y, [_label(label) for label, _, _ in steps])
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.annotate(f"{v:,}", (v, i), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_xlim(0, max(values) * 1.15 or 1)
    ax.set_xlabel("rows")
    table = _table(["step", "rows"], [[label, f"{v:,}"] for label, v, _ in steps])
    return _png(fig, "funnel: inputs to tiers") + table


def _analysis_columns(data: ds.Dataset) -> pa.Table:
    """The scalar columns the report reads, and those the gates read (an output written
    before a signal existed lacks its columns)."""
    gated = [c for g in all_gates() for c in g.columns]
    wanted = dict.fromkeys([*ANALYSIS_COLUMNS, *gated])
    return data.to_table(columns=[c for c in wanted if c in data.schema.names])


def _histogram_specs(analysis: pa.Table) -> list[tuple[str, np.ndarray, list[str]]]:
    """(title, values, gate keys whose thresholds apply): gated scores first, grouped by what
    the gate measures, then every other score column."""
    specs: list[tuple[str, np.ndarray, list[str]]] = []
    present = set(analysis.column_names)
    # On/off gates have no distribution to draw.
    scored = [g for g in all_gates() if not g.flag and present.issuperset(g.columns)]
    for label in dict.fromkeys(g.label for g in scored):
        gates = [g for g in scored if g.label == label]
        specs.append((label, gates[0].column(analysis), [g.key for g in gates]))
    for column in SCORE_COLUMNS:
        if column not in {title for title, _, _ in specs}:
            values = analysis[column].to_numpy(zero_copy_only=False).astype(np.float64)
            specs.append((column, values, []))
    return specs


def _histograms(analysis: pa.Table, manifest: Manifest, names: list[str]) -> str:
    thresholds = manifest.thresholds
    passed = pc.is_valid(analysis["tier"]).to_numpy(zero_copy_only=False)
    figures, empty = [], []
    for title, values, keys in _histogram_specs(analysis):
        finite = np.isfinite(values)
        if not finite.any():
            empty.append(title)
            continue
        fig = Figure(figsize=(4.4, 2.9), layout="constrained")
        ax = fig.add_subplot()
        bins = np.histogram_bin_edges(values[finite], bins=40)
        ax.hist(
            [values[finite & passed], values[finite & ~passed]],
            bins=bins,
            stacked=True,
            color=["#4c9be8", "#f2a7a7"],
            label=["passed a tier", "passed none"],
        )
        for k, name in enumerate(names):
            for key in keys:
                value = thresholds.get(name, {}).get(key)
                if value is not None and np.isfinite(value):
                    ax.axvline(
                        value,
                        color=TIER_COLOURS[k % len(TIER_COLOURS)],
                        linestyle="--" if key.startswith("min") else ":",
                        label=_label(f"{name}: {key} {value:.3g}"),
                    )
        ax.set_title(_label(title), fontsize=10)
        ax.set_ylabel("clips")
        ax.legend(fontsize=7)
        figures.append(f'<figure class="histogram">{_png(fig, f"histogram of {title}")}</figure>')
    note = f'<p class="muted">No values for: {_e(", ".join(empty))}.</p>' if empty else ""
    return f'<div class="charts">{"".join(figures)}</div>{note}'


def _clusters(manifest: Manifest, examples: dict[int, list[dict]], thumbs: dict) -> str:
    rebalance = manifest.stage("rebalance")
    before = {int(k): v for k, v in (rebalance.get("clusters_before") or {}).items()}
    after = {int(k): v for k, v in (rebalance.get("clusters_after") or {}).items()}
    if not examples:
        return '<p class="muted">No concept clusters (re-balancing disabled or no clips).</p>'
    parts = [
        f"<p>Mode <b>{_e(rebalance.get('mode'))}</b>; sizes count the clips that passed "
        "the gates and dedup, before and after re-balancing.</p>"
    ]
    ids = sorted(before)
    if ids:
        fig = Figure(figsize=(min(14, 2 + 0.3 * len(ids)), 2.8), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(ids))
        ax.bar(x - 0.2, [before[c] for c in ids], 0.4, label="before", color="#9467bd")
        ax.bar(x + 0.2, [after.get(c, 0) for c in ids], 0.4, label="after", color="#2ca02c")
        ax.set_xticks(x, [str(c) for c in ids], fontsize=7)
        ax.set_xlabel("cluster")
        ax.set_ylabel("clips")
        ax.legend(fontsize=8)
        parts.append(_png(fig, "cluster sizes before and after re-balancing"))
    for cluster, rows in examples.items():
        parts.append(
            f"<h3>cluster {_e(cluster)}: {_e(before.get(cluster, 0))} before, "
            f"{_e(after.get(cluster, 0))} after re-balancing</h3>"
        )
        sheet = [
            _thumb(
                thumbs.get(r["clip_id"]),
                r["source"],
                [
                    _name(r["source"]),
                    f"dropped: {r['reason']}" if r["reason"] else f"kept, up to tier {r['tier']}",
                ],
                "dropped" if r["reason"] else "kept",
            )
            for r in rows
        ]
        parts.append(f'<div class="sheet">{"".join(sheet)}</div>')
    return "".join(parts)


def _caption(row: dict) -> str:
    text = row.get("prompt") or row.get("caption")
    if not text:
        return "(no caption)"
    return text if len(text) <= CAPTION_CHARS else text[: CAPTION_CHARS - 1] + "…"


def _contact_sheets(sheets: dict[str, dict]) -> str:
    parts = []
    for name, sheet in sheets.items():
        shown = len(sheet["rows"])
        parts.append(
            f"<h3>tier {_e(name)}: {_e(sheet['total'])} clips"
            f"{f', {shown} shown' if shown < sheet['total'] else ''}</h3>"
        )
        figures = [
            _thumb(
                r.get("thumbnail"),
                f"{r['source']}\n{r.get('prompt') or r.get('caption') or ''}",
                [
                    _name(r["source"]),
                    f"{_span(r)} · sharpness {r['sharpness']:.0f}"
                    if r.get("sharpness") is not None
                    else _span(r),
                    _caption(r),
                ],
            )
            for r in sheet["rows"]
        ]
        parts.append(f'<div class="sheet">{"".join(figures)}</div>' if figures else "")
    return "".join(parts) or '<p class="muted">No tiers.</p>'


def _rejects(rejects: pa.Table, examples: dict[str, list[dict]], thumbs: dict) -> str:
    if not examples:
        return '<p class="muted">Nothing was rejected.</p>'
    counts = Counter(rejects["reason"].to_pylist())
    parts = []
    for reason, rows in examples.items():
        stages = sorted({r["stage"] for r in rows})
        parts.append(
            f"<h3>{_e(reason)}: {_e(counts[reason])} rows "
            f'<span class="muted">(stage {_e(", ".join(stages))})</span></h3>'
        )
        # Clips with a thumbnail as pictures; whole inputs and windows that were never
        # analysed (too short) have none, so they are listed.
        pictured = [r for r in rows if thumbs.get(r["clip_id"])]
        figures = [
            _thumb(
                thumbs[r["clip_id"]],
                r["source"],
                [_name(r["source"]), _span(r), r["detail"] or ""],
                "dropped",
            )
            for r in pictured
        ]
        if figures:
            parts.append(f'<div class="sheet">{"".join(figures)}</div>')
        listed = [r for r in rows if not thumbs.get(r["clip_id"])]
        if listed:
            parts.append(
                _table(
                    ["file", "span", "stage", "detail"],
                    [
                        [_name(r["source"]), _span(r) or "whole input", r["stage"], r["detail"]]
                        for r in listed
                    ],
                )
            )
    return "".join(parts)


def _duplicates(groups: list[list[dict]], thumbs: dict) -> str:
    if not groups:
        return '<p class="muted">No duplicates were found.</p>'
    parts = []
    for group in groups:
        figures = []
        for i, member in enumerate(group):
            lines = [_name(member["source"]), "kept" if i == 0 else "duplicate"]
            if member["detail"]:
                lines.append(member["detail"])
            kind = "kept" if i == 0 else "dropped"
            figures.append(_thumb(thumbs.get(member["clip_id"]), member["source"], lines, kind))
        parts.append(f'<div class="group">{"".join(figures)}</div>')
    return "".join(parts)

"""``curate report``: one self-contained HTML page that shows what a run kept, dropped and why.

The funnel of inputs and, per tier, of clips; each tier's gates; a histogram per score with
every tier's thresholds; the concept clusters before and after re-balancing; a contact sheet
per tier; rejected examples per reason and the duplicate groups. Charts are matplotlib PNGs
and thumbnails the JPEGs of ``analysis``, both embedded as data URIs, so the file can be
mailed or archived alone. Exported clips (``export.mode: files``) of a local output play in
the contact sheets, linked relative to the page.

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
import re
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from curate.contract import ALL_GATES, SCORE_COLUMNS
from curate.manifest import Manifest, open_output
from curate.storage import Store
from curate.summary import dataset, spread, unreadable

CSP = "default-src 'none'; img-src data:; media-src 'self'; style-src 'unsafe-inline'"
"""No scripts, no network: images only from data URIs, videos only from the page's own
origin (the exported clips next to it), styles only inline."""

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

CLIP_COLUMNS = ["clip_id", "source", "start_s", "end_s"]
"""What names a clip: its id, and its file and span for people."""

SHEET_COLUMNS = [*CLIP_COLUMNS, "sharpness", "caption", "prompt", "clip_path"]
"""Columns of a tier's contact sheet, besides the thumbnail."""

MAX_CLUSTERS = 64
"""Clusters shown in the gallery (the largest), so a k=256 run stays readable."""

CAPTION_CHARS = 200
"""Captions are cut to this length under a thumbnail (the full text is in the tooltip)."""

UNREADABLE = frozenset({"unreadable", "no_video_stream", "decode_error", "timeout"})
"""Input reject reasons that mean the file could not be read; the others (too short, too
long, too small) are about a file that was read."""

CLIP_STEPS = (
    ("dedup", "after dedup"),
    ("rebalance", "after re-balancing"),
    ("caption", "captioned"),
    ("export", "exported"),
)
"""Phase 2 and 3 steps after the gates: (stage, funnel label); each removes its rejects."""

REACH = 0.25
"""A threshold within this share of the data's span beyond the data widens the axis to show
it; one further out is named at the axis edge instead, so the data keep the width."""

CLIP_ID = re.compile(r"\b[0-9a-f]{16}\b")
"""A ``clip_id`` (``schema.clip_id``) inside a reject detail: a duplicate names the clip it
copies."""

SPAN = re.compile(r"\d+\.\d–\d+\.\d s")
"""A clip span as :func:`_span` writes it: kept on one line under a thumbnail."""

DOTTED = re.compile(r"\.(?=[A-Za-z_])")
"""A dot inside a config key or file name (``default.gates.max_text``, ``a.mp4``)."""

WIDE = 28
"""Characters that fill a thumbnail's width: a longer word (``default.gates.max_text=0.04``)
may break at its dots rather than between any two letters."""

TIER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
GREY = "#7f7f7f"

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
figure.thumb { margin: 0; width: 176px; font-size: 11px; overflow-wrap: break-word; }
figure.thumb img { width: 176px; height: 112px; object-fit: cover; display: block; }
figure.thumb video { width: 176px; height: 112px; background: #000; display: block; }
.noimg { width: 176px; height: 112px; background: #eee; color: #888; display: flex;
  align-items: center; justify-content: center; }
.kept img { outline: 3px solid #2ca02c; } .dropped img { outline: 3px solid #d62728; }
.group { display: flex; gap: 6px; margin: 6px 0; padding: 6px; background: #f6f6f6; }
.muted { color: #777; } .nowrap { white-space: nowrap; }
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
    if target is None:
        page_dir = store.local_path() if store.local else None
        page = render_report(store, examples=examples, page_dir=page_dir)
        store.write_bytes(REPORT, page.encode("utf-8"))
        return store.display(REPORT)
    path = Path(target)
    page = render_report(store, examples=examples, page_dir=path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


def render_report(
    output: Store | str | os.PathLike,
    *,
    examples: int = 12,
    page_dir: str | os.PathLike | None = None,
) -> str:
    """The whole page, as text. ``page_dir`` is the local folder the page will be saved in:
    the contact sheets then play the exported clips of a local output, linked relative to
    it; without it they show thumbnails."""
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
        details = [r["detail"] for rows in reject_examples.values() for r in rows]
        details += [r["detail"] for group in duplicates for r in group]
        named = _clip_names(analysis, details)
        media = _media_links(store, sheets, page_dir)
    except (pa.ArrowInvalid, KeyError, OSError) as e:
        raise unreadable(store, e) from e
    exported = any(r.get("clip_path") for sheet in sheets.values() for r in sheet["rows"])
    # A page on this machine cannot reach clips in object storage.
    remote = exported and not store.local
    sections = [
        ("overview", "Overview", _overview(store, manifest, names, analysis.num_rows)),
        ("funnel", "Funnel", _funnel(manifest, names, analysis, rejects)),
        ("scores", "Scores and thresholds", _histograms(analysis, manifest, names)),
        ("clusters", "Concept clusters", _clusters(manifest, clusters, thumbs)),
        ("tiers", "Contact sheets", _contact_sheets(sheets, media, remote)),
        ("rejects", "Rejected examples", _rejects(rejects, reject_examples, thumbs, named)),
        ("duplicates", "Duplicate groups", _duplicates(duplicates, thumbs, named)),
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


def _value(value: object) -> str:
    """A value as a person reads it: on/off for booleans, whole numbers without a point."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "on" if value else "off"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def _count_axis(axis: Axis) -> None:
    """Counts have whole-number ticks only."""
    axis.set_major_locator(MaxNLocator(integer=True))


def _jpeg(image: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")


def _thumb(
    image: bytes | None,
    title: str | None,
    lines: list[str],
    kind: str = "",
    video: str | None = None,
) -> str:
    """A figure with a thumbnail, or with the exported clip ``video`` (a URL) and the
    thumbnail as its poster, and ``lines`` of text under it."""
    alt = _e(lines[0] if lines else "")
    if video:
        poster = f' poster="{_jpeg(image)}"' if image else ""
        media = (
            f'<video controls preload="metadata" src="{_e(video)}"{poster} '
            f'aria-label="{alt}"></video>'
        )
    elif image:
        media = f'<img src="{_jpeg(image)}" alt="{alt}">'
    else:
        media = '<div class="noimg">no thumbnail</div>'
    text = "<br>".join(_caption_line(line) for line in lines)
    return (
        f'<figure class="thumb {kind}" title="{_e(title or "")}">{media}'
        f"<figcaption>{text}</figcaption></figure>"
    )


def _caption_line(line: str) -> str:
    """A line under a thumbnail as HTML: spans unbroken, over-wide words broken at dots."""
    words = [
        DOTTED.sub(".<wbr>", _e(word)) if len(word) > WIDE else _e(word) for word in line.split(" ")
    ]
    return SPAN.sub(lambda m: f'<span class="nowrap">{m[0]}</span>', " ".join(words))


def _name(source: str | None) -> str:
    return os.path.basename(source or "") or str(source)


def _span(row: dict) -> str:
    if row.get("start_s") is None or row.get("end_s") is None:
        return ""
    return f"{row['start_s']:.1f}–{row['end_s']:.1f} s"


def _clip(row: dict) -> str:
    """A clip as a person finds it: its file and span."""
    return " ".join(part for part in (_name(row.get("source")), _span(row)) if part)


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e('' if c is None else c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
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
    rows = analysis.select([*CLIP_COLUMNS, "cluster_id", "tier"]).to_pylist()
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
    for row in found.select([*CLIP_COLUMNS, "duplicate_of"]).to_pylist():
        row["detail"] = detail.get(row["clip_id"])
        groups[row.pop("duplicate_of")].append(row)
    shown = sorted(groups)[:n]
    kept = analysis.filter(pc.is_in(analysis["clip_id"], pa.array(shown, pa.string())))
    by_id = {r["clip_id"]: r for r in kept.select(CLIP_COLUMNS).to_pylist()}
    return [
        [{**by_id.get(k, {"clip_id": k, "source": None}), "detail": None}, *groups[k]]
        for k in shown
    ]


def _clip_names(analysis: pa.Table, details: list[str | None]) -> dict[str, str]:
    """File and span of every clip a reject detail names by its id."""
    ids = {m for d in details if d for m in CLIP_ID.findall(d)}
    if not ids:
        return {}
    found = analysis.filter(pc.is_in(analysis["clip_id"], pa.array(sorted(ids), pa.string())))
    return {r["clip_id"]: _clip(r) for r in found.select(CLIP_COLUMNS).to_pylist()}


def _readable(detail: str | None, named: dict[str, str]) -> str:
    """A reject detail with the clips it names by id named by file and span."""
    return CLIP_ID.sub(lambda m: named.get(m[0], m[0]), detail or "")


def _thumbnails(analysis: ds.Dataset, ids: set[str]) -> dict[str, bytes | None]:
    if not ids:
        return {}
    table = analysis.to_table(
        columns=["clip_id", "thumbnail"], filter=pc.field("clip_id").isin(sorted(ids))
    )
    return dict(zip(table["clip_id"].to_pylist(), table["thumbnail"].to_pylist()))


def _media_links(
    store: Store, sheets: dict[str, dict], page_dir: str | os.PathLike | None
) -> dict[str, str]:
    """``{clip_path: URL relative to the page}`` for the shown exported clips that exist."""
    if page_dir is None or not store.local:
        return {}
    base = Path(page_dir).resolve()
    links = {}
    for sheet in sheets.values():
        for row in sheet["rows"]:
            rel = row.get("clip_path")
            if not rel or rel in links or not store.is_file(rel):
                continue
            path = store.local_path(rel).resolve()
            try:
                links[rel] = urllib.parse.quote(Path(os.path.relpath(path, base)).as_posix())
            except ValueError:  # another drive: no relative path exists
                links[rel] = path.as_uri()
    return links


# Sections ---------------------------------------------------------------------------------


def _thresholds(manifest: Manifest, name: str) -> dict[str, str]:
    """A tier's thresholds as shown: percentile gates as configured with their value."""
    percentiles = manifest.percentile_gates(name)
    return {
        key: f"{percentiles[key]} ({_value(value)})" if key in percentiles else _value(value)
        for key, value in manifest.thresholds.get(name, {}).items()
    }


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
            ["inputs", _value(manifest.inputs.discovered)],
            ["candidate clips", _value(candidates)],
        ],
    )
    tiers = _table(
        ["tier", "clips", "hours", "thresholds"],
        [
            [
                name,
                _value(size.clips) if (size := manifest.tiers.get(name)) else None,
                f"{size.hours if size else 0:.3f}",
                ", ".join(f"{k}={v}" for k, v in _thresholds(manifest, name).items()),
            ]
            for name in names
        ],
    )
    rejected = _table(
        ["reject reason", "rows"], [[k, _value(v)] for k, v in manifest.rejects.items()]
    )
    return facts + tiers + rejected


def _input_funnel(
    manifest: Manifest, analysis: pa.Table, rejects: pa.Table
) -> list[tuple[str, int, Counter]]:
    """(step, inputs, rejects by reason since the step before) from the discovered inputs to
    those that yielded a clip. An input is rejected as a whole with a null ``clip_id``."""
    whole = rejects.filter(pc.is_null(rejects["clip_id"]))["reason"].to_pylist()
    lost = Counter(r for r in whole if r in UNREADABLE)
    short = Counter(r for r in whole if r not in UNREADABLE)
    with_clips = pc.count_distinct(analysis["source"]).as_py()
    discovered = manifest.inputs.discovered
    if discovered is None:
        discovered = manifest.stage("discover").in_
    if discovered is None:
        discovered = with_clips + len(whole)
    readable = discovered - lost.total()
    return [
        ("discovered", discovered, Counter()),
        ("readable", readable, lost),
        ("yielded ≥ 1 clip", with_clips, short),
    ]


def _clip_funnel(
    manifest: Manifest, names: list[str], analysis: pa.Table, rejects: pa.Table
) -> list[tuple[str, list[int]]]:
    """(step, clips of each tier) from the gates to the tier folders: the clips that passed
    a tier's gates, less those each later step rejected. A step the run did not record, or
    ran switched off, is left out."""
    rank = {name: k for k, name in enumerate(names)}
    strictest = np.array([rank.get(t, -1) for t in analysis["tier"].to_pylist()], np.int64)
    alive = np.ones(analysis.num_rows, bool)
    steps = [("passed gates", [int((strictest >= k).sum()) for k in range(len(names))])]
    for stage, label in CLIP_STEPS:
        entry = manifest.stage(stage)
        if entry.in_ is None or entry.get("enabled") is False:
            continue
        dropped = pc.drop_null(rejects.filter(pc.equal(rejects["stage"], stage))["clip_id"])
        gone = pc.is_in(analysis["clip_id"], value_set=dropped.combine_chunks())
        alive &= ~gone.to_numpy(zero_copy_only=False)
        steps.append((label, [int(((strictest >= k) & alive).sum()) for k in range(len(names))]))
    return steps


def _bars(rows: list[tuple[str, list[tuple[int, str]]]], unit: str, legend: list[str]) -> Figure:
    """A horizontal bar chart, one group of bars per step, each bar (count, colour); the
    ``legend`` names the colours of ``TIER_COLOURS`` in order."""
    fig = Figure(figsize=(8, 1.0), layout="constrained")
    ax = fig.add_subplot()
    position, ticks = 0.0, []
    for _, bars in rows:
        ys = position + np.arange(len(bars))
        for y, (count, colour) in zip(ys, bars):
            ax.barh(y, count, 0.85, color=colour)
            ax.annotate(
                f"{count:,}", (count, y), xytext=(4, 0), textcoords="offset points", va="center"
            )
        ticks.append(ys.mean())
        position += len(bars) + 0.5
    fig.set_figheight(0.7 + 0.24 * position + (0.3 if legend else 0))
    ax.set_yticks(ticks, [_label(label) for label, _ in rows])
    ax.invert_yaxis()
    top = max((c for _, bars in rows for c, _ in bars), default=0)
    ax.set_xlim(0, top * 1.15 or 1)
    _count_axis(ax.xaxis)
    ax.set_xlabel(unit)
    if legend:
        handles = [
            Patch(color=TIER_COLOURS[k % len(TIER_COLOURS)], label=_label(f"tier {name}"))
            for k, name in enumerate(legend)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def _reasons(counts: Counter) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items())) or "–"


def _funnel(manifest: Manifest, names: list[str], analysis: pa.Table, rejects: pa.Table) -> str:
    inputs = _input_funnel(manifest, analysis, rejects)
    parts = [
        "<h3>Inputs</h3>",
        _png(
            _bars([(label, [(n, GREY)]) for label, n, _ in inputs], "input files", []),
            "inputs funnel: discovered, readable, yielded clips",
        ),
        _table(
            ["step", "inputs", "rejected on the way"],
            [
                [label, f"{n:,}", _reasons(lost) if i else ""]
                for i, (label, n, lost) in enumerate(inputs)
            ],
        ),
    ]
    analyze = manifest.stage("analyze")
    windows = rejects.filter(
        pc.and_(pc.equal(rejects["stage"], "analyze"), pc.is_valid(rejects["clip_id"]))
    )
    shots = analyze.get("shots")
    probed = f"The {analyze.in_:,} inputs that passed the probe" if analyze.in_ else "Inputs"
    shots_text = f"had {shots:,} shots, which gave" if isinstance(shots, int) else "gave"
    windows_text = (
        f"{windows.num_rows:,} clip windows were rejected "
        f"({_reasons(Counter(windows['reason'].to_pylist()))})"
        if windows.num_rows
        else "no clip window was rejected"
    )
    parts.append(
        f"<p>{probed} {shots_text} {analysis.num_rows:,} candidate clips; {_e(windows_text)}.</p>"
    )
    steps = _clip_funnel(manifest, names, analysis, rejects)
    colours = [TIER_COLOURS[k % len(TIER_COLOURS)] for k in range(len(names))]
    rows = [("candidate clips", [(analysis.num_rows, GREY)])]
    rows += [(label, list(zip(counts, colours))) for label, counts in steps]
    parts += [
        "<h3>Clips, per tier</h3>",
        '<p class="muted">Tiers are nested: a clip in a stricter tier is in every looser one. '
        "Dedup, re-balancing, captions and export run once, on the clips of the loosest "
        "tier; each bar counts the clips of its tier still in.</p>",
        _png(_bars(rows, "clips", names), "clips funnel per tier: gates to tier folders"),
    ]
    sizes = [manifest.tiers.get(name) for name in names]
    table = [["candidate clips", *[f"{analysis.num_rows:,}"] * len(names)]]
    table += [[label, *[f"{c:,}" for c in counts]] for label, counts in steps]
    table.append(["in the tier folder", *[_value(s.clips) if s else None for s in sizes]])
    table.append(["hours", *[f"{s.hours:.3f}" if s else None for s in sizes]])
    parts.append(_table(["clips", *[f"tier {name}" for name in names]], table))
    parts.append(_gates(manifest, names, analysis.num_rows))
    return "".join(parts)


def _gates(manifest: Manifest, names: list[str], candidates: int) -> str:
    """Each tier's gates: threshold and, where the run counted them, the candidate clips
    failing it."""
    failures = manifest.stage("tiers").get("gate_failures") or {}
    shown = {name: _thresholds(manifest, name) for name in names}
    keys = [g.key for g in ALL_GATES if any(g.key in t for t in shown.values())]
    if not keys:
        return ""
    header = ["gate"]
    for name in names:
        header += [f"tier {name}: threshold"] + ([f"tier {name}: failing"] if failures else [])
    rows = []
    for key in keys:
        row: list[object] = [f"gate {key}"]
        for name in names:
            row.append(shown[name].get(key, "–"))
            if failures:
                failing = (failures.get(name) or {}).get(key)
                row.append("–" if failing is None else _value(failing))
        rows.append(row)
    counted = (
        f"<p class='muted'>Clips of the {candidates:,} candidates that fail each gate of each "
        "tier (a clip may fail several).</p>"
        if failures
        else ""
    )
    return f"<h3>Gates, per tier</h3>{counted}{_table(header, rows)}"


def _analysis_columns(data: ds.Dataset) -> pa.Table:
    """The scalar columns the report reads, and those the gates read (an output written
    before a signal existed lacks its columns)."""
    gated = [c for g in ALL_GATES for c in g.columns]
    wanted = dict.fromkeys([*ANALYSIS_COLUMNS, *gated])
    return data.to_table(columns=[c for c in wanted if c in data.schema.names])


def _histogram_specs(analysis: pa.Table) -> list[tuple[str, np.ndarray, list[str]]]:
    """(title, values, gate keys whose thresholds apply): gated scores first, grouped by what
    the gate measures, then every other score column."""
    specs: list[tuple[str, np.ndarray, list[str]]] = []
    present = set(analysis.column_names)
    # On/off gates have no distribution to draw.
    scored = [g for g in ALL_GATES if not g.flag and present.issuperset(g.columns)]
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
    constant: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for title, values, keys in _histogram_specs(analysis):
        finite = np.isfinite(values)
        if not finite.any():
            empty.append(title)
            continue
        marks = [
            (name, key, float(value), TIER_COLOURS[k % len(TIER_COLOURS)])
            for k, name in enumerate(names)
            for key in keys
            if (value := thresholds.get(name, {}).get(key)) is not None and np.isfinite(value)
        ]
        low, high = values[finite].min(), values[finite].max()
        if low == high:
            # One value says all a chart would; its thresholds are in the gate table.
            missing = int((~finite).sum())
            constant[(_value(float(low)), int(finite.sum()), missing)].append(title)
            continue
        fig = _histogram(title, values[finite], passed[finite], marks)
        figures.append(f'<figure class="histogram">{_png(fig, f"histogram of {title}")}</figure>')
    lines = [
        f"{', '.join(titles)}: all {value} over {n:,} clips"
        + (f" ({missing:,} without a value)" if missing else "")
        for (value, n, missing), titles in constant.items()
    ]
    notes = "".join(f'<p class="constant">{_e(line)}</p>' for line in lines)
    if empty:
        notes += f'<p class="muted">No values for: {_e(", ".join(empty))}.</p>'
    return (
        "<p class='muted'>Dashed lines: a tier's minimum, dotted: its maximum; a threshold far "
        f'from the data is named at the edge it lies beyond.</p><div class="charts">'
        f"{''.join(figures)}</div>{notes}"
    )


def _bin_edges(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bin edges, and whether they are one per whole number (small counts such as faces:
    0, 1, 2), else 40 bins."""
    low, high = values.min(), values.max()
    if np.all(values == np.round(values)) and high - low <= 40:
        return np.arange(low - 0.5, high + 1.0), True
    return np.histogram_bin_edges(values, bins=40), False


def _histogram(
    title: str,
    values: np.ndarray,
    passed: np.ndarray,
    marks: list[tuple[str, str, float, str]],
) -> Figure:
    """The distribution of ``values`` (finite), split by whether a clip passed a tier, with
    the thresholds ``marks`` (tier, gate key, value, colour): the axis fits the data and the
    thresholds near them; those further out are named at the edge."""
    fig = Figure(figsize=(4.4, 3.1), layout="constrained")
    ax = fig.add_subplot()
    bins, whole = _bin_edges(values)
    series = [
        (part, colour, label)
        for part, colour, label in (
            (values[passed], "#4c9be8", "passed a tier"),
            (values[~passed], "#f2a7a7", "passed none"),
        )
        if part.size
    ]
    ax.hist(
        [part for part, _, _ in series],
        bins=bins,
        stacked=True,
        # Separate bars for whole numbers: they are counts, not a continuum.
        rwidth=0.8 if whole else None,
        color=[colour for _, colour, _ in series],
        label=[label for _, _, label in series],
    )
    low, high = bins[0], bins[-1]
    reach = REACH * (high - low)
    near = [v for _, _, v, _ in marks if low - reach <= v <= high + reach]
    left, right = min([low, *near]), max([high, *near])
    pad = 0.02 * (right - left)
    left, right = left - pad, right + pad
    beyond: dict[str, list[tuple[str, str]]] = {"left": [], "right": []}
    for tier, key, value, colour in marks:
        text = f"{tier}: {key} {_value(value)}"
        if value < left:
            beyond["left"].append((f"← {text}", colour))
        elif value > right:
            beyond["right"].append((f"{text} →", colour))
        else:
            style = "--" if key.startswith("min") else ":"
            ax.axvline(value, color=colour, linestyle=style, label=_label(text))
    ax.set_xlim(left, right)
    if whole:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _count_axis(ax.yaxis)
    tallest = np.histogram(values, bins=bins)[0].max()
    notes = max(len(beyond["left"]), len(beyond["right"]))
    # Headroom above the bars for the notes of thresholds beyond the axis.
    ax.set_ylim(0, tallest * (1.05 + 0.12 * notes))
    for side, x, align in (("left", 0.02, "left"), ("right", 0.98, "right")):
        for i, (text, colour) in enumerate(beyond[side]):
            ax.text(
                x,
                0.97 - 0.1 * i,
                _label(text),
                transform=ax.transAxes,
                ha=align,
                va="top",
                color=colour,
                fontsize=8,
                fontweight="bold",
            )
    ax.set_title(_label(title), fontsize=10)
    ax.set_ylabel("clips")
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return fig


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
        fig = Figure(figsize=(min(15, 3 + 0.3 * len(ids)), 2.8), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(ids))
        ax.bar(x - 0.2, [before[c] for c in ids], 0.4, label="before", color="#9467bd")
        ax.bar(x + 0.2, [after.get(c, 0) for c in ids], 0.4, label="after", color="#2ca02c")
        ax.set_xticks(x, [str(c) for c in ids], fontsize=7)
        _count_axis(ax.yaxis)
        ax.set_xlabel("cluster")
        ax.set_ylabel("clips")
        # Beside the axes: inside, it would hide the bars of the last clusters.
        fig.legend(loc="outside right upper", fontsize=8)
        parts.append(_png(fig, "cluster sizes before and after re-balancing"))
    for cluster, rows in examples.items():
        parts.append(
            f"<h3>cluster {_e(cluster)}: {_e(before.get(cluster, 0))} before, "
            f"{_e(after.get(cluster, 0))} after re-balancing</h3>"
        )
        sheet = [
            _thumb(
                thumbs.get(r["clip_id"]),
                f"{r['source']} {_span(r)}",
                [
                    _name(r["source"]),
                    _span(r),
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


def _contact_sheets(sheets: dict[str, dict], media: dict[str, str], remote: bool) -> str:
    """A sheet per tier; the exported clips in ``media`` play in place of their thumbnail."""
    parts = []
    if remote:
        parts.append(
            '<p class="muted">The exported clips are in object storage, out of this '
            "page's reach: thumbnails are shown.</p>"
        )
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
                video=media.get(r.get("clip_path") or ""),
            )
            for r in sheet["rows"]
        ]
        parts.append(f'<div class="sheet">{"".join(figures)}</div>' if figures else "")
    return "".join(parts) or '<p class="muted">No tiers.</p>'


def _rejects(
    rejects: pa.Table, examples: dict[str, list[dict]], thumbs: dict, named: dict[str, str]
) -> str:
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
                [_name(r["source"]), _span(r), _readable(r["detail"], named)],
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
                        [
                            _name(r["source"]),
                            _span(r) or "whole input",
                            r["stage"],
                            _readable(r["detail"], named),
                        ]
                        for r in listed
                    ],
                )
            )
    return "".join(parts)


def _duplicates(groups: list[list[dict]], thumbs: dict, named: dict[str, str]) -> str:
    if not groups:
        return '<p class="muted">No duplicates were found.</p>'
    parts = []
    for group in groups:
        kept = _clip(group[0])
        figures = []
        for i, member in enumerate(group):
            # The detail names the kept clip (by id, shown by file and span) and the cosine.
            verdict = _readable(member["detail"], named) or f"duplicate of {kept}"
            lines = [_name(member["source"]), _span(member), "kept" if i == 0 else verdict]
            kind = "kept" if i == 0 else "dropped"
            title = f"{member['source']} {_span(member)}"
            figures.append(_thumb(thumbs.get(member["clip_id"]), title, lines, kind))
        parts.append(f'<div class="group">{"".join(figures)}</div>')
    return "".join(parts)

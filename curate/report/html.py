"""The report's page: its sections as HTML, assembled into one self-contained document.

Everything that comes from the data (file names, captions, details, tier names) goes through
``html.escape``, and a Content-Security-Policy forbids scripts, so a caption such as
``<script>`` shows as text and runs nothing.
"""

from __future__ import annotations

import base64
import html
import os
import posixpath
import re
import time
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure

from curate import schema
from curate.contract import ALL_GATES
from curate.output.record import Manifest, open_output
from curate.report.charts import GREY, TIER_COLOURS, bars, cluster_sizes, histogram, png_uri
from curate.report.labels import clip_text, file_name, span_text, value_text
from curate.report.selection import (
    PageData,
    clip_funnel,
    histogram_specs,
    input_funnel,
    read_page_data,
    readable_detail,
)
from curate.storage import Store

CSP = "default-src 'none'; img-src data:; media-src 'self'; style-src 'unsafe-inline'"
"""No scripts, no network: images only from data URIs, videos only from the page's own
origin (the exported clips next to it), styles only inline."""

CAPTION_CHARS = 200
"""Captions are cut to this length under a thumbnail (the full text is in the tooltip)."""

SPAN = re.compile(r"\d+\.\d–\d+\.\d s")
"""A clip span as :func:`span_text` writes it: kept on one line under a thumbnail."""

DOTTED = re.compile(r"\.(?=[A-Za-z_])")
"""A dot inside a config key or file name (``default.gates.max_text``, ``a.mp4``)."""

WIDE = 28
"""Characters that fill a thumbnail's width: a longer word (``default.gates.max_text=0.04``)
may break at its dots rather than between any two letters."""

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
.sheet.images figure.thumb { width: 216px; }
.sheet.images figure.thumb img { width: 216px; height: 216px; object-fit: contain;
  background: #f3f3f3; }
.noimg { width: 176px; height: 112px; background: #eee; color: #888; display: flex;
  align-items: center; justify-content: center; }
.kept img { outline: 3px solid #2ca02c; } .dropped img { outline: 3px solid #d62728; }
.group { display: flex; gap: 6px; margin: 6px 0; padding: 6px; background: #f6f6f6; }
figure.match { margin: 0 0 0 12px; font-size: 11px; }
figure.match img { height: 112px; display: block; }
.muted { color: #777; } .nowrap { white-space: nowrap; }
"""


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
    data = read_page_data(store, manifest, examples=examples, page_dir=page_dir)
    sections = _sections(store, manifest, names, data)
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


def _sections(
    store: Store, manifest: Manifest, names: list[str], data: PageData
) -> list[tuple[str, str, str]]:
    """(anchor, title, HTML) of each section, in page order."""
    analysis, rejects, thumbs, named = data.analysis, data.rejects, data.thumbs, data.named
    exported = any(r.get("clip_path") for sheet in data.sheets.values() for r in sheet["rows"])
    # A page on this machine cannot reach clips in object storage.
    remote = exported and not store.local
    return [
        ("overview", "Overview", _overview(store, manifest, names, analysis.num_rows)),
        ("funnel", "Funnel", _funnel(manifest, names, analysis, rejects)),
        ("scores", "Scores and thresholds", _histograms(analysis, manifest, names)),
        ("clusters", "Concept clusters", _clusters(manifest, data.clusters, thumbs)),
        ("tiers", "Contact sheets", _contact_sheets(data.sheets, data.media, remote)),
        ("rejects", "Rejected examples", _rejects(rejects, data.reject_examples, thumbs, named)),
        (
            "duplicates",
            "Duplicate groups",
            _duplicates(data.duplicates, data.matches, thumbs, named),
        ),
    ]


# Helpers ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escape anything shown in the page, attribute-safe."""
    return html.escape(str(value), quote=True)


def _chart(fig: Figure, alt: str) -> str:
    """A chart as an image carried inside the page."""
    return f'<img class="chart" alt="{_e(alt)}" src="{png_uri(fig)}">'


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


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e('' if c is None else c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# Sections ---------------------------------------------------------------------------------


def _thresholds(manifest: Manifest, name: str) -> dict[str, str]:
    """A tier's thresholds as shown: percentile gates as configured with their value."""
    percentiles = manifest.percentile_gates(name)
    return {
        key: f"{percentiles[key]} ({value_text(value)})"
        if key in percentiles
        else value_text(value)
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
            ["inputs", value_text(manifest.inputs.discovered)],
            ["candidate clips", value_text(candidates)],
        ],
    )
    tiers = _table(
        ["tier", "clips or images", "hours", "thresholds", "holds"],
        [
            [
                name,
                value_text(size.clips) if (size := manifest.tiers.get(name)) else None,
                f"{size.hours if size else 0:.3f}",
                ", ".join(f"{k}={v}" for k, v in _thresholds(manifest, name).items()),
                "images" if manifest.tier_media(name) == "image" else "clips",
            ]
            for name in names
        ],
    )
    rejected = _table(
        ["reject reason", "rows"], [[k, value_text(v)] for k, v in manifest.rejects.items()]
    )
    return facts + tiers + rejected


def _reasons(counts: Counter) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items())) or "–"


def _funnel(manifest: Manifest, names: list[str], analysis: pa.Table, rejects: pa.Table) -> str:
    inputs = input_funnel(manifest, analysis, rejects)
    parts = [
        "<h3>Inputs</h3>",
        _chart(
            bars([(label, [(n, GREY)]) for label, n, _ in inputs], "input files", []),
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
    media = schema.row_media(analysis)
    images = int((media == "image").sum())
    candidates = f"{analysis.num_rows - images:,} candidate clips"
    if images:
        candidates += f" and {images:,} images"
    parts.append(f"<p>{probed} {shots_text} {candidates}; {_e(windows_text)}.</p>")
    steps = clip_funnel(manifest, names, analysis, rejects)
    for kind, heading, note in TIER_FUNNELS:
        chosen = [k for k, name in enumerate(names) if manifest.tier_media(name) == kind]
        if chosen:
            parts.append(heading)
            parts.append(note)
            parts += _tier_funnel(manifest, names, chosen, steps, int((media == kind).sum()), kind)
    parts.append(_gates(manifest, names, analysis.num_rows))
    return "".join(parts)


TIER_FUNNELS = (
    (
        "video",
        "<h3>Clips, per tier</h3>",
        '<p class="muted">Tiers are nested: a clip in a stricter tier is in every looser one. '
        "Dedup, re-balancing, captions and export run once, on the clips of the loosest "
        "tier; each bar counts the clips of its tier still in.</p>",
    ),
    (
        "image",
        "<h3>Images, per tier</h3>",
        '<p class="muted">Image tiers nest among themselves, as video tiers do; images are '
        "deduplicated and re-balanced among images.</p>",
    ),
)
"""The funnel of each kind of tier: (media, heading, note)."""


def _tier_funnel(
    manifest: Manifest,
    names: list[str],
    chosen: list[int],
    steps: list[tuple[str, list[int]]],
    candidates: int,
    media: str,
) -> list[str]:
    """The chart and table of the tiers ``chosen`` (indices into ``names``), all of one
    ``media``, from its ``candidates`` to the tier folders."""
    unit = "images" if media == "image" else "clips"
    shown = [names[k] for k in chosen]
    colours = [TIER_COLOURS[k % len(TIER_COLOURS)] for k in range(len(chosen))]
    rows = [(f"candidate {unit}", [(candidates, GREY)])]
    rows += [(label, list(zip([counts[k] for k in chosen], colours))) for label, counts in steps]
    sizes = [manifest.tiers.get(name) for name in shown]
    table = [[f"candidate {unit}", *[f"{candidates:,}"] * len(shown)]]
    table += [[label, *[f"{counts[k]:,}" for k in chosen]] for label, counts in steps]
    table.append(["in the tier folder", *[value_text(s.clips) if s else None for s in sizes]])
    if media == "video":
        table.append(["hours", *[f"{s.hours:.3f}" if s else None for s in sizes]])
    return [
        _chart(bars(rows, unit, shown), f"{unit} funnel per tier: gates to tier folders"),
        _table([unit, *[f"tier {name}" for name in shown]], table),
    ]


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
                row.append("–" if failing is None else value_text(failing))
        rows.append(row)
    counted = (
        f"<p class='muted'>Clips of the {candidates:,} candidates that fail each gate of each "
        "tier (a clip may fail several).</p>"
        if failures
        else ""
    )
    return f"<h3>Gates, per tier</h3>{counted}{_table(header, rows)}"


def _histograms(analysis: pa.Table, manifest: Manifest, names: list[str]) -> str:
    thresholds = manifest.thresholds
    passed = pc.is_valid(analysis["tier"]).to_numpy(zero_copy_only=False)
    figures, empty = [], []
    constant: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for title, values, keys in histogram_specs(analysis, manifest.scores):
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
            constant[(value_text(float(low)), int(finite.sum()), missing)].append(title)
            continue
        fig = histogram(title, values[finite], passed[finite], marks)
        figures.append(f'<figure class="histogram">{_chart(fig, f"histogram of {title}")}</figure>')
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
    if before:
        fig = cluster_sizes(before, after)
        parts.append(_chart(fig, "cluster sizes before and after re-balancing"))
    for cluster, rows in examples.items():
        parts.append(
            f"<h3>cluster {_e(cluster)}: {_e(before.get(cluster, 0))} before, "
            f"{_e(after.get(cluster, 0))} after re-balancing</h3>"
        )
        sheet = [
            _thumb(
                thumbs.get(r["clip_id"]),
                f"{r['source']} {span_text(r)}",
                [
                    file_name(r["source"]),
                    span_text(r),
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
        image = sheet.get("media") == "image"
        unit = "images" if image else "clips"
        parts.append(
            f"<h3>tier {_e(name)}: {_e(sheet['total'])} {unit}"
            f"{f', {shown} shown' if shown < sheet['total'] else ''}</h3>"
        )
        figures = [
            _thumb(
                r.get("thumbnail"),
                f"{r['source']}\n{r.get('prompt') or r.get('caption') or ''}",
                [file_name(r["source"]), _sheet_facts(r, image), _caption(r)],
                video=media.get(r.get("clip_path") or ""),
            )
            for r in sheet["rows"]
        ]
        kind = "sheet images" if image else "sheet"
        parts.append(f'<div class="{kind}">{"".join(figures)}</div>' if figures else "")
    return "".join(parts) or '<p class="muted">No tiers.</p>'


def _sheet_facts(row: dict, image: bool) -> str:
    """The line under a contact sheet's picture: a clip's span, an image's size, and the
    sharpness."""
    where = f"{row.get('width')}×{row.get('height')}" if image else span_text(row)
    if row.get("sharpness") is None:
        return where
    return f"{where} · sharpness {row['sharpness']:.0f}"


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
                [file_name(r["source"]), span_text(r), readable_detail(r["detail"], named)],
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
                            file_name(r["source"]),
                            span_text(r) or "whole input",
                            r["stage"],
                            readable_detail(r["detail"], named),
                        ]
                        for r in listed
                    ],
                )
            )
    return "".join(parts)


def _duplicates(
    groups: list[list[dict]], matches: dict[str, dict], thumbs: dict, named: dict[str, str]
) -> str:
    if not groups:
        return '<p class="muted">No duplicates were found.</p>'
    parts = []
    for group in groups:
        kept = clip_text(group[0])
        figures = []
        for i, member in enumerate(group):
            # The detail names the kept clip (by id, shown by file and span) and the evidence.
            verdict = readable_detail(member["detail"], named) or f"duplicate of {kept}"
            lines = [file_name(member["source"]), span_text(member), "kept" if i == 0 else verdict]
            kind = "kept" if i == 0 else "dropped"
            title = f"{member['source']} {span_text(member)}"
            figures.append(_thumb(thumbs.get(member["clip_id"]), title, lines, kind))
        match = matches.get(group[1]["clip_id"])
        if match:
            figures.append(_matched_frames(group[1], match))
        parts.append(f'<div class="group">{"".join(figures)}</div>')
    return "".join(parts)


def _matched_frames(duplicate: dict, match: dict) -> str:
    """The kept clip's and the duplicate's matched keyframes, and where the two clips match."""
    lines = [f"matched frames: kept clip left, {file_name(duplicate['source'])} right"]
    method = duplicate.get("duplicate_method")
    if method:
        similarity = duplicate.get("duplicate_similarity")
        lines.append(f"{method}, similarity {similarity:.2f}" if similarity is not None else method)
    span = duplicate.get("duplicate_span")
    if span:
        lines.append(
            f"its {span['start_s']:.1f}-{span['end_s']:.1f} s = "
            f"{span['of_start_s']:.1f}-{span['of_end_s']:.1f} s of the kept clip"
        )
    if match["inliers"]:
        mirrored = ", mirrored" if match["mirror"] else ""
        lines.append(f"{match['inliers']} keypoint matches agree{mirrored}")
    text = "<br>".join(_caption_line(line) for line in lines)
    return (
        f'<figure class="match"><img src="{_jpeg(match["image"])}" alt="{_e(lines[0])}">'
        f"<figcaption>{text}</figcaption></figure>"
    )

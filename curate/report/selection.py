"""What the report shows, read from the output: the scalar columns, a contact sheet of each
tier, example clips per concept cluster, rejected examples per reason, duplicate groups, the
thumbnails of the clips shown, and the funnel counts. Only the columns needed are read, and
thumbnails only for the clips shown."""

from __future__ import annotations

import io
import os
import re
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from PIL import Image, ImageOps

from curate import schema
from curate.contract import ALL_GATES
from curate.media.imaging import outlined
from curate.output.record import Manifest
from curate.output.summary import dataset, spread, unreadable
from curate.report.labels import clip_text
from curate.report.matches import matched_frames
from curate.storage import Store

ANALYSIS_COLUMNS = [
    "clip_id",
    "source",
    "media",
    "start_s",
    "end_s",
    "width",
    "height",
    "cluster_id",
    "duplicate_of",
    "duplicate_method",
    "duplicate_similarity",
    "duplicate_span",
    "tier",
]
"""The scalar columns of ``analysis`` the report reads besides the run's scores (thumbnails
only for shown clips)."""

CLIP_COLUMNS = ["clip_id", "source", "start_s", "end_s"]
"""What names a clip: its id, and its file and span for people."""

SHEET_COLUMNS = [*CLIP_COLUMNS, "width", "height", "sharpness", "caption", "prompt", "clip_path"]
"""Columns of a tier's contact sheet, besides the thumbnail."""

SHEET_IMAGE_SIDE = 256
"""Short side of the pictures of an image tier's contact sheet, made from its images."""

MAX_CLUSTERS = 64
"""Clusters shown in the gallery (the largest), so a k=256 run stays readable."""

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

CLIP_ID = re.compile(r"\b[0-9a-f]{16}\b")
"""A ``clip_id`` (``schema.clip_id``) inside a reject detail: a duplicate names the clip it
copies."""

REJECT_COLUMNS = ["source", "clip_id", "stage", "reason", "detail", "start_s", "end_s"]
"""The columns of ``rejects`` the report reads."""

WATERMARKED, WATERMARK_BOX = "watermarked", "watermark_box"
"""Clips rejected for a watermark show their thumbnail with the mark's box drawn on."""


@dataclass
class PageData:
    """Everything the page shows, read from the output once."""

    analysis: pa.Table
    rejects: pa.Table
    sheets: dict[str, dict]
    """Per tier, its clips (``total``) and the rows shown (``rows``, with thumbnails)."""
    clusters: dict[int, list[dict]]
    reject_examples: dict[str, list[dict]]
    duplicates: list[list[dict]]
    """Duplicate groups: the kept clip, then the clips that copy it."""
    matches: dict[str, dict]
    """The matched frames of the first duplicate of each group shown
    (``curate.report.matches``), by its id."""
    thumbs: dict[str, bytes | None]
    """The thumbnails of the clips shown in clusters, rejects and duplicate groups."""
    named: dict[str, str]
    """File and span of every clip a shown reject detail names by id."""
    media: dict[str, str]
    """``{clip_path: URL relative to the page}`` of the shown exported clips."""


def read_page_data(
    store: Store,
    manifest: Manifest,
    *,
    examples: int,
    page_dir: str | os.PathLike | None,
) -> PageData:
    """Read what the page shows, ``examples`` of each kind; a damaged output is an
    ``InspectError`` that says so."""
    names = manifest.tier_names
    try:
        analysis = _analysis_columns(dataset(store, "analysis"), manifest.scores)
        rejects = dataset(store, "rejects").to_table(columns=REJECT_COLUMNS)
        sheets = {
            name: _sheet_rows(dataset(store, f"tiers/{name}"), examples, manifest.tier_media(name))
            for name in names
        }
        clusters = _cluster_examples(analysis, rejects, examples)
        rejected = _reject_examples(rejects, examples)
        duplicates = _duplicate_groups(analysis, rejects, examples)
        wanted = {r["clip_id"] for rows in clusters.values() for r in rows}
        wanted |= {r["clip_id"] for rows in rejected.values() for r in rows}
        wanted |= {r["clip_id"] for group in duplicates for r in group}
        boxed = {r["clip_id"] for r in rejected.get(WATERMARKED, [])}
        thumbs = _thumbnails(dataset(store, "analysis"), wanted - {None}, boxed)
        pairs = [(group[1]["clip_id"], group[0]["clip_id"]) for group in duplicates]
        matches = matched_frames(dataset(store, "analysis"), pairs)
        details = [r["detail"] for rows in rejected.values() for r in rows]
        details += [r["detail"] for group in duplicates for r in group]
        named = _clip_names(analysis, details)
        media = _media_links(store, sheets, page_dir)
    except (pa.ArrowInvalid, KeyError, OSError) as e:
        raise unreadable(store, e) from e
    return PageData(
        analysis, rejects, sheets, clusters, rejected, duplicates, matches, thumbs, named, media
    )


def _analysis_columns(data: ds.Dataset, scores: tuple[str, ...]) -> pa.Table:
    """The scalar columns the report reads, the run's scores and the columns the gates read
    (an output written before a signal existed lacks its columns)."""
    gated = [c for g in ALL_GATES for c in g.columns]
    wanted = dict.fromkeys([*ANALYSIS_COLUMNS, *scores, *gated])
    return data.to_table(columns=[c for c in wanted if c in data.schema.names])


def histogram_specs(
    analysis: pa.Table, scores: tuple[str, ...]
) -> list[tuple[str, np.ndarray, list[str]]]:
    """(title, values, gate keys whose thresholds apply): gated scores first, grouped by what
    the gate measures, then every other of the run's ``scores``."""
    specs: list[tuple[str, np.ndarray, list[str]]] = []
    present = set(analysis.column_names)
    # On/off gates have no distribution to draw.
    scored = [g for g in ALL_GATES if not g.flag and present.issuperset(g.columns)]
    for label in dict.fromkeys(g.label for g in scored):
        gates = [g for g in scored if g.label == label]
        specs.append((label, gates[0].column(analysis), [g.key for g in gates]))
    for column in scores:
        if column in present and column not in {title for title, _, _ in specs}:
            values = analysis[column].to_numpy(zero_copy_only=False).astype(np.float64)
            specs.append((column, values, []))
    return specs


def _sheet_rows(data: ds.Dataset, n: int, media: str = "video") -> dict:
    """Up to ``n`` rows of a tier spread over it, with their thumbnails; an image tier's
    pictures are made from its images (:data:`SHEET_IMAGE_SIDE`), where it holds them."""
    total = data.count_rows()
    indices = spread(total, n)
    wanted = [*SHEET_COLUMNS, "thumbnail", *(["image"] if media == "image" else [])]
    columns = [c for c in wanted if c in data.schema.names]
    rows = data.take(pa.array(indices, pa.int64()), columns=columns).to_pylist()
    for row in rows:
        image = row.pop("image", None)
        if image and image.get("bytes"):
            row["thumbnail"] = sheet_picture(image["bytes"]) or row.get("thumbnail")
    return {"total": total, "rows": rows, "media": media}


def sheet_picture(data: bytes) -> bytes | None:
    """A JPEG of an image tier's image for its contact sheet; None when it does not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = ImageOps.exif_transpose(image).convert("RGB")
            scale = SHEET_IMAGE_SIDE / min(picture.size)
            if scale < 1:
                size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
                picture = picture.resize(size, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=85)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


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
    evidence = [c for c in schema.DUPLICATE_FIELDS if c in found.column_names]
    for row in found.select([*CLIP_COLUMNS, *evidence]).to_pylist():
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
    return {r["clip_id"]: clip_text(r) for r in found.select(CLIP_COLUMNS).to_pylist()}


def readable_detail(detail: str | None, named: dict[str, str]) -> str:
    """A reject detail with the clips it names by id named by file and span."""
    return CLIP_ID.sub(lambda m: named.get(m[0], m[0]), detail or "")


def _thumbnails(
    analysis: ds.Dataset, ids: set[str], boxed: set[str] = frozenset()
) -> dict[str, bytes | None]:
    """The thumbnails of ``ids``; those in ``boxed`` with their ``watermark_box`` drawn on."""
    if not ids:
        return {}
    columns = ["clip_id", "thumbnail"]
    if boxed and WATERMARK_BOX in analysis.schema.names:
        columns.append(WATERMARK_BOX)
    table = analysis.to_table(columns=columns, filter=pc.field("clip_id").isin(sorted(ids)))
    thumbs = dict(zip(table["clip_id"].to_pylist(), table["thumbnail"].to_pylist()))
    if WATERMARK_BOX in columns:
        for clip_id, box in zip(table["clip_id"].to_pylist(), table[WATERMARK_BOX].to_pylist()):
            if clip_id in boxed and box and thumbs.get(clip_id):
                thumbs[clip_id] = outlined(thumbs[clip_id], box)
    return thumbs


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


def input_funnel(
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


def clip_funnel(
    manifest: Manifest, names: list[str], analysis: pa.Table, rejects: pa.Table
) -> list[tuple[str, list[int]]]:
    """(step, clips of each tier) from the gates to the tier folders: the clips that passed
    a tier's gates, less those each later step rejected. A step the run did not record, or
    ran switched off, is left out."""
    rank = {name: k for k, name in enumerate(names)}
    strictest = np.array([rank.get(t, -1) for t in analysis["tier"].to_pylist()], np.int64)
    # Tiers nest among the tiers of one media: a clip counts in tier k of its own media.
    media = schema.row_media(analysis)
    ours = [media == manifest.tier_media(name) for name in names]

    def counts(alive: np.ndarray) -> list[int]:
        return [int(((strictest >= k) & ours[k] & alive).sum()) for k in range(len(names))]

    alive = np.ones(analysis.num_rows, bool)
    steps = [("passed gates", counts(alive))]
    for stage, label in CLIP_STEPS:
        entry = manifest.stage(stage)
        if entry.in_ is None or entry.get("enabled") is False:
            continue
        dropped = pc.drop_null(rejects.filter(pc.equal(rejects["stage"], stage))["clip_id"])
        gone = pc.is_in(analysis["clip_id"], value_set=dropped.combine_chunks())
        alive &= ~gone.to_numpy(zero_copy_only=False)
        steps.append((label, counts(alive)))
    return steps

"""Export planning (phase 3): which clip files each tier needs, where they go, which an
earlier run already wrote, and the export stage run over the rest (one item per source, so
each source is opened once)."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import ray.data

from curate.config.sections import CurateConfig, TierExport
from curate.contract import reject_row
from curate.run.progress import Progress
from curate.run.runner import map_stage
from curate.run.stage import Stage
from curate.signals.borders import SIDES as BORDER_SIDES
from curate.storage import Store

log = logging.getLogger(__name__)

TIMING_FIELDS = ("export_method", "frames", "decode_s", "encode_s", "export_s")
"""The export stage's per-clip figures :func:`export_stats` sums (the video bytes stay out)."""

IMAGE_METHODS = frozenset({"original", "jpeg", "png", "webp"})
"""How an image went into its tier (``export_method`` of the export stage's image rows)."""


def export_key(spec: TierExport) -> str:
    """Folder name of one export spec, e.g. ``720p_24fps`` or ``fullres``."""
    size = f"{spec.short_side}p" if spec.short_side else "fullres"
    return size + (f"_{spec.fps:g}fps" if spec.fps else "") + ("_crop" if spec.crop_borders else "")


def clip_relpath(key: str, clip_id: str) -> str:
    """Output path of an exported clip, derived from ids only (never from input names)."""
    return f"clips/{key}/{clip_id[:2]}/{clip_id}.mp4"


def plan_exports(
    config: CurateConfig, store: Store, clips: list[dict], passed: np.ndarray
) -> tuple[dict, list[dict]]:
    """Every accepted clip once per distinct export spec among its tiers (``passed[k]``: the
    clips tier k keeps). Returns the files an earlier run already wrote (same id, same spec:
    ``{(clip_id, key): (clip_path, None)}``) and the export stage's items for the rest."""
    exported: dict = {}
    jobs: dict[str, dict[tuple[str, str], dict]] = {}
    for tier, tier_passed in zip(config.tiers, passed):
        key = export_key(tier.export)
        for i in np.flatnonzero(tier_passed):
            c = clips[i]
            rel = clip_relpath(key, c["clip_id"])
            # Images go inline into their tier's shards: no file to find again.
            if config.export.mode == "files" and tier.media == "video" and store.is_file(rel):
                exported[(c["clip_id"], key)] = (rel, None)
                continue
            jobs.setdefault(c["source"], {})[(c["clip_id"], key)] = {
                "clip_id": c["clip_id"],
                "export_key": key,
                "start_s": c["start_s"],
                "end_s": c["end_s"],
                "short_side": tier.export.short_side,
                "fps": tier.export.fps,
                # Bars come off as (top, bottom, left, right) fractions.
                "crop": [c[f"border_{side}"] or 0.0 for side in BORDER_SIDES]
                if tier.export.crop_borders
                else None,
            }
    media = {c["source"]: c.get("media") or "video" for c in clips}
    items = [{"source": s, "media": media[s], "jobs": list(j.values())} for s, j in jobs.items()]
    return exported, items


def export_clips(
    stage: type[Stage],
    config: CurateConfig,
    store: Store,
    index: pa.Table,
    passed: np.ndarray,
    progress: Progress,
    stage_stats: dict | None = None,
) -> tuple[dict, list[dict]]:
    """Export every accepted clip (see :func:`plan_exports`) with ``stage``.

    Returns ``{(clip_id, export_key): (clip_path, video)}`` and export reject rows; sets
    ``stage_stats["export"]`` (the manifest's ``timing.stages``) to :func:`export_stats` of
    the clips this invocation exported."""
    if stage_stats is not None:
        stage_stats.pop("export", None)  # an earlier invocation's figures are not this one's
    if config.export.mode == "reference":
        return {}, []
    border_columns = [f"border_{side}" for side in BORDER_SIDES]
    columns = ["clip_id", "source", "media", "start_s", "end_s", *border_columns]
    clips = index.select([c for c in columns if c in index.column_names]).to_pylist()
    exported, items = plan_exports(config, store, clips, passed)
    if not items:
        return exported, []
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = map_stage(ds, stage, config, output=store.uri())
    by_id = {c["clip_id"]: c for c in clips}
    failed: dict[str, dict] = {}
    done: list[dict] = []
    jobs = sum(len(item["jobs"]) for item in items)
    # Files an earlier invocation wrote count as done.
    with progress.step("export", len(exported) + jobs, "clips") as step:
        step.done = len(exported)
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            step.advance(batch.num_rows)
            done.extend(_collect(batch, by_id, exported, failed))
    if failed:
        log.warning("%d clips failed to export", len(failed))
    if stage_stats is not None:
        stage_stats["export"] = export_stats(done)
    return exported, [failed[k] for k in sorted(failed)]


def export_stats(rows: list[dict]) -> dict:
    """The export stage's figures over its rows of exported clips: seconds decoding (reading,
    for a copied clip) and encoding (writing), frames written, frames per busy second (the
    clips' export seconds summed over the actors: ``busy_s``), clips, and how many were
    copied. Every key ending in ``_s`` is seconds (``curate inspect`` reads them so): hence
    ``frames_per_second``. Decoding runs on a thread of its own, so it overlaps encoding.
    Images (made ``original`` or re-encoded by Pillow) are counted apart, as ``images`` and
    their ``image_s``."""
    images = [r for r in rows if r.get("export_method") in IMAGE_METHODS]
    rows = [r for r in rows if r.get("export_method") not in IMAGE_METHODS]
    busy = sum(r.get("export_s") or 0.0 for r in rows)
    frames = sum(r.get("frames") or 0 for r in rows)
    if images:
        counted = {"images": len(images), "image_s": sum(r.get("export_s") or 0 for r in images)}
    else:
        counted = {}
    return {
        "decode_s": round(sum(r.get("decode_s") or 0.0 for r in rows), 3),
        "encode_s": round(sum(r.get("encode_s") or 0.0 for r in rows), 3),
        "frames": frames,
        "frames_per_second": round(frames / busy, 1) if busy else None,
        "clips": len(rows),
        "copied": sum(r.get("export_method") == "copy" for r in rows),
        "busy_s": round(busy, 3),
        **{k: round(v, 3) if k.endswith("_s") else v for k, v in counted.items()},
    }


def _collect(batch: pa.Table, by_id: dict, exported: dict, failed: dict) -> list[dict]:
    """Sort the export stage's rows into ``exported`` files and ``failed`` reject rows;
    returns the exported clips' timing fields."""
    timings = []
    for row in batch.to_pylist():
        if not row["error"]:
            timings.append({k: row.get(k) for k in TIMING_FIELDS})
            data = row["image"] if row["image"] is not None else row["video"]
            exported[(row["clip_id"], row["export_key"])] = (row["clip_path"], data)
            continue
        c = by_id[row["clip_id"]]
        failed[row["clip_id"]] = reject_row(
            c["source"],
            "export",
            "export_failed",
            row["error"],
            clip_id=c["clip_id"],
            start_s=c["start_s"],
            end_s=c["end_s"],
        )
    return timings

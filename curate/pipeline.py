"""Pipeline assembly: phase 1 (probe + analyze, streaming on Ray Data), phase 2 (tiers over
the analysis table), phase 3 (export of accepted clips) and the shard writer."""

from __future__ import annotations

import logging
import platform
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data

from curate import schema
from curate.config import CurateConfig
from curate.io import ShardWriter, discover, write_json_atomic
from curate.runner import configure_data_context, map_stage, ray_session
from stages.export import export_key
from stages.tiers import assign_tiers

log = logging.getLogger(__name__)

OUTPUT_TABLES = ("shots", "analysis", "tiers", "rejects", "clips")
"""Folders a run owns inside its output folder (cleared when a run starts over)."""

TIER_COLUMNS_FROM_ANALYSIS = [f.name for f in schema.ANALYSIS]

PACKAGES = (
    "curate",
    "ray",
    "av",
    "opencv-python-headless",
    "scenedetect",
    "pyarrow",
    "numpy",
    "pydantic",
    "torch",
    "open_clip_torch",
)


class OutputError(ValueError):
    """The output folder cannot be used."""


def prepare_output(output: Path) -> None:
    """Create ``output`` or clear a previous run in it; refuse a folder that is not ours."""
    if output.exists() and any(output.iterdir()) and not (output / "manifest.json").exists():
        raise OutputError(f"output folder {output} is not empty and holds no curate run")
    output.mkdir(parents=True, exist_ok=True)
    for name in (*OUTPUT_TABLES, "manifest.json"):
        target = output / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


class Funnel:
    """Rows in/out and rejects by reason per stage, for the manifest."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}

    def record(self, stage: str, *, rows_in: int, rows_out: int, rejects: Counter, **extra) -> None:
        self.stages[stage] = {
            "in": rows_in,
            "out": rows_out,
            "rejected": dict(sorted(rejects.items())),
            **extra,
        }


def run(
    config: CurateConfig,
    inputs: list[str],
    output: str | Path,
    *,
    ray_address: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the whole pipeline and return the manifest it wrote to ``output/manifest.json``."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    output = Path(output)
    sources = discover(inputs)
    timings["discover_s"] = time.perf_counter() - started
    log.info("discovered %d inputs", len(sources))
    prepare_output(output)
    funnel = Funnel()
    writer_opts = {
        "rows_per_file": config.output.rows_per_file,
        "compression": config.output.compression,
    }

    with ray_session(config, ray_address):
        configure_data_context(progress)
        t = time.perf_counter()
        reject_writer = ShardWriter(output / "rejects", schema.REJECTS, **writer_opts)
        stats = _phase1(config, sources, output, reject_writer, writer_opts, funnel)
        timings["phase1_probe_analyze_s"] = time.perf_counter() - t

        t = time.perf_counter()
        analysis_cols = [
            "clip_id",
            "source",
            "start_s",
            "end_s",
            "width",
            "height",
            "duration_s",
            "sharpness",
            "motion_score",
        ]
        index = _read_analysis(output, analysis_cols)
        result = assign_tiers(index, config.tiers)
        tier_rejects = Counter(r["reason"] for r in result.rejects)
        reject_writer.write(schema.from_rows(result.rejects, schema.REJECTS))
        funnel.record(
            "tiers",
            rows_in=index.num_rows,
            rows_out=int(result.passed[0].sum()) if len(result.passed) else 0,
            rejects=tier_rejects,
            tiers={t.name: int(result.passed[k].sum()) for k, t in enumerate(config.tiers)},
            gate_failures=result.gate_failures,
        )
        timings["phase2_tiers_s"] = time.perf_counter() - t

        t = time.perf_counter()
        exported, export_failed = _phase3_export(config, output, index, result.passed)
        export_rejects = [
            {
                "source": src,
                "clip_id": cid,
                "stage": "export",
                "reason": "export_failed",
                "detail": err,
                "start_s": s,
                "end_s": e,
            }
            for cid, (src, s, e, err) in sorted(export_failed.items())
        ]
        reject_writer.write(schema.from_rows(export_rejects, schema.REJECTS))
        reject_writer.close()
        keep = result.passed & ~np.isin(
            index.column("clip_id").to_numpy(zero_copy_only=False), list(export_failed)
        )
        funnel.record(
            "export",
            rows_in=int(result.passed[0].sum()) if len(result.passed) else 0,
            rows_out=int(keep[0].sum()) if len(keep) else 0,
            rejects=Counter({"export_failed": len(export_failed)}) if export_failed else Counter(),
            mode=config.export.mode,
        )
        timings["phase3_export_s"] = time.perf_counter() - t

    t = time.perf_counter()
    tiers = _write_tiers(config, output, index, result.strictest, keep, exported, writer_opts)
    timings["write_tiers_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started

    rejects = pq.read_table(output / "rejects", columns=["reason"]).column("reason").to_pylist()
    manifest = {
        "curate_version": _version("curate"),
        "created_unix": time.time(),
        "inputs": {"given": list(inputs), "discovered": len(sources)},
        "funnel": funnel.stages,
        "tiers": tiers,
        "rejects": dict(sorted(Counter(rejects).items())),
        "timing": {**{k: round(v, 3) for k, v in timings.items()}, "stages": stats},
        "config": config.model_dump(mode="json"),
        "versions": {
            "python": platform.python_version(),
            **{p: _version(p) for p in PACKAGES},
        },
    }
    write_json_atomic(output / "manifest.json", manifest)
    return manifest


def _phase1(config, sources, output, reject_writer, writer_opts, funnel) -> dict:
    """Probe and analyze every source on Ray Data; stream shots, clips and rejects to disk."""
    probe_rejects: Counter = Counter()
    analyze_rejects: Counter = Counter()
    probed_ok = frames = shots = clips = 0
    probe_s = analyze_s = 0.0
    with (
        ShardWriter(output / "shots", schema.SHOTS, **writer_opts) as shot_writer,
        ShardWriter(output / "analysis", schema.ANALYSIS, **writer_opts) as clip_writer,
    ):
        for batch in _analyzed_batches(config, sources):
            for name, writer in (("shots", shot_writer), ("clips", clip_writer)):
                writer.write(_flatten(batch, name, writer.schema))
            rejects = _flatten(batch, "rejects", schema.REJECTS)
            reject_writer.write(rejects)
            for stage, reason in zip(
                rejects.column("stage").to_pylist(), rejects.column("reason").to_pylist()
            ):
                (probe_rejects if stage == "probe" else analyze_rejects)[reason] += 1
            frames += int(pc.sum(batch.column("frames")).as_py() or 0)
            probe_s += float(pc.sum(batch.column("probe_s")).as_py() or 0)
            analyze_s += float(pc.sum(batch.column("analyze_s")).as_py() or 0)
            shots += int(pc.sum(pc.list_value_length(batch.column("shots"))).as_py() or 0)
            clips += int(pc.sum(pc.list_value_length(batch.column("clips"))).as_py() or 0)
        probed_ok = len(sources) - sum(probe_rejects.values())
    funnel.record("discover", rows_in=len(sources), rows_out=len(sources), rejects=Counter())
    funnel.record("probe", rows_in=len(sources), rows_out=probed_ok, rejects=probe_rejects)
    funnel.record(
        "analyze",
        rows_in=probed_ok,
        rows_out=clips,
        rejects=analyze_rejects,
        shots=shots,
        frames=frames,
    )
    return {
        "probe": {"busy_s": round(probe_s, 3)},
        "analyze": {
            "busy_s": round(analyze_s, 3),
            "frames": frames,
            "frames_per_busy_s": round(frames / analyze_s, 1) if analyze_s else None,
        },
    }


def _analyzed_batches(config: CurateConfig, sources: list[str]) -> Iterator[pa.Table]:
    if not sources:
        return
    items = [{"source": s, "source_index": i} for i, s in enumerate(sources)]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = map_stage(ds, "probe", config)
    ds = map_stage(ds, "analyze", config)
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")


def _flatten(batch: pa.Table, column: str, target: pa.Schema) -> pa.Table:
    values = pc.list_flatten(batch.column(column))
    if len(values) == 0:
        return target.empty_table()
    table = pa.Table.from_struct_array(
        values.combine_chunks() if hasattr(values, "combine_chunks") else values
    )
    return schema.conform(table, target)


def _read_analysis(output: Path, columns: list[str]) -> pa.Table:
    files = sorted((output / "analysis").glob("part-*.parquet"))
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)


def _phase3_export(config, output, index, passed) -> tuple[dict, dict]:
    """Export every accepted clip once per distinct export spec of the tiers it is in.

    Returns ``{(clip_id, key): (clip_path, video_bytes)}`` and
    ``{clip_id: (source, start, end, error)}``."""
    if config.export.mode == "reference" or index.num_rows == 0:
        return {}, {}
    ids = index.column("clip_id").to_pylist()
    srcs = index.column("source").to_pylist()
    starts = index.column("start_s").to_pylist()
    ends = index.column("end_s").to_pylist()
    jobs: dict[str, dict[tuple[str, str], dict]] = {}
    for k, tier in enumerate(config.tiers):
        key = export_key(tier.export)
        for i in np.flatnonzero(passed[k]):
            jobs.setdefault(srcs[i], {})[(ids[i], key)] = {
                "clip_id": ids[i],
                "export_key": key,
                "start_s": starts[i],
                "end_s": ends[i],
                "short_side": tier.export.short_side,
                "fps": tier.export.fps,
            }
    if not jobs:
        return {}, {}
    items = [{"source": s, "jobs": list(j.values())} for s, j in jobs.items()]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = map_stage(ds, "export", config, output=str(output.resolve()))
    exported: dict = {}
    failed: dict = {}
    where = {cid: (s, a, b) for cid, s, a, b in zip(ids, srcs, starts, ends)}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            if row["error"]:
                failed[row["clip_id"]] = (*where[row["clip_id"]], row["error"])
            else:
                exported[(row["clip_id"], row["export_key"])] = (row["clip_path"], row["video"])
    if failed:
        log.warning("%d clips failed to export", len(failed))
    return exported, failed


def _write_tiers(config, output, index, strictest, keep, exported, writer_opts) -> dict:
    """Rewrite ``analysis`` with each clip's strictest tier and write one folder per tier."""
    tier_of = dict(zip(index.column("clip_id").to_pylist(), strictest))
    kept = {
        k: set(np.asarray(index.column("clip_id").to_pylist(), dtype=object)[keep[k]])
        for k in range(len(config.tiers))
    }
    writers = {
        t.name: ShardWriter(output / "tiers" / t.name, schema.TIER, **writer_opts)
        for t in config.tiers
    }
    summary = {t.name: {"clips": 0, "hours": 0.0} for t in config.tiers}
    for path in sorted((output / "analysis").glob("part-*.parquet")):
        shard = pq.read_table(path)
        ids = shard.column("clip_id").to_pylist()
        shard = shard.set_column(
            shard.schema.get_field_index("tier"),
            schema.ANALYSIS.field("tier"),
            pa.array([tier_of.get(c) for c in ids], pa.string()),
        )
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(shard, tmp, compression=writers and next(iter(writers.values())).compression)
        tmp.replace(path)
        for k, tier in enumerate(config.tiers):
            mask = pa.array([c in kept[k] for c in ids])
            rows = shard.filter(mask)
            if rows.num_rows == 0:
                continue
            key = export_key(tier.export)
            media = [
                exported.get((c, key), (None, None)) for c in rows.column("clip_id").to_pylist()
            ]
            rows = rows.set_column(
                rows.schema.get_field_index("tier"),
                "tier",
                pa.array([tier.name] * rows.num_rows, pa.string()),
            )
            rows = rows.append_column("clip_path", pa.array([m[0] for m in media], pa.string()))
            rows = rows.append_column("video", pa.array([m[1] for m in media], pa.binary()))
            writers[tier.name].write(schema.conform(rows, schema.TIER))
            summary[tier.name]["clips"] += rows.num_rows
            summary[tier.name]["hours"] += float(pc.sum(rows.column("duration_s")).as_py()) / 3600
    for w in writers.values():
        w.close()
    return {
        name: {"clips": s["clips"], "hours": round(s["hours"], 6)} for name, s in summary.items()
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

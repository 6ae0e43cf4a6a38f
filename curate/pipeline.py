"""Pipeline assembly: phase 1 (probe + analyze, streaming on Ray Data), phase 2 (tiers over
the analysis table), phase 3 (export of accepted clips), then the tier shards and manifest."""

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
from curate.io import (
    ShardWriter,
    discover,
    read_table,
    write_json_atomic,
    write_parquet_atomic,
)
from curate.runner import configure_data_context, map_stage, ray_session
from stages.export import export_key
from stages.tiers import TierResult, assign_tiers

log = logging.getLogger(__name__)

OUTPUT_TABLES = ("shots", "analysis", "tiers", "rejects", "clips")
"""Folders a run owns inside its output folder (cleared when a run starts over)."""

TIER_INPUT_COLUMNS = [
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
"""The slice of ``analysis`` that phase 2 and 3 read (never thumbnails or embeddings)."""

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
"""Package versions recorded in the manifest."""


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


def run(
    config: CurateConfig,
    inputs: list[str],
    output: str | Path,
    *,
    ray_address: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the whole pipeline and return the manifest it wrote to ``output/manifest.json``."""
    return Run(config, Path(output)).execute(inputs, ray_address=ray_address, progress=progress)


class Run:
    """One pipeline run into one output folder: its writers, funnel counts and timings."""

    def __init__(self, config: CurateConfig, output: Path) -> None:
        self.config = config
        self.output = output
        self.funnel: dict[str, dict] = {}
        self.timings: dict[str, float] = {}
        self.stage_stats: dict[str, dict] = {}

    def writer(self, folder: str, table_schema: pa.Schema) -> ShardWriter:
        return ShardWriter(
            self.output / folder,
            table_schema,
            rows_per_file=self.config.output.rows_per_file,
            compression=self.config.output.compression,
        )

    def record(self, stage: str, rows_in: int, rows_out: int, rejects: Counter, **extra) -> None:
        self.funnel[stage] = {
            "in": rows_in,
            "out": rows_out,
            "rejected": dict(sorted(rejects.items())),
            **extra,
        }

    def execute(self, inputs: list[str], *, ray_address: str | None, progress: bool) -> dict:
        started = time.perf_counter()
        sources = discover(inputs)
        log.info("discovered %d inputs", len(sources))
        self.record("discover", len(sources), len(sources), Counter())
        prepare_output(self.output)
        rejects = self.writer("rejects", schema.REJECTS)
        with ray_session(self.config, ray_address):
            configure_data_context(progress)
            t = time.perf_counter()
            self.analyze(sources, rejects)
            self.timings["phase1_probe_analyze_s"] = time.perf_counter() - t

            t = time.perf_counter()
            index = read_table(self.output / "analysis", columns=TIER_INPUT_COLUMNS)
            tiers = assign_tiers(index, self.config.tiers)
            rejects.write(schema.from_rows(tiers.rejects, schema.REJECTS))
            self.record(
                "tiers",
                index.num_rows,
                int(tiers.passed[0].sum()),
                Counter(r["reason"] for r in tiers.rejects),
                tiers={t.name: int(p.sum()) for t, p in zip(self.config.tiers, tiers.passed)},
                gate_failures=tiers.gate_failures,
            )
            self.timings["phase2_tiers_s"] = time.perf_counter() - t

            t = time.perf_counter()
            exported, failed = self.export(index, tiers.passed)
            rejects.write(schema.from_rows(failed, schema.REJECTS))
            self.timings["phase3_export_s"] = time.perf_counter() - t
        rejects.close()

        t = time.perf_counter()
        failed_ids = {r["clip_id"] for r in failed}
        ids = np.asarray(index.column("clip_id").to_pylist(), dtype=object)
        keep = tiers.passed & ~np.isin(ids, list(failed_ids))
        self.record(
            "export",
            int(tiers.passed[0].sum()),
            int(keep[0].sum()),
            Counter(r["reason"] for r in failed),
            mode=self.config.export.mode,
        )
        tier_sizes = self.write_tiers(ids, tiers, keep, exported)
        self.timings["write_tiers_s"] = time.perf_counter() - t
        self.timings["total_s"] = time.perf_counter() - started
        return self.write_manifest(inputs, len(sources), tier_sizes)

    # Phase 1 ------------------------------------------------------------------------------

    def analyze(self, sources: list[str], rejects: ShardWriter) -> None:
        """Probe and analyze every source on Ray Data; stream shots, clips, rejects to disk."""
        by_stage: dict[str, Counter] = {"probe": Counter(), "analyze": Counter()}
        totals = Counter()
        with (
            self.writer("shots", schema.SHOTS) as shots,
            self.writer("analysis", schema.ANALYSIS) as clips,
        ):
            for batch in self._analyzed_batches(sources):
                shots.write(_flatten(batch, "shots", schema.SHOTS))
                clips.write(_flatten(batch, "clips", schema.ANALYSIS))
                batch_rejects = _flatten(batch, "rejects", schema.REJECTS)
                rejects.write(batch_rejects)
                for stage, reason in zip(
                    batch_rejects["stage"].to_pylist(), batch_rejects["reason"].to_pylist()
                ):
                    by_stage[stage][reason] += 1
                totals["sources"] += batch.num_rows
                for name in ("frames", "probe_s", "analyze_s"):
                    totals[name] += pc.sum(batch[name]).as_py() or 0
                for name in ("shots", "clips"):
                    totals[name] += pc.sum(pc.list_value_length(batch[name])).as_py() or 0
                log.info(
                    "analyzed %d/%d sources: %d shots, %d candidate clips",
                    totals["sources"],
                    len(sources),
                    totals["shots"],
                    totals["clips"],
                )
        probed_ok = len(sources) - sum(by_stage["probe"].values())
        self.record("probe", len(sources), probed_ok, by_stage["probe"])
        self.record(
            "analyze",
            probed_ok,
            totals["clips"],
            by_stage["analyze"],
            shots=totals["shots"],
            frames=totals["frames"],
        )
        busy = totals["analyze_s"]
        self.stage_stats = {
            "probe": {"busy_s": round(totals["probe_s"], 3)},
            "analyze": {
                "busy_s": round(busy, 3),
                "frames": totals["frames"],
                "frames_per_busy_s": round(totals["frames"] / busy, 1) if busy else None,
            },
        }

    def _analyzed_batches(self, sources: list[str]) -> Iterator[pa.Table]:
        if not sources:
            return
        items = [{"source": s, "source_index": i} for i, s in enumerate(sources)]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = map_stage(ds, "probe", self.config)
        ds = map_stage(ds, "analyze", self.config)
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")

    # Phase 3 ------------------------------------------------------------------------------

    def export(self, index: pa.Table, passed: np.ndarray) -> tuple[dict, list[dict]]:
        """Export every accepted clip once per distinct export spec among its tiers.

        Returns ``{(clip_id, export_key): (clip_path, video)}`` and export reject rows."""
        if self.config.export.mode == "reference":
            return {}, []
        clips = index.select(["clip_id", "source", "start_s", "end_s"]).to_pylist()
        jobs: dict[str, dict[tuple[str, str], dict]] = {}
        for tier, tier_passed in zip(self.config.tiers, passed):
            key = export_key(tier.export)
            for i in np.flatnonzero(tier_passed):
                c = clips[i]
                jobs.setdefault(c["source"], {})[(c["clip_id"], key)] = {
                    "clip_id": c["clip_id"],
                    "export_key": key,
                    "start_s": c["start_s"],
                    "end_s": c["end_s"],
                    "short_side": tier.export.short_side,
                    "fps": tier.export.fps,
                }
        if not jobs:
            return {}, []
        items = [{"source": s, "jobs": list(j.values())} for s, j in jobs.items()]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = map_stage(ds, "export", self.config, output=str(self.output.resolve()))
        by_id = {c["clip_id"]: c for c in clips}
        exported: dict = {}
        failed: dict[str, dict] = {}
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                if row["error"]:
                    c = by_id[row["clip_id"]]
                    failed[row["clip_id"]] = {
                        "source": c["source"],
                        "clip_id": c["clip_id"],
                        "stage": "export",
                        "reason": "export_failed",
                        "detail": row["error"],
                        "start_s": c["start_s"],
                        "end_s": c["end_s"],
                    }
                else:
                    exported[(row["clip_id"], row["export_key"])] = (row["clip_path"], row["video"])
            log.info("exported %d clips", len(exported))
        if failed:
            log.warning("%d clips failed to export", len(failed))
        return exported, [failed[k] for k in sorted(failed)]

    # Output -------------------------------------------------------------------------------

    def write_tiers(
        self, ids: np.ndarray, tiers: TierResult, keep: np.ndarray, exported: dict
    ) -> dict:
        """Rewrite ``analysis`` with each clip's strictest tier; write one folder per tier."""
        strictest = dict(zip(ids, tiers.strictest))
        kept = [set(ids[k]) for k in keep]
        writers = [self.writer(f"tiers/{t.name}", schema.TIER) for t in self.config.tiers]
        sizes = {t.name: {"clips": 0, "hours": 0.0} for t in self.config.tiers}
        compression = self.config.output.compression
        for path in sorted((self.output / "analysis").glob("part-*.parquet")):
            shard = pq.read_table(path)
            shard_ids = shard["clip_id"].to_pylist()
            tier_column = pa.array([strictest.get(c) for c in shard_ids], pa.string())
            shard = shard.set_column(shard.schema.get_field_index("tier"), "tier", tier_column)
            write_parquet_atomic(path, shard, compression)
            for tier, members, writer in zip(self.config.tiers, kept, writers):
                rows = shard.filter(pa.array([c in members for c in shard_ids], pa.bool_()))
                if rows.num_rows == 0:
                    continue
                key = export_key(tier.export)
                media = [exported.get((c, key), (None, None)) for c in rows["clip_id"].to_pylist()]
                rows = rows.set_column(
                    rows.schema.get_field_index("tier"),
                    "tier",
                    pa.array([tier.name] * rows.num_rows, pa.string()),
                )
                rows = rows.append_column("clip_path", pa.array([m[0] for m in media], pa.string()))
                rows = rows.append_column("video", pa.array([m[1] for m in media], pa.binary()))
                writer.write(schema.conform(rows, schema.TIER))
                sizes[tier.name]["clips"] += rows.num_rows
                sizes[tier.name]["hours"] += pc.sum(rows["duration_s"]).as_py() / 3600
        for writer in writers:
            writer.close()
        return {n: {"clips": s["clips"], "hours": round(s["hours"], 6)} for n, s in sizes.items()}

    def write_manifest(self, inputs: list[str], discovered: int, tier_sizes: dict) -> dict:
        reasons = read_table(self.output / "rejects", columns=["reason"])["reason"].to_pylist()
        manifest = {
            "curate_version": _version("curate"),
            "created_unix": time.time(),
            "inputs": {"given": list(inputs), "discovered": discovered},
            "funnel": self.funnel,
            "tiers": tier_sizes,
            "rejects": dict(sorted(Counter(reasons).items())),
            "timing": {
                **{k: round(v, 3) for k, v in self.timings.items()},
                "stages": self.stage_stats,
            },
            "config": self.config.model_dump(mode="json"),
            "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
        }
        write_json_atomic(self.output / "manifest.json", manifest)
        return manifest


def _flatten(batch: pa.Table, column: str, target: pa.Schema) -> pa.Table:
    """The rows of a list-of-struct column as a table of ``target``."""
    values = pc.list_flatten(batch[column])
    if len(values) == 0:
        return target.empty_table()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return schema.conform(pa.Table.from_struct_array(values), target)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

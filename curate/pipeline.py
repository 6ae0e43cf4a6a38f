"""Pipeline assembly: phase 1 (probe + analyze, streaming on Ray Data), phase 2 (tiers over
the analysis table), phase 3 (captioning and export of accepted clips), then the tier shards
and manifest."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data

from curate import journal, schema
from curate.captions import with_tier
from curate.config import CurateConfig
from curate.io import ShardWriter, discover, read_table
from curate.journal import Journal
from curate.phase2 import dedup_and_rebalance
from curate.runner import configure_data_context, map_stage, ray_session, read_shards
from curate.storage import Store
from stages.caption import FALLBACK_CAPTIONER
from stages.caption import INPUT_COLUMNS as CAPTION_INPUT_COLUMNS
from stages.captioners import Secret, assign_captioners, check_captioners
from stages.embed import check_embedder
from stages.export import clip_relpath, export_key
from stages.tiers import assign_tiers

log = logging.getLogger(__name__)

OUTPUT_TABLES = ("shots", "analysis", "tiers", "rejects", "clips", journal.FOLDER)
"""Folders a run owns inside its output folder (cleared when a run starts over)."""

PHASE1_TABLES = ("shots", "analysis", journal.PHASE1_REJECTS)
"""Tables built from the journal's chunks when phase 1 completes (``rejects/`` and ``tiers/``
are rebuilt by every invocation's phase 2 and 3)."""

TIER_INPUT_COLUMNS = [
    "clip_id",
    "source",
    "start_s",
    "end_s",
    "width",
    "height",
    "orientation",
    "duration_s",
    "sharpness",
    "motion_score",
    "motion_pattern",
    "aesthetic",
    "text_ratio",
    "border_top",
    "border_bottom",
    "border_left",
    "border_right",
    "tier",
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
    "transformers",
    "httpx",
)
"""Package versions recorded in the manifest."""


BORDER_SIDES = ("top", "bottom", "left", "right")

CHECKPOINT_MAX_SOURCES = 500
"""Analyzed sources the driver holds before writing them to the journal, whatever
``output.checkpoint_interval_s`` says: bounds the driver's memory and the work a crash
loses."""


class OutputError(ValueError):
    """The output folder cannot be used."""


def prepare_output(store: Store) -> None:
    """Clear a previous run from ``store``; refuse a non-empty folder that is not ours."""
    if not store.is_empty() and not (
        store.is_file("manifest.json") or store.is_file(journal.STATE)
    ):
        raise OutputError(f"output folder {store} is not empty and holds no curate run")
    store.makedirs()
    for name in (*OUTPUT_TABLES, "manifest.json"):
        store.remove(name)


def retier(
    config: CurateConfig,
    output: str | Path,
    *,
    ray_address: str | None = None,
    progress: bool = True,
) -> dict:
    """Recompute tiers, dedup, re-balancing and the tier shards of an existing run from its
    ``analysis/`` table: no decoding, no embedding."""
    store = Store(output)
    if not store.is_file("manifest.json") or not store.files("analysis"):
        raise OutputError(f"{output} holds no finished curate run to re-tier")
    return Run(config, store).retier(ray_address=ray_address, progress=progress)


def run(
    config: CurateConfig,
    inputs: list[str],
    output: str | Path,
    *,
    ray_address: str | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> dict:
    """Run the whole pipeline and return the manifest it wrote to ``output/manifest.json``.

    A run whose journal is in ``output`` is continued (``fresh`` starts over instead)."""
    return Run(config, Store(output)).execute(
        inputs, ray_address=ray_address, progress=progress, fresh=fresh
    )


class Run:
    """One pipeline run into one output folder: its writers, funnel counts and timings."""

    def __init__(self, config: CurateConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.journal = Journal(store)
        self.funnel: dict[str, dict] = {}
        self.timings: dict[str, float] = {}
        self.stage_stats: dict[str, dict] = {}
        self.embedding_model: str | None = None
        self.caption_keys: dict[str, Secret] = {}
        self.sources_done_before = 0
        """Sources an earlier, interrupted invocation of this run had finished."""
        self.previous_caption_config: dict | None = None
        """A re-tier reuses the captions of a run with this very caption config."""
        # Embedding width of this run's tables: embed.dim for a new run, the stored width for
        # a re-tier (which embeds nothing).
        self.dim = config.embed.dim

    @property
    def analysis_schema(self) -> pa.Schema:
        return schema.analysis_schema(self.dim)

    def writer(self, folder: str, table_schema: pa.Schema) -> ShardWriter:
        return ShardWriter(
            self.store.sub(folder),
            table_schema,
            rows_per_file=self.config.output.rows_per_file,
            compression=self.config.output.compression,
            bytes_per_file=int(self.config.output.max_file_mb * 1e6),
        )

    def record(self, stage: str, rows_in: int, rows_out: int, rejects: Counter, **extra) -> None:
        self.funnel[stage] = {
            "in": rows_in,
            "out": rows_out,
            "rejected": dict(sorted(rejects.items())),
            **extra,
        }

    def execute(
        self, inputs: list[str], *, ray_address: str | None, progress: bool, fresh: bool
    ) -> dict:
        started = time.perf_counter()
        sources = discover(inputs)
        log.info("discovered %d inputs", len(sources))
        self.embedding_model = check_embedder(self.config)
        self.caption_keys = check_captioners(self.config)
        expected = journal.fingerprint(self.config, sources)
        if not fresh and self.journal.exists:
            self.journal.load()
            self.journal.check(expected)
            self.journal.resume()
            log.info("continuing the run in %s", self.store)
        else:
            prepare_output(self.store)
            self.journal.start(expected)
        with ray_session(self.config, ray_address):
            configure_data_context(progress)
            if self.journal.phase1_done:
                self.sources_done_before = len(sources)
            else:
                self.analyze(sources)
            self.restore_phase1()
            tier_sizes = self.curate(self.phase1_rejects())
        self.timings["total_s"] = time.perf_counter() - started
        manifest = self.write_manifest(inputs, len(sources), tier_sizes)
        self.journal.finish()
        return manifest

    def retier(self, *, ray_address: str | None, progress: bool) -> dict:
        """Phase 2 and 3 again from ``analysis/`` alone, with this run's config."""
        started = time.perf_counter()
        previous = self.store.read_json("manifest.json")
        self.caption_keys = check_captioners(self.config)
        self.previous_caption_config = previous["config"].get("caption")
        for stage in ("discover", "probe", "analyze"):
            self.funnel[stage] = previous["funnel"][stage]
        self.stage_stats = previous["timing"].get("stages", {})
        self.embedding_model = previous.get("embedding_model")
        self.dim = schema.embedding_dim(self.store.read_schema(self.store.files("analysis")[0]))
        with ray_session(self.config, ray_address):
            configure_data_context(progress)
            tier_sizes = self.curate(self.phase1_rejects())
        self.timings["total_s"] = time.perf_counter() - started
        inputs = previous["inputs"]
        return self.write_manifest(inputs["given"], inputs["discovered"], tier_sizes)

    def phase1_rejects(self) -> ShardWriter:
        """A fresh ``rejects`` writer holding the phase-1 rejects only, and no tiers: phase 2
        and 3 replace everything else they wrote."""
        if self.store.files(journal.PHASE1_REJECTS):
            # The journal's copy: ``rejects/`` may be half rewritten by a crashed invocation.
            kept = read_table(self.store.sub(journal.PHASE1_REJECTS))
        else:  # a run from before the journal
            kept = read_table(self.store.sub("rejects"))
            kept = kept.filter(pc.is_in(kept["stage"], pa.array(schema.PHASE1_STAGES)))
        for folder in ("rejects", "tiers"):
            self.store.remove(folder)
        rejects = self.writer("rejects", schema.REJECTS)
        rejects.write(kept)
        return rejects

    def curate(self, rejects: ShardWriter) -> dict:
        """Phase 2 (tiers, dedup, re-balancing) and 3 (captions, export), then the tier
        shards."""
        t = time.perf_counter()
        index = read_table(self.store.sub("analysis"), columns=TIER_INPUT_COLUMNS)
        tiers = assign_tiers(index, self.config.tiers)
        rejects.write(schema.from_rows(tiers.rejects, schema.REJECTS))
        self.record(
            "tiers",
            index.num_rows,
            int(tiers.passed[0].sum()),
            Counter(r["reason"] for r in tiers.rejects),
            tiers={t.name: int(p.sum()) for t, p in zip(self.config.tiers, tiers.passed)},
            thresholds={t.name: g for t, g in zip(self.config.tiers, tiers.thresholds)},
            gate_failures=tiers.gate_failures,
        )
        index = index.set_column(
            index.schema.get_field_index("tier"), "tier", pa.array(tiers.strictest, pa.string())
        )
        self.annotate_analysis({"tier": index["tier"]})
        self.timings["phase2_tiers_s"] = time.perf_counter() - t

        t = time.perf_counter()
        phase2 = dedup_and_rebalance(
            index, tiers.passed[0], self.store.sub("analysis"), self.config
        )
        self.funnel.update(phase2.funnel)
        survivors, columns = phase2.survivors, phase2.columns
        rejects.write(schema.from_rows(phase2.rejects, schema.REJECTS))
        self.timings["phase2_dedup_rebalance_s"] = time.perf_counter() - t

        t = time.perf_counter()
        ids = np.asarray(index["clip_id"].to_pylist(), dtype=object)
        accepted = tiers.passed & survivors
        # Captions first: the expensive model time goes to survivors only, and a clip whose
        # caption failed is not exported.
        captions, caption_failed = self.caption(index, accepted.any(axis=0))
        rejects.write(schema.from_rows(caption_failed, schema.REJECTS))
        captioned = accepted & ~np.isin(ids, [r["clip_id"] for r in caption_failed])
        self.timings["phase3_caption_s"] = time.perf_counter() - t

        t = time.perf_counter()
        exported, failed = self.export(index, captioned)
        rejects.write(schema.from_rows(failed, schema.REJECTS))
        rejects.close()
        self.timings["phase3_export_s"] = time.perf_counter() - t

        t = time.perf_counter()
        keep = captioned & ~np.isin(ids, [r["clip_id"] for r in failed])
        self.record(
            "export",
            int(captioned[0].sum()),
            int(keep[0].sum()),
            Counter(r["reason"] for r in failed),
            mode=self.config.export.mode,
        )
        self.annotate_analysis({**columns, **caption_columns(ids, keep.any(axis=0), captions)})
        tier_sizes = self.write_tiers(ids, keep, exported)
        self.remove_stale_clips(exported)
        self.timings["write_tiers_s"] = time.perf_counter() - t
        return tier_sizes

    # Phase 1 ------------------------------------------------------------------------------

    def analyze(self, sources: list[str]) -> None:
        """Probe, analyze and embed every source the journal does not hold yet, recording
        them in the journal as they complete; then build the phase-1 tables from it."""
        started = time.perf_counter()
        done = self.journal.done_sources()
        self.sources_done_before = len(done)
        todo = [i for i in range(len(sources)) if i not in done]
        if done:
            log.info(
                "%d of %d sources were done before; analyzing %d",
                len(done),
                len(sources),
                len(todo),
            )
        interval = self.config.output.checkpoint_interval_s
        pending: list[pa.Table] = []
        pending_sources = 0
        last_flush = time.monotonic()
        analyzed = len(done)

        def flush() -> None:
            nonlocal pending, pending_sources, last_flush
            if pending:
                table = pa.concat_tables(pending, promote_options="permissive")
                self.journal.append(table, self.config.output.compression)
            pending, pending_sources, last_flush = [], 0, time.monotonic()

        for batch in self._analyzed_batches(sources, todo):
            pending.append(batch)
            pending_sources += batch.num_rows
            analyzed += batch.num_rows
            log.info("analyzed %d/%d sources", analyzed, len(sources))
            if (
                pending_sources >= CHECKPOINT_MAX_SOURCES
                or time.monotonic() - last_flush >= interval
            ):
                flush()
        flush()
        self.timings["phase1_probe_analyze_embed_s"] = time.perf_counter() - started
        self.build_phase1_tables(sources)

    def build_phase1_tables(self, sources: list[str]) -> None:
        """``shots``, ``analysis`` and ``rejects`` from the journal's chunks, in source order;
        a source without a result (its worker failed for good) becomes a reject."""
        for folder in PHASE1_TABLES:
            self.store.remove(folder)
        by_stage: dict[str, Counter] = {"probe": Counter(), "analyze": Counter()}
        totals = Counter()
        seen: set[int] = set()
        with (
            self.writer("shots", schema.SHOTS) as shots,
            self.writer("analysis", self.analysis_schema) as clips,
            self.writer(journal.PHASE1_REJECTS, schema.REJECTS) as rejects,
        ):
            for batch in self.journal.chunks():
                seen.update(batch["source_index"].to_pylist())
                shots.write(_flatten(batch, "shots", schema.SHOTS))
                clips.write(_flatten(batch, "clips", self.analysis_schema))
                batch_rejects = _flatten(batch, "rejects", schema.REJECTS)
                rejects.write(batch_rejects)
                for stage, reason in zip(
                    batch_rejects["stage"].to_pylist(), batch_rejects["reason"].to_pylist()
                ):
                    by_stage[stage][reason] += 1
                for name in ("frames", "probe_s", "analyze_s"):
                    totals[name] += pc.sum(batch[name]).as_py() or 0
                for name in ("shots", "clips"):
                    totals[name] += pc.sum(pc.list_value_length(batch[name])).as_py() or 0
            lost = [
                {
                    "source": source,
                    "stage": "analyze",
                    "reason": "decode_error",
                    "detail": "no result: the Ray worker processing this source died on every "
                    "try (ray.<stage>.max_task_retries)",
                }
                for i, source in enumerate(sources)
                if i not in seen
            ]
            if lost:
                log.warning("%d sources have no result and are rejected", len(lost))
                rejects.write(schema.from_rows(lost, schema.REJECTS))
                by_stage["analyze"]["decode_error"] += len(lost)
        probe_rejected = sum(by_stage["probe"].values())
        self.record("discover", len(sources), len(sources), Counter())
        self.record("probe", len(sources), len(sources) - probe_rejected, by_stage["probe"])
        self.record(
            "analyze",
            len(sources) - probe_rejected,
            totals["clips"],
            by_stage["analyze"],
            shots=totals["shots"],
            frames=totals["frames"],
        )
        busy = totals["analyze_s"]
        stats = {
            "probe": {"busy_s": round(totals["probe_s"], 3)},
            "analyze": {
                "busy_s": round(busy, 3),
                "frames": totals["frames"],
                "frames_per_busy_s": round(totals["frames"] / busy, 1) if busy else None,
            },
        }
        self.journal.finish_phase1(
            {
                "funnel": {k: self.funnel[k] for k in ("discover", "probe", "analyze")},
                "stages": stats,
                "embedding_model": self.embedding_model,
                "timings": dict(self.timings),
            }
        )

    def restore_phase1(self) -> None:
        """Funnel, stage statistics and embedding model of phase 1, as the journal has them
        (phase 1 may have finished in an earlier, interrupted invocation)."""
        phase1 = self.journal.state["phase1"]
        self.funnel.update(phase1["funnel"])
        self.stage_stats = phase1["stages"]
        self.embedding_model = phase1["embedding_model"]
        for name, seconds in phase1["timings"].items():
            self.timings.setdefault(name, seconds)

    def _analyzed_batches(self, sources: list[str], todo: list[int]) -> Iterator[pa.Table]:
        if not todo:
            return
        items = [{"source": sources[i], "source_index": i} for i in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = map_stage(ds, "probe", self.config)
        ds = map_stage(ds, "analyze", self.config)
        ds = map_stage(ds, "embed", self.config, batch_size=self.config.embed.sources_per_batch)
        # A batch whose worker died on every retry (ray.<stage>.max_task_retries) is skipped
        # rather than failing the run; ``build_phase1_tables`` turns its sources into rejects.
        # Only here: a skipped caption or export batch would have no such accounting.
        ds.context.max_errored_blocks = -1
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")

    # Phase 3 ------------------------------------------------------------------------------

    def caption(self, index: pa.Table, wanted: np.ndarray) -> tuple[dict[str, dict], list[dict]]:
        """Caption the ``wanted`` clips (the survivors), one actor pool per captioner.

        Returns ``{clip_id: {caption, prompt, prompts, captioner}}`` and ``caption_failed``
        reject rows. A re-tier with the same caption config reuses the captions ``analysis``
        already holds (their tier tag updated) instead of captioning again."""
        cfg = self.config.caption
        ids = index["clip_id"].to_pylist()
        wanted_ids = [c for c, w in zip(ids, wanted) if w]
        if not cfg.enabled or not wanted_ids:
            self.record("caption", len(wanted_ids), len(wanted_ids), Counter(), enabled=cfg.enabled)
            return {}, []
        analysis = self.store.sub("analysis")
        # An analysis table written before keyframes were kept is captioned from thumbnails.
        stored = set(analysis.read_schema(analysis.files("")[0]).names)
        done = self._reusable_captions(index, wanted) if "captioner" in stored else {}
        todo = [c for c in wanted_ids if c not in done]
        assigned = assign_captioners(todo, cfg)
        results: dict[str, dict] = {}
        busy = 0.0
        for number, captioner in enumerate(cfg.captioners):
            mine = [c for c, a in zip(todo, assigned) if a == number]
            if not mine:
                continue
            ds = read_shards(analysis).select_columns(
                [c for c in CAPTION_INPUT_COLUMNS if c in stored]
            )
            ds = ds.map_batches(
                _only_clips, fn_kwargs={"ids": pa.array(mine, pa.string())}, batch_format="pyarrow"
            )
            ds = map_stage(
                ds,
                "caption",
                self.config,
                batch_size=cfg.batch_size,
                captioner=number,
                api_key=self.caption_keys.get(captioner.name),
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                busy += pc.sum(batch["caption_s"]).as_py() or 0.0
                for row in batch.to_pylist():
                    results[row["clip_id"]] = row
            log.info("captioned %d clips with %s", len(mine), captioner.name)
        by_id = {c: i for i, c in enumerate(ids)}
        failed = []
        for clip_id in sorted(c for c, r in results.items() if r["error"] is not None):
            i = by_id[clip_id]
            failed.append(
                {
                    "source": index["source"][i].as_py(),
                    "clip_id": clip_id,
                    "stage": "caption",
                    "reason": "caption_failed",
                    "detail": results.pop(clip_id)["error"],
                    "start_s": index["start_s"][i].as_py(),
                    "end_s": index["end_s"][i].as_py(),
                }
            )
        if failed:
            log.warning("%d clips failed to caption", len(failed))
        results.update(done)
        self.record(
            "caption",
            len(wanted_ids),
            len(results),
            Counter(r["reason"] for r in failed),
            captioners=dict(sorted(Counter(r["captioner"] for r in results.values()).items())),
            reused=len(done),
            busy_s=round(busy, 3),
        )
        return results, failed

    def _reusable_captions(self, index: pa.Table, wanted: np.ndarray) -> dict[str, dict]:
        """Captions ``analysis`` holds from a run with the same caption config, for the
        ``wanted`` clips; stand-in template captions are not reused (their captioner may
        succeed this time)."""
        if self.previous_caption_config != self.config.caption.model_dump(mode="json"):
            return {}
        columns = ["clip_id", "caption", "prompt", "prompts", "captioner"]
        table = read_table(self.store.sub("analysis"), columns=columns)
        tiers = dict(zip(index["clip_id"].to_pylist(), index["tier"].to_pylist()))
        done = {}
        for row, w in zip(table.to_pylist(), wanted):
            if w and row["caption"] and row["captioner"] != FALLBACK_CAPTIONER:
                row["caption"] = with_tier(row["caption"], tiers[row["clip_id"]])
                done[row["clip_id"]] = row
        return done

    def export(self, index: pa.Table, passed: np.ndarray) -> tuple[dict, list[dict]]:
        """Export every accepted clip once per distinct export spec among its tiers; a clip
        file an earlier run already wrote (same id, same spec) is reused.

        Returns ``{(clip_id, export_key): (clip_path, video)}`` and export reject rows."""
        if self.config.export.mode == "reference":
            return {}, []
        exported: dict = {}
        border_columns = [f"border_{side}" for side in BORDER_SIDES]
        clips = index.select(["clip_id", "source", "start_s", "end_s", *border_columns]).to_pylist()
        jobs: dict[str, dict[tuple[str, str], dict]] = {}
        for tier, tier_passed in zip(self.config.tiers, passed):
            key = export_key(tier.export)
            for i in np.flatnonzero(tier_passed):
                c = clips[i]
                rel = clip_relpath(key, c["clip_id"])
                if self.config.export.mode == "files" and self.store.is_file(rel):
                    exported[(c["clip_id"], key)] = (rel, None)
                    continue
                jobs.setdefault(c["source"], {})[(c["clip_id"], key)] = {
                    "clip_id": c["clip_id"],
                    "export_key": key,
                    "start_s": c["start_s"],
                    "end_s": c["end_s"],
                    "short_side": tier.export.short_side,
                    "fps": tier.export.fps,
                    "crop": [c[f"border_{side}"] or 0.0 for side in BORDER_SIDES]
                    if tier.export.crop_borders
                    else None,
                }
        if not jobs:
            return exported, []
        items = [{"source": s, "jobs": list(j.values())} for s, j in jobs.items()]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = map_stage(ds, "export", self.config, output=self.store.uri())
        by_id = {c["clip_id"]: c for c in clips}
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

    def annotate_analysis(self, columns: dict[str, pa.Array]) -> None:
        """Set whole columns of ``analysis`` (aligned with its shards read in order)."""
        offset = 0
        for path in self.store.files("analysis"):
            # Conformed first: an analysis table written before a column existed gains it.
            shard = schema.conform(self.store.read_parquet(path), self.analysis_schema)
            for name, values in columns.items():
                part = values.slice(offset, shard.num_rows)
                shard = shard.set_column(shard.schema.get_field_index(name), name, part)
            shard = schema.conform(shard, self.analysis_schema)
            self.store.write_parquet(path, shard, self.config.output.compression)
            offset += shard.num_rows

    def write_tiers(self, ids: np.ndarray, keep: np.ndarray, exported: dict) -> dict:
        """One folder per tier: its accepted rows of ``analysis`` with their media."""
        kept = [set(ids[k]) for k in keep]
        tier_schema = schema.tier_schema(self.dim)
        writers = [self.writer(f"tiers/{t.name}", tier_schema) for t in self.config.tiers]
        sizes = {t.name: {"clips": 0, "hours": 0.0} for t in self.config.tiers}
        for path in self.store.files("analysis"):
            shard = self.store.read_parquet(path)
            shard_ids = shard["clip_id"].to_pylist()
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
                writer.write(schema.conform(rows, tier_schema))
                sizes[tier.name]["clips"] += rows.num_rows
                sizes[tier.name]["hours"] += pc.sum(rows["duration_s"]).as_py() / 3600
        for writer in writers:
            writer.close()
        return {n: {"clips": s["clips"], "hours": round(s["hours"], 6)} for n, s in sizes.items()}

    def remove_stale_clips(self, exported: dict) -> None:
        """Delete exported clip files no tier refers to any more (after a re-tier)."""
        wanted = {path for path, _ in exported.values() if path}
        for path in self.store.walk("clips"):
            if path.endswith(".mp4") and path not in wanted:
                self.store.remove(path)

    def write_manifest(self, inputs: list[str], discovered: int, tier_sizes: dict) -> dict:
        reasons = read_table(self.store.sub("rejects"), columns=["reason"])["reason"].to_pylist()
        manifest = {
            "curate_version": _version("curate"),
            "created_unix": time.time(),
            "inputs": {"given": list(inputs), "discovered": discovered},
            "run": {
                "invocations": self.journal.state.get("invocations", 1),
                "sources_done_before": self.sources_done_before,
            },
            "embedding_model": self.embedding_model,
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
        self.store.write_json("manifest.json", manifest)
        return manifest


def _only_clips(batch: pa.Table, ids: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch["clip_id"], value_set=ids))


def caption_columns(ids: np.ndarray, kept: np.ndarray, captions: dict[str, dict]) -> dict:
    """``caption``, ``prompt``, ``prompts`` and ``captioner`` of every analysis row: set for
    the clips that reach a tier, null for every other."""
    rows = [captions.get(c) if k else None for c, k in zip(ids, kept)]
    return {
        "caption": pa.array([r and r["caption"] for r in rows], pa.string()),
        "prompt": pa.array([r and r["prompt"] for r in rows], pa.string()),
        "prompts": pa.array([r and r["prompts"] for r in rows], pa.list_(pa.string())),
        "captioner": pa.array([r and r["captioner"] for r in rows], pa.string()),
    }


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

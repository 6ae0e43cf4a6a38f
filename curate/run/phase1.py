"""Phase 1: probe, analyze, detect and embed every source on Ray Data, streaming, with the results
checkpointed to the run journal as they complete; then the ``shots`` and ``analysis`` tables
and the phase-1 rejects, built from the journal in source order."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data

from curate import schema, timing
from curate.config.sections import CurateConfig
from curate.contract import reject_row
from curate.run import journal
from curate.run.funnel import Funnel
from curate.run.journal import Journal
from curate.run.progress import Progress, Step
from curate.run.runner import map_stages
from curate.run.stage import Stage
from curate.run.writing import Outputs

log = logging.getLogger(__name__)

TABLES = ("shots", "analysis", journal.PHASE1_REJECTS)
"""Tables built from the journal's chunks when phase 1 completes (``rejects/`` and ``tiers/``
are rebuilt by every invocation's phase 2 and 3)."""

CHECKPOINT_MAX_SOURCES = 500
"""Analyzed sources the driver holds before writing them to the journal, whatever
``output.checkpoint_interval_s`` says: bounds the driver's memory and the work a crash
loses."""

LOST_DETAIL = (
    "no result: the Ray worker processing this source died on every try "
    "(ray.<stage>.max_task_retries)"
)


class Phase1:
    """Phase 1 of one run: ``stages`` are the probe, analyze, detect and embed stage classes."""

    def __init__(
        self,
        stages: tuple[type[Stage], ...],
        config: CurateConfig,
        outputs: Outputs,
        run_journal: Journal,
        funnel: Funnel,
        progress: Progress | None = None,
    ) -> None:
        self.stages = stages
        self.progress = progress or Progress(enabled=False)
        self.config = config
        self.outputs = outputs
        self.journal = run_journal
        self.funnel = funnel

    def run(self, sources: list[str], embedding_model: str | None) -> int:
        """Analyze every source the journal does not hold yet, recording them in the journal
        as they complete; then build the phase-1 tables. Returns how many sources an earlier
        invocation had done."""
        done = self.journal.done_sources()
        todo = [i for i in range(len(sources)) if i not in done]
        if done:
            self.progress.message(
                f"{len(done)} of {len(sources)} sources were analyzed before; "
                f"analyzing the other {len(todo)}"
            )
        with (
            self.funnel.timed("phase1_probe_analyze_embed_s"),
            self.progress.step("analyze", len(sources), "sources") as step,
        ):
            step.done = len(done)
            self.checkpoint(self.batches(sources, todo), step)
        with self.progress.step("analysis tables"):
            self.build_tables(sources, embedding_model)
        return len(done)

    def checkpoint(self, batches: Iterator[pa.Table], step: Step) -> None:
        """Write ``batches`` to the journal at least every ``output.checkpoint_interval_s``
        and every :data:`CHECKPOINT_MAX_SOURCES` sources; ``step`` counts them."""
        interval = self.config.output.checkpoint_interval_s
        pending: list[pa.Table] = []
        last_flush = time.monotonic()
        for batch in batches:
            pending.append(batch)
            step.advance(batch.num_rows)
            held = sum(t.num_rows for t in pending)
            if held >= CHECKPOINT_MAX_SOURCES or time.monotonic() - last_flush >= interval:
                self.flush(pending)
                pending, last_flush = [], time.monotonic()
        self.flush(pending)

    def flush(self, pending: list[pa.Table]) -> None:
        if pending:
            table = pa.concat_tables(pending, promote_options="permissive")
            self.journal.append(table, self.config.output.compression)

    def batches(self, sources: list[str], todo: list[int]) -> Iterator[pa.Table]:
        if not todo:
            return
        analyze = next(s for s in self.stages if s.name == "analyze")
        items = [{"source": sources[i], "source_index": i} for i in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = map_stages(
            ds,
            self.stages,
            self.config,
            lead=analyze,
            batch_sizes={"embed": self.config.embed.sources_per_batch},
        )
        # A batch whose worker died on every retry (ray.<stage>.max_task_retries; ray.analyze's
        # for the fused pool) is skipped rather than failing the run; ``build_tables`` turns
        # its sources into rejects. Only here: a skipped caption or export batch would have
        # no such accounting.
        ds.context.max_errored_blocks = -1
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")

    def build_tables(self, sources: list[str], embedding_model: str | None) -> None:
        """``shots``, ``analysis`` and ``rejects`` from the journal's chunks, in source order;
        a source without a result (its worker failed for good) becomes a reject."""
        for folder in TABLES:
            self.outputs.store.remove(folder)
        by_stage: dict[str, Counter] = {"probe": Counter(), "analyze": Counter()}
        totals: Counter = Counter()
        spent: dict[str, float] = {}
        seen: set[int] = set()
        out = self.outputs
        with (
            out.writer("shots", schema.SHOTS) as shots,
            out.writer("analysis", out.analysis_schema) as clips,
            out.writer(journal.PHASE1_REJECTS, schema.REJECTS) as rejects,
        ):
            for batch in self.journal.chunks():
                seen.update(batch["source_index"].to_pylist())
                shots.write(_flatten(batch, "shots", schema.SHOTS))
                clips.write(_flatten(batch, "clips", out.analysis_schema))
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
                if "timing" in batch.column_names:  # chunks of older versions have none
                    timing.add(spent, _map_sums(batch["timing"]))
            lost = [
                reject_row(source, "analyze", "decode_error", LOST_DETAIL)
                for i, source in enumerate(sources)
                if i not in seen
            ]
            if lost:
                log.warning("%d sources have no result and are rejected", len(lost))
                rejects.write(schema.from_rows(lost, schema.REJECTS))
                by_stage["analyze"]["decode_error"] += len(lost)
        self.record(len(sources), by_stage, totals, embedding_model, spent)

    def record(
        self,
        n: int,
        by_stage: dict[str, Counter],
        totals: Counter,
        embedding_model: str | None,
        spent: dict[str, float] | None = None,
    ) -> None:
        """Phase 1's funnel and stage statistics, into the funnel and the journal; ``spent``:
        the sources' summed ``timing`` (``curate.timing``), by part under each stage."""
        probe_rejected = sum(by_stage["probe"].values())
        self.funnel.record("discover", n, n, {})
        self.funnel.record("probe", n, n - probe_rejected, by_stage["probe"])
        self.funnel.record(
            "analyze",
            n - probe_rejected,
            totals["clips"],
            by_stage["analyze"],
            shots=totals["shots"],
            frames=totals["frames"],
        )
        busy = totals["analyze_s"]
        stats = {
            "probe": {"busy_s": round(totals["probe_s"], 3), "sources": n},
            "analyze": {
                "busy_s": round(busy, 3),
                "frames": totals["frames"],
                "frames_per_busy_s": round(totals["frames"] / busy, 1) if busy else None,
            },
        }
        for stage, measures in timing.nest(spent or {}).items():
            stats.setdefault(stage, {}).update(measures)
        self.journal.finish_phase1(
            {
                "funnel": {k: self.funnel.steps[k] for k in ("discover", "probe", "analyze")},
                "stages": stats,
                "embedding_model": embedding_model,
                "timings": dict(self.funnel.timings),
            }
        )


def _map_sums(column: pa.ChunkedArray) -> list[tuple[str, float]]:
    """The values of a map column summed by key, keys in the order they first appear."""
    entries = column.combine_chunks()
    pairs = pa.table({"key": entries.keys, "value": entries.items})
    if pairs.num_rows == 0:
        return []
    sums = pairs.group_by("key", use_threads=False).aggregate([("value", "sum")])
    return list(zip(sums["key"].to_pylist(), sums["value_sum"].to_pylist()))


def _flatten(batch: pa.Table, column: str, target: pa.Schema) -> pa.Table:
    """The rows of a list-of-struct column as a table of ``target``."""
    values = pc.list_flatten(batch[column])
    if len(values) == 0:
        return target.empty_table()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return schema.conform(pa.Table.from_struct_array(values), target)

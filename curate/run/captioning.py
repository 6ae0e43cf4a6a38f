"""Captioning of the survivors (phase 3): the expensive model time goes to the clips that
reach a tier, one actor pool per configured captioner; a re-tier with an unchanged caption
config reuses the captions ``analysis`` already holds."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from curate.caption.structured import FALLBACK_CAPTIONER, assign_captioners, with_tier
from curate.config.sections import CurateConfig
from curate.contract import reject_row
from curate.output.tables import read_table
from curate.run.funnel import Funnel
from curate.run.progress import Progress, Step
from curate.run.runner import map_stage, read_shards
from curate.run.stage import Stage
from curate.storage import Store

log = logging.getLogger(__name__)

CAPTION_COLUMNS = ["clip_id", "caption", "prompt", "prompts", "captioner"]


class Captioning:
    """Captions the survivors of one run with the caption stage ``stage``."""

    def __init__(
        self,
        stage: type[Stage],
        config: CurateConfig,
        analysis: Store,
        api_keys: dict,
        previous_config: dict | None = None,
        in_memory: bool = False,
    ) -> None:
        self.stage = stage
        self.in_memory = in_memory
        """The analysis table is small: read in the driver, not by Ray Data tasks."""
        self.config = config
        self.analysis = analysis
        self.api_keys = api_keys
        self.previous_config = previous_config
        """The caption config of the run whose ``analysis`` this is (a re-tier), if any."""

    def run(
        self, index: pa.Table, wanted: np.ndarray, funnel: Funnel, progress: Progress
    ) -> tuple[dict[str, dict], list[dict]]:
        """Caption the ``wanted`` clips of ``index``.

        Returns ``{clip_id: {caption, prompt, prompts, captioner}}`` and ``caption_failed``
        reject rows."""
        cfg = self.config.caption
        ids = index["clip_id"].to_pylist()
        wanted_ids = [c for c, w in zip(ids, wanted) if w]
        if not cfg.enabled or not wanted_ids:
            funnel.record("caption", len(wanted_ids), len(wanted_ids), {}, enabled=cfg.enabled)
            return {}, []
        # An analysis table written before keyframes were kept is captioned from thumbnails.
        stored = set(self.analysis.read_schema(self.analysis.files("")[0]).names)
        done = self.reusable(index, wanted) if "captioner" in stored else {}
        todo = [c for c in wanted_ids if c not in done]
        with progress.step("captions", len(todo), "clips") as step:
            results, busy = self.caption(todo, stored, step)
        by_id = {c: i for i, c in enumerate(ids)}
        failed = []
        for clip_id in sorted(c for c, r in results.items() if r["error"] is not None):
            i = by_id[clip_id]
            failed.append(
                reject_row(
                    index["source"][i].as_py(),
                    "caption",
                    "caption_failed",
                    results.pop(clip_id)["error"],
                    clip_id=clip_id,
                    start_s=index["start_s"][i].as_py(),
                    end_s=index["end_s"][i].as_py(),
                )
            )
        if failed:
            log.warning("%d clips failed to caption", len(failed))
        results.update(done)
        funnel.record(
            "caption",
            len(wanted_ids),
            len(results),
            Counter(r["reason"] for r in failed),
            captioners=dict(sorted(Counter(r["captioner"] for r in results.values()).items())),
            reused=len(done),
            busy_s=round(busy, 3),
        )
        return results, failed

    def caption(
        self, todo: list[str], stored: set[str], step: Step
    ) -> tuple[dict[str, dict], float]:
        """Caption stage rows of the ``todo`` clips, and the seconds the captioners spent;
        ``step`` counts them."""
        cfg = self.config.caption
        assigned = assign_captioners(todo, cfg)
        results: dict[str, dict] = {}
        busy = 0.0
        for number, captioner in enumerate(cfg.captioners):
            mine = [c for c, a in zip(todo, assigned) if a == number]
            if not mine:
                continue
            columns = [c for c in self.stage.input_columns if c in stored]
            ids = pa.array(mine, pa.string())
            runtime = {"captioner": number, "api_key": self.api_keys.get(captioner.name)}
            outputs: Iterable[pa.Table]
            if not self.in_memory:
                ds = read_shards(self.analysis).select_columns(columns)
                ds = ds.map_batches(_only_clips, fn_kwargs={"ids": ids}, batch_format="pyarrow")
                outputs = self.pool(ds, runtime)
            else:
                rows = _only_clips(read_table(self.analysis, columns=columns), ids)
                size = cfg.batch_size
                batches = [rows.slice(i, size) for i in range(0, len(rows), size)]
                if self.stage.runs_in_driver(self.config, **runtime):
                    outputs = map(self.stage.from_config(self.config, **runtime), batches)
                else:
                    outputs = self.pool(ray.data.from_arrow(batches), runtime)
            for batch in outputs:
                busy += pc.sum(batch["caption_s"]).as_py() or 0.0
                for row in batch.to_pylist():
                    results[row["clip_id"]] = row
                step.advance(batch.num_rows)
            log.debug("captioned %d clips with %s", len(mine), captioner.name)
        return results, busy

    def pool(self, ds: ray.data.Dataset, runtime: dict) -> Iterable[pa.Table]:
        """The caption stage's outputs over ``ds`` from an actor pool."""
        ds = map_stage(ds, self.stage, self.config, self.config.caption.batch_size, **runtime)
        return ds.iter_batches(batch_size=None, batch_format="pyarrow")

    def reusable(self, index: pa.Table, wanted: np.ndarray) -> dict[str, dict]:
        """Captions ``analysis`` holds from a run with the same caption config, for the
        ``wanted`` clips; stand-in template captions are not reused (their captioner may
        succeed this time)."""
        if self.previous_config != self.config.caption.model_dump(mode="json"):
            return {}
        table = read_table(self.analysis, columns=CAPTION_COLUMNS)
        tiers = dict(zip(index["clip_id"].to_pylist(), index["tier"].to_pylist()))
        done = {}
        for row, w in zip(table.to_pylist(), wanted):
            if w and row["caption"] and row["captioner"] != FALLBACK_CAPTIONER:
                row["caption"] = with_tier(row["caption"], tiers[row["clip_id"]])
                done[row["clip_id"]] = row
        return done


def _only_clips(batch: pa.Table, ids: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch["clip_id"], value_set=ids))

"""Pipeline assembly: sequences phase 1 (probe + analyze + embed, streaming on Ray Data),
phase 2 (tier gates, dedup, re-balancing over the analysis table), phase 3 (captions and
export of the survivors), the tier shards and the manifest. Each phase lives in its own
module; this one only knows their order and hands them the stages of the registry."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate import schema
from curate.config.sections import CurateConfig
from curate.contract import SCORE_COLUMNS, SIGNAL_FIELDS, VIDEO_ONLY_FIELDS
from curate.inputs import discover
from curate.output.record import Inputs, Manifest, RunInfo, Timing, Versions
from curate.output.tables import ShardWriter
from curate.run import journal
from curate.run.captioning import Captioning
from curate.run.clustering import preload_kmeans
from curate.run.exporting import export_clips
from curate.run.funnel import Funnel
from curate.run.journal import Journal
from curate.run.phase1 import Phase1
from curate.run.phase2 import Candidates, run_steps
from curate.run.progress import Progress
from curate.run.registry import PHASE2_STEPS, STAGES
from curate.run.runner import configure_data_context, ray_session
from curate.run.writing import Outputs, caption_columns
from curate.storage import Store

log = logging.getLogger(__name__)

OUTPUT_TABLES = ("shots", "analysis", "tiers", "rejects", "clips", journal.FOLDER)
"""Folders a run owns inside its output folder (cleared when a run starts over)."""

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


class OutputError(ValueError):
    """The output folder cannot be used."""


def prepare_output(store: Store) -> None:
    """Clear a previous run from ``store``; refuse a non-empty folder that is not ours."""
    if not store.is_empty() and not (
        store.is_file("manifest.json") or store.is_file(journal.STATE)
    ):
        raise OutputError(
            f"output folder {store} is not empty and holds no curate run; choose a new or "
            "empty folder for --output (curate clears what it owns in an output folder, so it "
            "will not write into one holding other files)"
        )
    store.makedirs()
    for name in (*OUTPUT_TABLES, "manifest.json"):
        store.remove(name)


def retier(
    config: CurateConfig,
    output: str | Path,
    *,
    ray_address: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
) -> Manifest:
    """Recompute tiers, dedup, re-balancing and the tier shards of an existing run from its
    ``analysis/`` table: no decoding, no embedding."""
    store = Store(output)
    if not store.is_file("manifest.json") or not store.files("analysis"):
        raise OutputError(f"{output} holds no finished curate run to re-tier")
    return Run(config, store, progress, verbose).retier(ray_address=ray_address)


def run(
    config: CurateConfig,
    inputs: list[str],
    output: str | Path,
    *,
    ray_address: str | None = None,
    progress: Progress | None = None,
    verbose: bool = False,
    fresh: bool = False,
) -> Manifest:
    """Run the whole pipeline and return the manifest it wrote to ``output/manifest.json``.

    A run whose journal is in ``output`` is continued (``fresh`` starts over instead).
    ``progress`` shows the steps as they run (none by default); ``verbose`` lets Ray's own
    console output through."""
    return Run(config, Store(output), progress, verbose).execute(
        inputs, ray_address=ray_address, fresh=fresh
    )


class Run:
    """One pipeline run into one output folder: the order of its phases and what it records."""

    def __init__(
        self,
        config: CurateConfig,
        store: Store,
        progress: Progress | None = None,
        verbose: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self.progress = progress or Progress(enabled=False)
        self.verbose = verbose
        self.journal = Journal(store)
        self.funnel = Funnel()
        self.outputs = Outputs(store, config.output, config.embed.dim)
        self.stage_stats: dict[str, dict] = {}
        self.embedding_model: str | None = None
        self.api_keys: dict = {}
        self.sources_done_before = 0
        """Sources an earlier, interrupted invocation of this run had finished."""
        self.previous_caption_config: dict | None = None
        """A re-tier reuses the captions of a run with this very caption config."""

    def check_stages(self) -> None:
        """Every stage's start-up check, before any work."""
        facts = {name: stage.check(self.config) for name, stage in STAGES.items()}
        self.embedding_model = facts["embed"]["embedding_model"]
        self.api_keys = facts["caption"]["api_keys"]

    def execute(self, inputs: list[str], *, ray_address: str | None, fresh: bool) -> Manifest:
        started = time.perf_counter()
        sources = discover(inputs, self.config.media)
        log.info("discovered %d inputs", len(sources))
        self.check_stages()
        expected = journal.fingerprint(self.config, sources)
        if not fresh and self.journal.exists:
            self.journal.load()
            self.journal.check(expected)
            self.journal.resume()
            self.progress.message(f"continuing the unfinished run in {self.store}")
        else:
            prepare_output(self.store)
            self.journal.start(expected)
        with self.session(ray_address):
            if self.journal.phase1_done:
                self.sources_done_before = len(sources)
            else:
                phase1 = tuple(STAGES[n] for n in ("probe", "analyze", "detect", "embed"))
                preload_kmeans()
                self.sources_done_before = Phase1(
                    phase1, self.config, self.outputs, self.journal, self.funnel, self.progress
                ).run(sources, self.embedding_model)
            self.restore_phase1()
            tier_sizes = self.curate()
        self.funnel.timings["total_s"] = time.perf_counter() - started
        manifest = self.write_manifest(inputs, len(sources), tier_sizes)
        self.journal.finish()
        return manifest

    def retier(self, *, ray_address: str | None) -> Manifest:
        """Phase 2 and 3 again from ``analysis/`` alone, with this run's config."""
        started = time.perf_counter()
        previous = Manifest.read(self.store)
        # The stages a re-tier runs: captions and export.
        self.api_keys = STAGES["caption"].check(self.config)["api_keys"]
        STAGES["export"].check(self.config)
        self.previous_caption_config = previous.config.get("caption")
        for stage in ("discover", "probe", "analyze"):
            self.funnel.steps[stage] = previous.funnel[stage].to_json_dict()
        self.stage_stats = previous.timing.stages
        self.embedding_model = previous.embedding_model
        # The stored embedding width: a re-tier embeds nothing.
        self.outputs.dim = schema.embedding_dim(
            self.store.read_schema(self.store.files("analysis")[0])
        )
        with self.session(ray_address):
            tier_sizes = self.curate()
        self.funnel.timings["total_s"] = time.perf_counter() - started
        return self.write_manifest(previous.inputs.given, previous.inputs.discovered, tier_sizes)

    @contextmanager
    def session(self, ray_address: str | None) -> Iterator[None]:
        with ray_session(self.config, ray_address, verbose=self.verbose, progress=self.progress):
            configure_data_context(self.verbose)
            yield

    def restore_phase1(self) -> None:
        """Funnel, stage statistics and embedding model of phase 1, as the journal has them
        (phase 1 may have finished in an earlier, interrupted invocation)."""
        phase1 = self.journal.state["phase1"]
        self.funnel.steps.update(phase1["funnel"])
        self.stage_stats = phase1["stages"]
        self.embedding_model = phase1["embedding_model"]
        for name, seconds in phase1["timings"].items():
            self.funnel.timings.setdefault(name, seconds)

    def curate(self) -> dict:
        """Phase 2 (tiers, dedup, re-balancing) and 3 (captions, export), then the tier
        shards. Rejects are written in that order after the phase-1 ones."""
        rejects = self.outputs.phase1_rejects()
        index = self.outputs.read_index()
        # A small table is read into the driver rather than by Ray Data tasks.
        in_memory = index.num_rows <= self.config.ray.driver_max_clips
        passed, survivors, columns = self.phase2(index, rejects, in_memory)
        ids = np.asarray(index["clip_id"].to_pylist(), dtype=object)
        accepted = passed & survivors
        with self.funnel.timed("phase3_caption_s"):
            # Captions first: the expensive model time goes to survivors only, and a clip
            # whose caption failed is not exported.
            captioning = Captioning(
                STAGES["caption"],
                self.config,
                self.store.sub("analysis"),
                self.api_keys,
                self.previous_caption_config,
                in_memory,
            )
            captions, caption_failed = captioning.run(
                index, accepted.any(axis=0), self.funnel, self.progress
            )
            rejects.write(schema.from_rows(caption_failed, schema.REJECTS))
            captioned = accepted & ~np.isin(ids, [r["clip_id"] for r in caption_failed])
        with self.funnel.timed("phase3_export_s"):
            exported, failed = export_clips(
                STAGES["export"],
                self.config,
                self.store,
                index,
                captioned,
                self.progress,
                stage_stats=self.stage_stats,
            )
            rejects.write(schema.from_rows(failed, schema.REJECTS))
            rejects.close()
        with self.funnel.timed("write_tiers_s"), self.progress.step("tier tables"):
            keep = captioned & ~np.isin(ids, [r["clip_id"] for r in failed])
            self.funnel.record(
                "export",
                int(captioned.any(axis=0).sum()),
                int(keep.any(axis=0).sum()),
                Counter(r["reason"] for r in failed),
                mode=self.config.export.mode,
            )
            captions = caption_columns(ids, keep.any(axis=0), captions)
            self.outputs.annotate_analysis({**columns, **captions})
            tier_sizes = self.outputs.write_tiers(self.config.tiers, ids, keep, exported)
            self.outputs.remove_stale_clips(exported)
        return tier_sizes

    def phase2(
        self, index: pa.Table, rejects: ShardWriter, in_memory: bool
    ) -> tuple[np.ndarray, np.ndarray, dict[str, pa.Array]]:
        """The tier gates, then dedup and re-balancing of the clips that passed a tier.

        Returns the nested tier membership (``[tiers, clips]``), the survivors of dedup and
        re-balancing, and the analysis columns those set (``tier`` is written at once: the
        dedup ranks clips by it, reading it from the shards)."""
        analysis = self.store.sub("analysis")
        # The tier step runs first, on every clip: dedup ranks clips by the ``tier`` it sets.
        tiers_step = PHASE2_STEPS["tiers"].from_config(self.config)
        steps = [s.from_config(self.config) for n, s in PHASE2_STEPS.items() if n != "tiers"]
        with self.funnel.timed("phase2_tiers_s"), self.progress.step("tiers") as shown:
            clips = Candidates(index, np.ones(index.num_rows, bool), analysis, in_memory)
            tiers = tiers_step.run(clips)
            shown.note = f"{int(tiers.kept.sum())} of {index.num_rows} clips pass a tier"
            rejects.write(schema.from_rows(tiers.rejects, schema.REJECTS))
            self.funnel.steps[tiers_step.name] = tiers.funnel
            index = index.set_column(
                index.schema.get_field_index("tier"), "tier", tiers.columns["tier"]
            )
            self.outputs.annotate_analysis(tiers.columns)
        with self.funnel.timed("phase2_dedup_rebalance_s"):
            result = run_steps(
                steps, Candidates(index, tiers.kept, analysis, in_memory), self.progress
            )
            rejects.write(schema.from_rows(result.rejects, schema.REJECTS))
            self.funnel.steps.update(result.funnel)
        return tiers.passed, result.kept, result.columns

    def write_manifest(self, inputs: list[str], discovered: int, tier_sizes: dict) -> Manifest:
        reasons = self.outputs.read("rejects", columns=["reason"])["reason"].to_pylist()
        manifest = Manifest(
            curate_version=_version("curate"),
            created_unix=time.time(),
            inputs=Inputs(given=list(inputs), discovered=discovered),
            run=RunInfo(
                invocations=self.journal.state.get("invocations", 1),
                sources_done_before=self.sources_done_before,
            ),
            embedding_model=self.embedding_model,
            funnel=self.funnel.steps,
            tiers=tier_sizes,
            rejects=dict(sorted(Counter(reasons).items())),
            timing=Timing(
                seconds={k: round(v, 3) for k, v in self.funnel.timings.items()},
                stages=self.stage_stats,
            ),
            config=self.config.model_dump(mode="json"),
            versions=Versions(
                python=platform.python_version(), packages={p: _version(p) for p in PACKAGES}
            ),
            signal_columns=schema.fields_to_json(SIGNAL_FIELDS),
            score_columns=list(SCORE_COLUMNS),
            video_only_columns=sorted(VIDEO_ONLY_FIELDS),
        )
        manifest.write(self.store)
        return manifest


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

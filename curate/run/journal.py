"""The run journal: what a run has finished, kept durably in its output so that re-running
the same command after a crash continues instead of starting over.

``OUT/journal/run.json`` holds the run's fingerprint (its inputs and every setting that
changes phase-1 results) and its progress; ``OUT/journal/phase1/chunk-*.parquet`` hold the
analyzed sources (probe, analysis, embeddings, rejects) as they complete, each chunk written
atomically. When every source is done the chunks become the ``shots`` and ``analysis`` tables
and the phase-1 rejects (``OUT/journal/phase1-rejects/``), and are deleted; phase 2 and 3
always start from ``analysis/`` and those rejects.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from curate.config.sections import CurateConfig
from curate.storage import Store

FOLDER = "journal"
STATE = f"{FOLDER}/run.json"
CHUNKS = f"{FOLDER}/phase1"
PHASE1_REJECTS = f"{FOLDER}/phase1-rejects"
"""The phase-1 rejects, kept apart: every invocation rebuilds ``rejects/`` from them."""

FINGERPRINT_SECTIONS = ("probe", "analyze", "embed")
"""Config sections whose values change what phase 1 writes. Everything else (tiers, dedup,
re-balancing, captions, export, resources, limits) is recomputed from ``analysis/`` on every
run, so it may change between a crash and the re-run."""

SPEED_ONLY_KEYS = {
    "analyze": {"decode_threads": True},
    "embed": {"batch_size": True, "sources_per_batch": True, "open_clip": {"cache_dir": True}},
}
"""Keys of those sections that change how fast phase 1 runs, not what it writes."""


class ResumeError(ValueError):
    """The output holds an unfinished or finished run that this command cannot continue."""


def fingerprint(config: CurateConfig, sources: list[str]) -> dict:
    """What must be equal for a run to continue another one's work."""
    digest = hashlib.sha256("\n".join(sources).encode()).hexdigest()
    settings = config.model_dump(
        mode="json", include=set(FINGERPRINT_SECTIONS), exclude=SPEED_ONLY_KEYS
    )
    return {"sources": {"count": len(sources), "sha256": digest}, **settings}


def _flat(data, prefix: str = "") -> dict:
    if isinstance(data, dict):
        out: dict = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new``."""
    a, b = _flat(old), _flat(new)
    return [
        f"{key}: {json.dumps(a.get(key))} -> {json.dumps(b.get(key))}"
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]


class Journal:
    """Progress of the run in ``store`` (its output folder)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.state: dict = {}

    @property
    def exists(self) -> bool:
        return self.store.is_file(STATE)

    def load(self) -> dict:
        self.state = self.store.read_json(STATE)
        return self.state

    def resume(self) -> None:
        """This invocation continues the run."""
        self.state["invocations"] = self.state.get("invocations", 1) + 1
        self.state["finished_unix"] = None
        self.save()

    def check(self, expected: dict) -> None:
        """Refuse to continue a run whose inputs or phase-1 settings differ from ours."""
        changed = differences(self.state.get("fingerprint", {}), expected)
        if not changed:
            return
        if any(c.startswith("sources.") for c in changed):
            old = self.state["fingerprint"]["sources"]["count"]
            lead = (
                f"the inputs differ from those of the run in {self.store} "
                f"({old} sources then, {expected['sources']['count']} now)"
            )
        else:
            shown = "; ".join(changed[:6]) + ("; ..." if len(changed) > 6 else "")
            lead = f"{self.store} holds a run made with other settings ({shown})"
            if _flat(self.state.get("fingerprint", {})).keys() != _flat(expected).keys():
                # Settings only one side has: another version of curate (other signals).
                lead += " or by another version of curate"
        raise ResumeError(
            f"{lead}: continuing it would mix inconsistent results. Run with the original "
            "inputs and settings to continue it, or add --fresh to start over "
            "(tiers, dedup, rebalance, caption and export settings may change freely)."
        )

    def start(self, expected: dict) -> None:
        self.state = {
            "fingerprint": expected,
            "started_unix": time.time(),
            "invocations": 1,
            "phase1": None,
            "finished_unix": None,
        }
        self.save()

    def save(self) -> None:
        self.store.write_json(STATE, self.state)

    # Phase 1 ------------------------------------------------------------------------------

    @property
    def phase1_done(self) -> bool:
        return self.state.get("phase1") is not None

    def chunk_files(self) -> list[str]:
        return self.store.files(CHUNKS, "chunk-*.parquet")

    def done_sources(self) -> set[int]:
        """Indexes of the sources whose results a chunk holds."""
        done: set[int] = set()
        for name in self.chunk_files():
            done.update(self.store.read_parquet(name, columns=["source_index"])[0].to_pylist())
        return done

    def append(self, batch: pa.Table, compression: str) -> None:
        """Record analyzed sources; named after the first source so chunks sort in order."""
        first = pc.min(batch["source_index"]).as_py()
        self.store.write_parquet(f"{CHUNKS}/chunk-{first:09d}.parquet", batch, compression)

    def chunks(self) -> Iterator[pa.Table]:
        """Every chunk, in source order."""
        for name in self.chunk_files():
            table = self.store.read_parquet(name)
            yield table.take(pc.sort_indices(table["source_index"]))

    def finish_phase1(self, summary: dict) -> None:
        """Phase 1 is in the output tables: record what phase 2 needs, drop the chunks."""
        self.state["phase1"] = summary
        self.save()
        self.store.remove(CHUNKS)

    def finish(self) -> None:
        self.state["finished_unix"] = time.time()
        self.save()

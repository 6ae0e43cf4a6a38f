"""Scale benchmark of phase 2: dedup and re-balance N synthetic 512-d clip embeddings.

Writes an ``analysis``-shaped Parquet folder of N clips (default 1,000,000) with skewed concept
clusters (Zipf sizes), frame hashes for every clip, and planted copies (half of them edited:
an embedding moved to a cosine of about 0.7, frame hashes with 1 bit in 16 flipped, found only
by the frame-hash check), then runs the real phase-2
code (the ``dedup`` and ``rebalance`` steps of ``curate.run.registry.PHASE2_STEPS``: sampled
K-means fit, Ray Data assignment, one task per cluster for pairwise dedup, re-balancing) on a
local Ray instance. The table is built
from the project's own ``analysis`` schema (``curate.schema.analysis_schema``): the columns
phase 2 reads get synthetic values, every other column is null.

Prints the wall time of phase 2; its peak memory, twice: the machine's used memory above its
level at start (everything: driver, Ray workers, object store, but also any other job on the
machine) and the PSS of this process tree (the driver and its local Ray instance only); and
the recall and precision of the planted duplicates.

Run from the repo root::

    python scripts/bench_phase2.py [--clips 1000000] [--workdir /tmp/curate-bench-phase2]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate import contract, schema
from curate.config.sections import CurateConfig
from curate.signals.fingerprint import HASH_BYTES, SCALES
from scripts.common.timing import Stopwatch

DIM = schema.EMBEDDING_DIM


def used_memory() -> int:
    """Bytes in use on the machine (MemTotal - MemAvailable)."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":")
        info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def tree_pss() -> int:
    """Bytes of PSS of this process and all its descendants (the driver and the processes of
    the local Ray instance it started: gcs_server, raylet, workers, agents). PSS splits shared
    pages (libraries, the object store in /dev/shm) between the processes that map them, so
    the sum is what the tree occupies, unlike a sum of RSS; other jobs on the machine do not
    count."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class PeakMemory:
    """Peaks of the machine's used memory (every 0.2 s) and of the PSS of this process tree
    (every 1 s: reading smaps walks page tables)."""

    def __init__(self) -> None:
        self.base = used_memory()
        self.peak = self.base
        self.tree_base = tree_pss()
        self.tree_peak = self.tree_base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        tick = 0
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, used_memory())
            tick += 1
            if tick % 5 == 0:
                self.tree_peak = max(self.tree_peak, tree_pss())

    def stop(self) -> tuple[float, float, float]:
        """GiB: machine peak above start, process-tree PSS at start and at its peak."""
        self._stop.set()
        self._thread.join()
        self.tree_peak = max(self.tree_peak, tree_pss())
        return (
            (self.peak - self.base) / 2**30,
            self.tree_base / 2**30,
            self.tree_peak / 2**30,
        )


FRAMES = 8
"""Hashed frames per synthetic clip (an 8 s clip at analyze.fingerprint.fps 1)."""

HASH_WIDTH = HASH_BYTES * len(SCALES)
"""Bytes per hashed frame (every centred region's hash)."""


def fingerprints(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Random frame hashes, ``(rows, FRAMES, HASH_WIDTH)`` bytes: unrelated clips are about
    128 bits apart."""
    return rng.integers(0, 256, size=(rows, FRAMES, HASH_WIDTH), dtype=np.uint8)


def edited(hashes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The hashes of an edited copy: 1 bit in 16 flipped (about 16 of 256 per region, as a
    crop or a brightness change does)."""
    flips = rng.random((*hashes.shape, 8)) < 1 / 16
    return hashes ^ np.packbits(flips, axis=-1)[..., 0]


def fingerprint_columns(hashes: np.ndarray) -> dict[str, pa.Array]:
    rows = len(hashes)
    flat = np.ascontiguousarray(hashes).reshape(-1)
    values = pa.Array.from_buffers(
        pa.binary(HASH_WIDTH), rows * FRAMES, [None, pa.py_buffer(flat)]
    ).cast(pa.binary())
    offsets = pa.array(np.arange(0, rows * FRAMES + 1, FRAMES, dtype=np.int32))
    times = pa.array(np.tile(np.arange(FRAMES, dtype=np.float32), rows))
    return {
        "fingerprint": pa.ListArray.from_arrays(offsets, values),
        "fingerprint_times": pa.ListArray.from_arrays(offsets, times),
    }


def part_table(
    ids: list[str], x: np.ndarray, hashes: np.ndarray, rng: np.random.Generator
) -> pa.Table:
    """One shard's rows. Only the columns phase 2 and the tier gates look at get values; every
    other column of the project's analysis schema (captions, keyframes, camera motion, ...) is
    null, so a column added to the schema never breaks this benchmark."""
    rows = len(ids)
    return schema.conform(
        pa.table(
            {
                "clip_id": ids,
                "source": [f"video{i}.mp4" for i in ids],
                "tier": ["default"] * rows,
                "sharpness": rng.uniform(10, 500, rows).astype(np.float32),
                "width": np.full(rows, 1280, np.int32),
                "height": np.full(rows, 720, np.int32),
                "duration_s": np.full(rows, 8.0),
                "motion_score": np.full(rows, 0.1, np.float32),
                "aesthetic": np.full(rows, 6.0, np.float32),
                **{
                    f"border_{side}": np.zeros(rows, np.float32)
                    for side in ("top", "bottom", "left", "right")
                },
                "orientation": ["landscape"] * rows,
                "start_s": np.zeros(rows),
                "end_s": np.full(rows, 8.0),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM),
                **fingerprint_columns(hashes),
            }
        ),
        contract.analysis_schema(DIM),
    )


def write_dataset(
    folder: Path, n: int, concepts: int, dup_share: float, seed: int, rows_per_file: int
) -> tuple[set[frozenset], set[frozenset]]:
    """Write ``n`` clips; returns the planted duplicate pairs (as clip-id pairs): copies with
    near-identical embeddings, and edited copies (half of them) whose embeddings moved to a
    cosine of about 0.7 and whose frame hashes differ in 1 bit of 16."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(concepts, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, concepts + 1) ** 1.1  # skewed concept sizes
    weights /= weights.sum()
    n_copies = int(n * dup_share)
    n_originals = n - n_copies
    truth: set[frozenset] = set()
    truth_edited: set[frozenset] = set()
    folder.mkdir(parents=True)
    originals_written = 0
    part = 0
    # Copies of the previous part's originals land in the next part, so they cross shards.
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []
    while originals_written < n_originals or pending:
        take = min(rows_per_file - len(pending), n_originals - originals_written)
        labels = rng.choice(concepts, size=take, p=weights)
        x = centers[labels] + rng.normal(scale=0.06, size=(take, DIM)).astype(np.float32)
        ids = [f"o{originals_written + i:08d}" for i in range(take)]
        hashes = fingerprints(rng, take)
        copy_ids = [c for c, _, _ in pending]
        if pending:
            x = np.concatenate([x, np.stack([v for _, v, _ in pending])])
            hashes = np.concatenate([hashes, np.stack([h for _, _, h in pending])])
            ids += copy_ids
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        table = part_table(ids, x, hashes, rng)
        pq.write_table(table, folder / f"part-{part:05d}.parquet", compression="zstd")
        part += 1
        originals_written += take
        # Plant copies of some originals of this part (into the next part, written after the
        # last originals if need be, so that a size that fits one part gets copies too).
        budget = n_copies - len(truth)  # one copy per planted original
        k = min(budget, take // 10)
        pending = []
        for j, i in enumerate(rng.choice(take, size=max(0, k), replace=False)):
            cid = f"c{ids[i][1:]}"
            if j % 2:  # an edited copy: only the frame hashes can tell
                copy = x[i] + rng.normal(scale=0.044, size=DIM).astype(np.float32)
                pending.append((cid, copy / np.linalg.norm(copy), edited(hashes[i], rng)))
                truth_edited.add(frozenset((ids[i], cid)))
            else:
                copy = x[i] + rng.normal(scale=0.005, size=DIM).astype(np.float32)
                pending.append((cid, copy / np.linalg.norm(copy), hashes[i]))
            truth.add(frozenset((ids[i], cid)))
        if not take and not pending:
            break
    return truth, truth_edited


PHASE2_CONFIG = {
    "dedup": {
        "threshold": 0.95,
        # Judging costs per candidate pair: 0.5 keeps the synthetic concepts' members (cosine
        # 0.35 +- 0.03) out of each other's candidates, as 0.4 would not.
        "candidate_threshold": 0.5,
        "max_cluster_size": 5000,
        "kmeans": {"k": 512, "min_cluster_size": 500, "sample_size": 50_000, "iterations": 15},
    },
    "rebalance": {
        "mode": "cap",
        "cap_quantile": 0.9,
        "kmeans": {"k": 256, "min_cluster_size": 20, "sample_size": 50_000, "iterations": 15},
    },
}
"""Dedup and re-balance settings sized for a million clips."""


def run_phase2(
    analysis_folder: Path,
) -> tuple[list, list, dict, dict, float, tuple[float, float, float]]:
    """The dedup and rebalance steps over ``analysis_folder`` on a local 2-CPU Ray: the clip
    ids, each clip's ``duplicate_of``, the dedup and rebalance funnels, wall seconds and
    :meth:`PeakMemory.stop`'s figures."""
    import ray

    from curate.output.tables import read_table
    from curate.run.phase2 import Candidates, run_steps
    from curate.run.registry import PHASE2_STEPS
    from curate.run.runner import configure_data_context
    from curate.storage import Store

    config = CurateConfig.model_validate(PHASE2_CONFIG)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    configure_data_context()
    memory = PeakMemory()
    watch = Stopwatch()
    analysis = Store(analysis_folder)
    index = read_table(analysis, columns=contract.index_columns(DIM))
    steps = [PHASE2_STEPS[name].from_config(config) for name in ("dedup", "rebalance")]
    result = run_steps(steps, Candidates(index, np.ones(index.num_rows, bool), analysis))
    elapsed = watch.seconds
    peaks = memory.stop()
    ray.shutdown()
    ids = index["clip_id"].to_pylist()
    return (
        ids,
        result.columns["duplicate_of"].to_pylist(),
        result.funnel["dedup"],
        result.funnel["rebalance"],
        elapsed,
        peaks,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--concepts", type=int, default=2000)
    parser.add_argument("--dup-share", type=float, default=0.05)
    parser.add_argument("--workdir", default="/tmp/curate-bench-phase2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    watch = Stopwatch()
    truth, truth_edited = write_dataset(
        work / "analysis",
        args.clips,
        args.concepts,
        args.dup_share,
        args.seed,
        rows_per_file=10_000,
    )
    written = sum(pq.read_metadata(f).num_rows for f in (work / "analysis").glob("part-*.parquet"))
    print(f"wrote {written} clips ({len(truth)} planted duplicate pairs) in {watch.seconds:.0f} s")

    ids, dup_of, dedup, rebalance, elapsed, peaks = run_phase2(work / "analysis")
    peak_gib, tree_start_gib, tree_peak_gib = peaks
    found = {frozenset((a, b)) for a, b in zip(ids, dup_of) if b}
    recall = len(found & truth) / max(1, len(truth))
    precision = len(found & truth) / max(1, len(found))
    print(
        f"phase 2 over {len(ids)} clips: wall {elapsed:.0f} s, "
        f"peak memory +{peak_gib:.2f} GiB above start (machine), "
        f"process tree PSS {tree_start_gib:.2f} -> peak {tree_peak_gib:.2f} GiB"
    )
    print(
        f"dedup: {len(found)} duplicates found, {len(truth)} planted: "
        f"recall {recall:.4f}, precision {precision:.4f}; edited copies (frame hashes only): "
        f"recall {len(found & truth_edited) / max(1, len(truth_edited)):.4f}; "
        f"{dedup['candidate_pairs']} candidate pairs judged, methods {dedup['methods']}"
    )
    print(
        f"rebalance: cap {rebalance.get('cap')}, largest cluster share "
        f"{rebalance['largest_share_before']:.4f} -> {rebalance['largest_share_after']:.4f}, "
        f"{rebalance['in'] - rebalance['out']} clips rebalanced out"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dedup stage (phase 2): near-duplicate clips by embedding cosine similarity.

K-means (centroids fitted on a bounded sample) splits the clips into clusters; each cluster is
one Ray task that compares its members pairwise, in blocks, and keeps the best member of each
duplicate group (greedy in rank order: a clip is a duplicate of the best-ranked kept clip it
resembles). Clusters larger than ``max_cluster_size`` are split again by k-means inside their
task, so no task is quadratic in a huge cluster.

Clips of the same source are not compared unless ``dedup.same_source`` is set: windows of one
video are different moments, not copies, and ``rebalance.per_source_cap`` limits how many of
them a dataset keeps.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.config.sections import CurateConfig, DedupConfig, StageResources
from curate.run.clustering import (
    Rows,
    assign,
    embeddings_of,
    fit_centroids,
    map_rows,
    sample_embeddings,
)
from curate.run.funnel import funnel_entry
from curate.run.phase2 import Candidates, Phase2Step, StepResult
from curate.run.runner import pool_args

log = logging.getLogger(__name__)

RANK_COLUMNS = [
    "clip_id",
    "source",
    "tier",
    "sharpness",
    "width",
    "height",
    "duration_s",
    "motion_score",
]
"""Columns the ranking of clips reads."""

BLOCK = 2048
"""Rows per block of the pairwise similarity computation (bounds its memory)."""


def rank_order(table: pa.Table, rank_by: list[str], tier_names: list[str]) -> np.ndarray:
    """Row order from best to worst by ``rank_by`` (ties broken by clip id)."""
    tier_index = {name: i for i, name in enumerate(tier_names)}

    def col(name: str) -> np.ndarray:
        return np.nan_to_num(table[name].to_numpy(zero_copy_only=False).astype(np.float64), nan=-1)

    keys = {
        "tier": lambda: np.array([tier_index.get(t, -1) for t in table["tier"].to_pylist()]),
        "sharpness": lambda: col("sharpness"),
        "resolution": lambda: np.minimum(col("width"), col("height")),
        "duration": lambda: col("duration_s"),
        "motion": lambda: col("motion_score"),
    }
    ids = np.array(table["clip_id"].to_pylist(), dtype=object)
    # np.lexsort sorts by the last key first, ascending: negate for "higher is better".
    sort_keys = [ids] + [-keys[name]() for name in reversed(rank_by)]
    return np.lexsort(sort_keys)


def similar_pairs(x: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """All ``(i, j, cos)`` with ``i < j`` and cosine >= threshold, computed block by block."""
    pairs = []
    for start in range(0, len(x), BLOCK):
        sims = x[start : start + BLOCK] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        rows += start
        upper = cols > rows
        pairs.extend(
            zip(
                rows[upper].tolist(),
                cols[upper].tolist(),
                sims[rows[upper] - start, cols[upper]].tolist(),
            )
        )
    return pairs


def greedy_groups(
    x: np.ndarray, sources: list[str], cfg: DedupConfig
) -> dict[int, tuple[int, float]]:
    """Rows are in rank order (best first). Returns ``{duplicate_row: (kept_row, cosine)}``."""
    neighbours: dict[int, list[tuple[int, float]]] = {}
    for i, j, s in similar_pairs(x, cfg.threshold):
        if not cfg.same_source and sources[i] == sources[j]:
            continue
        neighbours.setdefault(j, []).append((i, s))  # i ranks above j
    duplicate: dict[int, tuple[int, float]] = {}
    for j in sorted(neighbours):
        kept = [(i, s) for i, s in neighbours[j] if i not in duplicate]
        if kept:
            duplicate[j] = min(kept)  # the best-ranked kept clip it resembles
    return duplicate


def split(x: np.ndarray, limit: int, seed: int) -> list[np.ndarray]:
    """Row index sets of at most about ``limit`` rows, by k-means within ``x``."""
    if len(x) <= limit:
        return [np.arange(len(x))]
    k = int(np.ceil(len(x) / limit)) * 2
    from sklearn.cluster import KMeans  # imported when needed: 2 s

    labels = KMeans(n_clusters=k, n_init=1, max_iter=20, random_state=seed).fit_predict(x)
    parts = []
    for label in range(k):
        idx = np.flatnonzero(labels == label)
        if len(idx) == len(x):  # cannot split further (identical vectors)
            return [idx]
        parts.extend(idx[p] for p in split(x[idx], limit, seed + 1))
    return parts


class DedupCluster:
    """Compares the members of one cluster; returns its duplicates."""

    def __init__(self, cfg: DedupConfig, tier_names: list[str], seed: int) -> None:
        self.cfg = cfg
        self.tier_names = tier_names
        self.seed = seed

    def __call__(self, group: pa.Table) -> pa.Table:
        group = group.take(rank_order(group, self.cfg.rank_by, self.tier_names))
        ids = group["clip_id"].to_pylist()
        sources = group["source"].to_pylist()
        x = embeddings_of(group)
        rows = {"clip_id": [], "duplicate_of": [], "similarity": []}
        for part in split(x, self.cfg.max_cluster_size, self.seed):
            part = np.sort(part)  # keep rank order inside the part
            found = greedy_groups(x[part], [sources[i] for i in part], self.cfg)
            for j, (i, s) in sorted(found.items()):
                rows["clip_id"].append(ids[part[j]])
                rows["duplicate_of"].append(ids[part[i]])
                rows["similarity"].append(s)
        return pa.table(rows, schema=DUPLICATES)


DUPLICATES = pa.schema(
    [("clip_id", pa.string()), ("duplicate_of", pa.string()), ("similarity", pa.float32())]
)


def find_duplicates(
    rows: Rows,
    total: int,
    cfg: DedupConfig,
    tier_names: list[str],
    resources: StageResources,
    seed: int = 0,
) -> pa.Table:
    """Duplicates among ``rows`` (which must carry ``RANK_COLUMNS`` + embedding)."""
    if total < 2:
        return DUPLICATES.empty_table()
    sample = embeddings_of(sample_embeddings(rows, total, cfg.kmeans, seed))
    centroids = fit_centroids(sample, total, cfg.kmeans, seed)
    labelled = assign(rows, centroids, "dedup_cluster", resources)
    if isinstance(labelled, pa.Table):
        compare = DedupCluster(cfg, tier_names, seed)
        labels = labelled["dedup_cluster"]
        tables = [
            compare(labelled.filter(pc.equal(labels, label)))
            for label in pc.unique(labels).to_pylist()
        ]
    else:
        result = labelled.groupby("dedup_cluster").map_groups(
            DedupCluster,
            fn_constructor_kwargs={"cfg": cfg, "tier_names": tier_names, "seed": seed},
            batch_format="pyarrow",
            **pool_args(resources),
        )
        tables = list(result.iter_batches(batch_size=None, batch_format="pyarrow"))
    found = pa.concat_tables(tables) if tables else DUPLICATES.empty_table()
    log.info(
        "dedup: %d duplicates among %d clips in %d clusters", found.num_rows, total, len(centroids)
    )
    return found.cast(DUPLICATES).sort_by("clip_id")


def _with_tier(batch: pa.Table) -> pa.Table:
    """Clips that passed at least the loosest tier (the dedup candidates)."""
    return batch.filter(pc.is_valid(batch["tier"]))


class DedupStep(Phase2Step):
    """Drops near-duplicates among the clips that passed a tier; sets ``duplicate_of``."""

    name = "dedup"

    def __init__(
        self, dedup: DedupConfig, tier_names: list[str], resources: StageResources
    ) -> None:
        self.cfg = dedup
        self.tier_names = tier_names
        self.resources = resources

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {
            "dedup": config.dedup,
            "tier_names": [t.name for t in config.tiers],
            "resources": config.ray.phase2,
        }

    def run(self, clips: Candidates) -> StepResult:
        kept = clips.alive.copy()
        duplicate_of: list[str | None] = [None] * clips.index.num_rows
        rejects = []
        candidates = int(kept.sum())
        rows = clips.rows([*RANK_COLUMNS, "orientation", "embedding"])
        if self.cfg.enabled and rows is not None and candidates > 1:
            rows = map_rows(rows, _with_tier)
            found = find_duplicates(rows, candidates, self.cfg, self.tier_names, self.resources)
            for cid, original, sim in zip(
                found["clip_id"].to_pylist(),
                found["duplicate_of"].to_pylist(),
                found["similarity"].to_pylist(),
            ):
                row = clips.row_of[cid]
                kept[row] = False
                duplicate_of[row] = original
                detail = f"cosine {sim:.3f} >= dedup.threshold {self.cfg.threshold} with {original}"
                rejects.append(clips.reject(row, self.name, "duplicate", detail))
        return StepResult(
            kept=kept,
            columns={"duplicate_of": pa.array(duplicate_of, pa.string())},
            rejects=rejects,
            funnel=funnel_entry(
                candidates,
                int(kept.sum()),
                {"duplicate": len(rejects)} if rejects else {},
                enabled=self.cfg.enabled,
                threshold=self.cfg.threshold,
            ),
        )

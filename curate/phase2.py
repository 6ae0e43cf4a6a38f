"""Phase 2 after the quality gates: semantic dedup, then K-means re-balancing.

Embeddings are only ever read by Ray Data tasks from the ``analysis`` shards; the driver holds
scalar columns (ids, scores, cluster labels) and a bounded sample for each centroid fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.clustering import assign, embeddings_of, fit_centroids, sample_embeddings
from curate.config import CurateConfig
from curate.runner import read_shards
from curate.storage import Store
from stages.dedup import RANK_COLUMNS, find_duplicates
from stages.rebalance import rebalance

log = logging.getLogger(__name__)


@dataclass
class Phase2Result:
    survivors: np.ndarray
    """Per ``index`` row: still in the running after dedup and re-balancing."""
    columns: dict[str, pa.Array]
    """``cluster_id``, ``duplicate_of`` and ``sample_weight``, aligned with ``index``."""
    rejects: list[dict] = field(default_factory=list)
    funnel: dict[str, dict] = field(default_factory=dict)


def _with_tier(batch: pa.Table) -> pa.Table:
    """Clips that passed at least the loosest tier (the dedup candidates)."""
    return batch.filter(pc.is_valid(batch["tier"]))


def _funnel(rows_in: int, rows_out: int, reason: str, **extra) -> dict:
    dropped = rows_in - rows_out
    return {
        "in": rows_in,
        "out": rows_out,
        "rejected": {reason: dropped} if dropped else {},
        **extra,
    }


def dedup_and_rebalance(
    index: pa.Table, eligible: np.ndarray, analysis: Store, config: CurateConfig
) -> Phase2Result:
    """``index`` holds the scalar columns of every analysis row (``tier`` = strictest tier
    passed), in the order of the ``analysis`` shards; ``eligible`` marks the clips that
    passed a tier."""
    n = index.num_rows
    ids = index["clip_id"].to_pylist()
    row_of = {c: i for i, c in enumerate(ids)}
    survivors = eligible.copy()
    duplicate_of: list[str | None] = [None] * n
    result = Phase2Result(survivors, {})

    def reject(row: int, stage: str, reason: str, detail: str) -> None:
        result.rejects.append(
            {
                "source": index["source"][row].as_py(),
                "clip_id": ids[row],
                "stage": stage,
                "reason": reason,
                "detail": detail,
                "start_s": index["start_s"][row].as_py(),
                "end_s": index["end_s"][row].as_py(),
            }
        )

    ds = None
    if analysis.files(""):
        columns = [*RANK_COLUMNS, "orientation", "embedding"]
        ds = read_shards(analysis).select_columns(columns)
    candidates = int(eligible.sum())
    if config.dedup.enabled and ds is not None and candidates > 1:
        found = find_duplicates(
            ds.map_batches(_with_tier, batch_format="pyarrow"), candidates, config
        )
        for cid, kept, sim in zip(
            found["clip_id"].to_pylist(),
            found["duplicate_of"].to_pylist(),
            found["similarity"].to_pylist(),
        ):
            row = row_of[cid]
            survivors[row] = False
            duplicate_of[row] = kept
            reject(
                row,
                "dedup",
                "duplicate",
                f"cosine {sim:.3f} >= dedup.threshold {config.dedup.threshold} with {kept}",
            )
    result.funnel["dedup"] = _funnel(
        candidates,
        int(survivors.sum()),
        "duplicate",
        enabled=config.dedup.enabled,
        threshold=config.dedup.threshold,
    )

    cfg = config.rebalance
    cluster_id = np.full(n, -1, np.int32)
    weights = np.ones(n, np.float32)
    report: dict = {"enabled": cfg.enabled, "mode": cfg.mode}
    before = int(survivors.sum())
    if cfg.enabled and ds is not None and before:
        rows = np.flatnonzero(survivors)
        # Sample every clip by id hash, then keep the survivors' part of the sample: cheaper
        # than shipping the survivor ids to every task. The fraction is raised to make up.
        oversample = cfg.kmeans.model_copy(
            update={"sample_size": min(4, n // before + 1) * cfg.kmeans.sample_size}
        )
        sample = sample_embeddings(ds, n, oversample, cfg.seed)
        alive = pa.array([survivors[row_of[c]] for c in sample["clip_id"].to_pylist()], pa.bool_())
        sample = embeddings_of(sample.filter(alive))[: cfg.kmeans.sample_size]
        centroids = fit_centroids(sample, before, cfg.kmeans, cfg.seed)
        # Every analysis row gets a concept cluster, survivors or not.
        labelled = assign(
            ds.select_columns(["clip_id", "embedding"]), centroids, "cluster_id", config
        )
        for batch in labelled.select_columns(["clip_id", "cluster_id"]).iter_batches(
            batch_size=None, batch_format="pyarrow"
        ):
            labels = batch["cluster_id"].to_numpy()
            cluster_id[[row_of[c] for c in batch["clip_id"].to_pylist()]] = labels
        balanced = rebalance(
            index.take(rows),
            cluster_id[rows],
            cfg,
            config.dedup.rank_by,
            [t.name for t in config.tiers],
        )
        weights[rows] = balanced.weights
        for local, detail in sorted(balanced.dropped.items()):
            survivors[rows[local]] = False
            reject(int(rows[local]), "rebalance", "rebalanced_out", detail)
        report.update(balanced.report)
    result.funnel["rebalance"] = _funnel(before, int(survivors.sum()), "rebalanced_out", **report)
    result.columns = {
        "cluster_id": pa.array(
            np.where(cluster_id >= 0, cluster_id, 0), pa.int32(), mask=cluster_id < 0
        ),
        "duplicate_of": pa.array(duplicate_of, pa.string()),
        "sample_weight": pa.array(weights, pa.float32(), mask=~survivors),
    }
    log.info(
        "phase 2: %d candidates, %d after dedup, %d after re-balancing",
        candidates,
        before,
        int(survivors.sum()),
    )
    return result

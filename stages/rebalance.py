"""Re-balancing stage (phase 2): even out concepts after dedup.

Every clip gets a ``cluster_id`` from k-means over embeddings (its own ``k``). Then, in
``cap`` mode, each cluster keeps at most ``cap`` clips (or the ``cap_quantile`` of cluster
sizes), best-ranked first; in ``weight`` mode nothing is dropped and each clip gets a
``sample_weight`` inversely proportional to its cluster's size to a power. An optional
per-source cap (at most N clips from one video) and an orientation mix target (Movie Gen's
60 % landscape / 40 % portrait, applied as a best-effort cap) follow. Dropped clips become
``rebalanced_out`` rejects. Everything is deterministic: ranks break ties by clip id.

Selection reads only scalar columns (a few bytes per clip), never embeddings.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from curate import schema
from curate.config.sections import CurateConfig, RebalanceConfig, StageResources
from curate.run.clustering import (
    Rows,
    assign,
    embeddings_of,
    fit_centroids,
    sample_embeddings,
    tables_of,
)
from curate.run.funnel import funnel_entry
from curate.run.phase2 import Candidates, Phase2Step, StepResult
from stages.dedup import rank_order

log = logging.getLogger(__name__)


@dataclass
class RebalanceResult:
    dropped: dict[int, str] = field(default_factory=dict)
    """Row -> detail, for rows rebalanced out."""
    weights: np.ndarray | None = None
    report: dict = field(default_factory=dict)


def _sizes(labels: np.ndarray) -> dict[int, int]:
    return {int(k): int(v) for k, v in sorted(Counter(labels.tolist()).items())}


def rebalance(
    table: pa.Table,
    clusters: np.ndarray,
    cfg: RebalanceConfig,
    rank_by: list[str],
    tier_names: list[str],
) -> RebalanceResult:
    """``table`` holds the surviving clips (rank columns + orientation); ``clusters`` their
    cluster ids."""
    n = table.num_rows
    result = RebalanceResult(weights=np.ones(n, np.float32))
    before = _sizes(clusters)
    order = rank_order(table, rank_by, tier_names)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    alive = np.ones(n, bool)

    if cfg.mode == "cap" and n:
        sizes = np.array(list(before.values()))
        cap = cfg.cap or max(1, math.ceil(float(np.quantile(sizes, cfg.cap_quantile or 1.0))))
        for cluster in before:
            members = np.flatnonzero(clusters == cluster)
            for row in members[np.argsort(rank[members])][cap:]:
                alive[row] = False
                result.dropped[int(row)] = f"cluster {cluster}: cap {cap} of {before[cluster]}"
        result.report["cap"] = cap
    elif cfg.mode == "weight" and n:
        size_of = np.array([before[c] for c in clusters.tolist()], np.float64)
        w = size_of**-cfg.weight_power
        result.weights = (w / w.mean()).astype(np.float32)

    if cfg.per_source_cap:
        sources = np.array(table["source"].to_pylist(), dtype=object)
        for source in np.unique(sources[alive]):
            members = np.flatnonzero((sources == source) & alive)
            for row in members[np.argsort(rank[members])][cfg.per_source_cap :]:
                alive[row] = False
                result.dropped[int(row)] = (
                    f"cluster {clusters[row]}: per-source cap {cfg.per_source_cap}"
                )

    orientations = np.array(table["orientation"].to_pylist(), dtype=object)
    if cfg.orientation is not None:
        _orientation_cap(orientations, rank, clusters, alive, cfg, result)
    kept = orientations[alive]
    landscape, portrait = int((kept == "landscape").sum()), int((kept == "portrait").sum())
    result.report.update(
        clusters_before=before,
        clusters_after=_sizes(clusters[alive]),
        largest_share_before=max(before.values()) / n if n else 0.0,
        largest_share_after=max(_sizes(clusters[alive]).values(), default=0) / max(1, alive.sum()),
        orientation_mix={
            "landscape": landscape,
            "portrait": portrait,
            "square": int(alive.sum()) - landscape - portrait,
            "landscape_share": landscape / max(1, landscape + portrait),
        },
    )
    return result


def _orientation_cap(orientations, rank, clusters, alive, cfg: RebalanceConfig, result) -> None:
    """Drop the lowest-ranked clips of the over-represented orientation, towards the target
    landscape share, never more than ``max_drop_fraction`` of that orientation."""
    target = cfg.orientation.landscape
    counts = {o: int(((orientations == o) & alive).sum()) for o in ("landscape", "portrait")}
    total = counts["landscape"] + counts["portrait"]
    if total == 0 or target in (0.0, 1.0):
        return
    if counts["landscape"] / total > target:
        over, other, share = "landscape", counts["portrait"], target
    else:
        over, other, share = "portrait", counts["landscape"], 1 - target
    wanted = math.floor(other * share / (1 - share))
    floor = math.ceil(counts[over] * (1 - cfg.orientation.max_drop_fraction))
    keep = max(wanted, floor)
    members = np.flatnonzero((orientations == over) & alive)
    for row in members[np.argsort(rank[members])][keep:]:
        alive[row] = False
        result.dropped[int(row)] = f"cluster {clusters[row]}: orientation mix {over} over target"
    result.report["orientation_target_landscape"] = target


class RebalanceStep(Phase2Step):
    """Gives every analysis row a concept cluster (``cluster_id``), then caps or weights
    (``sample_weight``) the clips still alive per cluster, source and orientation."""

    name = "rebalance"

    def __init__(
        self,
        rebalance: RebalanceConfig,
        rank_by: list[str],
        tier_names: list[str],
        resources: StageResources,
    ) -> None:
        self.cfg = rebalance
        self.rank_by = rank_by
        self.tier_names = tier_names
        self.resources = resources

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {
            "rebalance": config.rebalance,
            "rank_by": config.dedup.rank_by,
            "tier_names": [t.name for t in config.tiers],
            "resources": config.ray.phase2,
        }

    def run(self, clips: Candidates) -> StepResult:
        cfg = self.cfg
        n = clips.index.num_rows
        kept = clips.alive.copy()
        cluster_id = np.full(n, -1, np.int32)
        weights = np.ones(n, np.float32)
        report: dict = {"enabled": cfg.enabled, "mode": cfg.mode}
        rejects = []
        before = int(kept.sum())
        rows = clips.rows(["clip_id", "embedding"])
        if cfg.enabled and rows is not None and before:
            cluster_id = self.clusters(clips, rows)
            media = schema.row_media(clips.index)
            # Videos and images share the concept clusters but are balanced apart: each kind
            # trains its own stage.
            present = set(media[kept])
            kinds = [k for k in ("video", "image") if k in present]
            for kind in kinds:
                rows = np.flatnonzero(kept & (media == kind))
                balanced = rebalance(
                    clips.index.take(rows), cluster_id[rows], cfg, self.rank_by, self.tier_names
                )
                weights[rows] = balanced.weights
                for local, detail in sorted(balanced.dropped.items()):
                    kept[rows[local]] = False
                    rejects.append(
                        clips.reject(int(rows[local]), self.name, "rebalanced_out", detail)
                    )
                # The first kind's figures at the top (the report draws them), the next's apart.
                report.update(balanced.report if kind == kinds[0] else {kind: balanced.report})
        log.info("re-balancing: %d of %d clips kept", int(kept.sum()), before)
        return StepResult(
            kept=kept,
            columns={
                "cluster_id": pa.array(
                    np.where(cluster_id >= 0, cluster_id, 0), pa.int32(), mask=cluster_id < 0
                ),
                "sample_weight": pa.array(weights, pa.float32(), mask=~kept),
            },
            rejects=rejects,
            funnel=funnel_entry(
                before,
                int(kept.sum()),
                {"rebalanced_out": len(rejects)} if rejects else {},
                **report,
            ),
        )

    def clusters(self, clips: Candidates, rows: Rows) -> np.ndarray:
        """K-means concept cluster of every analysis row, survivors or not; centroids are
        fitted on a sample of the clips still alive."""
        n, alive = clips.index.num_rows, clips.alive
        before = int(alive.sum())
        # Sample every clip by id hash, then keep the survivors' part of the sample: cheaper
        # than shipping the survivor ids to every task. The fraction is raised to make up.
        kmeans = self.cfg.kmeans
        oversample = kmeans.model_copy(
            update={"sample_size": min(4, n // before + 1) * kmeans.sample_size}
        )
        sample = sample_embeddings(rows, n, oversample, self.cfg.seed)
        chosen = [alive[clips.row_of[c]] for c in sample["clip_id"].to_pylist()]
        sample = embeddings_of(sample.filter(pa.array(chosen, pa.bool_())))[: kmeans.sample_size]
        centroids = fit_centroids(sample, before, kmeans, self.cfg.seed)
        cluster_id = np.full(n, -1, np.int32)
        labelled = assign(rows, centroids, "cluster_id", self.resources)
        for batch in tables_of(labelled, ["clip_id", "cluster_id"]):
            labels = batch["cluster_id"].to_numpy()
            cluster_id[[clips.row_of[c] for c in batch["clip_id"].to_pylist()]] = labels
        return cluster_id

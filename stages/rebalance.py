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

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curate.config import RebalanceConfig
from stages.dedup import rank_order


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

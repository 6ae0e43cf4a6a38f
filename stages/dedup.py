"""Dedup stage (phase 2): near-duplicates and copies, found the way copy detection finds them.

1. **Candidates** from the embeddings: K-means (centroids fitted on a bounded sample) splits
   the clips into clusters; each cluster is one Ray task that compares its members pairwise,
   in blocks, and keeps each clip's ``max_candidates`` most similar clips above
   ``candidate_threshold``. Clusters larger than ``max_cluster_size`` are split again by
   k-means inside their task, so no task is quadratic in a huge cluster.
2. **Judging** each candidate pair (``curate.copy_detection.judge``), in Ray tasks that read
   only the candidates' frame hashes and keyframes: a cosine of at least ``threshold`` decides
   alone (``embedding``); else the frame hashes aligned in time (``frame-hash``: which seconds
   of one are which of the other, at what speed, mirrored or not); else, for the
   ``verify.max_pairs`` most similar pairs, ORB keypoints + RANSAC on the keyframes
   (``verified``: crops, bars, picture-in-picture, logos).
3. **Groups**, greedy in rank order: a clip is a duplicate of the best-ranked kept clip it
   copies; ``duplicate_of``, ``duplicate_similarity``, ``duplicate_method`` and
   ``duplicate_span`` (the matched seconds in both clips) say why.

Clips of the same source are not compared unless ``dedup.same_source`` is set: windows of one
video are different moments, not copies, and ``rebalance.per_source_cap`` limits how many of
them a dataset keeps.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.config.sections import CurateConfig, DedupConfig, StageResources
from curate.copy_detection import ClipEvidence, judge
from curate.output.tables import shards
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
from curate.storage import Store

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


def candidate_pairs(
    x: np.ndarray, sources: list[str], cfg: DedupConfig
) -> list[tuple[int, int, float]]:
    """Rows are in rank order (best first). Each row's ``max_candidates`` most similar rows
    with cosine >= ``candidate_threshold``, as ``(better_row, worse_row, cosine)`` pairs,
    computed block by block."""
    pairs: dict[tuple[int, int], float] = {}
    k = cfg.max_candidates
    for start in range(0, len(x), BLOCK):
        sims = x[start : start + BLOCK] @ x.T
        rows = np.arange(start, start + len(sims))
        sims[rows - start, rows] = -1.0  # a clip is not its own candidate
        if not cfg.same_source:
            src = np.asarray(sources, dtype=object)
            sims[src[rows][:, None] == src[None, :]] = -1.0
        top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        for r, cols in zip(rows.tolist(), top):
            for c in cols.tolist():
                cos = float(sims[r - start, c])
                if cos >= cfg.candidate_threshold:
                    pairs[(min(r, c), max(r, c))] = cos
    return [(i, j, cos) for (i, j), cos in sorted(pairs.items())]


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
    """Finds the candidate pairs among the members of one cluster."""

    def __init__(self, cfg: DedupConfig, tier_names: list[str], seed: int) -> None:
        self.cfg = cfg
        self.tier_names = tier_names
        self.seed = seed

    def __call__(self, group: pa.Table) -> pa.Table:
        group = group.take(rank_order(group, self.cfg.rank_by, self.tier_names))
        ids = group["clip_id"].to_pylist()
        sources = group["source"].to_pylist()
        x = embeddings_of(group)
        rows: dict[str, list] = {"clip_id": [], "original": [], "cosine": []}
        for part in split(x, self.cfg.max_cluster_size, self.seed):
            part = np.sort(part)  # keep rank order inside the part
            for i, j, cos in candidate_pairs(x[part], [sources[i] for i in part], self.cfg):
                rows["clip_id"].append(ids[part[j]])
                rows["original"].append(ids[part[i]])
                rows["cosine"].append(cos)
        return pa.table(rows, schema=CANDIDATES)


CANDIDATES = pa.schema(
    [("clip_id", pa.string()), ("original", pa.string()), ("cosine", pa.float32())]
)
"""Candidate pairs: ``clip_id`` ranks below ``original`` (it would be the duplicate)."""

EVIDENCE_COLUMNS = ["clip_id", "duration_s", "fingerprint", "fingerprint_times", "keyframes"]
"""What judging a pair reads of each clip."""

MATCHES = pa.schema(
    [
        ("clip_id", pa.string()),
        ("original", pa.string()),
        ("method", pa.string()),
        ("similarity", pa.float32()),
        ("span", schema.DUPLICATE_SPAN),
        ("detail", pa.string()),
    ]
)
"""Candidate pairs judged to be copies."""


def find_candidates(
    rows: Rows,
    total: int,
    cfg: DedupConfig,
    tier_names: list[str],
    resources: StageResources,
    seed: int = 0,
) -> pa.Table:
    """Candidate pairs among ``rows`` (which must carry ``RANK_COLUMNS`` + embedding)."""
    if total < 2:
        return CANDIDATES.empty_table()
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
    found = pa.concat_tables(tables) if tables else CANDIDATES.empty_table()
    log.info(
        "dedup: %d candidate pairs among %d clips in %d clusters",
        found.num_rows,
        total,
        len(centroids),
    )
    return found.cast(CANDIDATES)


class JudgePairs:
    """Judges a batch of candidate pairs (with a ``verify`` flag each), reading the frame
    hashes and keyframes of just those clips from the ``analysis`` shards."""

    def __init__(self, cfg: DedupConfig, analysis: Store) -> None:
        self.cfg = cfg
        self.analysis = analysis

    def evidence(self, ids: list[str]) -> dict[str, ClipEvidence]:
        data = shards(self.analysis)
        columns = [c for c in EVIDENCE_COLUMNS if c in data.schema.names]
        table = data.to_table(columns=columns, filter=pc.field("clip_id").isin(ids))
        out = {}
        for row in table.to_pylist():
            out[row["clip_id"]] = ClipEvidence(
                duration=row["duration_s"] or 0.0,
                fingerprint=row.get("fingerprint"),
                times=np.asarray(row.get("fingerprint_times") or [], np.float32),
                keyframes=row.get("keyframes") or [],
            )
        return out

    def __call__(self, pairs: pa.Table) -> pa.Table:
        ids = sorted(set(pairs["clip_id"].to_pylist()) | set(pairs["original"].to_pylist()))
        clips = self.evidence(ids)
        rows: dict[str, list] = {name: [] for name in MATCHES.names}
        for pair in pairs.to_pylist():
            found = judge(
                clips[pair["original"]],
                clips[pair["clip_id"]],
                pair["cosine"],
                self.cfg,
                verify_pair=pair["verify"],
            )
            if found is None:
                continue
            start, end, of_start, of_end = found.span
            rows["clip_id"].append(pair["clip_id"])
            rows["original"].append(pair["original"])
            rows["method"].append(found.method)
            rows["similarity"].append(found.similarity)
            rows["span"].append(
                {"start_s": start, "end_s": end, "of_start_s": of_start, "of_end_s": of_end}
            )
            rows["detail"].append(found.detail)
        return pa.table(rows, schema=MATCHES)


JUDGE_BATCH = 256
"""Candidate pairs per judging task."""


def judge_pairs(
    pairs: pa.Table, cfg: DedupConfig, analysis: Store, resources: StageResources, in_memory: bool
) -> pa.Table:
    """The candidate pairs that are copies. The ``verify.max_pairs`` most similar pairs may go
    to keypoint verification; the others are judged on embeddings and frame hashes only."""
    if not pairs.num_rows:
        return MATCHES.empty_table()
    pairs = pairs.sort_by([("cosine", "descending"), ("clip_id", "ascending")])
    verify = np.arange(pairs.num_rows) < cfg.verify.max_pairs
    pairs = pairs.append_column("verify", pa.array(verify))
    if in_memory:
        judge_batch = JudgePairs(cfg, analysis)
        tables = [
            judge_batch(pairs.slice(start, JUDGE_BATCH))
            for start in range(0, pairs.num_rows, JUDGE_BATCH)
        ]
    else:
        import ray  # the driver already runs Ray when the table is this large

        judged = ray.data.from_arrow(pairs).map_batches(
            JudgePairs,
            fn_constructor_kwargs={"cfg": cfg, "analysis": analysis},
            batch_size=JUDGE_BATCH,
            batch_format="pyarrow",
            **pool_args(resources),
        )
        tables = list(judged.iter_batches(batch_size=None, batch_format="pyarrow"))
    found = pa.concat_tables(tables).cast(MATCHES) if tables else MATCHES.empty_table()
    log.info("dedup: %d of %d candidate pairs are copies", found.num_rows, pairs.num_rows)
    return found


def greedy_groups(matches: pa.Table, rank: dict[str, int]) -> dict[str, dict]:
    """``{duplicate: match row}``: each clip, in rank order, is a duplicate of the best-ranked
    clip it copies that is itself kept."""
    by_clip: dict[str, list[dict]] = {}
    for row in matches.to_pylist():
        by_clip.setdefault(row["clip_id"], []).append(row)
    duplicate: dict[str, dict] = {}
    for clip in sorted(by_clip, key=rank.__getitem__):
        kept = [m for m in by_clip[clip] if m["original"] not in duplicate]
        if kept:
            duplicate[clip] = min(kept, key=lambda m: rank[m["original"]])
    return duplicate


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
        n = clips.index.num_rows
        columns: dict[str, list] = {name: [None] * n for name in DUPLICATE_COLUMNS}
        rejects = []
        candidates = int(kept.sum())
        methods: Counter[str] = Counter()
        pairs = 0
        rows = clips.rows([*RANK_COLUMNS, "orientation", "embedding"])
        if self.cfg.enabled and rows is not None and candidates > 1:
            rows = map_rows(rows, _with_tier)
            found = find_candidates(rows, candidates, self.cfg, self.tier_names, self.resources)
            pairs = found.num_rows
            matches = judge_pairs(found, self.cfg, clips.analysis, self.resources, clips.in_memory)
            for cid, match in sorted(greedy_groups(matches, self.rank(clips, matches)).items()):
                row = clips.row_of[cid]
                kept[row] = False
                columns["duplicate_of"][row] = match["original"]
                columns["duplicate_similarity"][row] = match["similarity"]
                columns["duplicate_method"][row] = match["method"]
                columns["duplicate_span"][row] = match["span"]
                methods[match["method"]] += 1
                detail = f"{match['method']}: {match['detail']}; copy of {match['original']}"
                rejects.append(clips.reject(row, self.name, "duplicate", detail))
        return StepResult(
            kept=kept,
            columns={
                name: pa.array(values, DUPLICATE_COLUMNS[name]) for name, values in columns.items()
            },
            rejects=rejects,
            funnel=funnel_entry(
                candidates,
                int(kept.sum()),
                {"duplicate": len(rejects)} if rejects else {},
                enabled=self.cfg.enabled,
                threshold=self.cfg.threshold,
                candidate_pairs=pairs,
                methods=dict(sorted(methods.items())),
            ),
        )

    def rank(self, clips: Candidates, matches: pa.Table) -> dict[str, int]:
        """Rank (0 = best) of every clip in ``matches`` among them."""
        ids = sorted(set(matches["clip_id"].to_pylist()) | set(matches["original"].to_pylist()))
        table = clips.index.take([clips.row_of[c] for c in ids])
        order = rank_order(table, self.cfg.rank_by, self.tier_names)
        return {ids[k]: position for position, k in enumerate(order.tolist())}


DUPLICATE_COLUMNS = {
    "duplicate_of": pa.string(),
    "duplicate_similarity": pa.float32(),
    "duplicate_method": pa.string(),
    "duplicate_span": schema.DUPLICATE_SPAN,
}
"""The ``analysis`` columns the step sets on every duplicate."""

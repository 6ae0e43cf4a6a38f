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
them a dataset keeps. Images are compared with images, and with video clips only when
``dedup.cross_media`` is set.
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
from curate.copy_detection import ClipEvidence, Match, judge
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
from curate.signals.borders import SIDES as BORDER_SIDES
from curate.storage import Store

log = logging.getLogger(__name__)

RANK_COLUMNS = [
    "clip_id",
    "source",
    "media",
    "tier",
    "sharpness",
    "width",
    "height",
    "border_top",
    "border_bottom",
    "border_left",
    "border_right",
    "duration_s",
    "motion_score",
]
"""Columns the ranking of clips reads."""

BLOCK = 2048
"""Rows per block of the pairwise similarity computation (bounds its memory)."""


def rank_order(table: pa.Table, rank_by: list[str], tier_names: list[str]) -> np.ndarray:
    """Row order from best to worst by ``rank_by`` (ties broken by clip id): video clips
    first, then images (see :func:`_image_rank`)."""
    media = schema.row_media(table)
    order = []
    for kind in ("video", "image"):
        rows = np.flatnonzero(media == kind)
        if rows.size:
            keys = _image_rank(rank_by) if kind == "image" else rank_by
            order.append(rows[_rank(table.take(rows), keys, tier_names)])
    return np.concatenate(order) if order else np.zeros(0, np.int64)


def _image_rank(rank_by: list[str]) -> list[str]:
    """An image's copies rank by resolution, then by fewer bars, before sharpness: sharpness
    is measured at one analysis size, where a downscaled copy looks as sharp as its original,
    and the edge of a bar reads as detail."""
    if "sharpness" not in rank_by or "resolution" not in rank_by:
        return rank_by
    keys = [k for k in rank_by if k != "resolution"]
    at = keys.index("sharpness")
    return [*keys[:at], "resolution", "bars", *keys[at:]]


RESOLUTION_STEP = 1.05
"""Resolutions within 5 % of each other rank as one (bars are measured to about a percent)."""


def _rank(table: pa.Table, rank_by: list[str], tier_names: list[str]) -> np.ndarray:
    tier_index = {name: i for i, name in enumerate(tier_names)}

    def col(name: str) -> np.ndarray:
        return np.nan_to_num(table[name].to_numpy(zero_copy_only=False).astype(np.float64), nan=-1)

    def bars() -> np.ndarray:
        return sum(np.maximum(col(f"border_{side}"), 0) for side in BORDER_SIDES)

    def resolution() -> np.ndarray:
        """The short side inside the bars (a letterboxed copy is no larger than its
        original), in steps of :data:`RESOLUTION_STEP`."""
        top, bottom, left, right = (np.maximum(col(f"border_{s}"), 0) for s in BORDER_SIDES)
        side = np.minimum(col("width") * (1 - left - right), col("height") * (1 - top - bottom))
        return np.floor(np.log(np.maximum(side, 1)) / np.log(RESOLUTION_STEP))

    keys = {
        "tier": lambda: np.array([tier_index.get(t, -1) for t in table["tier"].to_pylist()]),
        "sharpness": lambda: col("sharpness"),
        "resolution": resolution,
        "bars": lambda: -bars(),
        "duration": lambda: col("duration_s"),
        "motion": lambda: col("motion_score"),
    }
    ids = np.array(table["clip_id"].to_pylist(), dtype=object)
    # np.lexsort sorts by the last key first, ascending: negate for "higher is better".
    sort_keys = [ids] + [-keys[name]() for name in reversed(rank_by)]
    return np.lexsort(sort_keys)


def candidate_pairs(
    x: np.ndarray, sources: list[str], cfg: DedupConfig, media: list[str | None] | None = None
) -> list[tuple[int, int, float]]:
    """Rows are in rank order (best first). Each row's ``max_candidates`` most similar rows
    with cosine >= ``candidate_threshold``, as ``(better_row, worse_row, cosine)`` pairs,
    computed block by block (``media``: each row's, null for video)."""
    pairs: dict[tuple[int, int], float] = {}
    k = cfg.max_candidates
    source = np.unique(np.asarray(sources, dtype=object), return_inverse=True)[1]
    kind = np.asarray([m == "image" for m in media or [None] * len(x)])
    for start in range(0, len(x), BLOCK):
        sims = x[start : start + BLOCK] @ x.T
        rows = np.arange(start, start + len(sims))
        sims[rows - start, rows] = -1.0  # a clip is not its own candidate
        if not cfg.same_source:
            sims[source[rows][:, None] == source[None, :]] = -1.0
        if not cfg.cross_media:
            sims[kind[rows][:, None] != kind[None, :]] = -1.0
        hits = sims >= cfg.candidate_threshold
        for r in np.flatnonzero(hits.any(axis=1)).tolist():
            cols = np.flatnonzero(hits[r])
            if cols.size > k:
                cols = cols[np.argpartition(-sims[r, cols], k)[:k]]
            for c in cols.tolist():
                row = start + r
                pairs[(min(row, c), max(row, c))] = float(sims[r, c])
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
        media = group["media"].to_pylist() if "media" in group.column_names else None
        x = embeddings_of(group)
        rows: dict[str, list] = {"clip_id": [], "original": [], "cosine": []}
        for part in split(x, self.cfg.max_cluster_size, self.seed):
            part = np.sort(part)  # keep rank order inside the part
            kinds = None if media is None else [media[i] for i in part]
            for i, j, cos in candidate_pairs(x[part], [sources[i] for i in part], self.cfg, kinds):
                rows["clip_id"].append(ids[part[j]])
                rows["original"].append(ids[part[i]])
                rows["cosine"].append(cos)
        return pa.table(rows, schema=CANDIDATES)


CANDIDATES = pa.schema(
    [("clip_id", pa.string()), ("original", pa.string()), ("cosine", pa.float32())]
)
"""Candidate pairs: ``clip_id`` ranks below ``original`` (it would be the duplicate)."""

MATCHES = pa.schema(
    [
        ("clip_id", pa.string()),
        ("original", pa.string()),
        ("method", pa.string()),
        ("similarity", pa.float32()),
        ("span", schema.DUPLICATE_SPAN),
        ("detail", pa.string()),
        ("contained", pa.bool_()),
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
    labelled = assign(rows, centroids, "dedup_cluster", resources, cfg.boundary_margin)
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
    # A pair of boundary clips is found in both clusters: keep it once.
    found = found.group_by(["clip_id", "original"]).aggregate([("cosine", "max")])
    found = found.rename_columns(["clip_id", "original", "cosine"])
    log.info(
        "dedup: %d candidate pairs among %d clips in %d clusters",
        found.num_rows,
        total,
        len(centroids),
    )
    return found.cast(CANDIDATES)


class JudgePairs:
    """Judges a batch of candidate pairs, reading from the ``analysis`` shards the frame hashes
    of just those clips (by row position: ``row`` and ``original_row`` count rows across the
    shards in order, whose first rows are ``starts``), and the keyframes of the pairs that the
    hashes leave undecided and that may be verified (``verify``)."""

    def __init__(self, cfg: DedupConfig, analysis: Store, starts: list[int]) -> None:
        self.cfg = cfg
        self.starts = np.asarray(starts)
        # Opened once per actor: listing the shards reads every footer.
        data = shards(analysis)
        self.names = set(data.schema.names)
        self.fragments = list(data.get_fragments())

    def read(self, rows: list[int], columns: list[str]) -> dict[int, dict]:
        """``columns`` of the analysis rows ``rows``, by row."""
        columns = [c for c in columns if c in self.names]
        wanted = np.unique(np.asarray(rows, np.int64))
        out: dict[int, dict] = {row: {} for row in wanted.tolist()}
        if not columns:  # an analysis table without them: nothing to read
            return out
        file_of = np.searchsorted(self.starts, wanted, side="right") - 1
        for f in np.unique(file_of).tolist():
            here = wanted[file_of == f]
            table = self.fragments[f].take(pa.array(here - self.starts[f]), columns=columns)
            out.update(zip(here.tolist(), table.to_pylist()))
        return out

    def __call__(self, pairs: pa.Table) -> pa.Table:
        batch = pairs.to_pylist()
        rows = [p["row"] for p in batch] + [p["original_row"] for p in batch]
        hashes = self.read(rows, ["duration_s", "fingerprint", "fingerprint_times"])
        found: dict[int, Match] = {}
        undecided = []
        for k, pair in enumerate(batch):
            match = judge(
                _evidence(hashes[pair["original_row"]]),
                _evidence(hashes[pair["row"]]),
                pair["cosine"],
                self.cfg,
                verify_pair=False,
            )
            if match is not None:
                found[k] = match
            elif pair["verify"] and self.cfg.verify.enabled:
                undecided.append(k)
        if undecided:
            wanted = [batch[k][r] for k in undecided for r in ("row", "original_row")]
            keyframes = self.read(wanted, ["keyframes"])
            for k in undecided:
                pair = batch[k]
                if not (
                    keyframes[pair["row"]].get("keyframes")
                    and keyframes[pair["original_row"]].get("keyframes")
                ):
                    continue
                match = judge(
                    _evidence(hashes[pair["original_row"]], keyframes[pair["original_row"]]),
                    _evidence(hashes[pair["row"]], keyframes[pair["row"]]),
                    pair["cosine"],
                    self.cfg,
                )
                if match is not None:
                    found[k] = match
        out: dict[str, list] = {name: [] for name in MATCHES.names}
        for k, match in sorted(found.items()):
            start, end, of_start, of_end = match.span
            out["clip_id"].append(batch[k]["clip_id"])
            out["original"].append(batch[k]["original"])
            out["method"].append(match.method)
            out["similarity"].append(match.similarity)
            out["span"].append(
                {"start_s": start, "end_s": end, "of_start_s": of_start, "of_end_s": of_end}
            )
            out["detail"].append(match.detail)
            out["contained"].append(match.contained)
        return pa.table(out, schema=MATCHES)


def _evidence(row: dict, keyframes: dict | None = None) -> ClipEvidence:
    return ClipEvidence(
        duration=row.get("duration_s") or 0.0,
        fingerprint=row.get("fingerprint"),
        times=np.asarray(row.get("fingerprint_times") or [], np.float32),
        keyframes=(keyframes or {}).get("keyframes") or [],
    )


JUDGE_BATCH = 2048
"""Candidate pairs per judging task: pairs are sorted by row, so a batch reads the hashes of a
few shards, once each."""


def judge_pairs(
    pairs: pa.Table,
    clips: Candidates,
    cfg: DedupConfig,
    resources: StageResources,
) -> pa.Table:
    """The candidate pairs that are copies. The ``verify.max_pairs`` most similar pairs that
    the embeddings and frame hashes leave undecided go to keypoint verification."""
    if not pairs.num_rows:
        return MATCHES.empty_table()
    pairs = pairs.sort_by([("cosine", "descending"), ("clip_id", "ascending")])
    row = [clips.row_of[c] for c in pairs["clip_id"].to_pylist()]
    original_row = [clips.row_of[c] for c in pairs["original"].to_pylist()]
    pairs = (
        pairs.append_column("verify", pa.array(np.arange(pairs.num_rows) < cfg.verify.max_pairs))
        .append_column("row", pa.array(row, pa.int64()))
        .append_column("original_row", pa.array(original_row, pa.int64()))
        .sort_by([("original_row", "ascending"), ("row", "ascending")])  # reads stay local
    )
    sizes = [f.count_rows() for f in shards(clips.analysis).get_fragments()]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    if clips.in_memory:
        judge_batch = JudgePairs(cfg, clips.analysis, starts)
        tables = [
            judge_batch(pairs.slice(start, JUDGE_BATCH))
            for start in range(0, pairs.num_rows, JUDGE_BATCH)
        ]
    else:
        import ray  # the driver already runs Ray when the table is this large

        blocks = [pairs.slice(i, JUDGE_BATCH) for i in range(0, pairs.num_rows, JUDGE_BATCH)]
        judged = ray.data.from_arrow(blocks).map_batches(
            JudgePairs,
            fn_constructor_kwargs={"cfg": cfg, "analysis": clips.analysis, "starts": starts},
            batch_size=JUDGE_BATCH,
            batch_format="pyarrow",
            **pool_args(resources),
        )
        tables = list(judged.iter_batches(batch_size=None, batch_format="pyarrow"))
    found = pa.concat_tables(tables).cast(MATCHES) if tables else MATCHES.empty_table()
    log.info("dedup: %d of %d candidate pairs are copies", found.num_rows, pairs.num_rows)
    return found


def greedy_groups(matches: pa.Table, rank: dict[str, int]) -> dict[str, dict]:
    """``{duplicate: match row}``. In rank order, each clip is a duplicate of the best-ranked
    kept clip it copies; failing one, of a duplicate clip it copies when it lies wholly inside
    it and that clip wholly inside its own original (a re-upload of a re-upload), so no footage
    is lost along the chain."""
    by_clip: dict[str, list[dict]] = {}
    for row in matches.to_pylist():
        by_clip.setdefault(row["clip_id"], []).append(row)

    duplicate: dict[str, dict] = {}
    for clip in sorted(by_clip, key=rank.__getitem__):
        kept = [m for m in by_clip[clip] if m["original"] not in duplicate]
        chained = [
            m
            for m in by_clip[clip]
            if m["original"] in duplicate
            and m["contained"]
            and duplicate[m["original"]]["contained"]
        ]
        if kept or chained:
            duplicate[clip] = min(kept or chained, key=lambda m: rank[m["original"]])
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
            matches = judge_pairs(found, clips, self.cfg, self.resources)
            for cid, match in sorted(greedy_groups(matches, self.rank(clips, matches)).items()):
                row = clips.row_of[cid]
                kept[row] = False
                columns["duplicate_of"][row] = match["original"]
                columns["duplicate_similarity"][row] = match["similarity"]
                columns["duplicate_method"][row] = match["method"]
                # A still spans no time: there is no span to match.
                image = clips.index["media"][row].as_py() == "image"
                columns["duplicate_span"][row] = None if image else match["span"]
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
        table = clips.index.take(pa.array([clips.row_of[c] for c in ids], pa.int64()))
        order = rank_order(table, self.cfg.rank_by, self.tier_names)
        return {ids[k]: position for position, k in enumerate(order.tolist())}


DUPLICATE_COLUMNS = {
    f.name: f.type
    for f in schema.later_fields(schema.EMBEDDING_DIM)
    if f.name in schema.DUPLICATE_FIELDS
}
"""The ``analysis`` columns the step sets on every duplicate."""

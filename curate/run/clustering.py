"""K-means over clip embeddings, shared by dedup and re-balancing.

At scale only the centroid fit happens in one process, on a bounded, deterministic sample;
assigning every clip to its nearest centroid is a Ray Data ``map_batches``. A table small
enough for the driver (``ray.driver_max_clips``) arrives as a ``pyarrow.Table`` instead and is
handled in place: the same functions, no Ray Data start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from curate import contract, schema
from curate.config.sections import KMeansConfig, StageResources
from curate.run.runner import pool_args

Rows = ray.data.Dataset | pa.Table
"""Analysis rows: a Ray dataset over the shards, or the table itself when it is small."""


def preload_kmeans() -> threading.Thread:
    """Import scikit-learn's k-means on a background thread. The import takes two seconds,
    many more where its libraries must come from a cold disk; started while phase 1 keeps
    the driver waiting, it is done by the time dedup needs it (an import that fails here is
    retried, and reported, where it is needed)."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module("sklearn.cluster")

    thread = threading.Thread(target=load, name="preload-kmeans", daemon=True)
    thread.start()
    return thread


def map_rows(rows: Rows, fn: Callable[..., pa.Table], **kwargs: Any) -> Rows:
    """``fn(batch, **kwargs)`` over ``rows``: on the table itself, or as light Ray Data tasks
    over the blocks of a dataset."""
    if isinstance(rows, pa.Table):
        return fn(rows, **kwargs)
    return rows.map_batches(fn, fn_kwargs=kwargs, batch_format="pyarrow", num_cpus=0.25)


def tables_of(rows: Rows, columns: list[str]) -> Iterable[pa.Table]:
    """``columns`` of ``rows`` as Arrow tables: the table itself, or a dataset's blocks."""
    if isinstance(rows, pa.Table):
        return [rows.select(columns)]
    return rows.select_columns(columns).iter_batches(batch_size=None, batch_format="pyarrow")


def embeddings_of(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column as an ``(n, d)`` float32 array (missing ones are zeros)."""
    column = table["embedding"].combine_chunks()
    dim = column.type.list_size  # the run's width (embed.dim), fixed per table
    if column.null_count:
        column = pc.fill_null(column, pa.scalar([0.0] * dim, column.type))
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), dim).astype(np.float32, copy=False)


def hash_fraction(ids: list[str], seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per id: sampling without global state."""
    salt = str(seed).encode()
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(salt + i.encode(), digest_size=8).digest()) / 2**64
            for i in ids
        ]
    )


def _sample_batch(batch: pa.Table, fraction: float, seed: int) -> pa.Table:
    keep = hash_fraction(batch["clip_id"].to_pylist(), seed) < fraction
    return batch.filter(pa.array(keep)).select(["clip_id", "embedding"])


def sample_embeddings(rows: Rows, total: int, cfg: KMeansConfig, seed: int) -> pa.Table:
    """``clip_id`` and ``embedding`` of about ``cfg.sample_size`` clips chosen by id hash
    (``total`` = number of ``rows``), sorted by id so the fit does not depend on block order."""
    fraction = min(1.0, cfg.sample_size / max(total, 1))
    sample = map_rows(rows, _sample_batch, fraction=fraction, seed=seed)
    tables = list(tables_of(sample, ["clip_id", "embedding"]))
    if not tables:
        return pa.table(
            {
                "clip_id": pa.array([], pa.string()),
                "embedding": pa.array([], contract.ANALYSIS.field("embedding").type),
            }
        )
    return pa.concat_tables(tables).sort_by("clip_id").slice(0, cfg.sample_size)


def fit_centroids(x: np.ndarray, total: int, cfg: KMeansConfig, seed: int) -> np.ndarray:
    """K-means on a sample ``x`` of ``total`` unit vectors; returns unit-norm centroids."""
    k = max(1, min(cfg.k, total // cfg.min_cluster_size, len(x)))
    if len(x) == 0:
        return np.zeros((1, x.shape[1] if x.ndim == 2 else schema.EMBEDDING_DIM), np.float32)
    if k == 1:  # the mean, without importing scikit-learn (2 s) for a small run
        c = x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    else:
        from sklearn.cluster import KMeans  # imported when needed: 2 s

        km = KMeans(n_clusters=k, n_init=1, max_iter=cfg.iterations, random_state=seed)
        c = km.fit(x).cluster_centers_.astype(np.float32)
    return c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-12)


class AssignClusters:
    """Adds ``column`` = index of the nearest centroid (cosine). With ``margin``, a row whose
    second-nearest centroid is within ``margin`` of the nearest is also emitted a second time,
    labelled with that one: a clip on the boundary belongs to both."""

    def __init__(self, centroids: np.ndarray, column: str, margin: float | None = None) -> None:
        self.centroids = centroids
        self.column = column
        self.margin = margin

    def __call__(self, batch: pa.Table) -> pa.Table:
        if not batch.num_rows:
            return batch.append_column(self.column, pa.array([], pa.int32()))
        sims = embeddings_of(batch) @ self.centroids.T
        labels = np.argmax(sims, axis=1).astype(np.int32)
        out = batch.append_column(self.column, pa.array(labels, pa.int32()))
        if self.margin is None or sims.shape[1] < 2:
            return out
        top2 = np.argsort(-sims, axis=1)[:, :2]
        second = np.take_along_axis(sims, top2, axis=1)
        near = np.flatnonzero(second[:, 0] - second[:, 1] <= self.margin)
        again = batch.take(near).append_column(
            self.column, pa.array(top2[near, 1].astype(np.int32), pa.int32())
        )
        return pa.concat_tables([out, again])


def assign(
    rows: Rows,
    centroids: np.ndarray,
    column: str,
    resources: StageResources,
    margin: float | None = None,
) -> Rows:
    """``rows`` with ``column``: the nearest centroid of each (and the second nearest as well,
    as a second row, for rows within ``margin`` of it)."""
    if isinstance(rows, pa.Table):
        return AssignClusters(centroids, column, margin)(rows)
    return rows.map_batches(
        AssignClusters,
        fn_constructor_kwargs={"centroids": centroids, "column": column, "margin": margin},
        batch_format="pyarrow",
        **pool_args(resources),
    )

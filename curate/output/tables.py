"""The Parquet tables of an output: the one writer of shards and the one reader of them.

Shards are written atomically (a reader never sees half a file) and read back through a
``Store``, so a local folder and an object-store prefix behave alike.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from curate import schema
from curate.output.record import Manifest
from curate.storage import Store


class ShardWriter:
    """Writes a table as ``part-NNNNN.parquet`` files of at most ``rows_per_file`` rows and
    about ``bytes_per_file`` bytes (in memory, before compression): the byte bound keeps the
    writer's buffer small when rows are heavy (keyframes, inline clips).

    Each file is written under a temporary name and renamed into place, so a reader never
    sees a half-written shard.
    """

    def __init__(
        self,
        folder: str | Path | Store,
        schema: pa.Schema,
        *,
        rows_per_file: int,
        compression: str,
        bytes_per_file: int | None = None,
    ) -> None:
        self.store = folder if isinstance(folder, Store) else Store(folder)
        self.schema = schema
        self.rows_per_file = rows_per_file
        self.bytes_per_file = bytes_per_file
        self.compression = compression
        self.rows_written = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._part = 0
        self.store.makedirs()

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        while self._pending_rows >= self.rows_per_file or self._over_bytes():
            self._flush(self._next_file_rows())

    def close(self) -> None:
        while self._pending_rows:
            self._flush(self._next_file_rows())
        if self._part == 0:
            # An empty table still gets one shard so readers always find the schema.
            self._write_file(self.schema.empty_table())

    def _over_bytes(self) -> bool:
        return self.bytes_per_file is not None and self._pending_bytes >= self.bytes_per_file

    def _next_file_rows(self) -> int:
        rows = min(self.rows_per_file, self._pending_rows)
        if self._over_bytes():
            share = self._pending_rows * self.bytes_per_file // self._pending_bytes
            rows = min(rows, max(1, share))
        return rows

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        head, rest = table.slice(0, n), table.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        self._pending_bytes = rest.nbytes
        self._write_file(head)

    def _write_file(self, table: pa.Table) -> None:
        name = f"part-{self._part:05d}.parquet"
        self.store.write_parquet(name, table.cast(self.schema), self.compression)
        self._part += 1
        self.rows_written += table.num_rows

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def shards(store: Store, folder: str = "", pattern: str = "part-*.parquet") -> ds.Dataset:
    """The ``part-*.parquet`` shards directly in ``folder`` of ``store`` as one dataset
    (nothing read yet). Files are listed through the store and opened on its filesystem, so a
    local folder and an object-store prefix read alike; ``FileNotFoundError`` when there are
    none."""
    files = store.files(folder, pattern)
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {store.display(folder)}")
    return ds.dataset([store.path(f) for f in files], format="parquet", filesystem=store.fs)


def read_table(
    source: str | Path | Store, folder: str = "", *, columns: list[str] | None = None
) -> pa.Table:
    """Every shard of ``folder`` in ``source`` (a store, a local path or a URI) as one table.

    Each shard is read with its own schema and the parts concatenated, so shards that
    disagree (a dropped or retyped column) fail here instead of being unified silently."""
    store = source if isinstance(source, Store) else Store(source)
    parts = [f.to_table(columns=columns) for f in shards(store, folder).get_fragments()]
    return pa.concat_tables(parts)


def output_schema_problems(output: Store, manifest: Manifest, tiers: list[str]) -> list[str]:
    """Every shard's schema compared with the contract in ``curate.schema``, at the embedding
    width the run was configured with and with the signal columns it recorded."""
    dim = manifest.embedding_dim or schema.EMBEDDING_DIM
    signals = manifest.signal_fields
    contracts = {
        "shots": schema.SHOTS,
        "analysis": schema.analysis_schema(dim, signals),
        "rejects": schema.REJECTS,
        **{
            f"tiers/{name}": schema.image_tier_schema(dim, manifest.image_signal_fields)
            if manifest.tier_media(name) == "image"
            else schema.tier_schema(dim, signals)
            for name in tiers
        },
    }
    problems = []
    for folder, expected in contracts.items():
        files = output.files(folder)
        if not files:
            problems.append(f"{folder}: no Parquet shards")
        for path in files:
            shown = f"{folder}/{posixpath.basename(path)}"
            try:
                actual = output.read_schema(path)
            except (OSError, pa.ArrowException) as e:
                problems.append(f"{shown}: unreadable ({e})")
                continue
            problems += schema.schema_problems(actual, expected, shown)
    return problems

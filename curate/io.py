"""Input discovery, atomic Parquet output, and the one reader of output shards."""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import posixpath
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from curate.storage import Store, is_uri

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".mxf",
    ]
)
"""Extensions picked up when a folder or glob is given as input."""

MANIFEST_EXTENSIONS = frozenset({".txt", ".csv", ".jsonl", ".parquet"})
"""A file input with one of these extensions is read as a list of inputs."""

MANIFEST_COLUMNS = ("path", "uri")
"""Columns, in order of preference, that hold an input's location in a tabular manifest."""


class InputError(ValueError):
    """An ``--input`` that does not exist or cannot be read as a manifest."""


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def _manifest_entries(path: str, data: bytes) -> list[str]:
    """The entries of a manifest file (its name and contents): data only, nothing is
    evaluated."""
    ext = _suffix(path)
    if ext == ".txt":
        lines = data.decode().splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if ext == ".csv":
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        columns = rows[0].keys() if rows else []
        return [r[_manifest_column(path, columns)] for r in rows]
    if ext == ".jsonl":
        rows = [json.loads(ln) for ln in data.decode().splitlines() if ln.strip()]
        column = _manifest_column(path, {k for r in rows for k in r})
        return [r[column] for r in rows if r.get(column)]
    table = pq.read_table(pa.BufferReader(data))
    column = _manifest_column(path, table.column_names)
    return [v for v in table.column(column).to_pylist() if v]


def _manifest_column(path: str, columns) -> str:
    for name in MANIFEST_COLUMNS:
        if name in columns:
            return name
    raise InputError(f"manifest {path} has no 'path' or 'uri' column (columns: {sorted(columns)})")


def _local(path: str) -> str:
    """A local input as stored in ``source``: absolute, so the tables (and the clip ids, which
    hash it) do not depend on the working directory. ``os.path.abspath`` normalises ``.`` and
    ``..`` as text and keeps symlinks: the path stays the one the user gave, only anchored."""
    return os.path.abspath(path)


def _resolve_entry(entry: str, manifest: str) -> str:
    if is_uri(entry):
        return entry
    if is_uri(manifest) and not os.path.isabs(entry):
        scheme, rest = manifest.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), entry))}"
    return _local(os.path.join(os.path.dirname(manifest), entry))  # an absolute entry wins


def _read_manifest(item: str, data: bytes) -> list[str]:
    try:
        entries = _manifest_entries(item, data)
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        raise InputError(f"cannot read manifest {item}: {e}") from e
    for row, entry in enumerate(entries, 1):
        if not isinstance(entry, str) or not entry:
            raise InputError(f"manifest {item}, entry {row}: expected a path, got {entry!r}")
    return [_resolve_entry(e, item) for e in entries]


def _discover_uri(item: str) -> list[str]:
    """A URI input: an object-store folder (prefix), a manifest, or one video."""
    store = Store(item)
    try:
        if store.is_dir():
            found = [f for f in store.walk() if _suffix(f) in VIDEO_EXTENSIONS]
            if not found:
                log.warning("input folder %s holds no video files", item)
            return [store.uri(f) for f in found]
        if _suffix(item) in MANIFEST_EXTENSIONS and store.is_file(""):
            return _read_manifest(item, store.read_bytes(""))
    except OSError as e:
        raise InputError(f"cannot read input {item}: {e}") from e
    return [item]


def discover(inputs: list[str]) -> list[str]:
    """Expand ``--input`` values into an ordered, de-duplicated list of sources.

    A folder is walked recursively for video extensions, a glob is expanded, a manifest
    (``.txt``/``.csv``/``.jsonl``/``.parquet``) is read (relative entries resolve against the
    manifest's folder), and anything else is taken as one video. Each input's expansion is
    sorted so the order never depends on the file system. Local sources come back absolute
    (see :func:`_local`), URIs as given.
    """
    sources: list[str] = []
    for item in inputs:
        path = Path(item)
        if is_uri(item):
            sources.extend(_discover_uri(item))
        elif path.is_dir():
            found = sorted(
                _local(os.path.join(root, name))
                for root, _dirs, files in os.walk(path, followlinks=True)
                for name in files
                if _suffix(name) in VIDEO_EXTENSIONS
            )
            if not found:
                log.warning("input folder %s holds no video files", item)
            sources.extend(found)
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            try:
                data = path.read_bytes()
            except OSError as e:
                raise InputError(f"cannot read manifest {item}: {e}") from e
            sources.extend(_read_manifest(item, data))
        elif path.is_file():
            sources.append(_local(item))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            sources.extend(
                _local(m) for m in matches if os.path.isfile(m) and _suffix(m) in VIDEO_EXTENSIONS
            )
        else:
            raise InputError(f"input not found: {item}")
    return list(dict.fromkeys(sources))


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

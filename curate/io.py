"""Input discovery and atomic Parquet output."""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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


def _is_uri(text: str) -> bool:
    return "://" in text


def _manifest_entries(path: Path) -> list[str]:
    ext = path.suffix.lower()
    if ext == ".txt":
        lines = path.read_text().splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if ext == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        columns = rows[0].keys() if rows else []
        return [r[_manifest_column(path, columns)] for r in rows]
    if ext == ".jsonl":
        rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        column = _manifest_column(path, {k for r in rows for k in r})
        return [r[column] for r in rows if r.get(column)]
    table = pq.read_table(path)
    column = _manifest_column(path, table.column_names)
    return [v for v in table.column(column).to_pylist() if v]


def _manifest_column(path: Path, columns) -> str:
    for name in MANIFEST_COLUMNS:
        if name in columns:
            return name
    raise InputError(f"manifest {path} has no 'path' or 'uri' column (columns: {sorted(columns)})")


def _resolve_entry(entry: str, base: Path) -> str:
    if _is_uri(entry) or os.path.isabs(entry):
        return entry
    return os.path.normpath(base / entry)


def discover(inputs: list[str]) -> list[str]:
    """Expand ``--input`` values into an ordered, de-duplicated list of sources.

    A folder is walked recursively for video extensions, a glob is expanded, a manifest
    (``.txt``/``.csv``/``.jsonl``/``.parquet``) is read (relative entries resolve against the
    manifest's folder), and anything else is taken as one video. Each input's expansion is
    sorted so the order never depends on the file system.
    """
    sources: list[str] = []
    for item in inputs:
        path = Path(item)
        if _is_uri(item):
            sources.append(item)
        elif path.is_dir():
            found = sorted(
                os.path.normpath(os.path.join(root, name))
                for root, _dirs, files in os.walk(path, followlinks=True)
                for name in files
                if Path(name).suffix.lower() in VIDEO_EXTENSIONS
            )
            if not found:
                log.warning("input folder %s holds no video files", item)
            sources.extend(found)
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            try:
                entries = _manifest_entries(path)
            except (OSError, ValueError, KeyError, pa.ArrowException) as e:
                raise InputError(f"cannot read manifest {item}: {e}") from e
            sources.extend(_resolve_entry(e, path.parent) for e in entries)
        elif path.is_file():
            sources.append(os.path.normpath(item))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            sources.extend(
                os.path.normpath(m)
                for m in matches
                if os.path.isfile(m) and Path(m).suffix.lower() in VIDEO_EXTENSIONS
            )
        else:
            raise InputError(f"input not found: {item}")
    return list(dict.fromkeys(sources))


class ShardWriter:
    """Writes a table as ``part-NNNNN.parquet`` files of at most ``rows_per_file`` rows.

    Each file is written under a temporary name and renamed into place, so a reader never
    sees a half-written shard.
    """

    def __init__(
        self, folder: str | Path, schema: pa.Schema, *, rows_per_file: int, compression: str
    ) -> None:
        self.folder = Path(folder)
        self.schema = schema
        self.rows_per_file = rows_per_file
        self.compression = compression
        self.rows_written = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._part = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.rows_per_file:
            self._flush(self.rows_per_file)

    def close(self) -> None:
        while self._pending_rows:
            self._flush(min(self._pending_rows, self.rows_per_file))
        if self._part == 0:
            # An empty table still gets one shard so readers always find the schema.
            self._write_file(self.schema.empty_table())

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        head, rest = table.slice(0, n), table.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        self._write_file(head)

    def _write_file(self, table: pa.Table) -> None:
        final = self.folder / f"part-{self._part:05d}.parquet"
        write_parquet_atomic(final, table.cast(self.schema), self.compression)
        self._part += 1
        self.rows_written += table.num_rows

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def write_parquet_atomic(path: Path, table: pa.Table, compression: str) -> None:
    """Write under a temporary name, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression=None if compression == "none" else compression)
    os.replace(tmp, path)


def read_table(folder: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read every ``part-*.parquet`` shard of a folder as one table."""
    files = sorted(Path(folder).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet shards in {folder}")
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)


def write_json_atomic(path: str | Path, data: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)

"""Input discovery: what ``--input`` values (folders, globs, input lists, single videos or images,
local or in object storage) expand to, as the ordered list of sources a run reads, and which
kind of media each source is."""

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
import pyarrow.parquet as pq

from curate.media.image import IMAGE_EXTENSIONS
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
"""Extensions of videos picked up when a folder or glob is given as input."""

MEDIA = ("video", "image")
"""The kinds of media a run curates (``media`` in the config)."""

INPUT_LIST_EXTENSIONS = frozenset({".txt", ".csv", ".jsonl", ".parquet"})
"""A file input with one of these extensions is read as a list of inputs."""

INPUT_LIST_COLUMNS = ("path", "uri")
"""Columns, in order of preference, that hold an input's location in a tabular input list."""


class InputError(ValueError):
    """An ``--input`` that does not exist or cannot be read as an input list."""


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def media_of(source: str) -> str:
    """``image`` for a source with an image extension, else ``video``."""
    return "image" if _suffix(source) in IMAGE_EXTENSIONS else "video"


def media_extensions(media: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The extensions a folder or glob is walked for when a run curates ``media``."""
    found = VIDEO_EXTENSIONS if "video" in media else frozenset()
    return found | (IMAGE_EXTENSIONS if "image" in media else frozenset())


def _list_entries(path: str, data: bytes) -> list[str]:
    """The entries of an input list (its name and contents): data only, nothing is
    evaluated."""
    ext = _suffix(path)
    if ext == ".txt":
        lines = data.decode().splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if ext == ".csv":
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        columns = rows[0].keys() if rows else []
        return [r[_list_column(path, columns)] for r in rows]
    if ext == ".jsonl":
        rows = [json.loads(ln) for ln in data.decode().splitlines() if ln.strip()]
        column = _list_column(path, {k for r in rows for k in r})
        return [r[column] for r in rows if r.get(column)]
    table = pq.read_table(pa.BufferReader(data))
    column = _list_column(path, table.column_names)
    return [v for v in table.column(column).to_pylist() if v]


def _list_column(path: str, columns) -> str:
    for name in INPUT_LIST_COLUMNS:
        if name in columns:
            return name
    raise InputError(
        f"input list {path} has no 'path' or 'uri' column (columns: {sorted(columns)})"
    )


def _local(path: str) -> str:
    """A local input as stored in ``source``: absolute, so the tables (and the clip ids, which
    hash it) do not depend on the working directory. ``os.path.abspath`` normalises ``.`` and
    ``..`` as text and keeps symlinks: the path stays the one the user gave, only anchored."""
    return os.path.abspath(path)


def _resolve_entry(entry: str, input_list: str) -> str:
    if is_uri(entry):
        return entry
    if is_uri(input_list) and not os.path.isabs(entry):
        scheme, rest = input_list.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), entry))}"
    return _local(os.path.join(os.path.dirname(input_list), entry))  # an absolute entry wins


def _read_input_list(item: str, data: bytes) -> list[str]:
    try:
        entries = _list_entries(item, data)
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        raise InputError(f"cannot read input list {item}: {e}") from e
    for row, entry in enumerate(entries, 1):
        if not isinstance(entry, str) or not entry:
            raise InputError(f"input list {item}, entry {row}: expected a path, got {entry!r}")
    return [_resolve_entry(e, item) for e in entries]


def _discover_uri(item: str, extensions: frozenset[str]) -> list[str]:
    """A URI input: an object-store folder (prefix), an input list, or one video or image."""
    store = Store(item)
    try:
        if store.is_dir():
            found = [f for f in store.walk() if _suffix(f) in extensions]
            if not found:
                log.warning("input folder %s holds no files of the media curated", item)
            return [store.uri(f) for f in found]
        if _suffix(item) in INPUT_LIST_EXTENSIONS and store.is_file(""):
            return _read_input_list(item, store.read_bytes(""))
    except OSError as e:
        raise InputError(f"cannot read input {item}: {e}") from e
    return [item]


def discover(inputs: list[str], media: tuple[str, ...] | list[str] = MEDIA) -> list[str]:
    """Expand ``--input`` values into an ordered, de-duplicated list of sources of ``media``.

    A folder is walked recursively for the extensions of ``media`` (videos, images), a glob
    is expanded, an input list (``.txt``/``.csv``/``.jsonl``/``.parquet``) is read (relative
    entries resolve against the list's folder), and anything else is taken as one video or
    image (by its extension: see :func:`media_of`). A listed or named source of a kind the
    run does not curate is left out with a warning. Each input's expansion is sorted so the
    order never depends on the file system. Local sources come back absolute (see
    :func:`_local`), URIs as given.
    """
    extensions = media_extensions(media)
    sources: list[str] = []
    for item in inputs:
        path = Path(item)
        if is_uri(item):
            sources.extend(_discover_uri(item, extensions))
        elif path.is_dir():
            found = sorted(
                _local(os.path.join(root, name))
                for root, _dirs, files in os.walk(path, followlinks=True)
                for name in files
                if _suffix(name) in extensions
            )
            if not found:
                log.warning("input folder %s holds no files of the media curated", item)
            sources.extend(found)
        elif path.is_file() and path.suffix.lower() in INPUT_LIST_EXTENSIONS:
            try:
                data = path.read_bytes()
            except OSError as e:
                raise InputError(f"cannot read input list {item}: {e}") from e
            sources.extend(_read_input_list(item, data))
        elif path.is_file():
            sources.append(_local(item))
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            sources.extend(
                _local(m) for m in matches if os.path.isfile(m) and _suffix(m) in extensions
            )
        else:
            raise InputError(f"input not found: {item}")
    sources = list(dict.fromkeys(sources))
    kept = [s for s in sources if media_of(s) in media]
    if len(kept) < len(sources):
        log.warning(
            "%d inputs left out: they are not %s (the config's media)",
            len(sources) - len(kept),
            " or ".join(media),
        )
    return kept

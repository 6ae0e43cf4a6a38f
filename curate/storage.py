"""Local folders and object storage behind one small interface.

Anything ``pyarrow.fs.FileSystem.from_uri`` understands works as an input or output location:
local paths, ``file://``, ``s3://`` (credentials, region and endpoint from the standard AWS
environment and config chain, e.g. ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL``), ``gs://``, ``hdfs://``; and, through ``fsspec``, any filesystem with a
registered protocol. Each process resolves locations itself, so credentials come from the
environment of the node that uses them and never travel with the data.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

IO_BUFFER_BYTES = 1 << 20
"""Read size for remote media: object stores answer each read with one request, so PyAV's
32 KiB default would cost a round trip per 32 KiB."""


FFMPEG_SCHEMES = frozenset({"http", "https"})
"""URL schemes FFmpeg reads with its own network protocols (streaming, no listing)."""


def is_uri(text: str | os.PathLike) -> bool:
    return "://" in str(text)


def ffmpeg_reads(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in FFMPEG_SCHEMES


def resolve(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of ``location`` (a local path or a URI)."""
    text = str(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), os.path.abspath(text)
    try:
        return pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A protocol pyarrow does not know natively (memory://, az:// via adlfs, ...).
        import fsspec

        fs, path = fsspec.core.url_to_fs(text)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def open_input(source: str):
    """``source`` as PyAV wants it: a local path as is, a URI as a seekable file object."""
    if not is_uri(source):
        return source
    fs, path = resolve(source)
    return fs.open_input_file(path)


class Store:
    """A folder, local or in object storage, addressed by paths relative to it.

    Writes are atomic for readers: a local file is written under a temporary name and
    renamed; an object store publishes an object only when its upload completes.
    """

    def __init__(self, location: str | os.PathLike, *, _resolved=None) -> None:
        self.location = str(location)
        self.fs, self.root = _resolved or resolve(location)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def sub(self, rel: str) -> Store:
        """The folder ``rel`` inside this one, on the same filesystem."""
        return Store(self.uri(rel), _resolved=(self.fs, self.path(rel)))

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def __str__(self) -> str:
        return self.location

    def path(self, rel: str = "") -> str:
        """Filesystem path of ``rel`` (for pyarrow calls with ``filesystem=self.fs``)."""
        return posixpath.join(self.root, rel) if rel else self.root

    def display(self, rel: str = "") -> str:
        """``rel`` named from the location as given (``out/tiers/a``, not an absolute path), for
        messages."""
        return posixpath.join(self.location, rel) if rel else self.location

    def uri(self, rel: str = "") -> str:
        """A location string for ``rel`` that any process can resolve on its own."""
        if self.local:
            return self.path(rel)
        return self.location.rstrip("/") + ("/" + rel if rel else "")

    def local_path(self, rel: str = "") -> Path:
        if not self.local:
            raise ValueError(f"{self.location} is not a local folder")
        return Path(self.path(rel))

    def info(self, rel: str = "") -> pafs.FileInfo:
        return self.fs.get_file_info(self.path(rel))

    def exists(self, rel: str = "") -> bool:
        return self.info(rel).type != pafs.FileType.NotFound

    def is_file(self, rel: str) -> bool:
        return self.info(rel).type == pafs.FileType.File

    def is_dir(self, rel: str = "") -> bool:
        return self.info(rel).type == pafs.FileType.Directory

    def _listing(self, rel: str, recursive: bool) -> list[str]:
        """Files in ``rel`` (and below it if ``recursive``), sorted, relative to this store."""
        selector = pafs.FileSelector(self.path(rel), recursive=recursive, allow_not_found=True)
        prefix = self.root.rstrip("/") + "/"
        return sorted(
            info.path[len(prefix) :]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )

    def walk(self, rel: str = "") -> list[str]:
        """Every file under ``rel``, as sorted paths relative to this store."""
        return self._listing(rel, recursive=True)

    def folders(self, rel: str = "") -> list[str]:
        """Names of the folders directly in ``rel``, sorted (an object store's common
        prefixes); ``FileNotFoundError`` when ``rel`` does not exist."""
        selector = pafs.FileSelector(self.path(rel), recursive=False)
        return sorted(
            posixpath.basename(info.path.rstrip("/"))
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory
        )

    def files(self, folder: str, pattern: str = "part-*.parquet") -> list[str]:
        """Files directly in ``folder`` whose name matches ``pattern``, sorted, as paths
        relative to this store."""
        return [
            f
            for f in self._listing(folder, recursive=False)
            if fnmatch.fnmatch(posixpath.basename(f), pattern)
        ]

    def is_empty(self) -> bool:
        if not self.exists():
            return True
        selector = pafs.FileSelector(self.root, recursive=False, allow_not_found=True)
        return not self.fs.get_file_info(selector)

    def makedirs(self, rel: str = "") -> None:
        self.fs.create_dir(self.path(rel), recursive=True)

    def remove(self, rel: str) -> None:
        """Delete a file or a whole folder; nothing happens if it does not exist."""
        info = self.info(rel)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(rel))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path(rel))

    def _staged(self, rel: str) -> str:
        """Where to write ``rel`` before publishing it (see ``_publish``)."""
        target = self.path(rel)
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        if not self.local:
            return target
        return posixpath.join(
            posixpath.dirname(target), f".{posixpath.basename(target)}.{uuid.uuid4().hex}.tmp"
        )

    def _publish(self, staged: str, rel: str) -> None:
        if staged != self.path(rel):
            os.replace(staged, self.path(rel))

    def write_parquet(self, rel: str, table: pa.Table, compression: str = "zstd") -> None:
        staged = self._staged(rel)
        pq.write_table(
            table,
            staged,
            filesystem=self.fs,
            compression=None if compression == "none" else compression,
        )
        self._publish(staged, rel)

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(rel), columns=columns, filesystem=self.fs)

    def read_schema(self, rel: str) -> pa.Schema:
        return pq.read_schema(self.path(rel), filesystem=self.fs)

    def write_bytes(self, rel: str, data: bytes) -> None:
        staged = self._staged(rel)
        with self.fs.open_output_stream(staged) as f:
            f.write(data)
        self._publish(staged, rel)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def write_json(self, rel: str, data: dict) -> None:
        text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
        self.write_bytes(rel, text.encode())

    def read_json(self, rel: str) -> dict:
        return json.loads(self.read_bytes(rel))

    def put_file(self, local: str | os.PathLike, rel: str) -> None:
        """Move a finished local file into the store under ``rel``."""
        if self.local:
            target = self.path(rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(local, target)
            return
        pafs.copy_files(
            str(local),
            self.path(rel),
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=self.fs,
        )
        os.unlink(local)

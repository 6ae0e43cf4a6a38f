"""Prove that a change leaves `curate run` outputs unchanged: run both versions, compare tables.

For every config, ``curate run`` is run twice over the same inputs: once with the code of a
"before" git ref and once with the current working tree. Then the output tables ``shots``,
``analysis``, ``tiers/<tier>`` and ``rejects`` (and the exported files under ``clips/``) are
compared row by row, exactly: floats to the last bit (NaN equals NaN, null equals null), binary
columns (thumbnails, keyframes, embeddings, exported ``video``) byte for byte. Rows are matched by
a stable key (``clip_id``; ``source, shot_index`` for shots; ``source, stage, reason, clip_id,
start_s, detail`` for rejects) and columns by name: a different column order is only a note, a
column that appears is a note, a column that disappears is a failure. ``manifest.json`` is not
compared (it holds wall times); a difference in its resolved config is reported as a note.
Exported clip files must exist on both sides, but their bytes are compared for information only
unless ``--strict-clips`` is given: libx264 does not encode bit-reproducibly here (two runs of
the unchanged code once differed in one of 25 clips of ``configs/default.yaml``).

The exit status is 0 only when every table of every config is identical, 1 otherwise (2 for
usage errors).

Usage (from the repository root)::

    # both default configs over ../shared/testdata/videos, before = origin/main (else HEAD)
    python scripts/compare_outputs.py

    # keep the outputs; later runs reuse the (slow, unchanging) before side
    python scripts/compare_outputs.py --before-dir /work/baseline --keep /work/compare-out
    python scripts/compare_outputs.py --before-dir /work/baseline --keep /work/compare-out --reuse

    # CI smoke run: one config, two videos
    python scripts/compare_outputs.py --configs configs/demo.yaml \\
        --inputs ../shared/testdata/videos/sam2/bedroom.mp4 \\
                 ../shared/testdata/videos/mmaction2/test.avi

    # compare two existing output folders (or two folders of such folders), run nothing
    python scripts/compare_outputs.py --before-output out/a --after-output out/b

The before code: ``--before REF`` (default ``origin/main`` when that ref exists, else ``HEAD``,
i.e. the last commit without the uncommitted changes) is checked out with ``git worktree add
--detach`` into a temporary folder, removed afterwards; ``--before-dir DIR`` uses an existing
checkout instead. Both sides run with this script's Python as ``python -m curate.cli run
--fresh --no-progress`` with the working directory and ``PYTHONPATH`` set to their code root,
so the before side's packages shadow the editable install, and without ``RAY_ADDRESS`` (always a
local Ray instance: a cluster would not see the before checkout). Both get the same absolute
input strings, because ``source`` (and ``clip_id``, a hash of it) stores the input as typed.
A relative ``--configs`` path names a file of each side's own tree when it exists there (a note
is printed when the two copies differ), else a file relative to the working directory.

With ``--keep DIR`` outputs go to ``DIR/before/<config>/`` and ``DIR/after/<config>/``, logs
and a record of each run (``<config>.run.json``: code commit, config hash, inputs, seconds) next
to them. With ``--reuse`` a kept before output is used again when its record matches the
commit, config and inputs of this run; otherwise it is re-run (and the reason printed).
Without ``--keep`` everything is written to a temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ("configs/default.yaml", "configs/demo.yaml")
DEFAULT_INPUTS = ("../shared/testdata/videos",)
"""Relative to the repository root."""

ROW_KEYS: dict[str, tuple[str, ...]] = {
    "shots": ("source", "shot_index"),
    "analysis": ("clip_id",),
    "tiers": ("clip_id",),
    "rejects": ("source", "stage", "reason", "clip_id", "start_s", "detail"),
}
"""Columns that identify a row of each table (``tiers`` stands for every ``tiers/<tier>``)."""

EXAMPLE_CHARS = 70
RECORD_VERSION = 1


# --------------------------------------------------------------------------- comparison


@dataclass
class ColumnDiff:
    name: str
    cells: int
    example: str


@dataclass
class TableReport:
    config: str
    table: str
    rows_before: int | None = None
    rows_after: int | None = None
    columns_before: int = 0
    columns_after: int = 0
    column_diffs: list[ColumnDiff] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    info_diffs: list[ColumnDiff] = field(default_factory=list)
    """Differences reported for information only (exported clip bytes without --strict-clips)."""

    @property
    def info_cells(self) -> int:
        return sum(d.cells for d in self.info_diffs)

    @property
    def differing_cells(self) -> int:
        return sum(d.cells for d in self.column_diffs)

    @property
    def identical(self) -> bool:
        return not self.failures and not self.column_diffs

    @property
    def verdict(self) -> str:
        if not self.identical:
            return "DIFFERENT"
        if self.info_cells:
            return "bytes differ (info)"
        return "identical (notes)" if self.notes else "identical"


def read_table(folder: Path) -> pa.Table | None:
    """All ``part-*.parquet`` shards of ``folder`` as one table; None when there are none."""
    files = sorted(folder.glob("part-*.parquet"))
    if not files:
        return None
    tables = [pq.read_table(f) for f in files]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:
        return pa.concat_tables(tables, promote_options="permissive")


def _py_key(value: Any) -> Any:
    """A hashable, exact form of a key cell (floats by their bits, so NaN matches NaN)."""
    if isinstance(value, float):
        return ("f", struct.pack("<d", value))
    if isinstance(value, list):
        return tuple(_py_key(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _py_key(v)) for k, v in value.items()))
    return value


def _same(a: Any, b: Any) -> bool:
    """Exact equality of two Python cell values: floats by their bits, bytes by content."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _fixed_width_bits(arr: pa.Array) -> np.ndarray | None:
    """The raw value bits of a fixed-width numeric array as unsigned ints, one per row (the
    bits under nulls are arbitrary: callers mask them); None for other types."""
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        return None
    width = t.bit_width // 8
    if width not in (1, 2, 4, 8):
        return None
    data = arr.buffers()[1]
    if data is None:
        return None
    raw = np.frombuffer(data, dtype=np.dtype(f"<u{width}"))
    return raw[arr.offset : arr.offset + len(arr)]


def _differing_rows(before: pa.Array, after: pa.Array) -> np.ndarray:
    """Boolean mask of the rows where two equally long arrays of one type differ exactly."""
    n = len(before)
    null_b = np.asarray(before.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    null_a = np.asarray(after.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    diff = null_b != null_a
    both = ~null_b & ~null_a
    if before.type.equals(after.type):
        bits_b, bits_a = _fixed_width_bits(before), _fixed_width_bits(after)
        if bits_b is not None and bits_a is not None:
            return diff | (both & (bits_b != bits_a))
        t = before.type
        if pa.types.is_fixed_size_list(t) and before.null_count == 0 and after.null_count == 0:
            child_b, child_a = before.flatten(), after.flatten()
            cb, ca = _fixed_width_bits(child_b), _fixed_width_bits(child_a)
            if cb is not None and ca is not None and not child_b.null_count + child_a.null_count:
                size = t.list_size
                return (cb.reshape(n, size) != ca.reshape(n, size)).any(axis=1)
        if any(
            check(t)
            for check in (
                pa.types.is_string,
                pa.types.is_large_string,
                pa.types.is_binary,
                pa.types.is_large_binary,
                pa.types.is_fixed_size_binary,
            )
        ):
            # Arrow compares string and binary values byte for byte.
            equal = pc.equal(before, after).fill_null(False).to_numpy(zero_copy_only=False)
            return diff | (both & ~np.asarray(equal, dtype=bool))
    values_b, values_a = before.to_pylist(), after.to_pylist()
    for i in np.flatnonzero(both):
        if not _same(values_b[i], values_a[i]):
            diff[i] = True
    return diff


def _show(value: Any) -> str:
    """A short, exact-enough rendering of a cell for the report."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256:{hashlib.sha256(value).hexdigest()[:12]}>"
    if isinstance(value, list) and value and all(isinstance(v, bytes) for v in value):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, float):
        text = f"{value!r} ({struct.pack('<d', value).hex()})"
    elif isinstance(value, list) and value and isinstance(value[0], float):
        text = f"len {len(value)} [{value[0]!r}, ...]"
    else:
        text = repr(value)
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "..."


def _show_pair(before: Any, after: Any) -> tuple[str, str]:
    """Render two differing cells, pointing at the first differing element of float lists."""
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (x, y) in enumerate(zip(before, after)):
            if not _same(x, y):
                return (
                    f"len {len(before)}, [{i}]={_show(x)}",
                    f"len {len(after)}, [{i}]={_show(y)}",
                )
    return _show(before), _show(after)


def _row_index(table: pa.Table, keys: Sequence[str]) -> dict[Any, list[int]]:
    """Rows of ``table`` by the values of its ``keys`` columns, exactly (floats by bits)."""
    columns = [table.column(k).to_pylist() for k in keys]
    index: dict[Any, list[int]] = {}
    for i in range(table.num_rows):
        key = tuple(_py_key(c[i]) for c in columns)
        index.setdefault(key, []).append(i)
    return index


def _tie_break(table: pa.Table, rows: list[int], names: Sequence[str]) -> list[int]:
    """Order rows that share a key by their other (comparable) columns, so that both sides'
    duplicates pair up the same way regardless of shard order."""
    if len(rows) < 2:
        return rows
    sub = table.take(pa.array(rows)).select(list(names))
    values = [
        tuple(_py_key(v) if v is not None else ("~",) for v in r.values()) for r in sub.to_pylist()
    ]
    order = sorted(range(len(rows)), key=lambda i: repr(values[i]))
    return [rows[i] for i in order]


def _describe_key(keys: Sequence[str], key: tuple) -> str:
    parts = []
    for name, value in zip(keys, key):
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "f":
            value = struct.unpack("<d", value[1])[0]
        parts.append(f"{name}={value!r}")
    text = ", ".join(parts)
    return text if len(text) <= 2 * EXAMPLE_CHARS else text[: 2 * EXAMPLE_CHARS - 3] + "..."


def compare_tables(
    report: TableReport, before: pa.Table | None, after: pa.Table | None, keys: Sequence[str]
) -> None:
    """Fill ``report`` with the differences between two versions of one table."""
    report.rows_before = None if before is None else before.num_rows
    report.rows_after = None if after is None else after.num_rows
    if before is None or after is None:
        if before is None and after is None:
            report.notes.append("no part-*.parquet shards on either side")
            return
        # A missing side is a failure unless it just means "no rows" on both sides.
        other = before if after is None else after
        side = "after" if after is None else "before"
        if other.num_rows:
            report.failures.append(
                f"no part-*.parquet shards {side}, {other.num_rows} rows on the other side"
            )
        else:
            report.notes.append(f"no shards {side}; the other side has an empty table")
        report.columns_before = 0 if before is None else before.num_columns
        report.columns_after = 0 if after is None else after.num_columns
        return

    names_b, names_a = before.column_names, after.column_names
    report.columns_before, report.columns_after = len(names_b), len(names_a)
    only_b = [n for n in names_b if n not in names_a]
    only_a = [n for n in names_a if n not in names_b]
    if only_b:
        report.failures.append(f"columns removed: {', '.join(only_b)}")
    if only_a:
        report.notes.append(f"columns added: {', '.join(only_a)}")
    common = [n for n in names_b if n in names_a]
    if [n for n in names_a if n in names_b] != common:
        report.notes.append("column order differs (compared by name)")
    for name in common:
        fb, fa = before.schema.field(name), after.schema.field(name)
        if not fb.type.equals(fa.type):
            report.failures.append(f"column {name!r} type changed: {fb.type} -> {fa.type}")
        elif fb.nullable != fa.nullable:
            report.notes.append(f"column {name!r} nullable {fb.nullable} -> {fa.nullable}")
    if len(set(names_b)) != len(names_b) or len(set(names_a)) != len(names_a):
        report.failures.append("duplicate column names")
        return

    # Match rows by key; rows sharing a key pair up in the order of their other columns.
    tie = [
        n
        for n in sorted(common)
        if n not in keys and not pa.types.is_nested(before.schema.field(n).type)
    ]
    present_keys = [k for k in keys if k in names_b and k in names_a]
    index_b, index_a = _row_index(before, present_keys), _row_index(after, present_keys)
    pairs_b: list[int] = []
    pairs_a: list[int] = []
    unmatched_b: list[tuple] = []
    unmatched_a: list[tuple] = []
    for key, rows_b in index_b.items():
        rows_a = index_a.get(key, [])
        rows_b, rows_a = _tie_break(before, rows_b, tie), _tie_break(after, rows_a, tie)
        pairs_b.extend(rows_b[: len(rows_a)])
        pairs_a.extend(rows_a[: len(rows_b)])
        unmatched_b.extend([key] * max(0, len(rows_b) - len(rows_a)))
        unmatched_a.extend([key] * max(0, len(rows_a) - len(rows_b)))
    for key, rows_a in index_a.items():
        if key not in index_b:
            unmatched_a.extend([key] * len(rows_a))
    for side, unmatched in (("before", unmatched_b), ("after", unmatched_a)):
        if unmatched:
            example = _describe_key(present_keys, unmatched[0])
            report.failures.append(f"{_count(len(unmatched), 'row')} only {side}, e.g. {example}")

    take_b, take_a = pa.array(pairs_b, pa.int64()), pa.array(pairs_a, pa.int64())
    label_column = next((k for k in ("clip_id", "source") if k in common), None)
    for name in common:
        col_b = before.column(name).take(take_b).combine_chunks()
        col_a = after.column(name).take(take_a).combine_chunks()
        if isinstance(col_b, pa.ChunkedArray):  # zero chunks
            col_b = pa.array([], before.schema.field(name).type)
        if isinstance(col_a, pa.ChunkedArray):
            col_a = pa.array([], after.schema.field(name).type)
        mask = _differing_rows(col_b, col_a)
        count = int(mask.sum())
        if not count:
            continue
        i = int(np.flatnonzero(mask)[0])
        shown_b, shown_a = _show_pair(col_b[i].as_py(), col_a[i].as_py())
        where = ""
        if label_column is not None:
            label = before.column(label_column)[pairs_b[i]].as_py()
            if label_column == "source" and "shot_index" in common:
                label = f"{label} shot {before.column('shot_index')[pairs_b[i]].as_py()}"
            where = f"{label_column}={label}: " if label_column == "clip_id" else f"{label}: "
        report.column_diffs.append(
            ColumnDiff(name, count, f"{where}before {shown_b} | after {shown_a}")
        )


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compare_clips(report: TableReport, before: Path, after: Path, strict: bool) -> None:
    """Exported clip files (``clips/``, export.mode files): same names, same bytes.

    Which files exist follows from the tiers, so a missing or extra file is a failure. Their
    bytes are informational unless ``strict``: libx264 (sliced threads) does not encode
    bit-reproducibly, two runs of the same code can differ in a clip or two."""
    files_b = {p.relative_to(before): p for p in before.rglob("*") if p.is_file()}
    files_a = {p.relative_to(after): p for p in after.rglob("*") if p.is_file()}
    report.rows_before, report.rows_after = len(files_b), len(files_a)
    report.columns_before = report.columns_after = 1
    only_b, only_a = sorted(set(files_b) - set(files_a)), sorted(set(files_a) - set(files_b))
    if only_b:
        report.failures.append(f"{_count(len(only_b), 'file')} only before, e.g. {only_b[0]}")
    if only_a:
        report.failures.append(f"{_count(len(only_a), 'file')} only after, e.g. {only_a[0]}")
    differing = [
        rel
        for rel in sorted(set(files_b) & set(files_a))
        if files_b[rel].stat().st_size != files_a[rel].stat().st_size
        or _file_digest(files_b[rel]) != _file_digest(files_a[rel])
    ]
    if differing:
        rel = differing[0]
        (report.column_diffs if strict else report.info_diffs).append(
            ColumnDiff(
                "bytes",
                len(differing),
                f"{rel}: before {files_b[rel].stat().st_size} bytes "
                f"sha256:{_file_digest(files_b[rel])[:12]} | after "
                f"{files_a[rel].stat().st_size} bytes sha256:{_file_digest(files_a[rel])[:12]}",
            )
        )


def _manifest_config(output: Path) -> Any:
    try:
        return json.loads((output / "manifest.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return None


def compare_outputs(
    label: str, before: Path, after: Path, strict_clips: bool = False
) -> list[TableReport]:
    """Compare every table of two output folders; one report per table."""
    reports: list[TableReport] = []
    tiers = sorted(
        {p.name for side in (before, after) for p in (side / "tiers").glob("*") if p.is_dir()}
    )
    for table in ("shots", "analysis", *(f"tiers/{t}" for t in tiers), "rejects"):
        report = TableReport(label, table)
        keys = ROW_KEYS[table.split("/")[0]]
        dir_b, dir_a = before / table, after / table
        if not dir_b.is_dir() or not dir_a.is_dir():
            missing = " and ".join(
                s for s, d in (("before", dir_b), ("after", dir_a)) if not d.is_dir()
            )
            report.failures.append(f"folder missing {missing}")
            table_b = read_table(dir_b) if dir_b.is_dir() else None
            table_a = read_table(dir_a) if dir_a.is_dir() else None
            if table_b is not None:
                report.rows_before, report.columns_before = table_b.num_rows, table_b.num_columns
            if table_a is not None:
                report.rows_after, report.columns_after = table_a.num_rows, table_a.num_columns
        else:
            compare_tables(report, read_table(dir_b), read_table(dir_a), keys)
        reports.append(report)
    if (before / "clips").is_dir() or (after / "clips").is_dir():
        report = TableReport(label, "clips/ (files)")
        compare_clips(report, before / "clips", after / "clips", strict_clips)
        reports.append(report)
    config_b, config_a = _manifest_config(before), _manifest_config(after)
    if config_b is not None and config_a is not None and config_b != config_a and reports:
        reports[0].notes.append("manifest.json: the resolved configs differ")
    return reports


# --------------------------------------------------------------------------- report


def _rows_text(r: TableReport) -> str:
    b = "-" if r.rows_before is None else str(r.rows_before)
    a = "-" if r.rows_after is None else str(r.rows_after)
    return b if b == a else f"{b}->{a}"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _differ(n: int) -> str:
    return "differs" if n == 1 else "differ"


def print_summary(reports: Sequence[TableReport], failed_runs: dict[str, str]) -> None:
    header = ("config", "table", "rows", "columns", "differing cells", "verdict")
    lines: list[tuple[str, ...]] = []
    for r in reports:
        cols = str(r.columns_before)
        if r.columns_after != r.columns_before:
            cols = f"{r.columns_before}->{r.columns_after}"
        cells = str(r.differing_cells) + (f" ({r.info_cells} info)" if r.info_cells else "")
        lines.append((r.config, r.table, _rows_text(r), cols, cells, r.verdict))
    for label, why in failed_runs.items():
        lines.append((label, "(run)", "-", "-", "-", f"RUN FAILED: {why}"))
    widths = [max(len(x[i]) for x in (header, *lines)) for i in range(len(header) - 1)]
    print()
    for line in (header, *lines):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1])
    detailed = [r for r in reports if not r.identical or r.notes or r.info_diffs]
    if detailed:
        print()
    for r in detailed:
        print(f"{r.config} {r.table}: {r.verdict}")
        for text in r.failures:
            print(f"  FAIL  {text}")
        for d in r.column_diffs:
            unit = "file" if r.table.startswith("clips") else "row"
            print(f"  DIFF  {d.name}: {_count(d.cells, unit)} {_differ(d.cells)}; {d.example}")
        for d in r.info_diffs:
            print(
                f"  info  {d.name}: {_count(d.cells, 'file')} {_differ(d.cells)} (not a failure; "
                f"--strict-clips makes it one); {d.example}"
            )
        for text in r.notes:
            print(f"  note  {text}")


# --------------------------------------------------------------------------- running


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def _ref_exists(ref: str) -> bool:
    try:
        _git(REPO, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return True
    except (subprocess.CalledProcessError, OSError):
        return False


def code_state(root: Path) -> dict[str, Any]:
    """Which code a checkout holds: commit and a hash of its uncommitted tracked changes."""
    try:
        commit = _git(root, "rev-parse", "HEAD")
        diff = _git(root, "diff", "HEAD", "--", "curate", "stages", "pyproject.toml")
    except (subprocess.CalledProcessError, OSError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": hashlib.sha256(diff.encode()).hexdigest() if diff else ""}


@contextlib.contextmanager
def worktree(ref: str, parent: Path) -> Iterator[Path]:
    """A detached git worktree of ``ref``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="before-", dir=parent))
    path.rmdir()
    _git(REPO, "worktree", "add", "--detach", str(path), ref)
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)],
            cwd=REPO,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True, check=False)


def _env(code_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    extra = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(code_root) + (os.pathsep + extra if extra else "")
    return env


def check_imports(code_root: Path) -> None:
    """Fail early when ``python -m curate.cli`` in ``code_root`` would not import its code."""
    probe = "import curate, stages; print(curate.__file__); print(stages.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=code_root,
        env=_env(code_root),
        capture_output=True,
        text=True,
        check=False,
    )
    files = out.stdout.split()
    root = code_root.resolve()
    if (
        out.returncode
        or len(files) != 2
        or not all(Path(f).resolve().is_relative_to(root) for f in files)
    ):
        raise SystemExit(
            f"compare_outputs: curate/stages do not import from {code_root}:\n"
            f"{out.stdout}{out.stderr}"
        )


def run_curate(
    code_root: Path, config: Path, inputs: Sequence[str], output: Path, log: Path
) -> tuple[int, float]:
    """``curate run`` of the code in ``code_root``; returns (exit status, seconds)."""
    cmd = [
        sys.executable, "-m", "curate.cli", "run",
        "--config", str(config),
        *(f"--input={i}" for i in inputs),
        "--output", str(output),
        "--fresh", "--no-progress",
    ]  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as f:
        f.write(f"$ cd {code_root} && PYTHONPATH={code_root} {' '.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(
            cmd,
            cwd=code_root,
            env=_env(code_root),
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode
    seconds = time.monotonic() - started
    if rc == 0 and not (output / "manifest.json").is_file():
        rc = -1000  # e.g. a curate.cli without a __main__ block
        with log.open("a") as f:
            f.write("compare_outputs: the run wrote no manifest.json\n")
    return rc, seconds


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _resolve_config(name: str, root: Path) -> Path:
    path = Path(name)
    if not path.is_absolute() and (root / path).is_file():
        return (root / path).resolve()
    return path.resolve()


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _labels(configs: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for name in configs:
        stem = Path(name).stem
        label, n = stem, 2
        while label in labels:
            label, n = f"{stem}-{n}", n + 1
        labels.append(label)
    return labels


@dataclass
class Plan:
    label: str
    config_before: Path
    config_after: Path
    before: Path
    after: Path
    record: dict[str, Any]
    reuse_why: str = ""
    """Empty when the kept before output can be used; else why it is (re-)run."""

    @property
    def name(self) -> str:
        """The config's file name, as the report shows it."""
        return Path(self.record["config"]).name


def _record_path(output: Path) -> Path:
    return output.parent / f"{output.name}.run.json"


def _check_reuse(plan: Plan) -> str:
    path = _record_path(plan.before)
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return "no record of a kept before run"
    if kept.get("returncode") != 0 or not (plan.before / "manifest.json").is_file():
        return "the kept before run did not finish"
    for key in ("version", "commit", "dirty", "config_sha256", "inputs"):
        if kept.get(key) != plan.record.get(key):
            return f"the kept before run differs in {key}"
    return ""


def run_and_compare(args: argparse.Namespace) -> int:
    inputs = [i if "://" in i else os.path.abspath(i) for i in args.inputs]
    for i in inputs:
        if "://" not in i and not any(c in i for c in "*?[") and not os.path.exists(i):
            print(f"compare_outputs: input {i} does not exist", file=sys.stderr)
            return 2
    if args.before_dir:
        before_root: Path | None = Path(args.before_dir).resolve()
        if not (before_root / "curate").is_dir():
            print(f"compare_outputs: {before_root} has no curate/ package", file=sys.stderr)
            return 2
        state = code_state(before_root)
        what = f"checkout {before_root}"
    else:
        before_root = None
        ref = args.before or ("origin/main" if _ref_exists("origin/main") else "HEAD")
        if not _ref_exists(ref):
            print(f"compare_outputs: unknown git ref {ref!r}", file=sys.stderr)
            return 2
        state = {"commit": _git(REPO, "rev-parse", f"{ref}^{{commit}}"), "dirty": ""}
        what = f"ref {ref}"
    print(
        f"before: {what} (commit {str(state['commit'])[:10]}"
        f"{', uncommitted changes' if state.get('dirty') else ''})"
    )
    print(f"after:  working tree {REPO}")
    print(f"inputs: {' '.join(inputs)}")

    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep).resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="compare-")))
        plans = []
        for name, label in zip(args.configs, _labels(args.configs)):
            config_after = _resolve_config(name, REPO)
            config_before = _resolve_config(name, before_root) if before_root else config_after
            plan = Plan(
                label, config_before, config_after,
                work / "before" / label, work / "after" / label,
                {"version": RECORD_VERSION, **state, "config": name,
                 "config_sha256": _sha256(config_before), "inputs": inputs},
            )  # fmt: skip
            plan.reuse_why = _check_reuse(plan) if args.reuse else "--reuse not given"
            plans.append(plan)
        if before_root is None and any(p.reuse_why for p in plans):
            before_root = stack.enter_context(worktree(ref, work))
            for p in plans:
                if not Path(p.record["config"]).is_absolute():
                    p.config_before = _resolve_config(p.record["config"], before_root)
                    p.record["config_sha256"] = _sha256(p.config_before)
        if before_root is not None and any(p.reuse_why for p in plans):
            check_imports(before_root)
        check_imports(REPO)

        failed: dict[str, str] = {}
        reports: list[TableReport] = []
        for p in plans:
            if not p.config_after.is_file() or not p.config_before.is_file():
                failed[p.name] = "config file missing"
                continue
            if p.reuse_why:
                assert before_root is not None
                print(
                    f"[before] {p.label}: running ({p.reuse_why}); log "
                    f"{p.before.parent / (p.label + '.log')}",
                    flush=True,
                )
                rc, seconds = run_curate(
                    before_root,
                    p.config_before,
                    inputs,
                    p.before,
                    p.before.parent / f"{p.label}.log",
                )
                _record_path(p.before).write_text(
                    json.dumps(
                        {
                            **p.record,
                            "returncode": rc,
                            "seconds": round(seconds, 1),
                            "code_root": str(before_root),
                        },
                        indent=2,
                    )
                    + "\n"
                )
                print(f"[before] {p.label}: exit {rc} after {seconds:.0f} s", flush=True)
                if rc:
                    print(_tail(p.before.parent / f"{p.label}.log"), file=sys.stderr)
                    failed[p.name] = f"before run exit {rc}"
                    continue
            else:
                print(f"[before] {p.label}: reusing {p.before}")
            print(
                f"[after]  {p.label}: running; log {p.after.parent / (p.label + '.log')}",
                flush=True,
            )
            rc, seconds = run_curate(
                REPO, p.config_after, inputs, p.after, p.after.parent / f"{p.label}.log"
            )
            _record_path(p.after).write_text(json.dumps(
                {**p.record, **code_state(REPO), "config_sha256": _sha256(p.config_after),
                 "returncode": rc, "seconds": round(seconds, 1), "code_root": str(REPO)},
                indent=2) + "\n")  # fmt: skip
            print(f"[after]  {p.label}: exit {rc} after {seconds:.0f} s", flush=True)
            if rc:
                print(_tail(p.after.parent / f"{p.label}.log"), file=sys.stderr)
                failed[p.name] = f"after run exit {rc}"
                continue
            table_reports = compare_outputs(p.name, p.before, p.after, args.strict_clips)
            if _sha256(p.config_before) != _sha256(p.config_after) and table_reports:
                table_reports[0].notes.append(
                    f"the config files differ: {p.config_before} vs {p.config_after}"
                )
            reports.extend(table_reports)
        print_summary(reports, failed)
        if args.keep:
            print(f"\noutputs kept in {work}/before and {work}/after")
    return 0 if reports and not failed and all(r.identical for r in reports) else 1


def _is_output(path: Path) -> bool:
    return (path / "manifest.json").is_file() or (path / "analysis").is_dir()


def compare_only(before: Path, after: Path, strict_clips: bool) -> int:
    """Compare existing output folders, or folders of them paired by name."""
    if _is_output(before) or _is_output(after):
        pairs = [(before.name, before, after)]
    else:
        names = sorted(
            {
                p.name
                for side in (before, after)
                if side.is_dir()
                for p in side.iterdir()
                if _is_output(p)
            }
        )
        pairs = [(n, before / n, after / n) for n in names]
    if not pairs:
        print(f"compare_outputs: no output folders in {before} or {after}", file=sys.stderr)
        return 2
    reports = [r for label, b, a in pairs for r in compare_outputs(label, b, a, strict_clips)]
    print_summary(reports, {})
    return 0 if all(r.identical for r in reports) else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare_outputs.py",
        description="Run `curate run` with a before ref and with the working tree; compare the "
        "output tables exactly. Exit 0 when every table is identical, else 1.",
        epilog="See the module docstring (top of scripts/compare_outputs.py) for details.",
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=list(DEFAULT_CONFIGS),
        metavar="YAML",
        help="configs to run (default: %(default)s)",
    )
    p.add_argument(
        "--inputs", nargs="+", metavar="PATH",
        default=[str(REPO / i) for i in DEFAULT_INPUTS],
        help="inputs given to both runs as absolute paths (default: ../shared/testdata/videos "
        "of the repository root)",
    )  # fmt: skip
    before = p.add_mutually_exclusive_group()
    before.add_argument(
        "--before",
        metavar="REF",
        help="git ref of the before code (default: origin/main if it exists, "
        "else HEAD), checked out in a temporary worktree",
    )
    before.add_argument(
        "--before-dir",
        metavar="DIR",
        help="existing checkout of the before code (e.g. /work/baseline)",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="write outputs to DIR/before/<config> and DIR/after/<config> and keep "
        "them (default: a temporary folder, deleted)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: reuse kept before outputs whose record matches (commit, "
        "config, inputs); only the after side runs",
    )
    p.add_argument(
        "--before-output",
        metavar="DIR",
        help="with --after-output: compare two existing output folders (or folders "
        "of them, paired by name) and run nothing",
    )
    p.add_argument("--after-output", metavar="DIR")
    p.add_argument(
        "--strict-clips",
        action="store_true",
        help="count differing bytes of exported clip files as a failure (by default they are "
        "reported for information: libx264 does not encode bit-reproducibly)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.before_output is None) != (args.after_output is None):
        parser.error("--before-output and --after-output go together")
    if args.before_output:
        return compare_only(Path(args.before_output), Path(args.after_output), args.strict_clips)
    if args.reuse and not args.keep:
        parser.error("--reuse needs --keep DIR")
    return run_and_compare(args)


if __name__ == "__main__":
    sys.exit(main())

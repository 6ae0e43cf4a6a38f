"""Exact comparison of two versions of one output table: rows matched by key, cells compared
bit for bit (floats by their bits, so NaN equals NaN; binary by content)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_KEYS: dict[str, tuple[str, ...]] = {
    "shots": ("source", "shot_index"),
    "analysis": ("clip_id",),
    "tiers": ("clip_id",),
    "rejects": ("source", "stage", "reason", "clip_id", "start_s", "detail"),
}
"""Columns that identify a row of each table (``tiers`` stands for every ``tiers/<tier>``)."""

EXAMPLE_CHARS = 70


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


def plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _compare_schemas(report: TableReport, before: pa.Table, after: pa.Table) -> list[str] | None:
    """Columns removed (a failure), added, reordered or retyped; the columns both sides have,
    None when duplicate column names make rows incomparable."""
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
        return None
    return common


def _match_rows(
    report: TableReport, before: pa.Table, after: pa.Table, keys: Sequence[str], common: list[str]
) -> tuple[list[int], list[int]]:
    """Pairs of row numbers (before, after) with equal keys; rows sharing a key pair up in the
    order of their other columns. Rows only one side has are failures."""
    tie = [
        n
        for n in sorted(common)
        if n not in keys and not pa.types.is_nested(before.schema.field(n).type)
    ]
    present_keys = [k for k in keys if k in before.column_names and k in after.column_names]
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
            report.failures.append(f"{plural(len(unmatched), 'row')} only {side}, e.g. {example}")
    return pairs_b, pairs_a


def _row_label(before: pa.Table, row: int, common: list[str]) -> str:
    """Where a differing cell is, for the report: its clip id, or its source (and shot)."""
    label_column = next((k for k in ("clip_id", "source") if k in common), None)
    if label_column is None:
        return ""
    label = before.column(label_column)[row].as_py()
    if label_column == "source" and "shot_index" in common:
        label = f"{label} shot {before.column('shot_index')[row].as_py()}"
    return f"{label_column}={label}: " if label_column == "clip_id" else f"{label}: "


def _diff_columns(
    report: TableReport,
    before: pa.Table,
    after: pa.Table,
    pairs: tuple[list[int], list[int]],
    common: list[str],
) -> None:
    """Count the differing cells of every common column over the paired rows."""
    pairs_b, pairs_a = pairs
    take_b, take_a = pa.array(pairs_b, pa.int64()), pa.array(pairs_a, pa.int64())
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
        where = _row_label(before, pairs_b[i], common)
        report.column_diffs.append(
            ColumnDiff(name, count, f"{where}before {shown_b} | after {shown_a}")
        )


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
    common = _compare_schemas(report, before, after)
    if common is None:
        return
    pairs = _match_rows(report, before, after, keys, common)
    _diff_columns(report, before, after, pairs, common)

"""Exported clip files (``clips/``) of two outputs: the same names, and the same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from scripts.compare.tables import ColumnDiff, TableReport, plural


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
        report.failures.append(f"{plural(len(only_b), 'file')} only before, e.g. {only_b[0]}")
    if only_a:
        report.failures.append(f"{plural(len(only_a), 'file')} only after, e.g. {only_a[0]}")
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

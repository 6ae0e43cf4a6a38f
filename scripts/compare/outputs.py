"""Every table of two output folders compared, and the summary of the comparison."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.compare.clips import compare_clips
from scripts.compare.tables import ROW_KEYS, TableReport, compare_tables, plural, read_table


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


def _rows_text(r: TableReport) -> str:
    b = "-" if r.rows_before is None else str(r.rows_before)
    a = "-" if r.rows_after is None else str(r.rows_after)
    return b if b == a else f"{b}->{a}"


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
            print(f"  DIFF  {d.name}: {plural(d.cells, unit)} {_differ(d.cells)}; {d.example}")
        for d in r.info_diffs:
            print(
                f"  info  {d.name}: {plural(d.cells, 'file')} {_differ(d.cells)} (not a failure; "
                f"--strict-clips makes it one); {d.example}"
            )
        for text in r.notes:
            print(f"  note  {text}")


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

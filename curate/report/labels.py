"""How values and clips read for people, in the page's text and in the charts' labels: plain
text, escaped by whoever puts it into HTML."""

from __future__ import annotations

import os

import numpy as np


def value_text(value: object) -> str:
    """A value as a person reads it: on/off for booleans, whole numbers without a point."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "on" if value else "off"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def file_name(source: str | None) -> str:
    """A source by its file name: short enough for a thumbnail (tooltips hold the path)."""
    return os.path.basename(source or "") or str(source)


def span_text(row: dict) -> str:
    """A clip's span (``12.0–16.5 s``); empty for a whole input and an image, which have
    none."""
    if row.get("start_s") is None or row.get("end_s") is None or row["end_s"] <= row["start_s"]:
        return ""
    return f"{row['start_s']:.1f}–{row['end_s']:.1f} s"


def clip_text(row: dict) -> str:
    """A clip as a person finds it: its file and span."""
    return " ".join(part for part in (file_name(row.get("source")), span_text(row)) if part)

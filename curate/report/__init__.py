"""``curate report``: one self-contained HTML page that shows what a run kept, dropped and why.

The funnel of inputs and, per tier, of clips; each tier's gates; a histogram per score with
every tier's thresholds; the concept clusters before and after re-balancing; a contact sheet
per tier; rejected examples per reason and the duplicate groups. Charts are matplotlib PNGs
and thumbnails the JPEGs of ``analysis``, both embedded as data URIs, so the file can be
mailed or archived alone. Exported clips (``export.mode: files``) of a local output play in
the contact sheets, linked relative to the page.

The output is read as a ``Store`` (a local folder or an object-store prefix); the page is
written to a local file, or into the output's own store by default.

``selection`` reads what the page shows, ``charts`` draws it, ``html`` assembles the page.
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.output.record import open_output
from curate.report.html import render_report
from curate.storage import Store

__all__ = ["REPORT", "render_report", "write_report"]

REPORT = "report.html"
"""The report's name inside the output when no ``--html`` file is given."""


def write_report(
    output: Store | str | os.PathLike,
    target: str | os.PathLike | None = None,
    *,
    examples: int = 12,
) -> str:
    """Render the report of ``output`` into the local file ``target`` or, without one, into
    ``report.html`` in the output itself (local or object storage); written under a
    temporary name either way. Returns where it went."""
    store = open_output(output)
    if target is None:
        page_dir = store.local_path() if store.local else None
        page = render_report(store, examples=examples, page_dir=page_dir)
        store.write_bytes(REPORT, page.encode("utf-8"))
        return store.display(REPORT)
    path = Path(target)
    page = render_report(store, examples=examples, page_dir=path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return str(path)

"""Where phase 1's time goes: seconds and counts per part of the work (the decoder, each frame
signal, the learned models, the embedder), per source and summed over every source.

Each analyzed source's row carries ``timing``, a map of flat keys to numbers, filled where
the work happens: ``<stage>.<part>.<measure>`` for a part (``analyze.shots.update_s``,
``detect.ocr.model_s``, ``detect.ocr.frames``) and ``<stage>.<measure>`` for the stage as a
whole (``detect.busy_s``, ``embed.clips``). A measure ending in ``_s`` is seconds, any other a
count. Phase 1 sums the maps of every source in the journal, and the manifest keeps the sums,
nested (:func:`nest`), under ``timing.stages.<stage>``: the stage's own measures, and its
parts under ``parts``.

Imports only the standard library: ``curate inspect`` renders the table where only pyarrow is
installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

BACKGROUND = {"transnetv2": "shots"}
"""Parts measured on a thread of their own, by the part whose time they overlap: shown
beneath it, outside the shares (their time is not on top of the stage's)."""

NO_RATE = {"wait_s"}
"""Seconds spent waiting: a count per second of waiting is no throughput."""

LABELS = {
    "analyze.decode": "decode (waiting for frames)",
    "analyze.transnetv2": "TransNetV2 network (own thread)",
    "detect.load": "model loading",
    "detect.stacked_marks": "OCR of the median and low frames (watermarks)",
    "embed.load": "model loading",
}
"""Labels of parts (``<stage>.<part>``) whose name alone says too little."""

TITLE = "where the time went (busy seconds, summed over workers)"


def nest(flat: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Flat timing keys as ``{stage: {measure: value, "parts": {part: {measure: value}}}}``,
    in the order the keys come; seconds rounded to milliseconds, counts whole."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        stage, _, rest = key.partition(".")
        part, dot, measure = rest.rpartition(".")
        number = round(float(value), 3) if measure.endswith("_s") else round(float(value))
        entry = out.setdefault(stage, {})
        if dot:
            entry.setdefault("parts", {}).setdefault(part, {})[measure] = number
        else:
            entry[measure] = number
    # The stage's own measures first, then its parts.
    return {
        stage: {k: v for k, v in entry.items() if k != "parts"}
        | ({"parts": entry["parts"]} if "parts" in entry else {})
        for stage, entry in out.items()
    }


def add(total: dict[str, float], timing: Mapping[str, float] | Iterable[tuple[str, float]]) -> None:
    """Add ``timing`` (a dict, or the key-value pairs an Arrow map reads as) into ``total``."""
    for key, value in dict(timing).items():
        total[key] = total.get(key, 0.0) + (value or 0.0)


def source_timing_lines(timing: Mapping[str, float] | Iterable[tuple[str, float]]) -> list[str]:
    """The table of :func:`timing_lines` for one source's ``timing`` (``analyze_source``'s
    result, or a row after the detect and embed stages)."""
    return timing_lines(nest(dict(timing)), title="where the time went (one source)")


def _seconds(measures: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in measures.items()
        # ``frames_per_busy_s`` is a rate, not seconds.
        if k.endswith("_s") and k != "busy_s" and "per_" not in k and _is_number(v)
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(measures: Mapping[str, Any]) -> tuple[int, str] | None:
    """The first count among ``measures`` (frames, keyframes, clips, ...), with its unit."""
    for k, v in measures.items():
        if not k.endswith("_s") and "per_" not in k and _is_number(v):
            return int(v), k
    return None


def _parts(stage: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A stage's parts: its ``parts``, or else, for an entry that keeps its parts as flat
    ``<part>_s`` seconds beside a shared count (``decode_s``, ``encode_s``, ``frames``), one
    part per such key, each with that count."""
    parts = stage.get("parts")
    if isinstance(parts, Mapping):
        return {str(k): dict(v) for k, v in parts.items() if isinstance(v, Mapping)}
    count = _count(stage)
    shared = {count[1]: count[0]} if count else {}
    return {k[:-2]: {k: v, **shared} for k, v in _seconds(stage).items()}


def _row(label: str, seconds: float, share: str, count: tuple[int, str] | None, rate: bool):
    counted = f"{count[0]:,} {count[1]}" if count else ""
    per_s = ""
    if count and rate and seconds > 0:
        value = count[0] / seconds
        per_s = f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"
    return label, f"{seconds:.2f}", share, counted, per_s


def timing_lines(stages: Mapping[str, Any], title: str = TITLE) -> list[str]:
    """A table of ``stages`` (the manifest's ``timing.stages``, or :func:`nest`'s answer):
    one line per stage and per part, with its seconds, share of the total, count and count
    per second; a stage's time its parts do not account for is ``other``. Entries without
    seconds are left out; no seconds at all gives no lines."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    entries = {
        name: stage
        for name, stage in stages.items()
        if isinstance(stage, Mapping) and (_seconds(stage) or "busy_s" in stage or _parts(stage))
    }
    spent: dict[str, float] = {}
    for name, stage in entries.items():
        parts = _parts(stage)
        foreground = sum(sum(_seconds(p).values()) for k, p in parts.items() if k not in BACKGROUND)
        busy = stage.get("busy_s")
        spent[name] = float(busy) if _is_number(busy) else foreground
    total = sum(spent.values())
    if total <= 0:
        return []

    def share(seconds: float) -> str:
        return f"{100 * seconds / total:.0f}%"

    for name, stage in entries.items():
        parts = _parts(stage)
        rows.append((*_row(name, spent[name], share(spent[name]), _count(stage), True), ""))
        accounted = 0.0
        for part, measures in parts.items():
            if part in BACKGROUND and BACKGROUND[part] in parts:
                continue  # shown beneath the part it overlaps
            seconds = _seconds(measures)
            accounted += sum(seconds.values())
            if sum(seconds.values()) < 0.005 and _count(measures) is None:
                continue  # nothing to see (a model that loads in no time)
            rows.append(_part_row(name, part, measures, share(sum(seconds.values())), "  "))
            rows += [
                _part_row(name, hidden, parts[hidden], "-", "    ")
                for hidden, host in BACKGROUND.items()
                if host == part and hidden in parts
            ]
        other = spent[name] - accounted
        if parts and other > 0.005:
            rows.append((*_row("  other", other, share(other), None, False), ""))
    header = ("part", "seconds", "share", "count", "rate", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [f"{title}: {total:.1f} s"]
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:5], widths[1:]))]
        lines.append(("  " + "  ".join(cells) + ("  " + r[5] if r[5] else "")).rstrip())
    return lines


def _part_row(stage: str, part: str, measures: Mapping[str, Any], share: str, indent: str):
    seconds = _seconds(measures)
    total = sum(seconds.values())
    rate = not set(seconds) <= NO_RATE
    label = indent + LABELS.get(f"{stage}.{part}", part)
    # The split (update, finish, ...) where more than one of them took measurable time.
    shown = {k: v for k, v in seconds.items() if v >= 0.005}
    note = ""
    if len(shown) > 1:
        note = ", ".join(f"{k[:-2].replace('_', ' ')} {v:.2f}" for k, v in shown.items())
    return (*_row(label, total, share, _count(measures), rate), note)


def duration_text(seconds: float) -> str:
    """``41.2 s`` under a minute, ``3:05`` or ``1:02:09`` above."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

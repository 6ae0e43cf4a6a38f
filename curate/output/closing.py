"""What a finished ``run`` and ``retier`` print: where the output is, how long each phase took,
the tiers (before and after, for a re-tier), the rejects by reason with the first rejected
inputs named, and the commands to go on with."""

from __future__ import annotations

import posixpath
import shlex

from curate.output.record import Manifest
from curate.output.summary import threshold_text, tier_lines
from curate.output.tables import read_table
from curate.storage import Store
from curate.timing import duration_text

EXAMPLES = 3
"""Rejected inputs or clips named per reason at the end of a run."""

PHASE_TIMES = {
    "phase1_probe_analyze_embed_s": "analyze",
    "phase2_tiers_s": "tiers",
    "phase2_dedup_rebalance_s": "dedup + re-balancing",
    "phase3_caption_s": "captions",
    "phase3_export_s": "export",
}
"""Wall times of the manifest shown at the end of a run, by their names there."""


def _rejected_examples(output: Store) -> dict[str, tuple[list[str], int]]:
    """Per reject reason, the first rejected inputs by file name (``(whole)``: the input
    gave no clip at all; ``×3``: three of its clips) and how many inputs there are in all."""
    table = read_table(output, "rejects", columns=["source", "clip_id", "reason"])
    by_reason: dict[str, dict[str, list[int]]] = {}
    for row in table.to_pylist():
        counts = by_reason.setdefault(row["reason"], {}).setdefault(row["source"], [0, 0])
        counts[row["clip_id"] is None] += 1
    named = {}
    for reason, sources in by_reason.items():
        names = []
        for source, (clips, whole) in list(sources.items())[:EXAMPLES]:
            name = posixpath.basename(source.rstrip("/")) or source
            names.append(f"{name} (whole)" if whole else f"{name} ×{clips}" if clips > 1 else name)
        named[reason] = (names, len(sources))
    return named


def closing_text(manifest: Manifest, output: Store, config_path: str | None = None) -> str:
    """What a finished run prints: where the output is, how long each phase took, the tiers,
    the rejects by reason with the first rejected inputs named, and the commands to go on."""
    seconds = manifest.timing.seconds
    shown = output.uri()
    lines = [f"finished in {duration_text(seconds.get('total_s', 0.0))}, output: {shown}"]
    phases = [
        f"{name} {duration_text(seconds[key])}"
        for key, name in PHASE_TIMES.items()
        if key in seconds
    ]
    if phases:
        lines.append("  " + ", ".join(phases))
    with_clips = len(set(read_table(output, "analysis", columns=["source"])["source"].to_pylist()))
    lines.append(
        f"inputs: {manifest.inputs.discovered}, {with_clips} of them yielded clips or images"
    )
    lines += tier_lines({name: t.to_json_dict() for name, t in manifest.tiers.items()})
    total = sum(manifest.rejects.values())
    lines.append(f"rejects: {total}" if total else "rejects: none")
    examples = _rejected_examples(output) if total else {}
    for reason, n in manifest.rejects.items():
        names, distinct = examples.get(reason, ([], 0))
        more = f", +{distinct - len(names)} more" if distinct > len(names) else ""
        lines.append(f"  {reason:<24} {n:>6}  {', '.join(names)}{more}")
    target = shlex.quote(shown)
    config = f" -c {shlex.quote(config_path)}" if config_path else ""
    lines += [
        "next:",
        f"  curate inspect {target}      scores, sample rows, rejects by stage",
        f"  curate report {target}       HTML report: funnel, charts, playable contact sheets",
        f"  curate validate {target}     check the schema and the accounting",
        f"  curate retier {target}{config} --set tiers.0.gates.min_sharpness=p30"
        "   new thresholds, no decoding",
    ]
    return "\n".join(lines)


def _thresholds(manifest: Manifest) -> list[str]:
    """Each tier's gates as applied; percentile gates as ``p30 = 41.2``."""
    lines = []
    for name, gates in manifest.thresholds.items():
        percentiles = manifest.percentile_gates(name)
        shown = [
            f"{key} {percentiles[key]} = {threshold_text(value)}"
            if key in percentiles
            else f"{key} {threshold_text(value)}"
            for key, value in gates.items()
        ]
        lines.append(f"  {name}: {', '.join(shown) or '(no gates)'}")
    return lines


def retier_text(before: Manifest, after: Manifest, output: Store) -> str:
    """What ``retier`` prints: each tier before → after, the thresholds it resolved, the
    rejects by reason and where the output is."""
    took = duration_text(after.timing.seconds.get("total_s", 0.0))
    lines = [f"re-tiered in {took}, output: {output.uri()}"]
    lines.append("tiers (before → after):")
    for name, t in after.tiers.items():
        old = before.tiers.get(name)
        clips = f"{old.clips} → {t.clips}" if old else f"(new) {t.clips}"
        change = f" ({t.clips - old.clips:+d})" if old and t.clips != old.clips else ""
        hours = f"{old.hours:.3f} → {t.hours:.3f} h" if old else f"{t.hours:.3f} h"
        unit = "images" if t.media == "image" else "clips"
        lines.append(
            f"  {name:<24} {clips:>16} {unit}{change:<8} {'' if t.media == 'image' else hours}"
        )
    for name in before.tiers.keys() - after.tiers.keys():
        lines.append(f"  {name:<24} {before.tiers[name].clips} clips → (tier removed)")
    lines.append("thresholds:")
    lines += _thresholds(after)
    lines.append("rejects:")
    for reason in sorted(before.rejects.keys() | after.rejects.keys()):
        old, new = before.rejects.get(reason, 0), after.rejects.get(reason, 0)
        lines.append(f"  {reason:<24} {old:>6} → {new}")
    return "\n".join(lines)

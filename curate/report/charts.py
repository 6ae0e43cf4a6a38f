"""The report's charts, drawn with matplotlib and returned as PNG data URIs: the funnel bars,
a histogram per score with every tier's thresholds, and the concept clusters' sizes."""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from curate.report.labels import value_text

TIER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
"""The k-th tier's colour in every chart (cycling when there are more tiers)."""

GREY = "#7f7f7f"
"""Bars that belong to no tier: inputs, candidate clips."""

REACH = 0.25
"""A threshold within this share of the data's span beyond the data widens the axis to show
it; one further out is named at the axis edge instead, so the data keep the width."""


def png_uri(fig: Figure) -> str:
    """``fig`` as a PNG data URI, for an ``<img>`` the page carries inside itself."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _label(text: str) -> str:
    """A data-derived matplotlib label: a `$` would start mathtext."""
    return text.replace("$", r"\$")


def _count_axis(axis: Axis) -> None:
    """Counts have whole-number ticks only."""
    axis.set_major_locator(MaxNLocator(integer=True))


def _bin_edges(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bin edges, and whether they are one per whole number (small counts such as faces:
    0, 1, 2), else 40 bins."""
    low, high = values.min(), values.max()
    if np.all(values == np.round(values)) and high - low <= 40:
        return np.arange(low - 0.5, high + 1.0), True
    return np.histogram_bin_edges(values, bins=40), False


def histogram(
    title: str,
    values: np.ndarray,
    passed: np.ndarray,
    marks: list[tuple[str, str, float, str]],
) -> Figure:
    """The distribution of ``values`` (finite), split by whether a clip passed a tier, with
    the thresholds ``marks`` (tier, gate key, value, colour): the axis fits the data and the
    thresholds near them; those further out are named at the edge."""
    fig = Figure(figsize=(4.4, 3.1), layout="constrained")
    ax = fig.add_subplot()
    bins, whole = _bin_edges(values)
    series = [
        (part, colour, label)
        for part, colour, label in (
            (values[passed], "#4c9be8", "passed a tier"),
            (values[~passed], "#f2a7a7", "passed none"),
        )
        if part.size
    ]
    ax.hist(
        [part for part, _, _ in series],
        bins=bins,
        stacked=True,
        # Separate bars for whole numbers: they are counts, not a continuum.
        rwidth=0.8 if whole else None,
        color=[colour for _, colour, _ in series],
        label=[label for _, _, label in series],
    )
    low, high = bins[0], bins[-1]
    reach = REACH * (high - low)
    near = [v for _, _, v, _ in marks if low - reach <= v <= high + reach]
    left, right = min([low, *near]), max([high, *near])
    pad = 0.02 * (right - left)
    left, right = left - pad, right + pad
    beyond: dict[str, list[tuple[str, str]]] = {"left": [], "right": []}
    for tier, key, value, colour in marks:
        text = f"{tier}: {key} {value_text(value)}"
        if value < left:
            beyond["left"].append((f"← {text}", colour))
        elif value > right:
            beyond["right"].append((f"{text} →", colour))
        else:
            style = "--" if key.startswith("min") else ":"
            ax.axvline(value, color=colour, linestyle=style, label=_label(text))
    ax.set_xlim(left, right)
    if whole:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _count_axis(ax.yaxis)
    tallest = np.histogram(values, bins=bins)[0].max()
    notes = max(len(beyond["left"]), len(beyond["right"]))
    # Headroom above the bars for the notes of thresholds beyond the axis.
    ax.set_ylim(0, tallest * (1.05 + 0.12 * notes))
    for side, x, align in (("left", 0.02, "left"), ("right", 0.98, "right")):
        for i, (text, colour) in enumerate(beyond[side]):
            ax.text(
                x,
                0.97 - 0.1 * i,
                _label(text),
                transform=ax.transAxes,
                ha=align,
                va="top",
                color=colour,
                fontsize=8,
                fontweight="bold",
            )
    ax.set_title(_label(title), fontsize=10)
    ax.set_ylabel("clips")
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return fig


def bars(rows: list[tuple[str, list[tuple[int, str]]]], unit: str, legend: list[str]) -> Figure:
    """A horizontal bar chart, one group of bars per step, each bar (count, colour); the
    ``legend`` names the colours of ``TIER_COLOURS`` in order."""
    fig = Figure(figsize=(8, 1.0), layout="constrained")
    ax = fig.add_subplot()
    position, ticks = 0.0, []
    for _, bars in rows:
        ys = position + np.arange(len(bars))
        for y, (count, colour) in zip(ys, bars):
            ax.barh(y, count, 0.85, color=colour)
            ax.annotate(
                f"{count:,}", (count, y), xytext=(4, 0), textcoords="offset points", va="center"
            )
        ticks.append(ys.mean())
        position += len(bars) + 0.5
    fig.set_figheight(0.7 + 0.24 * position + (0.3 if legend else 0))
    ax.set_yticks(ticks, [_label(label) for label, _ in rows])
    ax.invert_yaxis()
    top = max((c for _, bars in rows for c, _ in bars), default=0)
    ax.set_xlim(0, top * 1.15 or 1)
    _count_axis(ax.xaxis)
    ax.set_xlabel(unit)
    if legend:
        handles = [
            Patch(color=TIER_COLOURS[k % len(TIER_COLOURS)], label=_label(f"tier {name}"))
            for k, name in enumerate(legend)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def cluster_sizes(before: dict[int, int], after: dict[int, int]) -> Figure:
    """The clips of each concept cluster before and after re-balancing, side by side."""
    ids = sorted(before)
    fig = Figure(figsize=(min(15, 3 + 0.3 * len(ids)), 2.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(ids))
    ax.bar(x - 0.2, [before[c] for c in ids], 0.4, label="before", color="#9467bd")
    ax.bar(x + 0.2, [after.get(c, 0) for c in ids], 0.4, label="after", color="#2ca02c")
    ax.set_xticks(x, [str(c) for c in ids], fontsize=7)
    _count_axis(ax.yaxis)
    ax.set_xlabel("cluster")
    ax.set_ylabel("clips")
    # Beside the axes: inside, it would hide the bars of the last clusters.
    fig.legend(loc="outside right upper", fontsize=8)
    return fig

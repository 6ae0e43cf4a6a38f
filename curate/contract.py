"""What the registered signals (``curate.signals.SIGNALS``) make of the config, the tables and
the tier gates, assembled once from their declarations: the ``analyze`` and ``detect``
sections, a tier's ``gates``, the analysis schema and its siblings, the gate list, the reject
vocabulary and the scores that ``inspect`` and the report summarise.

The one module that imports the signals, ``curate.gates`` and ``curate.schema`` together: those
two are leaves, the signals never import this module, and everything that needs the assembled
contract imports it from here.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal, get_args

import pyarrow as pa
from pydantic import Field, create_model

from curate import schema
from curate.config import Model
from curate.config.analyze import AnalyzeSettings, ClipsConfig, ThumbnailConfig
from curate.gates import BASE_GATES, Gate
from curate.signals import SIGNALS, FrameSignal, KeyframeDetector, Signal

FRAME_SIGNALS: tuple[type[FrameSignal], ...] = tuple(
    s for s in SIGNALS if issubclass(s, FrameSignal)
)
"""The signals of the decode pass, in the order they run."""

KEYFRAME_DETECTORS: tuple[type[KeyframeDetector], ...] = tuple(
    s for s in SIGNALS if issubclass(s, KeyframeDetector)
)
"""The detectors the detect stage runs on keyframes, in the order they run."""


def _blocks(signals: tuple[type[Signal], ...]) -> dict[str, Any]:
    return {s.name: (s.config, s.config()) for s in signals}


ANALYZE_AFTER_SIGNALS: dict[str, Any] = {
    "clips": (ClipsConfig, ClipsConfig()),
    "thumbnail": (ThumbnailConfig, ThumbnailConfig()),
}
"""The ``analyze`` settings that follow the signals' blocks: how series become clips."""

DETECT_SETTINGS: dict[str, Any] = {
    "device": (
        Literal["auto", "cpu", "cuda"],
        Field(
            "auto",
            description="auto: onnxruntime's CUDA provider when installed and a GPU is there.",
        ),
    ),
}
"""The ``detect`` settings shared by every keyframe detector."""

AnalyzeConfig = create_model(
    "AnalyzeConfig",
    __base__=AnalyzeSettings,
    __module__=__name__,
    **_blocks(FRAME_SIGNALS),
    **ANALYZE_AFTER_SIGNALS,
)
AnalyzeConfig.__doc__ = """The ``analyze`` section: decoding, one block per per-frame signal (in
registry order), and how the signals' series become clips (``clips``, ``thumbnail``)."""

DetectConfig = create_model(
    "DetectConfig",
    __base__=Model,
    __module__=__name__,
    **_blocks(KEYFRAME_DETECTORS),
    **DETECT_SETTINGS,
)
DetectConfig.__doc__ = """The ``detect`` section: learned detectors over each clip's keyframes,
in their own actor pool; one block per keyframe detector."""

ALL_GATES: tuple[Gate, ...] = BASE_GATES + tuple(
    replace(g, media=tuple(m for m in g.media if m in s.media)) for s in SIGNALS for g in s.gates
)
"""Every gate, in the order they are checked: the base gates, then each signal's (a signal's
gates apply to the media it measures)."""


def gates_for(media: str) -> tuple[Gate, ...]:
    """The gates that apply to ``media`` (``video`` or ``image``), in the order checked."""
    return tuple(g for g in ALL_GATES if media in g.media)


Gates = create_model(
    "Gates",
    __base__=Model,
    __module__=__name__,
    **{g.key: g.config_field() for g in ALL_GATES},
)
Gates.__doc__ = """Thresholds a clip must meet to enter a tier; ``null`` disables a gate. Score
gates also take a percentile (``min_sharpness: p20`` drops the bottom 20 %)."""

SIGNAL_FIELDS: tuple[pa.Field, ...] = tuple(f for s in SIGNALS for f in s.fields)
"""The ``analysis`` columns the signals fill, in registry order."""

VIDEO_ONLY_FIELDS: frozenset[str] = frozenset(
    f.name for s in SIGNALS if "image" not in s.media for f in s.fields
)
"""The columns of signals that do not measure images (null on image rows, left out of image
tiers)."""

SOURCE_FIELDS: tuple[pa.Field, ...] = tuple(f for s in FRAME_SIGNALS for f in s.source_fields)
"""What the signals hand from the analyze stage to a later one with each source."""

SCORE_COLUMNS: tuple[str, ...] = (
    "duration_s",
    *(column for s in SIGNALS for column in s.scores),
    "sample_weight",
)
"""Numeric per-clip scores that ``curate inspect`` and ``curate report`` summarise (recorded in
``manifest.json`` with the run)."""

REJECT_REASONS: frozenset[str] = frozenset(get_args(schema.RejectReason)) | {
    g.reason for g in ALL_GATES
}
"""The closed vocabulary of rejection reasons: the framework's and every gate's."""


def check_declarations(signals: tuple[type[Signal], ...]) -> None:
    """Refuse names that collide: a block named like a setting of its section, or two signals
    with one block, column or gate key, would silently shadow one another in the assembled
    config and schemas; a score must be one of the signal's columns."""
    later = [f.name for f in schema.later_fields(schema.EMBEDDING_DIM)]
    fields = [f.name for s in signals for f in s.fields]
    sections = {
        "analyze": [*AnalyzeSettings.model_fields, *ANALYZE_AFTER_SIGNALS],
        "detect": [*DETECT_SETTINGS],
    }
    problems = []
    for what, names in (
        ("block", [f"{s.section}.{s.name}" for s in signals]),
        ("column", [f.name for f in schema.CLIP_FIELDS] + fields + later),
        ("gate", [g.key for g in BASE_GATES] + [g.key for s in signals for g in s.gates]),
    ):
        repeated = sorted({n for n in names if names.count(n) > 1})
        problems += [f"{what} {n} declared twice" for n in repeated]
    for s in signals:
        if s.name in sections[s.section]:
            problems.append(f"block {s.section}.{s.name} is a setting of {s.section}")
        undeclared = sorted(set(s.scores) - {f.name for f in s.fields})
        problems += [f"{s.__name__}.scores: {c} is none of its columns" for c in undeclared]
    if problems:
        raise TypeError("; ".join(problems))


check_declarations(SIGNALS)


@lru_cache
def analysis_schema(dim: int = schema.EMBEDDING_DIM) -> pa.Schema:
    """The ``analysis`` table of a run with ``dim``-d embeddings (see
    :func:`curate.schema.analysis_schema`)."""
    return schema.analysis_schema(dim, SIGNAL_FIELDS)


@lru_cache
def tier_schema(dim: int = schema.EMBEDDING_DIM) -> pa.Schema:
    """A tier's table of a run with ``dim``-d embeddings."""
    return schema.tier_schema(dim, SIGNAL_FIELDS)


@lru_cache
def image_tier_schema(dim: int = schema.EMBEDDING_DIM) -> pa.Schema:
    """An image tier's table of a run with ``dim``-d embeddings."""
    fields = tuple(f for f in SIGNAL_FIELDS if f.name not in VIDEO_ONLY_FIELDS)
    return schema.image_tier_schema(dim, fields)


@lru_cache
def analyzed_source_schema(dim: int = schema.EMBEDDING_DIM) -> pa.Schema:
    """What the analyze stage returns per source, with the signals' hand-overs."""
    return schema.analyzed_source_schema(dim, SIGNAL_FIELDS, SOURCE_FIELDS)


def index_columns(dim: int = schema.EMBEDDING_DIM) -> list[str]:
    """The scalar slice of ``analysis`` that phase 2 and 3 hold on the driver."""
    return schema.index_columns(analysis_schema(dim))


ANALYSIS = analysis_schema()
TIER = tier_schema()
ANALYZED_SOURCE = analyzed_source_schema()


def reject_row(
    source: str,
    stage: str,
    reason: str,
    detail: str,
    *,
    clip_id: str | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> dict:
    """One ``rejects`` row; ``reason`` must belong to :data:`REJECT_REASONS`."""
    if reason not in REJECT_REASONS:
        raise ValueError(f"reject reason {reason!r} is not one of {sorted(REJECT_REASONS)}")
    return {
        "source": source,
        "clip_id": clip_id,
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "start_s": start_s,
        "end_s": end_s,
    }


def build_signals(cfg: AnalyzeConfig, media: str = "video") -> list[FrameSignal]:
    """Fresh per-frame signals for one source of ``media``, from the ``analyze`` section
    ``cfg``."""
    return [signal.from_config(cfg) for signal in FRAME_SIGNALS if media in signal.media]

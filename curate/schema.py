"""Arrow schemas of every table the pipeline reads or writes: the output contract in one place.

Columns that a later stage fills (embeddings, captions, camera motion, ...) exist from the
start as nullable columns so that every table has the same shape on every run.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Literal, get_args

import pyarrow as pa

EMBEDDING_DIM = 512
"""Default width of the fixed-size ``embedding`` column (``embed.dim``): one run stores one
width, its model's (512 for ViT-B, 768 for ViT-L/14)."""

RejectReason = Literal[
    "unreadable",
    "no_video_stream",
    "decode_error",
    "timeout",
    "too_short",
    "too_long",
    "low_resolution",
    "blurry",
    "static",
    "excessive_motion",
    "slideshow",
    "chaotic_motion",
    "text_heavy",
    "border",
    "low_aesthetic",
    "duplicate",
    "rebalanced_out",
    "caption_failed",
    "export_failed",
]
"""Closed vocabulary of rejection reasons."""

REJECT_REASONS: frozenset[str] = frozenset(get_args(RejectReason))

PHASE1_STAGES = ("probe", "analyze")
"""Stages that reject inputs or clip windows before ``analysis`` (their rejected clips have no
analysis row); a re-tier keeps their rejects and recomputes everything after them."""

CAMERA_MOTIONS = (
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "roll_cw",
    "roll_ccw",
    "handheld",
    "complex",
)
"""Camera motion vocabulary (direction = what the camera does)."""

SOURCE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_index", pa.int64(), nullable=False),
    ]
)
"""A discovered input, before probing."""

PROBE = pa.schema(
    [
        *SOURCE,
        pa.field("ok", pa.bool_()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("coded_width", pa.int32()),
        pa.field("coded_height", pa.int32()),
        pa.field("rotation", pa.int32()),
        pa.field("sar", pa.float64()),
        pa.field("fps", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("codec", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("probe_s", pa.float64()),
    ]
)
"""Probe output: container metadata of one input, or why it cannot be used."""

SHOTS = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("shot_index", pa.int32(), nullable=False),
        pa.field("start_frame", pa.int64()),
        pa.field("end_frame", pa.int64()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("duration_s", pa.float64()),
    ]
)
"""Every detected shot of every source; ``end_frame``/``end_s`` are exclusive."""

REJECTS = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("clip_id", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
    ]
)
"""One row per rejected clip or failed input; ``clip_id`` is null when the whole input failed."""


@lru_cache
def analysis_schema(dim: int = EMBEDDING_DIM) -> pa.Schema:
    """Every candidate clip with every score: the phase-1 checkpoint (``dim``-d embeddings).

    ``keyframes`` (at most ``analyze.keyframes.per_clip`` small JPEGs) are kept so that phase 3
    can caption survivors, also after a re-tier, without decoding again; caption columns are
    set in phase 3 for the clips that reach a tier."""
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("shot_index", pa.int32()),
            pa.field("start_s", pa.float64()),
            pa.field("end_s", pa.float64()),
            pa.field("duration_s", pa.float64()),
            pa.field("start_frame", pa.int64()),
            pa.field("end_frame", pa.int64()),
            pa.field("num_frames", pa.int32()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("fps", pa.float32()),
            pa.field("orientation", pa.string()),
            pa.field("sharpness", pa.float32()),
            pa.field("sharpness_start", pa.float32()),
            pa.field("start_shift_s", pa.float32()),
            pa.field("motion_score", pa.float32()),
            pa.field("motion_p90", pa.float32()),
            pa.field("motion_pattern", pa.string()),
            pa.field("camera_motion", pa.string()),
            pa.field("camera_motion_confidence", pa.float32()),
            pa.field("text_ratio", pa.float32()),
            pa.field("text_ratio_max", pa.float32()),
            pa.field("border_top", pa.float32()),
            pa.field("border_bottom", pa.float32()),
            pa.field("border_left", pa.float32()),
            pa.field("border_right", pa.float32()),
            pa.field("aesthetic", pa.float32()),
            pa.field("aesthetic_model", pa.string()),
            pa.field("embedding", pa.list_(pa.float32(), dim)),
            pa.field("embedding_model", pa.string()),
            pa.field("cluster_id", pa.int32()),
            pa.field("duplicate_of", pa.string()),
            pa.field("sample_weight", pa.float32()),
            pa.field("tier", pa.string()),
            pa.field("thumbnail", pa.binary()),
            pa.field("caption", pa.string()),
            pa.field("prompt", pa.string()),
            pa.field("prompts", pa.list_(pa.string())),
            pa.field("captioner", pa.string()),
            pa.field("keyframes", pa.list_(pa.binary())),
        ]
    )


@lru_cache
def tier_schema(dim: int = EMBEDDING_DIM) -> pa.Schema:
    """Accepted clip–prompt rows of one tier (``tier`` holds the folder's name)."""
    return pa.schema(
        [
            *(f for f in analysis_schema(dim) if f.name != "keyframes"),
            pa.field("clip_path", pa.string()),
            pa.field("video", pa.binary()),
        ]
    )


@lru_cache
def analyzed_source_schema(dim: int = EMBEDDING_DIM) -> pa.Schema:
    """What the analyze stage returns per source: its shots, candidate clips and rejects
    together, so that one Ray Data row carries everything one decode produced."""
    return pa.schema(
        [
            *SOURCE,
            pa.field("shots", pa.list_(pa.struct(list(SHOTS)))),
            pa.field("clips", pa.list_(pa.struct(list(analysis_schema(dim))))),
            pa.field("rejects", pa.list_(pa.struct(list(REJECTS)))),
            pa.field("frames", pa.int64()),
            pa.field("analyze_s", pa.float64()),
            pa.field("probe_s", pa.float64()),
        ]
    )


def embedding_dim(table_schema: pa.Schema) -> int:
    """Width of the ``embedding`` column of an analysis or tier table."""
    return table_schema.field("embedding").type.list_size


ANALYSIS = analysis_schema()
"""``analysis`` with the default embedding width."""
TIER = tier_schema()
"""A tier table with the default embedding width."""
ANALYZED_SOURCE = analyzed_source_schema()
"""The analyze stage's per-source row with the default embedding width."""

EXPORTED = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("export_key", pa.string(), nullable=False),
        pa.field("clip_path", pa.string()),
        pa.field("video", pa.binary()),
        pa.field("error", pa.string()),
        pa.field("export_s", pa.float64()),
    ]
)
"""Export stage output: one encoded clip (path or bytes) per clip and export spec."""

SCORE_COLUMNS = (
    "duration_s",
    "sharpness",
    "motion_score",
    "motion_p90",
    "camera_motion_confidence",
    "text_ratio",
    "border_top",
    "border_bottom",
    "border_left",
    "border_right",
    "aesthetic",
    "sample_weight",
)
"""Numeric per-clip scores that ``curate inspect`` and ``curate report`` summarise."""

CAPTIONED = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("caption", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("prompts", pa.list_(pa.string())),
        pa.field("captioner", pa.string()),
        pa.field("error", pa.string()),
        pa.field("caption_s", pa.float64()),
    ]
)
"""Caption stage output: one structured caption and its prompts per clip, or the error."""


def clip_id(source: str, start_s: float, end_s: float) -> str:
    """Stable clip id: the same source and span always give the same id."""
    key = f"{source}|{start_s:.3f}|{end_s:.3f}".encode()
    return hashlib.sha1(key).hexdigest()[:16]


def from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from dict rows; absent columns become nulls."""
    return pa.Table.from_pylist(rows, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder/cast ``table`` to ``schema``, adding missing columns as nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def schema_problems(actual: pa.Schema, expected: pa.Schema, where: str) -> list[str]:
    """How ``actual`` breaks the contract ``expected``: missing columns and wrong types.
    Extra columns are allowed (the contract says: add more freely)."""
    problems = []
    for field in expected:
        index = actual.get_field_index(field.name)
        if index < 0:
            problems.append(f"{where}: column {field.name!r} is missing")
        elif not actual.field(index).type.equals(field.type):
            problems.append(
                f"{where}: column {field.name!r} is {actual.field(index).type}, "
                f"expected {field.type}"
            )
    return problems

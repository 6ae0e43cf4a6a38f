"""Arrow schemas of every table the pipeline reads or writes: the output contract in one place.

Columns that a later stage fills (embeddings, captions, camera motion, ...) exist from the
start as nullable columns so that every table has the same shape on every run. The columns
the signals declare are an argument of the schemas that hold them: ``curate.contract`` gives
the registered signals' (``contract.ANALYSIS``), a reader the ones a run recorded. Imports
nothing but pyarrow and the standard library (``curate inspect`` runs where only pyarrow is
installed).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Literal

import numpy as np
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
    "duplicate",
    "rebalanced_out",
    "caption_failed",
    "export_failed",
    "no_tier",
]
"""Rejection reasons of the framework's own steps: probing, decoding, clip windows, the base
tier gates, dedup, re-balancing, captions and export. Each signal's tier gates add theirs
(``blurry``, ``static``, ``text_heavy`` …): see ``curate.contract.REJECT_REASONS``."""


PHASE1_STAGES = ("probe", "analyze")
"""Stages that reject inputs or clip windows before ``analysis`` (their rejected clips have no
analysis row); a re-tier keeps their rejects and recomputes everything after them."""

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
        pa.field("media", pa.string()),
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
"""Probe output: container metadata of one input (``media``: ``video`` or ``image``; an
image has no frame rate or duration), or why it cannot be used."""

SHOTS = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("shot_index", pa.int32(), nullable=False),
        pa.field("start_frame", pa.int64()),
        pa.field("end_frame", pa.int64()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("transition_frames", pa.int32()),
        pa.field("boundary_probabilities", pa.list_(pa.float32())),
    ]
)
"""Every detected shot of every source; ``end_frame``/``end_s`` are exclusive.
``transition_frames``: frames of the fade or dissolve just before the shot (in no shot);
``boundary_probabilities``: TransNetV2's probability that each frame ends a shot, from the end
of the previous shot to the end of this one (null where the network did not run, and for the
PySceneDetect detectors), so boundaries can be re-drawn at another threshold later."""

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


CLIP_FIELDS = (
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("media", pa.string()),
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
)
"""What a clip is: its source, span and picture size (the analyze stage's own columns). An
image is a row of its own (``media``: ``image``, null for an older run's video rows) spanning
no time: one frame at 0 s, no frame rate."""

IMAGE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
"""An image tier's ``image`` column, as Hugging Face ``datasets`` stores an ``Image()``
feature: the encoded file's bytes (null when exported by reference) and its path."""


def image_features(table_schema: pa.Schema) -> pa.Schema:
    """``table_schema`` with the metadata that makes Hugging Face ``datasets`` read its
    ``image`` column as an ``Image()`` feature (decoded to a PIL image on access); the other
    columns keep the types ``datasets`` infers from Arrow."""
    features = {"info": {"features": {"image": {"_type": "Image"}}}}
    return table_schema.with_metadata({b"huggingface": json.dumps(features).encode()})


VIDEO_ONLY_COLUMNS = frozenset(
    {
        "shot_index",
        "start_s",
        "end_s",
        "duration_s",
        "start_frame",
        "end_frame",
        "num_frames",
        "fps",
        "clip_path",
        "video",
    }
)
"""A clip's own columns that an image tier leaves out: they say where in time it lies."""


DUPLICATE_SPAN = pa.struct(
    [
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("of_start_s", pa.float64()),
        pa.field("of_end_s", pa.float64()),
    ]
)
"""Where a duplicate matches its original: seconds from the duplicate clip's start
(``start_s``-``end_s``) and from the original clip's start (``of_start_s``-``of_end_s``)."""


DUPLICATE_FIELDS = ("duplicate_of", "duplicate_similarity", "duplicate_method", "duplicate_span")
"""The columns the dedup stage sets on every duplicate (null on every other row)."""


def later_fields(dim: int) -> tuple[pa.Field, ...]:
    """Columns filled after the decode pass: the embed stage, phase 2 and captions."""
    return (
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        pa.field("embedding_model", pa.string()),
        pa.field("cluster_id", pa.int32()),
        pa.field("duplicate_of", pa.string()),
        pa.field("duplicate_similarity", pa.float32()),
        pa.field("duplicate_method", pa.string()),
        pa.field("duplicate_span", DUPLICATE_SPAN),
        pa.field("sample_weight", pa.float32()),
        pa.field("tier", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("prompts", pa.list_(pa.string())),
        pa.field("captioner", pa.string()),
    )


@lru_cache
def analysis_schema(dim: int, signal_fields: tuple[pa.Field, ...]) -> pa.Schema:
    """Every candidate clip with every score: the phase-1 checkpoint (``dim``-d embeddings).

    Between the clip's own columns and those filled later sit the columns each signal
    declares, ``signal_fields`` (the registered signals', ``curate.contract.SIGNAL_FIELDS``,
    or those a run recorded). ``keyframes`` (at most ``analyze.keyframes.per_clip`` small
    JPEGs) are kept so that phase 3 can caption survivors, also after a re-tier, without
    decoding again; caption columns are set in phase 3 for the clips that reach a tier."""
    return pa.schema([*CLIP_FIELDS, *signal_fields, *later_fields(dim)])


def index_columns(analysis: pa.Schema) -> list[str]:
    """The slice of ``analysis`` that phase 2 and 3 hold on the driver: every scalar column
    (the clip's own, each signal's: the gates read them, and ``tier``), never thumbnails,
    keyframes, embeddings or captions."""
    scalar = [
        f.name
        for f in analysis
        if not (
            pa.types.is_binary(f.type)
            or pa.types.is_list(f.type)
            or pa.types.is_fixed_size_list(f.type)
        )
    ]
    later = {f.name for f in later_fields(embedding_dim(analysis))} - {"tier"}
    return [name for name in scalar if name not in later]


@lru_cache
def tier_schema(dim: int, signal_fields: tuple[pa.Field, ...]) -> pa.Schema:
    """Accepted clip–prompt rows of one tier (``tier`` holds the folder's name)."""
    return pa.schema(
        [
            *(f for f in analysis_schema(dim, signal_fields) if f.name != "keyframes"),
            pa.field("clip_path", pa.string()),
            pa.field("video", pa.binary()),
        ]
    )


@lru_cache
def image_tier_schema(dim: int, signal_fields: tuple[pa.Field, ...]) -> pa.Schema:
    """Accepted image–prompt rows of one image tier: the image itself (:data:`IMAGE`) and
    every column of :func:`tier_schema` that applies to a still (``signal_fields``: those of
    the signals that measure images)."""
    video = tier_schema(dim, signal_fields)
    fields = [f for f in video if f.name not in VIDEO_ONLY_COLUMNS]
    return pa.schema([pa.field("image", IMAGE), *fields])


@lru_cache
def analyzed_source_schema(
    dim: int, signal_fields: tuple[pa.Field, ...], source_fields: tuple[pa.Field, ...]
) -> pa.Schema:
    """What the analyze stage returns per source: its shots, candidate clips and rejects
    together, so that one Ray Data row carries everything one decode produced, plus the
    signals' per-source hand-overs to the detect stage (``source_fields``,
    ``FrameSignal.source_fields``)."""
    return pa.schema(
        [
            *SOURCE,
            pa.field("shots", pa.list_(pa.struct(list(SHOTS)))),
            pa.field("clips", pa.list_(pa.struct(list(analysis_schema(dim, signal_fields))))),
            pa.field("rejects", pa.list_(pa.struct(list(REJECTS)))),
            pa.field("frames", pa.int64()),
            pa.field("analyze_s", pa.float64()),
            pa.field("probe_s", pa.float64()),
            # Seconds and counts per part of the work (``curate.timing``), summed into the
            # manifest.
            pa.field("timing", pa.map_(pa.string(), pa.float64())),
            *source_fields,
        ]
    )


LEGACY_SIGNAL_COLUMNS = {
    "sharpness": "float",
    "sharpness_start": "float",
    "start_shift_s": "float",
    "motion_score": "float",
    "motion_p90": "float",
    "motion_pattern": "string",
    "camera_motion": "string",
    "camera_motion_confidence": "float",
    "text_ratio": "float",
    "text_ratio_max": "float",
    "border_top": "float",
    "border_bottom": "float",
    "border_left": "float",
    "border_right": "float",
    "aesthetic": "float",
    "aesthetic_model": "string",
    "thumbnail": "binary",
    "keyframes": "list<item: binary>",
}
"""The signal columns of runs made before manifests recorded them (``signal_columns``): a
reader checks such a run against the contract it was written with."""


def fields_to_json(fields: tuple[pa.Field, ...] | list[pa.Field]) -> dict[str, str]:
    """Column names and Arrow types, as recorded in a manifest."""
    return {f.name: str(f.type) for f in fields}


def fields_from_json(columns: dict[str, str]) -> tuple[pa.Field, ...]:
    """The inverse of :func:`fields_to_json`."""
    return tuple(pa.field(name, _arrow_type(text)) for name, text in columns.items())


def _arrow_type(text: str) -> pa.DataType:
    """An Arrow type from its ``str``: primitives (``float``, ``string``, ``binary`` …),
    lists of them (``list<item: binary>``) and structs of them (``struct<x0: float, …>``),
    which is what signals declare."""
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(_arrow_type(text[5:-1].split(": ", 1)[1]))
    if text.startswith("struct<") and text.endswith(">"):
        members = (m.split(": ", 1) for m in _top_level(text[7:-1]))
        return pa.struct([pa.field(name, _arrow_type(kind)) for name, kind in members])
    return pa.type_for_alias(text)


def _top_level(text: str) -> list[str]:
    """``text`` split at the commas outside any ``<…>``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def embedding_dim(table_schema: pa.Schema) -> int:
    """Width of the ``embedding`` column of an analysis or tier table."""
    return table_schema.field("embedding").type.list_size


EXPORTED = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("export_key", pa.string(), nullable=False),
        pa.field("clip_path", pa.string()),
        pa.field("video", pa.binary()),
        pa.field("image", pa.binary()),
        pa.field("error", pa.string()),
        pa.field("export_s", pa.float64()),
        # How the clip was made (``copy``, ``libx264``, ``h264_nvenc``), its frames, and the
        # seconds spent decoding (reading, for a copy) and encoding (writing).
        pa.field("export_method", pa.string()),
        pa.field("frames", pa.int64()),
        pa.field("decode_s", pa.float64()),
        pa.field("encode_s", pa.float64()),
    ]
)
"""Export stage output: one encoded clip (path or bytes) or image (bytes) per clip and export
spec."""

LEGACY_SCORE_COLUMNS = (
    "duration_s",
    "sharpness",
    "motion_score",
    "motion_p90",
    "camera_speed",
    "subject_motion",
    "camera_motion_confidence",
    "text_ratio",
    "border_top",
    "border_bottom",
    "border_left",
    "border_right",
    "aesthetic",
    "sample_weight",
)
"""The scores ``curate inspect`` and ``curate report`` summarise for runs made before manifests
recorded them (``score_columns``)."""

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


def row_media(analysis: pa.Table) -> np.ndarray:
    """``video`` or ``image`` per row (a run from before images holds videos only)."""
    if "media" not in analysis.column_names:
        return np.full(analysis.num_rows, "video", dtype=object)
    return np.asarray([m or "video" for m in analysis["media"].to_pylist()], dtype=object)


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

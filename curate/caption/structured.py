"""The structured caption: its JSON schema, the instruction that asks a model for it, the parser
that pulls it out of a model's reply, and the final record stored as JSON text in ``caption``.

A caption has HunyuanVideo's fields (``short_description``, ``dense_description``,
``background``, ``style``, ``shot_type``, ``lighting``, ``atmosphere``), the camera motion from
the classifier when it is confident, and metadata tags. Models are asked for the seven text
fields only: camera motion and tags are measured, so a model's guess never overrides them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from curate.config.sections import CaptionConfig
from curate.signals.camera_motion import CAMERA_MOTIONS

FALLBACK_CAPTIONER = "template-fallback"
"""``captioner`` of a clip whose captioner failed and that kept the template caption."""

TEXT_FIELDS = (
    "short_description",
    "dense_description",
    "background",
    "style",
    "shot_type",
    "lighting",
    "atmosphere",
)
"""The fields a captioner writes (HunyuanVideo's structured caption)."""

DESCRIPTIONS = ("short_description", "dense_description")

MAX_FIELD_CHARS = 4000
"""A longer field is a runaway generation, not a caption."""

EMPTY_VALUES = frozenset({"", "null", "none", "n/a", "na", "unknown", "not visible", "-"})
"""Placeholders models write for "I cannot tell": stored as null, never as text."""

MOTION_LEVELS = ((0.02, "low"), (0.15, "moderate"))
"""``motion_score`` (frame diagonals per second) below each bound gets that level; above the
last, ``high``. A still image scores ~0, a whole-frame pan in two seconds ~0.4."""

INSTRUCTION = """\
The images are {count} frames of one video clip, in temporal order{meta}. Write a caption \
for a text-to-video training set. Reply with one JSON object and nothing else, with these \
string fields:
- "short_description": one sentence: the main subject and what happens.
- "dense_description": a detailed paragraph: the subjects, their appearance, their actions \
and how things change over the clip, where things are in the frame.
- "background": the setting behind the main subjects.
- "style": e.g. live-action footage, animation, 3D render, vintage film, screen recording.
- "shot_type": e.g. extreme close-up, close-up, medium shot, wide shot, aerial shot.
- "lighting": e.g. soft daylight, harsh midday sun, low-key, neon, studio lighting.
- "atmosphere": the mood, e.g. calm, tense, festive.
Describe only what is visible. Use null for a field you cannot tell. Do not describe camera \
movement."""


IMAGE_INSTRUCTION = """\
The image is one picture. Write a caption for a text-to-image training set. Reply with one \
JSON object and nothing else, with these string fields:
- "short_description": one sentence: the main subject and what it is doing.
- "dense_description": a detailed paragraph: the subjects, their appearance, what they are \
doing, where things are in the frame.
- "background": the setting behind the main subjects.
- "style": e.g. photograph, illustration, painting, 3D render, screenshot, microscopy.
- "shot_type": e.g. extreme close-up, close-up, medium shot, wide shot, aerial shot.
- "lighting": e.g. soft daylight, harsh midday sun, low-key, neon, studio lighting.
- "atmosphere": the mood, e.g. calm, tense, festive.
Describe only what is visible. Use null for a field you cannot tell."""


def instruction(count: int, duration_s: float | None = None, media: str = "video") -> str:
    """The request text shown with ``count`` frames of a clip, or with an image."""
    if media == "image":
        return IMAGE_INSTRUCTION
    meta = f", spanning {duration_s:.1f} seconds" if duration_s else ""
    return INSTRUCTION.format(count=count, meta=meta)


REPLY_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {name: {"type": ["string", "null"]} for name in TEXT_FIELDS},
    "required": list(TEXT_FIELDS),
    "additionalProperties": False,
}
"""JSON schema of a model's reply, for servers that constrain decoding to it."""


class MalformedReply(ValueError):
    """A model's reply holds no usable caption."""


class CaptionTags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    tier: str | None = None
    resolution: str | None = None
    orientation: str | None = None
    duration_s: float | None = None
    fps: float | None = None
    motion_level: Literal["low", "moderate", "high"] | None = None


class CaptionFallback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    captioner: str
    error: str


class StructuredCaption(BaseModel):
    """What ``caption`` holds, as JSON text. Every key is always present (null when unknown)."""

    model_config = ConfigDict(extra="forbid")

    short_description: str | None
    dense_description: str | None
    background: str | None
    style: str | None
    shot_type: str | None
    lighting: str | None
    atmosphere: str | None
    camera_motion: Literal[CAMERA_MOTIONS] | None  # type: ignore[valid-type]
    tags: CaptionTags
    note: str | None = None
    """Why fields are absent (the template captioner says it did not look at the clip)."""
    fallback: CaptionFallback | None = None
    """Set when the configured captioner failed and the template caption stands in."""

    @field_validator(*TEXT_FIELDS, mode="before")
    @classmethod
    def _text(cls, value: Any, info: Any) -> str | None:
        return clean_text(info.field_name, value)

    def to_json(self) -> str:
        return self.model_dump_json()


@dataclass
class ClipInfo:
    """One clip as a captioner sees it."""

    clip_id: str
    source: str
    images: list[bytes] = field(default_factory=list)
    """JPEG keyframes in temporal order (the thumbnail when none were kept)."""
    tier: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: str | None = None
    duration_s: float | None = None
    fps: float | None = None
    motion_score: float | None = None
    camera_motion: str | None = None
    """The classifier's label when its confidence passed the threshold, else None."""
    media: str = "video"
    """``image`` for a still: one picture, no duration, motion or camera motion."""


def motion_level(motion_score: float | None) -> str | None:
    if motion_score is None:
        return None
    for bound, level in MOTION_LEVELS:
        if motion_score < bound:
            return level
    return "high"


def tags_of(clip: ClipInfo) -> CaptionTags:
    resolution = f"{clip.width}x{clip.height}" if clip.width and clip.height else None
    return CaptionTags(
        source=clip.source,
        tier=clip.tier,
        resolution=resolution,
        orientation=clip.orientation,
        duration_s=round(clip.duration_s, 3) if clip.duration_s is not None else None,
        fps=round(clip.fps, 3) if clip.fps is not None else None,
        motion_level=motion_level(clip.motion_score),
    )


def build_caption(
    fields: dict[str, str | None],
    clip: ClipInfo,
    *,
    note: str | None = None,
    fallback: CaptionFallback | None = None,
) -> StructuredCaption:
    """The stored caption: a captioner's text fields plus measured camera motion and tags."""
    return StructuredCaption(
        **{name: fields.get(name) for name in TEXT_FIELDS},
        camera_motion=clip.camera_motion,
        tags=tags_of(clip),
        note=note,
        fallback=fallback,
    )


def with_tier(caption_json: str, tier: str | None) -> str:
    """``caption_json`` with its quality-tier tag replaced (a re-tier reusing a caption)."""
    caption = StructuredCaption.model_validate_json(caption_json)
    caption.tags.tier = tier
    return caption.to_json()


# Parsing model replies ---------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def _objects(text: str) -> list[str]:
    """Candidate JSON object texts in ``text``: the whole reply, fenced blocks, then every
    balanced ``{...}`` span (models wrap JSON in prose and code fences)."""
    found = [text.strip()]
    found += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start = text.find("{")
    while start != -1 and len(found) < 32:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start : i + 1])
                    break
        start = text.find("{", start + 1)
    return found


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


def clean_text(name: str, value: Any) -> str | None:
    """A caption field as stored: whitespace collapsed, placeholders ("null", "N/A") as
    None, a list of strings joined; anything else is malformed."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value if v.strip())
    if not isinstance(value, str):
        raise MalformedReply(f"field {name} is {type(value).__name__}, not text")
    text = " ".join(value.split())
    if text.lower().strip(".") in EMPTY_VALUES:
        return None
    if len(text) > MAX_FIELD_CHARS:
        raise MalformedReply(f"field {name} has {len(text)} characters (> {MAX_FIELD_CHARS})")
    return text


def parse_reply(text: str) -> dict[str, str | None]:
    """The caption fields of a model's reply. Raises ``MalformedReply`` when there is no JSON
    object with the fields, a field is not text, or both descriptions are missing."""
    if not text or not text.strip():
        raise MalformedReply("empty reply")
    obj = None
    for candidate in _objects(text):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            obj = value
            break
    if obj is None:
        raise MalformedReply(f"no JSON object in reply {_excerpt(text)}")
    # "Short Description", "short-description": models vary the key spelling.
    keys = {re.sub(r"[\s-]+", "_", str(k).strip().lower()): v for k, v in obj.items()}
    if not any(name in keys for name in TEXT_FIELDS):
        raise MalformedReply(f"reply has none of the caption fields: {_excerpt(text)}")
    fields = {name: clean_text(name, keys.get(name)) for name in TEXT_FIELDS}
    if not any(fields[name] for name in DESCRIPTIONS):
        raise MalformedReply("reply has neither short_description nor dense_description")
    return fields


def assign_captioners(clip_ids: list[str], cfg: CaptionConfig) -> np.ndarray:
    """Index into ``cfg.captioners`` for every clip: deterministic by clip id, in proportion
    to the weights."""
    weights = np.asarray([c.weight for c in cfg.captioners], np.float64)
    bounds = np.cumsum(weights) / weights.sum()
    # A salted hash: independent of any other use of the clip id's bits.
    u = np.asarray(
        [
            int(hashlib.sha1(f"captioner:{c}".encode()).hexdigest()[:13], 16) / 16**13
            for c in clip_ids
        ],
        np.float64,
    )
    return np.minimum(np.searchsorted(bounds, u, side="right"), len(bounds) - 1)

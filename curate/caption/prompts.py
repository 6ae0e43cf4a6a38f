"""Training prompts synthesised from a structured caption.

HunyuanVideo trains on prompts built from the structured caption with field dropout and
permutation so that the model neither overfits one phrasing nor needs every field at
inference. Here ``prompt`` is the complete prompt (the dense description, then every other
field in a fixed order), and ``prompts`` starts with it and adds variants: each variant takes
the short or the dense description, keeps every other field with probability
``1 - dropout``, and shuffles the kept fields. The random stream is seeded by ``seed`` and the
clip id, so the same caption and config always give the same prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from curate.caption.structured import TEXT_FIELDS, clean_text
from curate.config.sections import PromptConfig
from curate.signals.camera_motion import CAMERA_MOTIONS

CAMERA_PHRASES: dict[str, tuple[str, ...]] = {
    "static": ("The camera is static.", "The camera stays still."),
    "pan_left": ("The camera pans to the left.", "The camera pans left across the scene."),
    "pan_right": ("The camera pans to the right.", "The camera pans right across the scene."),
    "tilt_up": ("The camera tilts up.", "The camera tilts upward."),
    "tilt_down": ("The camera tilts down.", "The camera tilts downward."),
    "zoom_in": ("The camera zooms in.", "The camera zooms in, bringing the subject closer."),
    "zoom_out": ("The camera zooms out.", "The camera zooms out, widening the view."),
    "roll_cw": ("The camera rolls clockwise.", "The camera rotates clockwise about its axis."),
    "roll_ccw": (
        "The camera rolls counter-clockwise.",
        "The camera rotates counter-clockwise about its axis.",
    ),
    "handheld": (
        "The camera is handheld, with a slight shake.",
        "Handheld camera, slightly shaky.",
    ),
    "complex": (
        "The camera moves freely, combining several movements.",
        "The camera moves in a complex way.",
    ),
}
"""Natural phrasings of each single camera-motion class (direction = what the camera does)."""

_VERBS = {
    "pan_left": "pans left",
    "pan_right": "pans right",
    "tilt_up": "tilts up",
    "tilt_down": "tilts down",
    "zoom_in": "zooms in",
    "zoom_out": "zooms out",
}
CAMERA_PHRASES |= {
    label: (
        f"The camera {_VERBS[label[:split]]} and {_VERBS[label[split + 1 :]]}.",
        f"The camera {_VERBS[label[:split]]} while it {_VERBS[label[split + 1 :]]}.",
    )
    for label in CAMERA_MOTIONS
    if label not in CAMERA_PHRASES
    # A combined class joins two single ones: "zoom_in_pan_left" = "zoom_in" + "pan_left".
    for split in [label.index("_", label.index("_") + 1)]
}
"""Combined moves, phrased from their parts."""

MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    "low": ("There is little motion in the scene.", "Little motion."),
    "moderate": ("There is moderate motion in the scene.", "Moderate motion."),
    "high": ("There is fast motion in the scene.", "Fast motion."),
}

OPTIONAL_ORDER = (
    "shot_type",
    "camera_motion",
    "background",
    "lighting",
    "atmosphere",
    "style",
    "motion",
)
"""Order of the optional fields in the complete ``prompt``."""

LABELS = {
    "background": ("Background: {}.", "In the background, {}."),
    "lighting": ("Lighting: {}.", "The lighting is {}."),
    "atmosphere": ("Atmosphere: {}.", "The atmosphere is {}."),
    "style": ("Style: {}.", "{}."),
}
"""Phrasings of these fields when they are fragments; full sentences stand alone."""

FALLBACK = "A video clip."
"""Only for a caption with no field at all: a prompt is never empty."""


@dataclass(frozen=True)
class Part:
    name: str
    phrasings: tuple[str, ...]
    """First phrasing: the complete prompt's; variants pick any."""


def _sentence(text: str) -> str:
    text = text.strip()
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _inline(text: str) -> str:
    """``text`` for use inside a sentence: a leading article loses its capital."""
    first, _, rest = text.partition(" ")
    if first in ("A", "An", "The", "Some") and rest:
        return f"{first.lower()} {rest}"
    return text


def _field_part(name: str, text: str) -> Part:
    if name == "shot_type":
        shot = text if "shot" in text.lower() or text.endswith(".") else f"{text} shot"
        return Part(name, (_sentence(shot),))
    if name in LABELS and not text.endswith((".", "!", "?")):
        return Part(name, tuple(_sentence(p.format(_inline(text))) for p in LABELS[name]))
    return Part(name, (_sentence(text),))


def parts(caption: dict) -> tuple[list[str], list[Part]]:
    """The caption's descriptions (dense first) and its optional parts, in canonical order."""
    # Stored captions are clean already; a hand-made dict may still say "null".
    caption = {**caption, **{k: clean_text(k, caption.get(k)) for k in TEXT_FIELDS}}
    descriptions = [
        _sentence(caption[k]) for k in ("dense_description", "short_description") if caption[k]
    ]
    optional: list[Part] = []
    for name in OPTIONAL_ORDER:
        if name == "camera_motion":
            label = caption.get("camera_motion")
            if label in CAMERA_PHRASES:
                optional.append(Part(name, CAMERA_PHRASES[label]))
        elif name == "motion":
            level = (caption.get("tags") or {}).get("motion_level")
            if level in MOTION_PHRASES:
                optional.append(Part(name, MOTION_PHRASES[level]))
        elif caption.get(name):
            optional.append(_field_part(name, caption[name]))
    return descriptions, optional


def synthesize(caption: dict, cfg: PromptConfig, key: str) -> tuple[str, list[str]]:
    """``(prompt, prompts)`` of one caption; ``key`` (the clip id) seeds the variants.

    ``prompts`` holds up to ``cfg.variants`` distinct texts, ``prompt`` first; fewer when the
    caption has too few fields to vary."""
    descriptions, optional = parts(caption)
    complete = [*descriptions[:1], *(p.phrasings[0] for p in optional)]
    prompt = " ".join(complete) or FALLBACK
    prompts = [prompt]
    rng = random.Random(f"{cfg.seed}:{key}")
    # Duplicates are drawn again; a caption with few fields may not yield enough variants.
    for _ in range(20 * cfg.variants):
        if len(prompts) >= cfg.variants:
            break
        kept = [p for p in optional if rng.random() >= cfg.dropout]
        if cfg.permute:
            rng.shuffle(kept)
        text_parts = [rng.choice(p.phrasings) for p in kept]
        if descriptions:
            text_parts.insert(0, rng.choice(descriptions))
        elif not text_parts and optional:
            # Without a description, a variant still says something.
            text_parts = [rng.choice(rng.choice(optional).phrasings)]
        text = " ".join(text_parts)
        if text and text not in prompts:
            prompts.append(text)
    return prompt, prompts

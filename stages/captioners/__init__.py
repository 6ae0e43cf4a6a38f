"""Captioner backends behind one interface: ``caption(clips)`` returns one outcome per clip.

- ``openai``: any OpenAI-compatible chat-completions server with image input.
- ``transformers``: a local vision-language model (Hugging Face transformers).
- ``template``: no model; measured fields only.

Clips are assigned to the configured captioners by a hash of their id, in proportion to the
weights (Movie Gen's 70/30 mix of two captioner sizes), so a re-run assigns them the same way.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from curate.captions import ClipInfo
from curate.config import CaptionConfig, CaptionerConfig, ConfigError, CurateConfig


@dataclass
class CaptionOutcome:
    """A captioner's answer for one clip: text fields, or the error that stopped it."""

    fields: dict[str, str | None] | None = None
    error: str | None = None
    note: str | None = None


class Captioner(ABC):
    """Loaded once per caption actor; ``caption`` must not raise for one bad clip."""

    name: str

    @abstractmethod
    def caption(self, clips: list[ClipInfo]) -> list[CaptionOutcome]:
        """One outcome per clip, in order."""


class Secret:
    """An API key on its way to the caption actors: never shown by ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def build_captioner(cfg: CaptionerConfig, api_key: Secret | None = None) -> Captioner:
    """The backend of ``cfg``, loaded (models are loaded here, once per actor)."""
    if cfg.backend == "openai":
        from stages.captioners.openai_chat import OpenAICaptioner

        return OpenAICaptioner(cfg, api_key)
    if cfg.backend == "transformers":
        from stages.captioners.hf_transformers import TransformersCaptioner

        return TransformersCaptioner(cfg)
    from stages.captioners.template import TemplateCaptioner

    return TemplateCaptioner(cfg.name)


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


def check_captioners(config: CurateConfig) -> dict[str, Secret]:
    """Fail at start-up, naming the key to fix, when a captioner cannot work: an API key
    variable that is not set, a model that cannot be found. Returns the API keys read from
    the environment, by captioner name."""
    keys: dict[str, Secret] = {}
    if not config.caption.enabled:
        return keys
    for i, cap in enumerate(config.caption.captioners):
        where = f"caption.captioners.{i}"
        if cap.backend == "openai" and cap.api_key_env:
            value = os.environ.get(cap.api_key_env)
            if not value:
                raise ConfigError(
                    f"{where}.api_key_env: environment variable {cap.api_key_env} is not set "
                    f"(captioner {cap.name!r} needs the API key there)"
                )
            keys[cap.name] = Secret(value)
        elif cap.backend == "transformers":
            from stages.captioners.hf_transformers import check_model

            check_model(cap, f"{where}.model")
    return keys

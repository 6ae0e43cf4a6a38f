"""Captioner backends behind one interface: ``caption(clips)`` returns one outcome per clip.

- ``openai``: any OpenAI-compatible chat-completions server with image input.
- ``transformers``: a local vision-language model (Hugging Face transformers).
- ``template``: no model; measured fields only.

Clips are assigned to the configured captioners by a hash of their id, in proportion to the
weights (Movie Gen's 70/30 mix of two captioner sizes), so a re-run assigns them the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from curate.captions import ClipInfo
from curate.config import CaptionerConfig


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


def _openai(cfg: CaptionerConfig, api_key: Secret | None) -> Captioner:
    from stages.captioners.openai_chat import OpenAICaptioner

    return OpenAICaptioner(cfg, api_key)


def _transformers(cfg: CaptionerConfig, api_key: Secret | None) -> Captioner:
    from stages.captioners.hf_transformers import TransformersCaptioner

    return TransformersCaptioner(cfg)


def _template(cfg: CaptionerConfig, api_key: Secret | None) -> Captioner:
    from stages.captioners.template import TemplateCaptioner

    return TemplateCaptioner(cfg.name)


CAPTIONERS: dict[str, Callable[[CaptionerConfig, Secret | None], Captioner]] = {
    "openai": _openai,
    "transformers": _transformers,
    "template": _template,
}
"""Captioner backends by ``caption.captioners.*.backend`` (the config's
``CAPTION_BACKENDS``; ``tests/test_registry.py`` keeps the two in step). Each entry builds
its backend from the captioner's config and API key; the imports are deferred so a run loads
only the backends (and their dependencies: transformers, an HTTP client) it uses."""


IN_DRIVER_BACKENDS = frozenset({"template"})
"""Backends without a model or a server to call: cheap enough to run in the driver process
(see ``CaptionStage.runs_in_driver``)."""


def build_captioner(cfg: CaptionerConfig, api_key: Secret | None = None) -> Captioner:
    """The backend of ``cfg``, loaded (models are loaded here, once per actor)."""
    return CAPTIONERS[cfg.backend](cfg, api_key)

"""Captioner backends behind one interface: ``caption(clips)`` returns one outcome per clip.

- ``openai``: any OpenAI-compatible chat-completions server with image input.
- ``transformers``: a local vision-language model (Hugging Face transformers).
- ``template``: no model; measured fields only.

Clips are assigned to the configured captioners by a hash of their id, in proportion to the
weights (Movie Gen's 70/30 mix of two captioner sizes), so a re-run assigns them the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from curate.config.sections import CaptionerConfig
from stages.captioners.base import Captioner, CaptionOutcome, Secret
from stages.captioners.hf_transformers import TransformersCaptioner
from stages.captioners.openai_chat import OpenAICaptioner
from stages.captioners.template import TemplateCaptioner

__all__ = ["CAPTIONERS", "IN_DRIVER_BACKENDS", "CaptionOutcome", "Captioner", "Secret"]


CAPTIONERS: dict[str, Callable[[CaptionerConfig, Secret | None], Captioner]] = {
    "openai": OpenAICaptioner,
    "transformers": lambda cfg, api_key: TransformersCaptioner(cfg),
    "template": lambda cfg, api_key: TemplateCaptioner(cfg.name),
}
"""Captioner backends by ``caption.captioners.*.backend`` (the config's
``CAPTION_BACKENDS``; ``tests/test_registry.py`` keeps the two in step). Each entry builds
its backend from the captioner's config and API key; a backend imports its heavy libraries
(transformers, torch) only when it loads its model, so a run loads only what it uses."""


IN_DRIVER_BACKENDS = frozenset({"template"})
"""Backends without a model or a server to call: cheap enough to run in the driver process
(see ``CaptionStage.runs_in_driver``)."""


def build_captioner(cfg: CaptionerConfig, api_key: Secret | None = None) -> Captioner:
    """The backend of ``cfg``, loaded (models are loaded here, once per actor)."""
    return CAPTIONERS[cfg.backend](cfg, api_key)

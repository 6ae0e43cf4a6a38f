"""Typed run configuration: YAML validated into pydantic models that reject unknown keys.

This module holds what every section is made of (:class:`Model`, :class:`SignalConfig`) and
:class:`ConfigError`; it imports nothing of ``curate``, so that a signal can declare its own
block. The sections of a run's config are in ``curate.config.sections`` (the ``analyze``
and ``detect`` sections and the tier ``gates`` are assembled from the registered signals by
``curate.contract``), reading and ``--set`` overrides in ``curate.config.loading``, and error
messages that name the offending key (``analyze.flow.fps``) in ``curate.config.errors``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration problem; the message lists every offending key path."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SignalConfig(Model):
    """The block that configures one signal: ``analyze.<name>`` for a per-frame signal,
    ``detect.<name>`` for a keyframe detector. The signal declares it beside its code
    (``Signal.config``); a block without settings is a bare subclass."""

    moved_keys: ClassVar[dict[str, str]] = {}
    """Keys of the enclosing section that older configs used for a setting of this block:
    ``{"borders_fps": "fps"}`` reads ``analyze.borders_fps`` as ``analyze.borders.fps``."""

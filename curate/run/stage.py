"""The contract every Ray stage keeps (probe, analyze, detect, embed, caption, export).

A stage is a class Ray Data runs as an actor pool: constructed once per actor, then called on
pyarrow batches. It declares beside itself

- ``name``: its key in :data:`curate.run.registry.STAGES`; its Ray resources are ``ray.<name>``;
- :meth:`Stage.inputs`: the config sections it reads, handed to its constructor, so a stage
  never sees (or depends on) the rest of the config;
- :meth:`Stage.check`: a start-up check that runs on the driver before any work and fails
  with a :class:`~curate.config.ConfigError` naming the key to fix;
- :meth:`Stage.shares_actor` and :meth:`Stage.runs_in_driver`: whether it may run in an
  actor shared with the other phase-1 stages, and whether a small run may call it in the
  driver instead of starting a pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

if TYPE_CHECKING:
    from curate.config.sections import CurateConfig


class Stage(ABC):
    name: ClassVar[str]
    """Registry key and resources section (``ray.<name>``)."""
    input_columns: ClassVar[tuple[str, ...]] = ()
    """Columns of its input the stage reads, when the pipeline selects them from a table
    (empty: the stage takes the rows it is given as they are)."""

    @classmethod
    @abstractmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        """The config sections (or values) this stage reads: its constructor's keyword
        arguments, besides the run-time ones the pipeline passes."""

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        """Fail before any work when the stage cannot run with ``config`` (a model that
        cannot be loaded, a missing API key). Returns facts the run records or hands to
        the stage (an embedding model's name, API keys); nothing by default."""
        return {}

    @classmethod
    def from_config(cls, config: CurateConfig, **runtime: Any) -> Stage:
        """The stage as one actor of its pool gets it."""
        return cls(**cls.inputs(config), **runtime)

    @classmethod
    def shares_actor(cls, config: CurateConfig) -> bool:
        """Whether the stage may run in an actor it shares with the stages around it (see
        ``ray.phase1_pools``), one copy per actor of that pool: a stage with a large model,
        kept to a few actors of its own, says no."""
        return True

    @classmethod
    def runs_in_driver(cls, config: CurateConfig, **runtime: Any) -> bool:
        """Whether a run small enough for the driver (``ray.driver_max_clips``) calls this
        stage in the driver process instead of starting its actor pool: for work that
        takes less time than a pool takes to start. Never by default."""
        return False

    @abstractmethod
    def __call__(self, batch: pa.Table) -> pa.Table:
        """Map one batch."""

"""Phase 2 over the ``analysis`` table: the tier gates, then semantic dedup and K-means
re-balancing. Each is a :class:`Phase2Step` (``stages/tiers.py``, ``stages/dedup.py``,
``stages/rebalance.py``), run in that order by the pipeline.

Embeddings are only ever read by Ray Data tasks from the ``analysis`` shards; the driver holds
scalar columns (ids, scores, cluster labels) and a bounded sample for each centroid fit. A
table of at most ``ray.driver_max_clips`` rows is read into the driver instead and the same
steps run in place: a small run does not pay for Ray Data's start-up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curate.config.sections import CurateConfig
from curate.contract import reject_row
from curate.output.tables import read_table
from curate.run.clustering import Rows
from curate.run.progress import Progress
from curate.run.runner import read_shards
from curate.storage import Store


@dataclass
class Candidates:
    """What a phase-2 step sees."""

    index: pa.Table
    """The scalar columns of every analysis row, in the order of the ``analysis`` shards
    (``tier``: the strictest tier a clip passed, once the tier step has run)."""
    alive: np.ndarray
    """Per row: still in the running."""
    analysis: Store
    """The ``analysis`` shards, where Ray tasks read the embeddings."""
    in_memory: bool = False
    """The table is small: steps read it into the driver and work on it in place."""

    def __post_init__(self) -> None:
        self.ids: list[str] = self.index["clip_id"].to_pylist()
        self.row_of = {c: i for i, c in enumerate(self.ids)}

    def rows(self, columns: list[str]) -> Rows | None:
        """``columns`` of the analysis shards: a table when :attr:`in_memory`, a Ray dataset
        otherwise (None for an empty table)."""
        if not self.analysis.files(""):
            return None
        if self.in_memory:
            return read_table(self.analysis, columns=columns)
        return read_shards(self.analysis).select_columns(columns)

    def reject(self, row: int, stage: str, reason: str, detail: str) -> dict:
        """The ``rejects`` row of analysis row ``row``."""
        return reject_row(
            self.index["source"][row].as_py(),
            stage,
            reason,
            detail,
            clip_id=self.ids[row],
            start_s=self.index["start_s"][row].as_py(),
            end_s=self.index["end_s"][row].as_py(),
        )


@dataclass
class StepResult:
    kept: np.ndarray
    """Per analysis row: still in the running after this step."""
    columns: dict[str, pa.Array] = field(default_factory=dict)
    """Whole ``analysis`` columns the step sets, aligned with ``Candidates.index``."""
    rejects: list[dict] = field(default_factory=list)
    funnel: dict = field(default_factory=dict)
    """The step's entry in the manifest's funnel."""


class Phase2Step(ABC):
    """One global step over the analysis table: no pixels, its own config sections only."""

    name: ClassVar[str]
    """Its name in the funnel and in its rejects' ``stage``."""

    @classmethod
    @abstractmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        """The config sections this step reads (its constructor's keyword arguments)."""

    @classmethod
    def from_config(cls, config: CurateConfig) -> Phase2Step:
        return cls(**cls.inputs(config))

    @abstractmethod
    def run(self, clips: Candidates) -> StepResult:
        """Decide over the clips still alive."""


def run_steps(
    steps: Sequence[Phase2Step], clips: Candidates, progress: Progress | None = None
) -> StepResult:
    """Run ``steps`` in order, each over the rows the previous ones left alive. Returns the
    rows still alive, every column set, every reject (in step order) and the funnel entries
    by step name."""
    progress = progress or Progress(enabled=False)
    done = StepResult(kept=clips.alive)
    for step in steps:
        with progress.step(step.name) as shown:
            result = step.run(clips)
            shown.note = f"{int(result.kept.sum())} of {int(clips.alive.sum())} clips kept"
        clips.alive = result.kept
        done.columns.update(result.columns)
        done.rejects += result.rejects
        done.funnel[step.name] = result.funnel
    done.kept = clips.alive
    return done

"""The one place that maps stage names (as used in config sections like ``ray.analyze``) to
stage classes, and that knows both the framework (``curate``) and the stages (``stages``)."""

from __future__ import annotations

from curate.run.phase2 import Phase2Step
from curate.run.stage import Stage
from stages.analyze import AnalyzeStage
from stages.caption import CaptionStage
from stages.dedup import DedupStep
from stages.detect import DetectStage
from stages.embed import EmbedStage
from stages.export import ExportStage
from stages.probe import ProbeStage
from stages.rebalance import RebalanceStep
from stages.tiers import TierStep

STAGES: dict[str, type[Stage]] = {
    stage.name: stage
    for stage in (ProbeStage, AnalyzeStage, DetectStage, EmbedStage, CaptionStage, ExportStage)
}
"""Ray-executed stages by name, in pipeline order (see :class:`curate.run.stage.Stage`)."""

PHASE2_STEPS: dict[str, type[Phase2Step]] = {
    step.name: step for step in (TierStep, DedupStep, RebalanceStep)
}
"""Phase-2 steps by name, in the order they run (see :class:`curate.run.phase2.Phase2Step`)."""

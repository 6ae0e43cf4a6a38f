"""The one place that maps stage names (as used in config sections like ``ray.analyze``) to
stage classes."""

from __future__ import annotations

from stages.analyze import AnalyzeStage
from stages.caption import CaptionStage
from stages.embed import EmbedStage
from stages.export import ExportStage
from stages.probe import ProbeStage

STAGES: dict[str, type] = {
    ProbeStage.name: ProbeStage,
    AnalyzeStage.name: AnalyzeStage,
    EmbedStage.name: EmbedStage,
    CaptionStage.name: CaptionStage,
    ExportStage.name: ExportStage,
}
"""Ray-executed stages by name; each takes the run config and maps a pyarrow batch."""

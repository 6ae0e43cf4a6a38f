"""Probe stage: container metadata per input, or a rejection reason."""

from __future__ import annotations

import logging
import time
from typing import Any

import pyarrow as pa

from curate import schema
from curate.config.sections import CurateConfig, IsolationConfig, ProbeConfig
from curate.inputs import media_of
from curate.media.image import probe_image
from curate.media.sandbox import Sandbox
from curate.media.video import MediaError, probe
from curate.run.stage import Stage

log = logging.getLogger(__name__)


class ProbeStage(Stage):
    """Reads display size, rotation, fps and duration of each source (no full decode); an
    image's display size (after its EXIF orientation) and format from its header.

    Inputs that cannot be opened, have no video stream, are shorter than the minimum clip or
    fall below the resolution floor come out with ``ok = false`` and a reason; so do inputs
    that crash, hang or exhaust the memory of the decoder, which runs in a sandbox process
    (``isolation``).
    """

    name = "probe"

    def __init__(
        self, probe: ProbeConfig, isolation: IsolationConfig, min_duration_s: float
    ) -> None:
        self.cfg = probe
        self.min_duration_s = min_duration_s
        self.timeout_s = isolation.probe_timeout_s
        self.sandbox = Sandbox(
            isolation, self.name, preload=("curate.media.video", "curate.media.image")
        )

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        # A source shorter than the shortest clip can yield nothing: rejected here, before
        # it is decoded.
        return {
            "probe": config.probe,
            "isolation": config.isolation,
            "min_duration_s": config.analyze.clips.min_duration_s,
        }

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [self.probe_one(r["source"], r["source_index"]) for r in batch.to_pylist()]
        return schema.from_rows(rows, schema.PROBE)

    def probe_one(self, source: str, source_index: int) -> dict:
        started = time.perf_counter()
        media = media_of(source)
        row: dict = {"source": source, "source_index": source_index, "media": media, "ok": False}
        try:
            info = self.sandbox.run(
                probe_image if media == "image" else probe,
                source,
                max_pixels=self.cfg.max_pixels,
                source=source,
                timeout_s=self.timeout_s,
                timeout_key="isolation.probe_timeout_s",
            )
            row.update(
                width=info.width,
                height=info.height,
                coded_width=info.coded_width,
                coded_height=info.coded_height,
                rotation=info.rotation,
                sar=info.sar,
                fps=info.fps,
                duration_s=info.duration_s,
                codec=info.codec,
            )
            short_side = min(info.width, info.height)
            if short_side < self.cfg.min_short_side:
                raise MediaError(
                    "low_resolution",
                    f"short side {short_side} px < probe.min_short_side {self.cfg.min_short_side}"
                    f" ({info.width}x{info.height})",
                )
            if media == "video" and info.duration_s < self.min_duration_s:
                raise MediaError(
                    "too_short",
                    f"duration {info.duration_s:.2f} s < analyze.clips.min_duration_s "
                    f"{self.min_duration_s}",
                )
            row["ok"] = True
        except MediaError as e:
            row.update(reason=e.reason, detail=e.detail)
            log.info("probe rejected %s: %s (%s)", source, e.reason, e.detail)
        row["probe_s"] = time.perf_counter() - started
        return row

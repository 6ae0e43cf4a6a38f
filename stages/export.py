"""Export stage: re-encode accepted clips to H.264 at each tier's target size and frame rate.

Clips are cut at exact frame boundaries (``start_s`` inclusive, ``end_s`` exclusive, both
frame presentation times from the analysis pass) and resampled to a constant frame rate, so
an exported clip lasts its stated duration to within one frame.
"""

from __future__ import annotations

import logging
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
from av.video.reformatter import VideoReformatter

from curate import schema
from curate.config import CurateConfig, ExportConfig
from curate.exporting import clip_relpath
from curate.stage import Stage
from curate.storage import Store
from curate.threads import cpu_share
from curate.video import (
    DECODE_ERRORS,
    SCALER_THREADS,
    MediaError,
    VideoInfo,
    ffmpeg_url,
    open_video,
    probe,
    scaled_size,
    upright,
    with_times,
)

log = logging.getLogger(__name__)

EPS = 1e-4
"""Seconds of slack when comparing frame times (timestamps are rounded by containers)."""


class ExportStage(Stage):
    """Encodes every job of one source with a single open of that source.

    ``output`` (the run's output folder or URI) is a run-time argument: the pipeline knows it,
    the config does not."""

    name = "export"

    def __init__(self, export: ExportConfig, max_pixels: int, output: str) -> None:
        self.cfg = export
        self.output = Store(output)
        self.max_pixels = max_pixels

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        # The export re-probes each source and must refuse oversized frames as the probe
        # stage did: hence probe.max_pixels.
        return {"export": config.export, "max_pixels": config.probe.max_pixels}

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict] = []
        for item in batch.to_pylist():
            rows.extend(self.export_source(item))
        return schema.from_rows(rows, schema.EXPORTED)

    def export_source(self, item: dict) -> list[dict]:
        rows = []
        try:
            # Re-probing costs one frame; it keeps the export items small.
            info = probe(item["source"], max_pixels=self.max_pixels)
            container, stream = open_video(item["source"])
        except MediaError as e:
            return [_failed(job, e.detail) for job in item["jobs"]]
        # The MP4 muxer needs a seekable file; inline clips go through a scratch folder.
        scratch = tempfile.TemporaryDirectory(prefix="curate-export-")
        try:
            for job in sorted(item["jobs"], key=lambda j: j["start_s"]):
                started = time.perf_counter()
                rel = clip_relpath(job["export_key"], job["clip_id"])
                if self.cfg.mode == "inline" or not self.output.local:
                    tmp = Path(scratch.name) / f"{job['clip_id']}.mp4"
                else:
                    # Written next to its final place under a temporary name, renamed when
                    # complete.
                    target = self.output.local_path(rel)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp.mp4")
                try:
                    self._encode(container, stream, info, job, tmp)
                except DECODE_ERRORS as e:
                    tmp.unlink(missing_ok=True)
                    rows.append(_failed(job, f"{type(e).__name__}: {e}"))
                    continue
                row = {"clip_id": job["clip_id"], "export_key": job["export_key"]}
                if self.cfg.mode == "inline":
                    row["video"] = tmp.read_bytes()
                    tmp.unlink()
                else:
                    self.output.put_file(tmp, rel)
                    row["clip_path"] = rel
                row["export_s"] = time.perf_counter() - started
                rows.append(row)
        finally:
            container.close()
            scratch.cleanup()
        return rows

    def _encode(self, container, stream, info: VideoInfo, job: dict, target: Path) -> None:
        start, end = job["start_s"], job["end_s"]
        fps = job["fps"] or info.fps or 25.0
        rate = Fraction(fps).limit_denominator(1001)
        n_out = max(1, round((end - start) * float(rate)))
        short = min(job["short_side"] or 10**9, info.width, info.height)
        size = scaled_size(info, short)
        upright_w, upright_h = (size[1], size[0]) if info.quarter_turns % 2 else size
        # Bars come off after scaling: (top, bottom, left, right) fractions, even sizes.
        top, bottom, left, right = job.get("crop") or (0.0, 0.0, 0.0, 0.0)
        y0, x0 = 2 * round(top * upright_h / 2), 2 * round(left * upright_w / 2)
        y1 = upright_h - 2 * round(bottom * upright_h / 2)
        x1 = upright_w - 2 * round(right * upright_w / 2)

        options = {"movflags": "+faststart"}
        with av.open(ffmpeg_url(str(target)), "w", format="mp4", options=options) as out:
            ost = out.add_stream("libx264", rate=rate)
            ost.width, ost.height = x1 - x0, y1 - y0
            ost.pix_fmt = "yuv420p"
            ost.options = {"crf": str(self.cfg.crf), "preset": self.cfg.preset}
            # x264's own threads sized to the actor's CPUs, as the other native pools are: on
            # a machine the pool already fills, extra encoder threads only cost switching.
            ost.codec_context.thread_count = cpu_share() or 0
            ost.codec_context.time_base = 1 / rate

            k = 0
            shown: av.VideoFrame | None = None
            # Frames that need neither turning nor cropping go to the encoder in its own pixel
            # format, scaled by one conversion (about twice as fast as through RGB arrays).
            direct = not info.quarter_turns and (y0, x0, y1, x1) == (0, 0, size[1], size[0])

            def emit_until(t: float) -> None:
                # Constant-rate output: slot k shows the newest source frame at or before it.
                nonlocal k
                while shown is not None and k < n_out and start + k / float(rate) < t - EPS:
                    shown.pts, shown.time_base = k, 1 / rate
                    out.mux(ost.encode(shown))
                    k += 1

            scaler = VideoReformatter()
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame, t in with_times(container.decode(stream), info.fps):
                if t < start - EPS:
                    continue
                if t >= end - EPS:
                    break
                emit_until(t)
                if direct:
                    shown = scaler.reformat(frame, *size, format="yuv420p", threads=SCALER_THREADS)
                    continue
                image = scaler.reformat(
                    frame, *size, format="rgb24", threads=SCALER_THREADS
                ).to_ndarray()
                shown = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(upright(image, info)[y0:y1, x0:x1]), format="rgb24"
                )
            if shown is None:
                raise ValueError(f"no frame decoded in [{start:.3f}, {end:.3f})")
            emit_until(float("inf"))
            out.mux(ost.encode(None))


def _failed(job: dict, detail: str) -> dict:
    return {"clip_id": job["clip_id"], "export_key": job["export_key"], "error": detail}

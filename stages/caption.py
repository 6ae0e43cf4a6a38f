"""Caption stage (phase 3): structured captions and prompts for the clips that survived the
tiers, dedup and re-balancing.

One actor pool per configured captioner, each actor loading its captioner once. A batch of
survivor clips (their analysis rows with keyframes) becomes one row per clip with ``caption``
(JSON text), ``prompt``, ``prompts``, ``captioner`` — or ``error`` when the captioner failed
after its retries. With ``caption.on_failure: template`` a failed clip gets the template
caption instead, flagged in the caption's ``fallback`` and in ``captioner``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

from curate import schema
from curate.caption.prompts import synthesize
from curate.caption.structured import FALLBACK_CAPTIONER, CaptionFallback, ClipInfo, build_caption
from curate.config import ConfigError
from curate.config.sections import CaptionConfig, CaptionerConfig, CurateConfig
from curate.run.stage import Stage
from stages.captioners import (
    IN_DRIVER_BACKENDS,
    Captioner,
    CaptionOutcome,
    Secret,
    build_captioner,
)
from stages.captioners.hf_transformers import check_model
from stages.captioners.template import TemplateCaptioner

log = logging.getLogger(__name__)

INPUT_COLUMNS = (
    "clip_id",
    "source",
    "media",
    "tier",
    "width",
    "height",
    "orientation",
    "duration_s",
    "fps",
    "motion_score",
    "camera_motion",
    "camera_motion_confidence",
    "thumbnail",
    "keyframes",
)
"""The analysis columns a captioner reads."""


def pick(items: list, n: int) -> list:
    """``n`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def clip_info(row: dict, cfg: CaptionConfig, images: int) -> ClipInfo:
    """A captioner's view of one analysis row: ``images`` keyframes (or the thumbnail), and
    the camera motion only when the classifier was confident enough."""
    frames = pick(row.get("keyframes") or [], images)
    if not frames and row.get("thumbnail"):
        frames = [row["thumbnail"]]
    confidence = row.get("camera_motion_confidence")
    confident = confidence is not None and confidence >= cfg.camera_motion_min_confidence
    if row.get("media") == "image":
        return ClipInfo(
            clip_id=row["clip_id"],
            source=row["source"],
            images=frames[:1],
            tier=row.get("tier"),
            width=row.get("width"),
            height=row.get("height"),
            orientation=row.get("orientation"),
            media="image",
        )
    return ClipInfo(
        clip_id=row["clip_id"],
        source=row["source"],
        images=frames,
        tier=row.get("tier"),
        width=row.get("width"),
        height=row.get("height"),
        orientation=row.get("orientation"),
        duration_s=row.get("duration_s"),
        fps=row.get("fps"),
        motion_score=row.get("motion_score"),
        camera_motion=row.get("camera_motion") if confident else None,
    )


def _check_captioner(cap: CaptionerConfig, where: str) -> Secret | None:
    """Raise ``ConfigError`` naming the key under ``where`` unless captioner ``cap`` can
    work; returns its API key when it reads one from the environment."""
    if cap.backend == "openai" and cap.api_key_env:
        value = os.environ.get(cap.api_key_env)
        if not value:
            raise ConfigError(
                f"{where}.api_key_env: environment variable {cap.api_key_env} is not set "
                f"(captioner {cap.name!r} needs the API key there)"
            )
        return Secret(value)
    if cap.backend == "transformers":
        check_model(cap, f"{where}.model")
    return None


class CaptionStage(Stage):
    """Captions a batch of survivor clips with captioner number ``captioner`` of
    ``caption.captioners``.

    ``captioner`` and ``api_key`` are run-time arguments: the pipeline runs one pool per
    captioner, and hands each the key :meth:`check` read on the driver (an actor's environment
    need not hold it)."""

    name = "caption"
    input_columns = INPUT_COLUMNS

    def __init__(
        self, caption: CaptionConfig, captioner: int = 0, api_key: Secret | None = None
    ) -> None:
        self.cfg = caption
        self.captioner_cfg = self.cfg.captioners[captioner]
        self.captioner: Captioner = build_captioner(self.captioner_cfg, api_key)
        self.template = TemplateCaptioner(FALLBACK_CAPTIONER)

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {"caption": config.caption}

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        """Fail at start-up, naming the key to fix, when a captioner cannot work: an API key
        variable that is not set, a model that cannot be found. ``api_keys``: the API keys
        read from the environment, by captioner name (none when captioning is off)."""
        keys: dict[str, Secret] = {}
        if not config.caption.enabled:
            return {"api_keys": keys}
        for i, cap in enumerate(config.caption.captioners):
            key = _check_captioner(cap, f"caption.captioners.{i}")
            if key is not None:
                keys[cap.name] = key
        return {"api_keys": keys}

    @classmethod
    def runs_in_driver(cls, config: CurateConfig, **runtime: Any) -> bool:
        # A backend without a model or a server captions a small run in less time than a
        # pool takes to start.
        return config.caption.captioners[runtime["captioner"]].backend in IN_DRIVER_BACKENDS

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        clips = [clip_info(r, self.cfg, self.captioner_cfg.images) for r in batch.to_pylist()]
        try:
            outcomes = self.captioner.caption(clips)
            if len(outcomes) != len(clips):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(clips)} clips")
        except Exception as e:  # a misbehaving captioner fails its clips, never the run
            log.exception("captioner %s failed on a batch", self.captioner.name)
            outcomes = [CaptionOutcome(error=f"{type(e).__name__}: {e}") for _ in clips]
        seconds = (time.perf_counter() - started) / max(1, len(clips))
        rows = [{**self.finish(c, o), "caption_s": seconds} for c, o in zip(clips, outcomes)]
        failed = sum(r.get("error") is not None for r in rows)
        log.info("captioner %s: %d clips, %d failed", self.captioner.name, len(rows), failed)
        return schema.from_rows(rows, schema.CAPTIONED)

    def finish(self, clip: ClipInfo, outcome: CaptionOutcome) -> dict:
        """The stored caption and prompts of one clip, or its error."""
        name, fallback = self.captioner.name, None
        if outcome.error is not None or outcome.fields is None:
            error = outcome.error or "captioner returned nothing"
            if self.cfg.on_failure == "reject":
                return {"clip_id": clip.clip_id, "error": error}
            fallback = CaptionFallback(captioner=name, error=error)
            name, outcome = FALLBACK_CAPTIONER, self.template.caption_one(clip)
        caption = build_caption(outcome.fields or {}, clip, note=outcome.note, fallback=fallback)
        prompt, prompts = synthesize(caption.model_dump(), self.cfg.prompts, clip.clip_id)
        return {
            "clip_id": clip.clip_id,
            "caption": caption.to_json(),
            "prompt": prompt,
            "prompts": prompts,
            "captioner": name,
        }

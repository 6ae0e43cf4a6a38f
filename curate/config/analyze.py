"""The ``analyze`` section's own settings: decoding and how the signals' series become clips.
The signals' blocks are added to it by ``curate.contract`` (``AnalyzeConfig``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from curate.config import Model, SignalConfig


class ClipsConfig(Model):
    min_duration_s: float = Field(4.0, gt=0)
    max_duration_s: float = Field(16.0, gt=0)
    lead_in_s: float = Field(
        1.0,
        ge=0,
        description="A clip's start may move this far into the shot to its sharpest frame.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ClipsConfig:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class ThumbnailConfig(Model):
    short_side: int = Field(128, ge=16)
    quality: int = Field(80, ge=10, le=100)


class AnalyzeSettings(Model):
    """Decoding settings shared by every signal; ``curate.contract.AnalyzeConfig`` adds a block
    per registered signal after them, then ``clips`` and ``thumbnail``."""

    short_side: int = Field(
        256,
        ge=32,
        description="Frames are scaled to this short side while decoding; sharpness is measured "
        "here, so scores compare across sources.",
    )
    decode_threads: int = Field(
        0,
        ge=0,
        description="Decoder threads per source. 0: OMP_NUM_THREADS (in a Ray worker, the "
        "actor's CPU share from ray.analyze.num_cpus, unless the environment already sets "
        "it), or FFmpeg's choice where it is unset.",
    )
    skip_loop_filter: bool = Field(
        True, description="Skip H.264/VP8 deblocking while analysing (faster, invisible at 256 px)."
    )
    decoder: Literal["auto", "cpu", "nvdec"] = Field(
        "auto",
        description="auto: NVDEC (the GPU's video decoder, through PyAV's CUDA hwaccel) where "
        "the analyze worker has a GPU that PyAV can open, the CPU elsewhere; nvdec: fail at "
        "start-up where it cannot work. A source NVDEC refuses (its codec or profile) is "
        "decoded on the CPU.",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        # Keys that a signal's block took over (``SignalConfig.moved_keys``): the old key,
        # when given, sets the new one (``--set`` overrides a materialised config, which
        # always holds the new key).
        if not isinstance(data, dict):
            return data
        for name, block_type in signal_block_types(cls).items():
            for old, new in block_type.moved_keys.items():
                if old not in data:
                    continue
                block = data.get(name) or {}
                if not isinstance(block, dict):
                    continue  # the block's own validation names the problem
                data = {**data, name: {**block, new: data[old]}}
                del data[old]
        return data


def signal_block_types(model: type[Model]) -> dict[str, type[SignalConfig]]:
    """The signal blocks among ``model``'s fields, by name, in declaration order."""
    return {
        name: f.annotation
        for name, f in model.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, SignalConfig)
    }

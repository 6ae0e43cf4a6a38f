"""Where models and decoders run: one reading of ``device: auto`` (and ``analyze.decoder``)
for torch, onnxruntime and NVDEC.

``auto`` means the GPU when this process has one: a CUDA device is visible, the library can
use it, and, inside a Ray worker, Ray gave the worker a GPU (``ray.<stage>.num_gpus``). The
last condition matters because recent Ray (2.60 here) no longer hides the GPUs from a worker
that asked for none: without it every CPU actor on a GPU node would start a CUDA context of
its own, unscheduled.

An explicit ``cuda`` (or ``nvdec``) is taken at its word and fails with a
:class:`ConfigError` naming the key where the GPU is not usable: in the worker that runs the
model, and already at start-up on the driver of a local run. The driver of a cluster run (a
cluster named in ``RAY_ADDRESS``, as ``ray job submit`` does, or in ``ray.address``) checks
only that the libraries could use a GPU: its own machine may have none.

Nothing here imports torch or onnxruntime until a setting needs them.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from curate.config import ConfigError
from curate.media import video

if TYPE_CHECKING:
    from curate.config.sections import AnalyzeConfig, CurateConfig

Device = Literal["cuda", "cpu"]

GPU_HINT = "give its Ray pool a GPU (ray.<stage>.num_gpus) or set the key to auto or cpu"


@lru_cache(maxsize=1)
def cuda_devices() -> int:
    """CUDA devices this process can see, through the driver library itself (no framework
    needed; ``CUDA_VISIBLE_DEVICES`` applies). 0 where there is no driver."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def _ray_worker_context() -> Any:
    """Ray's runtime context when this process is a Ray worker, else ``None``."""
    ray = sys.modules.get("ray")  # only a process that already runs Ray can be a worker
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if getattr(getattr(context, "worker", None), "mode", None) != ray.WORKER_MODE:
        return None
    return context


def ray_gave_no_gpu() -> bool:
    """Whether this is a Ray worker to which Ray assigned no GPU (False in a driver, in a
    sandbox child and anywhere Ray is not running)."""
    context = _ray_worker_context()
    return context is not None and not context.get_accelerator_ids().get("GPU")


def cluster_driver(address: str | None = None) -> bool:
    """Whether this process drives a run on a Ray cluster (``address``: ``ray.address``), whose
    GPUs are on the workers rather than here."""
    return _ray_worker_context() is None and bool(address or os.environ.get("RAY_ADDRESS"))


def torch_device(setting: str, key: str) -> Device:
    """``setting`` (``auto``, ``cpu``, ``cuda``) of the torch model configured at ``key``;
    called where the model is loaded."""
    if setting == "cpu":
        return "cpu"
    import torch

    if setting == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key} is cuda but this process sees no CUDA device torch can use; {GPU_HINT}"
            )
        return "cuda"
    return "cuda" if not ray_gave_no_gpu() and torch.cuda.is_available() else "cpu"


def torch_half(device: str) -> Any:
    """The 16-bit type a GPU computes natively: bfloat16 from Ampere on, float16 before."""
    import torch

    if device == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float16


def onnx_device(setting: str, key: str) -> Device:
    """``setting`` of the onnxruntime models configured at ``key``: ``cuda`` needs the
    ``onnxruntime-gpu`` build (its CUDA provider) and a visible device."""
    if setting == "cpu":
        return "cpu"
    import onnxruntime as ort

    provider = "CUDAExecutionProvider" in ort.get_available_providers()
    if setting == "cuda":
        if not provider:
            raise ConfigError(
                f"{key}: cuda requested but onnxruntime has no CUDA provider (install "
                "onnxruntime-gpu in place of onnxruntime)"
            )
        if not cuda_devices() and not cluster_driver():
            raise ConfigError(f"{key}: cuda requested but no CUDA device is visible; {GPU_HINT}")
        return "cuda"
    return "cuda" if provider and not ray_gave_no_gpu() and cuda_devices() else "cpu"


def resolve_decoder(setting: str) -> Literal["nvdec", "cpu"]:
    """``analyze.decoder`` as the decoder this process uses. ``auto`` picks NVDEC when PyAV
    can open a CUDA device here; ``nvdec`` raises :class:`ConfigError` when it cannot. The
    check opens (and closes) a CUDA device once per process."""
    if setting == "cpu" or (setting == "auto" and (ray_gave_no_gpu() or not cuda_devices())):
        return "cpu"
    problem = video.nvdec_problem()
    if problem is None:
        return "nvdec"
    if setting == "nvdec":
        raise ConfigError(
            f"analyze.decoder: nvdec cannot decode here: {problem} (set analyze.decoder to auto "
            "to use NVDEC only where it works, or cpu)"
        )
    return "cpu"


def check_decoder(config: CurateConfig) -> None:
    """The run's start-up check of ``analyze.decoder`` on the driver: ``nvdec`` needs a PyAV
    whose FFmpeg has NVDEC and, unless this drives a cluster run, a GPU it can open here
    (each analyze worker checks again as it starts: :func:`resolve_analyze`)."""
    if config.analyze.decoder != "nvdec":
        return
    problem = video.nvdec_build_problem()
    if problem is not None:
        raise ConfigError(f"analyze.decoder: nvdec cannot work: {problem} (set auto or cpu)")
    if not cluster_driver(config.ray.address):
        resolve_decoder("nvdec")


def resolve_analyze(cfg: AnalyzeConfig) -> AnalyzeConfig:
    """``cfg`` with the ``auto`` settings an analyze worker decides replaced by what it
    decided: the decoder, and TransNetV2's device where Ray gave the worker no GPU. The decode
    runs in a sandbox process that Ray knows nothing about, so it is told."""
    update: dict[str, Any] = {"decoder": resolve_decoder(cfg.decoder)}
    transnet = cfg.shots.transnetv2
    if transnet.device == "auto" and ray_gave_no_gpu():
        transnet = transnet.model_copy(update={"device": "cpu"})
        update["shots"] = cfg.shots.model_copy(update={"transnetv2": transnet})
    return cfg.model_copy(update=update)

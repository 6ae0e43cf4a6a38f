"""onnxruntime sessions for the learned detectors (OCR, NudeNet, YOLO-family models)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from curate.config import ConfigError
from curate.models.devices import cluster_driver, onnx_device
from curate.models.threads import cpu_share

log = logging.getLogger(__name__)

CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
"""The CUDA provider's default (EXHAUSTIVE) benchmarks every convolution again for each new
input shape; OCR's inputs change shape with every frame size and line width."""


def providers(device: str, key: str) -> list[Any]:
    """Execution providers for ``device`` (``auto``, ``cpu``, ``cuda``; see
    :func:`curate.models.devices.onnx_device`); ``key`` names the setting in errors."""
    if onnx_device(device, key) == "cuda":
        return [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@lru_cache(maxsize=8)
def session(path: str, device: str, key: str) -> Any:
    """The model at ``path`` as an onnxruntime session, once per process; ``key`` names the
    device setting in errors."""
    import onnxruntime as ort

    chosen = providers(device, key)
    if chosen[0] != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
        # The CUDA and cuDNN libraries pip installs (with torch, say) are not on the loader's
        # path; without them the CUDA provider would not start.
        try:
            ort.preload_dlls()
        except Exception as e:  # a library it cannot load is the provider's to report
            log.debug("onnxruntime.preload_dlls: %s", e)
    options = ort.SessionOptions()
    # As many threads as the worker's CPU share (two where nobody says).
    options.intra_op_num_threads = cpu_share() or 2
    options.log_severity_level = 3
    # Denormal floats (activations that decay towards zero) take the slow path of x86 FPUs:
    # flushing them costs nothing in accuracy and 30 % of PP-OCR's detection time.
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    model = ort.InferenceSession(path, options, providers=chosen)
    # onnxruntime falls back to the CPU silently when its CUDA provider cannot start (the
    # driver of a cluster run only loads the model to check it: its workers have the GPUs).
    if chosen[0] != "CPUExecutionProvider" and session_device(model) != "cuda":
        if cluster_driver():
            return model
        if device == "cuda":
            raise ConfigError(
                f"{key}: cuda requested but onnxruntime's CUDA provider did not start (CUDA or "
                "cuDNN libraries missing? onnxruntime logs why at a lower log level)"
            )
        log.warning("%s: onnxruntime's CUDA provider did not start; running on the CPU", key)
    log.info("%s on %s", Path(path).name, session_device(model))
    return model


def session_device(model: Any) -> str:
    """Where an onnxruntime session runs: ``cuda`` or ``cpu``."""
    return "cuda" if "CUDAExecutionProvider" in model.get_providers() else "cpu"

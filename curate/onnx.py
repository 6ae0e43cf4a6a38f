"""onnxruntime sessions for the learned detectors (OCR, NudeNet, YOLO-family models)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from curate.config import ConfigError
from curate.threads import cpu_share


def providers(device: str, key: str) -> list[str]:
    """Execution providers for ``device`` (``auto``, ``cpu``, ``cuda``); ``key`` names the
    setting in errors."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ConfigError(
            f"{key}: cuda requested but onnxruntime has no CUDA provider (install onnxruntime-gpu)"
        )
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@lru_cache(maxsize=8)
def session(path: str, device: str, key: str) -> Any:
    """The model at ``path`` as an onnxruntime session, once per process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # As many threads as the worker's CPU share (two where nobody says).
    options.intra_op_num_threads = cpu_share() or 2
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=providers(device, key))

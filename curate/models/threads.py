"""Native thread pools sized to a worker's share of the CPUs.

Ray sets ``OMP_NUM_THREADS`` in every worker from the CPUs its actor reserved (at least 1).
OpenCV, onnxruntime and PyTorch otherwise each start a pool as large as the machine: with
several actors per node (analyze, detect, embed run side by side) the pools oversubscribe the
cores and spend their time spinning and switching instead of working."""

from __future__ import annotations

import os
import sys


def cpu_share() -> int | None:
    """Threads this process should use: ``OMP_NUM_THREADS`` where Ray (or the user) set it."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return None


def limit_native_threads() -> None:
    """Size OpenCV's (and, once imported, PyTorch's) thread pool to :func:`cpu_share`."""
    threads = cpu_share()
    if threads is None:
        return
    import cv2

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)

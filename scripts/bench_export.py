"""Export throughput of this checkout against another (by default the code before the export
work, ``../baseline``) on the same clips, in one invocation.

The clips are fixed spans of the cut-heavy 720p H.264 video (``scripts/cut_heavy_video.py``,
built once and cached): one per segment of at least ``--min-segment`` seconds, starting a few
frames after the segment's first frame (as clips start on the sharpest frame near a shot's
start, not on the cut's keyframe) and at most ``--max-clip`` seconds long. Each clip is
exported with every distinct export spec of the config's tiers (``configs/default.yaml``:
full size at the source's rate).

Each run is one export stage call (``ExportStage.export_source`` over every clip, the source
opened once, as an export actor runs it) in a process of its own, with the code of its
checkout first on ``PYTHONPATH`` and ``OMP_NUM_THREADS`` set as Ray sets it for an export
actor (``ray.export.num_cpus``, at least 1; ``--threads`` to change). The two checkouts run
``--repeats`` times, interleaved. Printed: seconds and frames/s per run, the ratio this /
checkout, file sizes, and the PSNR of every exported frame against the source frame it
shows (scaled to the export size with a Lanczos filter): the lowest frame's and the overall
one (of the mean squared error over all frames). Then decode-only
throughput of the same spans, a table of x264 presets (this checkout, one run each), and
``export.codec: copy`` on the same clips moved to start on a keyframe.

    python scripts/bench_export.py                         # against ../baseline
    python scripts/bench_export.py --checkout ../old-curate --repeats 5
    python scripts/bench_export.py --duration 8 --repeats 1 --checkout .   # smoke
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import av
import numpy as np

from curate.config.loading import load_config
from curate.run.exporting import export_key
from scripts.common import export_worker
from scripts.common.curate_run import code_env
from scripts.common.paths import DEFAULT_CONFIG, REPO_ROOT, SHARED_VIDEOS
from scripts.cut_heavy_video import FPS, build

EPS = 1e-4
PRESETS = ("ultrafast", "superfast", "veryfast", "faster")


def clip_spans(joins: list[int], frames: int, fps: float, args) -> list[tuple[float, float]]:
    """(start_s, end_s) of one clip per long enough segment between the video's joins."""
    bounds = [0, *joins, frames]
    spans = []
    for a, b in pairwise(bounds):
        if b - a < round(args.min_segment * fps):
            continue
        start = a + args.offset
        end = min(b, start + round(args.max_clip * fps))
        spans.append((start / fps, end / fps))
    return spans


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            float(p.pts * stream.time_base)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        ]


def on_keyframes(spans: list, keyframes: list[float], back: float) -> list:
    """The spans moved to start on the first keyframe at or after ``back`` seconds before
    theirs (their cut), same end; spans left shorter than 2 s are dropped."""
    moved = []
    for start, end in spans:
        key = next((k for k in keyframes if k >= start - back - EPS), None)
        if key is not None and key < end - 2.0:
            moved.append((key, end))
    return moved


def make_jobs(spans: list[tuple[float, float]], specs: list) -> list[dict]:
    jobs = []
    for spec in specs:
        for i, (start, end) in enumerate(spans):
            jobs.append(
                {
                    "clip_id": hashlib.sha256(f"bench{i}".encode()).hexdigest()[:16],
                    "export_key": export_key(spec),
                    "start_s": start,
                    "end_s": end,
                    "short_side": spec.short_side,
                    "fps": spec.fps,
                    "crop": [0.0, 0.0, 0.0, 0.0] if spec.crop_borders else None,
                }
            )
    return jobs


def run_export(
    checkout: Path, config: Path, overrides: list[str], source: Path, jobs: list, out: Path
) -> dict:
    """One export stage call in a process running ``checkout``'s code."""
    out.mkdir(parents=True, exist_ok=True)
    task = out / "task.json"
    task.write_text(
        json.dumps(
            {"source": str(source), "jobs": jobs, "config": str(config), "overrides": overrides}
        )
    )
    # The child imports only curate and stages, those of the checkout under test.
    proc = subprocess.run(
        [sys.executable, export_worker.__file__, str(task), str(out)],
        cwd=checkout,
        env=code_env(checkout),
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.exit(f"export in {checkout} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = [r["error"] for r in result["rows"] if r.get("error")]
    if errors:
        sys.exit(f"export in {checkout}: {len(errors)} clips failed, e.g. {errors[0]}")
    result["bytes"] = sum((out / r["clip_path"]).stat().st_size for r in result["rows"])
    return result


def yuv(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="yuv420p").astype(np.float32)


def psnr(source: Path, jobs: list[dict], out: Path, rows: list[dict]) -> tuple[int, list[float]]:
    """Frames in the exported clips, and each frame's PSNR (dB, all YUV 4:2:0 planes) against
    the source frame its time slot shows, scaled to the clip's size with Lanczos."""
    paths = {(r["clip_id"], r["export_key"]): out / r["clip_path"] for r in rows}
    values: list[float] = []
    frames = 0
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        source_fps = float(stream.average_rate)
        for job in jobs:
            with av.open(str(paths[(job["clip_id"], job["export_key"])])) as clip:
                exported = [yuv(f) for f in clip.decode(video=0)]
            frames += len(exported)
            h, w = exported[0].shape[0] * 2 // 3, exported[0].shape[1]
            rate = job["fps"] or source_fps
            slots = [job["start_s"] + k / rate for k in range(len(exported))]
            container.seek(int(job["start_s"] / stream.time_base), stream=stream, backward=True)
            shown, k = None, 0
            for frame in container.decode(stream):
                while shown is not None and k < len(slots) and slots[k] < frame.time - EPS:
                    values.append(_psnr(shown, exported[k]))
                    k += 1
                if k >= len(slots):
                    break
                if frame.time >= job["start_s"] - EPS:
                    shown = yuv(frame.reformat(w, h, format="yuv420p", interpolation="LANCZOS"))
            while shown is not None and k < len(slots):
                values.append(_psnr(shown, exported[k]))
                k += 1
    return frames, values


def overall(values: list[float]) -> float:
    """PSNR of the mean squared error over all frames (a frame without error counts 0)."""
    mse = statistics.fmean(255.0**2 / 10 ** (v / 10) for v in values)
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def decode_only(source: Path, spans: list[tuple[float, float]], threads: int) -> float:
    """Seconds to seek to and decode every span (no conversion, no encoding)."""
    started = time.perf_counter()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for start, end in spans:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time >= end - EPS:
                    break
    return time.perf_counter() - started


def line(name: str, runs: list[dict], frames: int, values: list[float] | None) -> str:
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    quality = "" if values is None else f"{min(values):9.2f}{overall(values):10.2f}"
    return (
        f"{name:<22}{seconds:9.2f}{cpu:9.2f}{frames / seconds:10.1f}"
        f"{runs[-1]['bytes'] / 1e6:9.1f}{quality}"
    )


HEADER = f"{'':<22}{'wall s':>9}{'cpu s':>9}{'frames/s':>10}{'MB':>9}{'PSNR min':>9}{'overall':>10}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--videos", type=Path, default=SHARED_VIDEOS)
    p.add_argument("--duration", type=float, default=180.0, help="cut-heavy video seconds")
    p.add_argument("--cache", type=Path, help="cut-heavy video cache (default ~/.cache)")
    p.add_argument("--checkout", type=Path, default=REPO_ROOT.parent / "baseline")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS (default: as Ray sets it)")
    p.add_argument("--presets", default=",".join(PRESETS), help="x264 presets to tabulate")
    p.add_argument("--min-segment", type=float, default=8.0, help="shortest segment used, s")
    p.add_argument("--max-clip", type=float, default=16.0, help="longest clip, s")
    p.add_argument("--offset", type=int, default=3, help="clip start, frames after the cut")
    return p


def compare_checkouts(
    variants: dict[str, tuple[Path, Path]], source: Path, jobs: list, work: Path, repeats: int
) -> None:
    """The export of ``checkout`` against ``this``, interleaved ``repeats`` times: the table
    and the frames/s ratios."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(repeats):
        for name, (tree, cfg) in variants.items():
            runs[name].append(run_export(tree, cfg, [], source, jobs, work / name))
        print(
            f"repeat {r + 1}/{repeats}: checkout {runs['checkout'][-1]['seconds']:.1f} s, "
            f"this {runs['this'][-1]['seconds']:.1f} s",
            flush=True,
        )
    print(f"\nexport of {len(jobs)} clips, median of {repeats} runs")
    print(HEADER)
    fps_of = {}
    for name in variants:
        frames, values = psnr(source, jobs, work / name, runs[name][-1]["rows"])
        fps_of[name] = [frames / r["seconds"] for r in runs[name]]
        print(line(name, runs[name], frames, values))
    ratios = [t / c for t, c in zip(fps_of["this"], fps_of["checkout"], strict=True)]
    print(
        "this / checkout frames/s: "
        + ", ".join(f"{x:.2f}" for x in ratios)
        + f" (median {statistics.median(ratios):.2f})"
    )
    this_rows = runs["this"][-1]["rows"]
    if "decode_s" in this_rows[0]:
        decode = sum(r["decode_s"] for r in this_rows)
        encode = sum(r["encode_s"] for r in this_rows)
        print(f"this, last run: decode thread {decode:.1f} s, encoder {encode:.1f} s")


def preset_table(config, config_path: Path, presets: list[str], source, jobs, work) -> None:
    """This checkout's export with each x264 preset alone (no x264_params), one run each."""
    if presets:
        print(f"\nx264 presets alone (this checkout, crf {config.export.crf}, one run each)")
        print(HEADER)
    for preset in presets:
        out = work / f"preset-{preset}"
        overrides = [f"export.preset={preset}", "export.x264_params=''"]
        result = run_export(REPO_ROOT, config_path, overrides, source, jobs, out)
        frames, values = psnr(source, jobs, out, result["rows"])
        print(line(preset, [result], frames, values), flush=True)
    if presets and config.export.x264_params:
        print(
            f"(this: {config.export.preset} with x264_params {config.export.x264_params}, "
            "in the table above)"
        )


def copy_table(config_path: Path, source: Path, keyed: list[dict], work: Path) -> None:
    """``export.codec: copy`` against encoding, on clips that start on a keyframe."""
    print(f"\nexport.codec: copy, {len(keyed)} clips moved to start on a keyframe")
    print(HEADER)
    for name, overrides in (("encode", []), ("copy", ["export.codec=copy"])):
        out = work / f"keyed-{name}"
        result = run_export(REPO_ROOT, config_path, overrides, source, keyed, out)
        frames, values = psnr(source, keyed, out, result["rows"])
        print(line(name, [result], frames, values))
    methods = [r.get("export_method") for r in result["rows"]]
    print(f"copied: {methods.count('copy')} of {len(methods)}")


def main() -> None:
    p = _parser()
    args = p.parse_args()
    checkout = args.checkout.resolve()
    if not (checkout / "stages" / "export.py").is_file():
        p.error(f"--checkout {checkout}: no stages/export.py there")
    config_path = args.config.resolve()
    config = load_config(config_path)
    # The checkout reads its own copy of the config, as its users would.
    own = (
        config_path.relative_to(REPO_ROOT) if config_path.is_relative_to(REPO_ROOT) else config_path
    )
    checkout_config = checkout / own if not own.is_absolute() else own
    threads = args.threads or max(1, int(config.ray.export.num_cpus))
    os.environ["OMP_NUM_THREADS"] = str(threads)

    source, joins = build(args.videos, args.duration, cache=args.cache)
    frames_total = round(args.duration * FPS)
    spans = clip_spans(joins, frames_total, FPS, args)
    specs = list({t.export.model_dump_json(): t.export for t in config.tiers}.values())
    jobs = make_jobs(spans, specs)
    keys = ", ".join(sorted({j["export_key"] for j in jobs}))
    print(f"cut-heavy video: {source} ({args.duration:g} s, {len(joins)} joins)")
    print(
        f"{len(jobs)} clips ({keys} from {config_path.name}), OMP_NUM_THREADS={threads}, "
        f"crf {config.export.crf}, this checkout's preset {config.export.preset}"
    )

    with tempfile.TemporaryDirectory(prefix="curate-bench-export-") as tmp:
        work = Path(tmp)
        variants = {"checkout": (checkout, checkout_config), "this": (REPO_ROOT, config_path)}
        compare_checkouts(variants, source, jobs, work, args.repeats)
        seconds = decode_only(source, spans, threads)
        span_frames = sum(round((e - s) * FPS) for s, e in spans)
        print(
            f"decode only (seek + decode, {threads} threads): {span_frames / seconds:.0f} frames/s"
        )
        presets = [x for x in args.presets.split(",") if x]
        preset_table(config, config_path, presets, source, jobs, work)
        keyed = make_jobs(on_keyframes(spans, keyframe_times(source), args.offset / FPS), specs)
        if keyed:
            copy_table(config_path, source, keyed, work)


if __name__ == "__main__":
    main()

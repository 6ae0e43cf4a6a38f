"""Throughput benchmark: curate's analysis pass against plain decoding and PySceneDetect.

Over the real test videos (default ``../shared/testdata/videos``, relative to the repo root),
one invocation measures three throughputs, in decoded frames per second:

1. **decode**: plain PyAV decode of the first video stream (``thread_type = "AUTO"``), frames
   only counted, never converted. This is the floor every method pays.
2. **analysis**: ``stages.analyze.analyze_source``, curate's single decode pass that computes
   shots, Laplacian sharpness, sampled optical flow, keyframes and the frames kept for OCR,
   and plans the clips (``probe`` is not timed); then **detect**, the detect stage on what it
   kept (PP-OCR on the sampled frames, NudeNet and any ``detect.objects`` model on the
   keyframes). Together they are phase 1's work per source (embedding aside: the default
   ``signature`` backend costs milliseconds). Models are loaded once before the first repeat,
   as a worker does at start-up; that warm-up is printed on its own.
3. **scenedetect**: the PySceneDetect CLI, ``python -m scenedetect -i FILE -b pyav
   detect-content`` (the PyAV backend, so the decoder matches), one subprocess per file, run in
   a temporary directory with ``-o`` pointing there so nothing is written into the repo. Its
   wall time includes interpreter start-up and imports, so an empty start-up
   (``python -m scenedetect version``, which loads the CLI, OpenCV and PyAV) is measured too and
   both raw and start-up-corrected figures are printed.

Every method uses the same files (those ``curate.media.video.probe`` accepts) and the same frame
counts (from the decode pass). Each measurement is repeated ``--repeats`` times, methods
interleaved file by file (their order rotating each repeat); the median total time per method
is reported, along with a per-file table of median times.

After the ratios it prints where the analysis and detect time went (``curate.timing``: the
decoder wait, each signal, TransNetV2's frames and seconds, OCR frames, NudeNet keyframes), as
``manifest.json`` records it, summed over the files of the last repeat.

``--without SIGNAL`` also times phase 1 without one per-frame signal (``watermark``: and
without the detect stage's reading of the stack of frames for marks), in the same rotation,
and prints the share of phase 1 that signal costs.

``--cut-heavy SECONDS`` benchmarks one video instead: ``scripts/cut_heavy_video.py`` cuts it
together from the shared footage (720p H.264, 25 fps, a cut every 3-14 s, stop-motion and a
kinetic-typography promo among the pieces) and caches it. That is the worst case for the shot
detector and for per-clip detection.

Run from the repo root::

    python scripts/bench.py [--repeats 3] [--files 'moviepy/*'] [--limit 5] [--json out.json]
    python scripts/bench.py --cut-heavy 180 [--without watermark]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from curate import schema
from curate.config.loading import load_config
from curate.config.sections import CurateConfig
from curate.contract import FRAME_SIGNALS
from curate.media.video import DECODE_ERRORS, MediaError, VideoInfo, probe
from curate.timing import add as add_timing
from curate.timing import nest, timing_lines
from scripts.common.paths import REPO_ROOT
from scripts.common.timing import Stopwatch
from scripts.cut_heavy_video import build
from stages.analyze import analyze_source
from stages.detect import DetectStage

VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts"}
METHODS = ("decode", "analysis", "scenedetect")
WITHOUT = "phase 1 without"
STEPS = (*METHODS, "detect", WITHOUT)
"""What is timed: the methods, the detect stage after each analysis, and with ``--without``
phase 1 (analysis and detect) without one signal."""
PHASE1 = ("analysis", "detect")
SCENEDETECT_FRAMES = re.compile(r"Processed (\d+) frames")


@dataclass
class FileResult:
    rel: str
    path: str
    info: VideoInfo
    frames: int = 0
    """Frames the decode-only pass yields (the count every method's fps uses)."""
    analysis_frames: int = 0
    clips: int = 0
    scenedetect_frames: int | None = None
    """Frames PySceneDetect reports it processed, for a cross-check only."""
    decode_error: str | None = None
    scenedetect_error: str | None = None
    times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in STEPS})
    timing: dict[str, float] = field(default_factory=dict)
    """Where the analysis and detect time of the last repeat went (``curate.timing`` keys)."""

    def median(self, method: str) -> float:
        return statistics.median(self.times[method])


def decode_only(path: str) -> tuple[int, str | None]:
    """Count the decodable frames of the first video stream; no conversion."""
    frames = 0
    error = None
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for _ in container.decode(stream):
                frames += 1
        except DECODE_ERRORS as e:  # keep what decoded, as decode_series does
            error = f"{type(e).__name__}: {e}"
    return frames, error


def run_scenedetect(path: str, workdir: str) -> tuple[float, int | None, str | None]:
    cmd = [sys.executable, "-m", "scenedetect", "-i", path, "-b", "pyav", "-o", workdir]
    cmd.append("detect-content")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    match = SCENEDETECT_FRAMES.search(output)
    error = None if proc.returncode == 0 else f"exit {proc.returncode}: {output[-300:]}"
    return elapsed, int(match.group(1)) if match else None, error


def time_command(cmd: list[str], workdir: str) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, capture_output=True, check=True)
    return time.perf_counter() - started


def warm_detect_stage(cfg: CurateConfig) -> DetectStage:
    """The detect stage with its models loaded and run once, as a worker's first batch would."""
    detect = DetectStage(**DetectStage.inputs(cfg))
    detect.load()
    blank = np.zeros((224, 400, 3), np.uint8)
    for detector in detect.detectors:
        detector.model.detect(blank, detector.min_score)
    return detect


def find_files(root: Path, pattern: str | None, limit: int | None) -> list[Path]:
    paths = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
    )
    if pattern:
        paths = [p for p in paths if fnmatch.fnmatch(p.relative_to(root).as_posix(), pattern)]
    return paths[:limit] if limit else paths


def fps(frames: int, seconds: float) -> float:
    return frames / seconds if seconds > 0 else float("nan")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "videos",
        nargs="?",
        default="../shared/testdata/videos",
        help="folder of videos, relative to the repo root (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="default: %(default)s")
    parser.add_argument("--files", metavar="GLOB", help="only paths (relative) matching GLOB")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N files")
    parser.add_argument("--config", help="curate YAML config (default: built-in defaults)")
    parser.add_argument("--json", metavar="PATH", help="write the results here as JSON")
    parser.add_argument(
        "--without",
        metavar="SIGNAL",
        help="also time phase 1 without this per-frame signal, and print its share",
    )
    parser.add_argument(
        "--cut-heavy",
        type=float,
        metavar="SECONDS",
        help="benchmark the cut-heavy video scripts/cut_heavy_video.py builds from the videos "
        "folder, this long (180: the 3-minute one), instead of the folder's files",
    )
    return parser


def probed_files(
    root: Path, pattern: str | None, limit: int | None, cfg: CurateConfig
) -> tuple[list[FileResult], list[tuple[str, str]]]:
    """The files ``curate.media.video.probe`` accepts, and (file, why) for those it rejects."""
    results: list[FileResult] = []
    skipped: list[tuple[str, str]] = []
    for path in find_files(root, pattern, limit):
        rel = path.relative_to(root).as_posix()
        try:
            info = probe(str(path), max_pixels=cfg.probe.max_pixels)
        except MediaError as e:
            skipped.append((rel, f"{e.reason}: {e.detail}"))
            continue
        results.append(FileResult(rel, str(path), info))
    return results, skipped


def measure(
    r: FileResult,
    method: str,
    cfg: CurateConfig,
    detect: DetectStage,
    workdir: str,
    without: str | None = None,
):
    """Time one method on one file (analysis: then detect on what it kept), into ``r``;
    ``WITHOUT``: analysis and detect without the signal named ``without``."""
    watch = Stopwatch()
    if method == "decode":
        frames, error = decode_only(r.path)
        r.times["decode"].append(watch.seconds)
        r.frames, r.decode_error = frames, error
    elif method == "analysis":
        try:
            analyzed = analyze_source(r.path, r.info, cfg.analyze)
        except MediaError as e:
            sys.exit(f"{r.rel}: analyze_source failed after probe passed: {e}")
        r.times["analysis"].append(watch.seconds)
        r.analysis_frames = analyzed["frames"]
        r.clips = len(analyzed["clips"])
        row = {"source": r.path, "source_index": 0, **analyzed}
        watch.restart()
        detected = detect(schema.from_rows([row], detect.schema))
        r.times["detect"].append(watch.seconds)
        r.timing = dict(detected["timing"][0].as_py() or ())
    elif method == WITHOUT:
        signals = [s.from_config(cfg.analyze) for s in FRAME_SIGNALS if s.name != without]
        analyzed = analyze_source(r.path, r.info, cfg.analyze, signals)
        row = {"source": r.path, "source_index": 0, **analyzed}
        if without == "watermark":  # the stack of frames is read for marks in detect
            detect.stacked_marks = lambda samples: None
        try:
            detect(schema.from_rows([row], detect.schema))
        finally:
            vars(detect).pop("stacked_marks", None)
        r.times[WITHOUT].append(watch.seconds)
    else:
        elapsed, sd_frames, error = run_scenedetect(r.path, workdir)
        r.times["scenedetect"].append(elapsed)
        r.scenedetect_frames, r.scenedetect_error = sd_frames, error


def run_repeats(
    results: list[FileResult],
    cfg: CurateConfig,
    detect: DetectStage,
    repeats: int,
    wall: Stopwatch,
    without: str | None = None,
) -> tuple[dict[str, list[float]], list[str]]:
    """Every method on every file, ``repeats`` times, interleaved file by file with the order
    rotating each repeat. Returns the start-up times of the scenedetect CLI and what
    scenedetect left in its temporary folder."""
    startup: dict[str, list[float]] = {"scenedetect version": [], "import only": []}
    startup_cmds = {
        "scenedetect version": [sys.executable, "-m", "scenedetect", "version"],
        "import only": [sys.executable, "-c", "import scenedetect, cv2, av"],
    }
    with tempfile.TemporaryDirectory(prefix="curate-bench-") as workdir:
        methods = (*METHODS, WITHOUT) if without else METHODS
        for repeat in range(repeats):
            turn = repeat % len(methods)
            order = methods[turn:] + methods[:turn]
            for name, cmd in startup_cmds.items():
                startup[name].append(time_command(cmd, workdir))
            for r in results:
                for method in order:
                    measure(r, method, cfg, detect, workdir, without)
            print(f"  repeat {repeat + 1}/{repeats} done ({wall.seconds:.0f} s)", flush=True)
        leftovers = os.listdir(workdir)
    return startup, leftovers


def median_total(files: list[FileResult], repeats: int, *steps: str) -> float:
    """Median over repeats of the time ``steps`` took together over ``files``."""
    return statistics.median(
        sum(r.times[step][i] for r in files for step in steps) for i in range(repeats)
    )


def median_totals(results: list[FileResult], repeats: int, start_s: float) -> dict[str, float]:
    """Median total seconds per step, phase 1 and scenedetect less its start-up per file."""
    # WITHOUT is timed only with --without: below.
    totals = {m: median_total(results, repeats, m) for m in STEPS if m != WITHOUT}
    totals["phase1"] = median_total(results, repeats, *PHASE1)
    if results[0].times[WITHOUT]:
        totals[WITHOUT] = median_total(results, repeats, WITHOUT)
    totals["scenedetect_corrected"] = max(totals["scenedetect"] - len(results) * start_s, 1e-9)
    return totals


def per_file_table(results: list[FileResult], start_s: float) -> list[dict]:
    """Print the per-file table of median fps; return its rows for the JSON."""
    width = max(len(r.rel) for r in results)
    head = (
        f"{'file':<{width}} {'frames':>6} {'clips':>5} {'decode':>8} {'analysis':>8} "
        f"{'ana/dec':>7} {'ph1/dec':>7} {'sd raw':>7} {'sd corr':>7}"
    )
    print()
    print(
        "per file: median fps over repeats (sd = scenedetect; corr = minus start-up "
        f"{start_s:.3f} s)"
    )
    print(head)
    print("-" * len(head))
    per_file = []
    for r in results:
        d, a, s = r.median("decode"), r.median("analysis"), r.median("scenedetect")
        p1 = a + r.median("detect")
        s_corr = s - start_s
        row = {
            "file": r.rel,
            "frames": r.frames,
            "analysis_frames": r.analysis_frames,
            "scenedetect_frames": r.scenedetect_frames,
            "width": r.info.coded_width,
            "height": r.info.coded_height,
            "codec": r.info.codec,
            "clips": r.clips,
            "seconds": {"decode": d, "analysis": a, "detect": p1 - a, "scenedetect": s},
            "fps": {
                "decode": fps(r.frames, d),
                "analysis": fps(r.frames, a),
                "scenedetect": fps(r.frames, s),
                "scenedetect_corrected": fps(r.frames, s_corr) if s_corr > 0 else None,
            },
            "analysis_over_decode": d / a,
            "phase1_over_decode": d / p1,
            "decode_error": r.decode_error,
            "scenedetect_error": r.scenedetect_error,
        }
        per_file.append(row)
        corr = f"{row['fps']['scenedetect_corrected']:7.0f}" if s_corr > 0 else f"{'n/a':>7}"
        print(
            f"{r.rel:<{width}} {r.frames:>6} {r.clips:>5} {fps(r.frames, d):8.0f} "
            f"{fps(r.frames, a):8.0f} {d / a:7.2f} {d / p1:7.2f} {fps(r.frames, s):7.0f} {corr}"
        )
    return per_file


def collect_notes(
    results: list[FileResult], skipped: list[tuple[str, str]], leftovers: list[str]
) -> list[str]:
    notes = []
    for r in results:
        if r.analysis_frames != r.frames:
            notes.append(f"{r.rel}: analysis decoded {r.analysis_frames} frames, decode {r.frames}")
        sd = r.scenedetect_frames
        if sd is not None and abs(sd - r.frames) > max(3, 0.05 * r.frames):
            # It counts frames from timestamps, typically a few short; only large gaps matter.
            notes.append(f"{r.rel}: scenedetect reports {sd} frames, decode {r.frames}")
        if r.decode_error:
            notes.append(f"{r.rel}: decode stopped early: {r.decode_error}")
        if r.scenedetect_error:
            notes.append(f"{r.rel}: scenedetect failed: {r.scenedetect_error}")
    notes += [f"{rel}: rejected by probe ({why})" for rel, why in skipped]
    if leftovers:
        notes.append(f"scenedetect wrote into its temp dir: {leftovers}")
    return notes


def hd_ratios(results: list[FileResult], repeats: int, clip_min: float) -> dict[str, float]:
    """The ratios over 720p+ H.264 files, the footage that matters most: there decoding
    dominates and the ratio is the analysis budget (tiny files are dominated by per-frame
    analysis costs)."""
    ratios = {}
    hd = [r for r in results if r.info.codec == "h264" and min(r.info.width, r.info.height) >= 720]
    if hd:
        decode = median_total(hd, repeats, "decode")
        ratios["analysis/decode (720p+ H.264)"] = decode / median_total(hd, repeats, "analysis")
        ratios["phase 1/decode (720p+ H.264)"] = decode / median_total(hd, repeats, *PHASE1)
    # The probe stage rejects a source shorter than the shortest clip before any decoding, so
    # a run never analyses those (a 1 s file where one TransNetV2 window outweighs decoding).
    hd_run = [r for r in hd if r.info.duration_s >= clip_min]
    if hd_run and len(hd_run) < len(hd):
        decode = median_total(hd_run, repeats, "decode")
        analysis = median_total(hd_run, repeats, "analysis")
        ratios[f"analysis/decode (720p+ H.264, >= {clip_min:g} s)"] = decode / analysis
        ratios[f"phase 1/decode (720p+ H.264, >= {clip_min:g} s)"] = decode / median_total(
            hd_run, repeats, *PHASE1
        )
    return ratios


def speed_ratios(rates: dict[str, float]) -> dict[str, float]:
    """Throughput ratios of the methods against decoding and PySceneDetect."""
    return {
        "analysis/decode": rates["analysis"] / rates["decode"],
        "phase 1/decode": rates["phase1"] / rates["decode"],
        "scenedetect/decode": rates["scenedetect"] / rates["decode"],
        "scenedetect_corrected/decode": rates["scenedetect_corrected"] / rates["decode"],
        "analysis/scenedetect": rates["analysis"] / rates["scenedetect"],
        "analysis/scenedetect_corrected": rates["analysis"] / rates["scenedetect_corrected"],
    }


def print_summary(
    results: list[FileResult],
    cfg: CurateConfig,
    repeats: int,
    totals: dict[str, float],
    rates: dict[str, float],
    ratios: dict[str, float],
    startup_s: tuple[float, float],
    without: str | None = None,
) -> None:
    start_s, import_s = startup_s
    n = len(results)
    clip_min = cfg.analyze.clips.min_duration_s
    hd = [r for r in results if r.info.codec == "h264" and min(r.info.width, r.info.height) >= 720]
    hd_run = [r for r in hd if r.info.duration_s >= clip_min]
    print()
    frames = sum(r.frames for r in results)
    print(f"summary: {n} files, {frames} frames, median of {repeats} repeats")
    print(f"  shot detector: {cfg.analyze.shots.detector}")
    if hd:
        print(f"  720p+ H.264: {len(hd)} files, {sum(r.frames for r in hd)} frames", end="")
        print(f" ({len(hd_run)} of them >= {clip_min:g} s, as a run analyses)" if hd_run else "")
    print(
        f"  scenedetect start-up (python -m scenedetect version): {start_s:.3f} s per file "
        f"(bare 'import scenedetect, cv2, av': {import_s:.3f} s); 'corrected' subtracts "
        f"{n} x {start_s:.3f} = {n * start_s:.1f} s"
    )
    for m in (*METHODS, "detect", "phase1", "scenedetect_corrected"):
        print(f"  {m:<22} {totals[m]:8.2f} s {rates[m]:8.0f} fps")
    clips = sum(r.clips for r in results)
    if clips:
        print(f"  detect per clip: {totals['detect'] / clips:.3f} s ({clips} clips)")
    for name, value in ratios.items():
        print(f"  {name:<40} {value:6.2f}x")
    if WITHOUT in totals:
        cost = 1 - totals[WITHOUT] / totals["phase1"]
        print(
            f"  phase 1 without {without}: {totals[WITHOUT]:.2f} s against "
            f"{totals['phase1']:.2f} s with it: the signal costs {100 * cost:.1f} % of phase 1"
        )


def print_timing_and_notes(timing: dict[str, float], notes: list[str]) -> None:
    print()
    for line in timing_lines(nest(timing), title="where the time went (last repeat)"):
        print(line)
    if notes:
        print("notes:")
        for note in notes:
            print(f"  - {note}")


def videos_root(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The folder of the files to time; with ``--cut-heavy``, the cut-heavy video's (built
    or found in the cache), ``args.files`` narrowed to it."""
    root = (REPO_ROOT / args.videos).resolve()
    if not root.is_dir():
        parser.error(f"no such folder: {root}")
    if args.cut_heavy:
        watch = Stopwatch()
        video, joins = build(root, args.cut_heavy)
        print(
            f"cut-heavy video: {video} ({len(joins)} joins; "
            f"{watch.seconds:.1f} s to build or find)",
            flush=True,
        )
        root, args.files, args.limit = video.parent, video.name, None
    return root


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    optional = [s.name for s in FRAME_SIGNALS if s.name not in ("shots", "sharpness")]
    if args.without is not None and args.without not in optional:
        parser.error(f"--without takes one of {', '.join(optional)}")

    logging.basicConfig(level=logging.ERROR)  # decode_series warns on damaged tails each repeat
    wall = Stopwatch()
    cfg = load_config(args.config) if args.config else CurateConfig()
    root = videos_root(parser, args)
    results, skipped = probed_files(root, args.files, args.limit, cfg)
    if not results:
        print(f"no usable videos under {root}", file=sys.stderr)
        return 1
    print(
        f"{len(results)} files under {root} ({len(skipped)} rejected by probe), "
        f"{args.repeats} repeats, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    # A worker loads its models once (TransNetV2 and a first window: about 1.5 s); the
    # throughput figures leave that out.
    watch = Stopwatch()
    for signal in FRAME_SIGNALS:
        signal.warm_up(getattr(cfg.analyze, signal.name))
    detect = warm_detect_stage(cfg)
    warm_up_s = watch.seconds
    print(f"  analysis warm-up (model loading, not timed below): {warm_up_s:.2f} s", flush=True)
    startup, leftovers = run_repeats(results, cfg, detect, args.repeats, wall, args.without)

    start_s = statistics.median(startup["scenedetect version"])
    import_s = statistics.median(startup["import only"])
    totals = median_totals(results, args.repeats, start_s)
    total_frames = sum(r.frames for r in results)
    rates = {m: fps(total_frames, t) for m, t in totals.items()}
    per_file = per_file_table(results, start_s)
    notes = collect_notes(results, skipped, leftovers)
    ratios = {
        **speed_ratios(rates),
        **hd_ratios(results, args.repeats, cfg.analyze.clips.min_duration_s),
    }
    summary = (results, cfg, args.repeats, totals, rates, ratios, (start_s, import_s))
    print_summary(*summary, args.without)
    timing: dict[str, float] = {}
    for r in results:
        add_timing(timing, r.timing)
    print_timing_and_notes(timing, notes)
    elapsed = wall.seconds
    load = os.getloadavg()[0]
    print(f"benchmark wall time: {elapsed:.0f} s (load average now {load:.1f})")
    if load > (os.cpu_count() or 1) + 1:
        print("warning: other processes were competing for the CPUs; figures are noisy")

    if args.json:
        out = {
            "videos": str(root),
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
            "files": len(results),
            "total_frames": total_frames,
            "startup_s": {
                "scenedetect_version": start_s,
                "import_only": import_s,
                "analysis_warm_up": warm_up_s,
            },
            "total_s": totals,
            "fps": rates,
            "ratios": ratios,
            "per_file": per_file,
            "timing": timing,
            "skipped": [{"file": rel, "reason": why} for rel, why in skipped],
            "notes": notes,
            "wall_s": elapsed,
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

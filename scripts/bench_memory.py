"""Peak-memory benchmark: does a run's memory grow with input length or input count?

Generates synthetic inputs (cached in ``--workdir`` between invocations) and runs
``curate run`` on each as a subprocess, sampling the memory of its whole process tree (the
driver plus every process of the local Ray instance it starts: gcs_server, raylet, workers,
agents): RSS every ``--interval`` (0.2 s), the tree listing and PSS/USS every
``--pss-interval`` (1 s). The inputs:

- ``long``: one 1080p H.264 video of ``--long-minutes`` (default 20) at 25 fps: shots of
  10-40 s joined by hard cuts, each a camera pan, zoom or handheld shake over a large
  textured image, so the pipeline finds many clips; ``short``: the first ``--short-minutes``
  (default 1) of the same video, the baseline of the ratio;
- ``many``: a folder of ``--many`` (default 500) small videos (240p/360p landscape and
  portrait, 5-8 s; a few distinct contents so dedup has work, every seventh with a cut that
  leaves no clip); ``few``: the first ``--few`` (default 25) of them, the baseline.

Frames are sliced (and, for zooms, resized) straight out of a pre-made YUV texture and
streamed to libx264 (``preset=ultrafast``); no video is ever held in memory.

Memory figures, per run, are peaks over the samples of sums over the process tree:
RSS (counts pages shared by several processes, e.g. libraries and the object store, once
per process, so it overstates), PSS (shared pages split between the processes sharing them:
what the tree really occupies) and USS (pages private to one process), plus the largest
single process (RSS), in GB (10^9 bytes). The ``--limit-gb`` verdict applies to peak PSS;
the growth verdict to the ratios long/short and many/few of peak PSS (``--max-growth``). A
per-role table (driver, raylet, each kind of Ray worker) shows where a growth comes from, and
``RESULTS/<run>-memory.csv`` holds the time series. The sampler runs in this script's
process, outside the measured tree.

The run config is ``--config`` (default ``configs/default.yaml``) with clip export kept
honest but cheap (``--export low``: every accepted clip is encoded to a file at 144 px,
8 fps; ``reference`` writes no media, ``config`` keeps the config's export as is).

Run from the repo root::

    python scripts/bench_memory.py [--long-minutes 20] [--many 500] [--limit-gb 8]
        [--workdir DIR] [--results bench-results] [--runs short,long,few,many]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from scripts.common.curate_run import start_curate
from scripts.common.paths import DEFAULT_CONFIG, REPO_ROOT
from scripts.common.synth import textured_image
from scripts.common.timing import Stopwatch

try:
    import psutil
except ImportError:
    # Ray vendors psutil and puts it on sys.path when imported.
    importlib.import_module("ray")
    import psutil

GB = 1e9
FPS = 25
"""Frame rate of every generated input."""
LONG_SIZE = (1920, 1080)
TEXTURE_SIZE = (5760, 2160)
"""Width and height of the long input's textures: room for a 40 s pan at up to 3.8 px/frame."""
SMALL_SIZES = ((424, 240), (640, 360), (640, 360), (240, 424), (360, 640))
"""(width, height) of the small inputs, by content: 240p and 360p, landscape and portrait."""
SMALL_CONTENTS = 8
"""Distinct small-input contents: input ``i`` shows content ``i % 8``, so dedup finds
near-copies across files."""
EXPORT_LOW = ("tiers.0.export.short_side=144", "tiers.0.export.fps=8")
RUNS = ("short", "long", "few", "many")
BASELINE = {"long": "short", "many": "few"}


# Inputs --------------------------------------------------------------------------------


class YuvTexture:
    """A large textured picture as I420 planes, to cut video frames from without colour
    conversion: the encoder takes ``yuv420p`` frames directly."""

    def __init__(self, seed: int, size: tuple[int, int], hue: int, enlarge: int = 1) -> None:
        w, h = size
        # A 1080p frame shows detail at a few pixels' scale after ``enlarge``-fold
        # enlargement; finer detail would only cost encoder bitrate.
        rgb = textured_image(seed, height=h // enlarge, width=w // enlarge, hue=hue)
        if enlarge != 1:
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        self.y = yuv[:h]
        chroma = yuv[h:].reshape(2, h // 2, w // 2)
        self.u, self.v = chroma[0], chroma[1]
        self.width, self.height = w, h

    def frame(self, x: float, y: float, zoom: float, size: tuple[int, int]) -> np.ndarray:
        """The ``size`` window whose top-left corner is at ``(x, y)``, showing ``1/zoom`` of
        its width (zoom >= 1 enlarges), as one ``(h * 3/2, w)`` I420 array."""
        w, h = size
        cw, ch = round(w / zoom), round(h / zoom)
        x0 = int(np.clip(round(x), 0, self.width - cw))
        y0 = int(np.clip(round(y), 0, self.height - ch))
        planes = [self.y[y0 : y0 + ch, x0 : x0 + cw]]
        cx, cy, ccw, cch = x0 // 2, y0 // 2, max(1, cw // 2), max(1, ch // 2)
        planes += [p[cy : cy + cch, cx : cx + ccw] for p in (self.u, self.v)]
        out = [planes[0] if zoom == 1 else cv2.resize(planes[0], (w, h))]
        for p in planes[1:]:
            out.append(cv2.resize(p, (w // 2, h // 2)) if p.shape != (h // 2, w // 2) else p)
        return np.concatenate([out[0].reshape(-1), out[1].reshape(-1), out[2].reshape(-1)]).reshape(
            h * 3 // 2, w
        )


def shot_frames(
    texture: YuvTexture, n: int, size: tuple[int, int], rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """``n`` frames of one shot: a pan (most shots), a zoom in or out, or a handheld shake."""
    w, h = size
    kind = rng.choice(["pan", "pan", "pan", "pan", "zoom", "handheld"])
    room_x, room_y = texture.width - w, texture.height - h
    if kind == "pan":
        # A steady camera velocity (mostly horizontal) that stays on the texture all shot.
        vx = rng.choice([-1, 1]) * min(rng.uniform(1.0, 3.5), room_x / max(n, 1))
        vy = rng.choice([-1, 1]) * min(rng.uniform(0.0, 0.5), room_y / max(n, 1))
        x0 = rng.uniform(0, room_x - abs(vx) * n) + (abs(vx) * n if vx < 0 else 0)
        y0 = rng.uniform(0, room_y - abs(vy) * n) + (abs(vy) * n if vy < 0 else 0)
        for i in range(n):
            yield texture.frame(x0 + vx * i, y0 + vy * i, 1.0, size)
    elif kind == "zoom":
        z0, z1 = (1.0, 1.6) if rng.random() < 0.5 else (1.6, 1.0)
        cx, cy = rng.uniform(w, texture.width - w), rng.uniform(h, texture.height - h)
        for i in range(n):
            zoom = z0 * (z1 / z0) ** (i / max(n - 1, 1))
            yield texture.frame(cx - w / zoom / 2, cy - h / zoom / 2, zoom, size)
    else:
        x0, y0 = rng.uniform(16, room_x - 16), rng.uniform(16, room_y - 16)
        shake = np.cumsum(rng.normal(scale=1.5, size=(n, 2)), axis=0)
        shake = np.clip(shake - np.linspace(0, 1, n)[:, None] * shake[-1], -15, 15)
        for i in range(n):
            yield texture.frame(x0 + shake[i, 0], y0 + shake[i, 1], 1.0, size)


def encode(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int], crf: int) -> int:
    """Stream I420 frames to H.264 in MP4 (``preset=ultrafast``); written under a temporary
    name and renamed when complete, so an interrupted run leaves no half file in the cache."""
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    n = 0
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="yuv420p")))
            n += 1
        out.mux(stream.encode(None))
    os.replace(tmp, path)
    return n


def long_video(path: Path, minutes: float, seed: int = 0) -> Path:
    """Shots of 10-40 s (hard cuts) over four textures; the same seed gives the same video
    from the start, so a shorter one is the beginning of a longer one."""
    if path.is_file():
        return path
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    # Hues stay clear of red: hue wraps around there, and chroma noise would flip it
    # between 0 and 179 (the shot detector's hue channel would see cuts).
    textures = [YuvTexture(1000 + k, TEXTURE_SIZE, hue=20 + 40 * k, enlarge=2) for k in range(4)]
    total = round(minutes * 60 * FPS)

    def frames() -> Iterator[np.ndarray]:
        done = 0
        last = -1
        while done < total:
            n = min(int(rng.uniform(10, 40) * FPS), total - done)
            k = int(rng.choice([t for t in range(len(textures)) if t != last]))
            last = k
            yield from shot_frames(textures[k], n, LONG_SIZE, rng)
            done += n

    n = encode(path, frames(), LONG_SIZE, crf=26)
    print(
        f"  generated {path.name}: {n} frames, {path.stat().st_size / 2**20:.0f} MiB in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return path


def small_video(path: Path, i: int, textures: list[YuvTexture]) -> Path:
    """Small input ``i``: content ``i % SMALL_CONTENTS`` (texture and camera move), with a
    small per-file jitter of start and speed; every seventh has a cut in the middle."""
    if path.is_file():
        return path
    content = i % SMALL_CONTENTS
    size = SMALL_SIZES[content % len(SMALL_SIZES)]
    rng = np.random.default_rng(i)
    n = int(rng.uniform(5, 8) * FPS)
    texture = textures[content % len(textures)]
    w, h = size
    # Same content = same texture, start and direction up to a few pixels and a few percent.
    base = np.random.default_rng(100 + content)
    x0 = base.uniform(450, texture.width - w - 450) + rng.uniform(0, 6)
    y0 = base.uniform(100, texture.height - h - 100) + rng.uniform(0, 6)
    vx = base.choice([-1, 1]) * base.uniform(0.8, 2.0) * rng.uniform(0.95, 1.05)
    vy = base.uniform(-0.4, 0.4)

    def frames() -> Iterator[np.ndarray]:
        cut = n // 2 if i % 7 == 6 else n
        for f in range(n):
            if f < cut:
                yield texture.frame(x0 + vx * f, y0 + vy * f, 1.0, size)
            else:  # a different place of another texture: a hard cut
                other = textures[(content + 1) % len(textures)]
                yield other.frame(900 + vx * f, 300 + vy * f, 1.0, size)

    encode(path, frames(), size, crf=23)
    return path


def small_pool(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"small-{i:04d}.mp4" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        started = time.perf_counter()
        textures = [
            YuvTexture(2000 + k, (2000, 1000), hue=20 + 18 * k) for k in range(SMALL_CONTENTS)
        ]
        for i in missing:
            small_video(paths[i], i, textures)
        print(
            f"  generated {len(missing)} small inputs in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return paths


def input_folder(folder: Path, files: list[Path]) -> Path:
    """A folder holding exactly ``files`` (hard links into the pool; copies where the file
    system refuses links)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in files}
    for stale in folder.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for p in files:
        target = folder / p.name
        if not target.exists():
            try:
                os.link(p, target)
            except OSError:
                shutil.copyfile(p, target)
    return folder


# Memory sampling -----------------------------------------------------------------------


def role(proc: psutil.Process, root_pid: int) -> str:
    """What a process of the tree is: ``driver``, ``raylet``, ``ray::<worker title>``, ...
    Ray workers retitle themselves (``ray::IDLE``, ``ray::MapWorker(...)``), so this is read
    again at every tree refresh."""
    if proc.pid == root_pid:
        return "driver"
    with contextlib.suppress(psutil.Error, IndexError):
        cmd = proc.cmdline()
        if cmd and cmd[0].startswith("ray::"):
            # An actor shows the method it runs (``ray::MapWorker(...).submit``): drop it.
            title = cmd[0].split(" ")[0]
            return title[: title.rindex(").") + 1] if ")." in title else title
        for part in cmd[:3]:
            name = Path(part).name
            if name.endswith(".py"):
                return name
        return proc.name()
    return "?"


@dataclass
class Sample:
    t: float
    procs: int
    rss: int
    pss: int | None
    """Only on full samples (every ``pss_interval``); None on RSS-only ones."""
    uss: int | None
    largest_role: str
    largest_rss: int
    driver_rss: int


@dataclass
class TreeMonitor:
    """Samples the memory of ``root`` and all its descendants in a background thread.

    Every ``interval``: RSS of each known process (``/proc/PID/statm``, cheap). Every
    ``pss_interval``: the process tree is listed again (new Ray workers join, finished ones
    leave) and PSS/USS are read too (``/proc/PID/smaps_rollup``, which walks page tables)."""

    root: psutil.Process
    interval: float
    pss_interval: float
    samples: list[Sample] = field(default_factory=list)
    peak_by_role: dict[str, int] = field(default_factory=dict)
    """Largest RSS any single process of each role reached."""
    roles_seen: set[str] = field(default_factory=set)
    cpu_s: float = 0.0
    """CPU time the sampler thread used."""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._tree: dict[int, psutil.Process] = {}
        self._roles: dict[int, str] = {}
        self._started = time.perf_counter()
        self._next_full = 0.0
        self._thread = threading.Thread(target=self._watch, name="memory-sampler", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        cpu = time.thread_time()
        while True:
            t0 = time.perf_counter()
            self._sample(full=t0 >= self._next_full)
            if self._stop.wait(max(0.0, self.interval - (time.perf_counter() - t0))):
                break
        self._sample(full=True)
        self.cpu_s = time.thread_time() - cpu

    def _refresh_tree(self) -> None:
        try:
            found = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        # Known Process objects are kept: they remember their create_time, so a recycled pid
        # is not mistaken for the process that had it.
        self._tree = {p.pid: self._tree.get(p.pid, p) for p in found}
        self._roles = {pid: role(p, self.root.pid) for pid, p in self._tree.items()}

    def _sample(self, full: bool) -> None:
        now = time.perf_counter()
        if full:
            self._refresh_tree()
            self._next_full = now + self.pss_interval
        rss = pss = uss = 0
        largest = ("", 0)
        driver_rss = 0
        for pid, p in list(self._tree.items()):
            try:
                mem = p.memory_full_info() if full else p.memory_info()
            except psutil.Error:
                self._tree.pop(pid, None)
                continue
            name = self._roles.get(pid, "?")
            rss += mem.rss
            if full:
                pss += getattr(mem, "pss", mem.rss)
                uss += getattr(mem, "uss", mem.rss)
            if mem.rss > largest[1]:
                largest = (name, mem.rss)
            if pid == self.root.pid:
                driver_rss = mem.rss
            self.peak_by_role[name] = max(self.peak_by_role.get(name, 0), mem.rss)
            self.roles_seen.add(name)
        self.samples.append(
            Sample(
                round(now - self._started, 2),
                len(self._tree),
                rss,
                pss if full else None,
                uss if full else None,
                largest[0],
                largest[1],
                driver_rss,
            )
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, name: str) -> Sample:
        return max(
            (s for s in self.samples if getattr(s, name) is not None),
            key=lambda s: getattr(s, name),
        )

    def write_csv(self, path: Path) -> None:
        columns = list(Sample.__dataclass_fields__)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for s in self.samples:
                writer.writerow(["" if getattr(s, c) is None else getattr(s, c) for c in columns])


# Runs ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    name: str
    input: str
    sources: int
    media_s: float
    frames: int | None = None
    clips: int | None = None
    accepted: int | None = None
    wall_s: float = 0.0
    rc: int = 0
    peak_rss: int = 0
    peak_pss: int = 0
    peak_uss: int = 0
    largest_rss: int = 0
    largest_role: str = ""
    peak_by_role: dict[str, int] = field(default_factory=dict)
    max_procs: int = 0
    samples: int = 0
    sampler_cpu_s: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    """1-minute load average when the run started and when it ended."""
    own_ray: bool = True
    tail: str = ""


def media_seconds(paths: list[Path]) -> float:
    total = 0.0
    for p in paths:
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            total += float(s.duration * s.time_base) if s.duration else c.duration / 1e6
    return total


def run_curate(
    name: str,
    source: Path,
    media: list[Path],
    args: argparse.Namespace,
    overrides: list[str],
    results: Path,
) -> RunResult:
    out = Path(args.workdir) / f"out-{name}"
    extra = ["--no-progress", *(a for o in overrides for a in ("--set", o))]
    result = RunResult(name, str(source), len(media), media_seconds(media))
    log_path = results / f"{name}.log"
    watch = Stopwatch()
    load_before = os.getloadavg()[0]
    # A local Ray instance of its own (no RAY_ADDRESS), so its processes are the run's.
    proc = start_curate(args.config, [source], out, *extra, log=log_path)
    print(f"running {name}: {' '.join(proc.args[1:])}", flush=True)
    monitor = TreeMonitor(psutil.Process(proc.pid), args.interval, args.pss_interval)
    rc = proc.wait()
    monitor.stop()
    result.wall_s = watch.seconds
    result.rc = rc
    result.load = (load_before, os.getloadavg()[0])
    monitor.write_csv(results / f"{name}-memory.csv")
    if monitor.samples:
        result.peak_rss = monitor.peak("rss").rss
        result.peak_pss = monitor.peak("pss").pss
        result.peak_uss = monitor.peak("uss").uss
        top = monitor.peak("largest_rss")
        result.largest_rss, result.largest_role = top.largest_rss, top.largest_role
    result.peak_by_role = dict(sorted(monitor.peak_by_role.items(), key=lambda kv: -kv[1]))
    result.samples = len(monitor.samples)
    result.max_procs = max((s.procs for s in monitor.samples), default=0)
    result.sampler_cpu_s = monitor.cpu_s
    result.own_ray = "raylet" in monitor.roles_seen
    result.tail = log_path.read_text()[-3000:]
    manifest = out / "manifest.json"
    if rc == 0 and manifest.is_file():
        m = json.loads(manifest.read_text())
        analyze = m["funnel"]["analyze"]
        result.frames = analyze.get("frames")
        result.clips = analyze.get("out")
        result.accepted = sum(t["clips"] for t in m["tiers"].values())
    print(
        f"  {name}: rc {rc}, {result.wall_s:.0f} s, peak PSS {result.peak_pss / GB:.2f} GB, "
        f"RSS {result.peak_rss / GB:.2f} GB",
        flush=True,
    )
    return result


# Report --------------------------------------------------------------------------------


def gb(n: int) -> str:
    return f"{n / GB:.2f}"


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def report(results: dict[str, RunResult], args: argparse.Namespace) -> tuple[str, bool]:
    lines = []
    head = (
        f"{'run':<6} {'inputs':>6} {'media':>9} {'frames':>7} {'clips':>6} {'kept':>5} "
        f"{'wall':>7} {'load':>9} {'procs':>5} {'RSS GB':>7} {'PSS GB':>7} {'USS GB':>7}  "
        "largest process (RSS GB)"
    )
    lines += [
        "peak memory of the run's process tree (driver + its local Ray instance); "
        "load = 1-min load average before/after",
        head,
        "-" * (len(head) + 12),
    ]
    for r in results.values():
        lines.append(
            f"{r.name:<6} {r.sources:>6} {duration(r.media_s):>9} {r.frames or 0:>7} "
            f"{r.clips or 0:>6} {r.accepted or 0:>5} {r.wall_s:>6.0f}s "
            f"{f'{r.load[0]:.0f}/{r.load[1]:.0f}':>9} {r.max_procs:>5} {gb(r.peak_rss):>7} "
            f"{gb(r.peak_pss):>7} {gb(r.peak_uss):>7}  {r.largest_role[:40]} {gb(r.largest_rss)}"
        )
    ok = True
    lines.append("")
    for big, small in BASELINE.items():
        if big in results and small in results:
            b, s = results[big], results[small]
            ratios = {
                k: getattr(b, k) / max(getattr(s, k), 1)
                for k in ("peak_rss", "peak_pss", "peak_uss", "largest_rss")
            }
            grows = ratios["peak_pss"] > args.max_growth
            ok &= not grows
            lines.append(
                f"{big}/{small}: x{b.media_s / max(s.media_s, 1e-9):.0f} media, "
                f"x{b.sources / s.sources:.0f} inputs -> peak PSS x{ratios['peak_pss']:.2f}, "
                f"RSS x{ratios['peak_rss']:.2f}, USS x{ratios['peak_uss']:.2f}, "
                f"largest process x{ratios['largest_rss']:.2f}  "
                f"[{'GROWS' if grows else 'bounded'}: PSS limit x{args.max_growth:g}]"
            )
    roles = sorted({k for r in results.values() for k in r.peak_by_role})
    if roles:
        lines += ["", "largest RSS (GB) one process of each role reached"]
        lines.append(f"{'role':<52}" + "".join(f"{n:>8}" for n in results))
        top = sorted(roles, key=lambda k: -max(r.peak_by_role.get(k, 0) for r in results.values()))
        for k in top[: args.roles]:
            row = "".join(
                f"{gb(r.peak_by_role[k]) if k in r.peak_by_role else '-':>8}"
                for r in results.values()
            )
            lines.append(f"{k[:51]:<52}{row}")
    lines.append("")
    for r in results.values():
        if r.rc != 0:
            ok = False
            lines.append(f"FAIL {r.name}: curate run exited {r.rc}; log tail:\n{r.tail}")
            continue
        if not r.own_ray:
            ok = False
            lines.append(f"FAIL {r.name}: no raylet among the run's processes (joined a cluster?)")
        passed = r.peak_pss <= args.limit_gb * GB
        ok &= passed
        lines.append(
            f"{'PASS' if passed else 'FAIL'} {r.name}: peak PSS {gb(r.peak_pss)} GB "
            f"{'<=' if passed else '>'} limit {args.limit_gb:g} GB (peak RSS {gb(r.peak_rss)} GB)"
        )
    cost = sum(r.sampler_cpu_s for r in results.values())
    wall = sum(r.wall_s for r in results.values())
    lines.append(
        f"sampler: RSS every {args.interval:g} s, tree and PSS/USS every {args.pss_interval:g} s, "
        f"{sum(r.samples for r in results.values())} samples, "
        f"{100 * cost / max(wall, 1e-9):.1f}% of one CPU"
    )
    lines.append(f"overall: {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines), ok


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long-minutes", type=float, default=20.0, help="default: %(default)s")
    parser.add_argument("--short-minutes", type=float, default=1.0, help="default: %(default)s")
    parser.add_argument("--many", type=int, default=500, help="default: %(default)s")
    parser.add_argument("--few", type=int, default=25, help="default: %(default)s")
    parser.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "curate-bench-memory"),
        help="generated inputs (kept and reused) and run outputs (default: %(default)s)",
    )
    parser.add_argument(
        "--results",
        default=str(REPO_ROOT / "bench-results"),
        help="logs, memory time series and the report (default: %(default)s)",
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="default: %(default)s")
    parser.add_argument(
        "--export",
        choices=("low", "reference", "config"),
        default="low",
        help="low: files at 144 px / 8 fps (default); reference: no media; config: as configured",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--limit-gb", type=float, default=8.0, help="default: %(default)s")
    parser.add_argument(
        "--max-growth",
        type=float,
        default=1.5,
        help="largest long/short and many/few peak-PSS ratio counted as bounded "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--roles", type=int, default=14, help="process roles listed (default: %(default)s)"
    )
    parser.add_argument(
        "--interval", type=float, default=0.2, help="RSS sampling period (default: %(default)s s)"
    )
    parser.add_argument(
        "--pss-interval",
        type=float,
        default=1.0,
        help="process-tree listing and PSS/USS period (default: %(default)s s)",
    )
    parser.add_argument(
        "--runs", default=",".join(RUNS), help="comma-separated subset (default: %(default)s)"
    )
    return parser


def prepare_inputs(
    work: Path, runs: list[str], args: argparse.Namespace
) -> dict[str, tuple[Path, list[Path]]]:
    """Each run's input (a file or a folder) and the media files in it, generated on first
    use and reused after."""
    inputs: dict[str, tuple[Path, list[Path]]] = {}
    if {"short", "long"} & set(runs):
        for name, minutes in (("short", args.short_minutes), ("long", args.long_minutes)):
            if name in runs:
                path = long_video(work / f"long-{minutes:g}min-1080p{FPS}.mp4", minutes)
                inputs[name] = (path, [path])
    if {"few", "many"} & set(runs):
        pool = small_pool(work / "small", args.many if "many" in runs else args.few)
        for name, count in (("few", args.few), ("many", args.many)):
            if name in runs:
                folder = input_folder(work / f"{name}-{count}", pool[:count])
                inputs[name] = (folder, pool[:count])
    return inputs


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := set(runs) - set(RUNS):
        parser.error(f"unknown runs {sorted(unknown)}; choose from {RUNS}")
    if args.short_minutes > args.long_minutes or args.few > args.many:
        parser.error("the baselines (--short-minutes, --few) must not exceed --long-minutes/--many")

    work = Path(args.workdir)
    results_dir = Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    overrides = {"low": list(EXPORT_LOW), "reference": ["export.mode=reference"], "config": []}[
        args.export
    ] + args.overrides
    mem = psutil.virtual_memory()
    print(
        f"{os.cpu_count()} CPUs, {mem.total / GB:.1f} GB memory "
        f"({mem.available / GB:.1f} available), load average {os.getloadavg()[0]:.1f}; "
        f"workdir {work}",
        flush=True,
    )
    sets = " ".join(f"--set {o}" for o in overrides)
    print(f"config {args.config} {sets}".rstrip())

    watch = Stopwatch()
    print("inputs (generated once, then reused):", flush=True)
    inputs = prepare_inputs(work, runs, args)

    results: dict[str, RunResult] = {}
    for name in runs:
        source, media = inputs[name]
        results[name] = run_curate(name, source, media, args, overrides, results_dir)

    text, ok = report(results, args)
    print()
    print(text)
    print(f"benchmark wall time: {watch.seconds:.0f} s")
    summary = {
        "args": vars(args),
        "overrides": overrides,
        "cpus": os.cpu_count(),
        "memory_total": mem.total,
        "runs": {k: {f: v for f, v in vars(r).items() if f != "tail"} for k, r in results.items()},
        "pass": ok,
    }
    (results_dir / "bench_memory.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results_dir / "bench_memory.txt").write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""On-screen text evaluation: ``text_ratio`` of text clips against clean clips, per detector.

Real footage: the shared videos labelled by eye in ``scripts/truth/text.json`` (a
kinetic-typography promo, Big Buck Bunny's titles, a station logo, rendered detection labels,
a stop-motion film's title and credit cards, a computer screen in GoldenEye; and clean
footage). Each video goes through the real analyze and detect stages (default config; OCR
runs in the detect stage on frames the decode pass kept) once per detector; a clip
overlapping a labelled text span by 1 s or more is a text clip, one touching no text or
ignored span is clean.

Synthetic footage: slow pans over real frames, black frames and busy texture, with subtitles
2-6 % of the frame high, titles, a watermark, full-screen text, a grey copyright line over
black, and words painted into the scene that move with it (scene text: clean).

Short clips: the same real footage cut into 1 s and 2 s clips (``analyze.clips``), where a
clip is a text clip when text is on screen for most of it; and synthetic pans at 720p with a
subtitle that fades in after the start or out before the end, and a subtitle 1.5 % of the
frame high. Every text clip should read ``text_ratio`` > 0 and no clean clip should.

For each detector it prints every clip's ``text_ratio`` and the separation: the lowest text
clip against the highest clean clip (the margin is positive when every text clip scores
above every clean clip), and how many text and clean clips read any text at all.

Run from the repo root::

    python scripts/eval_text.py [--detectors ocr,morphology] [--limit N] [--short 1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from curate import schema
from curate.config.sections import CurateConfig
from scripts.common import paths
from scripts.common.synth import (
    FADE_S,
    SHORT_TEXT_CASES,
    TEXT_CASES,
    real_frames,
    short_text_frames,
    text_case_frames,
    write_video,
)
from stages.analyze import AnalyzeStage
from stages.detect import DetectStage
from stages.probe import ProbeStage

TRUTH = paths.TRUTH / "text.json"
DETECTORS = ("ocr", "morphology")
MIN_OVERLAP_S = 1.0


@dataclass
class Clip:
    name: str
    truth: str
    """``text``, ``clean`` or ``ignored``."""
    ratios: dict[str, float] = field(default_factory=dict)


SHORT_SECONDS = 6.0
"""Length of the synthetic videos cut into short clips."""


def config(detector: str, clip_s: float | None = None) -> CurateConfig:
    """The default config with ``detector``, and clips of exactly ``clip_s`` seconds if given
    (no lead-in)."""
    analyze: dict = {"text": {"detector": detector}}
    if clip_s is not None:
        # Clips start where their shot does (no lead-in), so a line fading in after a shot's
        # first frame fades in after its first clip's.
        analyze["clips"] = {"min_duration_s": clip_s, "max_duration_s": clip_s, "lead_in_s": 0}
    return CurateConfig.model_validate({"analyze": analyze})


def overlap(a: float, b: float, spans: list[list[float]]) -> float:
    return max((min(b, hi) - max(a, lo) for lo, hi in spans), default=0.0)


def truth_of(start: float, end: float, entry: dict) -> str:
    """``text`` for a clip overlapping text by :data:`MIN_OVERLAP_S`, ``clean`` for one touching
    no text, ``ignored`` otherwise."""
    if overlap(start, end, entry["text"]) >= MIN_OVERLAP_S:
        return "text"
    if overlap(start, end, entry["text"] + entry.get("ignore", [])) > 0:
        return "ignored"
    return "clean"


def short_truth_of(start: float, end: float, entry: dict) -> str:
    """``text`` for a short clip with text on screen for most of it."""
    if overlap(start, end, entry["text"]) >= 0.5 * (end - start):
        return "text"
    if overlap(start, end, entry["text"] + entry.get("ignore", [])) > 0:
        return "ignored"
    return "clean"


def analyse(path: Path, cfg: CurateConfig) -> list[dict]:
    """Clips after the analyze and detect stages (``ocr`` runs in the latter)."""
    probed = ProbeStage.from_config(cfg).probe_one(str(path), 0)
    analyze = AnalyzeStage.from_config(cfg)
    row = schema.from_rows([analyze.analyze_one(probed)], analyze.schema)
    return DetectStage.from_config(cfg)(row).to_pylist()[0]["clips"]


def evaluate(
    items: list[tuple[str, Path, dict]],
    detectors: list[str],
    seconds: dict[str, float],
    clip_s: float | None = None,
    truth: Callable[[float, float, dict], str] = truth_of,
) -> list[Clip]:
    """``items``: (name, path, truth entry) per video; every clip of every video, scored (cut
    into clips of ``clip_s`` seconds if given)."""
    clips: dict[str, Clip] = {}
    for name, path, entry in items:
        for detector in detectors:
            started = time.perf_counter()
            rows = analyse(path, config(detector, clip_s))
            seconds[detector] = seconds.get(detector, 0.0) + time.perf_counter() - started
            for row in rows:
                key = f"{name} {row['start_s']:.1f}-{row['end_s']:.1f}s"
                clip = clips.setdefault(key, Clip(key, truth(row["start_s"], row["end_s"], entry)))
                clip.ratios[detector] = row["text_ratio"] or 0.0
    return list(clips.values())


def synthetic_items(videos: Path, workdir: Path, per_case: int) -> list[tuple[str, Path, dict]]:
    images = real_frames(videos, count=max(per_case, 2))
    items = []
    for kind, has_text in TEXT_CASES.items():
        for k in range(per_case):
            path = write_video(
                workdir / f"{kind.replace(' ', '_').replace('%', '')}-{k}.mp4",
                text_case_frames(kind, images[k % len(images)], seed=k),
            )
            entry = {"text": [[0.0, 1e9]] if has_text else []}
            items.append((f"{kind} #{k}", path, entry))
    return items


def short_items(videos: Path, workdir: Path) -> list[tuple[str, Path, dict]]:
    """The synthetic short-clip cases: a fading line, a small subtitle, a clean pan."""
    image = real_frames(videos, count=1)[0]
    items = []
    for kind, span in SHORT_TEXT_CASES.items():
        path = write_video(
            workdir / f"short-{kind.replace(' ', '_').replace('%', '')}.mp4",
            short_text_frames(kind, image, SHORT_SECONDS),
        )
        # On screen from when the fade is half way in to when it is half way out.
        text = (
            [] if span is None else [[span[0] + FADE_S / 2, SHORT_SECONDS - span[1] - FADE_S / 2]]
        )
        items.append((f"{kind}", path, {"text": text}))
    return items


def report(title: str, clips: list[Clip], detectors: list[str]) -> bool:
    """Print the table and each detector's separation; True when the first detector puts
    every text clip above every clean clip."""
    print(f"\n{title}")
    print("| clip | truth | " + " | ".join(detectors) + " |")
    print("|---|---|" + "---|" * len(detectors))
    for c in sorted(clips, key=lambda c: (c.truth, c.name)):
        print(
            f"| {c.name} | {c.truth} | "
            + " | ".join(f"{c.ratios[d]:.4f}" for d in detectors)
            + " |"
        )
    print(
        "\n| detector | text clips | clean clips | lowest text | highest clean | margin "
        "| separated | text clips reading text | clean clips reading text |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    separated = {}
    for d in detectors:
        text = [c.ratios[d] for c in clips if c.truth == "text"]
        clean = [c.ratios[d] for c in clips if c.truth == "clean"]
        low, high = min(text, default=float("nan")), max(clean, default=float("nan"))
        separated[d] = low > high
        print(
            f"| {d} | {len(text)} | {len(clean)} | {low:.4f} | {high:.4f} | {low - high:+.4f} | "
            f"{'yes' if separated[d] else 'no'} | {sum(v > 0 for v in text)} | "
            f"{sum(v > 0 for v in clean)} |"
        )
    return separated[detectors[0]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", default=str(paths.SHARED_VIDEOS))
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--limit", type=int, default=None, help="label at most N real videos")
    parser.add_argument("--per-case", type=int, default=2, help="synthetic videos per case")
    parser.add_argument(
        "--short", default="1,2", help="short clip lengths in seconds ('' to skip them)"
    )
    args = parser.parse_args()
    videos = Path(args.videos)
    if not videos.is_dir():
        print(f"no shared videos at {videos}", file=sys.stderr)
        return 2
    detectors = args.detectors.split(",")
    truth = {k: v for k, v in json.loads(TRUTH.read_text()).items() if not k.startswith("_")}
    real = [(rel, videos / rel, entry) for rel, entry in list(truth.items())[: args.limit]]
    seconds: dict[str, float] = {}
    real_clips = evaluate(real, detectors, seconds)
    report("real footage (labels checked by eye)", real_clips, detectors)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = synthetic_items(videos, Path(tmp), args.per_case)
        synthetic_clips = evaluate(synthetic, detectors, seconds)
    report("synthetic text cases", synthetic_clips, detectors)
    report("all footage", real_clips + synthetic_clips, detectors)
    with tempfile.TemporaryDirectory() as tmp:
        short = short_items(videos, Path(tmp))
        for clip_s in [float(v) for v in args.short.split(",") if v]:
            real_short = evaluate(real, detectors, seconds, clip_s, short_truth_of)
            report(f"real footage in {clip_s:g} s clips", real_short, detectors)
            synthetic_short = evaluate(short, detectors, seconds, clip_s, short_truth_of)
            report(f"fading and small lines in {clip_s:g} s clips", synthetic_short, detectors)
    print(
        "\nanalyze + detect time per text detector (all videos): "
        + ", ".join(f"{d} {s:.1f} s" for d, s in seconds.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shot-boundary evaluation: curate's detectors side by side with PySceneDetect's own.

Truth: ``../shared/testdata/groundtruth/shots.json`` (hard cuts checked frame by frame) plus
``scripts/truth/shots.json`` (every other shared video, labelled by eye: single shots with an
empty cut list, fades and dissolves as frame spans, stretches where no answer is right), and
synthetic videos with exact truth (``scripts/common/synth.py:shot_cases``: jump cuts in colour and
greyscale, greyscale cuts, a dissolve, a fade through black, and single shots with a white
flash, a fast pan and a hand passing in front of the lens).

Each of curate's detectors (``analyze.shots.detector``) runs on the frames of curate's decode
pass, fed to the shot signal alone; PySceneDetect's ``detect()`` runs with ContentDetector and
AdaptiveDetector at their defaults on the full-resolution video. A found boundary matches a
true cut within ``--tolerance`` frames (2), and a transition anywhere inside its span; a
boundary in an ``ignore`` span counts neither way. Printed per detector: true, false and
missed boundaries, precision, recall, F1, false cuts on the single-shot videos (hand-held,
static and moving cameras) and frames per second of decode plus detection.

Run from the repo root::

    python scripts/eval_shots.py [--detectors combined,transnetv2,adaptive,content]
        [--videos ../shared/testdata/videos] [--limit N] [--no-synthetic] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate.config.sections import AnalyzeConfig
from curate.media.video import MediaError, probe
from curate.signals.shots import SHOT_DETECTORS, Shots, ShotSignal
from scripts.common import paths
from stages.analyze import decode_series

SHARED_TRUTH = paths.SHARED_GROUNDTRUTH / "shots.json"
OUR_TRUTH = paths.TRUTH / "shots.json"
PYSCENEDETECT = ("scenedetect-content", "scenedetect-adaptive")


@dataclass
class Truth:
    cuts: list[int]
    transitions: list[tuple[int, int]] = field(default_factory=list)
    ignore: list[tuple[int, int]] = field(default_factory=list)
    single_shot: str | None = None
    """Camera kind of a single-shot video (its every boundary is a false cut)."""


@dataclass
class Tally:
    true: int = 0
    false: int = 0
    missed: int = 0
    false_single: int = 0
    frames: int = 0
    seconds: float = 0.0
    boundaries: int = 0
    covered: int = 0
    """True boundaries where the network ran (the combined detector's candidate test)."""
    predicted: int = 0
    """Frames the network gave a probability."""
    sent: int = 0
    """Frames the network read, context included."""

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def row(self, name: str) -> str:
        p = self.true / (self.true + self.false) if self.true + self.false else 1.0
        r = self.true / (self.true + self.missed) if self.true + self.missed else 1.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        fps = self.frames / self.seconds if self.seconds else 0.0
        return (
            f"| {name} | {p:.2f} | {r:.2f} | {f1:.2f} | {self.true} | {self.false} | "
            f"{self.missed} | {self.false_single} | {fps:.0f} |"
        )


CANDIDATE_HEADER = (
    "| detector | true boundaries | network ran there | candidate recall | frames | "
    "predicted | share | frames sent | sent / frames |\n|---|---|---|---|---|---|---|---|---|"
)


def candidate_row(name: str, t: Tally) -> str:
    recall = t.covered / t.boundaries if t.boundaries else 1.0
    return (
        f"| {name} | {t.boundaries} | {t.covered} | {recall:.2f} | {t.frames} | {t.predicted} | "
        f"{t.predicted / max(t.frames, 1):.2f} | {t.sent} | {t.sent / max(t.frames, 1):.2f} |"
    )


def coverage(probabilities: np.ndarray, truth: Truth, tolerance: int) -> tuple[int, int]:
    """True boundaries, and those with a network probability within ``tolerance`` frames."""
    items = [(c, c) for c in truth.cuts] + list(truth.transitions)
    ran = np.isfinite(probabilities)
    covered = sum(bool(ran[max(0, lo - tolerance) : hi + tolerance + 1].any()) for lo, hi in items)
    return len(items), covered


HEADER = (
    "| detector | precision | recall | F1 | true | false | missed | false on single shots | "
    "frames/s |\n|---|---|---|---|---|---|---|---|---|"
)


def score(boundaries: list[tuple[int, int]], truth: Truth, tolerance: int) -> Tally:
    """Match found boundaries ``(end of one shot, start of the next)`` against the truth."""
    items = [(c, c) for c in truth.cuts] + list(truth.transitions)
    used: set[int] = set()
    tally = Tally()
    for lo, hi in items:
        hit = next(
            (
                i
                for i, (a, b) in enumerate(boundaries)
                if i not in used and a - tolerance <= hi and b + tolerance >= lo
            ),
            None,
        )
        if hit is None:
            tally.missed += 1
        else:
            tally.true += 1
            used.add(hit)
    for i, (a, b) in enumerate(boundaries):
        if i in used:
            continue
        # A second boundary inside a transition already found, or in an ignored span: no error.
        if any(a <= hi + tolerance and b >= lo - tolerance for lo, hi in truth.transitions):
            continue
        if any(a <= hi and b >= lo for lo, hi in truth.ignore):
            continue
        tally.false += 1
        tally.false_single += truth.single_shot is not None
    return tally


def boundaries_of(shots: Shots) -> list[tuple[int, int]]:
    return [(a_end, b_start) for (_, a_end), (b_start, _) in zip(shots.spans, shots.spans[1:])]


def run_curate(path: Path, detector: str) -> tuple[Shots, np.ndarray, float, int]:
    """Shots of ``detector`` on curate's decode pass (feeding the shot signal alone), the frame
    times, the seconds taken and the frames TransNetV2 read."""
    cfg = AnalyzeConfig.model_validate({"shots": {"detector": detector}})
    info = probe(str(path), max_pixels=1 << 30)
    started = time.perf_counter()
    signal = ShotSignal(cfg.shots)
    series = decode_series(str(path), info, cfg, signals=[signal])
    sent = getattr(getattr(signal.detector, "net", None), "frames_sent", 0)
    return series["shots"], series.times, time.perf_counter() - started, sent


def run_scenedetect(path: Path, detector: str) -> tuple[list[tuple[int, int]], float]:
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    started = time.perf_counter()
    make = ContentDetector if detector == "scenedetect-content" else AdaptiveDetector
    scenes = detect(str(path), make())
    cuts = [start.get_frames() for start, _ in scenes[1:]]
    return [(c, c) for c in cuts], time.perf_counter() - started


def load_truth(videos: Path, shared: Path, ours: Path) -> tuple[dict[str, Truth], dict[str, str]]:
    labels = json.loads(ours.read_text())
    if shared.is_file():
        for rel, entry in json.loads(shared.read_text()).items():
            if not rel.startswith("_"):
                labels[rel] = {**labels.get(rel, {}), **entry}
    truth: dict[str, Truth] = {}
    excluded: dict[str, str] = {}
    for rel, entry in sorted(labels.items()):
        if rel.startswith("_") or not (videos / rel).is_file():
            continue
        if "excluded" in entry:
            excluded[rel] = entry["excluded"]
            continue
        cuts = entry.get("cuts")
        if cuts is None:  # timestamps (a variable-frame-rate file): the frames they fall on
            _, times, _, _ = run_curate(videos / rel, "content")
            cuts = [int(np.searchsorted(times, t - 1e-3)) for t in entry["cut_times_s"]]
        truth[rel] = Truth(
            cuts=list(cuts),
            transitions=[tuple(s) for s in entry.get("transitions", [])],
            ignore=[tuple(s) for s in entry.get("ignore", [])],
            single_shot=entry.get("single_shot"),
        )
    return truth, excluded


def evaluate(
    cases: dict[str, tuple[Path, Truth]],
    detectors: list[str],
    tolerance: int,
    verbose: bool,
) -> dict[str, Tally]:
    totals = {d: Tally() for d in detectors}
    for rel, (path, truth) in cases.items():
        line = []
        for detector in detectors:
            if detector in PYSCENEDETECT:
                found, seconds = run_scenedetect(path, detector)
                frames = None
            else:
                shots, times, seconds, sent = run_curate(path, detector)
                found, frames = boundaries_of(shots), len(times)
            tally = score(found, truth, tolerance)
            if detector not in PYSCENEDETECT and shots.probabilities is not None:
                tally.boundaries, tally.covered = coverage(shots.probabilities, truth, tolerance)
                tally.predicted = int(np.isfinite(shots.probabilities).sum())
                tally.sent = sent
            tally.seconds = seconds
            tally.frames = frames if frames is not None else 0
            totals[detector].add(tally)
            line.append(f"{detector}={[b for b, _ in found]}")
        if verbose:
            want = truth.cuts + [f"{a}-{b}" for a, b in truth.transitions]
            print(f"  {rel}: truth {want}; " + "; ".join(line), flush=True)
    # PySceneDetect decodes itself: its frames/s counts the frames curate decoded.
    frames = next((t.frames for d, t in totals.items() if d not in PYSCENEDETECT), 0)
    for d in PYSCENEDETECT:
        if d in totals:
            totals[d].frames = frames
    return totals


def synthetic_cases(videos: Path, folder: Path) -> dict[str, tuple[Path, Truth]]:
    from scripts.common.synth import real_frames, shot_cases, textured_image

    images = real_frames(videos, count=3) if videos.is_dir() else []
    images += [textured_image(200 + k) for k in range(3 - len(images))]
    return {
        f"synthetic/{c.name}": (
            c.path,
            Truth(
                list(c.cuts),
                list(c.transitions),
                single_shot="synthetic" if c.single_shot else None,
            ),
        )
        for c in shot_cases(folder, images)
    }


def print_table(title: str, totals: dict[str, Tally]) -> None:
    print(f"\n{title}\n{HEADER}")
    for detector, tally in totals.items():
        print(tally.row(detector))
    networks = {d: t for d, t in totals.items() if t.sent}
    if networks:
        print(f"\n{title}: where TransNetV2 ran\n{CANDIDATE_HEADER}")
        for detector, tally in networks.items():
            print(candidate_row(detector, tally))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=paths.SHARED_VIDEOS)
    parser.add_argument(
        "--detectors",
        default=",".join([*SHOT_DETECTORS, *PYSCENEDETECT]),
        help="comma-separated: curate's analyze.shots.detector names and "
        + ", ".join(PYSCENEDETECT),
    )
    parser.add_argument("--tolerance", type=int, default=2, help="frames a cut may be off")
    parser.add_argument("--limit", type=int, help="only the first N labelled videos")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic cases")
    parser.add_argument("--verbose", action="store_true", help="boundaries per video")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # PySceneDetect sets its own logger to INFO on import ("Detecting scenes..." per file).
    import scenedetect  # noqa: F401

    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)
    detectors = [d for d in args.detectors.split(",") if d]
    unknown = [d for d in detectors if d not in SHOT_DETECTORS and d not in PYSCENEDETECT]
    if unknown:
        parser.error(f"unknown detectors {unknown}")

    if args.videos.is_dir():
        truth, excluded = load_truth(args.videos, SHARED_TRUTH, OUR_TRUTH)
        items = list(truth.items())[: args.limit]
        real = {rel: (args.videos / rel, t) for rel, t in items}
        boundaries = sum(len(t.cuts) + len(t.transitions) for _, t in real.values())
        singles = sum(t.single_shot is not None for _, t in real.values())
        print(
            f"real footage: {len(real)} labelled videos under {args.videos} ({boundaries} "
            f"boundaries; {singles} single-shot videos), {len(excluded)} not scored:"
        )
        for rel, why in excluded.items():
            print(f"  - {rel}: {why}")
        print_table("real footage", evaluate(real, detectors, args.tolerance, args.verbose))
    else:
        print(f"no shared videos at {args.videos}: real footage skipped")
    if not args.no_synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            cases = synthetic_cases(args.videos, Path(tmp))
            totals = evaluate(cases, detectors, args.tolerance, args.verbose)
        print_table(f"synthetic: {len(cases)} videos with exact truth", totals)


if __name__ == "__main__":
    try:
        main()
    except MediaError as e:
        sys.exit(f"error: {e}")

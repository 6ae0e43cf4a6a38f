"""Copy detection on real footage: recall per edit, precision over distinct footage.

From segments of the shared real footage, writes edited copies (``scripts/common/copies.py``:
re-encode, downscale, crops of 4/10/20 % per side, brightness, contrast/gamma, greyscale,
mirror, speed 0.8x/1.25x, frame-rate change, logo and subtitle overlays, letterbox, pillarbox,
picture-in-picture at 60 %, a 5 s excerpt). Each file is analysed as one clip with the
pipeline's own code (the decode pass's fingerprint and keyframe signals, the signature
embedding), then judged:

- per method alone, on every (original, copy) pair and every pair of distinct shared videos:
  ``embedding`` (cosine >= dedup.threshold), ``frame-hash`` (temporal alignment of the frame
  hashes), ``verified`` (ORB + RANSAC on keyframes);
- ``combined``: the dedup stage itself (``stages.dedup.DedupStep``: candidate retrieval,
  judging, grouping), over the originals, one edit's copies and every shared video of other
  footage at a time. A copy counts as found when it ends in one duplicate group with its
  original; a merge of two files of different footage is a false merge.

The shared videos known to show the same footage as another (:data:`KNOWN_COPIES`) are
reported as their own row, not as negatives. vPDQ gets a row when its Python package is
installed (``pip install vpdq``, a source build against FFmpeg's development libraries).

Run from the repo root::

    python scripts/eval_dedup.py [--originals 10] [--seconds 10] [--workdir /tmp/curate-eval-dedup]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate import contract, schema
from curate.config.loading import load_config
from curate.config.sections import CurateConfig, DedupConfig
from curate.copy_detection import ClipEvidence, judge
from curate.media.imaging import from_jpeg
from curate.run.phase2 import Candidates
from curate.storage import Store
from scripts.common.copies import EDITS, Edit, read_segment, whole_file_evidence, write_copy
from scripts.common.paths import DEFAULT_CONFIG, SHARED_VIDEOS
from stages.dedup import DedupStep
from stages.embed import SignatureEmbedder

ORIGINALS = (
    ("opencv-for-python/faces.mp4", 0.0),
    ("sam2/05_default_juggle.mp4", 0.0),
    ("sample-videos/bottle-detection.mp4", 5.0),
    ("OpenCVTutorial/vtest.avi", 20.0),
    ("learning-area/crystal.webm", 1.0),
    ("moviepy/big_buck_bunny_0_30.webm", 12.0),
    ("co-tracker/teddy.mp4", 0.0),
    ("face_recognition/short_hamilton_clip.mp4", 0.0),
    ("PySceneDetect/issue-195-aspect-ratio.mp4", 3.0),
    ("mediaelement-files/echo-hereweare.webm", 10.0),
)
"""Footage the copies are made of: path under the shared videos, start of the segment."""

KNOWN_COPIES = {
    "learning-area/rabbit320.mp4": "learning-area/rabbit.webm",
    "PySceneDetect/goldeneye-vfr-drop3.mp4": "PySceneDetect/issue-134-rotate.mp4",
}
"""Shared videos that show the same footage as another (checked by eye): a downscaled copy,
and the same film scene decoded upside down with every third frame dropped."""

ORIGINAL = "original"
SHARED = "shared"


@dataclass
class Item:
    path: Path
    family: str
    """The footage it shows (the shared video it comes from)."""
    edit: str
    """The edit that made it, ``original`` or ``shared``."""
    name: str = ""
    """A shared video's path under the shared videos."""
    evidence: ClipEvidence | None = None
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def build(workdir: Path, videos: Path, originals: int, seconds: float) -> list[Item]:
    """The originals (segments of shared footage), their edited copies and every shared
    video; files already written under ``workdir`` are reused."""
    items = []
    for rel, start in ORIGINALS[:originals]:
        frames: list = []
        stem = Path(rel).stem
        for edit in (Edit(ORIGINAL, lambda fr, fps: (fr, fps), crf=18), *EDITS):
            name = "".join(c if c.isalnum() else "_" for c in edit.name)
            path = workdir / f"{stem}--{name}.mp4"
            if not path.exists():
                if not frames:
                    frames, fps = read_segment(videos / rel, start, seconds)
                write_copy(path, frames, fps, edit)
            items.append(Item(path, rel, edit.name))
    for line in (videos / "MANIFEST.tsv").read_text().splitlines()[1:]:
        rel = line.split("\t")[0]
        items.append(Item(videos / rel, KNOWN_COPIES.get(rel, rel), SHARED, rel))
    return items


def describe(item: Item, cfg: CurateConfig) -> None:
    """The pipeline's evidence for the whole file as one clip, and the signature embedding of
    its keyframes."""
    item.evidence = whole_file_evidence(item.path, cfg)
    vectors = SignatureEmbedder(cfg.embed).embed([from_jpeg(k) for k in item.evidence.keyframes])
    mean = vectors.mean(axis=0)
    item.embedding = (mean / (np.linalg.norm(mean) + 1e-9)).astype(np.float32)


def methods(cfg: DedupConfig) -> dict[str, Callable[[Item, Item], bool]]:
    """Each method alone, as the dedup stage applies it to one pair."""
    off = {"enabled": False}
    only = {
        "embedding": {
            "frame_hash": cfg.frame_hash.model_copy(update=off),
            "verify": cfg.verify.model_copy(update=off),
        },
        "frame-hash": {"verify": cfg.verify.model_copy(update=off)},
        "verified": {"frame_hash": cfg.frame_hash.model_copy(update=off)},
    }

    def method(name: str) -> Callable[[Item, Item], bool]:
        alone = cfg.model_copy(update=only[name])

        def match(a: Item, b: Item) -> bool:
            # A cosine of -1 keeps the embedding rule out of the other methods.
            cosine = float(a.embedding @ b.embedding) if name == "embedding" else -1.0
            return judge(a.evidence, b.evidence, cosine, alone) is not None

        return match

    return {name: method(name) for name in only}


SECONDS: dict[str, list[float]] = {}
"""CPU seconds of every pair each method judged."""


def _timed(name: str, match: Callable[[Item, Item], bool]) -> Callable[[Item, Item], bool]:
    def timed(a: Item, b: Item) -> bool:
        started = time.process_time()
        try:
            return match(a, b)
        finally:
            SECONDS.setdefault(name, []).append(time.process_time() - started)

    return timed


def vpdq_method() -> Callable[[Item, Item], bool] | None:
    """vPDQ (Meta's video hash) where its package is installed, with its reference matcher's
    settings: frames hashed at 1 fps, frames of quality below 50 left out, a frame matches
    within 31 bits, and the copy (the second clip) matches when 80 % of its distinct frame
    hashes find a match in the original."""
    try:
        import vpdq  # type: ignore[import-not-found]
    except ImportError:
        return None
    cache: dict[Path, list] = {}

    def hashes(item: Item) -> list:
        if item.path not in cache:
            features = vpdq.computeHash(str(item.path), seconds_per_hash=1)
            unique = {f.hex: f.hash for f in features if f.quality >= 50}
            cache[item.path] = list(unique.values())
        return cache[item.path]

    def match(original: Item, copy: Item) -> bool:
        target, query = hashes(original), hashes(copy)
        if not target or not query:
            return False
        found = [any(vpdq.hamming_distance(q, t) <= 31 for t in target) for q in query]
        return float(np.mean(found)) >= 0.8

    return match


def combined(items: list[Item], cfg: CurateConfig, workdir: Path) -> list[tuple[Item, Item]]:
    """The dedup stage itself over every item as one clip each (candidate retrieval, then
    judging, then grouping): the ``(duplicate, original)`` merges it makes."""
    folder = workdir / "analysis"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    dim = items[0].embedding.size
    rows = [
        {
            "clip_id": f"c{k:04d}",
            "source": str(item.path),
            "tier": "default",
            "start_s": 0.0,
            "end_s": item.evidence.duration,
            "duration_s": item.evidence.duration,
            "width": 640,
            "height": 360,
            "sharpness": 100.0,
            "motion_score": 0.1,
            "orientation": "landscape",
            "embedding": item.embedding.tolist(),
            "fingerprint": item.evidence.fingerprint,
            "fingerprint_times": item.evidence.times.tolist(),
            "keyframes": item.evidence.keyframes,
        }
        for k, item in enumerate(items)
    ]
    analysis = contract.analysis_schema(dim)
    table = schema.conform(pa.Table.from_pylist(rows), analysis)
    pq.write_table(table, folder / "part-00000.parquet")
    index = table.select(schema.index_columns(analysis))
    clips = Candidates(index, np.ones(len(items), bool), Store(str(folder)), in_memory=True)
    step = DedupStep(cfg.dedup, ["default"], cfg.ray.phase2)
    result = step.run(clips)
    of = result.columns["duplicate_of"].to_pylist()
    return [(items[k], items[int(o[1:])]) for k, o in enumerate(of) if o is not None]


def grouped(merges: list[tuple[Item, Item]]) -> Callable[[Item, Item], bool]:
    """Whether two items end in one duplicate group (union-find over the merges)."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in merges:
        parent[root(id(a))] = root(id(b))
    return lambda a, b: root(id(a)) == root(id(b))


def table(
    items: list[Item], cfg: CurateConfig, workdir: Path
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[int, int]]]:
    """Recall per edit and method, and (false merges, pairs judged) per method."""
    originals = {i.family: i for i in items if i.edit == ORIGINAL}
    copies = [i for i in items if i.edit not in (ORIGINAL, SHARED)]
    shared = [i for i in items if i.edit == SHARED]
    by_name = {i.name: i for i in shared}
    known = [(by_name[a], by_name[b]) for a, b in KNOWN_COPIES.items() if a in by_name]
    negatives = [(a, b) for a, b in itertools.combinations(shared, 2) if a.family != b.family]
    pair_methods = methods(cfg.dedup)
    vpdq = vpdq_method()
    if vpdq is not None:
        pair_methods["vPDQ"] = vpdq
    recall: dict[str, dict[str, float]] = {}
    false: dict[str, tuple[int, int]] = {}
    pair_methods = {name: _timed(name, match) for name, match in pair_methods.items()}
    for name, match in pair_methods.items():
        for edit in dict.fromkeys(c.edit for c in copies):
            found = [match(originals[c.family], c) for c in copies if c.edit == edit]
            recall.setdefault(edit, {})[name] = float(np.mean(found))
        if known:
            recall.setdefault("known copies among shared", {})[name] = float(
                np.mean([match(b, a) for a, b in known])
            )
        false[name] = (sum(match(a, b) for a, b in negatives), len(negatives))
    # The stage over the originals, one edit's copies and every shared video of other footage
    # (each original stands for the video it was cut from): each copy competes with every
    # distinct video for its candidates.
    distinct = [i for i in shared if i.family not in originals]
    wrong: set[tuple[str, str]] = set()
    merged = 0
    for edit in [*dict.fromkeys(c.edit for c in copies), None]:
        pool = [*distinct, *originals.values(), *(c for c in copies if c.edit == edit)]
        merges = combined(pool, cfg, workdir)
        merged += len(merges)
        wrong |= {(a.path.name, b.path.name) for a, b in merges if a.family != b.family}
        same = grouped(merges)
        if edit is None:  # shared videos and originals only
            if known:
                recall["known copies among shared"]["combined"] = float(
                    np.mean([same(a, b) for a, b in known])
                )
            continue
        found = [same(c, originals[c.family]) for c in copies if c.edit == edit]
        recall[edit]["combined"] = float(np.mean(found))
    for a, b in sorted(wrong):
        print(f"  false merge: {a} -> {b}")
    false["combined"] = (len(wrong), merged)
    return recall, false


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--originals", type=int, default=len(ORIGINALS))
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each original.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/curate-eval-dedup"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="A config override."
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cfg = load_config(DEFAULT_CONFIG, args.set)
    started = time.perf_counter()
    items = build(args.workdir, args.videos, args.originals, args.seconds)
    print(
        f"{len(items)} files: {args.originals} originals x {len(EDITS)} edits + shared videos "
        f"({time.perf_counter() - started:.0f} s)"
    )
    started = time.perf_counter()
    for item in items:
        describe(item, cfg)
    print(f"analysed in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    recall, false = table(items, cfg, args.workdir)
    print(f"judged in {time.perf_counter() - started:.0f} s")
    names = list(next(iter(recall.values())))
    print("\nrecall per edit (crops are per side; the copy against its original)\n")
    print("| edit | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for edit, row in recall.items():
        print(f"| {edit} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |")
    print(
        "\nfalse merges among distinct footage (pairs of different shared videos; combined: "
        "of all the merges the stage made)\n"
    )
    for name in names:
        wrong, total = false[name]
        print(f"| {name} | {wrong} of {total} |")
    print("\nCPU per judged pair (alone: all its work on every pair it saw)\n")
    for name, seconds in SECONDS.items():
        print(f"| {name} | {1000 * np.mean(seconds):.1f} ms | {len(seconds)} pairs |")
    if "vPDQ" not in names:
        print(
            "\nvPDQ: not installed (pip install vpdq builds it against FFmpeg's development "
            "libraries); its row is left out"
        )


if __name__ == "__main__":
    main()

"""Copy detection between two clips: frame-hash temporal alignment, then local-feature
verification.

- :func:`align` compares the clips' fingerprint hashes (``curate.signals.fingerprint``) frame
  by frame, every centred region of one against every region of the other, straight and
  mirrored, and finds the time mapping ``t_b = speed * t_a + offset`` that most matched frames
  agree on: which seconds of A are which seconds of B, at what speed.
- :func:`verify` matches ORB keypoints between the clips' keyframes (and the mirror of B's) and
  fits a similarity transform (rotation, scale, shift) with RANSAC: crops, scaling, bars, a
  picture-in-picture, brightness, logos and mirroring leave enough keypoints in place, while
  two different scenes, however alike, do not agree on one transform. The inliers must also
  cover a fair part of both pictures, so that a shared logo or caption alone is no match.

:func:`judge` runs the cascade the dedup stage applies to each candidate pair: embeddings close
enough, else a frame-hash alignment, else a keypoint verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from curate.config.sections import DedupConfig
from curate.media.imaging import from_jpeg
from curate.signals.fingerprint import HASH_BYTES, KEPT, SCALES

SPEEDS = sorted(np.geomspace(0.5, 2.0, 31), key=lambda s: abs(np.log(s)))
"""Playback-speed ratios tried when aligning two clips in time (B's seconds per A second),
unchanged speed first: it wins ties, as in still or looping footage where many mappings fit."""

RATIO_TEST = 0.8
"""Lowe's ratio test: a keypoint match counts when its best descriptor distance is below this
share of the second best."""

REPROJECTION_PX = 4.0
"""RANSAC inlier tolerance, pixels at the keyframe size."""


def hash_words(fingerprint: list[bytes]) -> np.ndarray:
    """``(frames, regions, 4)`` uint64 words of a clip's fingerprint list."""
    raw = np.frombuffer(b"".join(fingerprint), np.uint8)
    return raw.view(np.uint64).reshape(len(fingerprint), len(SCALES), HASH_BYTES // 8)


@lru_cache(maxsize=1)
def _mirror_mask() -> np.ndarray:
    """Bits of the coefficients with an odd horizontal frequency: the ones a mirror flips."""
    v = np.arange(KEPT * KEPT) % KEPT
    return np.packbits(v % 2 == 1).view(np.uint64)


def mirrored(words: np.ndarray) -> np.ndarray:
    """The hashes of the horizontally mirrored frames (a DCT sign flip; exact)."""
    return words ^ _mirror_mask()


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest Hamming distance over every region pair, ``(frames_a, frames_b)``."""
    xor = a[:, None, :, None, :] ^ b[None, :, None, :, :]
    return np.bitwise_count(xor).sum(axis=-1, dtype=np.int32).min(axis=(2, 3))


@dataclass(frozen=True)
class Alignment:
    """Matched frames of clip A and clip B on one time mapping."""

    frames_a: np.ndarray
    """Times in A of the matched frames (seconds from A's start)."""
    frames_b: np.ndarray
    """Times in B of the same frames."""
    distance: float
    """Mean Hamming distance of the matched frame hashes (of 256 bits)."""
    speed: float
    """B seconds per A second over the matched span."""
    mirror: bool

    @property
    def frames(self) -> int:
        return int(self.frames_a.size)

    @property
    def similarity(self) -> float:
        """1 for identical hashes, 0 for unrelated frames (half the bits differ)."""
        return max(0.0, 1.0 - self.distance / 128.0)

    def span(self, step: float) -> tuple[float, float, float, float]:
        """``(a_start, a_end, b_start, b_end)``: the matched seconds in each clip, each
        sample standing for ``step`` seconds of A (``step * speed`` of B)."""
        return (
            float(self.frames_a.min()),
            float(self.frames_a.max()) + step,
            float(self.frames_b.min()),
            float(self.frames_b.max()) + step * self.speed,
        )


def align(
    a: np.ndarray,
    times_a: np.ndarray,
    b: np.ndarray,
    times_b: np.ndarray,
    max_distance: int,
    tolerance_s: float,
) -> Alignment | None:
    """The time mapping between two fingerprinted clips that most frame matches agree on
    (straight or mirrored), or None when no frame pair is within ``max_distance`` bits."""
    if not len(a) or not len(b):
        return None
    best: Alignment | None = None
    for mirror in (False, True):
        d = distances(a, mirrored(b) if mirror else b)
        ia, ib = np.nonzero(d <= max_distance)
        if not ia.size:
            continue
        found = _best_mapping(times_a[ia], times_b[ib], d[ia, ib], tolerance_s)
        if found is None:
            continue
        keep, speed = found
        candidate = Alignment(
            frames_a=times_a[ia[keep]],
            frames_b=times_b[ib[keep]],
            distance=float(d[ia[keep], ib[keep]].mean()),
            speed=speed,
            mirror=mirror,
        )
        if best is None or (candidate.frames, -candidate.distance) > (best.frames, -best.distance):
            best = candidate
    return best


def _best_mapping(
    ta: np.ndarray, tb: np.ndarray, d: np.ndarray, tolerance_s: float
) -> tuple[np.ndarray, float] | None:
    """Indices of the matches on the line ``tb = speed * ta + offset`` with the most matches
    (each frame of A and of B used once, closest hashes first), and its speed. At each speed
    the line through the match that most others lie near is taken; ties go to the smaller
    summed distance, then to the speed nearer 1."""
    best: tuple[tuple[int, float], np.ndarray, float] | None = None
    most = min(np.unique(ta).size, np.unique(tb).size)
    for speed in SPEEDS:
        offsets = tb - speed * ta
        on_line = np.abs(offsets[:, None] - offsets[None, :]) <= tolerance_s
        k = int(np.lexsort(((on_line * d[:, None]).sum(axis=0), -on_line.sum(axis=0)))[0])
        members = np.flatnonzero(on_line[:, k])
        members = members[np.argsort(d[members], kind="stable")]
        chosen = members[_one_to_one(ta[members], tb[members])]
        score = (chosen.size, -float(d[chosen].sum()))
        if best is None or score > best[0]:
            best = (score, chosen, float(speed))
        if chosen.size == most:  # every frame matched on one line: nothing can beat it
            break
    if best is None or not best[1].size:
        return None
    return best[1], best[2]


def _one_to_one(ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """The first occurrence of each A time and each B time, in the given order."""
    seen_a: set[float] = set()
    seen_b: set[float] = set()
    keep = []
    for k, (x, y) in enumerate(zip(ta.tolist(), tb.tolist())):
        if x not in seen_a and y not in seen_b:
            seen_a.add(x)
            seen_b.add(y)
            keep.append(k)
    return np.asarray(keep, np.int64)


@dataclass(frozen=True)
class Verification:
    """The best-matching keyframe pair of two clips under local-feature matching."""

    keyframe_a: int
    keyframe_b: int
    mirror: bool
    matches: int
    """Keypoint matches that passed the ratio test."""
    inliers: int
    """Matches consistent with the RANSAC transform."""
    coverage: float
    """Smaller share of either keyframe's area spanned by the inliers' bounding box."""
    inlier_points: tuple[np.ndarray, np.ndarray] = (np.empty((0, 2)), np.empty((0, 2)))
    """The inliers' positions in each keyframe (B's mirrored back to its own picture)."""

    @property
    def similarity(self) -> float:
        """Share of the ratio-test matches that agree on the transform."""
        return self.inliers / self.matches if self.matches else 0.0


@lru_cache(maxsize=1)
def _orb() -> cv2.ORB:
    return cv2.ORB_create(nfeatures=500, edgeThreshold=15, patchSize=15, fastThreshold=10)


def keypoints(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB keypoint positions ``(n, 2)`` and descriptors of one grey image."""
    found, descriptors = _orb().detectAndCompute(gray, None)
    return np.float32([k.pt for k in found]).reshape(-1, 2), descriptors


def _match(
    a: tuple[np.ndarray, np.ndarray | None], b: tuple[np.ndarray, np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ratio-test matches between two keypoint sets."""
    (pa, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < RATIO_TEST * n.distance]
    return (
        np.float32([pa[m.queryIdx] for m in good]).reshape(-1, 2),
        np.float32([pb[m.trainIdx] for m in good]).reshape(-1, 2),
    )


def _box_share(points: np.ndarray, shape: tuple[int, ...]) -> float:
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1]) / float(shape[0] * shape[1])


def verify(keyframes_a: list[bytes], keyframes_b: list[bytes]) -> Verification | None:
    """The keyframe pair (any of A's against any of B's, B also mirrored) with the most RANSAC
    inliers, or None when no pair has enough matches to fit a transform."""
    grey_a = [from_jpeg(k, gray=True) for k in keyframes_a]
    grey_b = [from_jpeg(k, gray=True) for k in keyframes_b]
    feats_a = [keypoints(g) for g in grey_a]
    best: Verification | None = None
    for mirror in (False, True):
        for j, gb in enumerate(grey_b):
            image_b = cv2.flip(gb, 1) if mirror else gb
            feats_b = keypoints(image_b)
            for i, fa in enumerate(feats_a):
                src, dst = _match(fa, feats_b)
                if len(src) < 4:
                    continue
                _, mask = cv2.estimateAffinePartial2D(
                    src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX
                )
                if mask is None:
                    continue
                inlier = mask.ravel().astype(bool)
                if inlier.sum() < 3:
                    continue
                pts_a, pts_b = src[inlier], dst[inlier]
                if mirror:
                    pts_b = pts_b.copy()
                    pts_b[:, 0] = gb.shape[1] - 1 - pts_b[:, 0]
                found = Verification(
                    keyframe_a=i,
                    keyframe_b=j,
                    mirror=mirror,
                    matches=len(src),
                    inliers=int(inlier.sum()),
                    coverage=min(_box_share(pts_a, grey_a[i].shape), _box_share(pts_b, gb.shape)),
                    inlier_points=(pts_a, pts_b),
                )
                if best is None or found.inliers > best.inliers:
                    best = found
    return best


EMBEDDING, FRAME_HASH, VERIFIED = "embedding", "frame-hash", "verified"
METHODS = (EMBEDDING, FRAME_HASH, VERIFIED)
"""``duplicate_method`` values: what decided a merge."""


@dataclass(frozen=True)
class ClipEvidence:
    """What judging reads of one clip."""

    duration: float
    fingerprint: list[bytes] | None
    """Its frame hashes; None when the analysis has none (made before fingerprints existed),
    empty when every frame was too flat to hash."""
    times: np.ndarray
    keyframes: list[bytes]


@dataclass(frozen=True)
class Match:
    method: str
    similarity: float
    """Cosine for ``embedding``; 1 - mean Hamming distance / 128 of the aligned frames for
    ``frame-hash``; the share of keypoint matches that are RANSAC inliers for ``verified``."""
    span: tuple[float, float, float, float]
    """Seconds from each clip's start: ``(start, end)`` in the duplicate, then in the original
    (the whole clips when no frames were aligned)."""
    detail: str
    contained: bool
    """The duplicate lies wholly inside the original: the aligned frames reach its first and
    last hashed frames (within one sample), or it was judged as a whole."""


def judge(
    original: ClipEvidence,
    duplicate: ClipEvidence,
    cosine: float,
    cfg: DedupConfig,
    verify_pair: bool = True,
) -> Match | None:
    """Whether ``duplicate`` copies (a part of) ``original``, and on what evidence."""
    whole = (0.0, duplicate.duration, 0.0, original.duration)
    alignment = None
    if original.fingerprint and duplicate.fingerprint:
        alignment = align(
            hash_words(original.fingerprint),
            original.times,
            hash_words(duplicate.fingerprint),
            duplicate.times,
            cfg.frame_hash.max_distance,
            cfg.frame_hash.tolerance_s,
        )
    shorter = min(len(original.fingerprint or ()), len(duplicate.fingerprint or ()))
    aligned = (
        alignment is not None
        and alignment.frames >= cfg.frame_hash.min_frames
        and alignment.frames >= cfg.frame_hash.min_share * shorter
    )
    # Without enough aligned frames the clips count as matched whole.
    span = _span(alignment, original, duplicate) if aligned else whole
    contained = not aligned or _reaches_ends(alignment, duplicate.times)
    # A clip too flat to hash (black, a fade) has a degenerate embedding: never merged on it.
    hashable = original.fingerprint != [] and duplicate.fingerprint != []
    if cosine >= cfg.threshold and hashable:
        detail = f"cosine {cosine:.3f} >= dedup.threshold"
        return Match(EMBEDDING, cosine, span, detail, contained)
    if cfg.frame_hash.enabled and aligned:
        mirror = ", mirrored" if alignment.mirror else ""
        detail = (
            f"{alignment.frames} of {shorter} hashed frames aligned, played at "
            f"{1 / alignment.speed:.2f}x the original's speed{mirror}, mean distance "
            f"{alignment.distance:.0f}/256 bits"
        )
        return Match(FRAME_HASH, alignment.similarity, span, detail, contained)
    if cfg.verify.enabled and verify_pair and original.keyframes and duplicate.keyframes:
        found = verify(original.keyframes, duplicate.keyframes)
        if (
            found is not None
            and found.inliers >= cfg.verify.min_inliers
            and found.coverage >= cfg.verify.min_coverage
        ):
            mirror = ", mirrored" if found.mirror else ""
            detail = (
                f"{found.inliers} of {found.matches} keypoint matches agree on one transform "
                f"(keyframes {found.keyframe_b} and {found.keyframe_a}{mirror}), covering "
                f"{found.coverage:.0%}"
            )
            return Match(VERIFIED, found.similarity, span, detail, contained)
    return None


def _step(times: np.ndarray, default: float) -> float:
    """Seconds between a clip's hashed frames."""
    return float(np.median(np.diff(times))) if len(times) > 1 else default


def _reaches_ends(alignment: Alignment, times: np.ndarray) -> bool:
    step = _step(times, 0.0)
    b = alignment.frames_b
    return bool(b.min() <= times[0] + step + 1e-6 and b.max() >= times[-1] - step - 1e-6)


def _span(
    alignment: Alignment, original: ClipEvidence, duplicate: ClipEvidence
) -> tuple[float, float, float, float]:
    a0, a1, b0, b1 = alignment.span(_step(original.times, original.duration))
    return (b0, min(b1, duplicate.duration), a0, min(a1, original.duration))

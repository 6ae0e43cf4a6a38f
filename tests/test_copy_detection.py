"""Copy detection: frame hashes, temporal alignment and keypoint verification, on exact
synthetic cases and on edited copies of real footage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate.config.sections import CurateConfig, DedupConfig
from curate.copy_detection import (
    EMBEDDING,
    FRAME_HASH,
    VERIFIED,
    ClipEvidence,
    align,
    distances,
    hash_words,
    judge,
    mirrored,
)
from curate.signals.fingerprint import SCALES, frame_hashes
from scripts.common.copies import EDITS, read_segment, whole_file_evidence, write_copy
from scripts.common.synth import textured_image

EDIT = {e.name: e for e in EDITS}


def test_a_mirror_flips_exactly_the_odd_horizontal_frequencies():
    gray = cv2.cvtColor(textured_image(3, 256, 448), cv2.COLOR_RGB2GRAY)
    straight = hash_words([frame_hashes(gray)])
    flipped = hash_words([frame_hashes(np.ascontiguousarray(gray[:, ::-1]))])
    assert distances(straight, flipped)[0, 0] > 60
    # Per region, not just the best region pair.
    bits = np.bitwise_count(mirrored(straight) ^ flipped).sum(axis=-1)
    assert bits.shape == (1, len(SCALES)) and bits.max() <= 4


def test_flat_frames_are_not_hashed():
    assert frame_hashes(np.full((256, 448), 16, np.uint8)) is None
    letterboxed = np.full((256, 448), 16, np.uint8)
    letterboxed[40:216] = cv2.cvtColor(textured_image(1, 176, 448), cv2.COLOR_RGB2GRAY)
    assert frame_hashes(letterboxed) is not None


def test_alignment_recovers_the_speed_and_the_copied_span():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**63, size=(16, len(SCALES), 4), dtype=np.uint64)
    times_a = np.arange(16, dtype=np.float32)
    # B plays A's seconds 4-12 at 1.25x speed: B time t shows A time 4 + 1.25 t.
    times_b = np.arange(7, dtype=np.float32)
    shown = np.rint(4 + 1.25 * times_b).astype(int)
    b = words[shown].copy()
    b[:, :, 0] ^= np.uint64(0xFF)  # 8 bits of noise per region
    found = align(words, times_a, b, times_b, max_distance=20, tolerance_s=0.6)
    assert found is not None and not found.mirror
    assert found.frames >= 6
    assert found.speed == pytest.approx(0.8, abs=0.05)
    a0, a1, b0, b1 = found.span(1.0)
    assert a0 == pytest.approx(4, abs=1) and a1 == pytest.approx(12.5, abs=1.5)
    assert (b0, b1) == pytest.approx((0, 7), abs=1)
    # Unrelated hashes align nowhere.
    other = rng.integers(0, 2**63, size=(7, len(SCALES), 4), dtype=np.uint64)
    assert align(words, times_a, other, times_b, max_distance=64, tolerance_s=0.6) is None


@pytest.fixture(scope="module")
def real_copies(tmp_path_factory) -> dict[str, ClipEvidence]:
    """A real 8 s shot, edited copies of it and a distinct real video, as the decode pass
    describes them."""
    if not VIDEOS.is_dir():
        pytest.skip(f"shared test videos not found at {VIDEOS}")
    folder = tmp_path_factory.mktemp("copies")
    frames, fps = read_segment(VIDEOS / "opencv-for-python/faces.mp4", 0.0, 8.0, max_width=480)
    cfg = CurateConfig()
    out = {}
    for name in ("crop 20%", "mirror", "speed 1.25x", "picture-in-picture 60%", "excerpt 5 s"):
        out[name] = whole_file_evidence(
            write_copy(folder / f"{len(out)}.mp4", frames, fps, EDIT[name]), cfg
        )
    original = write_copy(folder / "original.mp4", frames, fps, EDIT["re-encode low bitrate"])
    out["original"] = whole_file_evidence(original, cfg)
    out["distinct"] = whole_file_evidence(VIDEOS / "sam2/bedroom.mp4", cfg)
    return out


@needs_shared
@pytest.mark.parametrize(
    ("edit", "method"),
    [
        ("crop 20%", FRAME_HASH),
        ("mirror", FRAME_HASH),
        ("speed 1.25x", FRAME_HASH),
        ("excerpt 5 s", FRAME_HASH),
        ("picture-in-picture 60%", VERIFIED),
    ],
)
def test_edited_copies_of_real_footage_are_matched(real_copies, edit, method):
    cfg = DedupConfig()
    found = judge(real_copies["original"], real_copies[edit], 0.5, cfg)
    assert found is not None and found.method == method, (edit, found)
    start, end, of_start, of_end = found.span
    assert 0 <= start < end <= real_copies[edit].duration + 1e-6
    assert 0 <= of_start < of_end <= real_copies["original"].duration + 1e-6
    if edit == "excerpt 5 s":  # seconds 2-7 of the original
        assert of_start == pytest.approx(2, abs=1) and of_end == pytest.approx(7, abs=1)
        assert found.contained
    if edit == "mirror":
        assert "mirrored" in found.detail


@needs_shared
def test_distinct_footage_is_not_matched_even_with_a_close_embedding(real_copies):
    cfg = DedupConfig()
    assert judge(real_copies["original"], real_copies["distinct"], 0.9, cfg) is None
    # At or above dedup.threshold the embedding decides alone.
    high = judge(real_copies["original"], real_copies["distinct"], 0.97, cfg)
    assert high is not None and high.method == EMBEDDING
    # ...but never for a clip too flat to hash.
    blank = ClipEvidence(4.0, [], np.zeros(0, np.float32), real_copies["distinct"].keyframes)
    assert judge(real_copies["original"], blank, 0.99, cfg) is None

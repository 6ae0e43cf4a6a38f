"""The brightness signal: exact levels on synthetic footage, dark title cards on real footage,
and the ``min_brightness`` gate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate import contract, schema
from curate.config.sections import CurateConfig
from scripts.common.synth import write_video
from stages.analyze import AnalyzeStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers


def clips_of(path):
    config = CurateConfig()
    probed = ProbeStage.from_config(config).probe_one(str(path), 0)
    return AnalyzeStage.from_config(config).analyze_one(probed)["clips"]


def flat(level, seconds=5, fps=25, seed=0):
    """Frames of one grey level with a little noise (so the encoder keeps the level)."""
    rng = np.random.default_rng(seed)
    for _ in range(int(seconds * fps)):
        noise = rng.integers(-3, 4, (360, 640, 1))
        yield np.clip(level + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)


@pytest.mark.parametrize("level", [8, 40, 128, 230])
def test_brightness_is_the_grey_level(tmp_path, level):
    (clip,) = clips_of(write_video(tmp_path / f"g{level}.mp4", flat(level)))
    assert clip["brightness"] == pytest.approx(level, abs=3)
    assert clip["brightness_min"] <= clip["brightness"] + 1e-6


def test_min_brightness_rejects_dark_clips_as_too_dark(tmp_path):
    clips = [
        *clips_of(write_video(tmp_path / "dark.mp4", flat(12))),
        *clips_of(write_video(tmp_path / "lit.mp4", flat(120))),
    ]
    config = CurateConfig.model_validate(
        {"tiers": [{"name": "t", "gates": {"min_brightness": 30}}]}
    )
    result = assign_tiers(schema.from_rows(clips, contract.ANALYSIS), config.tiers)
    assert list(result.passed[0]) == [False, True]
    (reject,) = result.rejects
    assert reject["reason"] == "too_dark" and "min_brightness=30" in reject["detail"]


@needs_shared
def test_real_title_card_on_black_is_darker_than_a_lit_room():
    """Checked by eye: ``sample.mov`` ends on white text over black; ``bedroom.mp4`` is a
    daylit bedroom."""
    card = [c for c in clips_of(VIDEOS / "media-samples/sample.mov") if c["start_s"] > 50]
    room = clips_of(VIDEOS / "sam2/bedroom.mp4")
    assert card and all(c["brightness"] < 30 for c in card)
    assert room and all(c["brightness"] > 150 for c in room)

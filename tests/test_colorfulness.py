"""The colourfulness signal: the metric's exact values, greyscale and washed-out copies of real
footage through the decode pass, and the ``min_colorfulness`` gate."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate import contract, schema
from curate.config.sections import CurateConfig
from curate.signals.colorfulness import colorfulness
from scripts.common.synth import pan_frames, textured_image, write_video
from stages.analyze import AnalyzeStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers


def clips_of(path):
    config = CurateConfig()
    probed = ProbeStage.from_config(config).probe_one(str(path), 0)
    return AnalyzeStage.from_config(config).analyze_one(probed)["clips"]


def washed_out(rgb: np.ndarray, keep: float) -> np.ndarray:
    """``rgb`` with its colour pulled towards its own grey: ``keep`` 0 is greyscale."""
    grey = rgb.mean(axis=2, keepdims=True)
    return np.clip(grey + keep * (rgb - grey), 0, 255).astype(np.uint8)


def test_metric_is_hasler_and_suesstrunks():
    grey = np.full((64, 64, 3), 128, np.uint8)
    assert colorfulness(grey) == 0
    # Half pure red, half pure green (BGR): rg = ±255, yb = 127.5 everywhere, so
    # M = σ_rg + 0.3 μ_yb = 255 + 0.3 * 127.5.
    two = np.zeros((64, 64, 3), np.uint8)
    two[:32, :, 2] = 255
    two[32:, :, 1] = 255
    assert colorfulness(two) == pytest.approx(293.25, abs=1e-3)
    # A uniform colour has no spread: M = 0.3 * |(μ_rg, μ_yb)|; pure blue: (0, -255).
    blue = np.zeros((8, 8, 3), np.uint8)
    blue[..., 0] = 255
    assert colorfulness(blue) == pytest.approx(0.3 * 255, abs=1e-3)


def test_greyscale_and_washed_out_copies_score_lower(tmp_path):
    image = textured_image(3)
    scores = {}
    for name, keep in (("colour", 1.0), ("washed", 0.3), ("grey", 0.0)):
        frames = (washed_out(f, keep) for f in pan_frames(image, 125, 2.0))
        (clip,) = clips_of(write_video(tmp_path / f"{name}.mp4", frames))
        scores[name] = clip["colorfulness"]
    assert scores["grey"] < 1.0
    assert scores["colour"] > 20
    # Opponent-channel statistics scale with saturation: 30 % of the colour, ~30 % of M.
    assert scores["washed"] == pytest.approx(0.3 * scores["colour"], rel=0.15)


def test_min_colorfulness_rejects_grey_clips(tmp_path):
    image = textured_image(4)
    clips = [
        *clips_of(
            write_video(
                tmp_path / "grey.mp4", (washed_out(f, 0) for f in pan_frames(image, 125, 2.0))
            )
        ),
        *clips_of(write_video(tmp_path / "colour.mp4", pan_frames(image, 125, 2.0))),
    ]
    config = CurateConfig.model_validate(
        {"tiers": [{"name": "t", "gates": {"min_colorfulness": 10}}]}
    )
    result = assign_tiers(schema.from_rows(clips, contract.ANALYSIS), config.tiers)
    assert list(result.passed[0]) == [False, True]
    (reject,) = result.rejects
    assert reject["reason"] == "low_colorfulness" and "min_colorfulness=10" in reject["detail"]


@needs_shared
def test_real_footage_and_its_greyscale_copy(tmp_path):
    """Checked by eye: ``big_buck_bunny_0_30.webm`` is saturated CG (green meadow, blue sky,
    ~55-62); ``bedroom.mp4`` a daylit room in pastel colours (~19). A greyscale copy of the
    room scores near 0."""
    bunny = clips_of(VIDEOS / "moviepy/big_buck_bunny_0_30.webm")
    room = clips_of(VIDEOS / "sam2/bedroom.mp4")
    assert bunny and all(c["colorfulness"] > 40 for c in bunny)
    assert room and all(12 < c["colorfulness"] < 30 for c in room)
    with av.open(str(VIDEOS / "sam2/bedroom.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    grey = clips_of(write_video(tmp_path / "grey.mp4", (washed_out(f, 0) for f in frames)))
    assert grey and all(c["colorfulness"] < 2 for c in grey)

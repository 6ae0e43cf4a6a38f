from __future__ import annotations

import math

from curate import contract, schema
from curate.config.sections import TierConfig
from stages.tiers import assign_tiers


def table(rows):
    base = {
        "source": "s.mp4",
        "start_s": 0.0,
        "end_s": 5.0,
        "duration_s": 5.0,
        "width": 1280,
        "height": 720,
    }
    return schema.from_rows(
        [{**base, "clip_id": f"c{i}", **r} for i, r in enumerate(rows)], contract.ANALYSIS
    )


TIERS = [
    TierConfig(name="loose", gates={"min_sharpness": 10, "min_motion": 0.01}),
    TierConfig(name="strict", gates={"min_sharpness": 100, "min_short_side": 1080}),
]


def test_nested_tiers_and_strictest_tier():
    t = table(
        [
            {"sharpness": 500, "motion_score": 0.1, "width": 1920, "height": 1080},  # both
            {"sharpness": 500, "motion_score": 0.1},  # loose only (720p)
            {"sharpness": 5, "motion_score": 0.1},  # none: blurry
        ]
    )
    result = assign_tiers(t, TIERS)
    assert result.passed.tolist() == [[True, True, False], [True, False, False]]
    assert result.strictest == ["strict", "loose", None]
    assert [(r["clip_id"], r["reason"]) for r in result.rejects] == [("c2", "blurry")]
    assert "sharpness 5" in result.rejects[0]["detail"]
    assert "loose.gates.min_sharpness=10" in result.rejects[0]["detail"]


def test_strict_tier_never_admits_what_loose_rejects():
    # Passes the strict gates but fails the loose tier's motion gate.
    t = table([{"sharpness": 500, "motion_score": 0.0, "width": 1920, "height": 1080}])
    result = assign_tiers(t, TIERS)
    assert result.passed.tolist() == [[False], [False]]
    assert result.rejects[0]["reason"] == "static"


def test_first_failed_gate_names_the_reason_and_missing_scores_fail():
    t = table([{"sharpness": 1, "motion_score": None}])
    result = assign_tiers(t, TIERS)
    assert result.rejects[0]["reason"] == "blurry"  # sharpness is checked before motion
    t = table([{"sharpness": 50, "motion_score": None}])
    result = assign_tiers(t, TIERS)
    assert result.rejects[0]["reason"] == "static"
    assert "missing" in result.rejects[0]["detail"]


def test_no_gates_admit_everything():
    t = table([{"sharpness": math.nan}, {"sharpness": 3.0}])
    result = assign_tiers(t, [TierConfig(name="all")])
    assert result.passed.all() and not result.rejects


def test_empty_table():
    result = assign_tiers(contract.ANALYSIS.empty_table(), TIERS)
    assert result.passed.shape == (2, 0) and result.rejects == []


def test_images_meet_the_gates_of_image_tiers_only():
    tiers = [
        *TIERS,
        TierConfig(name="photos", media="image", gates={"min_sharpness": "p50"}),
        TierConfig(name="photos_hd", media="image", gates={"min_short_side": 1080}),
    ]
    still = {"media": "image", "motion_score": None, "duration_s": 0.0}
    t = table(
        [
            {"sharpness": 500, "motion_score": 0.1, "width": 1920, "height": 1080},
            {**still, "sharpness": 50, "width": 1920, "height": 1080},  # no motion: not static
            {**still, "sharpness": 40},  # below the images' median sharpness
            {**still, "sharpness": 60, "width": 1920, "height": 1080},
        ]
    )
    result = assign_tiers(t, tiers)
    # Percentiles resolve over images only: the median of 50, 40, 60.
    assert result.thresholds[2]["min_sharpness"] == 50
    assert result.strictest == ["strict", "photos_hd", None, "photos_hd"]
    assert result.passed[:, 1].tolist() == [False, False, True, True]
    assert [(r["clip_id"], r["reason"]) for r in result.rejects] == [("c2", "blurry")]
    # Without an image tier, images are rejected as such, never by a video gate.
    result = assign_tiers(t, TIERS)
    assert {r["clip_id"]: r["reason"] for r in result.rejects} == {
        "c1": "no_tier",
        "c2": "no_tier",
        "c3": "no_tier",
    }

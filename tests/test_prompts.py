"""Structured captions: reply parsing and validation, prompt synthesis, captioner mixing."""

from __future__ import annotations

import json

import pytest

from curate.caption.prompts import CAMERA_PHRASES, FALLBACK, synthesize
from curate.caption.structured import (
    TEXT_FIELDS,
    CaptionTags,
    ClipInfo,
    MalformedReply,
    StructuredCaption,
    assign_captioners,
    build_caption,
    parse_reply,
    with_tier,
)
from curate.config.loading import load_config
from curate.config.sections import CaptionConfig, PromptConfig
from curate.signals.camera_motion import CAMERA_MOTIONS

FIELDS = {
    "short_description": "A red fox trots across a snowy field.",
    "dense_description": "A red fox with a bushy tail trots from left to right across a "
    "snow-covered field, pausing once to sniff the ground before moving on.",
    "background": "a line of bare birch trees under a pale sky",
    "style": "live-action wildlife footage",
    "shot_type": "wide shot",
    "lighting": "soft overcast daylight",
    "atmosphere": "quiet and cold",
}


def caption(camera="pan_right", fields=FIELDS, motion=0.05):
    clip = ClipInfo("c1", "fox.mp4", tier="default", width=1920, height=1080,
                    orientation="landscape", duration_s=6.0, fps=25.0, motion_score=motion,
                    camera_motion=camera)  # fmt: skip
    return build_caption(fields, clip).model_dump()


# Parsing ---------------------------------------------------------------------------------


def test_parse_plain_fenced_and_prose_wrapped_replies():
    plain = json.dumps(FIELDS)
    assert parse_reply(plain) == FIELDS
    assert parse_reply(f"```json\n{plain}\n```") == FIELDS
    assert parse_reply(f"Sure! Here is the caption {{as asked}}:\n{plain}\nHope this helps.") == (
        FIELDS
    )


def test_parse_normalises_keys_placeholders_and_lists():
    reply = json.dumps(
        {
            "Short Description": "  A dog   runs. ",
            "dense-description": None,
            "background": "N/A",
            "style": ["animation", "2D"],
            "lighting": "null",
            "camera_motion": "zoom_in",  # measured, never taken from the model
        }
    )
    fields = parse_reply(reply)
    assert fields["short_description"] == "A dog runs."
    assert fields["background"] is None and fields["lighting"] is None
    assert fields["style"] == "animation, 2D"
    assert set(fields) == set(TEXT_FIELDS)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("", "empty"),
        ("I cannot caption this video.", "no JSON object"),
        ('{"short_description": "A cat", ', "no JSON object"),
        ('{"foo": 1}', "none of the caption fields"),
        ('{"short_description": null, "background": "a park"}', "neither"),
        ('{"short_description": 42}', "not text"),
    ],
)
def test_parse_rejects_malformed_replies(reply, message):
    with pytest.raises(MalformedReply, match=message):
        parse_reply(reply)


def test_caption_json_validates_and_retags():
    text = StructuredCaption(**caption()).to_json()
    parsed = StructuredCaption.model_validate_json(text)
    assert parsed.camera_motion == "pan_right" and parsed.tags.resolution == "1920x1080"
    assert json.loads(with_tier(text, "strict"))["tags"]["tier"] == "strict"
    with pytest.raises(ValueError):
        StructuredCaption.model_validate({**caption(), "camera_motion": "dolly_zoom"})
    with pytest.raises(ValueError):
        CaptionTags.model_validate({"source": "x", "motion_level": "very"})


# Prompt synthesis ----------------------------------------------------------------------------


def test_prompt_is_complete_and_variants_distinct_and_deterministic():
    cfg = PromptConfig(variants=6, dropout=0.3, seed=7)
    prompt, prompts = synthesize(caption(), cfg, "clip-a")
    assert prompt == prompts[0]
    assert prompt.startswith(FIELDS["dense_description"])
    for text in ("Wide shot.", "The camera pans to the right.", "Background: a line of bare"):
        assert text in prompt
    assert len(prompts) == 6 and len(set(prompts)) == 6
    assert synthesize(caption(), cfg, "clip-a") == (prompt, prompts)
    assert synthesize(caption(), cfg, "clip-b")[1] != prompts
    assert synthesize(caption(), cfg.model_copy(update={"seed": 8}), "clip-a")[1] != prompts
    lengths = {len(p) for p in prompts}
    assert max(lengths) > 2 * min(lengths)  # short and dense descriptions both used


def test_dropout_rate_is_the_configured_one():
    for dropout in (0.0, 0.3, 0.6):
        cfg = PromptConfig(variants=5, dropout=dropout, permute=False)
        kept = total = 0
        for i in range(400):
            _, prompts = synthesize(caption(), cfg, f"clip-{i}")
            for p in prompts[1:]:
                total += 1
                kept += "soft overcast daylight" in p
        assert kept / total == pytest.approx(1 - dropout, abs=0.06), dropout


def test_permutation_reorders_fields():
    cfg = PromptConfig(variants=8, dropout=0.0, permute=True)
    _, prompts = synthesize(caption(), cfg, "clip-a")
    orders = {p.index("Wide shot.") < p.rfind("ighting") for p in prompts}
    assert orders == {True, False}
    _, fixed = synthesize(caption(), cfg.model_copy(update={"permute": False}), "clip-a")
    assert all(p.index("Wide shot.") < p.rfind("ighting") for p in fixed)


@pytest.mark.parametrize("camera", CAMERA_MOTIONS)
def test_camera_motion_is_phrased_naturally(camera):
    prompt, _ = synthesize(caption(camera), PromptConfig(), "c")
    assert CAMERA_PHRASES[camera][0] in prompt
    assert "_" not in prompt  # never the raw label (pan_left)


def test_never_empty_or_null():
    bare = dict.fromkeys(FIELDS)
    sparse = {**bare, "short_description": "A person waves."}
    cases = [
        caption(None, bare, None),  # nothing at all
        caption(None, {**bare, "lighting": "dim"}, None),  # one field, no description
        caption(None, sparse, None),
        caption("static", {**bare, "background": "null"}, 0.0),
    ]
    for c in cases:
        for i in range(50):
            prompt, prompts = synthesize(c, PromptConfig(variants=4, dropout=0.9), f"k{i}")
            assert prompt and prompts and prompts[0] == prompt
            for p in prompts:
                assert p.strip() and "null" not in p.lower() and "none" not in p.lower(), p
    assert synthesize(cases[0], PromptConfig(), "k")[0] == FALLBACK
    assert synthesize(cases[1], PromptConfig(), "k")[0] == "Lighting: dim."


# Captioner mixing ----------------------------------------------------------------------------


def test_captioners_mixed_by_weight_deterministically():
    cfg = CaptionConfig.model_validate(
        {
            "captioners": [
                {"name": "large", "backend": "template", "weight": 0.7},
                {"name": "small", "backend": "template", "weight": 0.3},
            ]
        }
    )
    ids = [f"{i:016x}" for i in range(20000)]
    assigned = assign_captioners(ids, cfg)
    assert (assigned == 0).mean() == pytest.approx(0.7, abs=0.02)
    assert list(assign_captioners(ids[:100], cfg)) == list(assigned[:100])
    # Adding a third captioner moves clips only in proportion to its weight.
    three = cfg.model_copy(
        update={"captioners": [*cfg.captioners, cfg.captioners[1].model_copy(update={"name": "x"})]}
    )
    assert set(assign_captioners(ids, three)) == {0, 1, 2}


def test_caption_config_errors_name_their_key():
    from curate.config import ConfigError

    with pytest.raises(ConfigError, match=r"caption\.captioners\.0\.weight"):
        load_config(None, ["caption.captioners.0.weight=0"])
    with pytest.raises(ConfigError, match=r"caption\.captioners\.0\.api_key_env"):
        load_config(
            None, ["caption.captioners=[{name: a, backend: openai, base_url: x, model: m}]"]
        )
    with pytest.raises(ConfigError, match=r"caption\.captioners\.0\.model"):
        load_config(None, ["caption.captioners=[{name: a, backend: transformers}]"])
    with pytest.raises(ConfigError, match="unique"):
        load_config(None, ["caption.captioners=[{name: a, backend: template}, "
                           "{name: a, backend: template}]"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"caption\.prompts\.dropout"):
        load_config(None, ["caption.prompts.dropout=1.5"])


def test_shipped_configs_caption_offline_or_with_a_70_30_mix():
    from conftest import ROOT

    for name in ("default.yaml", "demo.yaml"):
        captioners = load_config(ROOT / "configs" / name).caption.captioners
        assert [c.backend for c in captioners] == ["template"]
    mix = load_config(ROOT / "configs" / "movie_gen.yaml").caption.captioners
    assert [(c.backend, c.weight) for c in mix] == [("openai", 0.7), ("openai", 0.3)]
    assert all(c.api_key_env for c in mix)

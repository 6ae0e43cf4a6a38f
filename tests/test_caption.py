"""Captioners and the caption stage: the openai backend against a local chat-completions
server (good, wrapped, malformed, 429, 500, hanging), the template backend, failure policies,
start-up errors, and captioning of survivors only in a real run."""

from __future__ import annotations

import json
import logging
import time

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from chat_server import HANG, ChatServer, chat_reply
from conftest import ROOT

from curate import contract, schema
from curate.caption.structured import FALLBACK_CAPTIONER, TEXT_FIELDS, ClipInfo, StructuredCaption
from curate.cli import EXIT_USAGE, main
from curate.config import ConfigError
from curate.config.sections import CurateConfig, OpenAICaptionerConfig
from curate.output.validate import accounting_problems
from scripts.common.synth import pan_frames, shots_video, still_frames, textured_image, write_video
from stages.caption import CaptionStage
from stages.captioners import Secret
from stages.captioners.openai_chat import OpenAICaptioner
from stages.captioners.template import NOTE, TemplateCaptioner

KEY = "sk-test-0123456789"
GOOD = {
    "short_description": "A dog runs along a beach.",
    "dense_description": "A brown dog runs from left to right along a sandy beach at the "
    "water's edge, splashing through shallow waves.",
    "background": "the sea and a cloudy sky",
    "style": "live-action footage",
    "shot_type": "wide shot",
    "lighting": "soft daylight",
    "atmosphere": "playful",
}


def jpeg(value: int, size=(72, 96)) -> bytes:
    return cv2.imencode(".jpg", np.full((*size, 3), value, np.uint8))[1].tobytes()


def clip(i=0, frames=3, value=128) -> ClipInfo:
    return ClipInfo(
        f"clip{i}", "v.mp4", [jpeg(value + k) for k in range(frames)], "default", 1280, 720,
        "landscape", 6.0, 25.0, 0.05, "pan_left",
    )  # fmt: skip


def openai_cfg(server: ChatServer, **overrides) -> OpenAICaptionerConfig:
    return OpenAICaptionerConfig(
        **{
            "name": "vlm",
            "backend": "openai",
            "base_url": server.base_url,
            "model": "tiny-vlm",
            "api_key_env": "CURATE_TEST_KEY",
            "timeout_s": 1.0,
            "max_retries": 2,
            "backoff_s": 0.01,
            "backoff_max_s": 0.05,
            **overrides,
        }
    )


def caption_with(script, **overrides):
    with ChatServer(script) as server:
        captioner = OpenAICaptioner(openai_cfg(server, **overrides), Secret(KEY))
        started = time.perf_counter()
        (outcome,) = captioner.caption([clip()])
        elapsed = time.perf_counter() - started
        captioner.close()
    return outcome, server.requests, elapsed


# openai backend ------------------------------------------------------------------------------


def test_openai_well_behaved_reply():
    outcome, requests, _ = caption_with(lambda n, r: (200, chat_reply(json.dumps(GOOD))))
    assert outcome.error is None and outcome.fields == GOOD
    (request,) = requests
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "tiny-vlm"
    assert request.images == clip().images  # the keyframes, in order, as JPEG data URLs
    assert "short_description" in request.text and "3 frames" in request.text


@pytest.mark.parametrize(
    "wrap",
    [
        "```json\n{}\n```",
        "Here is the caption you asked for:\n\n{}\n\nLet me know if you need changes.",
        "```\n{}\n```\nNote: the dog is brown.",
    ],
)
def test_openai_reply_wrapped_in_prose_or_fences(wrap):
    reply = wrap.format(json.dumps(GOOD, indent=2))
    outcome, requests, _ = caption_with(lambda n, r: (200, chat_reply(reply)))
    assert outcome.fields == GOOD and len(requests) == 1


def test_openai_invalid_json_is_retried_then_recorded():
    outcome, requests, _ = caption_with(lambda n, r: (200, chat_reply('{"short_description": "A')))
    assert outcome.fields is None
    assert "malformed reply" in outcome.error and "3 attempts" in outcome.error
    assert len(requests) == 3


def test_openai_invalid_json_then_valid_succeeds():
    replies = ["no idea", json.dumps(GOOD)]
    outcome, requests, _ = caption_with(lambda n, r: (200, chat_reply(replies[min(n, 1)])))
    assert outcome.fields == GOOD and len(requests) == 2


def test_openai_429_then_success_honours_retry_after():
    def script(n, r):
        if n == 0:
            return 429, {"error": "rate limited"}, {"Retry-After": "0.2"}
        return 200, chat_reply(json.dumps(GOOD))

    outcome, requests, elapsed = caption_with(script, backoff_max_s=1.0)
    assert outcome.fields == GOOD and len(requests) == 2
    assert elapsed >= 0.2  # waited as the server asked, not the 0.01 s backoff


def test_openai_500_forever_fails_after_retries():
    outcome, requests, elapsed = caption_with(lambda n, r: (500, {"error": "boom"}))
    assert outcome.fields is None and len(requests) == 3
    assert "HTTP 500" in outcome.error and "boom" in outcome.error
    assert elapsed < 2


def test_openai_hanging_response_is_cut_by_the_timeout():
    outcome, requests, elapsed = caption_with(lambda n, r: HANG, timeout_s=0.3, max_retries=1)
    assert outcome.fields is None and "timed out" in outcome.error
    assert len(requests) == 2 and elapsed < 3


def test_openai_client_errors_are_not_retried_and_the_key_never_leaks(caplog):
    # A server that echoes the request headers back in its error body.
    def script(n, r):
        return 401, {"error": f"bad credentials {r.headers['Authorization']}"}

    with caplog.at_level(logging.DEBUG):
        outcome, requests, _ = caption_with(script)
    assert len(requests) == 1 and "HTTP 401" in outcome.error and "not retried" in outcome.error
    assert KEY not in outcome.error and "***" in outcome.error
    assert KEY not in caplog.text
    assert KEY not in repr(Secret(KEY)) and KEY not in str(Secret(KEY))


def test_openai_concurrency_is_bounded():
    with ChatServer(lambda n, r: (200, chat_reply(json.dumps(GOOD))), delay_s=0.15) as server:
        captioner = OpenAICaptioner(openai_cfg(server, concurrency=3), Secret(KEY))
        outcomes = captioner.caption([clip(i) for i in range(9)])
        captioner.close()
    assert all(o.fields == GOOD for o in outcomes)
    assert server.max_in_flight == 3


def test_openai_response_format_and_no_key():
    with ChatServer(lambda n, r: (200, chat_reply(json.dumps(GOOD)))) as server:
        cfg = openai_cfg(server, api_key_env=None, response_format="json_schema")
        captioner = OpenAICaptioner(cfg, None)
        captioner.caption([clip()])
        captioner.close()
    (request,) = server.requests
    assert "Authorization" not in request.headers
    schema_ = request.body["response_format"]["json_schema"]["schema"]
    assert set(schema_["required"]) == set(TEXT_FIELDS)


def test_openai_unreachable_server_fails_the_clip():
    cfg = OpenAICaptionerConfig(
        name="vlm", backend="openai", base_url="http://127.0.0.1:9/v1", model="m",
        api_key_env=None, max_retries=1, backoff_s=0.01, timeout_s=0.5,
    )  # fmt: skip
    (outcome,) = OpenAICaptioner(cfg).caption([clip()])
    assert "connection error" in outcome.error


# template backend ----------------------------------------------------------------------------


def test_template_measures_lighting_and_admits_it_did_not_look():
    captioner = TemplateCaptioner()
    dark, bright = captioner.caption([clip(value=15), clip(value=235)])
    assert dark.fields["lighting"].startswith("dark")
    assert bright.fields["lighting"].startswith("very bright")
    assert dark.fields["shot_type"] == "panning shot" and dark.note == NOTE
    assert not any(dark.fields.get(k) for k in ("short_description", "dense_description"))
    warm = cv2.imencode(".jpg", np.dstack([np.full((40, 40), v, np.uint8) for v in (60, 120, 200)]))
    (outcome,) = captioner.caption([ClipInfo("w", "w.mp4", [warm[1].tobytes()])])
    assert (
        outcome.fields["lighting"].endswith("and warm-toned")
        and outcome.fields["shot_type"] is None
    )


# caption stage -------------------------------------------------------------------------------


def analysis_rows(n=3, confidence=0.9):
    base = {"tier": "default", "width": 1280, "height": 720, "orientation": "landscape",
            "duration_s": 6.0, "fps": 25.0, "motion_score": 0.05, "camera_motion": "zoom_in",
            "camera_motion_confidence": confidence}  # fmt: skip
    rows = [
        {
            **base,
            "clip_id": f"c{i}",
            "source": f"v{i}.mp4",
            "keyframes": [jpeg(40 + 60 * i + k) for k in range(4)],
        }
        for i in range(n)
    ]
    return schema.from_rows(rows, contract.ANALYSIS)


def config_with(captioners, **caption) -> CurateConfig:
    return CurateConfig.model_validate({"caption": {"captioners": captioners, **caption}})


def test_stage_template_fills_caption_prompt_prompts():
    out = CaptionStage.from_config(CurateConfig())(analysis_rows()).to_pylist()
    assert [r["clip_id"] for r in out] == ["c0", "c1", "c2"]
    for row in out:
        assert row["error"] is None and row["captioner"] == "template"
        caption = StructuredCaption.model_validate_json(row["caption"])
        assert caption.camera_motion == "zoom_in" and caption.tags.tier == "default"
        assert caption.tags.resolution == "1280x720" and caption.note == NOTE
        assert row["prompt"] == row["prompts"][0] and "zooms in" in row["prompt"]
        assert all(p.strip() for p in row["prompts"]) and len(set(row["prompts"])) > 1


def test_stage_drops_unconfident_camera_motion():
    out = CaptionStage.from_config(CurateConfig())(analysis_rows(1, confidence=0.3)).to_pylist()[0]
    assert json.loads(out["caption"])["camera_motion"] is None
    assert "camera" not in out["prompt"]


def test_stage_sends_the_configured_number_of_keyframes(monkeypatch):
    monkeypatch.setenv("CURATE_TEST_KEY", KEY)
    with ChatServer(lambda n, r: (200, chat_reply(json.dumps(GOOD)))) as server:
        config = config_with([openai_cfg(server, images=2).model_dump()])
        keys = CaptionStage.check(config)["api_keys"]
        stage = CaptionStage.from_config(config, captioner=0, api_key=keys["vlm"])
        out = stage(analysis_rows(1)).to_pylist()[0]
    keyframes = analysis_rows(1)["keyframes"][0].as_py()
    assert server.requests[0].images == [keyframes[0], keyframes[3]]  # first and last
    assert out["captioner"] == "vlm"
    assert json.loads(out["caption"])["dense_description"] == GOOD["dense_description"]
    assert out["prompt"].startswith(GOOD["dense_description"])


@pytest.mark.parametrize("policy", ["reject", "template"])
def test_stage_failure_policy(policy, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_KEY", KEY)
    with ChatServer(lambda n, r: (503, "overloaded")) as server:
        config = config_with([openai_cfg(server, max_retries=1).model_dump()], on_failure=policy)
        key = CaptionStage.check(config)["api_keys"]["vlm"]
        stage = CaptionStage.from_config(config, captioner=0, api_key=key)
        out = stage(analysis_rows(2)).to_pylist()
    for row in out:
        if policy == "reject":
            assert row["caption"] is None and row["prompt"] is None
            assert "HTTP 503" in row["error"]
        else:
            assert row["error"] is None and row["captioner"] == FALLBACK_CAPTIONER
            caption = json.loads(row["caption"])
            assert caption["fallback"]["captioner"] == "vlm"
            assert "HTTP 503" in caption["fallback"]["error"] and row["prompt"]


def test_stage_survives_a_captioner_that_raises(monkeypatch):
    stage = CaptionStage.from_config(CurateConfig())

    def explode(clips):
        raise RuntimeError("driver crashed")

    monkeypatch.setattr(stage.captioner, "caption", explode)
    out = stage(analysis_rows(2)).to_pylist()
    assert all("driver crashed" in r["error"] for r in out)


# start-up errors -----------------------------------------------------------------------------


def test_missing_api_key_variable_is_a_config_error(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("CURATE_TEST_KEY", raising=False)
    captioner = (
        "[{name: vlm, backend: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
        "api_key_env: CURATE_TEST_KEY}]"
    )
    config_path = tmp_path / "c.yaml"
    config_path.write_text(f"caption:\n  captioners: {captioner}\n")
    with pytest.raises(ConfigError, match=r"caption\.captioners\.0\.api_key_env.*CURATE_TEST_KEY"):
        from curate.config.loading import load_config

        CaptionStage.check(load_config(config_path))
    videos = tmp_path / "in"
    videos.mkdir()
    write_video(videos / "a.mp4", still_frames(textured_image(1), 10))
    out = tmp_path / "out"
    code = main(["run", "-c", str(config_path), "-i", str(videos), "-o", str(out)])
    assert code == EXIT_USAGE and "CURATE_TEST_KEY" in capsys.readouterr().err
    assert not out.exists()


# pipeline: survivors only --------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caption-inputs")
    image = textured_image(11)
    write_video(folder / "pan.mp4", pan_frames(image, 200, 2.0))  # one clip, kept
    write_video(folder / "still.mp4", still_frames(image, 150))  # static: rejected by the tier
    shots_video(folder / "shots.mp4", [130, 30, 110])  # two clips kept, one too short
    return folder


def run_with(server_url: str, inputs, out, name="vlm", command="run"):
    captioner = (
        f"[{{name: {name}, backend: openai, base_url: '{server_url}', model: tiny, "
        "api_key_env: CURATE_TEST_KEY, timeout_s: 2, max_retries: 1, backoff_s: 0.01}]"
    )
    common = ["--config", str(ROOT / "configs" / "default.yaml"), "--no-progress"]
    common += ["--set", f"caption.captioners={captioner}", "--set", "export.mode=reference"]
    if command == "retier":
        return main(["retier", str(out), *common])
    return main(["run", *common, "-i", str(inputs), "-o", str(out)])


def table(folder, columns=None):
    return pq.read_table(folder, columns=columns).to_pylist()


def test_only_survivors_are_captioned(ray_local, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_KEY", KEY)
    out = tmp_path / "out"
    answer = {"status": 200, "body": chat_reply(json.dumps(GOOD))}
    with ChatServer(lambda n, r: (answer["status"], answer["body"])) as server:
        assert run_with(server.base_url, inputs, out) == 0
        analysis = table(out / "analysis", ["clip_id", "source", "keyframes", "caption", "tier"])
        tier = table(out / "tiers" / "default")
        survivors = {r["clip_id"] for r in tier}
        assert len(survivors) == 3 and len(analysis) > len(survivors)
        # Every request showed the keyframes of exactly one survivor, each survivor once.
        owner = {kf: r["clip_id"] for r in analysis for kf in r["keyframes"]}
        seen = [{owner[image] for image in req.images} for req in server.requests]
        assert all(len(s) == 1 for s in seen)
        assert sorted(s.pop() for s in seen) == sorted(survivors)
        rejected = [r for r in analysis if r["clip_id"] not in survivors]
        assert rejected and all(r["caption"] is None for r in rejected)
        for row in tier:
            assert row["captioner"] == "vlm" and row["prompt"] and row["prompts"]
            assert json.loads(row["caption"])["short_description"] == GOOD["short_description"]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["funnel"]["caption"]["in"] == 3
        assert manifest["funnel"]["caption"]["captioners"] == {"vlm": 3}
        assert accounting_problems(out) == []

        # From here on the server fails every request.
        answer.update(status=500, body="boom")
        # A re-tier with the same caption config reuses the captions: no request at all.
        server.requests.clear()
        assert run_with(server.base_url, inputs, out, command="retier") == 0
        assert server.requests == []
        assert table(out / "tiers" / "default") == tier

        # With another captioner every survivor fails: rejected, and the run still ends well.
        assert run_with(server.base_url, inputs, out, name="other", command="retier") == 0
        assert len(server.requests) == 3 * 2  # each survivor: one try and one retry
    rejects = [r for r in table(out / "rejects") if r["stage"] == "caption"]
    assert sorted(r["clip_id"] for r in rejects) == sorted(survivors)
    assert all(r["reason"] == "caption_failed" and "HTTP 500" in r["detail"] for r in rejects)
    assert table(out / "tiers" / "default") == []
    assert all(r["caption"] is None for r in table(out / "analysis", ["caption"]))
    assert accounting_problems(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["funnel"]["caption"]["rejected"] == {"caption_failed": 3}
    assert manifest["funnel"]["export"]["in"] == 0


def test_template_captions_a_small_run_in_the_driver(ray_local, inputs, tmp_path, monkeypatch):
    """No actor pool for a captioner without a model; a run too large for the driver
    (``ray.driver_max_clips``) gets the same captions from one."""
    common = ["--config", str(ROOT / "configs" / "default.yaml"), "--no-progress"]
    common += ["--set", "export.mode=reference", "-i", str(inputs)]

    def no_pool(*args, **kwargs):
        raise AssertionError("a caption actor pool was started")

    with monkeypatch.context() as patch:
        patch.setattr("curate.run.captioning.map_stage", no_pool)
        assert main(["run", *common, "-o", str(tmp_path / "driver")]) == 0
    in_driver = table(tmp_path / "driver" / "tiers" / "default")
    assert len(in_driver) == 3
    assert all(r["captioner"] == "template" and r["prompt"] for r in in_driver)
    pooled = tmp_path / "pool"
    assert main(["run", *common, "-o", str(pooled), "--set", "ray.driver_max_clips=0"]) == 0
    columns = ["clip_id", "caption", "prompt", "prompts", "captioner"]
    assert table(pooled / "tiers" / "default", columns) == [
        {k: r[k] for k in columns} for r in in_driver
    ]

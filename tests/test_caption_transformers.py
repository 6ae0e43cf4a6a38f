"""The transformers captioner end to end with a tiny, randomly initialised Qwen2-VL built from a
config here and saved with ``save_pretrained``: loaded through the real ``from_pretrained``
path, batched, generated, parsed, failures handled. No download."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from curate import contract, schema
from curate.caption.structured import FALLBACK_CAPTIONER
from curate.config import ConfigError
from curate.config.sections import CurateConfig, TransformersCaptionerConfig
from stages.caption import CaptionStage
from stages.captioners.hf_transformers import TransformersCaptioner

pytest.importorskip("transformers")

GOOD = {
    "short_description": "A kite flies over a hill.",
    "dense_description": "A red kite flies high over a grassy hill on a windy day.",
    "background": None,
    "style": "live-action footage",
    "shot_type": "wide shot",
    "lighting": "bright daylight",
    "atmosphere": "carefree",
}

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2_vl(folder) -> None:
    """A byte-level tokenizer built with ``tokenizers`` and a 1-layer Qwen2-VL, saved like a
    hub model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]  # fmt: skip
    tok.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [2, 3, 3]},
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": ids["<|endoftext|>"],
        },
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2,
                       "mlp_ratio": 2, "patch_size": 14, "spatial_merge_size": 2,
                       "temporal_patch_size": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    # One thread: on a small shared machine, thread contention makes tiny matmuls 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-qwen2-vl")
    build_tiny_qwen2_vl(folder)
    yield str(folder)
    torch.set_num_threads(threads)


def config_for(model: str, caption: dict | None = None, **options) -> CurateConfig:
    captioner = {"name": "local", "backend": "transformers", "model": model, "device": "cpu",
                 "batch_size": 2, "max_new_tokens": 24, "images": 2, **options}  # fmt: skip
    return CurateConfig.model_validate({"caption": {"captioners": [captioner], **(caption or {})}})


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return cv2.imencode(".jpg", rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))[1].tobytes()


def rows(n: int):
    base = {"tier": "default", "width": 640, "height": 360, "orientation": "landscape",
            "duration_s": 5.0, "fps": 24.0, "motion_score": 0.01, "camera_motion": "static",
            "camera_motion_confidence": 0.95}  # fmt: skip
    clips = [
        {
            **base,
            "clip_id": f"c{i}",
            "source": f"v{i}.mp4",
            "keyframes": [jpeg(10 * i + k) for k in range(3)],
        }
        for i in range(n)
    ]
    return schema.from_rows(clips, contract.ANALYSIS)


class CountingGenerate:
    """Wraps ``model.generate``: counts calls and batch sizes; optionally replaces the
    generated tokens with a fixed reply (a random model never writes valid JSON)."""

    def __init__(self, captioner: TransformersCaptioner, reply: str | None = None) -> None:
        self.inner = captioner.model.generate
        self.tokenizer = captioner.processor.tokenizer
        self.reply = reply
        self.batches: list[int] = []

    def __call__(self, **inputs):
        import torch

        out = self.inner(**inputs)
        self.batches.append(out.shape[0])
        if self.reply is None:
            return out
        reply = self.tokenizer(self.reply, return_tensors="pt")["input_ids"]
        return torch.cat([inputs["input_ids"], reply.repeat(out.shape[0], 1)], dim=1)


def test_start_up_check_accepts_the_model_and_names_the_key_otherwise(tiny_model, tmp_path):
    assert CaptionStage.check(config_for(tiny_model)) == {"api_keys": {}}
    with pytest.raises(ConfigError, match=r"caption\.captioners\.0\.model.*no config\.json"):
        CaptionStage.check(config_for(str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"caption\.captioners\.0\.model.*no weights"):
        CaptionStage.check(config_for(str(tmp_path / "empty")))


def test_random_model_generates_in_batches_and_fails_cleanly(tiny_model):
    stage = CaptionStage.from_config(config_for(tiny_model, max_retries=1))
    counter = CountingGenerate(stage.captioner)
    stage.captioner.model.generate = counter
    out = stage(rows(3)).to_pylist()
    # Three clips in batches of two, once greedy and once more sampling: 2 + 2 calls.
    assert counter.batches == [2, 1, 2, 1]
    for row in out:
        assert row["caption"] is None and row["prompt"] is None
        assert "malformed reply" in row["error"] and "2 attempts" in row["error"]


def test_random_model_failure_falls_back_to_template(tiny_model):
    stage = CaptionStage.from_config(
        config_for(tiny_model, {"on_failure": "template"}, max_retries=0)
    )
    out = stage(rows(2)).to_pylist()
    for row in out:
        assert row["error"] is None and row["captioner"] == FALLBACK_CAPTIONER
        caption = json.loads(row["caption"])
        assert caption["fallback"]["captioner"] == "local" and caption["camera_motion"] == "static"
        assert row["prompt"]


def test_generated_json_flows_into_caption_and_prompts(tiny_model):
    stage = CaptionStage.from_config(config_for(tiny_model, max_retries=0))
    reply = "Sure:\n```json\n" + json.dumps(GOOD) + "\n```"
    counter = CountingGenerate(stage.captioner, reply)
    stage.captioner.model.generate = counter
    out = stage(rows(3)).to_pylist()
    assert counter.batches == [2, 1]
    for row in out:
        assert row["error"] is None and row["captioner"] == "local"
        caption = json.loads(row["caption"])
        assert caption["dense_description"] == GOOD["dense_description"]
        assert caption["camera_motion"] == "static" and caption["tags"]["resolution"] == "640x360"
        assert row["prompt"].startswith(GOOD["dense_description"])
        assert "The camera is static." in row["prompt"]


def test_captioner_loads_from_the_folder(tiny_model):
    cfg = TransformersCaptionerConfig(
        name="local", backend="transformers", model=tiny_model, device="cpu", dtype="float32"
    )
    captioner = TransformersCaptioner(cfg)
    assert type(captioner.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert captioner.processor.tokenizer.padding_side == "left"

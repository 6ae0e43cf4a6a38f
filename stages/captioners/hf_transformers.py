"""Local vision-language captioner on Hugging Face transformers.

Any model that ``AutoModelForImageTextToText`` loads and whose processor has a chat template
works (Qwen2-VL / Qwen2.5-VL, LLaVA, Idefics, ...). The model is loaded once per actor from a
hub id or a local ``save_pretrained`` folder; clips are captioned ``batch_size`` at a time,
greedy first; replies that do not parse are generated again with sampling, up to
``max_retries`` times. Weights are never silently random: a model that cannot be found stops
the run at start-up (``check_model``).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from curate.caption.structured import ClipInfo, MalformedReply, instruction, parse_reply
from curate.config import ConfigError
from curate.config.sections import TransformersCaptionerConfig
from curate.models.devices import torch_device, torch_half
from stages.captioners.base import Captioner, CaptionOutcome

log = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def _local(model: str) -> Path | None:
    """The folder ``model`` names, when it names one (a hub id is ``owner/name``)."""
    path = Path(model).expanduser()
    if path.exists() or model.startswith(("/", ".", "~")) or model.count("/") > 1:
        return path
    return None


def check_model(cfg: TransformersCaptionerConfig, key: str) -> None:
    """Raise ``ConfigError`` naming ``key`` unless ``cfg.model`` resolves to an
    image-text-to-text model with weights and a processor that has a chat template. Hub
    models are downloaded into the Hugging Face cache here, once, so actors find them there."""
    from transformers import AutoConfig, AutoProcessor
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    fixes = (
        "fixes: point it at a local save_pretrained folder, or run once with network access "
        "so the model is cached (HF_HOME / caption.captioners.N.cache_dir)"
    )
    local = _local(cfg.model)
    if local is not None:
        if not (local / "config.json").is_file():
            raise ConfigError(f"{key}: {cfg.model} is not a model folder (no config.json)")
        if not any(any(local.glob(p)) for p in WEIGHT_PATTERNS):
            raise ConfigError(f"{key}: {cfg.model} holds no weights (*.safetensors, *.bin)")
    else:
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(cfg.model, revision=cfg.revision, cache_dir=cfg.cache_dir)
        except Exception as e:  # network, hub, auth and cache errors all mean: no model
            raise ConfigError(
                f"{key}: cannot obtain {cfg.model!r}: {type(e).__name__}: {e}; {fixes}"
            ) from None
    try:
        model_config = AutoConfig.from_pretrained(
            cfg.model, revision=cfg.revision, cache_dir=cfg.cache_dir
        )
        processor = AutoProcessor.from_pretrained(
            cfg.model, revision=cfg.revision, cache_dir=cfg.cache_dir
        )
    except Exception as e:  # any loading failure is a configuration problem here
        raise ConfigError(f"{key}: cannot load {cfg.model!r}: {type(e).__name__}: {e}") from None
    if model_config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ConfigError(
            f"{key}: {cfg.model!r} is a {model_config.model_type!r} model, not an "
            "image-text-to-text (vision-language) model"
        )
    if not getattr(processor, "chat_template", None):
        raise ConfigError(f"{key}: the processor of {cfg.model!r} has no chat template")


class TransformersCaptioner(Captioner):
    def __init__(self, cfg: TransformersCaptionerConfig) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.cfg = cfg
        self.name = cfg.name
        # The captioner's config knows no index: the key names it by its name.
        cuda = torch_device(cfg.device, f"caption.captioners[{cfg.name}].device") == "cuda"
        self.device = torch.device("cuda" if cuda else "cpu")
        if cfg.dtype == "auto":
            dtype = torch_half("cuda") if cuda else torch.float32
        else:
            dtype = getattr(torch, cfg.dtype)
        self.processor = AutoProcessor.from_pretrained(
            cfg.model, revision=cfg.revision, cache_dir=cfg.cache_dir
        )
        # Decoder-only generation continues each prompt from its end: pad on the left.
        self.processor.tokenizer.padding_side = "left"
        self.model = (
            AutoModelForImageTextToText.from_pretrained(
                cfg.model, revision=cfg.revision, cache_dir=cfg.cache_dir, dtype=dtype
            )
            .to(self.device)
            .eval()
        )
        self._torch = torch
        log.info("captioner %s: %s on %s (%s)", cfg.name, cfg.model, self.device, dtype)

    def caption(self, clips: list[ClipInfo]) -> list[CaptionOutcome]:
        outcomes = [CaptionOutcome(error="no keyframes to show the model") for _ in clips]
        todo = [i for i, c in enumerate(clips) if c.images]
        for attempt in range(self.cfg.max_retries + 1):
            failed = []
            for start in range(0, len(todo), self.cfg.batch_size):
                chunk = todo[start : start + self.cfg.batch_size]
                try:
                    replies = self.generate([clips[i] for i in chunk], sample=attempt > 0)
                except Exception as e:  # a failing model (OOM, bad input) fails its clips only
                    log.warning("captioner %s: generate failed: %s", self.name, e)
                    replies = [e] * len(chunk)
                for i, reply in zip(chunk, replies):
                    if isinstance(reply, Exception):
                        outcomes[i] = CaptionOutcome(
                            error=f"generate failed: {type(reply).__name__}: {reply}"
                        )
                        failed.append(i)
                        continue
                    try:
                        outcomes[i] = CaptionOutcome(fields=parse_reply(reply))
                    except MalformedReply as e:
                        outcomes[i] = CaptionOutcome(error=f"malformed reply: {e}")
                        failed.append(i)
            todo = failed
            if not todo:
                break
        for i in todo:
            outcomes[i].error += f" (gave up after {self.cfg.max_retries + 1} attempts)"
        return outcomes

    def generate(self, clips: list[ClipInfo], *, sample: bool = False) -> list[str]:
        """One batched ``generate`` call; the replies' text, in order."""
        from PIL import Image

        torch = self._torch
        images = [[Image.open(io.BytesIO(j)).convert("RGB") for j in c.images] for c in clips]
        texts = [
            self.processor.apply_chat_template(
                [
                    {
                        "role": "user",
                        "content": [
                            *({"type": "image"} for _ in c.images),
                            {
                                "type": "text",
                                "text": instruction(len(c.images), c.duration_s, c.media),
                            },
                        ],
                    }
                ],
                add_generation_prompt=True,
                tokenize=False,
            )
            for c in clips
        ]
        inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True)
        # Floating-point inputs (pixels) follow the model's dtype; ids stay integers.
        inputs = inputs.to(self.device, dtype=self.model.dtype)
        options: dict = {"max_new_tokens": self.cfg.max_new_tokens, "do_sample": sample}
        if sample:
            options["temperature"] = self.cfg.temperature
        with torch.inference_mode():
            out = self.model.generate(**inputs, **options)
        new = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new, skip_special_tokens=True)

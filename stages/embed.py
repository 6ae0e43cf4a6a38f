"""Embed stage: one L2-normalised embedding per candidate clip from its keyframes.

Two backends, chosen by ``embed.backend``:

- ``open_clip``: image embeddings from an open_clip model (weights by ``pretrained`` tag,
  fetched and cached by open_clip, or a local ``checkpoint``); fp16 on GPU, fp32 on CPU.
- ``signature``: a deterministic frame signature (layout, colour, gradients, low
  frequencies) of the picture inside its black bars, averaged with its mirror image's; needs
  no model. Strong on near-duplicates and copies, weak on semantics.

Each clip's keyframe embeddings are mean-pooled and L2-normalised. With
``embed.aesthetic_head.path`` set (open_clip only), a LAION aesthetic head scores every
keyframe's normalised image embedding; the mean score per clip replaces the technical-quality
``aesthetic`` and ``aesthetic_model`` names the head file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pyarrow as pa

from curate import contract, schema
from curate.config import ConfigError
from curate.config.sections import CurateConfig, EmbedConfig, OpenClipConfig
from curate.media.imaging import from_jpeg
from curate.models.aesthetic_head import AestheticHead
from curate.models.devices import torch_device
from curate.run.stage import Stage
from curate.signals.fingerprint import content_box

log = logging.getLogger(__name__)


def _block(values: np.ndarray, weight: float) -> np.ndarray:
    """Zero-mean, unit-norm feature block: unrelated images then score near 0, not near 1."""
    v = values.astype(np.float32).ravel()
    v = v - v.mean()
    norm = float(np.linalg.norm(v))
    return v * (weight / norm) if norm > 1e-9 else v * 0


def frame_signature(bgr: np.ndarray) -> np.ndarray:
    """512-d signature of one frame, invariant to size and brightness, tolerant of small crops
    and re-encoding."""
    small = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
    lum = lab[..., 0]
    # Luminance layout on an 8x8 grid, contrast-normalised (64).
    layout = cv2.resize(lum, (8, 8), interpolation=cv2.INTER_AREA)
    layout = (layout - layout.mean()) / (layout.std() + 1e-6)
    # Chroma layout: where the colours are (2 x 64).
    chroma = cv2.resize(lab[..., 1:], (8, 8), interpolation=cv2.INTER_AREA)
    # Gradient orientation histograms on a 4x4 grid, 8 bins each (128).
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1)
    mag, ang = cv2.cartToPolar(gx, gy)
    bins = np.minimum((ang / (2 * np.pi) * 8).astype(np.int32), 7)
    cells = np.zeros((4, 4, 8), np.float32)
    for cy in range(4):
        for cx in range(4):
            sl = np.s_[cy * 16 : (cy + 1) * 16, cx * 16 : (cx + 1) * 16]
            cells[cy, cx] = np.bincount(bins[sl].ravel(), mag[sl].ravel(), minlength=8)
    cells /= np.linalg.norm(cells, axis=2, keepdims=True) + 1e-6
    # Low spatial frequencies of luminance, without the DC term (64).
    dct = cv2.dct(cv2.resize(lum, (32, 32), interpolation=cv2.INTER_AREA))[:8, :8].ravel()
    dct[0] = 0.0
    # Hue-saturation histogram, brightness ignored (16 x 8 = 128).
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    hist = np.sqrt(hist / (hist.sum() + 1e-6))
    parts = [
        _block(layout, 1.0),
        _block(chroma[..., 0], 0.5),
        _block(chroma[..., 1], 0.5),
        _block(cells, 1.0),
        _block(dct, 1.0),
        _block(hist, 0.7),
    ]
    vec = np.concatenate(parts)
    assert vec.size == SIGNATURE_DIM
    return vec / (np.linalg.norm(vec) + 1e-9)


SIGNATURE_DIM = 512
"""Width of :func:`frame_signature` (64 + 2 x 64 + 128 + 64 + 128)."""


class SignatureEmbedder:
    name = "signature-v2"
    loads_model: ClassVar[bool] = False

    def __init__(self, cfg: EmbedConfig) -> None:
        self.cfg = cfg

    @classmethod
    def check(cls, cfg: EmbedConfig) -> str:
        """The model name a run records; raises ``ConfigError`` for settings this backend
        cannot honour."""
        if cfg.aesthetic_head.path is not None:
            raise ConfigError(
                "embed.aesthetic_head.path needs CLIP image embeddings: set "
                "embed.backend=open_clip (with a model of the head's width) or unset the head"
            )
        if cfg.dim != SIGNATURE_DIM:
            raise ConfigError(
                f"embed.dim: the signature backend gives {SIGNATURE_DIM}-d embeddings, "
                f"not {cfg.dim}; set embed.dim={SIGNATURE_DIM} or embed.backend=open_clip"
            )
        return cls.name

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        return np.stack([copy_invariant_signature(im) for im in images]).astype(np.float32)


def copy_invariant_signature(bgr: np.ndarray) -> np.ndarray:
    """:func:`frame_signature` of the picture inside its black bars, averaged with that of its
    mirror image: letterboxed, pillarboxed and mirrored copies then embed like the original, so
    the dedup stage finds them among its candidates."""
    top, bottom, left, right = content_box(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    picture = bgr[top:bottom, left:right]
    vec = frame_signature(picture) + frame_signature(np.ascontiguousarray(picture[:, ::-1]))
    return vec / (np.linalg.norm(vec) + 1e-9)


def _open_clip_weights(cfg: OpenClipConfig) -> str | None:
    """What to hand open_clip as ``pretrained``: a checkpoint path, a tag, or None."""
    if cfg.random_init:
        return None
    return cfg.checkpoint or cfg.pretrained


def open_clip_name(cfg: OpenClipConfig) -> str:
    if cfg.random_init:
        weights = "random-init"
    elif cfg.checkpoint:
        weights = Path(cfg.checkpoint).name
    else:
        weights = cfg.pretrained
    return f"open_clip:{cfg.model}/{weights}"


WEIGHT_FIXES = (
    "fixes: run once with network access so open_clip caches the weights "
    "(embed.open_clip.cache_dir), point embed.open_clip.checkpoint at a local file, "
    "or set embed.backend=signature"
)
"""Said with every error about open_clip weights that cannot be found."""


def _check_open_clip_width(cfg: EmbedConfig) -> int:
    """The embedding width of ``embed.open_clip.model``, which must be ``embed.dim``."""
    import open_clip

    oc = cfg.open_clip
    if oc.config_file:
        if not Path(oc.config_file).is_file():
            raise ConfigError(f"embed.open_clip.config_file: no such file {oc.config_file}")
        open_clip.add_model_config(oc.config_file)
    model_cfg = open_clip.get_model_config(oc.model)
    if model_cfg is None:
        raise ConfigError(
            f"embed.open_clip.model: unknown open_clip model {oc.model!r} "
            f"(see open_clip.list_models(), or set embed.open_clip.config_file)"
        )
    width = model_cfg.get("embed_dim")
    if width != cfg.dim:
        raise ConfigError(
            f"embed.open_clip.model: {oc.model} gives {width}-d embeddings but embed.dim is "
            f"{cfg.dim}; set embed.dim={width} (the analysis table stores embed.dim-d ones)"
        )
    return width


def _check_aesthetic_head(cfg: EmbedConfig, width: int) -> None:
    """A configured aesthetic head must load and take ``width``-d embeddings."""
    if cfg.aesthetic_head.path is None:
        return
    head = AestheticHead(cfg.aesthetic_head)
    if head.in_dim != width:
        raise ConfigError(
            f"embed.aesthetic_head.path: {head.name} is a {head.in_dim}-d {head.kind} head "
            f"but embed.open_clip.model {cfg.open_clip.model} gives {width}-d embeddings (LAION "
            f"heads: sa_0_4_vit_b_32_linear for 512-d ViT-B/32, sa_0_4_vit_l_14_linear or "
            f"sac+logos+ava1-l14-linearMSE for 768-d ViT-L/14)"
        )


def _check_open_clip_weights(oc: OpenClipConfig) -> None:
    """The weights must be at hand: random, a local checkpoint, or a ``pretrained`` tag,
    fetched into open_clip's cache here, once, so actors find them there."""
    if oc.random_init:
        log.warning("embed.open_clip.random_init is set: embeddings come from random weights")
        return
    if oc.checkpoint:
        if not Path(oc.checkpoint).is_file():
            raise ConfigError(
                f"embed.open_clip.checkpoint: no such file {oc.checkpoint}; {WEIGHT_FIXES}"
            )
        return
    if not oc.pretrained:
        raise ConfigError(
            f"embed.open_clip.pretrained or embed.open_clip.checkpoint is required; {WEIGHT_FIXES}"
        )
    import open_clip

    pretrained_cfg = open_clip.get_pretrained_cfg(oc.model, oc.pretrained)
    if not pretrained_cfg:
        tags = open_clip.list_pretrained_tags_by_model(oc.model)
        raise ConfigError(
            f"embed.open_clip.pretrained: {oc.pretrained!r} is not a tag of {oc.model} "
            f"(known: {', '.join(tags) or 'none'})"
        )
    try:
        open_clip.download_pretrained(pretrained_cfg, cache_dir=oc.cache_dir)
    except Exception as e:  # network, hub and cache errors all mean: no weights
        raise ConfigError(
            f"cannot obtain weights for embed.open_clip.model={oc.model} "
            f"embed.open_clip.pretrained={oc.pretrained}: {type(e).__name__}: {e}; {WEIGHT_FIXES}"
        ) from None


class OpenClipEmbedder:
    """open_clip image tower, loaded once per actor; batches of keyframes per forward pass."""

    loads_model: ClassVar[bool] = True

    def __init__(self, cfg: EmbedConfig) -> None:
        import open_clip
        import torch

        oc = cfg.open_clip
        if oc.config_file:
            open_clip.add_model_config(oc.config_file)
        # An explicit GPU request that cannot be met must not quietly run on the CPU.
        cuda = torch_device(cfg.device, "embed.device") == "cuda"
        self.device = torch.device("cuda" if cuda else "cpu")
        self.dtype = torch.float16 if cuda else torch.float32
        model, _, preprocess = open_clip.create_model_and_transforms(
            oc.model,
            pretrained=_open_clip_weights(oc),
            device=self.device,
            precision="fp16" if cuda else "fp32",
            cache_dir=oc.cache_dir,
        )
        self.model = model.eval()
        self.preprocess = preprocess
        self.batch_size = cfg.batch_size
        self.dim = cfg.dim
        self.name = open_clip_name(oc)
        self._torch = torch

    @classmethod
    def check(cls, cfg: EmbedConfig) -> str:
        """The model name a run records, once the model, its width, the aesthetic head and
        the weights are known to be usable; raises ``ConfigError`` otherwise."""
        width = _check_open_clip_width(cfg)
        _check_aesthetic_head(cfg, width)
        _check_open_clip_weights(cfg.open_clip)
        return open_clip_name(cfg.open_clip)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        torch = self._torch
        out = []
        for i in range(0, len(images), self.batch_size):
            chunk = images[i : i + self.batch_size]
            pixels = torch.stack(
                [
                    self.preprocess(Image.fromarray(cv2.cvtColor(im, cv2.COLOR_BGR2RGB)))
                    for im in chunk
                ]
            ).to(self.device, self.dtype)
            with torch.no_grad():
                features = self.model.encode_image(pixels)
            out.append(features.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


EMBEDDERS: dict[str, type[SignatureEmbedder | OpenClipEmbedder]] = {
    "signature": SignatureEmbedder,
    "open_clip": OpenClipEmbedder,
}
"""Embedding backends by ``embed.backend`` (the config's literals; ``tests/test_registry.py``
keeps the two in step). Each is built from ``EmbedConfig`` and has a classmethod ``check``."""


class EmbedStage(Stage):
    """Embeds the keyframes of every candidate clip of a batch of analysed sources."""

    name = "embed"

    def __init__(self, embed: EmbedConfig) -> None:
        started = time.perf_counter()
        self.embedder = EMBEDDERS[embed.backend](embed)
        self.head = AestheticHead(embed.aesthetic_head) if embed.aesthetic_head.path else None
        loads = self.embedder.loads_model or self.head is not None
        self.load_s = time.perf_counter() - started if loads else 0.0
        """Seconds the models took to load, reported with the first batch."""
        self.schema = contract.analyzed_source_schema(embed.dim)

    @classmethod
    def inputs(cls, config: CurateConfig) -> dict[str, Any]:
        return {"embed": config.embed}

    @classmethod
    def check(cls, config: CurateConfig) -> dict[str, Any]:
        """Fail at start-up, naming the keys to fix, when the configured model cannot be
        loaded. ``embedding_model``: the model name the run records."""
        return {"embedding_model": EMBEDDERS[config.embed.backend].check(config.embed)}

    @classmethod
    def shares_actor(cls, config: CurateConfig) -> bool:
        # A CLIP model stays in the embed pool (one actor by default), not in every
        # decoding actor.
        return not EMBEDDERS[config.embed.backend].loads_model

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        rows = batch.to_pylist()
        clips = [c for r in rows for c in r["clips"]]
        images: list[np.ndarray] = []
        owners: list[int] = []
        for i, clip in enumerate(clips):
            for jpeg in clip["keyframes"] or []:
                images.append(from_jpeg(jpeg))
                owners.append(i)
        model_s = 0.0
        if images:
            model_started = time.perf_counter()
            vectors = self.embedder.embed(images)
            model_s = time.perf_counter() - model_started
            owner = np.asarray(owners)
            scores = None
            if self.head is not None:
                # LAION heads were trained on unit-norm CLIP image embeddings, one per image.
                unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)
                scores = self.head.score(unit)
            for i, clip in enumerate(clips):
                mine = owner == i
                if not mine.any():
                    continue
                pooled = vectors[mine].mean(axis=0)
                clip["embedding"] = (pooled / (np.linalg.norm(pooled) + 1e-12)).tolist()
                clip["embedding_model"] = self.embedder.name
                if scores is not None:
                    clip["aesthetic"] = float(scores[mine].mean())
                    clip["aesthetic_model"] = self.head.name
        add_timing(rows, time.perf_counter() - started, model_s, self.load_s)
        self.load_s = 0.0
        return schema.from_rows(rows, self.schema)


def add_timing(rows: list[dict], busy_s: float, model_s: float, load_s: float = 0.0) -> None:
    """The batch's seconds into each source's ``timing`` (``curate.timing``), shared out by
    its keyframes (one forward pass serves several sources); ``load_s``, the model's
    loading, goes to the first source."""
    counts = [[len(c["keyframes"] or []) for c in row["clips"]] for row in rows]
    images = sum(map(sum, counts))
    for row, mine in zip(rows, counts):
        share = sum(mine) / images if images else 1 / len(rows)
        timing = dict(row.get("timing") or ())
        timing["embed.busy_s"] = busy_s * share + load_s
        if load_s:
            timing["embed.load.model_s"], load_s = load_s, 0.0
        timing["embed.clips"] = float(sum(1 for n in mine if n))
        timing["embed.model.model_s"] = model_s * share
        timing["embed.model.keyframes"] = float(sum(mine))
        row["timing"] = timing

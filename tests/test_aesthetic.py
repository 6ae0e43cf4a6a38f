"""Aesthetic scores: the offline technical-quality score ranks degraded copies of real frames
below the original; a LAION aesthetic head (random weights, both published formats) scores the
open_clip keyframe embeddings exactly as the head applied by hand."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import VIDEOS, needs_shared
from safetensors.torch import save_file
from test_embed import TINY_CLIP
from torch import nn

from curate import contract, schema
from curate.config import ConfigError
from curate.config.sections import AestheticHeadConfig, CurateConfig
from curate.models.aesthetic_head import AestheticHead
from curate.run.clustering import embeddings_of
from curate.signals.keyframes import TECHNICAL, technical_quality
from scripts.common.synth import real_frames
from stages.embed import EmbedStage


@needs_shared
def test_degradations_lower_the_score():
    for image in real_frames(VIDEOS)[:4]:
        bgr = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (398, 224))
        original = technical_quality(bgr)
        rng = np.random.default_rng(0)
        degraded = {
            "blurred": cv2.GaussianBlur(bgr, (0, 0), 3),
            "dark": (bgr * 0.15).astype(np.uint8),
            "washed out": (bgr * 0.3 + 170).astype(np.uint8),
            "noisy": np.clip(bgr + rng.normal(0, 25, bgr.shape), 0, 255).astype(np.uint8),
            "grey": cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
        }
        for name, worse in degraded.items():
            assert technical_quality(worse) < original, name
        assert 0 <= original <= 10


def test_flat_frame_scores_low():
    assert technical_quality(np.full((224, 398, 3), 128, np.uint8)) < 4


# LAION aesthetic head -----------------------------------------------------------------------


def tiny_clip(tmp_path, dim):
    """A 2-layer open_clip config of embedding width ``dim`` (weights random, never fetched)."""
    name = f"tiny-aesthetic-clip-{dim}"
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**TINY_CLIP, "embed_dim": dim}))
    return name, str(path)


def open_clip_config(tmp_path, dim=512, head=None, **embed):
    name, config_file = tiny_clip(tmp_path, dim)
    return CurateConfig.model_validate(
        {
            "embed": {
                "backend": "open_clip",
                "dim": dim,
                "open_clip": {"model": name, "config_file": config_file, "random_init": True},
                "aesthetic_head": {"path": None if head is None else str(head)},
                **embed,
            }
        }
    )


def linear_head(dim):
    torch.manual_seed(dim)
    return nn.Linear(dim, 1).state_dict()


def mlp_head(dim):
    """The improved-aesthetic-predictor MLP (keys ``layers.{0,2,4,6,7}``), random weights."""
    torch.manual_seed(dim + 1)
    module = nn.Module()
    module.layers = nn.Sequential(
        nn.Linear(dim, 1024),
        nn.Dropout(0.2),
        nn.Linear(1024, 128),
        nn.Dropout(0.2),
        nn.Linear(128, 64),
        nn.Dropout(0.1),
        nn.Linear(64, 16),
        nn.Linear(16, 1),
    )
    return module.state_dict()


def save_head(state, path):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def by_hand(state, unit):
    """The head in plain numpy: LAION's MLP has no activations, so it is a chain of affine maps."""
    x = unit.astype(np.float64)
    prefixes = [""] if "weight" in state else [f"layers.{i}." for i in (0, 2, 4, 6, 7)]
    for p in prefixes:
        x = x @ state[p + "weight"].double().numpy().T + state[p + "bias"].double().numpy()
    return x[:, 0]


def smooth_images(count, seed):
    rng = np.random.default_rng(seed)
    return [
        cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (0, 0), 2)
        for _ in range(count)
    ]


def analysed_source(images_per_clip, dim=512):
    clips = [
        {
            "clip_id": f"c{i}",
            "source": "s",
            "aesthetic": 5.0,
            "aesthetic_model": TECHNICAL,
            "keyframes": [cv2.imencode(".jpg", im)[1].tobytes() for im in images],
        }
        for i, images in enumerate(images_per_clip)
    ]
    row = {"source": "s", "source_index": 0, "shots": [], "clips": clips, "rejects": []}
    return schema.from_rows([row], contract.analyzed_source_schema(dim))


@pytest.mark.parametrize(
    ("dim", "make", "filename"),
    [
        (512, linear_head, "sa_0_4_vit_b_32_linear.pth"),
        (512, mlp_head, "mlp-512.safetensors"),
        (768, linear_head, "sa_0_4_vit_l_14_linear.pth"),
        (768, mlp_head, "sac+logos+ava1-l14-linearMSE.pth"),
    ],
)
def test_head_scores_each_clip_from_its_keyframe_embeddings(tmp_path, dim, make, filename):
    state = make(dim)
    head = save_head(state, tmp_path / filename)
    config = open_clip_config(tmp_path, dim, head)
    assert EmbedStage.check(config)["embedding_model"].startswith("open_clip:tiny-aesthetic-clip")
    stage = EmbedStage.from_config(config)
    assert stage.head.kind == ("linear" if make is linear_head else "mlp")
    images = [smooth_images(n, seed=n) for n in (1, 3, 2)]
    table = stage(analysed_source(images, dim))
    assert schema.embedding_dim(table.schema.field("clips").type.value_type) == dim
    for clip, frames in zip(table.to_pylist()[0]["clips"], images):
        # What the stage saw: the decoded JPEG keyframes through the same (random) model.
        decoded = [cv2.imdecode(cv2.imencode(".jpg", f)[1], cv2.IMREAD_COLOR) for f in frames]
        features = stage.embedder.embed(decoded)
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        expected = by_hand(state, unit).mean()
        assert clip["aesthetic"] == pytest.approx(expected, rel=1e-4, abs=1e-4)
        assert clip["aesthetic"] != 5.0
        assert clip["aesthetic_model"] == filename
        assert len(clip["embedding"]) == dim


def test_without_head_the_technical_score_stays(tmp_path):
    config = open_clip_config(tmp_path)
    stage = EmbedStage.from_config(config)
    out = stage(analysed_source([smooth_images(2, 0)])).to_pylist()[0]["clips"]
    assert out[0]["aesthetic"] == 5.0 and out[0]["aesthetic_model"] == TECHNICAL


def test_head_loader_refuses_foreign_and_mismatched_files(tmp_path):
    foreign = save_head({"fc.weight": torch.zeros(1, 512)}, tmp_path / "foreign.pth")
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.path.*not a LAION"):
        AestheticHead(AestheticHeadConfig(path=str(foreign)))
    broken = mlp_head(512)
    broken["layers.2.weight"] = torch.zeros(128, 999)
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.path.*does not load"):
        AestheticHead(AestheticHeadConfig(path=str(save_head(broken, tmp_path / "b.pth"))))
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.path.*not a state dict"):
        AestheticHead(AestheticHeadConfig(path=str(not_a_dict)))
    linear = save_head(linear_head(512), tmp_path / "linear.pth")
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.kind"):
        AestheticHead(AestheticHeadConfig(path=str(linear), kind="mlp"))
    assert AestheticHead(AestheticHeadConfig(path=str(linear), kind="linear")).in_dim == 512


def test_bad_head_configs_fail_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.path: no such file"):
        EmbedStage.check(open_clip_config(tmp_path, head=tmp_path / "missing.pth"))
    wide = save_head(linear_head(768), tmp_path / "sa_0_4_vit_l_14_linear.pth")
    with pytest.raises(ConfigError) as err:
        EmbedStage.check(open_clip_config(tmp_path, 512, wide))
    assert "embed.aesthetic_head.path" in str(err.value)
    assert "embed.open_clip.model" in str(err.value) and "768" in str(err.value)
    narrow = save_head(mlp_head(512), tmp_path / "mlp-512.pth")
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.path.*512-d mlp.*768-d"):
        EmbedStage.check(open_clip_config(tmp_path, 768, narrow))
    signature = CurateConfig.model_validate({"embed": {"aesthetic_head": {"path": str(narrow)}}})
    with pytest.raises(ConfigError, match=r"embed\.aesthetic_head\.path.*embed\.backend"):
        EmbedStage.check(signature)


def test_embedding_width_must_match_the_model(tmp_path):
    with pytest.raises(ConfigError, match=r"embed\.open_clip\.model.*768-d.*embed\.dim=768"):
        EmbedStage.check(_wide(tmp_path))
    with pytest.raises(ConfigError, match=r"embed\.dim.*signature"):
        EmbedStage.check(CurateConfig.model_validate({"embed": {"dim": 768}}))


def _wide(tmp_path):
    """A 768-d model with the default ``embed.dim`` (512)."""
    name, config_file = tiny_clip(tmp_path, 768)
    return CurateConfig.model_validate(
        {
            "embed": {
                "backend": "open_clip",
                "open_clip": {"model": name, "config_file": config_file, "random_init": True},
            }
        }
    )


def test_clustering_reads_the_stored_width():
    rng = np.random.default_rng(0)
    rows = [
        {"clip_id": f"c{i}", "source": "s", "embedding": rng.normal(size=768)} for i in range(4)
    ]
    rows[2]["embedding"] = None
    table = schema.from_rows(rows, contract.analysis_schema(768))
    x = embeddings_of(table)
    assert x.shape == (4, 768) and not x[2].any()
    assert schema.embedding_dim(contract.tier_schema(768)) == 768

"""Embedding backends: signature near-duplicate quality, open_clip real code path, start-up
errors for missing weights."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, VIDEOS, needs_shared

from curate import contract, schema
from curate.cli import main
from curate.config import ConfigError
from curate.config.loading import load_config
from curate.config.sections import CurateConfig
from stages.embed import EmbedStage, SignatureEmbedder

TINY_CLIP = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 64, "heads": 2, "layers": 1},
}


def clip_embedding(embedder, frames):
    vectors = embedder.embed(frames).mean(axis=0)
    return vectors / np.linalg.norm(vectors)


SAME_FOOTAGE = {"issue-134-rotate.mp4", "rabbit320.mp4"}
"""Shared videos that repeat another one's footage (goldeneye-vfr-drop3, rabbit.webm)."""


def real_clips(count=3):
    """Three frames (at 40, 50 and 60 % of the duration) of each distinct shared video."""
    clips = []
    for path in sorted(VIDEOS.rglob("*")):
        if path.suffix.lower() not in {".mp4", ".webm", ".mov", ".avi", ".mkv"}:
            continue
        if path.name in SAME_FOOTAGE:
            continue
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            duration = float(s.duration * s.time_base) if s.duration else c.duration / 1e6
            frames, wanted = [], [duration * f for f in (0.4, 0.5, 0.6)]
            for f in c.decode(s):
                if f.time is not None and wanted and f.time >= wanted[0]:
                    frames.append(f.to_ndarray(format="bgr24"))
                    wanted.pop(0)
                if not wanted:
                    break
        if len(frames) == count and frames[0].std() > 10:
            clips.append((path.name, frames))
    return clips


def reencode(frames, crf=40):
    """Round trip through H.264 at a low bitrate."""
    import io

    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    with av.open(buf, "w", format="matroska") as out:
        st = out.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        st.options = {"crf": str(crf), "preset": "ultrafast"}
        for f in frames:
            vf = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(f[: st.height, : st.width]), format="bgr24"
            )
            out.mux(st.encode(vf))
        out.mux(st.encode(None))
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


VARIANTS = {
    "reencode": reencode,
    "downscale": lambda fs: [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2)) for f in fs],
    "crop": lambda fs: [
        f[
            int(f.shape[0] * 0.05) : int(f.shape[0] * 0.95),
            int(f.shape[1] * 0.05) : int(f.shape[1] * 0.95),
        ]
        for f in fs
    ],
    "brighter": lambda fs: [cv2.convertScaleAbs(f, alpha=1.0, beta=30) for f in fs],
}


@needs_shared
def test_signature_finds_synthetic_duplicates_of_real_clips():
    threshold = load_config(ROOT / "configs" / "default.yaml").dedup.threshold
    embedder = SignatureEmbedder(CurateConfig().embed)
    clips = real_clips()
    assert len(clips) >= 15
    vectors, owner = [], []
    for k, (_name, frames) in enumerate(clips):
        vectors.append(clip_embedding(embedder, frames))
        owner.append(k)
        for make in VARIANTS.values():
            vectors.append(clip_embedding(embedder, make(frames)))
            owner.append(k)
    x, owner = np.stack(vectors), np.array(owner)
    sims = x @ x.T
    i, j = np.triu_indices(len(x), 1)
    predicted = sims[i, j] >= threshold
    truth = owner[i] == owner[j]
    recall = (predicted & truth).sum() / truth.sum()
    precision = (predicted & truth).sum() / max(1, predicted.sum())
    print(
        f"signature dedup on {len(clips)} real clips x {len(VARIANTS)} variants: "
        f"recall {recall:.3f}, precision {precision:.3f}"
    )
    assert recall >= 0.9 and precision >= 0.95


def test_signature_is_deterministic_unit_norm_and_brightness_tolerant():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    embedder = SignatureEmbedder(CurateConfig().embed)
    a, b = embedder.embed([image]), embedder.embed([image])
    assert a.shape == (1, schema.EMBEDDING_DIM) and np.array_equal(a, b)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    brighter = embedder.embed([cv2.convertScaleAbs(image, beta=40)])
    other = embedder.embed([np.ascontiguousarray(image[::-1, ::-1])])
    assert float((a @ brighter.T)[0, 0]) > 0.9 > float((a @ other.T)[0, 0])


def _jpeg(image):
    return cv2.imencode(".jpg", image)[1].tobytes()


def _analysed_source(images_per_clip):
    clips = [
        {"clip_id": f"c{i}", "source": "s", "keyframes": [_jpeg(im) for im in images]}
        for i, images in enumerate(images_per_clip)
    ]
    row = {"source": "s", "source_index": 0, "shots": [], "clips": clips, "rejects": []}
    return schema.from_rows([row], contract.ANALYZED_SOURCE)


@pytest.fixture
def tiny_clip_config(tmp_path):
    path = tmp_path / "tiny-test-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return CurateConfig.model_validate(
        {
            "embed": {
                "backend": "open_clip",
                "open_clip": {
                    "model": "tiny-test-clip",
                    "config_file": str(path),
                    "random_init": True,
                },
            }
        }
    )


def test_open_clip_stage_with_random_tiny_model(tiny_clip_config):
    model = "open_clip:tiny-test-clip/random-init"
    assert EmbedStage.check(tiny_clip_config) == {"embedding_model": model}
    rng = np.random.default_rng(1)
    images = [
        [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(n)] for n in (1, 3)
    ]
    out = EmbedStage.from_config(tiny_clip_config)(_analysed_source(images)).to_pylist()[0]["clips"]
    for clip in out:
        v = np.array(clip["embedding"], np.float32)
        assert v.shape == (512,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)
        assert clip["embedding_model"] == "open_clip:tiny-test-clip/random-init"
        assert clip["keyframes"]  # kept in analysis for captioning


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_explicit_cuda_without_a_gpu_is_an_error(tiny_clip_config):
    config = tiny_clip_config.model_copy(
        update={"embed": tiny_clip_config.embed.model_copy(update={"device": "cuda"})}
    )
    with pytest.raises(ConfigError, match=r"embed\.device is cuda"):
        EmbedStage.from_config(config)


def test_signature_stage_fills_every_clip():
    rng = np.random.default_rng(2)
    images = [[rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)] for _ in range(3)]
    table = EmbedStage.from_config(CurateConfig())(_analysed_source(images))
    clips = table.to_pylist()[0]["clips"]
    assert all(c["embedding_model"] == "signature-v2" and len(c["embedding"]) == 512 for c in clips)


def test_missing_pretrained_weights_fail_at_start_up(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = CurateConfig.model_validate(
        {
            "embed": {
                "backend": "open_clip",
                "open_clip": {
                    "model": "ViT-B-32",
                    "pretrained": "laion2b_s34b_b79k",
                    "cache_dir": str(tmp_path),
                },
            }
        }
    )
    with pytest.raises(ConfigError) as err:
        EmbedStage.check(config)
    message = str(err.value)
    for key in ("embed.open_clip.pretrained", "embed.open_clip.checkpoint", "embed.backend"):
        assert key in message


def test_unknown_tag_and_missing_checkpoint(tmp_path):
    base = {"backend": "open_clip", "open_clip": {"model": "ViT-B-32"}}
    bad_tag = CurateConfig.model_validate(
        {"embed": {**base, "open_clip": {"model": "ViT-B-32", "pretrained": "no-such-tag"}}}
    )
    with pytest.raises(ConfigError, match=r"embed\.open_clip\.pretrained.*known"):
        EmbedStage.check(bad_tag)
    missing = CurateConfig.model_validate(
        {
            "embed": {
                **base,
                "open_clip": {"model": "ViT-B-32", "checkpoint": str(tmp_path / "nope.pt")},
            }
        }
    )
    with pytest.raises(ConfigError, match=r"embed\.open_clip\.checkpoint"):
        EmbedStage.check(missing)
    wide = CurateConfig.model_validate(
        {"embed": {**base, "open_clip": {"model": "ViT-L-14", "random_init": True}}}
    )
    with pytest.raises(ConfigError, match="768"):
        EmbedStage.check(wide)


def test_cli_exits_2_on_missing_weights_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    video_dir = tmp_path / "in"
    video_dir.mkdir()
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "-i",
            str(video_dir),
            "-o",
            str(out),
            "--set",
            "embed.backend=open_clip",
            "--set",
            f"embed.open_clip.cache_dir={tmp_path / 'cache'}",
        ]
    )
    assert code == 2
    assert "embed.open_clip" in capsys.readouterr().err
    assert not out.exists()

"""End to end through the CLI on a local 2-CPU Ray: synthetic inputs and the shared videos."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import DEFAULT_CONFIG as DEFAULT
from conftest import VIDEOS, needs_shared
from conftest import run_pipeline as run

from curate.cli import main
from curate.config.loading import load_config
from curate.contract import FRAME_SIGNALS
from curate.output.validate import accounting_problems
from curate.run.registry import STAGES
from curate.run.runner import fuse_pools
from scripts.common.synth import (
    bad_inputs,
    pan_frames,
    shots_video,
    still_frames,
    textured_image,
    write_video,
)


def rows(folder, columns=None):
    return pq.read_table(folder, columns=columns).to_pylist()


@pytest.fixture(scope="module")
def synthetic_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    image = textured_image(11)
    write_video(folder / "pan.mp4", pan_frames(image, 200, 2.0))  # 8 s, one clip
    write_video(folder / "still.mp4", still_frames(image, 150))  # static: rejected by tier
    shots_video(folder / "shots.mp4", [130, 30, 110])  # 5.2 s + 1.2 s (too short) + 4.4 s
    expected = bad_inputs(folder / "bad")
    return folder, expected


def test_synthetic_run_accounts_for_everything(ray_local, synthetic_inputs, tmp_path, capsys):
    folder, expected_bad = synthetic_inputs
    out = tmp_path / "out"
    assert run([folder], out) == 0
    assert accounting_problems(out) == []
    assert main(["validate", str(out)]) == 0
    rejects = rows(out / "rejects")
    for name, reason in expected_bad.items():
        mine = [r for r in rejects if r["source"].endswith(name)]
        assert len(mine) == 1 and mine[0]["reason"] == reason and mine[0]["clip_id"] is None, mine
    static = [r for r in rejects if r["source"].endswith("still.mp4")]
    assert [r["reason"] for r in static] == ["static"]
    short = [r for r in rejects if r["source"].endswith("shots.mp4")]
    assert [r["reason"] for r in short] == ["too_short"] and short[0]["clip_id"]
    tier = rows(out / "tiers" / "default")
    assert sorted(r["source"].rsplit("/", 1)[1] for r in tier) == [
        "pan.mp4",
        "shots.mp4",
        "shots.mp4",
    ]
    for r in tier:
        assert (out / r["clip_path"]).is_file() and r["tier"] == "default"
        assert r["thumbnail"][:2] == b"\xff\xd8"  # JPEG
    shots = rows(out / "shots", ["source", "start_frame"])
    assert [s["start_frame"] for s in shots if s["source"].endswith("shots.mp4")] == [0, 130, 160]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["funnel"]["probe"]["rejected"] == {
        "low_resolution": 1,
        "no_video_stream": 1,
        "unreadable": 4,
    }
    assert manifest["tiers"]["default"]["clips"] == 3


def test_existing_foreign_folder_is_refused(tmp_path, synthetic_inputs, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert run([synthetic_inputs[0] / "pan.mp4"], out) == 2
    assert (out / "precious.txt").exists()
    assert "not empty" in capsys.readouterr().err


@needs_shared
def test_shared_videos_accounted_for(shared_run, photos):
    out, expected_bad, _ = shared_run
    assert accounting_problems(out) == []
    assert main(["validate", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["discovered"] == 28 + len(expected_bad) + photos.count
    rejects = rows(out / "rejects")
    for name, reason in expected_bad.items():
        assert [r["reason"] for r in rejects if r["source"].endswith(name)] == [reason]
    assert any(r["source"].endswith("test.mov") and r["reason"] == "too_short" for r in rejects)
    analysis = rows(out / "analysis", ["source", "width", "height", "orientation", "tier"])
    rotated = [r for r in analysis if r["source"].endswith("issue-134-rotate.mp4")]
    assert rotated and all(
        (r["width"], r["height"], r["orientation"]) == (544, 1280, "portrait") for r in rotated
    )
    assert manifest["tiers"]["default"]["clips"] > 10
    for key in ("funnel", "timing", "versions", "config"):
        assert manifest[key]


@needs_shared
def test_shared_tier_rows_have_captions_and_prompts(shared_run):
    from curate.caption.structured import StructuredCaption

    out, _, _ = shared_run
    tier = rows(out / "tiers" / "default")
    assert tier
    images = rows(out / "tiers" / "images")
    assert images
    for r in tier + images:
        caption = StructuredCaption.model_validate_json(r["caption"])
        assert caption.tags.source == r["source"] and caption.tags.tier == r["tier"]
        assert caption.short_description is None and caption.note  # template: says so
        assert r["captioner"] == "template"
        assert r["prompt"] and r["prompts"] and r["prompts"][0] == r["prompt"]
        assert all(p.strip() and "null" not in p for p in r["prompts"])
    for r in images:  # a still: no camera motion, duration or frame rate
        caption = StructuredCaption.model_validate_json(r["caption"])
        assert caption.camera_motion is None and caption.tags.duration_s is None
        assert caption.tags.fps is None and caption.tags.motion_level is None
    analysis = rows(out / "analysis", ["clip_id", "caption"])
    tiered = {r["clip_id"] for r in tier + images}
    assert all((a["caption"] is not None) == (a["clip_id"] in tiered) for a in analysis)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["funnel"]["caption"]["out"] == len(tiered)
    assert manifest["funnel"]["caption"]["captioners"] == {"template": len(tiered)}


@needs_shared
def test_inspect_reports_tiers_and_rejects(shared_run, capsys):
    out, _, _ = shared_run
    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert summary["tiers"] == manifest["tiers"]
    assert summary["rejects"] == manifest["rejects"]
    assert main(["inspect", str(out)]) == 0
    assert "default" in capsys.readouterr().out


@needs_shared
def test_manifest_and_inspect_say_where_the_time_went(shared_run, capsys):
    out, _, _ = shared_run
    manifest = json.loads((out / "manifest.json").read_text())
    stages = manifest["timing"]["stages"]
    analyze, parts = stages["analyze"], stages["analyze"]["parts"]
    assert parts["decode"]["frames"] == analyze["frames"] > 0
    for signal in FRAME_SIGNALS:
        measures = parts[signal.name]
        assert {"update_s", "finish_s", "clip_values_s"} <= measures.keys()
        assert 0 < measures["frames"] <= analyze["frames"], signal.name
    # TransNetV2 runs around candidate cuts, in passes of whole 50-frame chunks plus 25 frames
    # of context either side, on its own thread.
    assert parts["transnetv2"]["frames"] % 50 == 0 and parts["transnetv2"]["frames"] > 0
    assert parts["transnetv2"]["network_s"] > 0
    in_pass = parts["decode"]["wait_s"] + sum(
        parts[s.name]["update_s"] + parts[s.name]["finish_s"] for s in FRAME_SIGNALS
    )
    assert 0 < in_pass <= analyze["busy_s"]
    detect = stages["detect"]["parts"]
    assert detect["ocr"]["frames"] > 0 and detect["ocr"]["model_s"] > 0
    assert detect["nsfw"]["keyframes"] >= manifest["funnel"]["analyze"]["out"]
    assert stages["embed"]["clips"] == manifest["funnel"]["analyze"]["out"]
    assert stages["embed"]["parts"]["model"]["keyframes"] == detect["nsfw"]["keyframes"]

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("where the time went") : text.index("selection:")].splitlines()
    assert [line.split()[0] for line in table[2:6]] == ["probe", "analyze", "decode", "shots"]
    assert any(line.split()[:2] == ["ocr", f"{detect['ocr']['model_s']:.2f}"] for line in table)
    assert any("TransNetV2 network (own thread)" in line for line in table)


def test_phase1_shares_one_pool_unless_a_stage_needs_other_nodes():
    stages = tuple(STAGES[n] for n in ("probe", "analyze", "detect", "embed"))
    analyze = STAGES["analyze"]

    def fused(*overrides: str) -> bool:
        return fuse_pools(load_config(DEFAULT, list(overrides)), stages, analyze)

    # The fused pool takes ray.analyze's resources.
    assert fused() and fused("ray.analyze.num_cpus=1", "ray.analyze.memory=1000000000")
    # A GPU stage, a stage pinned to other nodes, a stage sized on its own (the fused pool
    # would ignore its settings), a CLIP model (kept to the embed pool).
    for override in (
        "ray.embed.num_gpus=1",
        "ray.detect.resources={ocr_node: 1}",
        "ray.detect.num_cpus=2",
        "ray.probe.max_actors=8",
        "embed.backend=open_clip",
    ):
        assert not fused(override), override
    assert fused("ray.embed.num_gpus=1", "ray.phase1_pools=fused")
    assert not fused("ray.phase1_pools=per_stage")


@needs_shared
def test_rerun_gives_identical_ids_and_tiers(shared_run, photos, tmp_path):
    """Also with a pool per phase-1 stage, as a cluster with GPU nodes runs it (the session's
    run shares one pool): a difference here is either nondeterminism or the two pool layouts
    disagreeing (rerun both with the same ray.phase1_pools to tell which)."""
    out, _, bad = shared_run
    again = tmp_path / "again"
    assert run([VIDEOS, bad, photos.folder], again, "--set", "ray.phase1_pools=per_stage") == 0
    ids = [r["clip_id"] for r in rows(out / "analysis", ["clip_id"])]
    assert ids and ids == [r["clip_id"] for r in rows(again / "analysis", ["clip_id"])]
    for tier in ("default", "images"):
        assert rows(out / "tiers" / tier) == rows(again / "tiers" / tier)
    assert rows(out / "rejects") == rows(again / "rejects")


@pytest.mark.parametrize("mode", ["inline", "reference"])
def test_export_modes(ray_local, synthetic_inputs, tmp_path, mode):
    folder, _ = synthetic_inputs
    out = tmp_path / mode
    assert run([folder / "pan.mp4"], out, "--set", f"export.mode={mode}") == 0
    (row,) = rows(out / "tiers" / "default")
    assert row["clip_path"] is None and not (out / "clips").exists()
    if mode == "inline":
        assert row["video"][4:8] == b"ftyp"
    else:
        assert row["video"] is None and row["end_s"] > row["start_s"]


@needs_shared
def test_shared_near_duplicate_pair_is_found(shared_run):
    out, _, _ = shared_run
    analysis = rows(
        out / "analysis",
        [
            *("clip_id", "source", "start_s", "duration_s", "cluster_id", "embedding_model"),
            *("sample_weight", "duplicate_of", "duplicate_method", "duplicate_similarity"),
            *("duplicate_span", "media"),
        ],
    )
    by_id = {r["clip_id"]: r for r in analysis}
    everything, analysis = analysis, [r for r in analysis if r["media"] == "video"]
    dups = [
        (r["source"].rsplit("/", 1)[1], by_id[r["duplicate_of"]]["source"].rsplit("/", 1)[1])
        for r in analysis
        if r["duplicate_of"]
    ]
    assert dups == [("rabbit320.mp4", "rabbit.webm")]  # the larger copy is kept
    # The merge records its evidence: how it was decided, how alike, which seconds match.
    (dup,) = [r for r in analysis if r["duplicate_of"]]
    kept = by_id[dup["duplicate_of"]]
    assert dup["duplicate_method"] in ("embedding", "frame-hash", "verified")
    assert 0.5 < dup["duplicate_similarity"] <= 1.0
    span = dup["duplicate_span"]
    assert 0 <= span["start_s"] < span["end_s"] <= dup["duration_s"] + 0.05
    assert 0 <= span["of_start_s"] < span["of_end_s"] <= kept["duration_s"] + 0.05
    # Both clips show the same seconds of the rabbit video: the matched spans line up in it.
    assert dup["start_s"] + span["start_s"] == pytest.approx(
        kept["start_s"] + span["of_start_s"], abs=1.0
    )
    assert span["end_s"] - span["start_s"] > 0.6 * dup["duration_s"]
    assert all(r["cluster_id"] is not None for r in everything)
    assert {r["embedding_model"] for r in everything} == {"signature-v2"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedding_model"] == "signature-v2"
    images = sum(r["duplicate_of"] is not None for r in everything if r["media"] == "image")
    assert manifest["funnel"]["dedup"]["rejected"] == {"duplicate": 1 + images}


STRICTER = [
    "--set",
    "tiers.0.gates.min_sharpness=p30",
    "--set",
    "dedup.threshold=0.8",
    "--set",
    "rebalance.per_source_cap=2",
]


@needs_shared
def test_retier_matches_a_fresh_run(shared_run, photos, tmp_path, capsys):
    import shutil
    import time

    out, _, bad = shared_run
    copy = tmp_path / "retiered"
    shutil.copytree(out, copy)
    started = time.perf_counter()
    capsys.readouterr()
    assert main(["retier", str(copy), "--config", DEFAULT, "--no-progress", *STRICTER]) == 0
    retier_s = time.perf_counter() - started
    printed = capsys.readouterr().out
    fresh = tmp_path / "fresh"
    started = time.perf_counter()
    assert run([VIDEOS, bad, photos.folder], fresh, *STRICTER) == 0
    fresh_s = time.perf_counter() - started
    print(f"retier {retier_s:.1f} s vs fresh run {fresh_s:.1f} s: {retier_s / fresh_s:.2f}x")
    for folder in ("tiers/default", "tiers/images", "rejects", "analysis"):
        assert rows(copy / folder) == rows(fresh / folder), folder
    assert rows(copy / "tiers/default", ["clip_id"]) != rows(out / "tiers/default", ["clip_id"])
    assert accounting_problems(copy) == []
    manifest = json.loads((copy / "manifest.json").read_text())
    resolved = manifest["funnel"]["tiers"]["thresholds"]["default"]["min_sharpness"]
    assert resolved > 0 and manifest["config"]["tiers"][0]["gates"]["min_sharpness"] == "p30"
    # retier says what changed: each tier before → after, and what p30 resolved to.
    before = json.loads((out / "manifest.json").read_text())["tiers"]["default"]["clips"]
    after = manifest["tiers"]["default"]["clips"]
    assert f"{before} → {after} clips ({after - before:+d})" in printed, printed
    assert f"min_sharpness p30 = {resolved:.4g}" in printed, printed
    # Clip files of clips that left the tier are gone; the others are still there.
    kept = {r["clip_path"] for r in rows(copy / "tiers/default", ["clip_path"])}
    assert {str(p.relative_to(copy)) for p in (copy / "clips").rglob("*.mp4")} == kept


def _loosest(key: str, flag: bool):
    """The loosest valid threshold of a gate (every gate on, nothing meant to fail it)."""
    from pydantic import ValidationError

    from curate.config.sections import Gates

    for value in [True] if flag else ([0, 1] if key.startswith("min") else [1e9, 1]):
        try:
            Gates.model_validate({key: value})
            return value
        except ValidationError:
            continue
    raise AssertionError(f"no valid loose threshold for gates.{key}")


@needs_shared
def test_every_gate_applies_in_a_retier(shared_run, tmp_path):
    """Every declared gate, a new signal's too, reaches its columns in phase 2."""
    import shutil

    from curate.contract import ALL_GATES

    out, _, _ = shared_run
    copy = tmp_path / "every-gate"
    shutil.copytree(out, copy)
    sets = [f"tiers.0.gates.{g.key}={_loosest(g.key, g.flag)}" for g in ALL_GATES]
    assert (
        main(
            ["retier", str(copy), "--config", DEFAULT, "--no-progress"]
            + [arg for s in sets for arg in ("--set", s)]
        )
        == 0
    )
    tiers = json.loads((copy / "manifest.json").read_text())["funnel"]["tiers"]
    assert set(tiers["gate_failures"]["default"]) == {g.key for g in ALL_GATES}
    assert accounting_problems(copy) == []


def test_vit_l_width_run_with_aesthetic_head(ray_local, synthetic_inputs, tmp_path):
    """A 768-d (ViT-L/14-wide) run: embeddings stored 768-d, the LAION head scores every clip,
    and a re-tier reads the stored width back."""
    import torch

    folder, _ = synthetic_inputs
    model = tmp_path / "tiny-wide-clip.json"
    model.write_text(
        json.dumps(
            {
                "embed_dim": 768,
                "vision_cfg": {
                    "image_size": 64,
                    "layers": 1,
                    "width": 64,
                    "patch_size": 16,
                    "head_width": 32,
                },
                "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 1},
            }
        )
    )
    head = tmp_path / "sa_0_4_vit_l_14_linear.pth"
    torch.save(torch.nn.Linear(768, 1).state_dict(), head)
    out = tmp_path / "out"
    wide = [
        "--set",
        "embed.backend=open_clip",
        "--set",
        "embed.dim=768",
        "--set",
        "embed.open_clip.model=tiny-wide-clip",
        "--set",
        f"embed.open_clip.config_file={model}",
        "--set",
        "embed.open_clip.random_init=true",
        "--set",
        f"embed.aesthetic_head.path={head}",
    ]
    assert run([folder / "pan.mp4", folder / "shots.mp4"], out, *wide) == 0
    assert accounting_problems(out) == []
    analysis = pq.read_table(out / "analysis")
    assert analysis.schema.field("embedding").type.list_size == 768
    assert set(analysis["aesthetic_model"].to_pylist()) == {head.name}
    assert pq.read_table(out / "tiers" / "default").schema.field("embedding").type.list_size == 768
    assert main(["retier", str(out), "--config", DEFAULT, "--no-progress"]) == 0
    assert pq.read_table(out / "analysis").schema.field("embedding").type.list_size == 768
    assert rows(out / "tiers" / "default", ["aesthetic_model"])[0]["aesthetic_model"] == head.name

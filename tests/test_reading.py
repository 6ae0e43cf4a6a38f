"""The output shards load in pandas, pyarrow, Ray Data and Hugging Face ``datasets``, as the
README's "Reading the shards" shows: same rows everywhere, absolute ``source`` paths, and
``clip_path`` relative to the output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import ray.data
from conftest import run_pipeline

from scripts.common.synth import pan_frames, shots_video, still_frames, textured_image, write_video

pytestmark = pytest.mark.ray

TIER = "default"


@pytest.fixture(scope="module")
def out(ray_local, tmp_path_factory) -> str:
    """One run over three short videos, given by a path relative to the working directory."""
    work = tmp_path_factory.mktemp("reading")
    inputs = work / "inputs"
    inputs.mkdir()
    image = textured_image(5)
    write_video(inputs / "pan.mp4", pan_frames(image, 125, 2.0))  # 5 s: one clip
    write_video(inputs / "still.mp4", still_frames(image, 125))  # analysed, in no tier
    shots_video(inputs / "shots.mp4", [110, 105])  # two shots: two clips
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        # Dedup and re-balancing drop nothing here and only cost time.
        skip = ["--set", "dedup.enabled=false", "--set", "rebalance.enabled=false"]
        assert run_pipeline(["inputs"], "out", *skip) == 0
    return str(work / "out")


@pytest.fixture(scope="module")
def counts(out) -> dict[str, int]:
    """Rows per table as the manifest and the Parquet footers count them."""
    manifest = json.loads(Path(out, "manifest.json").read_text())
    tier = pq.ParquetDataset(os.path.join(out, "tiers", TIER)).files
    analysis = pq.ParquetDataset(os.path.join(out, "analysis")).files
    footers = {
        "tier": sum(pq.read_metadata(f).num_rows for f in tier),
        "analysis": sum(pq.read_metadata(f).num_rows for f in analysis),
    }
    assert footers["tier"] == manifest["tiers"][TIER]["clips"] > 0
    assert footers["analysis"] > footers["tier"]  # the still video's clip is in no tier
    return footers


def check_rows(out: str, sources: list[str], clip_paths: list[str | None]) -> None:
    """``source`` is the absolute path of an input given as ``inputs``; ``clip_path`` joined
    with the output folder is the exported clip."""
    inputs = os.path.join(os.path.dirname(out), "inputs")
    assert sources and all(os.path.isabs(s) for s in sources), sources
    assert all(os.path.samefile(os.path.dirname(s), inputs) for s in sources), sources
    assert {os.path.basename(s) for s in sources} == {"pan.mp4", "shots.mp4"}
    for rel in clip_paths:
        assert rel and not os.path.isabs(rel) and os.path.isfile(os.path.join(out, rel)), rel


def test_pandas(out, counts):
    clips = pd.read_parquet(os.path.join(out, "tiers", TIER))
    analysis = pd.read_parquet(os.path.join(out, "analysis"), columns=["clip_id", "tier"])
    assert (len(clips), len(analysis)) == (counts["tier"], counts["analysis"])
    check_rows(out, list(clips["source"]), list(clips["clip_path"]))
    assert clips["video"].isna().all()  # export.mode files: the clip is the file, not bytes
    assert set(clips["clip_id"]) == set(analysis.loc[analysis["tier"] == TIER, "clip_id"])


def test_pyarrow(out, counts):
    tier = ds.dataset(os.path.join(out, "tiers", TIER), format="parquet")
    table = tier.to_table(columns=["source", "clip_path", "sharpness"])
    analysis = pq.read_table(os.path.join(out, "analysis"), columns=["clip_id"])
    assert (tier.count_rows(), table.num_rows) == (counts["tier"], counts["tier"])
    assert analysis.num_rows == counts["analysis"]
    check_rows(out, table["source"].to_pylist(), table["clip_path"].to_pylist())


def test_ray_data(out, counts):
    clips = ray.data.read_parquet(os.path.join(out, "tiers", TIER))
    analysis = ray.data.read_parquet(os.path.join(out, "analysis")).select_columns(["clip_id"])
    assert (clips.count(), analysis.count()) == (counts["tier"], counts["analysis"])
    rows = clips.select_columns(["source", "clip_path"]).take_all()
    check_rows(out, [r["source"] for r in rows], [r["clip_path"] for r in rows])


def test_hugging_face_datasets(out, counts, tmp_path):
    from datasets import load_dataset

    # One load per table: the splits of one load must share their columns.
    clips = load_dataset(
        "parquet",
        data_files=os.path.join(out, "tiers", TIER, "*.parquet"),
        split="train",
        cache_dir=str(tmp_path),
    )
    analysis = load_dataset(
        "parquet",
        data_files=os.path.join(out, "analysis", "*.parquet"),
        split="train",
        columns=["clip_id", "tier"],
        cache_dir=str(tmp_path),
    )
    assert (clips.num_rows, analysis.num_rows) == (counts["tier"], counts["analysis"])
    check_rows(out, clips["source"], clips["clip_path"])
    embeddings = np.asarray(clips.with_format("numpy")["embedding"])
    assert embeddings.shape == (counts["tier"], 512) and embeddings.dtype == np.float32

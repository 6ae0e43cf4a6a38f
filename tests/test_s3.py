"""Object storage: inputs read from and every output written to a local S3-compatible server
(moto in server mode on 127.0.0.1) through the real S3 client and protocol, and the run read
back in place by ``inspect``, ``report`` and ``validate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from conftest import DEFAULT_CONFIG, ROOT
from moto import server as moto_server

from curate.cli import main
from curate.inputs import discover
from curate.media.image import probe_image
from curate.media.video import probe
from curate.output.record import Manifest
from curate.output.tables import ShardWriter, read_table, shards
from curate.storage import Store
from scripts.common.photos import photo_path, sample_photos
from scripts.common.synth import bad_inputs, pan_frames, shots_video, textured_image, write_video

BUCKET = "curate-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with one bucket; yields the environment that points clients at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=f"{host}:{port}",
        scheme="http",
        allow_bucket_creation=True,
    )
    fs.create_dir(BUCKET)
    yield env, fs
    server.stop()


@pytest.fixture(scope="module")
def uploaded(s3, tmp_path_factory) -> dict[str, str]:
    """Synthetic videos, a photograph and broken files under ``s3://BUCKET/raw/``, plus a
    manifest."""
    _, fs = s3
    local = tmp_path_factory.mktemp("s3-inputs")
    sample_photos(local / "photos", ("coffee.png",))
    write_video(local / "pan.mp4", pan_frames(textured_image(31), 130, 1.5))
    (local / "nested").mkdir()
    shots_video(local / "nested" / "shots.mp4", [110, 30, 105])
    bad = bad_inputs(local / "bad")
    pafs.copy_files(str(local), f"{BUCKET}/raw", destination_filesystem=fs)
    with fs.open_output_stream(f"{BUCKET}/lists/some.txt") as f:
        f.write(b"# relative entries resolve against the manifest's folder\n../raw/pan.mp4\n")
    return bad


def test_store_round_trip(s3, monkeypatch):
    env, _ = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store = Store(f"s3://{BUCKET}/store-test")
    assert store.is_empty()
    store.write_json("a/run.json", {"x": 1})
    store.write_bytes("a/b/c.bin", b"abc")
    assert store.read_json("a/run.json") == {"x": 1}
    assert store.walk() == ["a/b/c.bin", "a/run.json"]
    assert store.files("a", "*.json") == ["a/run.json"]
    assert store.sub("a").uri("b/c.bin") == f"s3://{BUCKET}/store-test/a/b/c.bin"
    store.remove("a")
    assert not store.exists("a/run.json")


def test_one_shard_reader_for_buckets_and_folders(s3, monkeypatch, tmp_path):
    """``shards``/``read_table`` list through the store and read on its filesystem: the same
    answer from a bucket prefix as from a local folder."""
    env, _ = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    table = pa.table({"x": list(range(10)), "y": [str(i) for i in range(10)]})
    for location in (f"s3://{BUCKET}/shard-test", str(tmp_path / "shard-test")):
        store = Store(location)
        with ShardWriter(store.sub("t"), table.schema, rows_per_file=4, compression="zstd") as w:
            w.write(table)
        store.write_bytes("t/notes.txt", b"not a shard")
        assert store.files("t") == [
            "t/part-00000.parquet",
            "t/part-00001.parquet",
            "t/part-00002.parquet",
        ]
        assert shards(store, "t").count_rows() == 10
        assert read_table(store, "t", columns=["x"])["x"].to_pylist() == list(range(10))
        assert read_table(location, "t").equals(table)
        assert store.folders() == ["t"]
        with pytest.raises(FileNotFoundError) as missing:
            shards(store, "u")
        assert str(missing.value) == f"no Parquet shards in {location}/u"


def test_discover_and_probe_over_s3(s3, uploaded, monkeypatch):
    env, _ = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sources = discover([f"s3://{BUCKET}/raw/", f"s3://{BUCKET}/lists/some.txt"])
    names = [s.rsplit("/", 1)[1] for s in sources]
    assert sorted(names) == sorted([*uploaded, "pan.mp4", "shots.mp4", "coffee.png"])
    assert f"s3://{BUCKET}/raw/nested/shots.mp4" in sources
    info = probe(f"s3://{BUCKET}/raw/pan.mp4", max_pixels=1 << 26)
    assert (info.width, info.height) == (640, 360) and info.duration_s == pytest.approx(5.2)
    photo = probe_image(f"s3://{BUCKET}/raw/photos/coffee.png", max_pixels=1 << 26)
    assert (photo.width, photo.height, photo.codec) == (600, 400, "png")


@pytest.fixture(scope="module")
def s3_run(s3, uploaded, tmp_path_factory) -> str:
    """A finished run from ``s3://BUCKET/raw/`` into ``s3://BUCKET/curated/run-1``; returns
    the output URI. Tests must not modify it (copy it first)."""
    env, _ = s3
    out = f"s3://{BUCKET}/curated/run-1"
    cwd = tmp_path_factory.mktemp("s3-run-cwd")
    cmd = [
        sys.executable,
        "-m",
        "curate.cli",
        "run",
        "-c",
        DEFAULT_CONFIG,
        "-i",
        f"s3://{BUCKET}/raw/",
        "-o",
        out,
        "--no-progress",
    ]
    # The run is its own process with its own local Ray: credentials and endpoint reach the
    # driver and every worker through the standard AWS environment variables only.
    result = subprocess.run(
        cmd,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(cwd.iterdir()), "nothing is written locally"
    return out


def test_run_from_s3_to_s3(s3, uploaded, s3_run):
    _, fs = s3
    prefix = f"{BUCKET}/curated/run-1"
    manifest = json.loads(fs.open_input_stream(f"{prefix}/manifest.json").read())
    assert manifest["inputs"]["discovered"] == 3 + len(uploaded)
    images = ds.dataset(f"{prefix}/tiers/images", filesystem=fs, format="parquet").to_table()
    (image,) = images["image"].to_pylist()
    assert image["bytes"] == photo_path("coffee.png").read_bytes()
    assert image["path"] == f"s3://{BUCKET}/raw/photos/coffee.png"
    tier = ds.dataset(f"{prefix}/tiers/default", filesystem=fs, format="parquet").to_table()
    assert tier.num_rows == manifest["tiers"]["default"]["clips"] == 3
    assert {s.rsplit("/", 1)[1] for s in tier["source"].to_pylist()} == {"pan.mp4", "shots.mp4"}
    for path in tier["clip_path"].to_pylist():
        info = fs.get_file_info(f"{prefix}/{path}")
        assert info.type == pafs.FileType.File and info.size > 1000
    rejects = ds.dataset(f"{prefix}/rejects", filesystem=fs, format="parquet").to_table()
    failed = {
        r["source"].rsplit("/", 1)[1]: r["reason"]
        for r in rejects.to_pylist()
        if r["clip_id"] is None
    }
    assert failed == uploaded
    analysis = ds.dataset(f"{prefix}/analysis", filesystem=fs, format="parquet")
    assert analysis.count_rows() >= 3
    # The journal lives in the bucket too, so a re-run from any machine continues the run.
    state = json.loads(fs.open_input_stream(f"{prefix}/journal/run.json").read())
    assert state["phase1"] is not None and state["finished_unix"]


def test_inspect_report_validate_read_the_bucket(
    s3, uploaded, s3_run, tmp_path, monkeypatch, capsys
):
    """``inspect``, ``report`` and ``validate`` read an ``s3://`` output in place."""
    env, fs = s3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    prefix = s3_run.removeprefix("s3://")
    manifest = Manifest.read(s3_run)
    analysis = ds.dataset(f"{prefix}/analysis", filesystem=fs, format="parquet").count_rows()

    assert main(["inspect", s3_run, "--json", "--tier", "default", "--sample", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == s3_run and summary["candidates"] == analysis
    assert summary["tiers"] == {
        "default": {"clips": 3, "hours": manifest.tiers["default"].hours, "media": "video"},
        "images": {"clips": 1, "hours": 0.0, "media": "image"},
    }
    assert summary["inputs"]["discovered"] == 3 + len(uploaded)
    assert summary["rejects"] == manifest.rejects and summary["schema_problems"] == []
    assert summary["selection"]["table"] == "tiers/default"
    assert len(summary["selection"]["samples"]) == 3
    assert main(["inspect", s3_run]) == 0
    text = capsys.readouterr().out
    assert f"output: {s3_run} ({analysis} candidate clips)" in text and "schema: ok" in text

    html = tmp_path / "report.html"
    assert main(["report", s3_run, "--html", str(html), "--examples", "4"]) == 0
    assert capsys.readouterr().out.strip() == f"report written to {html}"
    page = html.read_text()
    assert "<h1>curate report: run-1</h1>" in page and "tier default: 3 clips" in page
    # Without --html the report goes into the output, next to the tables.
    assert main(["report", s3_run]) == 0
    assert capsys.readouterr().out.strip() == f"report written to {s3_run}/report.html"
    stored = fs.open_input_stream(f"{prefix}/report.html").read().decode()
    assert "tier default: 3 clips" in stored
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"], "the bucket is read in place"

    assert main(["validate", s3_run]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{s3_run}: valid (schema, accounting, tiers and manifest agree)"
    )

    broken = f"{BUCKET}/curated/broken"
    pafs.copy_files(prefix, broken, source_filesystem=fs, destination_filesystem=fs)
    shard = Store(f"s3://{broken}").files("tiers/default")[0]
    fs.delete_file(f"{broken}/{shard}")
    assert main(["validate", f"s3://{broken}"]) == 1
    report = capsys.readouterr().out
    assert "tiers/default: no Parquet shards" in report
    assert f"accounting not checked: no Parquet shards in s3://{broken}/tiers/default" in report

    assert main(["validate", f"s3://{BUCKET}/curated/missing"]) == 2
    assert f"s3://{BUCKET}/curated/missing is not a folder" in capsys.readouterr().err
    assert main(["inspect", f"s3://{BUCKET}/raw"]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err

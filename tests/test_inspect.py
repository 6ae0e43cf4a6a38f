"""``curate inspect``: the --where parser, selections, samples, errors, and a 100,000-clip
output read through ``scripts/inspect_shards.py`` with only pyarrow importable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from curate.cli import main
from curate.contract import TIER
from curate.output.where import WhereError, parse_where
from curate.timing import nest, source_timing_lines, timing_lines
from scripts.common.synth import SYNTH_TIERS, synthetic_output


@pytest.fixture(scope="module")
def small_output(tmp_path_factory):
    return synthetic_output(tmp_path_factory.mktemp("small") / "out", 400, rows_per_file=150)


def test_where_filters_like_python():
    table = pa.table(
        {
            "sharpness": pa.array([10.0, 60.0, 30.0, None], pa.float32()),
            "orientation": ["portrait", "portrait", "landscape", "portrait"],
            "caption": [None, "a fox", None, "a cat"],
            "width": pa.array([640, 1280, 720, 640], pa.int32()),
        }
    )

    def rows(text):
        return table.filter(parse_where(text, table.schema))["sharpness"].to_pylist()

    assert rows("sharpness < 50") == [10.0, 30.0]
    assert rows("sharpness >= 30 and orientation = 'portrait'") == [60.0]
    assert rows('orientation != "portrait"') == [30.0]
    assert rows("orientation == portrait AND caption is not null") == [60.0, None]
    assert rows("caption is null and width <= 700") == [10.0]
    assert rows("sharpness > 1e1") == [60.0, 30.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sharpnes < 50", "unknown column 'sharpnes' (did you mean 'sharpness'?)"),
        ("sharpness < fifty", "sharpness is numeric"),
        ("sharpness < 50 or width > 3", "joined by `and`"),
        ("sharpness <", "expected `sharpness OP value`"),
        ("embedding = 1", "cannot compare column embedding"),
        ("sharpness < 50; import os", "cannot parse at ';"),
        ("__import__('os')", "cannot parse at"),
        ("   ", "--where is empty"),
    ],
)
def test_where_rejects_bad_filters(text, message):
    with pytest.raises(WhereError) as e:
        parse_where(text, TIER)
    assert message in str(e.value)


def test_inspect_selects_tier_where_and_samples(small_output, capsys):
    assert main(["inspect", str(small_output), "--json", "--sample", "4"]) == 0
    everything = json.loads(capsys.readouterr().out)
    manifest = json.loads((small_output / "manifest.json").read_text())
    assert everything["tiers"] == manifest["tiers"]
    assert everything["rejects"] == manifest["rejects"]
    assert everything["rejects_by_stage"] == {
        "dedup/duplicate": manifest["rejects"]["duplicate"],
        "probe/unreadable": 2,
        "tiers/blurry": manifest["rejects"]["blurry"],
    }
    assert everything["schema_problems"] == []
    selection = everything["selection"]
    assert selection["table"] == "analysis" and selection["rows"] == 400
    sharpness = pq.read_table(small_output / "analysis", columns=["sharpness"])["sharpness"]
    values = sorted(sharpness.to_pylist())
    stats = selection["scores"]["sharpness"]
    assert stats["count"] == 400 and stats["nulls"] == 0
    assert stats["min"] == pytest.approx(values[0], rel=1e-5)
    assert stats["max"] == pytest.approx(values[-1], rel=1e-5)
    assert values[180] <= stats["p50"] <= values[220]
    assert selection["scores"]["text_ratio"] == {
        "count": 0,
        "nulls": 400,
        **dict.fromkeys(["min", "p10", "p50", "p90", "max", "mean"]),
    }
    assert sum(selection["orientation"].values()) == 400
    assert len(selection["samples"]) == 4 and "caption" in selection["samples"][0]
    duplicates = everything["duplicates"]
    n = manifest["rejects"]["duplicate"]
    assert duplicates["clips"] == n and duplicates["by_method"] == {"embedding": n}
    analysis = {r["clip_id"]: r for r in pq.read_table(small_output / "analysis").to_pylist()}
    assert len(duplicates["pairs"]) == min(4, n)
    for pair in duplicates["pairs"]:
        assert analysis[pair["clip_id"]]["duplicate_of"] == pair["original"]["clip_id"]
        assert pair["duplicate_span"]["end_s"] > pair["duplicate_span"]["start_s"]

    strict = f"sharpness < {2 * SYNTH_TIERS['strict']} and orientation = portrait"
    args = ["inspect", str(small_output), "--tier", "strict", "--where", strict, "--json"]
    assert main([*args, "--sample", "50"]) == 0
    selection = json.loads(capsys.readouterr().out)["selection"]
    tier = pq.read_table(small_output / "tiers" / "strict").to_pylist()
    expected = [
        r
        for r in tier
        if r["sharpness"] < 2 * SYNTH_TIERS["strict"] and r["orientation"] == "portrait"
    ]
    assert selection["table"] == "tiers/strict" and selection["rows"] == len(expected) > 0
    assert selection["orientation"] == {"portrait": len(expected)}
    assert SYNTH_TIERS["strict"] <= selection["scores"]["sharpness"]["min"]
    assert selection["scores"]["sharpness"]["max"] < 2 * SYNTH_TIERS["strict"]
    samples = selection["samples"]
    assert len(samples) == min(50, len(expected))
    assert {s["clip_id"] for s in samples} <= {r["clip_id"] for r in expected}
    # Half the synthetic tier rows have a caption: both kinds show, nulls as null.
    assert {s["caption"] is None for s in samples} == {True, False}


def test_timing_table_shares_parts_and_shows_flat_entries():
    source = {
        "analyze.decode.wait_s": 2.0,
        "analyze.decode.frames": 500.0,
        "analyze.shots.update_s": 1.0,
        "analyze.shots.finish_s": 0.5,
        "analyze.shots.frames": 500.0,
        "analyze.transnetv2.network_s": 0.75,
        "analyze.transnetv2.frames": 200.0,
        "embed.busy_s": 0.5,
        "embed.clips": 2.0,
    }
    stages = nest(source)
    assert stages["analyze"]["parts"]["shots"] == {"update_s": 1.0, "finish_s": 0.5, "frames": 500}
    assert list(stages["embed"]) == ["busy_s", "clips"]
    stages["analyze"] = {"busy_s": 4.0, "frames": 500, **stages["analyze"]}
    # An entry that keeps its parts as flat seconds beside a shared count.
    stages["export"] = {"decode_s": 1.0, "encode_s": 4.5, "frames": 900, "clips": 3}
    rows = [re.split(r"\s{2,}", line.strip()) for line in timing_lines(stages)[1:]]
    assert rows == [
        ["part", "seconds", "share", "count", "rate"],
        ["analyze", "4.00", "40%", "500 frames", "125/s"],
        ["decode (waiting for frames)", "2.00", "20%", "500 frames"],  # waiting: no rate
        ["shots", "1.50", "15%", "500 frames", "333/s", "update 1.00, finish 0.50"],
        ["TransNetV2 network (own thread)", "0.75", "-", "200 frames", "267/s"],  # not shared
        ["other", "0.50", "5%"],
        ["embed", "0.50", "5%", "2 clips", "4/s"],
        ["export", "5.50", "55%", "900 frames", "164/s"],
        ["decode", "1.00", "10%", "900 frames", "900/s"],
        ["encode", "4.50", "45%", "900 frames", "200/s"],
    ]
    assert source_timing_lines(list(source.items()))[0].endswith("(one source): 4.0 s")
    assert timing_lines({}) == []


def test_inspect_text_prints_captions(small_output, capsys):
    assert main(["inspect", str(small_output), "--tier", "loose", "--sample", "6"]) == 0
    out = capsys.readouterr().out
    assert "caption: a synthetic clip of a grey square" in out
    assert "caption: (none)" in out
    assert "selection: tiers/loose" in out and "schema: ok" in out
    assert re.search(r"duplicates: \d+ \(embedding \d+\)", out)
    assert re.search(r"copies /\S+ \[[\d.]+-[\d.]+ s\]: embedding, similarity 0.97, its ", out)
    assert main(["inspect", str(small_output), "--sample", "0"]) == 0
    assert "samples:" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "sharpnes < 5"], "unknown column 'sharpnes'"),
        (["--where", "sharpness <"], "expected `sharpness OP value`"),
        (["--tier", "nope"], "no tier 'nope' in this run (tiers: loose, strict)"),
    ],
)
def test_inspect_bad_requests_exit_2(small_output, capsys, args, message):
    assert main(["inspect", str(small_output), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err


def test_inspect_on_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["inspect", str(tmp_path), "--sample", "-1"])
    assert e.value.code == 2


HEAVY_MODULES = ["ray", "yaml", "pydantic", "cv2", "av", "torch", "matplotlib", "stages"]
"""Modules the pyarrow-only inspect script must not need (an import of one fails)."""

PYARROW_ONLY = f"""
import contextlib, io, runpy, sys
for name in {HEAVY_MODULES!r}:
    sys.modules[name] = None
sys.argv = ["inspect_shards.py", *sys.argv[1:]]
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        runpy.run_path({str(ROOT / "scripts" / "inspect_shards.py")!r}, run_name="__main__")
    except SystemExit as e:
        code = e.code
print(out.getvalue())
# VmHWM, not ru_maxrss: the latter keeps the pre-exec peak of the forked test process.
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print("exit", code, "peak_rss_mb", int(status) // 1024)
"""


def test_inspect_100k_clips_reads_only_the_columns_it_needs(tmp_path, capsys):
    out = synthetic_output(tmp_path / "out", 100_000)
    started = time.perf_counter()
    assert main(["inspect", str(out), "--json", "--where", "sharpness < 50", "--sample", "5"]) == 0
    elapsed = time.perf_counter() - started
    selection = json.loads(capsys.readouterr().out)["selection"]
    sharpness = pq.read_table(out / "analysis", columns=["sharpness"])["sharpness"].to_numpy()
    assert selection["rows"] == int((sharpness < 50).sum()) and len(selection["samples"]) == 5
    print(f"inspect of 100,000 clips: {elapsed:.2f} s")
    assert elapsed < 30

    # The embeddings alone are 200 MB in memory (13 MB on disk, dictionary-encoded):
    # reading every column peaks near 700 MB, the needed columns stay near 250 MB.
    result = subprocess.run(
        [sys.executable, "-c", PYARROW_ONLY, str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text, status = result.stdout.rsplit("exit", 1)
    code, _, rss = status.split()
    assert code == "0", result.stdout
    summary = json.loads(text)
    assert summary["selection"]["rows"] == 100_000 and summary["schema_problems"] == []
    print(f"pyarrow-only inspect peak RSS: {rss} MB")
    assert int(rss) < 400

"""``curate.output.record.Manifest`` round-trips today's ``manifest.json`` exactly, reads older
ones, and says what is wrong with a damaged one."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import needs_shared

from curate.output.record import FunnelStage, InspectError, Manifest, Timing, Versions
from curate.storage import Store

TODAY = {
    "curate_version": "0.1.0",
    "created_unix": 1796136369.374024,
    "inputs": {"given": ["/videos/sample-videos"], "discovered": 2},
    "run": {"invocations": 1, "sources_done_before": 0},
    "embedding_model": "signature-v2",
    "funnel": {
        "discover": {"in": 2, "out": 2, "rejected": {}},
        "probe": {"in": 2, "out": 1, "rejected": {"too_short": 1}},
        "analyze": {"in": 1, "out": 3, "rejected": {}, "shots": 1, "frames": 1189},
        "tiers": {
            "in": 3,
            "out": 3,
            "rejected": {},
            "tiers": {"all_ok": 3, "good": 3},
            "thresholds": {
                "all_ok": {"min_short_side": 240, "min_sharpness": 10.0},
                "good": {"min_short_side": 360, "min_sharpness": 40.0, "max_motion": 1.0},
            },
        },
        "rebalance": {
            "in": 3,
            "out": 3,
            "rejected": {},
            "mode": "weight",
            "clusters_before": {"0": 3},
            "clusters_after": {"0": 3},
        },
    },
    "tiers": {
        "all_ok": {"clips": 3, "hours": 0.01067, "media": "video"},
        "good": {"clips": 3, "hours": 0.01067, "media": "video"},
        "photos": {"clips": 2, "hours": 0.0, "media": "image"},
    },
    "rejects": {"too_short": 1},
    "timing": {
        "phase1_probe_analyze_embed_s": 5.948,
        "phase2_tiers_s": 0.009,
        "total_s": 31.315,
        "stages": {"probe": {"busy_s": 0.483}},
    },
    "config": {
        "embed": {"dim": 512},
        "tiers": [
            {"name": "all_ok", "media": "video", "gates": {}},
            {"name": "good", "media": "video", "gates": {}},
            {"name": "photos", "media": "image", "gates": {}},
        ],
    },
    "versions": {"python": "3.11.7", "curate": "0.1.0", "opencv-python-headless": None},
    "signal_columns": {"sharpness": "float", "keyframes": "list<item: binary>"},
    "score_columns": ["duration_s", "sharpness", "sample_weight"],
    "video_only_columns": ["motion_score"],
}
"""A manifest as ``Run.write_manifest`` writes it today (config and columns cut short)."""


def text(data: dict) -> str:
    return json.dumps(data, indent=2)


def test_todays_manifest_round_trips_exactly():
    manifest = Manifest.from_json_dict(copy.deepcopy(TODAY))
    assert text(manifest.to_json_dict()) == text(TODAY)  # same keys, order and values
    assert manifest.tier_names == ["all_ok", "good", "photos"]
    assert manifest.tier_media("photos") == "image" and manifest.tiers["photos"].media == "image"
    assert manifest.funnel["analyze"].in_ == 1 and manifest.funnel["analyze"].get("shots") == 1
    assert manifest.thresholds["good"]["min_sharpness"] == 40.0
    assert manifest.tiers["good"].clips == 3 and manifest.embedding_dim == 512
    assert manifest.timing.total_s == 31.315 and manifest.versions.python == "3.11.7"


def test_keyword_construction_mirrors_the_json():
    """The writer's way: keywords named like the keys, sub-models as models or plain dicts."""
    built = Manifest(
        curate_version="0.1.0",
        created_unix=1796136369.374024,
        inputs={"given": ["/videos/sample-videos"], "discovered": 2},
        run={"invocations": 1, "sources_done_before": 0},
        embedding_model="signature-v2",
        funnel={
            **copy.deepcopy(TODAY["funnel"]),
            "discover": FunnelStage(in_=2, out=2),
        },
        tiers=copy.deepcopy(TODAY["tiers"]),
        rejects={"too_short": 1},
        timing=Timing(
            seconds={
                "phase1_probe_analyze_embed_s": 5.948,
                "phase2_tiers_s": 0.009,
                "total_s": 31.315,
            },
            stages={"probe": {"busy_s": 0.483}},
        ),
        config=copy.deepcopy(TODAY["config"]),
        versions=Versions(
            python="3.11.7", packages={"curate": "0.1.0", "opencv-python-headless": None}
        ),
        signal_columns=copy.deepcopy(TODAY["signal_columns"]),
        score_columns=list(TODAY["score_columns"]),
        video_only_columns=list(TODAY["video_only_columns"]),
    )
    assert built == Manifest.from_json_dict(TODAY)
    assert text(built.to_json_dict()) == text(TODAY)


def test_write_and_read_back(tmp_path):
    store = Store(tmp_path / "out")
    Manifest.from_json_dict(TODAY).write(store)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == TODAY
    assert Manifest.read(tmp_path / "out").to_json_dict() == TODAY
    assert Manifest.read(str(tmp_path / "out")) == Manifest.read(store)


def test_older_runs_read_with_defaults():
    old = {
        "inputs": {"given": ["/videos"], "discovered": 4},
        "funnel": {"probe": {"in": 4, "out": 4, "rejected": {}}},
        "tiers": {"default": {"clips": 2, "hours": 0.5}},
        "rejects": {},
        "timing": {"total_s": 3.0},
        "config": {"tiers": [{"name": "default"}]},
        "versions": {"python": "3.10.0"},
        "added_later": {"kept": True},
    }
    manifest = Manifest.from_json_dict(old)
    assert manifest.curate_version is None and manifest.created_unix is None
    assert manifest.embedding_model is None and manifest.embedding_dim is None
    assert (manifest.run.invocations, manifest.run.sources_done_before) == (1, 0)
    assert manifest.timing.stages == {} and manifest.timing.total_s == 3.0
    assert manifest.stage("dedup") == FunnelStage() and manifest.thresholds == {}
    assert manifest.extra == {"added_later": {"kept": True}}
    assert manifest.to_json_dict()["added_later"] == {"kept": True}
    # A run from before manifests recorded its signal columns is read with the columns that
    # version wrote, not with those of today's signals.
    assert [f.name for f in manifest.signal_fields][:3] == [
        "sharpness",
        "sharpness_start",
        "start_shift_s",
    ]
    assert "brightness" not in {f.name for f in manifest.signal_fields}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["inputs"].update(discovered="2"), "inputs.discovered: expected a whole"),
        (lambda m: m["tiers"]["good"].update(clips=2.5), "tiers.good.clips: expected a whole"),
        (lambda m: m["funnel"]["probe"]["rejected"].update(x=None), "funnel.probe.rejected.x"),
        (lambda m: m.update(timing={"total_s": "long"}), "timing.total_s: expected a number"),
        (lambda m: m["config"].pop("tiers"), "config.tiers: records no list of named tiers"),
        (lambda m: m.update(run=[]), "run: expected an object, got list"),
    ],
)
def test_damaged_manifest_is_a_readable_error(tmp_path, change, message):
    data = copy.deepcopy(TODAY)
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InspectError) as e:
        Manifest.read(tmp_path)
    assert str(e.value).startswith(f"cannot read {tmp_path}/manifest.json: ")
    assert message in str(e.value)


def test_missing_manifest_errors(tmp_path):
    with pytest.raises(InspectError, match="is not a folder"):
        Manifest.read(tmp_path / "nope")
    with pytest.raises(InspectError, match=r"holds no manifest\.json: not a finished curate run"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InspectError, match=r"cannot read .*manifest\.json: Expecting"):
        Manifest.read(tmp_path)


@needs_shared
def test_real_run_manifest_round_trips_byte_for_byte(shared_run):
    out, _, _ = shared_run
    written = (out / "manifest.json").read_text()
    again = json.dumps(Manifest.read(out).to_json_dict(), indent=2, default=str) + "\n"
    assert again == written

"""``curate validate`` passes sound outputs and names each kind of corruption."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import needs_shared

from curate.cli import main
from scripts.common.synth import synthetic_output


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return synthetic_output(tmp_path_factory.mktemp("pristine") / "out", 300)


def rewrite(folder, change) -> None:
    """Apply ``change`` to the first shard of ``folder`` in place."""
    path = sorted(folder.glob("part-*.parquet"))[0]
    pq.write_table(change(pq.read_table(path)), path)


def drop_first(table: pa.Table, mask=None) -> pa.Table:
    """``table`` without the first row (of those ``mask`` selects)."""
    rows = list(range(table.num_rows)) if mask is None else pc.indices_nonzero(mask).to_pylist()
    keep = [i for i in range(table.num_rows) if i != rows[0]]
    return table.take(keep)


def add_blurry_clip(out) -> None:
    analysis = pq.read_table(out / "analysis")
    blurry = analysis.filter(pc.is_null(analysis["tier"]))
    tier = pq.read_table(sorted((out / "tiers" / "loose").glob("*.parquet"))[0])
    extra = blurry.slice(0, 1)
    for name in ("clip_path", "video"):
        extra = extra.append_column(name, pa.nulls(1, tier.schema.field(name).type))
    rewrite(out / "tiers" / "loose", lambda t: pa.concat_tables([t, extra.select(t.column_names)]))


def drop_loose_only_clip(out) -> None:
    """Delete a clip that is in no stricter tier: now it is in no tier at all."""
    analysis = pq.read_table(out / "analysis", columns=["clip_id", "tier"])
    loose_only = analysis.filter(pc.equal(analysis["tier"], "loose"))["clip_id"]
    rewrite(out / "tiers" / "loose", lambda t: drop_first(t, pc.is_in(t["clip_id"], loose_only)))


def by_reason(reason):
    return lambda t: drop_first(t, pc.equal(t["reason"], reason))


def _blank_duplicate_evidence(t: pa.Table) -> pa.Table:
    for name in ("duplicate_method", "duplicate_span"):
        t = t.set_column(t.schema.get_field_index(name), name, pa.nulls(t.num_rows, t[name].type))
    return t


def _duplicate_cycle(t: pa.Table) -> pa.Table:
    """The first duplicate's original becomes a duplicate of it."""
    of = t["duplicate_of"].to_pylist()
    first = next(k for k, o in enumerate(of) if o is not None)
    ids = t["clip_id"].to_pylist()
    of[ids.index(of[first])] = ids[first]
    return t.set_column(t.schema.get_field_index("duplicate_of"), "duplicate_of", pa.array(of))


CORRUPTIONS = {
    "row deleted from loosest tier": (
        drop_loose_only_clip,
        [
            "tiers/loose: 1 clips passed its gates and have no reject but are missing",
            "1 analysis rows are in no tier and have no reject",
            "rows, but manifest.json records",
        ],
    ),
    "row deleted from strict tier": (
        # Still in the looser tier: the accounting invariant alone cannot see this.
        lambda out: rewrite(out / "tiers" / "strict", drop_first),
        ["tiers/strict: 1 clips passed its gates and have no reject but are missing"],
    ),
    "clip reject removed": (
        lambda out: rewrite(out / "rejects", by_reason("duplicate")),
        [
            "1 analysis rows are in no tier and have no reject",
            "rows with reason 'duplicate', but manifest.json records",
        ],
    ),
    "input reject removed": (
        lambda out: rewrite(out / "rejects", by_reason("unreadable")),
        ["inputs discovered but", "rows with reason 'unreadable', but manifest.json records 2"],
    ),
    "score column dropped": (
        lambda out: rewrite(out / "analysis", lambda t: t.drop_columns(["sharpness"])),
        ["analysis/part-00000.parquet: column 'sharpness' is missing"],
    ),
    "id column dropped": (
        lambda out: rewrite(out / "tiers" / "strict", lambda t: t.drop_columns(["clip_id"])),
        ["tiers/strict/part-00000.parquet: column 'clip_id' is missing", "not checked"],
    ),
    "column of the wrong type": (
        lambda out: rewrite(
            out / "analysis",
            lambda t: t.set_column(
                t.schema.get_field_index("cluster_id"),
                "cluster_id",
                t["cluster_id"].cast(pa.int64()),
            ),
        ),
        ["analysis/part-00000.parquet: column 'cluster_id' is int64, expected int32"],
    ),
    "rejected clip added to a tier": (
        add_blurry_clip,
        ["tiers/loose: 1 rows should not be there"],
    ),
    "reason outside the vocabulary": (
        lambda out: rewrite(
            out / "rejects",
            lambda t: t.set_column(
                t.schema.get_field_index("reason"),
                "reason",
                pc.replace_substring(t["reason"], "unreadable", "ugly"),
            ),
        ),
        ["reasons outside the vocabulary: ['ugly']"],
    ),
    "duplicate evidence lost": (
        lambda out: rewrite(out / "analysis", _blank_duplicate_evidence),
        [
            "duplicates have a duplicate_method outside ['embedding', 'frame-hash', 'verified']",
            "duplicates have a duplicate_span outside the two clips",
        ],
    ),
    "duplicate of a duplicate of itself": (
        lambda out: rewrite(out / "analysis", _duplicate_cycle),
        ["duplicates are in a duplicate_of chain that never reaches a kept clip"],
    ),
    "manifest removed": (
        lambda out: (out / "manifest.json").unlink(),
        ["holds no manifest.json"],
    ),
}


def test_sound_output_validates(pristine, capsys):
    assert main(["validate", str(pristine)]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corruption_is_named(pristine, tmp_path, capsys, kind):
    out = tmp_path / "out"
    shutil.copytree(pristine, out)
    corrupt, messages = CORRUPTIONS[kind]
    corrupt(out)
    assert main(["validate", str(out)]) == 1
    report = capsys.readouterr().out
    for message in messages:
        assert message in report, report


def test_validate_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


@needs_shared
def test_real_run_corruptions_are_named(shared_run, tmp_path, capsys):
    out, _, _ = shared_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("clips"))
    assert main(["validate", str(copy)]) == 0
    rewrite(copy / "tiers" / "default", drop_first)
    duplicates = json.loads((out / "manifest.json").read_text())["rejects"]["duplicate"]
    # The video clip's duplicate reject (the images beside the videos have theirs).

    def video_duplicate(t: pa.Table) -> pa.Table:
        videos = pc.invert(pc.match_substring_regex(t["source"], r"\.(png|jpg|webp)$"))
        return drop_first(t, pc.and_(pc.equal(t["reason"], "duplicate"), videos))

    rewrite(copy / "rejects", video_duplicate)
    assert main(["validate", str(copy)]) == 1
    report = capsys.readouterr().out
    # The duplicate lost its reject, so it too belongs in the tier now.
    assert "tiers/default: 2 clips passed its gates and have no reject but are missing" in report
    assert "2 analysis rows are in no tier and have no reject" in report
    assert f"rows with reason 'duplicate', but manifest.json records {duplicates}" in report

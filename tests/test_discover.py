from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config.sections import CurateConfig
from curate.inputs import InputError, discover
from curate.run.journal import fingerprint


@pytest.fixture
def tree(tmp_path):
    for rel in ["b/two.mp4", "a/one.MOV", "a/deep/three.webm", "a/notes.txt", "c.mkv"]:
        p = tmp_path / "videos" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return tmp_path


def test_folder_is_recursive_sorted_and_filtered_by_extension(tree):
    root = tree / "videos"
    assert discover([str(root)]) == [
        str(root / "a/deep/three.webm"),
        str(root / "a/one.MOV"),
        str(root / "b/two.mp4"),
        str(root / "c.mkv"),
    ]


def test_glob(tree):
    root = tree / "videos"
    assert discover([str(root / "**/*.mp4")]) == [str(root / "b/two.mp4")]


def test_input_lists_of_every_kind_resolve_relative_entries(tree):
    root = tree / "videos"
    entries = ["b/two.mp4", "c.mkv"]
    expected = [str(root / e) for e in entries]
    (root / "list.txt").write_text("# comment\n" + "\n".join(entries) + "\n\n")
    (root / "list.csv").write_text("path,label\n" + "\n".join(f"{e},x" for e in entries))
    (root / "list.jsonl").write_text("\n".join(json.dumps({"uri": e}) for e in entries))
    pq.write_table(pa.table({"path": entries}), root / "list.parquet")
    for name in ["list.txt", "list.csv", "list.jsonl", "list.parquet"]:
        assert discover([str(root / name)]) == expected, name


def test_input_list_without_path_column_fails(tree):
    bad = tree / "bad.csv"
    bad.write_text("file\nx.mp4\n")
    with pytest.raises(InputError, match="path"):
        discover([str(bad)])


def test_several_inputs_combine_in_order_without_duplicates(tree):
    root = tree / "videos"
    got = discover([str(root / "c.mkv"), str(root / "b"), str(root / "c.mkv")])
    assert got == [str(root / "c.mkv"), str(root / "b/two.mp4")]


def test_missing_input_fails(tmp_path):
    with pytest.raises(InputError, match="not found"):
        discover([str(tmp_path / "missing.mp4")])


def test_local_sources_are_absolute_whatever_the_working_directory(tree, monkeypatch):
    root = tree / "videos"
    (root / "list.txt").write_text("b/two.mp4\n../videos/c.mkv\n")
    monkeypatch.chdir(tree)
    got = discover(["videos/b", "./videos/a/one.MOV", "videos/*.mkv", "videos/list.txt"])
    assert got == [str(root / "b/two.mp4"), str(root / "a/one.MOV"), str(root / "c.mkv")]
    monkeypatch.chdir(root / "a")
    again = discover(["../b", "one.MOV", "../c.mkv"])
    assert again == got
    # The run journal fingerprints the sources: a resume from another folder continues the run.
    assert fingerprint(CurateConfig(), again) == fingerprint(CurateConfig(), got)


def test_symlinks_are_kept_not_resolved(tree):
    link = tree / "link"
    link.symlink_to(tree / "videos" / "b")
    assert discover([str(link)]) == [str(link / "two.mp4")]


def test_uris_stay_as_given(tree, monkeypatch):
    monkeypatch.chdir(tree)
    uri = (tree / "videos" / "c.mkv").as_uri()
    (tree / "list.txt").write_text(f"https://host/a.mp4\ns3://bucket/b.mp4\n{uri}\n")
    assert discover(["list.txt", uri]) == ["https://host/a.mp4", "s3://bucket/b.mp4", uri]

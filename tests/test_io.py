from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from curate.output.tables import ShardWriter, read_table

SCHEMA = pa.schema([pa.field("x", pa.int64())])


def test_rows_per_file_and_order(tmp_path):
    with ShardWriter(tmp_path / "t", SCHEMA, rows_per_file=4, compression="zstd") as w:
        for start in range(0, 10, 3):
            w.write(pa.table({"x": list(range(start, min(start + 3, 10)))}, schema=SCHEMA))
    files = sorted((tmp_path / "t").iterdir())
    assert [f.name for f in files] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert [pq.read_metadata(f).num_rows for f in files] == [4, 4, 2]
    assert pq.read_metadata(files[0]).row_group(0).column(0).compression == "ZSTD"
    assert read_table(tmp_path / "t")["x"].to_pylist() == list(range(10))


def test_empty_table_still_has_a_shard_with_the_schema(tmp_path):
    ShardWriter(tmp_path / "e", SCHEMA, rows_per_file=4, compression="zstd").close()
    table = read_table(tmp_path / "e")
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


def test_no_temporary_files_left(tmp_path):
    with ShardWriter(tmp_path / "t", SCHEMA, rows_per_file=1, compression="none") as w:
        w.write(pa.table({"x": [1, 2]}, schema=SCHEMA))
    assert not [p for p in (tmp_path / "t").iterdir() if p.name.startswith(".")]


def test_heavy_rows_close_shards_by_bytes(tmp_path):
    """100 rows of 100 kB: a 1 MB bound gives ~10-row shards, in order, whatever the batches."""
    heavy = pa.schema([pa.field("i", pa.int64()), pa.field("blob", pa.binary())])
    blob = b"\x01" * 100_000
    with ShardWriter(
        tmp_path / "h", heavy, rows_per_file=1000, compression="none", bytes_per_file=1_000_000
    ) as w:
        for start in range(0, 100, 7):
            ids = list(range(start, min(start + 7, 100)))
            w.write(pa.table({"i": ids, "blob": [blob] * len(ids)}, schema=heavy))
    files = sorted((tmp_path / "h").glob("part-*.parquet"))
    sizes = [pq.read_metadata(f).num_rows for f in files]
    assert sum(sizes) == 100 and max(sizes) <= 10 and len(files) >= 10
    assert read_table(tmp_path / "h", columns=["i"])["i"].to_pylist() == list(range(100))

"""The tables a run writes into its output folder, besides the journal: ``analysis`` columns
set after phase 1, the ``rejects`` of phase 2 and 3, the ``tiers/<name>`` shards and the
exported clip files they refer to."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import contract, schema
from curate.config.sections import OutputConfig, TierConfig
from curate.output.tables import ShardWriter, read_table
from curate.run import journal
from curate.run.exporting import export_key
from curate.schema import image_features
from curate.storage import Store


class Outputs:
    """Writers and rewriters of the tables in ``store`` (a run's output folder)."""

    def __init__(self, store: Store, cfg: OutputConfig, dim: int) -> None:
        self.store = store
        self.cfg = cfg
        self.dim = dim
        """Embedding width of this run's tables."""

    @property
    def analysis_schema(self) -> pa.Schema:
        return contract.analysis_schema(self.dim)

    def writer(self, folder: str, table_schema: pa.Schema, image: bool = False) -> ShardWriter:
        """A shard writer into ``folder``; ``image``: the table's ``image`` column is read
        by Hugging Face ``datasets`` as an ``Image()`` feature."""
        if image:
            table_schema = image_features(table_schema)
        return ShardWriter(
            self.store.sub(folder),
            table_schema,
            rows_per_file=self.cfg.rows_per_file,
            compression=self.cfg.compression,
            bytes_per_file=int(self.cfg.max_file_mb * 1e6),
        )

    def read(self, folder: str, columns: list[str] | None = None) -> pa.Table:
        return read_table(self.store.sub(folder), columns=columns)

    def read_index(self) -> pa.Table:
        """The scalar columns of every ``analysis`` row, in shard order (see
        :func:`contract.index_columns`); a column a run from an older version lacks is null."""
        wanted = pa.schema(
            [self.analysis_schema.field(c) for c in contract.index_columns(self.dim)]
        )
        stored = set(self.store.read_schema(self.store.files("analysis")[0]).names)
        table = self.read("analysis", columns=[c for c in wanted.names if c in stored])
        return schema.conform(table, wanted)

    def phase1_rejects(self) -> ShardWriter:
        """A fresh ``rejects`` writer holding the phase-1 rejects only, and no tiers: phase 2
        and 3 replace everything else they wrote."""
        if self.store.files(journal.PHASE1_REJECTS):
            # The journal's copy: ``rejects/`` may be half rewritten by a crashed invocation.
            kept = self.read(journal.PHASE1_REJECTS)
        else:  # a run from before the journal
            kept = self.read("rejects")
            kept = kept.filter(pc.is_in(kept["stage"], pa.array(schema.PHASE1_STAGES)))
        for folder in ("rejects", "tiers"):
            self.store.remove(folder)
        rejects = self.writer("rejects", schema.REJECTS)
        rejects.write(kept)
        return rejects

    def annotate_analysis(self, columns: dict[str, pa.Array]) -> None:
        """Set whole columns of ``analysis`` (aligned with its shards read in order)."""
        offset = 0
        for path in self.store.files("analysis"):
            # Conformed first: an analysis table written before a column existed gains it.
            shard = schema.conform(self.store.read_parquet(path), self.analysis_schema)
            for name, values in columns.items():
                part = values.slice(offset, shard.num_rows)
                shard = shard.set_column(shard.schema.get_field_index(name), name, part)
            shard = schema.conform(shard, self.analysis_schema)
            self.store.write_parquet(path, shard, self.cfg.compression)
            offset += shard.num_rows

    def write_tiers(
        self, tiers: list[TierConfig], ids: np.ndarray, keep: np.ndarray, exported: dict
    ) -> dict:
        """One folder per tier: its accepted rows of ``analysis`` (``keep[k]`` for tier k)
        with their media (``exported``: ``{(clip_id, export_key): (clip_path, bytes)}``);
        an image tier's rows hold the image (:data:`curate.schema.IMAGE`) and leave out the
        columns that say where in time a clip lies."""
        kept = [set(ids[k]) for k in keep]
        schemas = {
            "video": contract.tier_schema(self.dim),
            "image": contract.image_tier_schema(self.dim),
        }
        writers = [
            self.writer(f"tiers/{t.name}", schemas[t.media], image=t.media == "image")
            for t in tiers
        ]
        sizes = {t.name: {"clips": 0, "hours": 0.0} for t in tiers}
        for path in self.store.files("analysis"):
            shard = self.store.read_parquet(path)
            shard_ids = shard["clip_id"].to_pylist()
            for tier, members, writer in zip(tiers, kept, writers):
                rows = shard.filter(pa.array([c in members for c in shard_ids], pa.bool_()))
                if rows.num_rows == 0:
                    continue
                rows = _with_media(rows, tier, exported)
                writer.write(schema.conform(rows, schemas[tier.media]))
                sizes[tier.name]["clips"] += rows.num_rows
                sizes[tier.name]["hours"] += pc.sum(rows["duration_s"]).as_py() / 3600
        for writer in writers:
            writer.close()
        return {
            t.name: {
                "clips": sizes[t.name]["clips"],
                "hours": round(sizes[t.name]["hours"], 6),
                "media": t.media,
            }
            for t in tiers
        }

    def remove_stale_clips(self, exported: dict) -> None:
        """Delete exported clip files no tier refers to any more (after a re-tier)."""
        wanted = {path for path, _ in exported.values() if path}
        for path in self.store.walk("clips"):
            if path.endswith(".mp4") and path not in wanted:
                self.store.remove(path)


def _with_media(rows: pa.Table, tier: TierConfig, exported: dict) -> pa.Table:
    """A tier's rows labelled with its name, with ``clip_path`` and ``video`` of its export,
    or, in an image tier, the ``image`` (its bytes, unless exported by reference, and its
    source path)."""
    key = export_key(tier.export)
    media = [exported.get((c, key), (None, None)) for c in rows["clip_id"].to_pylist()]
    rows = rows.set_column(
        rows.schema.get_field_index("tier"),
        "tier",
        pa.array([tier.name] * rows.num_rows, pa.string()),
    )
    if tier.media == "image":
        images = [
            {"bytes": data, "path": source}
            for (_, data), source in zip(media, rows["source"].to_pylist())
        ]
        return rows.append_column("image", pa.array(images, schema.IMAGE))
    rows = rows.append_column("clip_path", pa.array([m[0] for m in media], pa.string()))
    return rows.append_column("video", pa.array([m[1] for m in media], pa.binary()))


def caption_columns(ids: np.ndarray, kept: np.ndarray, captions: dict[str, dict]) -> dict:
    """``caption``, ``prompt``, ``prompts`` and ``captioner`` of every analysis row: set for
    the clips that reach a tier, null for every other."""
    rows = [captions.get(c) if k else None for c, k in zip(ids, kept)]
    return {
        "caption": pa.array([r and r["caption"] for r in rows], pa.string()),
        "prompt": pa.array([r and r["prompt"] for r in rows], pa.string()),
        "prompts": pa.array([r and r["prompts"] for r in rows], pa.list_(pa.string())),
        "captioner": pa.array([r and r["captioner"] for r in rows], pa.string()),
    }

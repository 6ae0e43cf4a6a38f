"""Semantic dedup and re-balancing on embeddings with planted truth."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import schema
from curate.config.sections import CurateConfig, DedupConfig, RebalanceConfig
from curate.run.phase2 import Candidates, run_steps
from curate.signals.borders import SIDES as BORDER_SIDES
from curate.storage import Store
from stages.dedup import MATCHES, DedupStep, candidate_pairs, greedy_groups, rank_order
from stages.rebalance import RebalanceStep, rebalance

DIM = schema.EMBEDDING_DIM


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted(
    n_concepts=12,
    per_concept=(400, 120, 60, 30, 20, 15, 10, 10, 8, 8, 6, 5),
    dup_groups=60,
    copies=2,
    seed=0,
):
    """Skewed concept clusters plus groups of near-copies of random clips (other sources)."""
    rng = np.random.default_rng(seed)
    centers = unit(rng.normal(size=(n_concepts, DIM)))
    x, concept = [], []
    for c, size in enumerate(per_concept[:n_concepts]):
        x.append(unit(centers[c] + rng.normal(scale=0.06, size=(size, DIM))))
        concept += [c] * size
    x, concept = np.concatenate(x), np.array(concept)
    n = len(x)
    originals = rng.choice(n, dup_groups, replace=False)
    groups = {}
    for g, o in enumerate(originals):
        copies_x = unit(x[o] + rng.normal(scale=0.005, size=(copies, DIM)))
        groups[g] = [int(o), *range(len(x), len(x) + copies)]
        x = np.concatenate([x, copies_x])
        concept = np.concatenate([concept, [concept[o]] * copies])
    ids = [f"clip{i:06d}" for i in range(len(x))]
    table = pa.table(
        {
            "clip_id": ids,
            "source": [f"video{i:06d}.mp4" for i in range(len(x))],
            "media": ["video"] * len(x),
            "tier": ["default"] * len(x),
            "sharpness": rng.uniform(10, 500, len(x)).astype(np.float32),
            "width": np.full(len(x), 1280, np.int32),
            "height": np.full(len(x), 720, np.int32),
            **{f"border_{side}": np.zeros(len(x), np.float32) for side in BORDER_SIDES},
            "duration_s": np.full(len(x), 8.0),
            "motion_score": np.full(len(x), 0.1, np.float32),
            "orientation": ["landscape"] * len(x),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM),
        }
    )
    truth = {frozenset((ids[a], ids[b])) for g in groups.values() for a in g for b in g if a < b}
    return table, x, concept, truth


def found_pairs(ids: list[str], result) -> set:
    of = result.columns["duplicate_of"].to_pylist()
    return {frozenset((ids[k], o)) for k, o in enumerate(of) if o is not None}


def match(clip: str, original: str, contained: bool) -> dict:
    span = {"start_s": 0.0, "end_s": 4.0, "of_start_s": 0.0, "of_end_s": 4.0}
    return {
        "clip_id": clip,
        "original": original,
        "method": "frame-hash",
        "similarity": 0.9,
        "span": span,
        "detail": "",
        "contained": contained,
    }


def test_greedy_keeps_the_best_member_and_chains_only_whole_copies():
    # b copies a, c copies b but not a: c survives b's removal when its copy of b is partial
    # (c holds footage b's original lacks), and goes when both are whole copies.
    rank = {"a": 0, "b": 1, "c": 2}
    partial = pa.Table.from_pylist([match("b", "a", True), match("c", "b", False)], MATCHES)
    assert set(greedy_groups(partial, rank)) == {"b"}
    whole = pa.Table.from_pylist([match("b", "a", True), match("c", "b", True)], MATCHES)
    assert {k: m["original"] for k, m in greedy_groups(whole, rank).items()} == {
        "b": "a",
        "c": "b",
    }
    # A clip copying two kept clips is the duplicate of the better-ranked one.
    both = pa.Table.from_pylist([match("c", "b", False), match("c", "a", False)], MATCHES)
    assert greedy_groups(both, rank)["c"]["original"] == "a"


def test_candidates_are_the_nearest_clips_of_other_sources():
    x = unit(np.eye(DIM)[:4] + 0.9 * np.eye(DIM)[4])  # every pair at cosine ~0.45
    cfg = DedupConfig(candidate_threshold=0.4, max_candidates=2)
    pairs = candidate_pairs(x, ["s1", "s2", "s3", "s4"], cfg)
    assert all(i < j and cos == pytest.approx(0.81 / 1.81, abs=1e-3) for i, j, cos in pairs)
    per_clip = np.bincount([k for i, j, _ in pairs for k in (i, j)], minlength=4)
    assert per_clip.min() >= 2
    # Clips of one source are never each other's candidates unless asked.
    assert candidate_pairs(x[:2], ["s", "s"], cfg) == []
    same = cfg.model_copy(update={"same_source": True})
    assert [p[:2] for p in candidate_pairs(x[:2], ["s", "s"], same)] == [(0, 1)]
    assert (
        candidate_pairs(
            x, ["s1", "s2", "s3", "s4"], cfg.model_copy(update={"candidate_threshold": 0.5})
        )
        == []
    )


def test_rank_order_prefers_strict_tier_then_sharpness():
    t = pa.table(
        {
            "clip_id": ["a", "b", "c"],
            "tier": ["loose", "strict", "loose"],
            "sharpness": [50.0, 10.0, 90.0],
            "width": [1, 1, 1],
            "height": [1, 1, 1],
            "duration_s": [1.0, 1.0, 1.0],
            "motion_score": [0.0, 0.0, 0.0],
        }
    )
    order = rank_order(t, ["tier", "sharpness"], ["loose", "strict"])
    assert [t["clip_id"][i].as_py() for i in order] == ["b", "c", "a"]


@pytest.mark.parametrize("max_cluster_size", [20_000, 150])
def test_distributed_dedup_recovers_planted_duplicates(ray_local, tmp_path, max_cluster_size):
    table, _, _, truth = planted()
    pq.write_table(table, tmp_path / "part-00000.parquet")
    config = CurateConfig.model_validate(
        {
            "dedup": {
                "threshold": 0.95,
                "max_cluster_size": max_cluster_size,
                "kmeans": {"k": 4, "min_cluster_size": 100},
            }
        }
    )
    index = table.drop_columns(["embedding"])
    index = index.append_column("start_s", pa.array(np.zeros(table.num_rows)))
    index = index.append_column("end_s", pa.array(np.full(table.num_rows, 8.0)))
    clips = Candidates(index, np.ones(table.num_rows, bool), Store(tmp_path), in_memory=False)
    result = DedupStep.from_config(config).run(clips)
    pairs = found_pairs(index["clip_id"].to_pylist(), result)
    recall = len(pairs & truth) / 120  # 60 groups x 2 copies each lose one pair to the keeper
    precision = len(pairs & truth) / max(1, len(pairs))
    assert precision == 1.0
    assert recall >= 0.9, (recall, max_cluster_size)
    # Each group keeps exactly one member, the sharpest, and says why the others went.
    sharp = dict(zip(table["clip_id"].to_pylist(), table["sharpness"].to_pylist()))
    columns = {k: v.to_pylist() for k, v in result.columns.items()}
    ids = index["clip_id"].to_pylist()
    for k, kept in enumerate(columns["duplicate_of"]):
        if kept is None:
            assert columns["duplicate_method"][k] is None
            continue
        assert sharp[kept] >= sharp[ids[k]]
        assert columns["duplicate_method"][k] == "embedding"
        assert columns["duplicate_similarity"][k] >= 0.95
        assert columns["duplicate_span"][k] == {
            "start_s": 0.0,
            "end_s": 8.0,
            "of_start_s": 0.0,
            "of_end_s": 8.0,
        }
    assert not set(columns["duplicate_of"]) & {
        ids[k] for k, o in enumerate(columns["duplicate_of"]) if o
    }


def _rebalance_input(concept):
    n = len(concept)
    table = pa.table(
        {
            "clip_id": [f"c{i:05d}" for i in range(n)],
            "source": [f"v{i % 50}" for i in range(n)],
            "tier": ["t"] * n,
            "sharpness": np.linspace(1, 100, n),
            "width": [1280] * n,
            "height": [720 if i % 4 else 1280 for i in range(n)],
            "duration_s": [5.0] * n,
            "motion_score": [0.1] * n,
            "orientation": ["landscape" if i % 4 else "portrait" for i in range(n)],
        }
    )
    return table


def test_cap_shrinks_the_largest_cluster(capsys):
    _, _, concept, _ = planted(dup_groups=0)
    table = _rebalance_input(concept)
    cfg = RebalanceConfig(mode="cap", cap=100)
    result = rebalance(table, concept.astype(np.int32), cfg, ["sharpness"], ["t"])
    report = result.report
    print("cluster sizes before:", report["clusters_before"])
    print("cluster sizes after: ", report["clusters_after"])
    assert max(report["clusters_after"].values()) == 100
    assert report["largest_share_before"] == pytest.approx(400 / len(concept))
    assert report["largest_share_after"] < report["largest_share_before"] / 2
    assert len(result.dropped) == 300 + 20  # 400 -> 100, 120 -> 100
    # The best-ranked (sharpest) members stay.
    dropped = np.array(sorted(result.dropped))
    assert table["sharpness"].to_numpy()[dropped].max() < table["sharpness"].to_numpy().max()


def test_cap_quantile_and_weight_mode_and_per_source_cap():
    _, _, concept, _ = planted(dup_groups=0)
    table = _rebalance_input(concept)
    labels = concept.astype(np.int32)
    q = rebalance(table, labels, RebalanceConfig(mode="cap", cap=None, cap_quantile=0.5), [], ["t"])
    assert q.report["cap"] == int(
        np.ceil(np.quantile([400, 120, 60, 30, 20, 15, 10, 10, 8, 8, 6, 5], 0.5))
    )
    w = rebalance(table, labels, RebalanceConfig(mode="weight", weight_power=1.0), [], ["t"])
    assert not w.dropped and w.weights.mean() == pytest.approx(1.0, rel=1e-5)
    assert w.weights[labels == 11].mean() / w.weights[labels == 0].mean() == pytest.approx(
        80, rel=1e-3
    )
    s = rebalance(table, labels, RebalanceConfig(mode="weight", per_source_cap=5), [], ["t"])
    kept = np.ones(len(labels), bool)
    kept[list(s.dropped)] = False
    _, counts = np.unique(np.array(table["source"].to_pylist())[kept], return_counts=True)
    assert counts.max() == 5


def test_orientation_mix_is_a_best_effort_cap():
    _, _, concept, _ = planted(dup_groups=0)
    table = _rebalance_input(concept)  # 75 % landscape
    cfg = RebalanceConfig.model_validate(
        {"mode": "weight", "orientation": {"landscape": 0.6, "max_drop_fraction": 0.5}}
    )
    result = rebalance(table, concept.astype(np.int32), cfg, [], ["t"])
    mix = result.report["orientation_mix"]
    assert mix["landscape_share"] == pytest.approx(0.6, abs=0.01)
    strict = RebalanceConfig.model_validate(
        {"mode": "weight", "orientation": {"landscape": 0.6, "max_drop_fraction": 0.1}}
    )
    capped = rebalance(table, concept.astype(np.int32), strict, [], ["t"])
    assert 0.6 < capped.report["orientation_mix"]["landscape_share"] < 0.75


def test_small_tables_are_handled_in_the_driver_as_ray_data_would(ray_local, tmp_path):
    """Dedup and re-balancing give the same result over the table read into the driver
    (``ray.driver_max_clips``) as over Ray Data reads of the shards."""
    table, _, _, _ = planted(per_concept=(60, 30, 20, 10), n_concepts=4, dup_groups=10)
    pq.write_table(table, tmp_path / "part-00000.parquet")
    config = CurateConfig.model_validate(
        {
            "dedup": {"threshold": 0.95, "kmeans": {"k": 3, "min_cluster_size": 10}},
            "rebalance": {"kmeans": {"k": 4, "min_cluster_size": 5}},
        }
    )
    starts = pa.array(np.zeros(table.num_rows))
    index = table.drop_columns(["embedding"]).append_column("start_s", starts)
    index = index.append_column("end_s", pa.array(np.full(table.num_rows, 8.0)))
    results = {}
    for in_memory in (True, False):
        clips = Candidates(index, np.ones(table.num_rows, bool), Store(tmp_path), in_memory)
        results[in_memory] = run_steps(
            [DedupStep.from_config(config), RebalanceStep.from_config(config)], clips
        )
    driver, distributed = results[True], results[False]
    assert (driver.kept == distributed.kept).all()
    assert driver.rejects == distributed.rejects and driver.funnel == distributed.funnel
    assert driver.columns.keys() == distributed.columns.keys()
    for name, column in driver.columns.items():
        other = distributed.columns[name]
        if pa.types.is_floating(column.type):
            # Similarities are float32 dot products taken in batches of other shapes: they
            # agree to the last bit or two, not exactly.
            assert column.is_null().equals(other.is_null()), name
            assert np.allclose(
                column.fill_null(0).to_numpy(), other.fill_null(0).to_numpy(), rtol=1e-5
            ), name
        else:
            assert column.equals(other), name
    assert driver.funnel["dedup"]["rejected"]["duplicate"] >= 10


def test_one_centroid_is_the_mean_as_kmeans_finds_it():
    from sklearn.cluster import KMeans

    from curate.config.sections import KMeansConfig
    from curate.run.clustering import fit_centroids

    x = unit(np.random.default_rng(3).normal(size=(15, DIM)))
    cfg = KMeansConfig(k=32, min_cluster_size=10)
    (centroid,) = fit_centroids(x, len(x), cfg, seed=0)
    reference = KMeans(n_clusters=1, n_init=1, random_state=0).fit(x).cluster_centers_[0]
    np.testing.assert_allclose(centroid, unit(reference), atol=1e-6)


def test_kmeans_is_imported_in_the_background_while_phase_1_runs():
    # A fresh interpreter: scikit-learn is not imported until preload_kmeans asks for it.
    code = (
        "import sys\n"
        "from curate.run.clustering import preload_kmeans\n"
        "assert 'sklearn' not in sys.modules\n"
        "preload_kmeans().join(60)\n"
        "print(hasattr(sys.modules.get('sklearn.cluster'), 'KMeans'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_boundary_clips_are_compared_in_both_clusters():
    from curate.run.clustering import AssignClusters

    centroids = unit(np.eye(DIM)[:2])
    x = unit(np.stack([np.eye(DIM)[0], np.eye(DIM)[0] + 0.99 * np.eye(DIM)[1]]))
    table = pa.table(
        {
            "clip_id": ["a", "b"],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM),
        }
    )
    plain = AssignClusters(centroids, "c")(table)
    assert plain["c"].to_pylist() == [0, 0]
    both = AssignClusters(centroids, "c", margin=0.01)(table)
    assert list(zip(both["clip_id"].to_pylist(), both["c"].to_pylist())) == [
        ("a", 0),
        ("b", 0),
        ("b", 1),
    ]

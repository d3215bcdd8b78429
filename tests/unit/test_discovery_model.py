"""Discovery model: known answers on planted clusters (choosing k, recovering the archetypes of
synthetic_profiles), chunked assignment and its memory bound, the k range, stable ids across
runs, and the explanations."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import adjusted_rand_score

from devstack.synthetic_profiles import ARCHETYPES, synthetic_profiles
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.discovery import model
from shared.discovery.features import DiscoveryConfig, DiscoveryError, Transform, build_matrix, parse_config
from shared.schema import table_specs
from shared.sql import load_sql, parameter_names

# --- planted data ---------------------------------------------------------------------------------


def blobs(seed: int = 0, sizes: Sequence[int] = (300,) * 4, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs in a d-dimensional scaled space: centres 6 apart on the axes, spread 0.5."""
    rng = np.random.default_rng(seed)
    centres = 6.0 * np.eye(d)[: len(sizes)] - 1.5
    points = np.vstack([c + rng.normal(0.0, 0.5, (size, d)) for c, size in zip(centres, sizes, strict=True)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(truth))
    return points[order].astype(np.float32), truth[order]


def in_scope_features(n: int, seed: int = 7) -> tuple[pa.Table, np.ndarray]:
    """synthetic_profiles(n) read back through sql/discovery/features.sql with the default scope,
    and the planted archetype of each row read."""
    profiles, truth = synthetic_profiles(n, seed)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    warehouse.append_arrow("refined.profiles", profiles)
    sql = load_sql("discovery/features")
    params = {"site_id": None, "active_days": DiscoveryConfig().active_days}
    table = warehouse.query_arrow(sql, {key: params[key] for key in parameter_names(sql)})
    warehouse.close()
    rows = np.asarray([int(c[1:]) for c in table.column("customer_id").to_pylist()])
    return table, truth[rows]


@pytest.fixture(scope="module")
def profiles_20k() -> tuple[pa.Table, np.ndarray]:
    return in_scope_features(20_000)


@pytest.fixture(scope="module")
def profiles_5k() -> tuple[pa.Table, np.ndarray]:
    return in_scope_features(5_000)


def fitted_labels(matrix: np.ndarray, config: DiscoveryConfig) -> tuple[model.Fit, np.ndarray]:
    result = model.fit(matrix, config)
    labels, _ = model.assign(matrix, result.centers)
    return result, labels


# --- fit: known answers ---------------------------------------------------------------------------


def test_automatic_k_finds_four_planted_blobs() -> None:
    points, truth = blobs()
    result, labels = fitted_labels(points, DiscoveryConfig())
    assert result.algorithm == "kmeans"
    assert [c.k for c in result.candidates] == list(range(2, 9))
    assert result.k == 4 and max(result.candidates, key=lambda c: c.silhouette).k == 4
    assert result.silhouette == max(c.silhouette for c in result.candidates)
    # Blobs 8.5 apart with spread 0.5 are separable without error: ARI is 1.0 in practice. 0.95 still
    # allows a few boundary points, while merging two of the four blobs would score about 0.7.
    assert adjusted_rand_score(truth, labels) >= 0.95


def test_configured_k_recovers_the_synthetic_archetypes(profiles_20k: tuple[pa.Table, np.ndarray]) -> None:
    table, truth = profiles_20k
    config = parse_config({"k": len(ARCHETYPES)})
    matrix, _ = build_matrix(table, config)
    result, labels = fitted_labels(matrix, config)
    assert result.algorithm == "kmeans" and result.k == 5 and [c.k for c in result.candidates] == [5]
    # Measured 0.948 with the default seed (0.994 at the global optimum, reached by most seeds). A fit
    # stuck in a local optimum that merges two archetypes scores 0.80-0.89, so 0.90 tells them apart.
    assert adjusted_rand_score(truth, labels) >= 0.90


def test_minibatch_kmeans_above_the_threshold(profiles_20k: tuple[pa.Table, np.ndarray]) -> None:
    table, truth = profiles_20k
    config = parse_config({"k": 5, "minibatch_threshold": 1_000, "train_size": 5_000})
    matrix, _ = build_matrix(table, config)
    result, labels = fitted_labels(matrix, config)
    assert result.algorithm == "minibatch" and result.k == 5
    assert result.centers.shape == (5, matrix.shape[1]) and result.centers.dtype == np.float32
    # Measured 0.994 (trained on 5,000 rows, then refined on all 19,400); same bound as KMeans above.
    assert adjusted_rand_score(truth, labels) >= 0.90


def test_candidates_are_scored_on_a_bounded_sample() -> None:
    points, _ = blobs(sizes=(400,) * 4)
    config = DiscoveryConfig(k_max=5, sample_size=500, train_size=1_000)
    result = model.fit(points, config)
    assert len(result.sample) == 500 and np.all(np.diff(result.sample) > 0)  # sorted, no repeats
    assert [c.k for c in result.candidates] == [2, 3, 4, 5] and result.k == 4
    assert all(-1.0 <= c.silhouette <= 1.0 and c.inertia > 0 for c in result.candidates)


# --- assign -------------------------------------------------------------------------------------


def test_chunked_assignment_equals_unchunked_and_direct_distances() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(1_003, 5)).astype(np.float32)
    centers = rng.normal(size=(6, 5)).astype(np.float32)
    labels, distances = model.assign(matrix, centers, chunk=7)
    whole_labels, whole_distances = model.assign(matrix, centers, chunk=10**9)
    assert labels.dtype == np.int32 and distances.dtype == np.float32
    assert np.array_equal(labels, whole_labels) and np.array_equal(distances, whole_distances)
    direct = np.linalg.norm(matrix[:, None, :].astype(np.float64) - centers[None, :, :], axis=2)
    assert np.array_equal(labels, direct.argmin(axis=1))
    np.testing.assert_allclose(distances, direct.min(axis=1), atol=1e-5)


def test_assignment_memory_is_bounded_by_the_chunk() -> None:
    rng = np.random.default_rng(2)
    n, k = 200_000, 8
    matrix = rng.normal(size=(n, 20)).astype(np.float32)
    centers = rng.normal(size=(k, 20)).astype(np.float32)
    full_distance_matrix = n * k * 8  # 12.8 MB: the n × k float64 distances an unchunked approach holds

    def peak(chunk: int) -> int:
        tracemalloc.start()
        try:
            model.assign(matrix, centers, chunk=chunk)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    chunked, whole = peak(4_096), peak(n)
    # Chunked: the two n-long outputs (1.6 MB) plus 4,096 × 8 floats: measured 1.9 MB.
    assert chunked < full_distance_matrix / 4, (chunked, full_distance_matrix)
    # The same call in one chunk holds n × k distances and row indices: measured 12 MB. The bound
    # above is not loose enough to pass an unchunked implementation.
    assert whole > full_distance_matrix / 2 > chunked * 3, (whole, chunked)


# --- k_range ------------------------------------------------------------------------------------


def test_too_few_customers_for_the_configured_k() -> None:
    with pytest.raises(DiscoveryError) as raised:
        model.k_range(20, 20, DiscoveryConfig(k=5))
    assert str(raised.value) == (
        "too few customers for k=5: 20 customers (20 distinct profiles) allow at most k=4 with min_cluster_size 5"
    )
    assert model.k_range(20, 20, DiscoveryConfig(k=4)) == [4]


def test_too_few_distinct_profiles_for_the_configured_k() -> None:
    rows = np.repeat(np.eye(3, dtype=np.float32), 100, axis=0)  # 300 customers, 3 distinct profiles
    with pytest.raises(DiscoveryError, match=r"^too few customers for k=5: 300 customers \(3 distinct profiles\)"):
        model.fit(rows, DiscoveryConfig(k=5))


def test_too_few_customers_for_k_min() -> None:
    with pytest.raises(DiscoveryError) as raised:
        model.k_range(9, 9, DiscoveryConfig(k_min=2))
    assert str(raised.value) == (
        "too few customers for k_min=2: 9 customers (9 distinct profiles) allow at most k=1 with min_cluster_size 5"
    )


def test_the_automatic_range_is_capped_by_the_audience() -> None:
    assert model.k_range(1_000, 1_000, DiscoveryConfig()) == list(range(2, 9))
    assert model.k_range(23, 23, DiscoveryConfig()) == [2, 3, 4]  # 23 // min_cluster_size 5
    assert model.k_range(23, 23, DiscoveryConfig(min_cluster_size=2)) == list(range(2, 9))
    assert model.k_range(1_000, 3, DiscoveryConfig()) == [2, 3]  # 3 distinct profiles
    assert model.k_range(1_000, 1_000, DiscoveryConfig(k_min=4, k_max=6)) == [4, 5, 6]


# --- match_ids ----------------------------------------------------------------------------------


def previous_basis(result: model.Fit, labels: np.ndarray, ids: Sequence[int], transform: Transform) -> dict[str, Any]:
    """The previous run as the service hands it to match_ids (from its results document)."""
    sizes = np.bincount(labels, minlength=result.k).tolist()
    explained = model.explain(result.centers, sizes, ids, transform)
    return {
        "columns": transform.columns,
        "clusters": [{"id": c["id"], "centroid": c["centroid_transformed"]} for c in explained],
    }


def majority(ids: np.ndarray, truth: np.ndarray) -> dict[int, int]:
    """The planted archetype most of each id's members come from."""
    return {int(i): Counter(truth[ids == i].tolist()).most_common(1)[0][0] for i in np.unique(ids)}


def test_ids_follow_the_planted_clusters_across_runs(profiles_5k: tuple[pa.Table, np.ndarray]) -> None:
    table, truth = profiles_5k
    first_config = parse_config({"k": 5})
    matrix, transform = build_matrix(table, first_config)
    first, labels = fitted_labels(matrix, first_config)
    sizes = np.bincount(labels, minlength=5).tolist()
    match = model.match_ids(first.centers, sizes, transform, None)
    first_ids = np.asarray(match.ids)[labels]

    # The next run: the same customers in another order, another seed, a transform of its own.
    order = np.random.default_rng(11).permutation(table.num_rows)
    second_config = parse_config({"k": 5, "seed": 7})
    shuffled, shuffled_transform = build_matrix(table.take(order), second_config)
    second, second_labels = fitted_labels(shuffled, second_config)
    second_sizes = np.bincount(second_labels, minlength=5).tolist()
    previous = previous_basis(first, labels, match.ids, transform)
    again = model.match_ids(second.centers, second_sizes, shuffled_transform, previous)
    second_ids = np.empty_like(first_ids)
    second_ids[order] = np.asarray(again.ids)[second_labels]

    assert sorted(again.ids) == [1, 2, 3, 4, 5] and again.previous == again.ids
    assert all(d is not None and d < 0.5 for d in again.distances)
    assert len(set(majority(first_ids, truth).values())) == 5  # one archetype per id
    assert majority(second_ids, truth) == majority(first_ids, truth)
    assert np.mean(second_ids == first_ids) >= 0.98


def test_without_a_previous_run_ids_go_by_size() -> None:
    sizes = [50, 400, 10, 200]
    centers = np.zeros((4, 6), dtype=np.float32)
    transform = plain_transform(6)
    match = model.match_ids(centers, sizes, transform, None)
    assert match.ids == [3, 1, 4, 2] and match.previous == [None] * 4 and match.distances == [None] * 4
    assert model.match_ids(centers, sizes, transform, {"columns": [], "clusters": []}).ids == [3, 1, 4, 2]
    assert model.match_ids(centers, [5, 5, 5, 5], transform, None).ids == [1, 2, 3, 4]  # ties: centre order


def plain_transform(d: int) -> Transform:
    """A transform that leaves the scaled space as is (mean 0, std 1, weight 1)."""
    return Transform(
        columns=[f"c{j}" for j in range(d)],
        sources=["age"] * d,
        mean=[0.0] * d,
        std=[1.0] * d,
        weight=[1.0] * d,
    )


def test_new_clusters_get_ids_neither_run_used() -> None:
    # Six planted segments today; the previous run saw only the first three (ids 1, 2 and 4: an
    # earlier run retired 3).
    points, truth = blobs(sizes=(300, 300, 300, 250, 150, 100))
    transform = plain_transform(6)
    then = truth < 3
    old, old_labels = fitted_labels(points[then], parse_config({"k": 3}))
    old_ids = [1, 2, 4]
    previous = previous_basis(old, old_labels, old_ids, transform)
    old_blobs = majority(np.asarray(old_ids)[old_labels], truth[then])
    assert sorted(old_blobs.values()) == [0, 1, 2]

    grown, labels = fitted_labels(points, parse_config({"k": 6}))
    assert adjusted_rand_score(truth, labels) >= 0.95
    sizes = np.bincount(labels, minlength=6).tolist()
    match = model.match_ids(grown.centers, sizes, transform, previous)
    assert sorted(match.ids) == [1, 2, 3, 4, 5, 6]
    new = [r for r in range(6) if match.previous[r] is None]
    assert len(new) == 3 and all(match.distances[r] is None for r in new)
    assert sorted(match.previous[r] or 0 for r in range(6) if r not in new) == old_ids
    blobs_now = majority(np.asarray(match.ids)[labels], truth)
    for old_id in old_ids:
        assert blobs_now[old_id] == old_blobs[old_id]  # each old id stays with its segment
    # The new segments (250, 150 and 100 customers) take the smallest unused ids, biggest first.
    assert (blobs_now[3], blobs_now[5], blobs_now[6]) == (3, 4, 5)


def test_matching_uses_columns_by_name() -> None:
    points, _ = blobs()
    transform = plain_transform(6)
    result, labels = fitted_labels(points, parse_config({"k": 4}))
    sizes = np.bincount(labels, minlength=4).tolist()
    previous = previous_basis(result, labels, [7, 8, 9, 10], transform)
    # The previous run listed its columns in another order, and had one that is gone today.
    order = [5, 3, 1, 0, 2, 4]
    reordered = {
        "columns": [previous["columns"][j] for j in order] + ["gone"],
        "clusters": [
            {"id": c["id"], "centroid": [c["centroid"][j] for j in order] + [99.0]} for c in previous["clusters"]
        ],
    }
    assert model.match_ids(result.centers, sizes, transform, reordered).ids == [7, 8, 9, 10]
    nothing_shared = {"columns": ["other"], "clusters": [{"id": 3, "centroid": [1.0]}]}
    assert model.match_ids(result.centers, sizes, transform, nothing_shared).previous == [None] * 4


# --- explain -------------------------------------------------------------------------------------

VIP_REVENUE = 500_000.0


def planted_shop(per_group: int = 300, seed: int = 4) -> tuple[pa.Table, np.ndarray]:
    """Three groups: high spend on mobile in Seoul, middling on desktop in Busan, low on tablets in Daegu."""
    rng = np.random.default_rng(seed)
    groups = [(VIP_REVENUE, "mobile", "Seoul"), (20_000.0, "desktop", "Busan"), (1_000.0, "tablet", "Daegu")]
    rvn: list[float] = []
    device: list[str] = []
    region: list[str] = []
    for typical, dev, reg in groups:
        rvn += (typical * rng.lognormal(0.0, 0.3, per_group)).tolist()
        device += np.where(
            rng.random(per_group) < 0.9, dev, rng.choice(["mobile", "desktop", "tablet"], per_group)
        ).tolist()
        region += np.where(rng.random(per_group) < 0.9, reg, "Incheon").tolist()
    truth = np.repeat(np.arange(3), per_group)
    table = pa.table(
        {
            "rvn": pa.array(rvn, pa.float64()),
            "device": pa.array(device, pa.string()),
            "region": pa.array(region, pa.string()),
        }
    )
    return table, truth


def test_explanations_name_the_planted_traits() -> None:
    table, truth = planted_shop()
    config = parse_config({"features": ["rvn", "device", "region"], "k": 3})
    matrix, transform = build_matrix(table, config)
    result, labels = fitted_labels(matrix, config)
    assert adjusted_rand_score(truth, labels) >= 0.95
    sizes = np.bincount(labels, minlength=3).tolist()
    ids = model.match_ids(result.centers, sizes, transform, None).ids
    clusters = model.explain(result.centers, sizes, ids, transform)

    assert [c["id"] for c in clusters] == ids and [c["size"] for c in clusters] == sizes
    assert sum(c["share"] for c in clusters) == pytest.approx(1.0, abs=1e-3)
    vip_index = Counter(labels[truth == 0].tolist()).most_common(1)[0][0]
    vip = clusters[vip_index]
    terms = vip["label"].split(" · ")
    assert "high spend" in terms and "mobile" in terms and "Seoul" in terms, vip["label"]
    assert "고액 구매" in vip["label_ko"].split(" · ")
    assert vip["centroid"]["rvn"] == pytest.approx(VIP_REVENUE, rel=0.25)
    assert shares(vip["centroid"]["device"])["mobile"] == pytest.approx(0.9 + 0.1 / 3, abs=0.06)
    assert shares(vip["centroid"]["region"])["Seoul"] == pytest.approx(0.9, abs=0.06)
    assert vip["distinctive"][0]["column"] in ("rvn", "device=mobile", "region=Seoul")
    assert len(vip["centroid_transformed"]) == len(transform.columns)
    low = clusters[Counter(labels[truth == 2].tolist()).most_common(1)[0][0]]
    assert "low spend" in low["label"].split(" · ") and "tablet" in low["label"]
    assert low["centroid"]["rvn"] == pytest.approx(1_000.0, rel=0.25)


def test_a_centre_at_the_population_mean_is_typical() -> None:
    table, _ = planted_shop(per_group=50)
    matrix, transform = build_matrix(table, parse_config({"features": ["rvn", "device", "region"]}))
    [summary] = model.explain(np.zeros((1, matrix.shape[1]), dtype=np.float32), [150], [1], transform)
    assert summary["label"] == "typical customers" and summary["label_ko"] == "평균적인 고객"
    assert summary["share"] == 1.0 and summary["distinctive"] == []


def test_labels_use_words_of_missing_indicators_sex_and_at_most_three_terms() -> None:
    n = 200
    rng = np.random.default_rng(8)
    women = np.arange(n) < n // 2
    table = pa.table(
        {
            "sex": pa.array(np.where(women, "F", "M").tolist(), pa.string()),
            "age": pa.array([None if w else float(a) for w, a in zip(women, rng.normal(40, 5, n), strict=True)]),
            "sessions": pa.array(np.where(women, 30.0, 2.0) * rng.lognormal(0, 0.2, n), pa.float64()),
            "is_member": pa.array(women.astype(np.int64), pa.int64()),
            "odr": pa.array(np.where(women, 5.0, 0.0), pa.float64()),
        }
    )
    config = parse_config({"features": ["sex", "age", "sessions", "is_member", "odr"], "k": 2})
    matrix, transform = build_matrix(table, config)
    result, labels = fitted_labels(matrix, config)
    sizes = np.bincount(labels, minlength=2).tolist()
    clusters = model.explain(result.centers, sizes, [1, 2], transform)
    woman = clusters[int(labels[0])]
    terms = woman["label"].split(" · ")
    assert len(terms) == model.LABEL_TERMS and len(set(terms)) == 3
    assert set(terms) <= {"female", "frequent visitors", "members", "frequent buyers"}
    assert woman["centroid"]["age_missing_share"] == pytest.approx(1.0, abs=1e-3)
    man = clusters[int(labels[-1])]
    assert set(man["label"].split(" · ")) <= {"male", "rare visitors", "guests", "few orders", "older", "younger"}


def shares(levels: list[dict[str, Any]]) -> dict[str, float]:
    """A category centroid ([{value, share}, …]) as a mapping."""
    return {item["value"]: item["share"] for item in levels}

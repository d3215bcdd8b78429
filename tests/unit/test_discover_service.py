"""The discover job end to end on DuckDB and the fake document store: what a run publishes, ids
that stay put from run to run, retired cluster segments, and bad input that fails loudly while the
previous results stay in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from devstack.synthetic_profiles import synthetic_profiles
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.discovery.features import DEFAULT_FEATURES, ConfigError, DiscoveryError
from shared.schema import table_specs
from shared.services import discover as service
from shared.tam.rules import RFM_GROUPS
from tests.fakes import FakeDocumentStore

NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
ACTIVE = "recency_days < 365"  # the default scope (active_days 365)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def loaded(n: int, seed: int = 7) -> tuple[DuckDBWarehouse, pa.Table]:
    profiles, _ = synthetic_profiles(n, seed)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    warehouse.append_arrow("refined.profiles", profiles)
    return warehouse, profiles


def with_config(config: dict[str, Any]) -> FakeDocumentStore:
    documents = FakeDocumentStore()
    documents.set(service.DISCOVERIES, service.CONFIG, config)
    return documents


def assignment(warehouse: DuckDBWarehouse) -> dict[str, int]:
    rows = warehouse.query("select customer_id, cluster_id from refined.clusters")
    return {r["customer_id"]: r["cluster_id"] for r in rows}


def profile_clusters(warehouse: DuckDBWarehouse) -> dict[str, int | None]:
    rows = warehouse.query("select customer_id, cluster_id from refined.profiles")
    return {r["customer_id"]: r["cluster_id"] for r in rows}


def in_scope(warehouse: DuckDBWarehouse) -> set[str]:
    return {r["customer_id"] for r in warehouse.query(f"select customer_id from refined.profiles where {ACTIVE}")}


def cluster_segments(documents: FakeDocumentStore) -> dict[str, dict[str, Any]]:
    return {i: doc for i, doc in documents.list("segments") if i.startswith("discovery-cluster-")}


def test_a_run_publishes_assignment_results_status_and_segments() -> None:
    warehouse, _ = loaded(4_000)
    documents = with_config({"k_max": 6, "sample_size": 1_000})
    results = service.discover(warehouse, documents, NOW, run_id="run-1", engine="sklearn")

    # refined.clusters: one row per customer in scope; the segmentlet on the profiles agrees.
    scope = in_scope(warehouse)
    clusters = assignment(warehouse)
    assert len(scope) < 4_000 and set(clusters) == scope  # dormant customers beyond a year are out
    rows = warehouse.query("select * from refined.clusters")
    assert len(rows) == len(scope) == results["customers"]
    assert {(r["run_id"], r["site_id"]) for r in rows} == {("run-1", "bench-shop")}
    assert all(r["computed_at"] == NOW and r["distance"] >= 0 for r in rows)
    profiles = profile_clusters(warehouse)
    assert {c: profiles[c] for c in clusters} == clusters
    assert all(profiles[c] is None for c in set(profiles) - scope)

    # discoveries/{run}: the results document as returned.
    assert documents.get("discoveries", "run-1") == results
    assert results["engine"] == "sklearn" and results["algorithm"] == "kmeans"
    assert [c["k"] for c in results["candidates"]] == [2, 3, 4, 5, 6]
    assert all(isinstance(c["silhouette"], float) and -1 <= c["silhouette"] <= 1 for c in results["candidates"])
    best = max(results["candidates"], key=lambda c: c["silhouette"])
    assert results["k"] == best["k"] and results["silhouette"] == best["silhouette"]
    assert results["k_chosen_by"] == "silhouette" and 0 < results["silhouette"] < 1
    assert results["features"] == list(DEFAULT_FEATURES) and results["dropped_features"] == []
    assert results["transform"]["columns"][0] == "recency_days"
    k = results["k"]
    assert [c["id"] for c in results["clusters"]] == list(range(1, k + 1))
    sizes = np.bincount(list(clusters.values()), minlength=k + 1)[1:].tolist()
    assert [c["size"] for c in results["clusters"]] == sizes
    assert sizes == sorted(sizes, reverse=True)  # the first run numbers clusters by size
    assert sum(c["share"] for c in results["clusters"]) == pytest.approx(1.0, abs=1e-3)
    for cluster in results["clusters"]:
        assert cluster["label"] and cluster["label_ko"] and cluster["previous_id"] is None
        assert cluster["centroid"]["rvn"] >= 0 and {d["value"] for d in cluster["centroid"]["device"]} >= {
            "mobile",
            "desktop",
        }
    assert (results["moved"], results["stayed"], results["entered"], results["left_scope"]) == (0, 0, len(scope), 0)
    assert results["previous_run"] is None and results["charts"] == []

    config = documents.get("discoveries", "config")
    assert config["k_max"] == 6 and config["sample_size"] == 1_000  # the marketer's fields stay
    assert config["latest_run"] == "run-1"
    assert config["status"]["state"] == "ok" and config["status"]["run_id"] == "run-1"
    assert config["status"]["errors"] == [] and config["status"]["at"] == NOW
    assert config["status"]["message"].startswith(f"{len(scope)} customers in {k} clusters")
    run = documents.get("runs", "run-1")
    assert (run["job"], run["status"], run["k"], run["customers"], run["moved"]) == (
        "discover",
        "succeeded",
        k,
        len(scope),
        0,
    )
    assert run["started_at"] == NOW and run["finished_at"] >= run["started_at"]

    segments = cluster_segments(documents)
    assert sorted(segments) == [f"discovery-cluster-{i}" for i in range(1, k + 1)]
    for i in range(1, k + 1):
        segment = segments[f"discovery-cluster-{i}"]
        assert segment["template"] == "kmeans" and segment["enabled"] is True
        assert segment["rules"] == {"all": [{"segmentlet": "cluster_id", "op": "eq", "value": i}]}
        assert segment["name"].startswith(f"K-Means {i}: ")
    rfm = [i for i, _ in documents.list("segments") if i.startswith("discovery-rfm-")]
    assert len(rfm) == len(RFM_GROUPS) == 11 and "discovery-rfm-cannot-lose-them" in rfm
    assert results["segments"] == {"created": k + 11, "updated": 0, "unchanged": 0, "retired": 0}


def test_the_next_run_keeps_each_customers_id() -> None:
    warehouse, profiles = loaded(4_000)
    documents = with_config({"k_max": 6, "sample_size": 1_000})
    first = service.discover(warehouse, documents, NOW, run_id="run-1", engine="sklearn")
    before = assignment(warehouse)

    # The same profiles loaded again in another order, and another seed for the fit.
    warehouse.query("delete from refined.profiles where true")
    warehouse.append_arrow("refined.profiles", profiles.take(np.random.default_rng(3).permutation(profiles.num_rows)))
    documents.set("discoveries", "config", {"seed": 7}, merge=True)
    later = NOW + timedelta(days=1)
    second = service.discover(warehouse, documents, later, run_id="run-2", engine="sklearn")
    after = assignment(warehouse)

    assert second["previous_run"] == "run-1" and second["k"] == first["k"]
    assert set(after) == set(before)
    same = sum(after[c] == before[c] for c in before)
    assert same / len(before) >= 0.98
    assert second["moved"] == len(before) - same and second["moved"] < 0.02 * len(before)
    assert (second["stayed"], second["entered"], second["left_scope"]) == (same, 0, 0)
    assert documents.get("runs", "run-2")["moved"] == second["moved"]
    for cluster in second["clusters"]:
        assert cluster["previous_id"] == cluster["id"] and cluster["match_distance"] < 0.5
    profiles_now = profile_clusters(warehouse)
    assert {c: profiles_now[c] for c in after} == after
    assert {r["run_id"] for r in warehouse.query("select distinct run_id from refined.clusters")} == {"run-2"}
    assert documents.get("discoveries", "config")["latest_run"] == "run-2"
    assert second["segments"]["created"] == 0 and second["segments"]["retired"] == 0


def test_ids_follow_the_clusters_not_their_sizes() -> None:
    warehouse, _ = loaded(4_000)
    documents = with_config({"k": 5, "sample_size": 1_000})
    first = service.discover(warehouse, documents, NOW, run_id="run-1", engine="sklearn")
    before = assignment(warehouse)
    assert first["clusters"][0]["size"] > 1_000  # id 1: the biggest cluster
    # Most of cluster 1 leaves: it becomes the smallest, and ids given by size would renumber it.
    leaving = {c for c, i in before.items() if i == 1 and c < "c00003200"}
    warehouse.query("delete from refined.profiles where cluster_id = 1 and customer_id < 'c00003200'")
    second = service.discover(warehouse, documents, NOW + timedelta(days=1), run_id="run-2", engine="sklearn")
    after = assignment(warehouse)

    sizes = {c["id"]: c["size"] for c in second["clusters"]}
    assert min(sizes, key=lambda i: sizes[i]) == 1 and sizes[1] < 300
    assert all(c["previous_id"] == c["id"] for c in second["clusters"])
    assert sum(after[c] == before[c] for c in after) / len(after) >= 0.98
    assert second["left_scope"] == len(leaving) and second["entered"] == 0
    assert second["moved"] + second["stayed"] == len(after) == len(before) - len(leaving)


def test_a_cluster_gone_in_a_later_run_has_its_segment_disabled() -> None:
    warehouse, _ = loaded(3_000)
    documents = with_config({"k": 5, "sample_size": 1_000})
    first = service.discover(warehouse, documents, NOW, run_id="run-1", engine="sklearn")
    assert first["k_chosen_by"] == "config" and [c["k"] for c in first["candidates"]] == [5]
    second = service.discover(
        warehouse,
        documents,
        NOW + timedelta(days=1),
        run_id="run-2",
        engine="sklearn",
        config_override={"k": 4, "sample_size": 1_000},
    )
    ids = [c["id"] for c in second["clusters"]]
    assert len(ids) == 4 and set(ids) < {1, 2, 3, 4, 5}
    assert all(c["previous_id"] == c["id"] for c in second["clusters"])
    [gone] = {1, 2, 3, 4, 5} - set(ids)
    segments = cluster_segments(documents)
    assert len(segments) == 5
    retired = segments[f"discovery-cluster-{gone}"]
    assert retired["enabled"] is False and retired["description"].startswith("Retired: discovery run run-2")
    assert retired["rules"]["all"][0]["value"] == gone
    assert all(segments[f"discovery-cluster-{i}"]["enabled"] is True for i in ids)
    assert second["segments"]["retired"] == 1
    assert set(assignment(warehouse).values()) == set(ids)
    assert documents.get("discoveries", "config")["k"] == 5  # the override is not written back
    # A third run retires nothing more: the gone cluster's segment is already disabled.
    third = service.discover(
        warehouse, documents, NOW + timedelta(days=2), run_id="run-3", engine="sklearn", config_override={"k": 4}
    )
    assert third["segments"]["retired"] == 0


SMALL_CONFIG = {"k": 4, "sample_size": 500}


@pytest.mark.parametrize(
    ("change", "data_sql", "error", "expected", "kind"),
    [
        ({"features": ["rvn", "foo"]}, None, ConfigError, "features[1]: unknown feature 'foo'", "config"),
        ({"k": 60}, None, ConfigError, "k: 60 is outside 2..50", "config"),
        ({"min_cluster_size": 1_000}, None, DiscoveryError, "too few customers for k=4: ", "data"),
        (
            {"features": ["rvn", "age"]},
            "update refined.profiles set age = 41 where true",
            DiscoveryError,
            "feature age: every customer with a value has the same one (41)",
            "data",
        ),
        (
            {"features": ["rvn", "age"]},
            "update refined.profiles set age = null where true",
            DiscoveryError,
            "feature age: every value is missing",
            "data",
        ),
        ({"site_id": "other-shop"}, None, DiscoveryError, "no customers in scope (site other-shop", "data"),
    ],
)
def test_bad_input_fails_the_run_and_keeps_the_previous_results(
    change: dict[str, Any], data_sql: str | None, error: type[Exception], expected: str, kind: str
) -> None:
    warehouse, _ = loaded(1_500)
    documents = with_config(dict(SMALL_CONFIG))
    good = service.discover(warehouse, documents, NOW, run_id="good", engine="sklearn")
    if data_sql:
        warehouse.query(data_sql)
    clusters_before = warehouse.query("select * from refined.clusters order by customer_id")
    profiles_before = profile_clusters(warehouse)
    segments_before = documents.list("segments")
    documents.set("discoveries", "config", change, merge=True)  # the marketer's edit

    later = NOW + timedelta(days=1)
    with pytest.raises(error) as raised:
        service.discover(warehouse, documents, later, run_id="bad", engine="sklearn")
    assert expected in str(raised.value)

    run = documents.get("runs", "bad")
    assert run["status"] == "failed" and run["error_kind"] == kind
    assert run["error"].startswith(f"{error.__name__}: ") and expected in run["error"]
    assert run["finished_at"] is not None and "k" not in run
    config = documents.get("discoveries", "config")
    assert config["status"]["state"] == "error" and config["status"]["run_id"] == "bad"
    assert expected in config["status"]["message"] and config["status"]["at"] == later
    assert any(expected in e for e in config["status"]["errors"])
    assert config["latest_run"] == "good" and {k: config[k] for k in change} == change
    # The previous results stay in place.
    assert documents.get("discoveries", "bad") is None
    assert documents.get("discoveries", "good") == good
    assert warehouse.query("select * from refined.clusters order by customer_id") == clusters_before
    assert profile_clusters(warehouse) == profiles_before
    assert documents.list("segments") == segments_before


def test_the_error_status_clears_on_the_next_good_run() -> None:
    warehouse, _ = loaded(1_500)
    documents = with_config({**SMALL_CONFIG, "features": ["rvn", "nope"]})
    with pytest.raises(ConfigError):
        service.discover(warehouse, documents, NOW, run_id="bad", engine="sklearn")
    assert documents.get("discoveries", "config")["status"]["state"] == "error"
    assert "latest_run" not in documents.get("discoveries", "config") and assignment(warehouse) == {}
    documents.set("discoveries", "config", {"features": ["rvn", "odr", "device"]}, merge=True)
    results = service.discover(warehouse, documents, NOW, run_id="fixed", engine="sklearn")
    config = documents.get("discoveries", "config")
    assert config["status"]["state"] == "ok" and config["status"]["errors"] == [] and config["latest_run"] == "fixed"
    assert results["features"] == ["rvn", "odr", "device"]


def test_a_disabled_config_skips_the_run() -> None:
    warehouse, _ = loaded(500)
    documents = with_config({"enabled": False})
    outcome = service.discover(warehouse, documents, NOW, engine="sklearn")
    run_id = f"discover-{NOW:%Y%m%dT%H%M%S%f}"
    assert outcome["status"] == "skipped" and documents.get("runs", run_id)["status"] == "skipped"
    assert documents.list("discoveries") == [("config", {"enabled": False})]
    assert assignment(warehouse) == {} and documents.list("segments") == []


def test_charts_are_written_when_asked(tmp_path: Path) -> None:
    warehouse, _ = loaded(1_500)
    documents = with_config({"k": 3, "sample_size": 500})
    results = service.discover(warehouse, documents, NOW, run_id="run-1", engine="sklearn", charts_dir=tmp_path)
    charts = [Path(p) for p in results["charts"]]
    assert len(charts) == 2 and len(set(charts)) == 2
    for chart in charts:
        assert chart.parent == tmp_path and chart.suffix == ".png"
        assert chart.read_bytes()[:8] == PNG_SIGNATURE and chart.stat().st_size > 5_000
    assert documents.get("discoveries", "run-1")["charts"] == results["charts"]

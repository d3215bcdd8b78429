"""The discover job against the real Firestore emulator through FirestoreStore: the results document
round-trips whole (nested maps and lists, floats, datetimes) and fits Firestore's limits, the
config status is merged into the marketer's document, the ids of the next run are matched to the
centroids read back from Firestore, and the segments are written there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.emulators import Emulators
from devstack.synthetic_profiles import synthetic_profiles
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.discovery.features import DEFAULT_FEATURES, ConfigError
from shared.schema import table_specs
from shared.services import discover as service
from shared.tam.rules import RFM_GROUPS

firestore_store = pytest.importorskip("shared.adapters.firestore_store", reason="the Firestore adapter is not there")

pytestmark = pytest.mark.emulator
NOW = datetime(2026, 11, 2, 3, 4, 5, 678_901, tzinfo=UTC)
MAX_DOCUMENT_BYTES = 1_048_576 - 89  # Firestore's maximum document size


@pytest.fixture
def store(emulators: Emulators) -> Any:
    emulators.reset_firestore()
    return firestore_store.FirestoreStore(emulators.project)


@pytest.fixture
def warehouse() -> Iterator[DuckDBWarehouse]:
    profiles, _ = synthetic_profiles(3_000)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    warehouse.append_arrow("refined.profiles", profiles)
    yield warehouse
    warehouse.close()


def shape(value: Any) -> Any:
    """The value with every leaf replaced by its type: equal shapes mean no int became a float."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def nested_arrays(value: Any, path: str = "") -> list[str]:
    """Paths of lists directly inside lists, which Firestore refuses."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += nested_arrays(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, list):
                found.append(f"{path}[{index}]")
            found += nested_arrays(item, f"{path}[{index}]")
    return found


def stored_size(value: Any) -> int:
    """Firestore's storage size of a value (firebase.google.com/docs/firestore/storage-size)."""
    if isinstance(value, str):
        return len(value.encode()) + 1
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return 8
    if isinstance(value, list):
        return sum(stored_size(item) for item in value)
    if isinstance(value, dict):
        return sum(stored_size(key) + stored_size(item) for key, item in value.items())
    raise TypeError(f"not a document value: {type(value).__name__}")


def document_size(collection: str, doc_id: str, doc: dict[str, Any]) -> int:
    return stored_size(collection) + stored_size(doc_id) + 16 + stored_size(doc) + 32


def test_a_run_round_trips_through_firestore(store: Any, warehouse: DuckDBWarehouse) -> None:
    store.set("discoveries", "config", {"k_max": 6, "sample_size": 1_000, "seed": 3})
    results = service.discover(warehouse, store, NOW, run_id="run-1", engine="sklearn")

    assert nested_arrays(results) == []
    size = document_size("discoveries", "run-1", results)
    assert size < MAX_DOCUMENT_BYTES / 10, size  # k ≤ 50 clusters would still fit
    stored = store.get("discoveries", "run-1")
    assert stored == results
    assert shape(stored) == shape(results)
    assert stored["computed_at"] == NOW and stored["computed_at"].tzinfo is not None
    cluster = stored["clusters"][0]
    assert isinstance(cluster["centroid"]["device"], list) and isinstance(cluster["centroid_transformed"][0], float)
    assert stored["transform"]["levels"]["device"] == results["transform"]["levels"]["device"]

    config = store.get("discoveries", "config")
    assert (config["k_max"], config["sample_size"], config["seed"]) == (6, 1_000, 3)  # the marketer's fields
    assert config["latest_run"] == "run-1"
    assert config["status"]["state"] == "ok" and config["status"]["at"] == NOW and config["status"]["errors"] == []
    run = store.get("runs", "run-1")
    assert run["status"] == "succeeded" and run["k"] == results["k"] and run["started_at"] == NOW

    segment_ids = [segment_id for segment_id, _ in store.list("segments")]
    assert sorted(i for i in segment_ids if i.startswith("discovery-cluster-")) == sorted(
        f"discovery-cluster-{c['id']}" for c in results["clusters"]
    )
    assert len([i for i in segment_ids if i.startswith("discovery-rfm-")]) == len(RFM_GROUPS)
    first = store.get("segments", "discovery-cluster-1")
    assert first["template"] == "kmeans" and first["enabled"] is True
    assert first["rules"] == {"all": [{"segmentlet": "cluster_id", "op": "eq", "value": 1}]}


def test_errors_and_later_runs_merge_into_the_config(store: Any, warehouse: DuckDBWarehouse) -> None:
    store.set("discoveries", "config", {"k": 5, "sample_size": 1_000})
    first = service.discover(warehouse, store, NOW, run_id="run-1", engine="sklearn")
    before = {r["customer_id"]: r["cluster_id"] for r in warehouse.query("select * from refined.clusters")}

    store.set("discoveries", "config", {"features": ["rvn", "foo"]}, merge=True)
    with pytest.raises(ConfigError):
        service.discover(warehouse, store, NOW + timedelta(hours=1), run_id="bad", engine="sklearn")
    config = store.get("discoveries", "config")
    assert config["status"]["state"] == "error" and "features[1]: unknown feature 'foo'" in config["status"]["message"]
    assert (config["k"], config["sample_size"], config["latest_run"]) == (5, 1_000, "run-1")
    assert store.get("runs", "bad")["status"] == "failed" and store.get("discoveries", "bad") is None

    # Fixed, and one cluster fewer: ids are matched to the centroids stored in Firestore.
    store.set("discoveries", "config", {"features": list(DEFAULT_FEATURES), "k": 4}, merge=True)
    second = service.discover(warehouse, store, NOW + timedelta(days=1), run_id="run-2", engine="sklearn")
    assert second["previous_run"] == "run-1"
    assert all(c["previous_id"] == c["id"] for c in second["clusters"])
    after = {r["customer_id"]: r["cluster_id"] for r in warehouse.query("select * from refined.clusters")}
    kept = {c["id"] for c in second["clusters"]}
    staying = [c for c in after if before[c] in kept]  # customers whose cluster is still there
    assert sum(after[c] == before[c] for c in staying) / len(staying) >= 0.95
    [gone] = {c["id"] for c in first["clusters"]} - kept
    assert store.get("segments", f"discovery-cluster-{gone}")["enabled"] is False
    config = store.get("discoveries", "config")
    assert config["status"]["state"] == "ok" and config["latest_run"] == "run-2" and config["k"] == 4

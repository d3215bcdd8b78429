"""The discover Cloud Function and the scripts/discover command: thin wrappers over the service."""

from __future__ import annotations

from typing import Any

import pytest

from cli import discover as discover_cli
from devstack.synthetic_profiles import synthetic_profiles
from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_specs
from tests.builders import jobs_event
from tests.fakes import FakeDocumentStore


def wired(monkeypatch: pytest.MonkeyPatch, profiles: int = 600) -> tuple[DuckDBWarehouse, FakeDocumentStore]:
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    warehouse.append_arrow("refined.profiles", synthetic_profiles(profiles, seed=5)[0])
    documents = FakeDocumentStore()
    monkeypatch.setattr(bootstrap, "warehouse", lambda: warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    return warehouse, documents


def test_the_handler_runs_its_job_acknowledges_bad_input_and_ignores_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.discover.main import discover as handler

    warehouse, documents = wired(monkeypatch)
    handler(jobs_event({"job": "refine"}))
    handler(jobs_event({"job": "discover", "engine": "quantum"}))  # rejected, acknowledged
    assert "runs" not in documents.docs
    handler(jobs_event({"job": "discover"}, "41"))
    record = documents.get("runs", "discover-41")
    assert record is not None and record["status"] == "succeeded" and record["engine"] == "sklearn"
    assert warehouse.query("select count(*) as n from refined.clusters")[0]["n"] == record["customers"]
    # Bad config: recorded and acknowledged (no exception for Pub/Sub to retry), previous run kept.
    documents.set("discoveries", "config", {"features": ["rvn", "spend"]}, merge=True)  # as a console edit
    handler(jobs_event({"job": "discover"}, "42"))
    failed = documents.get("runs", "discover-42")
    assert failed is not None and failed["status"] == "failed" and "features[1]" in failed["error"]
    config = documents.get("discoveries", "config")
    assert config is not None and config["latest_run"] == "discover-41" and config["status"]["state"] == "error"
    assert handler.__name__ == "discover"


def test_the_command_prints_the_clusters_and_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, documents = wired(monkeypatch)
    assert discover_cli.main(["--k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "k=3 (config)" in printed and printed.count("  cluster ") == 3
    documents.set("discoveries", "config", {"k": 40, "min_cluster_size": 20}, merge=True)
    assert discover_cli.main([]) == 2
    error: Any = capsys.readouterr().err
    assert "too few customers for k=40" in error

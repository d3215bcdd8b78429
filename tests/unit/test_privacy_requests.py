"""The batch entry point over Firestore `privacy_requests`: pending documents erased or exported in
batches, bad ones refused with status.error and the field, receipts written back, identifiers
replaced by their hashes once done, the expansion kept while pending, the run recorded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.privacy_requests.main import privacy_requests
from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.folder_blobs import FolderBlobs
from shared.privacy.documents import REQUESTS
from shared.privacy.removals import RemovalQueue
from shared.privacy.suppression import id_hash
from shared.services import privacy
from shared.services import refine as refinement
from tests.builders import History, jobs_event, new_warehouse
from tests.fakes import FakeDocumentStore

SALT = "test-salt"
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)


def warehouse() -> DuckDBWarehouse:
    h = History()
    h.visit("05-01 10:00", "kim-v1", "/")
    h.add("raw.user", "05-01 10:01", "kim-v1", "kim-m", email="kim@example.com")
    h.visit("05-01 11:00", "lee-v1", "/")
    h.add("raw.user", "05-01 11:01", "lee-v1", "lee-m", email="lee@example.com")
    w = new_warehouse(h)
    refinement.refine(w, None, date(2026, 5, 1), date(2026, 5, 1), NOW)
    return w


def ports(w: DuckDBWarehouse, tmp_path: Path, **kw: Any) -> privacy.PrivacyPorts:
    return privacy.PrivacyPorts(w, RemovalQueue(w), FolderBlobs(tmp_path), SALT, sites=("shop",), **kw)


def test_pending_requests_are_processed_and_bad_ones_refused(tmp_path: Path) -> None:
    w, documents = warehouse(), FakeDocumentStore()
    documents.set(REQUESTS, "r-kim", {"type": "erase", "email": "Kim@Example.com", "site_id": "shop"})
    documents.set(REQUESTS, "r-lee", {"type": "export", "member_id": "lee-m"})
    documents.set(REQUESTS, "r-empty", {"type": "erase"})
    documents.set(REQUESTS, "r-typo", {"type": "erase", "phone": ["010-1234-5678", "12"]})
    old = {"type": "erase", "status": {"state": "done"}, "identifier_hashes": {"shop": ["x"]}}
    documents.set(REQUESTS, "r-old", old)

    run = privacy.process_requests(documents, ports(w, tmp_path), NOW, run_id="run-1")

    assert (run.requests, run.done, run.pending, run.refused) == (4, 2, 0, 2)
    kim = documents.get(REQUESTS, "r-kim")
    assert kim is not None and kim["status"]["state"] == "done" and kim["email"] is None
    assert kim["identifier_hashes"] == {"shop": [id_hash(SALT, "shop", "email", "kim@example.com")]}
    receipt = kim["status"]["receipt"]
    assert receipt["tables"]["raw.page"] == {"found": 1, "erased": 1, "remaining": 0}
    assert receipt["rows_left"] == 0 and receipt["verified_at"] == NOW and "expansion" not in kim["status"]
    assert "kim" not in repr(kim).lower().replace("r-kim", "")
    lee = documents.get(REQUESTS, "r-lee")
    assert lee is not None and lee["status"]["state"] == "done" and lee["member_id"] is None
    assert Path(lee["status"]["receipt"]["export"]["location"]).is_file()
    empty, typo = documents.get(REQUESTS, "r-empty"), documents.get(REQUESTS, "r-typo")
    assert empty is not None and empty["status"]["error"]["field"] == "identifiers"
    assert typo is not None and typo["status"]["error"] == {"field": "phone[1]", "reason": "'12' is not a phone number"}
    assert typo["phone"] == ["010-1234-5678", "12"], "nothing is written for a refused request but its status"
    assert documents.get(REQUESTS, "r-old") == old
    assert w.query("select visitor_id from raw.page") == [{"visitor_id": "lee-v1"}]
    recorded = documents.get("runs", "run-1")
    assert recorded is not None and recorded["status"] == "succeeded" and recorded["done"] == 2
    audit = w.query(
        "select document_id, action, changed_fields, entry_point from audit.config_changes "
        "where collection = 'privacy_requests' order by document_id, action"
    )
    assert [(a["document_id"], a["action"]) for a in audit] == [
        ("r-empty", "created"),
        ("r-kim", "created"),
        ("r-kim", "updated"),
        ("r-lee", "created"),
        ("r-lee", "updated"),
        ("r-typo", "created"),
    ]
    assert {a["entry_point"] for a in audit} == {"privacy_requests"}
    kim_update = next(a for a in audit if a["document_id"] == "r-kim" and a["action"] == "updated")
    assert list(kim_update["changed_fields"]) == ["email", "identifier_hashes"]
    texts = repr(w.query("select * from audit.config_changes"))
    assert "kim@example.com" not in texts and "lee-m" not in texts, "hashes only, never the identifiers"


def test_a_pending_erasure_keeps_its_expansion_for_the_retry(tmp_path: Path) -> None:
    w, documents = warehouse(), FakeDocumentStore()
    documents.set(REQUESTS, "r-kim", {"type": "erase", "member_id": "kim-m", "site_id": "shop"})
    # rows that arrived within the streaming buffer's reach are left for later, as on BigQuery
    recent = ports(w, tmp_path, streaming_buffer=NOW - datetime(2026, 5, 1, 10, 0, 30, tzinfo=UTC))
    first = privacy.process_requests(documents, recent, NOW)
    pending = documents.get(REQUESTS, "r-kim")
    assert first.pending == 1 and pending is not None and pending["status"]["state"] == "pending"
    assert pending["member_id"] == "kim-m" and pending["status"]["receipt"]["rows_left"] > 0
    expansion = pending["status"]["expansion"]["shop"]
    assert set(expansion["nodes"]) == {"member:kim-m", "visitor:kim-v1", "email:kim@example.com"}
    # Refinement may drop the identities meanwhile; the kept expansion still finds the visitor's rows.
    w.query("delete from refined.identities where node = 'visitor:kim-v1'")
    second = privacy.process_requests(documents, ports(w, tmp_path), NOW + timedelta(hours=2))
    done = documents.get(REQUESTS, "r-kim")
    assert second.done == 1 and done is not None and done["status"]["state"] == "done"
    assert "expansion" not in done["status"] and done["member_id"] is None
    assert w.query("select count(*) as n from raw.page where visitor_id = 'kim-v1'") == [{"n": 0}]


def test_exports_wait_where_they_cannot_be_written(tmp_path: Path) -> None:
    w, documents = warehouse(), FakeDocumentStore()
    documents.set(REQUESTS, "r-lee", {"type": "export", "member_id": "lee-m"})
    no_storage = privacy.PrivacyPorts(w, RemovalQueue(w), None, SALT)
    run = privacy.process_requests(documents, no_storage, NOW)
    lee = documents.get(REQUESTS, "r-lee")
    assert run.pending == 1 and lee is not None and lee["status"]["waiting"] == ["export storage"]
    assert lee["member_id"] == "lee-m"


def test_the_handler_runs_the_job_and_ignores_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, documents = warehouse(), FakeDocumentStore()
    documents.set(REQUESTS, "r-kim", {"type": "erase", "visitor_id": "kim-v1"})
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    monkeypatch.setattr(bootstrap, "privacy_ports", lambda: ports(w, tmp_path))
    privacy_requests(jobs_event({"job": "refine"}))
    assert documents.get("runs", "privacy_requests-7") is None
    privacy_requests(jobs_event({"job": "privacy_requests"}))
    kim = documents.get(REQUESTS, "r-kim")
    assert kim is not None and kim["status"]["state"] == "done"
    run = documents.get("runs", "privacy_requests-7")
    assert run is not None and run["requests"] == 1 and run["done"] == 1


def test_bootstrap_builds_the_ports_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import ConfigError, Settings

    w = new_warehouse()
    local = bootstrap.build_privacy_ports(Settings.from_env({"CDP_PROJECT": "p", "CDP_PRIVACY_BATCH_SIZE": "7"}), w)
    assert local.batch_size == 7 and local.streaming_buffer is None and isinstance(local.blobs, FolderBlobs)
    assert local.dml(NOW).settled_before is None
    env = {"CDP_PROJECT": "p", "CDP_WAREHOUSE": "bigquery", "CDP_PRIVACY_SALT": "pepper"}
    gcp = bootstrap.build_privacy_ports(Settings.from_env(env), w)
    assert gcp.blobs is None and gcp.dml(NOW).settled_before == NOW - timedelta(minutes=90)
    assert "pepper" not in repr(gcp)
    with pytest.raises(ConfigError, match="CDP_PRIVACY_SALT"):
        bootstrap.build_privacy_ports(Settings.from_env({"CDP_PROJECT": "p", "CDP_WAREHOUSE": "bigquery"}), w)

"""The privacy_requests job against the real Firestore emulator through FirestoreStore: requests
written as documents are processed in one batch, receipts round-trip (nested maps, datetimes), a
bad request gets status.error with its field, the identifiers of a finished request are replaced
by hashes, and a declared collection's documents naming the person are deleted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from devstack.emulators import Emulators
from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.folder_blobs import FolderBlobs
from shared.privacy.documents import COLLECTIONS, REQUESTS, DocumentKey
from shared.privacy.removals import RemovalQueue
from shared.privacy.suppression import id_hash
from shared.services import privacy
from shared.services import refine as refinement
from tests.builders import History, new_warehouse

pytestmark = pytest.mark.emulator
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)
SALT = "emulator-salt"


def test_requests_written_to_firestore_are_processed_and_answered(emulators: Emulators, tmp_path: Path) -> None:
    emulators.reset_firestore()
    store = FirestoreStore(emulators.project)
    h = History()
    h.visit("05-01 10:00", "kim-v1", "/")
    h.add("raw.user", "05-01 10:01", "kim-v1", "kim-m", email="kim@example.com", phone="+821012345678")
    h.visit("05-01 11:00", "lee-v1", "/")
    warehouse = new_warehouse(h)
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 1), NOW)
    store.set(REQUESTS, "kim", {"type": "erase", "phone": "010-1234-5678", "site_id": "shop"})
    store.set(REQUESTS, "kim-copy", {"type": "export", "visitor_id": ["kim-v1"]})
    store.set(REQUESTS, "bad", {"type": "erase", "email": "kim at example"})
    store.set("call_notes", "n1", {"member": "kim-m", "site_id": "shop", "note": "asked to be forgotten"})
    store.set("call_notes", "n2", {"member": "lee-m", "site_id": "shop"})
    collections = {**COLLECTIONS, "call_notes": (DocumentKey("member", "member"),)}
    ports = privacy.PrivacyPorts(warehouse, RemovalQueue(warehouse), FolderBlobs(tmp_path), SALT, sites=("shop",))

    run = privacy.process_requests(store, ports, NOW, run_id="privacy-run", collections=collections)

    assert (run.requests, run.done, run.refused) == (3, 2, 1)
    kim = store.get(REQUESTS, "kim")
    assert kim is not None and kim["status"]["state"] == "done" and kim["phone"] is None
    assert kim["identifier_hashes"] == {"shop": [id_hash(SALT, "shop", "phone", "+821012345678")]}
    receipt = kim["status"]["receipt"]
    assert receipt["verified_at"] == NOW and receipt["rows_left"] == 0
    assert receipt["tables"]["raw.user"] == {"found": 1, "erased": 1, "remaining": 0}
    assert receipt["documents"] == {"call_notes": 1}
    exported = store.get(REQUESTS, "kim-copy")
    assert exported is not None and exported["status"]["state"] == "done"
    assert exported["status"]["receipt"]["tables"]["raw.page"]["found"] == 1, "exported before the erasure"
    bad = store.get(REQUESTS, "bad")
    assert bad is not None and bad["status"]["error"] == {
        "field": "email",
        "reason": "'kim at example' is not an e-mail address",
    }
    assert [doc_id for doc_id, _ in store.list("call_notes")] == ["n2"]
    recorded = store.get("runs", "privacy-run")
    assert recorded is not None and recorded["status"] == "succeeded" and recorded["refused"] == 1
    again = privacy.process_requests(store, ports, NOW)
    assert again.requests == 0, "answered requests are not taken again"

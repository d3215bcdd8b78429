"""Export: every row about the subject, per table, as NDJSON with a manifest that lists each file's
table, row count and SHA-256; nothing is deleted."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from shared.adapters.folder_blobs import FolderBlobs
from shared.privacy.documents import COLLECTIONS, DocumentKey
from shared.privacy.subjects import build_request, identifier
from shared.services import privacy
from shared.services import refine as refinement
from tests.builders import History, new_warehouse
from tests.fakes import FakeDocumentStore

SITE = "shop"
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)


def history() -> History:
    """Alice on two browsers (the second joined through her e-mail) with an order; Bob elsewhere."""
    h = History()
    h.visit("05-01 10:00", "alice-v1", "/")
    h.add("raw.user", "05-01 10:01", "alice-v1", "alice-m", email="alice@example.com")
    h.order("05-01 10:03", "o-alice", 50000, ["코트"], visitor_id="alice-v1", member_id="alice-m")
    h.visit("05-02 20:00", "alice-v2", "/contact")
    h.add("raw.user", "05-02 20:01", "alice-v2", email="alice@example.com")
    h.visit("05-01 11:00", "bob-v1", "/")
    return h


def test_an_export_writes_each_table_of_rows_and_a_manifest_that_checks_them(tmp_path: Path) -> None:
    warehouse = new_warehouse(history())
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 2), NOW)
    documents = FakeDocumentStore()
    documents.set("people_notes", "n1", {"email": "alice@example.com", "note": "VIP", "site_id": SITE})
    collections = {**COLLECTIONS, "people_notes": (DocumentKey("email", "email"),)}
    requests = [
        build_request("req/alice 1", "export", [identifier("email", "alice@example.com")], SITE),
        build_request("req-nobody", "export", [identifier("member", "nobody")], SITE),
    ]
    pages_before = warehouse.query("select count(*) as n from raw.page")

    alice, nobody = privacy.export(
        warehouse, requests, blobs=FolderBlobs(tmp_path), now=NOW, documents=documents, collections=collections
    )

    assert alice.status == nobody.status == "done"
    manifest_path = Path(alice.export["location"]) if alice.export else None
    assert manifest_path == tmp_path / "req_alice_1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["request_id"] == "req/alice 1" and manifest["created_at"] == NOW.isoformat()
    by_table = {f.get("table") or f["collection"]: f for f in manifest["files"]}
    assert by_table["raw.page"]["rows"] == 2 and by_table["raw.conv"]["rows"] == 1
    assert by_table["refined.profiles"]["rows"] == 1 and by_table["people_notes"]["rows"] == 1
    for entry in manifest["files"]:
        data = (tmp_path / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data.splitlines()) == entry["rows"]
    pages = [json.loads(line) for line in (tmp_path / by_table["raw.page"]["file"]).read_text().splitlines()]
    assert {p["visitor_id"] for p in pages} == {"alice-v1", "alice-v2"}
    assert not any(k.startswith("privacy_key_") for p in pages for k in p)
    assert alice.tables["raw.page"].found == 2 and alice.documents == {"people_notes": 1}
    assert json.loads((tmp_path / "req-nobody" / "manifest.json").read_text())["files"] == []
    assert nobody.tables["raw.page"].found == 0
    assert warehouse.query("select count(*) as n from raw.page") == pages_before
    assert "rows exported" in alice.summary() and "manifest:" in alice.summary()


def test_blob_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    blobs = FolderBlobs(tmp_path)
    for name in ("../x", "/etc/x", "a/../../x", ""):
        with pytest.raises(ValueError, match="relative path"):
            blobs.write(name, b"", "text/plain")
    assert blobs.write("a/b.json", b"{}", "application/json") == str(tmp_path / "a" / "b.json")


def test_export_files_are_plain_json_lines() -> None:
    from decimal import Decimal

    from shared.privacy.exports import ndjson

    data = ndjson([{"b": Decimal("1.50"), "a": datetime(2026, 5, 1, tzinfo=UTC), "c": "김"}])
    assert data == '{"a": "2026-05-01T00:00:00+00:00", "b": "1.50", "c": "김"}\n'.encode()

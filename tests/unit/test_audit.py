"""The audit log of configuration changes: one row per change a marketer made, none for ours."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_spec
from shared.services import segments as service
from shared.services.audit import document_hash, record_change
from shared.tam.events import DocumentChange
from tests.builders import planted_warehouse, segment_doc
from tests.fakes import FakeDocumentStore

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def rows(warehouse: DuckDBWarehouse) -> list[tuple[object, ...]]:
    found = warehouse.query(
        "select document_id, action, before_hash, after_hash, changed_fields, entry_point, event_id "
        "from audit.config_changes order by recorded_at, action"
    )
    return [tuple(r.values()) for r in found]


def test_each_marketer_edit_is_audited_once_and_our_status_writes_never() -> None:
    warehouse = planted_warehouse()
    doc = segment_doc({"segmentlet": "region", "op": "eq", "value": "Seoul"})
    documents = FakeDocumentStore(docs={"segments": {"seoul": dict(doc)}})
    created = DocumentChange("segments", "seoul", None, doc)
    assert service.handle_segment_write(created, warehouse, documents, NOW, event_id="e1") == "ok"
    service.handle_segment_write(created, warehouse, documents, NOW, event_id="e1")  # a redelivery
    with_status = {**doc, "status": documents.docs["segments"]["seoul"]["status"]}
    ours = DocumentChange("segments", "seoul", doc, with_status)
    assert (
        service.handle_segment_write(ours, warehouse, documents, NOW, event_id="e2") == "skipped: only results changed"
    )
    edited = {**with_status, "name": "서울 고객"}
    service.handle_segment_write(DocumentChange("segments", "seoul", with_status, edited), warehouse, documents, NOW,
                                 event_id="e3")  # fmt: skip
    service.handle_segment_write(DocumentChange("segments", "seoul", edited, None), warehouse, documents, NOW,
                                 event_id="e4")  # fmt: skip
    first, second = document_hash(doc), document_hash({**doc, "name": "서울 고객"})
    assert rows(warehouse) == [
        ("seoul", "created", None, first, sorted(doc), "validate_config", "e1"),
        ("seoul", "deleted", second, None, sorted(doc), "validate_config", "e4"),
        ("seoul", "updated", first, second, ["name"], "validate_config", "e3"),
    ]


def test_the_hash_is_the_documents_whichever_client_read_it() -> None:
    as_text = {"b": 1, "a": {"when": "2026-03-10T09:00:00+00:00"}}
    as_read = {"a": {"when": NOW}, "b": 1}
    assert document_hash(as_text) == document_hash(as_read)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([table_spec("audit.config_changes")])
    assert record_change(warehouse, "segments", "x", as_text, as_read, "scripts/segments", recorded_at=NOW) is None
    assert warehouse.query("select count(*) as n from audit.config_changes") == [{"n": 0}]

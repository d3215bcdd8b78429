"""Segment services: validate_config's verdict and loop guard, build_segments' due-ness, membership
history, idempotency and failure isolation, catalogue publishing and apply; both handlers end to end."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from functions_framework import create_app

from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import ScheduleSettings
from shared.ports import InsertResult, TransientError
from shared.schema import TableSpec
from shared.segmentlets import CATALOGUE
from shared.services import segments as service
from shared.tam.events import DocumentChange
from shared.tam.rules import parse_segment
from shared.tam.templates import TEMPLATES
from tests.builders import SEGMENTS_NOW as NOW
from tests.builders import firestore_event_headers, planted_warehouse, proto_event
from tests.fakes import FakeDocumentStore

SEOUL_MOBILE_NO_BUY: dict[str, Any] = {
    "name": "서울 모바일 미구매",
    "template": "behaviour",
    "period": {"last_days": 3650},
    "rules": {
        "all": [
            {"segmentlet": "region", "op": "eq", "value": "Seoul"},
            {"segmentlet": "device", "op": "eq", "value": "mobile"},
            {"not": {"segmentlet": "odr_ltv", "op": "gt", "value": 0}},
        ]
    },
    "schedule": {"cron": "0 7 * * *", "timezone": "Asia/Seoul"},
}
BAD = {**SEOUL_MOBILE_NO_BUY, "rules": {"all": [{"segmentlet": "age", "op": "gte", "value": "abc"}]}}


def store() -> FakeDocumentStore:
    # The fake's set() without merge assumes its collection exists: create ours up front.
    return FakeDocumentStore(docs={"segments": {}, "segmentlets": {}, "templates": {}})


class FailingWarehouse:
    """Delegates to a real warehouse but fails every statement for one segment."""

    def __init__(self, inner: DuckDBWarehouse, segment_id: str, error: Exception):
        self.inner, self.segment_id, self.error = inner, segment_id, error

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        self.inner.ensure_tables(specs)

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> InsertResult:
        return self.inner.insert_rows(table, rows, row_ids)

    def insert_many(
        self, batches: Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str]]]
    ) -> dict[str, InsertResult]:
        return self.inner.insert_many(batches)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if (params or {}).get("segment_id") == self.segment_id:
            raise self.error
        return self.inner.query(sql, params)


def history(warehouse: DuckDBWarehouse, segment_id: str) -> list[tuple[str, str, str | None]]:
    rows = warehouse.query(
        "SELECT customer_id, entered_on, left_on FROM audiences.segment_member_history "
        "WHERE segment_id = @s ORDER BY customer_id, entered_on",
        {"s": segment_id},
    )
    return [(r["customer_id"], r["entered_on"].isoformat(), r["left_on"] and r["left_on"].isoformat()) for r in rows]


def current_members(warehouse: DuckDBWarehouse, segment_id: str) -> set[str]:
    rows = warehouse.query("SELECT customer_id FROM audiences.segment_members WHERE segment_id = @s", {"s": segment_id})
    return {r["customer_id"] for r in rows}


def set_profile(warehouse: DuckDBWarehouse, customer_id: str, **values: Any) -> None:
    for column, value in values.items():
        assert column.isidentifier()
        warehouse.query(
            f"UPDATE refined.profiles SET {column} = @v WHERE customer_id = @c", {"v": value, "c": customer_id}
        )


# --- validate_config ----------------------------------------------------------------------------


def test_validate_gives_an_estimate_or_the_errors() -> None:
    warehouse = planted_warehouse()
    ok = service.validate_segment("s1", SEOUL_MOBILE_NO_BUY, warehouse, NOW)
    assert ok["state"] == "ok" and ok["estimate"] == 2 and ok["stage"] == "validate"
    assert ok["definition_hash"] == parse_segment("s1", SEOUL_MOBILE_NO_BUY).definition_hash
    error = service.validate_segment("s1", BAD, warehouse, NOW)
    assert error["state"] == "error" and error["estimate"] is None
    assert error["message"] == 'rules.all[0].value: expected a number for age, got "abc"'
    assert set(ok) == set(error)  # always the same keys: a deep merge still replaces the status


def test_validate_without_a_warehouse_still_judges_the_rules() -> None:
    broken = FailingWarehouse(planted_warehouse(), "never", RuntimeError())
    broken.query = lambda sql, params=None: (_ for _ in ()).throw(TransientError("down"))  # type: ignore[method-assign]
    result = service.validate_segment("s1", SEOUL_MOBILE_NO_BUY, broken, NOW)
    assert result["state"] == "ok" and result["estimate"] is None
    assert result["message"] == "OK; size estimate unavailable: TransientError"


def test_write_validates_and_status_only_changes_are_skipped() -> None:
    warehouse, documents = planted_warehouse(), store()
    documents.set("segments", "s1", SEOUL_MOBILE_NO_BUY)
    created = DocumentChange("segments", "s1", None, dict(SEOUL_MOBILE_NO_BUY))
    assert service.handle_segment_write(created, warehouse, documents, NOW) == "ok"
    after = documents.get("segments", "s1")
    assert after is not None and after["status"]["estimate"] == 2
    status_write = DocumentChange("segments", "s1", dict(SEOUL_MOBILE_NO_BUY), after)
    assert service.handle_segment_write(status_write, warehouse, documents, NOW) == "skipped: only results changed"
    deleted = DocumentChange("segments", "s1", after, None)
    assert service.handle_segment_write(deleted, warehouse, documents, NOW) == "skipped: deleted"
    other = DocumentChange("templates", "rfm", None, {"x": 1})
    assert service.handle_segment_write(other, warehouse, documents, NOW) == "ignored: not a segment"


def test_a_stale_event_does_not_overwrite_a_newer_edit() -> None:
    warehouse, documents = planted_warehouse(), store()
    documents.set("segments", "s1", BAD)  # the marketer already fixed... no: edited again to something else
    stale = DocumentChange("segments", "s1", None, dict(SEOUL_MOBILE_NO_BUY))
    assert service.handle_segment_write(stale, warehouse, documents, NOW) == "skipped: edited again since"
    assert "status" not in (documents.get("segments", "s1") or {})


class TriggeringStore(FakeDocumentStore):
    """Firestore with a document trigger: every write to segments/ queues the event it would fire."""

    def __init__(self) -> None:
        super().__init__(docs={"segments": {}})
        self.events: list[DocumentChange] = []
        self.writes = 0

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        old = self.get(collection, doc_id)
        super().set(collection, doc_id, data, merge)
        self.writes += 1
        self.events.append(DocumentChange(collection, doc_id, old, self.get(collection, doc_id)))


def run_triggers(store: TriggeringStore, warehouse: DuckDBWarehouse, limit: int = 10) -> list[str]:
    outcomes = []
    while store.events:
        assert len(outcomes) < limit, f"trigger loop: {outcomes}"
        outcomes.append(service.handle_segment_write(store.events.pop(0), warehouse, store, NOW))
    return outcomes


def test_the_trigger_does_not_loop() -> None:
    warehouse, store = planted_warehouse(), TriggeringStore()
    store.set("segments", "s1", SEOUL_MOBILE_NO_BUY)  # the marketer's write
    assert run_triggers(store, warehouse) == ["ok", "skipped: only results changed"]
    assert store.writes == 2
    store.set("segments", "s1", {**SEOUL_MOBILE_NO_BUY, "rules": BAD["rules"]})  # an edit that breaks it
    assert run_triggers(store, warehouse) == ["error", "skipped: only results changed"]
    assert service.build_segments(warehouse, store, NOW).invalid == ["s1"]  # status already says so: no write
    assert run_triggers(store, warehouse) == []
    store.set("segments", "s1", SEOUL_MOBILE_NO_BUY)  # fixed
    assert run_triggers(store, warehouse) == ["ok", "skipped: only results changed"]
    assert service.build_segments(warehouse, store, NOW).built  # build results are writes too
    assert run_triggers(store, warehouse) == ["skipped: only results changed"]


def test_validate_config_handler_reads_the_protobuf_event(monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse, documents = planted_warehouse(), store()
    documents.set("segments", "s1", SEOUL_MOBILE_NO_BUY)
    monkeypatch.setattr(bootstrap, "warehouse", lambda: warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    monkeypatch.setattr(bootstrap, "schedule_config", ScheduleSettings)  # the deployment's minimum interval
    client = create_app("validate_config", "functions/validate_config/main.py").test_client()
    headers = firestore_event_headers()
    body = proto_event(None, SEOUL_MOBILE_NO_BUY)
    assert client.post("/", data=body, headers=headers).status_code == 200
    stored = documents.get("segments", "s1")
    assert stored is not None and stored["status"]["state"] == "ok" and stored["status"]["estimate"] == 2
    again = proto_event(SEOUL_MOBILE_NO_BUY, stored)
    stamp = stored["status"]["at"]
    # The emulator's form (base64 text) of the status write's own event: skipped, status untouched.
    assert client.post("/", data=base64.b64encode(again), headers={**headers, "ce-id": "e2"}).status_code == 200
    assert (documents.get("segments", "s1") or {})["status"]["at"] == stamp
    assert client.post("/", data=b"\x0a\xff", headers={**headers, "ce-id": "e3"}).status_code == 200


# --- due-ness ------------------------------------------------------------------------------------


def test_due_by_cron_in_the_segment_time_zone() -> None:
    segment = parse_segment("s1", SEOUL_MOBILE_NO_BUY)  # 07:00 Seoul = 22:00 UTC the day before
    built = {"computed_at": datetime(2026, 3, 9, 22, 0, 5, tzinfo=UTC), "computed_hash": segment.definition_hash}
    assert service.is_due(segment, {}, NOW)  # never built
    assert not service.is_due(segment, built, datetime(2026, 3, 10, 21, 59, tzinfo=UTC))
    assert service.is_due(segment, built, datetime(2026, 3, 10, 22, 0, tzinfo=UTC))
    assert service.is_due(segment, {**built, "computed_hash": "edited"}, datetime(2026, 3, 10, 1, tzinfo=UTC))
    as_text = {**built, "computed_at": "2026-03-09 22:00:05+00:00"}  # a JSON round trip
    assert not service.is_due(segment, as_text, datetime(2026, 3, 10, 21, 59, tzinfo=UTC))


# --- build_segments ------------------------------------------------------------------------------


def test_build_isolates_failures_and_is_idempotent_for_the_same_run_time() -> None:
    inner = planted_warehouse()
    warehouse = FailingWarehouse(inner, "boom", RuntimeError("no such table"))
    documents = store()
    documents.set("segments", "a-seoul", SEOUL_MOBILE_NO_BUY)
    documents.set("segments", "bad", BAD)
    documents.set("segments", "boom", SEOUL_MOBILE_NO_BUY)
    documents.set("segments", "off", {**SEOUL_MOBILE_NO_BUY, "enabled": False})
    documents.set(
        "segments", "z-vip", {**SEOUL_MOBILE_NO_BUY, "rules": {"segmentlet": "rvn_ltv", "op": "gte", "value": 800000}}
    )
    report = service.build_segments(warehouse, documents, NOW)
    assert sorted(report.built) == ["a-seoul", "z-vip"]  # z-vip runs after the failure
    assert report.invalid == ["bad"] and report.disabled == ["off"] and list(report.failed) == ["boom"]
    assert report.transient == []
    seoul = documents.get("segments", "a-seoul") or {}
    assert (seoul["size"], seoul["entered"], seoul["left"]) == (2, 2, 0)
    assert service.as_datetime(seoul["computed_at"]) == NOW and seoul["status"]["state"] == "ok"
    assert service.as_datetime(seoul["freshness"]["data_as_of"]) == datetime(2026, 3, 10, 3, tzinfo=UTC)
    assert (seoul["freshness"]["lag_minutes"], seoul["freshness"]["profiles"]) == (180, 9)
    boom = documents.get("segments", "boom") or {}
    assert boom["status"]["state"] == "error" and "no such table" in boom["status"]["message"]
    assert "size" not in boom
    assert (documents.get("segments", "bad") or {})["status"]["errors"] == [
        'rules.all[0].value: expected a number for age, got "abc"'
    ]
    assert current_members(inner, "a-seoul") == {"c03", "c09"}
    assert current_members(inner, "z-vip") == {"c04", "c07"}
    before = (history(inner, "a-seoul"), inner.query("SELECT * FROM audiences.segment_members ORDER BY 1"))

    again = service.build_segments(warehouse, documents, NOW)  # a redelivered job message
    assert again.built == {} and sorted(again.not_due) == ["a-seoul", "z-vip"] and list(again.failed) == ["boom"]
    assert (history(inner, "a-seoul"), inner.query("SELECT * FROM audiences.segment_members ORDER BY 1")) == before


def test_entered_and_left_across_days_and_same_day_reruns() -> None:
    warehouse, documents = planted_warehouse(), store()
    documents.set("segments", "s", SEOUL_MOBILE_NO_BUY)
    day1, day2 = NOW, NOW + timedelta(days=1)
    assert service.build_segments(warehouse, documents, day1).built["s"] == service.Evaluation(2, 2, 0)
    assert history(warehouse, "s") == [("c03", "2026-03-10", None), ("c09", "2026-03-10", None)]

    set_profile(warehouse, "c09", odr_ltv=1)  # c09 buys: leaves
    set_profile(warehouse, "c01", odr_ltv=0)  # c01's orders refunded: enters
    assert service.build_segments(warehouse, documents, day2).built["s"] == service.Evaluation(2, 1, 1)
    day2_history = [("c01", "2026-03-11", None), ("c03", "2026-03-10", None), ("c09", "2026-03-10", "2026-03-11")]
    assert history(warehouse, "s") == day2_history
    assert current_members(warehouse, "s") == {"c01", "c03"}
    doc = documents.get("segments", "s") or {}
    assert (doc["size"], doc["entered"], doc["left"]) == (2, 1, 1)

    segment = parse_segment("s", SEOUL_MOBILE_NO_BUY)
    later = day2 + timedelta(hours=3)  # same Seoul day
    assert service.evaluate_segment(segment, warehouse, later) == service.Evaluation(2, 1, 1)
    assert history(warehouse, "s") == day2_history  # a same-day re-run changes nothing

    set_profile(warehouse, "c09", odr_ltv=0)  # c09 back the same day: the spell reopens, no new one
    set_profile(warehouse, "c01", odr_ltv=6)  # c01 gone the same day: as if it never entered
    assert service.evaluate_segment(segment, warehouse, later) == service.Evaluation(2, 0, 0)
    assert history(warehouse, "s") == [("c03", "2026-03-10", None), ("c09", "2026-03-10", None)]
    assert current_members(warehouse, "s") == {"c03", "c09"}

    set_profile(warehouse, "c09", odr_ltv=2)
    day3 = day2 + timedelta(days=1)
    assert service.evaluate_segment(segment, warehouse, day3) == service.Evaluation(1, 0, 1)
    set_profile(warehouse, "c09", odr_ltv=0)
    day4 = day3 + timedelta(days=1)
    assert service.evaluate_segment(segment, warehouse, day4) == service.Evaluation(2, 1, 0)
    assert history(warehouse, "s") == [
        ("c03", "2026-03-10", None),
        ("c09", "2026-03-10", "2026-03-12"),
        ("c09", "2026-03-13", None),
    ]


def test_an_edit_makes_a_segment_due_and_only_named_segments_run() -> None:
    warehouse, documents = planted_warehouse(), store()
    documents.set("segments", "s", SEOUL_MOBILE_NO_BUY)
    documents.set("segments", "t", SEOUL_MOBILE_NO_BUY)
    assert sorted(service.build_segments(warehouse, documents, NOW, only=["s"]).built) == ["s"]
    edited = {**SEOUL_MOBILE_NO_BUY, "rules": {"segmentlet": "sex", "op": "eq", "value": "F"}}
    documents.set("segments", "s", {**(documents.get("segments", "s") or {}), **edited})
    report = service.build_segments(warehouse, documents, NOW + timedelta(minutes=5))
    assert sorted(report.built) == ["s", "t"]
    # Same Seoul day: entered counts everyone who entered since the end of the previous day.
    assert report.built["s"] == service.Evaluation(4, 4, 0)
    assert current_members(warehouse, "s") == {"c01", "c03", "c07", "c09"}


def test_an_outage_is_reported_for_redelivery() -> None:
    warehouse = FailingWarehouse(planted_warehouse(), "s", TransientError("bigquery unavailable"))
    documents = store()
    documents.set("segments", "s", SEOUL_MOBILE_NO_BUY)
    report = service.build_segments(warehouse, documents, NOW)
    assert report.transient == ["s"] and report.failed["s"] == "build failed: TransientError: bigquery unavailable"


def test_build_job_messages() -> None:
    fallback = NOW
    assert service.parse_build_job(b'{"job": "refine"}', fallback) is None
    assert service.parse_build_job(b"not json", fallback) is None
    job = service.parse_build_job(b'{"job": "build_segments"}', fallback)
    assert job == service.BuildJob(NOW, None)
    one = service.parse_build_job(
        b'{"job": "build_segments", "segment_id": "s", "run_at": "2026-03-10T15:00:00+09:00"}', fallback
    )
    assert one == service.BuildJob(datetime(2026, 3, 10, 6, tzinfo=UTC), ("s",))
    many = service.parse_build_job(b'{"job": "build_segments", "segment_ids": ["a", "b"]}', fallback)
    assert many is not None and many.only == ("a", "b")


def pubsub_event(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "message": {"data": base64.b64encode(json.dumps(message).encode()).decode(), "messageId": "1"},
        "subscription": "projects/p/subscriptions/jobs-build-segments",
    }


def test_build_segments_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = planted_warehouse()
    documents = store()
    documents.set("segments", "s", SEOUL_MOBILE_NO_BUY)
    warehouse: Any = inner
    monkeypatch.setattr(bootstrap, "warehouse", lambda: warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    monkeypatch.setattr(bootstrap, "schedule_config", ScheduleSettings)  # the deployment's minimum interval
    client = create_app("build_segments", "functions/build_segments/main.py").test_client()
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/jobs",
        "ce-id": "m1",
        "ce-time": "2026-03-10T06:00:00Z",
        "Content-Type": "application/json",
    }
    other = client.post("/", json=pubsub_event({"job": "refine"}), headers=headers)
    assert other.status_code == 200 and "size" not in (documents.get("segments", "s") or {})
    assert client.post("/", json=pubsub_event({"job": "build_segments"}), headers=headers).status_code == 200
    built = documents.get("segments", "s") or {}
    assert built["size"] == 2 and service.as_datetime(built["computed_at"]) == NOW
    documents.set("segments", "s", {"computed_at": None}, merge=True)
    warehouse = FailingWarehouse(inner, "s", TransientError("down"))
    failed = client.post("/", json=pubsub_event({"job": "build_segments"}), headers={**headers, "ce-id": "m2"})
    assert failed.status_code == 500  # Pub/Sub redelivers


# --- catalogue and apply -------------------------------------------------------------------------


def test_publish_catalogue_is_idempotent_and_drops_stale_documents() -> None:
    documents = store()
    documents.set("segmentlets", "retired", {"code": "retired"})
    first = service.publish_catalogue(documents)
    assert first == {"written": len(CATALOGUE) + len(TEMPLATES), "unchanged": 0, "deleted": 1}
    assert service.publish_catalogue(documents) == {
        "written": 0,
        "unchanged": len(CATALOGUE) + len(TEMPLATES),
        "deleted": 0,
    }
    age = documents.get("segmentlets", "age") or {}
    assert age["name_ko"] == "연령" and age["operators"][:2] == ["eq", "ne"] and age["product"] is True
    assert "behaviour" in age["templates"] and "rfm" in age["templates"]
    assert (documents.get("segmentlets", "rfm") or {})["values"][7] == "At risk"
    rfm = documents.get("templates", "rfm") or {}
    assert rfm["required"] == ["rfm"] and "rfm" in rfm["segmentlets"]


def test_apply_segment_is_idempotent_and_keeps_results() -> None:
    documents = store()
    definition = {"id": "s", **SEOUL_MOBILE_NO_BUY, "description": "first"}
    assert service.apply_segment(documents, "s", definition) == "created"
    assert service.apply_segment(documents, "s", definition) == "unchanged"
    documents.set("segments", "s", {"size": 5, "status": {"state": "ok"}}, merge=True)
    assert service.apply_segment(documents, "s", definition) == "unchanged"
    without_description = {k: v for k, v in definition.items() if k != "description"}
    assert service.apply_segment(documents, "s", without_description) == "updated"
    stored = documents.get("segments", "s") or {}
    assert "description" not in stored and "id" not in stored and stored["size"] == 5
    with pytest.raises(Exception, match="rules.all"):
        service.apply_segment(documents, "s", BAD)

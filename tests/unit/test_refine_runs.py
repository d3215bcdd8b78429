"""The refine service as a job: Firestore `runs` records, backfill equals day-by-day on synthetic
storefront traffic, the jobs message, the Cloud Function handler and the backfill command."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cli import refine as refine_cli
from devstack.storefront import ORIGIN, SITE_ID, Storefront
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import Site
from shared.schema import table_specs
from shared.services import refine as refinement
from shared.services.collect import CollectorConfig, HttpRequest, handle_request
from tests.builders import FIRST_DAY, LAST_DAY, History, dump, jobs_event, new_warehouse, planted, refined_tables
from tests.builders import REFINE_NOW as NOW
from tests.fakes import FakeBus, FakeDocumentStore

SHOP_END = datetime(2026, 3, 10, 12, tzinfo=UTC)
SHOP_DAYS = [date(2026, 3, 7) + timedelta(days=n) for n in range(4)]


def storefront(visitors: int = 80) -> History:
    """Storefront traffic of the 3 days before SHOP_END, as the real collector shapes it."""
    config = CollectorConfig({SITE_ID: Site(SITE_ID, (ORIGIN,))}, "beacons", "salt")
    bus = FakeBus()
    for beacon in Storefront(seed=6, visitors=visitors, days=3, end=SHOP_END, bad_share=0).beacons():
        headers = {k.lower(): v for k, v in beacon.headers.items()}
        handle_request(HttpRequest("POST", "/e", headers, beacon.body, remote_addr="127.0.0.1"), config, bus, SHOP_END)
    history = History()
    for table in ("raw.page", "raw.land", "raw.event", "raw.user", "raw.conv", "raw.bad_rows"):
        history.rows[table] += bus.rows(table)  # completed as the loader completes them
    return history


def test_backfill_equals_day_by_day_runs_on_storefront_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    history = storefront()
    daily = new_warehouse(history)
    for day in SHOP_DAYS:
        refinement.refine(daily, None, day, day, SHOP_END)
    chunked = new_warehouse(history)
    documents = FakeDocumentStore()
    report = refine_cli.backfill(chunked, documents, SHOP_DAYS[0], SHOP_DAYS[-1], SHOP_END, chunk_days=2)
    assert report.status == "succeeded" and report.rows["profiles"] > 50
    for name in refined_tables():
        assert dump(chunked, name) == dump(daily, name), name
    sessions = chunked.query("select session_date, ended_at from refined.sessions")
    crossing = [s for s in sessions if s["ended_at"].astimezone(UTC).date() > s["session_date"]]
    assert crossing, "the traffic should hold a session across midnight"
    assert "refine" in capsys.readouterr().err  # the progress bar
    [(run_id, record)] = documents.list("runs")
    assert (record["job"], record["status"], record["from"], record["to"]) == (
        "backfill",
        "succeeded",
        "2026-03-07",
        "2026-03-10",
    )


class RecordingStore(FakeDocumentStore):
    """Keeps every version of every document written."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, Any]] = []

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        self.writes.append(dict(data))
        super().set(collection, doc_id, data, merge)


def test_a_run_is_recorded_running_then_succeeded() -> None:
    warehouse, documents = new_warehouse(planted()), RecordingStore()
    report = refinement.refine(warehouse, documents, FIRST_DAY, LAST_DAY, NOW, run_id="refine-42")
    assert [w["status"] for w in documents.writes] == ["running", "succeeded"]
    record = documents.get("runs", "refine-42")
    assert record is not None
    assert record == {
        "job": "refine",
        "status": "succeeded",
        "from": "2026-02-01",
        "to": "2026-05-10",
        "as_of": "2026-05-10",
        "started_at": NOW,
        "finished_at": NOW + timedelta(milliseconds=report.duration_ms),
        "duration_ms": report.duration_ms,
        "rows": report.rows,
        "identity_rounds": report.identity_rounds,
        "profiles_rebuilt": report.profiles_rebuilt,
        "error": None,
    }
    discovery = {"clusters", "cluster_staging"}  # the discover job's tables, counted by its own runs
    working = {"identity_labels", "profile_queue", "profile_staging"}  # emptied or rebuilt by every run
    assert set(report.rows) == {name.split(".")[1] for name in refined_tables()} - working - discovery
    assert report.rows["events"] == sum(len(v) for v in planted().rows.values()) - 2
    assert 2 <= report.identity_rounds <= 4


class FailingWarehouse(DuckDBWarehouse):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if "insert into refined.profile_staging" in sql:
            raise RuntimeError("profiles exploded")
        return super().query(sql, params)


def test_a_failed_run_is_recorded_with_its_error_and_raises() -> None:
    warehouse, documents = FailingWarehouse(":memory:"), FakeDocumentStore()
    warehouse.ensure_tables(list(table_specs().values()))
    with pytest.raises(RuntimeError, match="profiles exploded"):
        refinement.refine(warehouse, documents, LAST_DAY, LAST_DAY, NOW, run_id="r1")
    record = documents.get("runs", "r1")
    assert record is not None
    assert (record["status"], record["error"], record["rows"]) == ("failed", "RuntimeError: profiles exploded", {})


def test_profiles_are_as_of_today_or_the_end_of_a_later_range() -> None:
    assert refinement.as_of(date(2026, 1, 31), NOW) == date(2026, 5, 10)  # today in Seoul
    assert refinement.as_of(date(2026, 6, 1), NOW) == date(2026, 6, 1)
    assert refinement.as_of(date(2026, 5, 10), datetime(2026, 5, 10, 15, 30, tzinfo=UTC)) == date(2026, 5, 11)


def small() -> History:
    h = History()
    h.visit("05-09 10:00", "v1", "/", medium="search", source="naver")
    h.add("raw.user", "05-09 10:01", "v1", "m1", email="m1@example.com")
    return h


def test_jobs_message_defaults_to_yesterday_and_today_in_seoul() -> None:
    late = datetime(2026, 5, 10, 16, 0, tzinfo=UTC)  # 01:00 on 05-11 in Seoul
    assert refinement.parse_job(b'{"job": "refine"}', late) == refinement.JobRequest(
        date(2026, 5, 10), date(2026, 5, 11)
    )
    given = refinement.parse_job(b'{"job": "refine", "from": "2026-01-01", "to": "2026-01-31"}', late)
    assert given == refinement.JobRequest(date(2026, 1, 1), date(2026, 1, 31))
    for body, error in [
        (b'{"job": "refine", "from": "2026-13-01"}', "from: '2026-13-01' is not a date"),
        (b'{"job": "refine", "from": "2026-02-01", "to": "2026-01-01"}', "after to"),
        (b"[]", "JSON object"),
        (b"{", "not JSON"),
    ]:
        with pytest.raises(ValueError, match=error):
            refinement.parse_job(body, late)


def test_chunks_cover_the_range_once() -> None:
    assert refinement.chunks(date(2026, 1, 1), date(2026, 1, 5), 2) == [
        (date(2026, 1, 1), date(2026, 1, 2)),
        (date(2026, 1, 3), date(2026, 1, 4)),
        (date(2026, 1, 5), date(2026, 1, 5)),
    ]
    with pytest.raises(ValueError):
        refinement.chunks(date(2026, 1, 1), date(2026, 1, 5), 0)


def test_the_handler_runs_its_job_and_ignores_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.refine.main import refine as handler
    from shared import bootstrap

    warehouse, documents = new_warehouse(small()), FakeDocumentStore()
    monkeypatch.setattr(bootstrap, "warehouse", lambda: warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    monkeypatch.setattr(bootstrap, "refine_settings", lambda: refinement.RefineSettings(privacy_salt="test-salt"))

    handler(jobs_event({"job": "build_segments"}))
    handler(jobs_event({"job": "refine", "from": "2026-05-02", "to": "2026-05-01"}))  # rejected, acknowledged
    assert "runs" not in documents.docs
    handler(jobs_event({"job": "refine", "from": FIRST_DAY.isoformat(), "to": LAST_DAY.isoformat()}, "99"))
    record = documents.get("runs", "refine-99")
    assert record is not None and record["status"] == "succeeded" and record["rows"]["profiles"] == 1
    assert handler.__name__ == "refine"


def test_the_backfill_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from shared import bootstrap

    warehouse = new_warehouse(small())
    monkeypatch.setattr(bootstrap, "warehouse", lambda: warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: pytest.fail("--no-record must not reach Firestore"))
    monkeypatch.setattr(bootstrap, "refine_settings", lambda: refinement.RefineSettings(privacy_salt="test-salt"))
    code = refine_cli.main(["backfill", "2026-05-08", "2026-05-10", "--chunk-days", "2", "--no-record"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (printed["job"], printed["status"], printed["from"]) == ("backfill", "succeeded", "2026-05-08")
    assert printed["rows"]["identities"] == 3  # visitor, member, email
    # An edge deleted by hand leaves nothing pending: only a repair run (--every-node) splits the customer.
    warehouse.query("delete from refined.identity_edges where starts_with(node_b, 'visitor:')")
    customers = "select count(distinct customer_id) as n from refined.identities"
    assert refine_cli.main(["run", "2026-05-10", "2026-05-10", "--no-record"]) == 0
    assert warehouse.query(customers) == [{"n": 1}]
    assert refine_cli.main(["run", "2026-05-10", "2026-05-10", "--no-record", "--every-node"]) == 0
    assert warehouse.query(customers) == [{"n": 2}]
    with pytest.raises(SystemExit) as exit_info:
        refine_cli.main(["backfill", "2026-05-10", "2026-05-01"])
    assert exit_info.value.code == 2

"""A small warehouse and document store with known rows in every table the report reads, shared by the
report's tests (numbers against independent queries, the page in Chromium).

The planted history (tests/builders.py) refined as of NOW, plus bad rows, segment spells,
publication ledger and log rows, campaign deliveries and their events, clusters, consent ledger
rows, and the documents that name them; some rows fall outside the 30-day window, some are copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.services import consent
from shared.services import refine as refinement
from tests.builders import SALT, SITE, customers_of, new_warehouse, planted
from tests.fakes import FakeDocumentStore

NOW = datetime(2026, 5, 10, 3, 0, tzinfo=UTC)  # 12:00 in Seoul: no night rule
DAYS = 30  # the window is 2026-04-11 .. 2026-05-10
RAW_TABLES = ("raw.page", "raw.land", "raw.event", "raw.user", "raw.conv")


@dataclass
class World:
    warehouse: DuckDBWarehouse
    documents: FakeDocumentStore
    people: dict[str, str]  # alice, tom, carol, bob -> customer id


def ts(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-{text}").replace(tzinfo=UTC)


def _insert(warehouse: DuckDBWarehouse, table: str, rows: list[dict[str, Any]], key: str) -> None:
    result = warehouse.insert_rows(table, rows, [str(r[key]) for r in rows])
    assert not result.errors, (table, result.errors)


def _copy(warehouse: DuckDBWarehouse, table: str, column: str, value: str) -> None:
    """A second copy of a row, as a retried streaming insert leaves in an append-only table."""
    with warehouse.connection() as conn:
        conn.execute(f"insert into {table} select * from {table} where {column} = ? limit 1", [value])


def build_world() -> World:
    warehouse = new_warehouse(planted())
    with warehouse.connection() as conn:  # requests: a few per table, some shared across tables
        for table in RAW_TABLES:
            conn.execute(f"update {table} set request_id = 'req-' || right(event_id, 1)")
    refinement.refine(warehouse, None, date(2026, 1, 1), NOW.date(), NOW, refinement.RefineSettings(privacy_salt=SALT))
    nodes = customers_of(warehouse, "member:m-alice", "visitor:vT", "visitor:vC", "visitor:vB")
    people = {
        "alice": nodes["member:m-alice"],
        "tom": nodes["visitor:vT"],
        "carol": nodes["visitor:vC"],
        "bob": nodes["visitor:vB"],
    }
    documents = FakeDocumentStore()
    _bad_rows(warehouse)
    _segments(warehouse, documents, people)
    _publications(warehouse, documents, people)
    _campaigns(warehouse, documents, people)
    _clusters(warehouse, documents, people)
    _consent(warehouse)
    _runs(documents)
    return World(warehouse, documents, people)


def _bad_rows(warehouse: DuckDBWarehouse) -> None:
    def row(n: int, day: str, stage: str, reason: str) -> dict[str, Any]:
        return {
            "bad_row_id": f"bad-{n}",
            "event_date": f"2026-{day}",
            "failed_at": ts(f"{day}T10:00:00").isoformat(),
            "stage": stage,
            "reason_code": reason,
            "site_id": SITE,
            "request_id": f"bad-req-{n % 2}",
        }

    rows = [
        row(1, "05-02", "collect", "malformed_json"),
        row(2, "05-03", "collect", "wrong_type"),
        row(3, "05-04", "collect", "wrong_type"),
        row(4, "05-05", "load", "unsigned_message"),
        row(5, "05-06", "import", "invalid_email"),
        row(6, "03-01", "collect", "wrong_type"),  # before the window
    ]
    _insert(warehouse, "raw.bad_rows", rows, "bad_row_id")
    _copy(warehouse, "raw.bad_rows", "bad_row_id", "bad-2")


def _segments(warehouse: DuckDBWarehouse, documents: FakeDocumentStore, people: dict[str, str]) -> None:
    spells = [
        ("vip", "alice", "2026-04-20", None),
        ("vip", "carol", "2026-04-25", "2026-05-05"),
        ("vip", "tom", "2026-03-01", None),
        ("vip", "bob", "2026-01-01", "2026-02-01"),  # over before the window
        ("lapsed", "bob", "2026-05-01", None),
    ]
    rows = [
        {
            "spell_id": f"{segment}/{people[who]}/{entered}",
            "segment_id": segment,
            "customer_id": people[who],
            "site_id": SITE,
            "entered_on": entered,
            "left_on": left,
        }
        for segment, who, entered, left in spells
    ]
    _insert(warehouse, "audiences.segment_member_history", rows, "spell_id")
    members = [
        {"membership_id": f"{s}/{people[w]}", "segment_id": s, "customer_id": people[w], "site_id": SITE,
         "computed_at": NOW.isoformat()}
        for s, w in (("vip", "alice"), ("vip", "tom"), ("lapsed", "bob"))
    ]  # fmt: skip
    _insert(warehouse, "audiences.segment_members", members, "membership_id")
    documents.set("segments", "vip", {"name": "VIP 고객"})


def _publications(warehouse: DuckDBWarehouse, documents: FakeDocumentStore, people: dict[str, str]) -> None:
    def entry(n: int, who: str, added: str, run: str, removed: str | None = None, reason: str | None = None,
              removed_run: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {
            "entry_id": f"e{n}",
            "publication_id": "pub-vip",
            "site_id": SITE,
            "destination_id": "meta",
            "audience_id": "238500001",
            "customer_id": people[who],
            "row_hash": f"h{n}",
            "keys": ["EMAIL"],
            "hashes": [f"x{n}"],
            "added_at": ts(added).isoformat(),
            "added_run": run,
            "removed_at": ts(removed).isoformat() if removed else None,
            "removed_run": removed_run,
            "removed_reason": reason,
        }

    ledger = [
        entry(1, "alice", "05-01T09:00:00", "r1"),
        entry(2, "tom", "05-01T09:00:00", "r1"),
        entry(3, "carol", "05-01T09:00:00", "r1", "05-06T09:00:00", "left_segment", "r2"),
        entry(4, "tom", "03-01T09:00:00", "r0", "05-01T09:00:00", "key_changed", "r1"),
    ]
    _insert(warehouse, "audiences.publication_ledger", ledger, "entry_id")

    def batch(log_id: str, run: str, op: str, rows: int, invalid: int, outcome: str, sent: str) -> dict[str, Any]:
        return {
            "log_id": log_id,
            "run_id": run,
            "publication_id": "pub-vip",
            "audience_id": "238500001",
            "batch_seq": 1,
            "attempt": 1,
            "op": op,
            "rows": rows,
            "num_received": rows - invalid,
            "num_invalid_entries": invalid,
            "sent_at": ts(sent).isoformat(),
            "outcome": outcome,
        }

    log = [
        batch("l0", "r0", "add", 1, 0, "ok", "03-01T09:00:00"),
        batch("l1", "r1", "add", 3, 1, "ok", "05-01T09:00:00"),
        batch("l1r", "r1", "remove", 1, 0, "ok", "05-01T09:01:00"),
        batch("l2", "r2", "remove", 1, 0, "ok", "05-06T09:00:00"),
        batch("l3", "r2", "add", 2, 0, "throttled", "05-06T09:00:01"),
    ]
    _insert(warehouse, "audiences.publish_log", log, "log_id")
    _copy(warehouse, "audiences.publish_log", "log_id", "l1")
    documents.set("publications", "pub-vip", {"name": "VIP → Meta"})


def _campaigns(warehouse: DuckDBWarehouse, documents: FakeDocumentStore, people: dict[str, str]) -> None:
    def delivery(
        d: str,
        who: str,
        channel: str,
        outcome: str,
        reason: str,
        *,
        fallback_of: str | None = None,
        dry_run: bool = False,
        planned: str = "05-08T01:00:00",
        campaign: str = "winback",
    ) -> dict[str, Any]:
        return {
            "delivery_id": d,
            "campaign_id": campaign,
            "run_id": "run-1",
            "site_id": SITE,
            "customer_id": people.get(who, who),
            "channel": channel,
            "kind": "advertising",
            "outcome": outcome,
            "reason": reason,
            "fallback_of": fallback_of,
            "dry_run": dry_run,
            "planned_at": ts(planned).isoformat(),
        }

    rows = [
        delivery("d1", "alice", "sms", "send", "eligible"),
        delivery("d2", "tom", "sms", "send", "eligible"),
        delivery("d3", "carol", "sms", "skip", "no_address"),
        delivery("d3e", "carol", "email", "send", "eligible", fallback_of="d3"),
        delivery("d4", "bob", "sms", "skip", "no_marketing_consent"),
        delivery("d5", "cx1", "sms", "hold", "night_not_allowed"),
        delivery("d6", "cx2", "sms", "skip", "frequency_capped"),
        delivery("d7", "cx3", "sms", "send", "eligible", dry_run=True),
        delivery("d8", "cx4", "sms", "send", "eligible", planned="03-01T01:00:00"),
        delivery("d9", "cx5", "sms", "send", "eligible"),
        delivery("n1", "alice", "email", "send", "eligible", campaign="notice"),
    ]
    _insert(warehouse, "audiences.deliveries", rows, "delivery_id")
    _copy(warehouse, "audiences.deliveries", "delivery_id", "d1")
    by_id = {r["delivery_id"]: r for r in rows}

    def event(d: str, kind: str, code: str | None = None, at: str = "05-08T01:05:00") -> dict[str, Any]:
        row = by_id[d]
        return {
            "event_id": f"{d}-{kind}-{code}",
            "delivery_id": d,
            "campaign_id": row["campaign_id"],
            "run_id": row["run_id"],
            "site_id": SITE,
            "customer_id": row["customer_id"],
            "channel": row["channel"],
            "event": kind,
            "code": code,
            "at": ts(at).isoformat(),
        }

    events = [
        event("d1", "sent"),
        event("d1", "delivered"),
        event("d1", "clicked", at="05-08T02:00:00"),
        event("d1", "unsubscribed", "sms_stop", at="05-08T03:00:00"),
        event("d2", "failed", "30003"),
        event("d3e", "sent"),
        event("d3e", "complained", "abuse", at="05-08T06:00:00"),  # a feedback loop's complaint
        event("d3e", "unsubscribed", "arf abuse", at="05-08T06:00:00"),
        event("d5", "held", "night_not_allowed"),
        event("d5", "released"),
        event("d7", "sent"),
        event("d8", "sent", at="03-01T01:05:00"),
        event("d9", "skipped", "frequency_capped"),
        event("n1", "sent"),
        event("n1", "bounced", "550 5.1.1"),
    ]
    _insert(warehouse, "audiences.delivery_events", events, "event_id")
    _copy(warehouse, "audiences.delivery_events", "event_id", "d1-sent-None")
    documents.set("campaigns", "winback", {"name": "휴면 회원 새 혜택 안내"})


def _clusters(warehouse: DuckDBWarehouse, documents: FakeDocumentStore, people: dict[str, str]) -> None:
    assigned = [("alice", 0, 0.5), ("tom", 0, 1.5), ("carol", 1, 0.8), ("bob", 1, 1.2), ("cx9", 1, 2.0)]
    rows = [
        {"customer_id": people.get(who, who), "site_id": SITE, "cluster_id": cluster, "distance": distance,
         "run_id": "disc-1", "computed_at": NOW.isoformat()}
        for who, cluster, distance in assigned
    ]  # fmt: skip
    _insert(warehouse, "refined.clusters", rows, "customer_id")
    documents.set("discoveries", "config", {"latest_run": "disc-1"})
    documents.set(
        "discoveries",
        "disc-1",
        {
            "run_id": "disc-1",
            "transform": {"columns": ["rvn_ltv", "sessions", "device=mobile"], "weight": [1.0, 1.0, 0.5]},
            "clusters": [
                {"id": 0, "label": "high spend", "label_ko": "고액 구매", "centroid_transformed": [1.2, 0.4, -0.25]},
                {"id": 1, "label": "browsers", "label_ko": "둘러보기", "centroid_transformed": [-0.8, -0.3, 0.5]},
            ],
        },
    )


def _consent(warehouse: DuckDBWarehouse) -> None:
    at = ts("05-01T00:00:00")
    consent.record_consent(
        warehouse, SITE, "member", "m-alice", {"marketing": True, "ad_user_data": True}, at, "tracker", recorded_at=at
    )
    consent.record_consent(warehouse, SITE, "visitor", "vT", {"marketing": False}, at, "tracker", recorded_at=at)
    consent.record_subscription(warehouse, SITE, "email", "alice@example.com", True, at, "form", recorded_at=at)


def _runs(documents: FakeDocumentStore) -> None:
    def run(run_id: str, job: str, status: str, started: datetime, error: str | None = None) -> None:
        doc: dict[str, Any] = {"job": job, "status": status, "started_at": started,
                               "finished_at": started + timedelta(minutes=1), "duration_ms": 60_000}  # fmt: skip
        if error:
            doc["error"] = error
        documents.set("runs", run_id, doc)

    run("refine-1", "refine", "succeeded", NOW - timedelta(hours=2))
    run("refine-0", "refine", "succeeded", NOW - timedelta(hours=3))
    run("discover-0", "discover", "succeeded", NOW - timedelta(hours=30))
    run("discover-1", "discover", "failed", NOW - timedelta(hours=1), "RuntimeError: boom")
    run("segments-1", "build_segments", "succeeded", NOW - timedelta(hours=5))
    run("sync-1", "sync_schedules", "ok", NOW - timedelta(minutes=5))
    run("old-1", "privacy_requests", "succeeded", NOW - timedelta(days=20))  # beyond the lookback

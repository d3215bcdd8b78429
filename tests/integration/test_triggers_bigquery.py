"""The triggered campaigns' statements through BigQueryWarehouse (the real client) on bqemulator: due
entries into a segment and due events (with and without a segment, a null parameter BigQuery must be
told the type of), the runs to publish, the cap's counts for a list of customers and the latency
must give what DuckDB gives for the same rows: the SQL is BigQuery's, not only sqlglot's idea of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.consent.vocabulary import Channel, Kind
from shared.messaging import ledger
from shared.messaging.campaigns import Campaign, Trigger, TriggerWhen
from shared.ports import Warehouse
from shared.schema import table_spec
from shared.services.triggers import due_entries, trigger_latency
from tests.builders import SITE, new_warehouse

PROJECT = "cdp-local"
TABLES = (
    "raw.event",
    "raw.conv",
    "raw.page",
    "raw.land",
    "raw.user",
    "refined.identities",
    "audiences.segment_members",
    "audiences.deliveries",
)
NOON = datetime(2026, 6, 3, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def plant(w: Warehouse) -> None:
    """Three members entered at different times, one of them answered already; three sign-ups, one of
    a person refinement has not resolved."""
    members = [
        {"membership_id": f"seg/{c}", "segment_id": "seg", "customer_id": c, "site_id": SITE,
         "computed_at": NOON, "entered_at": NOON - minutes * MINUTE}
        for c, minutes in (("c_ann", 70), ("c_bob", 65), ("c_cat", 300))
    ]  # fmt: skip
    w.insert_rows("audiences.segment_members", members, [m["membership_id"] for m in members])
    nodes = [("member:m-ann", "c_ann"), ("visitor:v-bob", "c_bob"), ("member:m-bob", "")]
    identities = [
        {"identity_id": f"{SITE}|{n}", "site_id": SITE, "node": n, "id_type": n.split(":")[0],
         "id_value": n.split(":")[1], "customer_id": c}
        for n, c in nodes
    ]  # fmt: skip
    w.insert_rows("refined.identities", identities, [r["identity_id"] for r in identities])
    convs = [
        {"event_id": e, "site_id": SITE, "event_date": at.date(), "event_ts": at, "collected_at": at + MINUTE / 30,
         "source": "tracker", "conv_type": "signup", "member_id": m, "visitor_id": v, "is_bot": False}
        for e, at, m, v in (("e-ann", NOON - 3 * MINUTE, "m-ann", None), ("e-bob", NOON - 2 * MINUTE, "m-bob", "v-bob"),
                            ("e-new", NOON - MINUTE, "m-new", "v-new"))
    ]  # fmt: skip
    w.insert_rows("raw.conv", convs, [r["event_id"] for r in convs])
    answered = {
        "delivery_id": "d" * 32, "campaign_id": "cart", "run_id": "entry-x", "site_id": SITE, "customer_id": "c_bob",
        "channel": "sms", "kind": "advertising", "outcome": "send", "reason": "eligible", "batch": 1,
        "dry_run": False, "planned_at": NOON - 4 * MINUTE,
    }  # fmt: skip
    w.insert_rows("audiences.deliveries", [answered], [answered["delivery_id"]])


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, Warehouse]]:
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu"), PROJECT)
    try:
        client = bigquery_client(server, PROJECT)
        prefix = f"t{uuid.uuid4().hex[:8]}_"
        bigquery = BigQueryWarehouse(PROJECT, prefix, client=client, retry_deadline=10, request_timeout=30)
        bigquery.ensure_tables([table_spec(name) for name in TABLES])
        plant(bigquery)
        duckdb = new_warehouse()
        plant(duckdb)
        yield bigquery, duckdb
    finally:
        server.stop()


def campaign(trigger: Trigger, segment_id: str | None = "seg", campaign_id: str = "cart") -> Campaign:
    return Campaign(campaign_id, segment_id, Kind.INFORMATIONAL, (Channel.SMS,), "t", enabled=True, trigger=trigger)


def due(w: Warehouse, c: Campaign) -> tuple[list[tuple[str, str, str]], int]:
    found = due_entries(w, c, NOON)
    return sorted((e.customer_id, e.run_id, e.at.astimezone(UTC).isoformat()) for e in found.entries), found.waiting


ENTRY = Trigger(TriggerWhen.SEGMENT_ENTRY, 60 * MINUTE, 120 * MINUTE)
SIGNUP = Trigger(TriggerWhen.EVENT, timedelta(0), 60 * MINUTE, "signup", "conv")


@pytest.mark.parametrize(
    ("trigger", "segment_id", "campaign_id"),
    [(ENTRY, "seg", "cart"), (ENTRY, "seg", "other"), (SIGNUP, None, "welcome"), (SIGNUP, "seg", "cart")],
)
def test_due_entries_on_bigquery_are_duckdbs(
    engines: tuple[Warehouse, Warehouse], trigger: Trigger, segment_id: str | None, campaign_id: str
) -> None:
    bigquery, duckdb = engines
    c = campaign(trigger, segment_id, campaign_id)
    assert due(bigquery, c) == due(duckdb, c)


def test_the_planted_answers_on_bigquery(engines: tuple[Warehouse, Warehouse]) -> None:
    bigquery, _ = engines
    entered = (NOON - 70 * MINUTE).isoformat()
    assert due(bigquery, campaign(ENTRY)) == ([("c_ann", "entry-20260603T015000Z", entered)], 0)  # bob answered
    welcome = due(bigquery, campaign(SIGNUP, None, "welcome"))
    assert [(c, r) for c, r, _ in welcome[0]] == [("c_ann", "event-e-ann"), ("c_bob", "event-e-bob")]
    assert welcome[1] == 1  # e-new: refinement has not resolved m-new or v-new
    latency = trigger_latency(bigquery, "cart", "e-bob")
    assert latency is not None and (latency.customer_id, latency.latency) == ("c_bob", None)  # planned before it
    runs = ledger.run(bigquery, "trigger_runs", {"campaign_id": "cart", "since": NOON - 10 * MINUTE})
    assert [(r["run_id"], r["batches"]) for r in runs] == [("entry-x", 1)]


def test_the_caps_counts_for_a_list_of_customers(engines: tuple[Warehouse, Warehouse]) -> None:
    counts: list[dict[str, Any]] = [
        ledger.sent_counts(w, SITE, None, NOON - 7 * 24 * 60 * MINUTE, ["c_ann", "c_bob"]) for w in engines
    ]
    assert counts[0] == counts[1] == {}  # nothing sent: no events

"""The consent statements through BigQueryWarehouse (the real client) on bqemulator: the ledgers
written by the recording services, then the gate, the current states and re-confirmation must give
what DuckDB gives for the same history. This checks that the parameters the service binds (a null
segment, an empty array, timestamps, the salt) are typed as BigQuery wants them and that the SQL
is BigQuery's, not only sqlglot's idea of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.ports import Warehouse
from shared.privacy.subjects import Identifier
from shared.privacy.suppression import suppress
from shared.schema import table_spec
from shared.services import consent as service
from tests.builders import SALT, SITE, link, new_warehouse

PROJECT = "cdp-local"
TABLES = (
    "raw.consent",
    "raw.subscription",
    "refined.identities",
    "audiences.segment_members",
    "privacy.suppressions",
)
T0 = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NOON = T0 + 20 * DAY
NIGHT = NOON + timedelta(hours=11)
CUSTOMERS = ["c_ann", "c_ben", "c_cat", "c_dov", "c_eve", "c_fin", "c_nobody"]


def plant(w: Warehouse) -> None:
    """One customer per rule, recorded through the services."""

    def decide(node: str, purposes: dict[str, object], at: datetime) -> None:
        kind, value = node.split(":", 1)
        service.record_consent(w, SITE, kind, value, purposes, at, "tracker", recorded_at=at)

    link(w, "c_ann", "visitor:vA", "email:ann@x.com")  # e-mail grants, visitor withdraws, member-less regrant
    decide("email:ann@x.com", {"marketing": True, "ad_user_data": True}, T0)
    decide("visitor:vA", {"marketing": False}, T0 + 5 * DAY)
    decide("email:ann@x.com", {"marketing": True}, T0 + 10 * DAY)
    service.record_subscription(w, SITE, "email", "ann@x.com", True, T0, "form", recorded_at=T0)
    link(w, "c_ben", "email:ben@x.com")  # withdrawn at the same instant as a grant
    decide("email:ben@x.com", {"marketing": True}, T0)
    service.record_consent(w, SITE, "email", "ben@x.com", {"marketing": False}, T0, "import", recorded_at=T0)
    service.record_subscription(w, SITE, "email", "ben@x.com", True, T0, "form", recorded_at=T0)
    link(w, "c_cat", "phone:+821055556666")  # SMS opt-out
    decide("phone:+821055556666", {"marketing": True, "night_marketing": True}, T0)
    service.record_subscription(w, SITE, "sms", "010-5555-6666", True, T0, "form", recorded_at=T0)
    service.record_opt_out(w, SITE, "sms", "010-5555-6666", "provider_opt_out", "21610", T0 + DAY)
    link(w, "c_dov", "email:dov@x.com")  # suppressed
    decide("email:dov@x.com", {"marketing": True}, T0)
    service.record_subscription(w, SITE, "email", "dov@x.com", True, T0, "form", recorded_at=T0)
    suppress(w, SALT, SITE, {Identifier("email", "dov@x.com"): "erase-1"}, T0)
    link(w, "c_eve", "member:m-eve")  # an address known by member id, night consent
    decide("member:m-eve", {"marketing": True, "night_marketing": True}, T0)
    service.record_subscription(w, SITE, "email", "eve@work.example", True, T0, "form", recorded_at=T0,
                                member_id="m-eve")  # fmt: skip
    link(w, "c_fin", "email:fin@x.com")  # never subscribed; re-confirmed once
    decide("email:fin@x.com", {"marketing": True}, T0 - 800 * DAY)
    service.record_reconfirmation(w, SITE, "email", "fin@x.com", ["marketing"], T0 - 100 * DAY)
    members = [
        {"membership_id": f"seg/{c}", "segment_id": "seg", "customer_id": c, "site_id": SITE, "computed_at": T0}
        for c in ("c_ann", "c_ben", "c_nobody")
    ]
    w.insert_rows("audiences.segment_members", members, [m["membership_id"] for m in members])


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


def answers(w: Warehouse, purpose: str | None, channel: str | None, at: datetime, **audience: Any) -> list[Any]:
    audience = audience or {"customer_ids": CUSTOMERS}
    rows = service.eligible_audience(w, SITE, purpose, channel, at, SALT, **audience)
    return sorted(rows, key=lambda r: r.customer_id)


@pytest.mark.parametrize(
    ("purpose", "channel", "at"),
    [
        ("marketing", "email", NOON),
        ("marketing", "email", T0 + 6 * DAY),
        ("marketing", "email", NIGHT),
        ("marketing", "sms", NOON),
        (None, "email", NOON),
        ("ad_user_data", None, NOON),
    ],
)
def test_the_gate_on_bigquery_answers_as_on_duckdb(
    engines: tuple[Warehouse, Warehouse], purpose: str | None, channel: str | None, at: datetime
) -> None:
    bigquery, duckdb = engines
    assert answers(bigquery, purpose, channel, at) == answers(duckdb, purpose, channel, at)


def test_the_planted_reasons_on_bigquery(engines: tuple[Warehouse, Warehouse]) -> None:
    bigquery, _ = engines
    by_day = {r.customer_id: r.reason.value for r in answers(bigquery, "marketing", "email", NOON)}
    assert by_day == {
        "c_ann": "eligible",
        "c_ben": "withdrawn",
        "c_cat": "no_address",
        "c_dov": "suppressed",
        "c_eve": "eligible",
        "c_fin": "no_subscription",
        "c_nobody": "no_consent",
    }
    at_night = {r.customer_id: r for r in answers(bigquery, "marketing", "email", NIGHT)}
    assert at_night["c_ann"].reason.value == "night_not_allowed" and at_night["c_ann"].hold_until is not None
    assert at_night["c_eve"].reason.value == "eligible" and at_night["c_eve"].night_consent_event_id
    sms = {r.customer_id: r.reason.value for r in answers(bigquery, "marketing", "sms", NOON)}
    assert sms["c_cat"] == "unsubscribed"
    segment = {r.customer_id: r.reason.value for r in answers(bigquery, "marketing", "email", NOON, segment_id="seg")}
    assert segment == {"c_ann": "eligible", "c_ben": "withdrawn", "c_nobody": "no_consent"}


def test_state_and_reconfirmation_on_bigquery(engines: tuple[Warehouse, Warehouse]) -> None:
    bigquery, duckdb = engines

    def comparable(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, str], ...]]:
        def plain(value: Any) -> str:
            return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else repr(value)

        return sorted(tuple(sorted((k, plain(v)) for k, v in row.items())) for row in rows)

    for read in (service.consent_states, service.subscription_states):
        assert comparable(read(bigquery, SITE, NOON)) == comparable(read(duckdb, SITE, NOON))
    due = service.reconfirmations_due(bigquery, SITE, NOON, date(2028, 1, 1))
    assert [(r.customer_id, r.purpose.value, r.due_on) for r in due] == [("c_fin", "marketing", date(2027, 12, 22))]
    assert due == service.reconfirmations_due(duckdb, SITE, NOON, date(2028, 1, 1))
    assert len(service.reconfirmations_due(bigquery, SITE, NOON, date(2028, 4, 30))) == 7  # cat and eve: two each

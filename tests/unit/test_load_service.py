"""The load service over the embedded DuckDB warehouse: idempotent, nothing dropped."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.ports import InsertResult, TransientError
from shared.schema import table_specs
from shared.services.load import bury_dead_letter, load_message
from shared.signing import SIGNATURE_ATTRIBUTE, sign

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    w = DuckDBWarehouse(":memory:")
    w.ensure_tables(list(table_specs().values()))
    return w


def page_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "event_id": str(uuid.uuid4()),
        "site_id": "s",
        "event_date": "2026-11-20",
        "event_ts": "2026-11-20T11:59:00+00:00",
        "collected_at": "2026-11-20T12:00:00+00:00",
        "source": "tracker",
        "visitor_id": "v1",
    }
    row.update(overrides)
    return row


def message(*entries: tuple[str, dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "request_id": "r1", "rows": [{"table": t, "row": r} for t, r in entries]}).encode()


def count(w: DuckDBWarehouse, table: str) -> int:
    return int(w.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


def test_rows_land_in_their_tables_and_redelivery_adds_nothing(warehouse: DuckDBWarehouse) -> None:
    conv = page_row(
        conv_type="order",
        order_id="o1",
        revenue=39000,
        items=[{"product_id": "p1", "price": 39000, "quantity": 1}],
        properties={"coupon": "X"},
    )
    data = message(("raw.page", page_row()), ("raw.page", page_row()), ("raw.conv", conv))
    first = load_message(data, warehouse, now=NOW)
    assert first.inserted == {"raw.page": 2, "raw.conv": 1} and first.bad_rows == 0
    again = load_message(data, warehouse, now=NOW)
    assert again.total_inserted == 0 and again.duplicates == 3
    assert count(warehouse, "raw.page") == 2
    stored = warehouse.query(
        "SELECT revenue, items[OFFSET(0)].quantity AS q, JSON_VALUE(properties, '$.coupon') AS c FROM raw.conv"
    )
    assert stored == [{"revenue": 39000, "q": 1, "c": "X"}]


def test_rows_the_warehouse_refuses_become_bad_rows(warehouse: DuckDBWarehouse) -> None:
    good, bad = page_row(), page_row(conv_type="order", revenue="not a number")
    report = load_message(message(("raw.page", good), ("raw.conv", bad)), warehouse, now=NOW)
    assert report.inserted["raw.page"] == 1 and report.bad_rows == 1
    (row,) = warehouse.query("SELECT reason_code, field, event_id, payload FROM raw.bad_rows")
    assert row["reason_code"] == "warehouse_rejected" and row["field"] == "raw.conv"
    assert json.loads(row["payload"])["event_id"] == bad["event_id"]


def test_undecodable_messages_and_unknown_tables_are_kept_as_bad_rows(warehouse: DuckDBWarehouse) -> None:
    load_message(b"\x00garbage", warehouse, now=NOW)
    load_message(message(("refined.profiles", page_row()), ("raw.page", {"site_id": "s"})), warehouse, now=NOW)
    reasons = sorted(r["reason_code"] for r in warehouse.query("SELECT reason_code FROM raw.bad_rows"))
    assert reasons == ["invalid_row", "invalid_row", "undecodable_message"]
    load_message(b"\x00garbage", warehouse, now=NOW)
    assert count(warehouse, "raw.bad_rows") == 3  # the same failure is stored once


Batches = Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str]]]


class OutageWarehouse:
    def insert_many(self, batches: Batches) -> dict[str, InsertResult]:
        raise TransientError("warehouse down")


class BuggyWarehouse(DuckDBWarehouse):
    def insert_many(self, batches: Batches) -> dict[str, InsertResult]:
        if set(batches) != {"raw.bad_rows"}:
            raise KeyError("a bug")
        return super().insert_many(batches)


def test_outages_raise_for_redelivery_on_every_attempt() -> None:
    with pytest.raises(TransientError):
        load_message(message(("raw.page", page_row())), OutageWarehouse(), now=NOW, delivery_attempt=5)  # type: ignore[arg-type]


def test_a_message_that_keeps_failing_is_buried_on_its_last_attempt() -> None:
    w = BuggyWarehouse(":memory:")
    w.ensure_tables(list(table_specs().values()))
    data = message(("raw.page", page_row()))
    with pytest.raises(KeyError):
        load_message(data, w, now=NOW, delivery_attempt=4, max_attempts=5)
    report = load_message(data, w, now=NOW, delivery_attempt=5, max_attempts=5)
    assert report.bad_rows == 1
    (row,) = w.query("SELECT reason_code, stage, payload FROM raw.bad_rows")
    assert row["reason_code"] == "load_failed" and row["stage"] == "load" and json.loads(row["payload"])["rows"]


def test_dead_letters_are_buried_whole_and_once(warehouse: DuckDBWarehouse) -> None:
    data = message(("raw.page", page_row()))
    bury_dead_letter(data, {"site_id": "s", "request_id": "r1"}, warehouse, now=NOW)
    bury_dead_letter(data, {"site_id": "s", "request_id": "r1"}, warehouse, now=NOW)
    (row,) = warehouse.query("SELECT reason_code, site_id, request_id, payload FROM raw.bad_rows")
    assert (row["reason_code"], row["site_id"], row["request_id"]) == ("dead_lettered", "s", "r1")
    assert row["payload"].encode() == data


def test_with_a_bus_key_only_messages_collect_signed_are_loaded(warehouse: DuckDBWarehouse) -> None:
    """A message on the beacons topic that collect did not sign (a Scheduler job, a script) is kept
    whole as a bad row and loads nothing."""
    key = "bus-key"
    data = message(("raw.page", page_row()))
    signed = load_message(data, warehouse, now=NOW, attributes={SIGNATURE_ATTRIBUTE: sign(data, key)}, bus_key=key)
    assert signed.inserted == {"raw.page": 1}
    forged = message(("raw.page", page_row()))
    for attributes in ({}, {SIGNATURE_ATTRIBUTE: sign(forged, "another key")}, {SIGNATURE_ATTRIBUTE: sign(data, key)}):
        report = load_message(forged, warehouse, now=NOW, attributes=attributes, bus_key=key)
        assert report.bad_rows == 1 and report.inserted.get("raw.page", 0) == 0
    assert count(warehouse, "raw.page") == 1
    rows = warehouse.query("SELECT DISTINCT reason_code, payload FROM raw.bad_rows")
    assert [(r["reason_code"], json.loads(r["payload"])) for r in rows] == [("unsigned_message", json.loads(forged))]

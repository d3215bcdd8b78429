"""A click through the entry points as Cloud Functions serves them: collect's `GET /c` on the real
functions-framework app answers with the redirect, and its bus message pushed to load_events (the
real app too) writes the click into an in-memory DuckDB. Ports are our fakes and DuckDB.

The composition root does not pass the click key to collect yet, so the config is the one
bootstrap builds with the key added, as build_collector_config will give it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared import bootstrap, serving
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import Settings
from shared.messaging import clicks
from shared.messaging.clicks import Click
from shared.schema import table_spec
from tests.fakes import FakeBus
from tests.functions.test_entry_points import ENV, HTTP, app_client, push

KEY = "entry-point-click-key"
BUS_KEY = "entry-point-bus-key"
CLICK = Click("test-shop", "spring", "cron-20260601T0100Z", "c_0123456789abcdef0123", "email",
              "https://shop.example/sale?s=1", datetime.now(UTC) + timedelta(days=30))  # fmt: skip


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> FakeBus:
    settings = Settings.from_env({**ENV, "CDP_BUS_KEY": BUS_KEY})
    config = dataclasses.replace(bootstrap.build_collector_config(settings), click_key=KEY)
    bus = FakeBus()
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([table_spec(name) for name in ("raw.event", "raw.bad_rows", clicks.LEDGER_TABLE)])
    built: dict[str, object] = {"settings": settings, "collector_config": config, "bus": bus, "warehouse": warehouse}
    for name, value in built.items():
        monkeypatch.setattr(bootstrap, name, _returning(value))
    monkeypatch.setattr(serving, "settle_heap", lambda: None)  # would freeze the test runner's heap
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", HTTP)
    return bus


def _returning(value: object) -> Callable[[], object]:
    return lambda: value


def test_a_click_is_redirected_by_collect_and_stored_by_load_events(bus: FakeBus) -> None:
    collect = app_client("collect")
    answer = collect.get(f"/c?t={clicks.sign(CLICK, KEY)}", headers={"User-Agent": "Mozilla/5.0 (Macintosh)"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert answer.headers["Location"] == (
        "https://shop.example/sale?s=1&utm_source=email&utm_medium=email&utm_campaign=spring"
        "&utm_content=cron-20260601T0100Z"
    )
    assert answer.headers["Cache-Control"] == "no-store"
    [(_, data, attributes)] = bus.published

    loader = app_client("load_events")
    assert loader.post("/", json=push(data, **attributes)).status_code == 200
    warehouse = bootstrap.warehouse()
    assert isinstance(warehouse, DuckDBWarehouse)
    [event] = warehouse.query("select event_id, event_name, source, properties from raw.event")
    [ledger] = warehouse.query("select event_id, delivery_id, customer_id, event from audiences.delivery_events")
    assert (event["event_name"], event["source"]) == ("message_clicked", "click")
    assert json.loads(event["properties"])["delivery_id"] == CLICK.delivery_id
    assert ledger == {
        "event_id": event["event_id"],
        "delivery_id": CLICK.delivery_id,
        "customer_id": "c_0123456789abcdef0123",
        "event": "clicked",
    }
    assert warehouse.query("select * from raw.bad_rows") == []


def test_a_forged_link_is_refused_by_the_served_function(bus: FakeBus) -> None:
    collect = app_client("collect")
    forged = clicks.sign(dataclasses.replace(CLICK, url="https://evil.example/"), "not-our-key")
    answer = collect.get(f"/c?t={forged}")
    assert answer.status_code == 403 and "Location" not in answer.headers
    assert answer.get_json() == {
        "error": "forged_link",
        "detail": "the link was not issued by this service or was altered",
    }
    assert collect.get("/c").status_code == 400
    assert collect.head(f"/c?t={clicks.sign(CLICK, KEY)}").status_code == 302
    assert bus.published == []

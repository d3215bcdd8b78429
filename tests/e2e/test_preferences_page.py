"""The preference centre in a real browser: open a sealed link, change a choice, the ledger has it.

The `preferences` function runs as locally everywhere (devstack/serve.py) over a DuckDB file; the
person's state is seeded through the consent service, the page is driven by headless Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from devstack.pipeline import serve_function
from devstack.processes import Server
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import LOCAL_PREFERENCE_KEY
from shared.preferences.links import seal
from shared.schema import table_specs
from shared.services.consent import record_consent, record_subscription
from tests.e2e.browser import chromium

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    past = datetime.now(UTC) - timedelta(days=30)
    record_subscription(warehouse, "shop", "email", "minji@example.com", True, past, "form", recorded_at=past)
    record_consent(warehouse, "shop", "email", "minji@example.com", {"marketing": True}, past, "import",
                   recorded_at=past)  # fmt: skip
    warehouse.close()
    return path


@pytest.fixture
def preferences(tmp_path: Path, warehouse_path: Path) -> Iterator[Server]:
    env = {
        "CDP_PROJECT": "local-test",
        "CDP_WAREHOUSE": "duckdb",
        "CDP_DUCKDB_PATH": str(warehouse_path),
        "CDP_IP_SALT": "test-salt",
    }
    server = serve_function("preferences", tmp_path / "logs", env)
    try:
        yield server
    finally:
        server.stop()


def test_a_person_withdraws_marketing_and_turns_on_night_messages(
    browser: Browser, preferences: Server, warehouse_path: Path
) -> None:
    token = seal("shop", "email", "minji@example.com", LOCAL_PREFERENCE_KEY, datetime.now(UTC))
    page = browser.new_page(locale="ko-KR")
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{preferences.url}/?t={token}")
    assert page.locator("h1").inner_text() == "수신 및 개인정보 활용 설정"
    assert "mi***@example.com" in page.content()
    assert page.is_checked("#channel-email") and page.is_checked("#purpose-marketing")
    assert not page.is_checked("#purpose-night_marketing")
    page.uncheck("#purpose-marketing")
    page.check("#purpose-night_marketing")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert not page.is_checked("#purpose-marketing") and page.is_checked("#purpose-night_marketing")
    assert page.is_checked("#channel-email")
    assert failed == [] and errors == []

    rows = DuckDBWarehouse(warehouse_path).query(
        "select purpose, granted, source, wording_version, page_url, ip_hash from raw.consent "
        "where source = 'preference_centre' order by purpose"
    )
    assert [(r["purpose"], r["granted"], r["wording_version"]) for r in rows] == [
        ("marketing", False, "preferences-v1-ko"),
        ("night_marketing", True, "preferences-v1-ko"),
    ]
    assert all(r["page_url"] == f"{preferences.url}/" and r["ip_hash"] for r in rows)

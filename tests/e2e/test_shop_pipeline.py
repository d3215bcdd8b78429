"""End to end in a real browser: the test shop with the snippet, browsed by headless Chromium,
through collect, the Pub/Sub emulator and load_events, into the warehouse."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page

from devstack.pipeline import LocalPipeline
from tests.conftest import wait_for, warehouse_rows
from tests.e2e.browser import chromium

pytestmark = [pytest.mark.emulator, pytest.mark.browser]

SHOP_DIR = Path(__file__).resolve().parents[1] / "data" / "shop"
DESKTOP_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """The static test shop on a free port, as `localhost` (a different origin from collect)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SHOP_DIR)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(user_agent=DESKTOP_CHROME) as launched:
        yield launched


def rows(pipeline: LocalPipeline, sql: str, visitor: str) -> list[dict[str, Any]]:
    return warehouse_rows(pipeline.duckdb_path, sql, {"v": visitor})


def test_a_shopping_journey_lands_in_the_warehouse(pipeline: LocalPipeline, shop: str, browser: Browser) -> None:
    context = browser.new_context()
    page: Page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{shop}/index.html?{urlencode({'collect': pipeline.collect_url, 'flush': 100})}")
        page.click("#to-product")
        page.wait_for_load_state()
        page.click("#add-to-cart")
        page.goto(f"{shop}/search.html?q=linen")
        page.goto(f"{shop}/login.html")
        page.click("#submit")
        page.goto(f"{shop}/checkout.html")
        page.click("#place-order")
        page.wait_for_timeout(300)  # let the tracker flush the order before the tab closes
        visitor = next(c["value"] for c in context.cookies() if c["name"] == "_cdp_vid")
    finally:
        context.close()
    assert errors == []

    orders = wait_for(lambda: rows(pipeline, "SELECT * FROM raw.conv WHERE visitor_id = @v", visitor), timeout=30)
    (order,) = orders
    assert (order["conv_type"], order["order_id"], order["revenue"], order["currency"]) == (
        "order",
        "O-20241122-0001",
        88000,
        "KRW",
    )
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [("P-42", 2), ("P-7", 1)]
    assert order["member_id"] == "M-1001" and order["source"] == "tracker"

    pages = rows(
        pipeline,
        "SELECT page_path, device_type, browser, os, is_bot, ip_hash FROM raw.page "
        "WHERE visitor_id = @v ORDER BY event_ts",
        visitor,
    )
    assert [p["page_path"] for p in pages] == [
        "/index.html",
        "/product.html",
        "/search.html",
        "/login.html",
        "/checkout.html",
    ]
    assert {(p["device_type"], p["browser"], p["os"], p["is_bot"]) for p in pages} == {
        ("desktop", "Chrome", "Windows", False)
    }
    assert all(p["ip_hash"] and "127.0.0" not in p["ip_hash"] for p in pages)

    lands = rows(
        pipeline, "SELECT page_path, is_entry, medium FROM raw.land WHERE visitor_id = @v ORDER BY event_ts", visitor
    )
    assert (lands[0]["is_entry"], lands[0]["medium"]) == (True, "direct")
    assert {(land["is_entry"], land["medium"]) for land in lands[1:2]} == {(False, "internal")}

    events = rows(
        pipeline,
        "SELECT event_name, product_name, quantity, search_keyword, member_id FROM raw.event "
        "WHERE visitor_id = @v ORDER BY event_ts",
        visitor,
    )
    assert [(e["event_name"], e["product_name"], e["quantity"], e["search_keyword"]) for e in events] == [
        ("product_view", "Linen shirt", None, None),
        ("add_to_cart", "Linen shirt", 2, None),
        ("search", None, None, "linen"),
    ]
    assert all(e["member_id"] is None for e in events)  # before the login

    (user,) = rows(
        pipeline,
        "SELECT member_id, sex, birth_year, email, phone, JSON_VALUE(traits, '$.grade') AS grade "
        "FROM raw.user WHERE visitor_id = @v",
        visitor,
    )
    assert user == {
        "member_id": "M-1001",
        "sex": "F",
        "birth_year": 1990,
        "email": "jimin@example.com",
        "phone": "+821012345678",
        "grade": "gold",
    }
    bad = warehouse_rows(pipeline.duckdb_path, "SELECT COUNT(*) AS n FROM raw.bad_rows WHERE site_id = 'demo-shop'")
    assert bad == [{"n": 0}]

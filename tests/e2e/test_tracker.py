"""tracker.js in a real browser against a recording fake collector.

One local server plays both parts: the test shop (tests/data/shop) is opened as
http://localhost:PORT and the collector is addressed as http://127.0.0.1:PORT, so beacons are
cross-origin exactly as in production (CORS, no preflight, Retry-After exposure all matter). The
tracker is the minified build from shared.tracker, the bytes `collect` serves.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Page

from shared.config import Site
from shared.services.collect import CollectorConfig, HttpRequest, handle_request
from shared.tracker import tracker_asset
from tests.e2e.browser import chromium
from tests.fakes import FakeBus

SHOP = Path(__file__).resolve().parents[1] / "data" / "shop"
QUEUE_KEY = "_cdp_demo-shop_q"
TWO_YEARS_S = 730 * 24 * 3600
CHROME_COOKIE_CAP_S = 400 * 24 * 3600

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


@dataclass
class Post:
    """One request the fake collector received, and what it answered."""

    status: int
    body: dict[str, Any]
    raw: bytes
    size: int
    content_type: str
    origin: str
    fetch_mode: str

    @property
    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.body["events"]]


@dataclass
class FakeCollector:
    """Serves the shop and tracker.js; records every beacon and answers `status`."""

    status: int = 200
    retry_after: str = "1"
    error: str = "unknown_site_id"
    delay_s: float = 0.0
    poison: str | None = None  # an event of this name makes every batch holding it answer 500
    posts: list[Post] = field(default_factory=list)
    preflights: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def shop_origin(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def collect_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[Post]:
        with self.lock:
            return list(self.posts)

    def accepted(self) -> list[dict[str, Any]]:
        """Events in 2xx answers, in arrival order: what reached the warehouse."""
        return [e for p in self.snapshot() if 200 <= p.status < 300 for e in p.body["events"]]

    def record(self, post: Post) -> None:
        with self.lock:
            self.posts.append(post)

    def answer(self, post: Post) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self.lock:
            status = self.status
        if self.poison and self.poison in _names(post.body["events"]):
            return 500, {}, {"error": "internal"}  # a collector bug this event keeps hitting
        if status == 200:
            return 200, {}, {"accepted": len(post.ids)}
        if status in (429, 503):
            return status, {"Retry-After": self.retry_after}, {"error": "unavailable"}
        return status, {}, {"error": self.error, "detail": "set by the test"}


def _handler(fake: FakeCollector) -> type[BaseHTTPRequestHandler]:
    asset = tracker_asset()
    pages = {p.name: p for p in SHOP.iterdir()}
    types = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # keep pytest output clean

        def _cors(self) -> None:
            # What collect must send too: without Allow-Origin the tracker cannot read the status,
            # without Expose-Headers it cannot read Retry-After.
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
            self.send_header("Access-Control-Expose-Headers", "Retry-After")

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = urlsplit(self.path).path
            name = path.removeprefix("/shop/")
            if path == "/tracker.js":
                self._send(200, asset.body, asset.content_type, {"ETag": asset.etag})
            elif path.startswith("/shop/") and name in pages:
                ctype = types.get(pages[name].suffix, "application/octet-stream")
                self._send(200, pages[name].read_bytes(), ctype, {})
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon", {})  # keeps the console free of 404s
            else:
                self._send(404, b"not found", "text/plain", {})

        def do_OPTIONS(self) -> None:  # noqa: N802
            with fake.lock:
                fake.preflights += 1
            self.send_response(204)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            post = Post(
                status=0,
                body=json.loads(raw),
                raw=raw,
                size=len(raw),
                content_type=self.headers.get("Content-Type", ""),
                origin=self.headers.get("Origin", ""),
                fetch_mode=self.headers.get("Sec-Fetch-Mode", ""),
            )
            fake.record(post)  # status 0 until answered: "in flight"
            if fake.delay_s:
                time.sleep(fake.delay_s)
            status, headers, answer = fake.answer(post)
            post.status = status
            self.send_response(status)
            self._cors()
            for name, value in headers.items():
                self.send_header(name, value)
            body = json.dumps(answer).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def fake() -> Iterator[FakeCollector]:
    collector = FakeCollector()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(collector))
    server.daemon_threads = True
    collector.port = server.server_address[1]
    # A short poll interval: shutdown() waits for the serving loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Tab:
    page: Page
    fake: FakeCollector
    warnings: list[str]

    def open(self, name: str, **params: str | int) -> None:
        """Open a shop page; the shop remembers `collect`, `flush` and `analytics` per tab."""
        query = {"collect": self.fake.collect_url, "flush": 100, **params}
        self.page.goto(f"{self.fake.shop_origin}/shop/{name}?{urlencode(query)}")

    def until(self, what: str, check: Callable[[], bool], timeout_s: float = 10) -> None:
        """Poll `check` while the browser runs; fail naming `what` if it never holds."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            self.page.wait_for_timeout(50)

    def wait_accepted(self, n: int) -> list[dict[str, Any]]:
        self.until(f"{n} accepted events", lambda: len(self.fake.accepted()) >= n)
        return self.fake.accepted()

    def stored_ids(self) -> list[str]:
        ids: list[str] = self.page.evaluate(
            f"JSON.parse(localStorage.getItem('{QUEUE_KEY}') || '[]').map(r => r.e.event_id)"
        )
        return ids

    def vid_cookie(self) -> dict[str, Any] | None:
        found = [c for c in self.page.context.cookies() if c["name"] == "_cdp_vid"]
        return dict(found[0]) if found else None

    def custom(self, name: str, n: int = 1) -> None:
        self.page.evaluate(
            "([name, n]) => { for (let i = 0; i < n; i++) cdp('event', name, {i}); }",
            [name, n],
        )


@pytest.fixture
def tab(browser: Browser, fake: FakeCollector) -> Iterator[Tab]:
    context = browser.new_context()
    page = context.new_page()
    warnings: list[str] = []
    errors: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield Tab(page, fake, warnings)
    finally:
        context.close()
    assert errors == [], "the tracker must never throw into the host page"


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [e["props"].get("name", e["props"].get("conv_type", e["type"])) for e in events]


def _is_uuid4(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 4 and str(parsed) == value


def test_page_load_sends_page_and_land(tab: Tab) -> None:
    before = int(time.time() * 1000)
    tab.open("index.html")
    page_ev, land_ev = tab.wait_accepted(2)
    after = int(time.time() * 1000)
    cookie = tab.vid_cookie()
    assert cookie is not None

    assert [page_ev["type"], land_ev["type"]] == ["page", "land"]
    for ev in (page_ev, land_ev):
        assert _is_uuid4(ev["event_id"])
        assert before <= ev["ts"] <= after
        assert ev["url"] == tab.page.url
        assert ev["title"] == "Demo shop"
        assert ev["referrer"] == ""
        assert ev["visitor_id"] == cookie["value"]
        assert ev["member_id"] is None
        assert ev["consent"] == {"analytics": True, "ads": False}
        assert ev["props"] == {}
    assert page_ev["event_id"] != land_ev["event_id"]

    (post,) = tab.fake.snapshot()
    assert post.body["site_id"] == "demo-shop"
    assert post.body["sent_at"] >= land_ev["ts"]
    assert post.content_type.startswith("text/plain")
    assert post.origin == tab.fake.shop_origin
    assert tab.fake.preflights == 0  # text/plain keeps beacons "simple" requests

    # First-party cookie: Lax, not Secure on plain http, readable by the page. The tracker asks
    # for two years; Chromium caps every cookie at 400 days, hence the refresh on each visit.
    assert cookie["sameSite"] == "Lax" and not cookie["secure"] and not cookie["httpOnly"]
    lifetime = cookie["expires"] - time.time()
    assert CHROME_COOKIE_CAP_S - 60 < lifetime <= TWO_YEARS_S
    tab.until("the queue to drain", lambda: tab.stored_ids() == [])
    assert tab.page.evaluate("typeof cdp.q") == "undefined"  # the stub was replaced

    # An in-site move: the next land carries this page as referrer, the visitor stays.
    index_url = tab.page.url
    tab.page.click("#to-product")
    events = tab.wait_accepted(5)
    land = next(e for e in events[2:] if e["type"] == "land")
    assert land["referrer"] == index_url
    assert {e["visitor_id"] for e in events} == {cookie["value"]}


def _shop_journey(tab: Tab) -> None:
    """Product, add to cart, search, log in, order: every kind of event the shop makes."""
    tab.open("product.html")
    tab.page.click("#add-to-cart")
    tab.open("search.html", q="linen")
    tab.open("login.html")
    tab.page.click("#submit")
    tab.open("checkout.html")
    tab.page.click("#place-order")
    tab.until("the order", lambda: any(e["type"] == "conv" for e in tab.fake.accepted()))


def test_events_carry_props_and_member_id_after_identify(tab: Tab) -> None:
    _shop_journey(tab)
    events = tab.fake.accepted()
    by_name = {n: e for n, e in zip(_names(events), events, strict=True)}

    product = {"product_id": "P-42", "product_name": "Linen shirt", "category": "shirts"}
    assert by_name["product_view"]["props"] == {**product, "price": 39000, "name": "product_view"}
    assert by_name["add_to_cart"]["props"] == {
        **product,
        "price": 39000,
        "quantity": 2,
        "name": "add_to_cart",
    }
    assert by_name["search"]["props"] == {"keyword": "linen", "name": "search"}
    identify = by_name["identify"]
    assert identify["member_id"] == "M-1001"
    assert identify["props"] == {
        "sex": "F",
        "birth_year": 1990,
        "email": "jimin@example.com",
        "phone": "+821012345678",
        "grade": "gold",
    }
    order = by_name["order"]
    assert order["type"] == "conv"
    assert order["props"]["order_id"] == "O-20241122-0001"
    assert order["props"]["revenue"] == 88000 and order["props"]["currency"] == "KRW"
    assert order["props"]["items"][0] == {**product, "price": 39000, "quantity": 2}
    assert len(order["props"]["items"]) == 2

    # The member id sticks from identify on, across pages; the visitor never changes.
    at = events.index(identify)
    assert {e["member_id"] for e in events[:at]} == {None}
    assert {e["member_id"] for e in events[at:]} == {"M-1001"}
    assert len({e["visitor_id"] for e in events}) == 1
    assert len({e["event_id"] for e in events}) == len(events)


def test_reset_forgets_the_member_and_starts_a_new_visitor(tab: Tab) -> None:
    tab.open("login.html")
    tab.page.click("#submit")
    tab.open("index.html")
    tab.wait_accepted(5)
    old = tab.fake.accepted()[-1]
    assert old["member_id"] == "M-1001"

    tab.page.click("#logout")
    tab.custom("after_logout")
    after = tab.wait_accepted(6)[-1]
    assert after["member_id"] is None
    assert after["visitor_id"] != old["visitor_id"]
    cookie = tab.vid_cookie()
    assert cookie is not None and cookie["value"] == after["visitor_id"]
    assert tab.page.evaluate("localStorage.getItem('_cdp_demo-shop_m')") is None


def test_denied_consent_is_anonymous_and_stores_nothing(tab: Tab) -> None:
    # A consented visit first, so there is a cookie and a member id to get rid of.
    tab.open("login.html")
    tab.page.click("#submit")
    tab.wait_accepted(3)
    assert tab.vid_cookie() is not None

    tab.open("index.html", analytics=0)
    tab.open("product.html")
    tab.open("login.html")
    tab.page.click("#submit")  # identify must not send anything without consent
    tab.fake.status = 503  # an outage now: the queue may live only in memory
    tab.custom("while_denied")
    tab.until("a refused batch", lambda: any(p.status == 503 for p in tab.fake.snapshot()))
    assert tab.vid_cookie() is None
    assert tab.page.evaluate("Object.keys(localStorage)") == []
    tab.fake.status = 200
    tab.until("the retry", lambda: "while_denied" in _names(tab.fake.accepted()))

    anonymous = tab.fake.accepted()[3:]
    assert _names(anonymous) == ["page", "land", "page", "land", "product_view"] + [
        "page",
        "land",
        "while_denied",
    ]
    for ev in anonymous:
        assert ev["visitor_id"] is None and ev["member_id"] is None
        assert ev["consent"] == {"analytics": False, "ads": False}
    assert tab.page.evaluate("Object.keys(localStorage)") == []
    assert tab.vid_cookie() is None

    # Granting consent mid-page starts a new visitor; the old one is gone for good.
    tab.open("index.html")
    tab.page.click("#accept")
    tab.custom("after_accept")
    tab.until("consented event", lambda: "after_accept" in _names(tab.fake.accepted()))
    ev = next(e for e in tab.fake.accepted() if e["props"].get("name") == "after_accept")
    cookie = tab.vid_cookie()
    assert cookie is not None and ev["visitor_id"] == cookie["value"]
    assert ev["visitor_id"] != tab.fake.accepted()[0]["visitor_id"]
    assert ev["member_id"] is None and ev["consent"] == {"analytics": True, "ads": True}
    # The banner's click is a decision, sent for the consent ledger under the new visitor.
    (decision,) = [e for e in tab.fake.accepted() if e["type"] == "consent"]
    assert decision["visitor_id"] == cookie["value"]
    assert decision["props"] == {"purposes": {"analytics": True, "ad_user_data": True, "ad_personalization": True}}


def test_an_outage_and_a_reload_lose_nothing_and_duplicate_nothing(tab: Tab) -> None:
    tab.fake.status = 503
    tab.open("index.html")
    tab.custom("during_outage", 3)
    tab.until("a refused batch", lambda: any(p.status == 503 for p in tab.fake.snapshot()))
    tab.until("5 stored events", lambda: len(tab.stored_ids()) == 5)

    tab.page.reload()  # the new page resumes the stored queue and adds its own page + land
    tab.until("7 stored events", lambda: len(tab.stored_ids()) == 7)
    stored = set(tab.stored_ids())
    tab.until(
        "a retry carrying the reloaded page's events",
        lambda: any(p.status == 503 and len(p.ids) == 7 for p in tab.fake.snapshot()),
    )

    tab.fake.status = 200
    tab.until("recovery", lambda: {e["event_id"] for e in tab.fake.accepted()} == stored)
    tab.page.wait_for_timeout(1000)  # room for a stray resend to show up
    accepted = [e["event_id"] for e in tab.fake.accepted()]
    assert sorted(accepted) == sorted(stored)  # every event exactly once
    posted = {i for p in tab.fake.snapshot() for i in p.ids}
    assert posted == stored  # nothing was sent that the queue did not hold
    assert tab.stored_ids() == []
    assert tab.page.evaluate("localStorage.getItem('_cdp_demo-shop_r')") is None  # backoff reset


def test_an_event_the_collector_keeps_failing_on_is_set_aside_and_the_rest_flow(tab: Tab) -> None:
    """A 500 that is no outage counts against each event sent: such events travel alone after it,
    and one that meets three is set aside, so one poisoned event cannot block a browser's queue."""
    tab.fake.poison = "poison"
    tab.open("index.html")
    tab.wait_accepted(2)
    tab.custom("before", 2)
    tab.custom("poison")
    tab.custom("after", 2)
    tab.until("the others delivered", lambda: sorted(_names(tab.fake.accepted())[2:]) == ["after"] * 2 + ["before"] * 2)
    tab.until("the poisoned event set aside", lambda: tab.stored_ids() == [])
    tab.page.wait_for_timeout(1500)  # a further retry would come within this
    tries = [p for p in tab.fake.snapshot() if "poison" in _names(p.body["events"])]
    assert len(tries) == 3 and all(p.status == 500 for p in tries)
    assert [len(p.ids) for p in tries[1:]] == [1, 1]  # alone after its first strike
    aside = tab.page.evaluate("JSON.parse(localStorage.getItem('_cdp_demo-shop_x'))")
    assert _names(aside) == ["poison"]
    assert any("set aside" in w for w in tab.warnings), tab.warnings

    tab.custom("next")
    tab.until("the next event", lambda: _names(tab.fake.accepted())[-1:] == ["next"])


def test_a_4xx_drops_the_batch_and_is_not_retried(tab: Tab) -> None:
    tab.fake.status = 400
    tab.open("index.html")
    tab.until("the rejected batch", lambda: len(tab.fake.snapshot()) == 1)
    tab.page.wait_for_timeout(1500)  # a retry would come after 0.5-1 s
    assert len(tab.fake.snapshot()) == 1
    assert tab.stored_ids() == []
    assert any("400" in w and "unknown_site_id" in w for w in tab.warnings), tab.warnings

    tab.fake.status = 200
    tab.custom("next")
    tab.until("the next event", lambda: len(tab.fake.accepted()) == 1)
    assert _names(tab.fake.accepted()) == ["next"]


def test_many_quick_events_go_in_few_batches_of_at_most_100(tab: Tab) -> None:
    tab.open("index.html")
    tab.wait_accepted(2)
    tab.custom("burst", 250)
    tab.wait_accepted(252)
    posts = tab.fake.snapshot()[1:]
    assert len(posts) <= 5, [len(p.ids) for p in posts]
    assert all(len(p.ids) <= 100 and p.size <= 60_000 for p in posts)
    ids = [e["event_id"] for e in tab.fake.accepted()]
    assert len(ids) == len(set(ids)) == 252


def test_unload_hands_over_in_flight_and_beacons_the_rest_once(tab: Tab) -> None:
    tab.fake.delay_s = 1.0  # keep the first batch in flight while the visitor moves on
    tab.open("index.html")
    tab.until("a batch in flight", lambda: [p.status for p in tab.fake.snapshot()] == [0])
    tab.custom("before_leaving", 3)
    tab.page.click("#to-product")
    tab.wait_accepted(2 + 3 + 3)
    tab.page.wait_for_timeout(1000)  # a resend by the new page would show up here
    events = tab.fake.accepted()
    left = ["page", "land", "before_leaving", "before_leaving", "before_leaving"]
    arrived = ["page", "land", "product_view"]
    assert sorted(_names(events)) == sorted(left + arrived)
    assert len({e["event_id"] for e in events}) == len(events) == 8
    beaconed = [p for p in tab.fake.snapshot() if "before_leaving" in _names(p.body["events"])]
    assert len(beaconed) == 1 and beaconed[0].fetch_mode == "no-cors"  # sendBeacon's request


def test_queue_is_bounded_and_drops_the_oldest(tab: Tab) -> None:
    tab.fake.status = 503
    tab.fake.retry_after = "60"
    tab.open("index.html")
    tab.until("a refused batch", lambda: len(tab.fake.snapshot()) == 1)
    first = tab.stored_ids()[0]
    tab.custom("flood", 520)
    ids = tab.stored_ids()
    assert len(ids) == 500 and first not in ids
    assert any("queue full" in w for w in tab.warnings)


def test_uuid_fallback_without_random_uuid(tab: Tab) -> None:
    tab.page.add_init_script("delete Crypto.prototype.randomUUID")
    tab.open("index.html")
    events = tab.wait_accepted(2)
    assert tab.page.evaluate("typeof crypto.randomUUID") == "undefined"
    assert all(_is_uuid4(e["event_id"]) for e in events)


def test_only_window_cdp_is_added_and_bad_calls_do_not_throw(tab: Tab) -> None:
    tab.page.goto(f"{tab.fake.shop_origin}/shop/bare.html")
    before = set(tab.page.evaluate("Object.getOwnPropertyNames(window)"))
    _snippet(tab, "cdp('init', 'demo-shop', {endpoint: u, flushInterval: 100}); cdp('page');")
    tab.wait_accepted(2)
    after = set(tab.page.evaluate("Object.getOwnPropertyNames(window)"))
    assert after - before == {"cdp"}

    results = tab.page.evaluate(
        """() => {
          const loop = {}; loop.self = loop;
          return [cdp('nope'), cdp('event'), cdp('event', 'x', loop), cdp('identify'),
                  cdp('conv'), cdp('init', 'again', {}), cdp('consent', null), cdp()];
        }"""
    )
    assert results == [None] * 8
    assert any("unknown command" in w for w in tab.warnings)
    tab.custom("still_working")
    tab.until("the tracker to keep working", lambda: "still_working" in _names(tab.fake.accepted()))


class _RecordingBus:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.messages.append(data)
        return str(len(self.messages))


def test_what_the_tracker_sends_passes_the_real_collector(tab: Tab) -> None:
    """The contract with shared.services.collect: every batch the browser sent is accepted whole."""
    _shop_journey(tab)

    origin = tab.fake.shop_origin
    config = CollectorConfig({"demo-shop": Site("demo-shop", (origin,))}, "beacons", "test-salt")
    bus = _RecordingBus()
    for post in tab.fake.snapshot():
        headers = {"content-type": post.content_type, "origin": post.origin}
        request = HttpRequest("POST", "/e", headers, post.raw, remote_addr="127.0.0.1")
        answer = handle_request(request, config, bus, datetime.now(UTC))
        assert answer.status == 200, answer.body
        assert json.loads(answer.body) == {"accepted": len(post.ids)}
        assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert len(bus.messages) == len(tab.fake.snapshot())


def _replay(fake: FakeCollector) -> FakeBus:
    """Every batch the browser had accepted, through the real collect service: what the bus gets."""
    config = CollectorConfig({"demo-shop": Site("demo-shop", (fake.shop_origin,))}, "beacons", "test-salt")
    bus = FakeBus()
    for post in fake.snapshot():
        if 200 <= post.status < 300:
            headers = {"content-type": post.content_type, "origin": post.origin}
            request = HttpRequest("POST", "/e", headers, post.raw, remote_addr="127.0.0.1")
            answer = handle_request(request, config, bus, datetime.now(UTC))
            assert answer.status == 200, answer.body
    return bus


PURPOSES = {
    "analytics": True,
    "ad_user_data": False,
    "ad_personalization": False,
    "marketing": True,
    "night_marketing": False,
}
PROOF = {
    "version": "v3",
    "tcf": "CQHb4AAQHb4AAAKA1AENBJFsAP_gAEPgAAAAKYtV_G__bWlr8X73aftkeY1P9_h77sQxBhbJE-4FzLvW_JwXx2ExNA36tqIKmRIAu3",
    "consent_mode": {
        "ad_storage": "denied",
        "analytics_storage": "granted",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    },
}


def test_the_consent_call_records_decisions_and_identification_follows_analytics(tab: Tab) -> None:
    tab.open("index.html", analytics=0)  # the banner is not answered yet: nothing identifies the browser
    tab.wait_accepted(2)
    assert tab.vid_cookie() is None

    # What a banner does on "accept": remember the choice for the next pages, and tell the tracker.
    tab.page.evaluate(
        "([p, o]) => { sessionStorage.setItem('shop.analytics', '1'); cdp('consent', p, o); }", [PURPOSES, PROOF]
    )
    tab.custom("after_grant")
    tab.open("login.html")
    tab.page.click("#submit")
    tab.until("the identify", lambda: "identify" in _names(tab.fake.accepted()))
    cookie = tab.vid_cookie()
    assert cookie is not None
    visitor = cookie["value"]

    tab.page.evaluate("() => cdp('consent', {analytics: false})")  # withdrawn on the same page
    tab.custom("after_withdrawal")
    tab.until("the anonymous event", lambda: "after_withdrawal" in _names(tab.fake.accepted()))
    assert tab.vid_cookie() is None
    assert tab.page.evaluate("Object.keys(localStorage)") == []

    events = tab.fake.accepted()
    grant, withdrawal = [e for e in events if e["type"] == "consent"]
    assert grant["props"] == {"purposes": PURPOSES, **PROOF}
    assert (grant["visitor_id"], grant["member_id"]) == (visitor, None)
    assert grant["consent"] == {"analytics": True, "ads": False}
    # The withdrawal names the visitor and member it withdraws, though nothing identifies them any more.
    assert withdrawal["props"] == {"purposes": {"analytics": False}}
    assert (withdrawal["visitor_id"], withdrawal["member_id"]) == (visitor, "M-1001")
    assert withdrawal["consent"] == {"analytics": False, "ads": False}
    by_name = {n: e for n, e in zip(_names(events), events, strict=True)}
    assert (by_name["after_grant"]["visitor_id"], by_name["identify"]["member_id"]) == (visitor, "M-1001")
    assert by_name["after_withdrawal"]["visitor_id"] is None and by_name["after_withdrawal"]["member_id"] is None

    # Through the real collector: the ledger holds both decisions, the later events no identifier.
    bus = _replay(tab.fake)
    ledger = sorted(
        (r["subject_type"], r["subject_value"], r["purpose"], r["granted"]) for r in bus.rows("raw.consent")
    )
    assert ledger == sorted(
        [("visitor", visitor, purpose, granted) for purpose, granted in PURPOSES.items()]
        + [("visitor", visitor, "analytics", False), ("member", "M-1001", "analytics", False)]
    )
    assert {r["wording_version"] for r in bus.rows("raw.consent") if r["granted"]} == {"v3"}
    (anonymous,) = [r for r in bus.rows("raw.event") if r["event_name"] == "after_withdrawal"]
    assert anonymous["visitor_id"] is None and anonymous["ip_hash"] is None


def test_a_consent_call_that_is_not_one_changes_nothing_and_sends_nothing(tab: Tab) -> None:
    tab.open("index.html")
    tab.wait_accepted(2)
    visitor = tab.vid_cookie()
    assert visitor is not None
    tab.page.evaluate(
        """() => [cdp('consent', {analytic: false}), cdp('consent', {analytics: 'no'}), cdp('consent', {}),
                  cdp('consent', [true]), cdp('consent', null)]"""
    )
    tab.custom("still_consented")
    tab.until("the next event", lambda: "still_consented" in _names(tab.fake.accepted()))
    assert [e["type"] for e in tab.fake.accepted()] == ["page", "land", "event"]
    assert tab.fake.accepted()[-1]["visitor_id"] == visitor["value"]
    assert sum("consent needs purposes" in w for w in tab.warnings) == 5, tab.warnings


SNIPPET = (  # the snippet of docs/tracker.md, the collector's URL in `u`
    "!function(w,d,u){if(w.cdp)return;var q=[],c=w.cdp=function(){q.push(arguments)};c.q=q;"
    "var s=d.createElement('script');s.async=true;s.src=u+'/tracker.js';"
    "(d.head||d.documentElement).appendChild(s)}(window,document,u);"
)


def _snippet(tab: Tab, calls: str) -> None:
    """Run the snippet followed by `calls` (JavaScript; `u` is the collector) on the open page, all
    before tracker.js arrives: the stub queues them."""
    tab.page.evaluate("u => {" + SNIPPET + calls + "}", tab.fake.collect_url)


def test_without_a_consent_option_the_tracker_identifies_nobody(tab: Tab) -> None:
    """A page that says nothing about consent gets the deny default: no cookie, no storage, no ids."""
    tab.page.goto(f"{tab.fake.shop_origin}/shop/bare.html")
    _snippet(
        tab,
        """cdp('init', 'demo-shop', {endpoint: u, flushInterval: 100});
           cdp('page');
           cdp('identify', 'M-1', {email: 'jimin@example.com'});""",
    )
    events = tab.wait_accepted(2)
    tab.page.wait_for_timeout(300)
    assert [e["type"] for e in tab.fake.accepted()] == ["page", "land"]  # identify sent nothing
    assert all(e["visitor_id"] is None and e["member_id"] is None for e in events)
    assert all(e["consent"] == {"analytics": False, "ads": False} for e in events)
    assert tab.vid_cookie() is None and tab.page.evaluate("Object.keys(localStorage)") == []


def test_a_withdrawal_called_before_init_writes_no_cookie_and_names_the_visitor(tab: Tab) -> None:
    # Every cookie the page writes, in order, on every page of this tab.
    tab.page.add_init_script(
        """const jar = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
           window.cookieWrites = [];
           Object.defineProperty(Document.prototype, 'cookie', {configurable: true,
             get() { return jar.get.call(this); },
             set(v) { window.cookieWrites.push(v); jar.set.call(this, v); }});"""
    )
    granted = "{endpoint: u, flushInterval: 100, consent: {analytics: true}}"
    bare = f"{tab.fake.shop_origin}/shop/bare.html"
    tab.page.goto(bare)
    _snippet(tab, f"cdp('init', 'demo-shop', {granted}); cdp('page');")
    tab.wait_accepted(2)
    cookie = tab.vid_cookie()
    assert cookie is not None

    # The next page's banner script withdraws before the site's own init (which still says granted).
    tab.page.goto(bare)
    _snippet(tab, f"cdp('consent', {{analytics: false, marketing: false}}); cdp('init', 'demo-shop', {granted});")
    tab.until("the withdrawal", lambda: "consent" in _names(tab.fake.accepted()))
    (withdrawal,) = [e for e in tab.fake.accepted() if e["type"] == "consent"]
    assert withdrawal["visitor_id"] == cookie["value"]
    assert withdrawal["props"] == {"purposes": {"analytics": False, "marketing": False}}
    assert tab.vid_cookie() is None and tab.page.evaluate("Object.keys(localStorage)") == []
    writes = tab.page.evaluate("window.cookieWrites")
    assert writes and all("Max-Age=0" in w for w in writes), writes  # deleted, never written first

"""The tracker's web push flow in headless Chromium, against the real collect service and the fake
push service.

One local server plays the site (http://localhost:PORT: a page with a subscribe button and the
site's one-line worker file importing collect's /sw.js) and collect (http://127.0.0.1:PORT, the
real shared.services.collect.handle_request, cross-origin as in production). Chromium's own push
service is Google's FCM, which this offline machine cannot reach and no flag replaces, so the page's
PushManager.subscribe is stubbed to hand back a subscription the fake push service made (with the
applicationServerKey the tracker passed, recorded). Everything else is the browser's: the user
gesture and permission, the service worker's registration from the site's file and its import of
collect's worker, the tracker's event through collect into raw.subscription. A push is then sent by
the WebPush adapter to the fake, which decrypts it; the plaintext goes to the real service worker
through the DevTools protocol (ServiceWorker.deliverPushMessage, as the push service would hand it
over), and the page reads the notification the worker showed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, Page

from devstack.fakes.push_service import PushServiceFake, running_push_service
from shared.adapters.web_push import WEBPUSH, WebPush, public_key_of
from shared.beacons import Limits
from shared.config import Site
from shared.ports.channels import Message
from shared.services.collect import CollectorConfig, HttpRequest, handle_request
from shared.tracker import tracker_asset, worker_asset
from tests.e2e.browser import chromium
from tests.fakes import FakeBus, FakeSecrets

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Push</title>
<script>
window.cdp = window.cdp || function () { (window.cdp.q = window.cdp.q || []).push(arguments); };
cdp('init', 'demo-shop', {endpoint: '%(collect)s', consent: {analytics: true}, vapidKey: '%(key)s', flushInterval: 50});
// A site that asks on page load, without a click: the tracker must refuse to prompt.
window.addEventListener('load', () => {
  const ask = () =>
    window.cdp.version ? cdp('subscribe').then(r => { window.onload_outcome = r; }) : setTimeout(ask, 20);
  ask();
});
</script><script async src="%(collect)s/tracker.js"></script></head>
<body>
<button id="subscribe" onclick="cdp('subscribe', {version: 'push-v1'}).then(r => window.outcome = r)">알림</button>
<button id="unsubscribe" onclick="cdp('unsubscribe').then(r => window.outcome = r)">알림 끄기</button></body></html>"""

# Chromium's PushManager reaches only FCM: hand back the fake push service's subscription instead.
STUB = """
window.__push = {asked: null, sub: null, next: null};
const b64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
PushManager.prototype.subscribe = function (options) {
  window.__push.asked = {key: b64url(new Uint8Array(options.applicationServerKey)), visible: options.userVisibleOnly};
  const info = window.__push.next;
  const sub = {endpoint: info.endpoint, toJSON: () => info,
               unsubscribe: () => { window.__push.sub = null; return Promise.resolve(true); }};
  window.__push.sub = sub;
  return Promise.resolve(sub);
};
PushManager.prototype.getSubscription = function () { return Promise.resolve(window.__push.sub); };
"""


class Site_:
    """The site and collect on one server; collect's bus records what it published."""

    def __init__(self, key: str) -> None:
        self.key, self.bus, self.port = key, FakeBus(), 0
        self.lock = threading.Lock()

    @property
    def shop(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def collect(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> CollectorConfig:
        return CollectorConfig(
            {"demo-shop": Site("demo-shop", (self.shop,), analytics_default=False)}, "beacons", "salt", Limits(),
            allow_local_push=True,
        )  # fmt: skip

    def rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.bus.rows("raw.subscription")


def _handler(site: Site_) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _collect(self, method: str, body: bytes) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = HttpRequest(method, urlsplit(self.path).path, headers, body, {}, "127.0.0.1")
            with site.lock:
                answer = handle_request(request, site.config(), site.bus, datetime.now(UTC), tracker_asset(),
                                        worker_asset())  # fmt: skip
            self._answer(answer.status, answer.body, answer.headers)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = urlsplit(self.path).path
            host = self.headers.get("Host", "")
            if host.startswith("localhost") and path == "/push.html":
                page = PAGE % {"collect": site.collect, "key": site.key}
                self._answer(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
            elif host.startswith("localhost") and path == "/cdp-sw.js":  # the site's one line
                line = f"importScripts('{site.collect}/sw.js');\n".encode()
                self._answer(200, line, {"Content-Type": "text/javascript"})
            elif host.startswith("127.0.0.1"):
                self._collect("GET", b"")
            else:
                self._answer(404, b"", {})

        def do_POST(self) -> None:  # noqa: N802
            self._collect("POST", self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def do_OPTIONS(self) -> None:  # noqa: N802
            self._collect("OPTIONS", b"")

    return Handler


@pytest.fixture(scope="module")
def vapid() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def site(vapid: ec.EllipticCurvePrivateKey) -> Iterator[Site_]:
    served = Site_(public_key_of(vapid))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    server.daemon_threads = True
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake() -> Iterator[PushServiceFake]:
    with running_push_service() as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _wait(page: Page, what: str, script: str, timeout_ms: int = 10_000) -> Any:
    try:
        return page.wait_for_function(script, timeout=timeout_ms).json_value()
    except Exception as exc:  # noqa: BLE001 - name what never happened
        pytest.fail(f"timed out waiting for {what}: {exc}")


def test_subscribe_on_a_click_records_the_subscription_and_the_worker_shows_a_push(
    browser: Browser, site: Site_, fake: PushServiceFake, vapid: ec.EllipticCurvePrivateKey
) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(STUB)
    page.goto(f"{site.shop}/push.html")
    _wait(page, "the tracker", "() => window.cdp && window.cdp.version === 1")
    browser_sub = fake.subscribe(application_server_key=site.key)
    page.evaluate("info => { window.__push.next = info; }", browser_sub.as_json())

    # Without a click of the page's own (the page asked at load), no prompt: the call says so.
    assert _wait(page, "the call at load", "() => window.onload_outcome") == "no_gesture"
    # A click, but the person (headless Chromium, no grant) does not allow notifications.
    page.click("#subscribe")
    assert _wait(page, "the refusal", "() => window.outcome") == "denied"
    assert page.evaluate("() => window.__push.asked") is None and site.rows() == []

    context.grant_permissions(["notifications"], origin=site.shop)
    page.evaluate("() => { window.outcome = null; }")
    page.click("#subscribe")
    assert _wait(page, "the subscription", "() => window.outcome") == "subscribed"
    assert page.evaluate("() => window.__push.asked") == {"key": site.key, "visible": True}
    deadline = datetime.now(UTC).timestamp() + 10
    while not site.rows() and datetime.now(UTC).timestamp() < deadline:
        page.wait_for_timeout(50)
    (row,) = site.rows()
    visitor = next(c["value"] for c in context.cookies() if c["name"] == "_cdp_vid")
    assert (row["channel"], row["address"], row["subscribed"], row["source"]) == (
        "webpush", browser_sub.endpoint, True, "tracker",
    )  # fmt: skip
    assert row["push_keys"] == {"p256dh": browser_sub.p256dh, "auth": browser_sub.auth}
    assert (row["visitor_id"], row["wording_version"]) == (visitor, "push-v1")
    # The worker was registered from the site's file with collect's address and the site for its reports.
    scope = page.evaluate("() => navigator.serviceWorker.getRegistration().then(r => r.active.scriptURL)")
    assert scope == f"{site.shop}/cdp-sw.js?s=demo-shop&e={site.collect.replace(':', '%3A').replace('/', '%2F')}"
    assert page.evaluate("() => cdp('pushState')") == "subscribed"

    # A push: encrypted by the adapter, decrypted by the fake, handed to the real worker, shown.
    pem = vapid.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()  # fmt: skip
    channel = WebPush(FakeSecrets({"vapid-private-key": pem}), subject="mailto:push@shop.example",
                      public_key=site.key, allow_local=True, ca_file=fake.ca_file)  # fmt: skip
    message = Message(
        "ab" * 16, WEBPUSH, row["address"], "오늘부터 20% 할인", subject="봄 세일",
        parameters={"url": f"{site.shop}/push.html?from=push"}, push_keys=row["push_keys"],
    )  # fmt: skip
    channel.send(message)
    (received,) = fake.received(browser_sub)
    assert received.plaintext is not None
    session = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    session.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    session.send("ServiceWorker.enable")
    page.wait_for_timeout(200)  # the protocol reports the registrations it knows once enabled
    (registration,) = [r for r in registrations if r["scopeURL"].startswith(site.shop)][:1]
    session.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": site.shop, "registrationId": registration["registrationId"], "data": received.plaintext.decode()},
    )
    shown = _wait(
        page, "the notification",
        """() => navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.length ? ns.map(n =>
             ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url,
               actions: (n.actions || []).map(a => a.action)})) : null)""",
    )  # fmt: skip
    assert shown == [
        {"title": "봄 세일", "body": "오늘부터 20% 할인", "tag": "ab" * 16, "url": f"{site.shop}/push.html?from=push",
         "actions": ["unsubscribe"]},
    ]  # fmt: skip

    # Unsubscribe on the site's own button: the browser's subscription ends and collect records it.
    page.evaluate("() => { window.outcome = null; }")
    page.click("#unsubscribe")
    assert _wait(page, "the unsubscribe", "() => window.outcome") == "unsubscribed"
    deadline = datetime.now(UTC).timestamp() + 10
    while len(site.rows()) < 2 and datetime.now(UTC).timestamp() < deadline:
        page.wait_for_timeout(50)
    assert [(r["address"], r["subscribed"]) for r in site.rows()] == [
        (browser_sub.endpoint, True), (browser_sub.endpoint, False),
    ]  # fmt: skip
    assert page.evaluate("() => cdp('pushState')") == "unsubscribed"
    assert errors == []
    context.close()

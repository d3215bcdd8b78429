"""Web push capture at collect: a push event becomes one raw.subscription row, or a reason code.

Through the real collect service (shared.services.collect.handle_request) with a recording bus, and
the worker collect serves at /sw.js.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.beacons import Limits
from shared.config import Site
from shared.services.collect import CollectorConfig, HttpRequest, HttpResponse, handle_request
from shared.tracker import tracker_asset, worker_asset
from tests.fakes import FakeBus

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
ORIGIN = "https://shop.example"
CONFIG = CollectorConfig(
    sites={"demo-shop": Site("demo-shop", (ORIGIN,), analytics_default=True)},
    topic="beacons",
    ip_salt="salt",
    limits=Limits(max_events=10),
)
FCM = "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH-example"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


P256DH = _b64(
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
AUTH = _b64(b"\x07" * 16)


def push(props: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "type": "push", "ts": NOW_MS - 1000, "visitor_id": "v-1", "member_id": "M-9",
        "url": "https://shop.example/?gclid=abc", "consent": {"analytics": True, "ads": False}, "props": props,
    } | fields  # fmt: skip


def subscribed(**props: Any) -> dict[str, Any]:
    return {"subscribed": True, "endpoint": FCM, "keys": {"p256dh": P256DH, "auth": AUTH}} | props


def post(*events: dict[str, Any], config: CollectorConfig = CONFIG) -> tuple[HttpResponse, FakeBus]:
    bus = FakeBus()
    body = json.dumps({"site_id": "demo-shop", "sent_at": NOW_MS, "events": list(events)}).encode()
    headers = {"content-type": "text/plain", "origin": ORIGIN, "x-forwarded-for": "198.51.100.4"}
    return handle_request(HttpRequest("POST", "/e", headers, body, {}, "10.0.0.1"), config, bus, NOW), bus


def test_a_subscription_is_one_ledger_row_with_its_keys() -> None:
    expiry = NOW_MS + 30 * 86400 * 1000
    event = push(subscribed(expiration_time=expiry, version="push-v2"))
    response, bus = post(event)
    assert response.status == 200 and json.loads(response.body) == {"accepted": 1}
    (row,) = bus.rows("raw.subscription")
    columns = ("site_id", "channel", "address", "subscribed", "source", "visitor_id", "member_id")
    assert {k: row[k] for k in columns} == {
        "site_id": "demo-shop", "channel": "webpush", "address": FCM, "subscribed": True, "source": "tracker",
        "visitor_id": "v-1", "member_id": "M-9",
    }  # fmt: skip
    assert row["push_keys"] == {"p256dh": P256DH, "auth": AUTH}
    assert row["expires_at"] == datetime.fromtimestamp(expiry / 1000, UTC).isoformat(timespec="microseconds")
    assert row["wording_version"] == "push-v2"
    assert row["page_url"] == "https://shop.example/?gclid=redacted"  # no ads consent: the click id goes
    assert row["ip_hash"] and row["request_id"]
    assert bus.rows("raw.event") == [] and len(bus.published) == 1
    # the same event sent again is the same ledger row: its id is the decision's, not the request's
    _, again = post(event)
    (second,) = again.rows("raw.subscription")
    assert second["subscription_event_id"] == row["subscription_event_id"]


def test_an_unsubscribe_needs_no_keys_and_is_subscribed_false() -> None:
    response, bus = post(push({"subscribed": False, "endpoint": FCM}))
    assert response.status == 200
    (row,) = bus.rows("raw.subscription")
    assert (row["address"], row["subscribed"], row["push_keys"]) == (FCM, False, None)


def test_without_analytics_consent_the_subscription_names_nobody() -> None:
    event = push(subscribed(), consent={"analytics": False, "ads": False})
    _, bus = post(event)
    (row,) = bus.rows("raw.subscription")
    assert row["visitor_id"] is None and row["member_id"] is None and row["address"] == FCM


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://fcm.googleapis.com/fcm/send/x", "push_endpoint_not_https"),
        ("ftp://push.example.com/x", "push_endpoint_not_https"),
        ("https://127.0.0.1:8443/push/x", "push_endpoint_not_public"),
        ("https://10.1.2.3/push/x", "push_endpoint_not_public"),
        ("https://192.168.0.10/push/x", "push_endpoint_not_public"),
        ("https://169.254.169.254/computeMetadata/v1/", "push_endpoint_not_public"),
        ("https://[::1]/push/x", "push_endpoint_not_public"),
        ("https://[fd00::1]/push/x", "push_endpoint_not_public"),
        ("https://[::ffff:10.0.0.1]/push/x", "push_endpoint_not_public"),
        ("https://100.64.0.1/push/x", "push_endpoint_not_public"),
        ("https://localhost/push/x", "push_endpoint_not_public"),
        ("https://printer.local/push/x", "push_endpoint_not_public"),
        ("https://metadata.google.internal/x", "push_endpoint_not_public"),
        ("https://intranet/push/x", "push_endpoint_not_public"),
        ("https://user:pw@push.example.com/x", "invalid_push_endpoint"),
        ("https://push.example.com/x#frag", "invalid_push_endpoint"),
        ("https://push.example.com:99999/x", "invalid_push_endpoint"),
        ("https:///x", "invalid_push_endpoint"),
        ("https://push.example.com/a b", "invalid_push_endpoint"),
        ("https://push.example.com/" + "x" * 2100, "invalid_push_endpoint"),
        (42, "invalid_push_endpoint"),
    ],
)
def test_an_endpoint_that_is_not_https_on_a_public_host_is_refused_with_its_reason(
    endpoint: object, reason: str
) -> None:
    response, bus = post(push(subscribed(endpoint=endpoint)), push({"subscribed": False, "endpoint": FCM}))
    assert response.status == 422
    (rejected,) = json.loads(response.body)["rejected"]
    assert (rejected["index"], rejected["reason"], rejected["field"]) == (0, reason, "events[0].props.endpoint")
    assert rejected["detail"].startswith("events[0].props.endpoint: ")
    assert [r["subscribed"] for r in bus.rows("raw.subscription")] == [False]  # the other event stands
    (bad,) = bus.rows("raw.bad_rows")
    assert (bad["reason_code"], bad["field"]) == (reason, "events[0].props.endpoint")


def test_the_local_setting_admits_the_loopback_fake_only() -> None:
    local = dataclasses.replace(CONFIG, allow_local_push=True)
    response, bus = post(push(subscribed(endpoint="https://127.0.0.1:8443/push/s1")), config=local)
    assert response.status == 200 and bus.rows("raw.subscription")[0]["address"] == "https://127.0.0.1:8443/push/s1"
    response, _ = post(push(subscribed(endpoint="https://10.0.0.5/push/s1")), config=local)
    assert json.loads(response.body)["rejected"][0]["reason"] == "push_endpoint_not_public"


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        (None, "events[0].props.keys"),
        ({"p256dh": P256DH}, "events[0].props.keys.auth"),
        ({"p256dh": P256DH, "auth": _b64(b"x" * 12)}, "events[0].props.keys.auth"),
        ({"p256dh": _b64(b"\x04" + b"\x01" * 64), "auth": AUTH}, "events[0].props.keys.p256dh"),  # not on the curve
        ({"p256dh": P256DH[:-4], "auth": AUTH}, "events[0].props.keys.p256dh"),
        ({"p256dh": "not base64!", "auth": AUTH}, "events[0].props.keys.p256dh"),
        ({"p256dh": P256DH, "auth": AUTH, "extra": "x"}, "events[0].props.keys.extra"),
    ],
)
def test_keys_of_the_wrong_shape_are_refused_with_their_field(keys: object, field: str) -> None:
    response, bus = post(push(subscribed(keys=keys)))
    (rejected,) = json.loads(response.body)["rejected"]
    assert (rejected["reason"], rejected["field"]) == ("invalid_push_keys", field)
    assert bus.rows("raw.subscription") == []


@pytest.mark.parametrize(
    ("props", "reason", "field"),
    [
        ({"endpoint": FCM}, "wrong_type", "events[0].props.subscribed"),
        ({"subscribed": "yes", "endpoint": FCM}, "wrong_type", "events[0].props.subscribed"),
        ({"subscribed": False}, "missing_field", "events[0].props.endpoint"),
        ({"subscribed": False, "endpoint": FCM, "topic": "x"}, "invalid_value", "events[0].props.topic"),
        ({"subscribed": False, "endpoint": FCM, "expiration_time": "soon"}, "wrong_type",
         "events[0].props.expiration_time"),
        ({"subscribed": False, "endpoint": FCM, "version": "v" * 129}, "string_too_long", "events[0].props.version"),
    ],
)  # fmt: skip
def test_a_push_event_of_another_shape_is_refused(props: dict[str, Any], reason: str, field: str) -> None:
    response, _ = post(push(props))
    (rejected,) = json.loads(response.body)["rejected"]
    assert (rejected["reason"], rejected["field"]) == (reason, field)


def test_a_placeholder_visitor_is_refused_by_the_ledger() -> None:
    response, _ = post(push(subscribed(), visitor_id="undefined"))
    (rejected,) = json.loads(response.body)["rejected"]
    assert (rejected["reason"], rejected["field"]) == ("invalid_value", "events[0].visitor_id")


def _get(path: str, **headers: str) -> HttpResponse:
    request = HttpRequest("GET", path, headers, b"", {}, "10.0.0.1")
    return handle_request(request, CONFIG, FakeBus(), NOW, tracker_asset(), worker_asset())


def test_collect_serves_the_worker_for_any_site_to_import() -> None:
    answer = _get("/sw.js")
    asset = worker_asset()
    assert answer.status == 200 and answer.body == asset.body
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert answer.headers["Service-Worker-Allowed"] == "/"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert b"showNotification" in answer.body and b"notificationclick" in answer.body
    zipped = _get("/sw.js", **{"accept-encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.body) == asset.body
    assert _get("/sw.js", **{"if-none-match": asset.etag}).status == 304
    assert asset.etag != tracker_asset().etag
    refused = handle_request(HttpRequest("POST", "/sw.js", {}, b"", {}, None), CONFIG, FakeBus(), NOW, None, asset)
    assert refused.status == 405

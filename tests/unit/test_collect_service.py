"""The collect service end to end in memory: request in, answer and bus message out."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.beacons import Limits
from shared.config import Site
from shared.services.collect import CollectorConfig, HttpRequest, HttpResponse, handle_request
from shared.signing import SIGNATURE_ATTRIBUTE, signed_by
from tests.fakes import FakeBus

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
ORIGIN = "https://shop.example"
CONFIG = CollectorConfig(
    sites={"demo-shop": Site("demo-shop", (ORIGIN,)), "other": Site("other", ("https://other.example",))},
    topic="beacons",
    ip_salt="salt",
    limits=Limits(max_events=5, max_age=timedelta(days=30), max_future=timedelta(days=1)),
    max_body_bytes=4096,
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": str(uuid.uuid4()),
        "type": "page",
        "ts": NOW_MS - 1000,
        "visitor_id": "v1",
        "url": "https://shop.example/p/1?utm_source=naver&utm_medium=cpc",
        "title": "Shirt",
        "referrer": "https://search.naver.com/search.naver?query=%EB%A6%B0%EB%84%A8",
        "props": {},
    }
    base.update(overrides)
    return base


def post(body: Any, headers: dict[str, str] | None = None, bus: FakeBus | None = None) -> tuple[HttpResponse, FakeBus]:
    bus = bus or FakeBus()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {
        "content-type": "text/plain",
        "origin": ORIGIN,
        "user-agent": CHROME,
        "x-forwarded-for": "198.51.100.4, 203.0.113.9",  # the client's own entry, then the front end's
        "x-client-geo-location": "KR,KR11,Seoul",
    }
    hdrs.update(headers or {})
    request = HttpRequest("POST", "/e", {k: v for k, v in hdrs.items() if v is not None}, raw, {}, "10.0.0.1")
    return handle_request(request, CONFIG, bus, NOW), bus


def batch(*events: dict[str, Any], site: str = "demo-shop", sent_at: int | None = NOW_MS) -> dict[str, Any]:
    return {"site_id": site, "sent_at": sent_at, "events": list(events)}


def answer(response: HttpResponse) -> dict[str, Any]:
    return json.loads(response.body)


def test_accepts_a_batch_and_publishes_enriched_rows() -> None:
    page, land = event(), event(type="land")
    response, bus = post(batch(page, land))
    assert response.status == 200
    assert answer(response) == {"accepted": 2}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    ((topic, _, attributes),) = bus.published
    assert topic == "beacons" and attributes["site_id"] == "demo-shop" and attributes["rows"] == "2"
    row = bus.rows("raw.page")[0]
    assert row["event_id"] == page["event_id"] and row["site_id"] == "demo-shop"
    assert row["event_date"] == "2026-11-20" and row["visitor_id"] == "v1"
    assert row["page_host"] == "shop.example" and row["page_path"] == "/p/1"
    assert row["device_type"] == "desktop" and row["browser"] == "Chrome" and row["os"] == "Windows"
    assert row["country"] == "KR" and row["region"] == "Seoul"
    assert row["ip_hash"] and "203.0.113" not in json.dumps(row)
    land_row = bus.rows("raw.land")[0]
    assert land_row["is_entry"] is True and land_row["medium"] == "paid"
    assert land_row["utm_source"] == "naver" and land_row["search_keyword"] == "린넨"


def test_device_clock_skew_is_corrected_from_sent_at() -> None:
    # The device clock runs 3 days slow: its ts and sent_at are both 3 days behind.
    slow = NOW_MS - 3 * 86_400_000
    response, bus = post(batch(event(ts=slow - 5000), sent_at=slow))
    assert response.status == 200
    row = bus.rows("raw.page")[0]
    assert row["event_ts"] == (NOW - timedelta(seconds=5)).isoformat()
    assert row["client_ts"] == datetime.fromtimestamp((slow - 5000) / 1000, UTC).isoformat()


def test_transit_time_is_not_mistaken_for_clock_skew() -> None:
    # Sent 8 s before it was collected (a slow network or a busy server): the device clock is fine,
    # and shifting this batch would reorder it against the visitor's next page view.
    response, bus = post(batch(event(ts=NOW_MS - 9000), sent_at=NOW_MS - 8000))
    assert response.status == 200
    assert bus.rows("raw.page")[0]["event_ts"] == (NOW - timedelta(seconds=9)).isoformat()


def test_denied_analytics_consent_stores_an_anonymous_event() -> None:
    ident = event(
        type="identify",
        member_id="m1",
        consent={"analytics": False, "ads": False},
        props={"sex": "F", "birth_year": 1990, "email": "A@B.co", "phone": "010-1234-5678"},
    )
    response, bus = post(batch(event(consent={"analytics": False}), ident))
    assert response.status == 200
    page, user = bus.rows("raw.page")[0], bus.rows("raw.user")[0]
    for row in (page, user):
        assert row["is_anonymous"] is True
        assert row["visitor_id"] is None and row["member_id"] is None and row["ip_hash"] is None
    assert user["email"] is None and user["phone"] is None and user["sex"] is None and user["traits"] is None


def test_identify_normalises_contact_keys() -> None:
    ident = event(
        type="identify",
        member_id="m1",
        props={"sex": "여", "birth_year": "1990", "email": " A@B.co ", "phone": "010-1234-5678", "grade": "gold"},
    )
    response, bus = post(batch(ident))
    assert response.status == 200
    user = bus.rows("raw.user")[0]
    assert (user["sex"], user["birth_year"], user["email"], user["phone"]) == ("F", 1990, "a@b.co", "+821012345678")
    assert user["traits"] == {"grade": "gold"} and user["member_id"] == "m1"


def test_order_conversion_and_product_events_become_typed_columns() -> None:
    order = event(
        type="conv",
        props={
            "conv_type": "order",
            "order_id": 1042,
            "revenue": "39,000",
            "currency": "krw",
            "items": [{"product_id": "p1", "product_name": "Shirt", "price": 39000, "quantity": 1}],
            "coupon": "WELCOME",
        },
    )
    view = event(
        type="event", props={"name": "product_view", "product_id": "p1", "product_name": "Shirt", "price": 39000}
    )
    search = event(type="event", props={"name": "search", "keyword": "  linen   shirt "})
    response, bus = post(batch(order, view, search))
    assert response.status == 200, response.body
    conv = bus.rows("raw.conv")[0]
    assert (conv["conv_type"], conv["order_id"], conv["revenue"], conv["currency"]) == ("order", "1042", 39000, "KRW")
    assert conv["items"] == [
        {"product_id": "p1", "product_name": "Shirt", "category": None, "price": 39000, "quantity": 1}
    ]
    assert conv["properties"] == {"coupon": "WELCOME"}
    views, searches = bus.rows("raw.event")
    assert views["event_name"] == "product_view" and views["product_name"] == "Shirt" and views["properties"] is None
    assert searches["search_keyword"] == "linen shirt"


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"{not json", {}, 400, "malformed_json"),
        # Strict JSON: what the standard library would accept but no store can keep is refused at the door.
        (b'{"site_id": "demo-shop", "events": [{"ts": NaN}]}', {}, 400, "malformed_json"),
        (b'{"site_id": "demo-shop", "events": [{"title": "\\ud800"}]}', {}, 400, "malformed_json"),
        (b"[" * 1100 + b"]" * 1100, {}, 400, "malformed_json"),
        (b'{"site_id": "demo-shop", "events": [\xff]}', {}, 400, "invalid_utf8"),
        (b"x" * 5000, {}, 413, "body_too_large"),
        ([1, 2], {}, 400, "not_an_object"),
        ({"events": [event()]}, {}, 400, "missing_site_id"),
        ({"site_id": 7, "events": [event()]}, {}, 400, "wrong_type"),
        (batch(event(), site="nope"), {}, 400, "unknown_site_id"),
        (batch(event(), site="other"), {}, 403, "origin_not_allowed"),
        ({"site_id": "demo-shop"}, {}, 400, "missing_field"),
        ({"site_id": "demo-shop", "events": {}}, {}, 400, "wrong_type"),
        (batch(), {}, 400, "no_events"),
        (batch(*[event() for _ in range(6)]), {}, 400, "too_many_events"),
        (batch(event(), sent_at="yesterday"), {}, 400, "wrong_type"),  # type: ignore[arg-type]
        (batch(event()), {"content-type": "application/xml"}, 415, "unsupported_media_type"),
    ],
)
def test_request_level_rejections(body: Any, headers: dict[str, str], status: int, reason: str) -> None:
    response, bus = post(body, headers)
    assert response.status == status
    assert answer(response)["error"] == reason
    (bad,) = bus.rows("raw.bad_rows")
    assert bad["reason_code"] == reason and bad["stage"] == "collect" and bad["payload"]
    assert bus.rows("raw.page") == []


@pytest.mark.parametrize(
    ("bad_event", "reason", "field"),
    [
        ("not an object", "not_an_object", "events[1]"),
        (event(event_id=None), "missing_field", "events[1].event_id"),
        (event(event_id="123"), "invalid_event_id", "events[1].event_id"),
        (event(type="click"), "unknown_event_type", "events[1].type"),
        (event(ts=None), "missing_field", "events[1].ts"),
        (event(ts="now"), "wrong_type", "events[1].ts"),
        (event(ts=True), "wrong_type", "events[1].ts"),
        (event(ts=1e300), "invalid_timestamp", "events[1].ts"),
        (event(ts=NOW_MS + 3 * 86_400_000), "timestamp_in_future", "events[1].ts"),
        (event(ts=NOW_MS - 40 * 86_400_000), "timestamp_too_old", "events[1].ts"),
        (event(url="https://x/" + "a" * 3000), "string_too_long", "events[1].url"),
        (event(visitor_id=12), "wrong_type", "events[1].visitor_id"),
        (event(consent="yes"), "wrong_type", "events[1].consent"),
        (event(consent={"analytics": "no"}), "wrong_type", "events[1].consent.analytics"),
        (event(props=[1]), "wrong_type", "events[1].props"),
        (event(props={f"k{i}": i for i in range(51)}), "too_many_properties", "events[1].props"),
        (event(props={"a": {"b": {"c": {"d": 1}}}}), "nesting_too_deep", "events[1].props.a.b.c"),
        (event(props={"note": "x" * 2000}), "string_too_long", "events[1].props.note"),
        (event(props={"a": {"b": "x" * 2000}}), "string_too_long", "events[1].props.a.b"),
        (event(type="identify"), "missing_field", "events[1].member_id"),
        (
            event(type="identify", member_id="m", props={"birth_year": 1800}),
            "invalid_value",
            "events[1].props.birth_year",
        ),
        (event(type="identify", member_id="m", props={"email": "nope"}), "invalid_value", "events[1].props.email"),
        (event(type="identify", member_id="m", props={"sex": "X"}), "invalid_value", "events[1].props.sex"),
        (event(type="conv", props={}), "missing_field", "events[1].props.conv_type"),
        (event(type="conv", props={"conv_type": "order", "revenue": 1}), "missing_field", "events[1].props.order_id"),
        (
            event(type="conv", props={"conv_type": "order", "order_id": "o", "revenue": "lots"}),
            "wrong_type",
            "events[1].props.revenue",
        ),
        (
            event(type="conv", props={"conv_type": "order", "order_id": "o", "revenue": 1, "currency": "₩"}),
            "invalid_value",
            "events[1].props.currency",
        ),
        (
            event(
                type="conv", props={"conv_type": "order", "order_id": "o", "revenue": 1, "items": [{"quantity": 1.5}]}
            ),
            "wrong_type",
            "events[1].props.items[0].quantity",
        ),
        (event(type="event", props={}), "missing_field", "events[1].props.name"),
        (event(type="event", props={"name": " "}), "missing_field", "events[1].props.name"),
        (event(type="event", props={"name": "search"}), "missing_field", "events[1].props.keyword"),
        (event(type="event", props={"name": "search", "keyword": "  "}), "missing_field", "events[1].props.keyword"),
        (event(type="conv", props={"conv_type": "\t"}), "missing_field", "events[1].props.conv_type"),
        (
            event(type="conv", props={"conv_type": "order", "order_id": " ", "revenue": 1}),
            "missing_field",
            "events[1].props.order_id",
        ),
        (
            event(type="identify", member_id="m", props={"birth_year": "²"}),
            "invalid_value",
            "events[1].props.birth_year",
        ),
        (
            event(type="identify", member_id="m", props={"birth_year": "١٩٩٠"}),
            "invalid_value",
            "events[1].props.birth_year",
        ),
        (
            event(type="identify", member_id="m", props={"phone": "010²²²²²²²²"}),
            "invalid_value",
            "events[1].props.phone",
        ),
        (event(type="event", props={"name": "product_view"}), "missing_field", "events[1].props.product_id"),
    ],
)
def test_event_level_rejections_keep_the_good_events(bad_event: Any, reason: str, field: str) -> None:
    good = event()
    response, bus = post(batch(good, bad_event))
    assert response.status == 422
    body = answer(response)
    assert body["error"] == "invalid_events" and body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "reason": reason, "field": field, "detail": body["rejected"][0]["detail"]}]
    assert field.split(".")[-1].split("[")[0] in body["rejected"][0]["detail"] or reason == "not_an_object"
    assert [r["event_id"] for r in bus.rows("raw.page")] == [good["event_id"]]
    (bad,) = bus.rows("raw.bad_rows")
    assert (bad["reason_code"], bad["field"], bad["site_id"]) == (reason, field, "demo-shop")
    assert json.loads(bad["payload"]) == bad_event


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"k" * 70: 1}, "events[0].props." + "k" * 20),
        ({"a": [1, {"k" * 70: 1}]}, "events[0].props.a[1]." + "k" * 20),
    ],
)
def test_overlong_property_names_are_rejected_at_any_depth(props: dict[str, Any], field: str) -> None:
    response, _ = post(batch(event(props=props)))
    (rejected,) = answer(response)["rejected"]
    assert (rejected["reason"], rejected["field"]) == ("string_too_long", field)
    assert rejected["detail"] == "property name longer than 64 characters"


def test_nested_properties_within_the_limits_are_kept() -> None:
    props = {"sizes": [1.5, {"eu": 42, "label": "큰"}], "flags": {"gift": True, "note": None}}
    response, bus = post(batch(event(type="event", props={"name": "custom", **props})))
    assert response.status == 200
    assert bus.rows("raw.event")[0]["properties"] == props


def test_a_repeated_event_id_in_one_batch_is_rejected_once() -> None:
    first = event()
    response, bus = post(batch(first, dict(first)))
    assert response.status == 422
    assert answer(response)["rejected"][0]["reason"] == "duplicate_event_id"
    assert len(bus.rows("raw.page")) == 1


@pytest.mark.parametrize("spelling", [str.upper, lambda u: "{" + u + "}", lambda u: u.replace("-", "")])
def test_event_ids_in_other_uuid_spellings_are_stored_canonical(spelling: Any) -> None:
    canonical = str(uuid.uuid4())
    response, bus = post(batch(event(event_id=spelling(canonical))))
    assert response.status == 200
    assert [r["event_id"] for r in bus.rows("raw.page")] == [canonical]


def test_bus_outage_answers_503_and_accepts_nothing() -> None:
    response, bus = post(batch(event()), bus=FakeBus(fail=True))
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert answer(response)["error"] == "unavailable"


def test_bad_row_ids_are_stable_so_a_retried_bad_request_is_stored_once() -> None:
    _, bus1 = post(b"{broken")
    _, bus2 = post(b"{broken")
    assert bus1.rows("raw.bad_rows")[0]["bad_row_id"] == bus2.rows("raw.bad_rows")[0]["bad_row_id"]


def test_rejections_carry_cors_headers_so_the_tracker_can_read_them() -> None:
    response, _ = post(batch(event(), site="other"))
    assert response.status == 403
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    down, _ = post(batch(event()), bus=FakeBus(fail=True))
    assert down.headers["Access-Control-Expose-Headers"] == "Retry-After"


def test_tracker_script_honours_etag_and_accept_encoding() -> None:
    from shared.tracker import tracker_asset

    asset = tracker_asset()
    get = lambda **h: handle_request(HttpRequest("GET", "/tracker.js", h), CONFIG, FakeBus(), NOW, asset)  # noqa: E731
    plain, zipped = get(), get(**{"accept-encoding": "br, gzip"})
    assert plain.body == asset.body and "Content-Encoding" not in plain.headers
    assert zipped.body == asset.gzip_body and zipped.headers["Content-Encoding"] == "gzip"
    assert plain.headers["Vary"] == zipped.headers["Vary"] == "Accept-Encoding"
    assert get(**{"accept-encoding": "gzip;q=0"}).body == asset.body
    assert get(**{"if-none-match": f'"x", {asset.etag}'}).status == 304


def test_preflight_allows_only_configured_origins() -> None:
    ok = handle_request(HttpRequest("OPTIONS", "/e", {"origin": ORIGIN}), CONFIG, FakeBus(), NOW)
    assert ok.status == 204 and ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    denied = handle_request(HttpRequest("OPTIONS", "/e", {"origin": "https://evil.example"}), CONFIG, FakeBus(), NOW)
    assert denied.status == 403 and "Access-Control-Allow-Origin" not in denied.headers


def test_pixel_stores_a_page_view_and_always_answers_a_gif() -> None:
    bus = FakeBus()
    query = {"site_id": "demo-shop", "url": "https://shop.example/nojs", "visitor_id": "v9", "title": "No JS"}
    ok = handle_request(HttpRequest("GET", "/p.gif", {"user-agent": CHROME}, b"", query), CONFIG, bus, NOW)
    assert ok.status == 200 and ok.headers["Content-Type"] == "image/gif" and ok.body.startswith(b"GIF89a")
    again = handle_request(HttpRequest("GET", "/p.gif", {"user-agent": CHROME}, b"", query), CONFIG, bus, NOW)
    assert again.status == 200
    rows = bus.rows("raw.page")
    assert rows[0]["source"] == "pixel" and rows[0]["visitor_id"] == "v9" and rows[0]["page_path"] == "/nojs"
    assert rows[0]["event_id"] == rows[1]["event_id"]  # a reload within the second is one event downstream
    bad = handle_request(HttpRequest("GET", "/p.gif", {}, b"", {"site_id": "nope"}), CONFIG, bus, NOW)
    assert bad.status == 400 and bad.headers["X-Reject-Reason"] == "unknown_site_id" and bad.body.startswith(b"GIF")


def test_unknown_paths_and_methods() -> None:
    assert handle_request(HttpRequest("GET", "/admin"), CONFIG, FakeBus(), NOW).status == 404
    assert handle_request(HttpRequest("PUT", "/e"), CONFIG, FakeBus(), NOW).status == 405
    assert handle_request(HttpRequest("GET", "/healthz"), CONFIG, FakeBus(), NOW).status == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("010-1234-5678", "+821012345678"),
        ("1012345678", "+821012345678"),
        ("+1 212 555 1234", "+12125551234"),
        ("0082 10 1234 5678", "+821012345678"),
        ("12", None),
        ("call me", None),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, expected: str | None) -> None:
    from shared.contacts import normalize_phone

    assert normalize_phone(raw) == expected


def test_a_pixel_with_an_unknown_site_id_keeps_it_out_of_the_message_attributes() -> None:
    """Pub/Sub refuses attribute values over 1,024 bytes (the emulator does not): only a configured
    site id may go there; the query stays whole in the bad row's payload."""
    bus = FakeBus()
    huge = "s" * 5000
    response = handle_request(HttpRequest("GET", "/p.gif", {}, b"", {"site_id": huge}), CONFIG, bus, NOW)
    assert response.status == 400 and response.headers["X-Reject-Reason"] == "unknown_site_id"
    [(_, _, attributes)] = bus.published
    assert attributes["site_id"] == ""
    (bad,) = bus.rows("raw.bad_rows")
    assert bad["site_id"] is None and json.loads(bad["payload"]) == {"site_id": huge}


def test_the_ip_hash_is_of_the_address_our_front_end_appended() -> None:
    _, spoofed = post(batch(event()), headers={"x-forwarded-for": "6.6.6.6, 203.0.113.9"})
    _, honest = post(batch(event()), headers={"x-forwarded-for": "203.0.113.9"})
    assert spoofed.rows("raw.page")[0]["ip_hash"] == honest.rows("raw.page")[0]["ip_hash"] is not None


def test_messages_are_signed_for_the_loader_when_a_bus_key_is_set() -> None:
    bus = FakeBus()
    config = dataclasses.replace(CONFIG, bus_key="bus-key")
    request = HttpRequest(
        "POST", "/e", {"content-type": "text/plain", "origin": ORIGIN}, json.dumps(batch(event())).encode()
    )
    assert handle_request(request, config, bus, NOW).status == 200
    [(_, data, attributes)] = bus.published
    assert signed_by(data, attributes, "bus-key") and not signed_by(data, attributes, "other")
    assert "bus-key" not in repr(config)
    _, unsigned = post(batch(event()))  # no key configured: no signature
    assert SIGNATURE_ATTRIBUTE not in unsigned.published[0][2]


def test_text_is_stored_composed_nfc() -> None:
    """Decomposed Hangul (NFD, as some IMEs and macOS send it) is stored as the usual composed text,
    so it matches segment rules and other visits."""
    seoul_nfd = unicodedata.normalize("NFD", "서울 셔츠")
    assert seoul_nfd != "서울 셔츠"
    search = event(type="event", title=seoul_nfd, props={"name": "search", "keyword": seoul_nfd, "tag": [seoul_nfd]})
    _, bus = post(batch(search))
    [row] = bus.rows("raw.event")
    assert row["page_title"] == row["search_keyword"] == "서울 셔츠"
    assert json.dumps(row["properties"], ensure_ascii=False) == '{"tag": ["서울 셔츠"]}'

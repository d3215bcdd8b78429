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
    sites={
        # A shop whose jurisdiction lets analytics run unless refused, and one where it needs an opt-in.
        "demo-shop": Site("demo-shop", (ORIGIN,), analytics_default=True),
        "optin-shop": Site("optin-shop", (ORIGIN,)),
        "other": Site("other", ("https://other.example",)),
    },
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


def post(
    body: Any, headers: dict[str, str] | None = None, bus: FakeBus | None = None, config: CollectorConfig = CONFIG
) -> tuple[HttpResponse, FakeBus]:
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
    return handle_request(request, config, bus, NOW), bus


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


# ---------------------------------------------------------------- consent at the door

SECRET_VISITOR, SECRET_MEMBER = "v-7c1e9f", "M-5521"


def published_text(bus: FakeBus) -> str:
    """Every byte collect put on the bus, as text: what Pub/Sub and the dead-letter topic keep."""
    return "".join(data.decode() for _, data, _ in bus.published)


def ip_hash_of_this_client() -> str:
    _, bus = post(batch(event()))
    value: str = bus.rows("raw.page")[0]["ip_hash"]
    return value


def consent_event(purposes: Any, **fields: Any) -> dict[str, Any]:
    props = {"purposes": purposes, **fields.pop("props", {})}
    return event(type="consent", visitor_id=SECRET_VISITOR, member_id=SECRET_MEMBER, props=props, **fields)


@pytest.mark.parametrize(
    ("site", "consent", "analytics", "ads"),
    [
        ("demo-shop", None, True, False),  # the site lets analytics run by default; ads never
        ("optin-shop", None, False, False),  # the site needs an opt-in: no consent object is a refusal
        ("optin-shop", {"analytics": True}, True, False),
        ("optin-shop", {"analytics": True, "ads": True}, True, True),
        ("optin-shop", {"analytics": True, "ad_user_data": True, "ads": False}, True, True),
        ("demo-shop", {"analytics": False, "ads": True}, False, True),
        ("demo-shop", {"analytics": None}, True, False),  # null is "not stated"
    ],
)
def test_consent_defaults_come_from_the_site_and_ads_are_denied_unless_granted(
    site: str, consent: dict[str, Any] | None, analytics: bool, ads: bool
) -> None:
    page = event(visitor_id=SECRET_VISITOR, member_id=SECRET_MEMBER) | ({"consent": consent} if consent else {})
    response, bus = post(batch(page, site=site))
    assert response.status == 200
    (row,) = bus.rows("raw.page")
    assert (row["consent_analytics"], row["consent_ads"], row["is_anonymous"]) == (analytics, ads, not analytics)
    assert (row["visitor_id"], row["member_id"]) == ((SECRET_VISITOR, SECRET_MEMBER) if analytics else (None, None))
    assert (row["ip_hash"] is not None) is analytics


def test_anonymous_events_leave_no_identifier_on_the_bus() -> None:
    """Pub/Sub keeps a message 7 days and dead letters keep it whole: the loader dropping the
    identifiers is too late, the message itself must not carry them."""
    ip_hash = ip_hash_of_this_client()
    ident = event(
        type="identify",
        member_id=SECRET_MEMBER,
        visitor_id=SECRET_VISITOR,
        consent={"analytics": False},
        props={"email": "jimin@example.com", "phone": "010-9876-5432", "grade": "gold"},
    )
    page = event(visitor_id=SECRET_VISITOR, member_id=SECRET_MEMBER, consent={"analytics": False})
    response, bus = post(batch(page, ident))
    assert response.status == 200 and answer(response) == {"accepted": 2}
    text = published_text(bus)
    for secret in (SECRET_VISITOR, SECRET_MEMBER, ip_hash, "jimin@example.com", "9876", "gold"):
        assert secret not in text
    message = json.loads(bus.published[0][1])
    assert message["context"]["ip_hash"] is None
    assert {(e["visitor_id"], e["member_id"]) for e in message["events"]} == {(None, None)}


def test_a_consented_event_keeps_the_ip_hash_for_the_batch_but_anonymous_rows_do_not() -> None:
    ip_hash = ip_hash_of_this_client()
    mine, theirs = event(consent={"analytics": True}), event(consent={"analytics": False})
    _, bus = post(batch(mine, theirs))
    rows = {r["event_id"]: r for r in bus.rows("raw.page")}
    assert rows[mine["event_id"]]["ip_hash"] == ip_hash and rows[theirs["event_id"]]["ip_hash"] is None


def test_free_form_properties_of_anonymous_events_lose_emails_and_phone_numbers() -> None:
    props = {
        "name": "newsletter_signup",
        "contact": "Jimin@Example.com",
        "note": "call me on 010-2222-3333 after six",
        "nested": {"tel": "+82 10 4444 5555", "size": "M", "codes": ["02-555-6666", "A-100"]},
        "order_no": "20241122001",  # bare digits: an order number, not a phone
        "sku": "0b6f3f0e",
        "qty": 2,
    }
    search = {"name": "search", "keyword": "jimin@example.com"}
    anon = [event(type="event", consent={"analytics": False}, props=p) for p in (props, search)]
    consented = event(type="event", consent={"analytics": True}, props=props)
    response, bus = post(batch(*anon, consented))
    assert response.status == 200
    rows = {r["event_id"]: r for r in bus.rows("raw.event")}
    assert rows[anon[0]["event_id"]]["properties"] == {
        "nested": {"size": "M", "codes": ["A-100"]},
        "order_no": "20241122001",
        "sku": "0b6f3f0e",
        "qty": 2,
    }
    assert rows[anon[1]["event_id"]]["search_keyword"] is None
    assert rows[consented["event_id"]]["properties"]["contact"] == "Jimin@Example.com"
    assert "2222" not in published_text(bus).split(consented["event_id"])[0]


def test_text_columns_of_anonymous_events_lose_contacts_and_a_contact_as_the_name_is_redacted() -> None:
    """A site may send anything as an event's name or product: a refusing visitor's e-mail or
    number in them stays off the bus (found by tests/integration/test_collect_fuzz.py)."""
    named = {"name": "JIMIN@SECRET.EXAMPLE", "product_name": "gift for 010-5555-7777", "category": "shoes"}
    anon = event(type="event", consent={"analytics": False}, props=named)
    consented = event(type="event", consent={"analytics": True}, props=named)
    response, bus = post(batch(anon, consented))
    assert response.status == 200
    rows = {r["event_id"]: r for r in bus.rows("raw.event")}
    kept = rows[anon["event_id"]]
    assert (kept["event_name"], kept["product_name"], kept["category"]) == ("redacted", None, "shoes")
    assert rows[consented["event_id"]]["event_name"] == "JIMIN@SECRET.EXAMPLE"
    text = published_text(bus).lower().split(consented["event_id"])[0]
    assert "jimin@secret.example" not in text and "5555" not in text


@pytest.mark.parametrize("kind", ["page", "land"])
def test_ad_click_ids_are_dropped_without_ads_consent_and_the_click_still_counts_as_paid(kind: str) -> None:
    url = "https://shop.example/p/1?gclid=Cj0KCQ-secret&utm_campaign=fall#NaPm=ct%3Dsecret2"
    referrer = "https://shop.example/?fbclid=IwAR-secret3"
    denied = event(type=kind, url=url, referrer=referrer, consent={"analytics": True})
    granted = event(type=kind, url=url, referrer=referrer, consent={"analytics": True, "ads": True})
    response, bus = post(batch(denied, granted))
    assert response.status == 200
    rows = {r["event_id"]: r for r in bus.rows(f"raw.{kind}")}
    blanked = rows[denied["event_id"]]
    assert blanked["page_url"] == "https://shop.example/p/1?gclid=redacted&utm_campaign=fall#NaPm=redacted"
    assert blanked["referrer"] == "https://shop.example/?fbclid=redacted"
    kept = rows[granted["event_id"]]
    assert kept["page_url"] == url and kept["referrer"] == referrer
    message = published_text(bus)
    assert message.count("Cj0KCQ-secret") == 1 and message.count("secret3") == 1  # the granted event's only
    if kind == "land":
        assert (blanked["medium"], blanked["source_name"], blanked["click_id_type"]) == ("paid", "google", "gclid")
        assert blanked["click_id"] is None and kept["click_id"] == "Cj0KCQ-secret"


def test_a_rejected_event_without_analytics_consent_is_stored_without_identifiers() -> None:
    bad = event(
        type="identify",
        visitor_id=SECRET_VISITOR,
        member_id=SECRET_MEMBER,
        consent={"analytics": False},
        url="https://shop.example/?gclid=secret-click",
        props={"email": "jimin@example.com", "phone": "010-9876-5432", "birth_year": 1800},
    )
    bare_string: Any = "mail jimin@example.com"
    response, bus = post(batch(event(), bad, bare_string, site="optin-shop"))
    assert response.status == 422
    assert [r["reason"] for r in answer(response)["rejected"]] == ["invalid_value", "not_an_object"]
    stored, string_row = bus.rows("raw.bad_rows")
    payload = json.loads(stored["payload"])
    assert payload["visitor_id"] == payload["member_id"] == payload["props"] == "redacted"
    assert payload["url"] == "https://shop.example/?gclid=redacted"
    assert payload["event_id"] == bad["event_id"] and stored["event_id"] == bad["event_id"]
    assert json.loads(string_row["payload"]) == "redacted"
    text = published_text(bus)
    for secret in (SECRET_VISITOR, SECRET_MEMBER, "jimin@example.com", "9876", "secret-click"):
        assert secret not in text


def test_a_rejected_event_with_analytics_consent_is_kept_whole_for_inspection() -> None:
    bad = event(consent={"analytics": True, "ads": True}, member_id=SECRET_MEMBER, ts="soon", props={"e": "a@b.co"})
    _, bus = post(batch(bad))
    (stored,) = bus.rows("raw.bad_rows")
    assert json.loads(stored["payload"]) == bad


@pytest.mark.parametrize(
    ("consent", "reason", "field"),
    [
        ("yes", "wrong_type", "events[0].consent"),
        ({"analytics": "no"}, "wrong_type", "events[0].consent.analytics"),
        (
            {"analytic": False},
            "unknown_purpose",
            "events[0].consent.analytic",
        ),  # a typo must not fall back to the default
        ({"analytics": True, "newsletter": True}, "unknown_purpose", "events[0].consent.newsletter"),
    ],
)
def test_a_consent_object_that_is_not_one_is_rejected_and_counts_as_refused(
    consent: Any, reason: str, field: str
) -> None:
    bad = event(visitor_id=SECRET_VISITOR, member_id=SECRET_MEMBER, consent=consent)
    response, bus = post(batch(bad))
    assert response.status == 422
    (rejected,) = answer(response)["rejected"]
    assert (rejected["reason"], rejected["field"]) == (reason, field)
    (stored,) = bus.rows("raw.bad_rows")
    assert json.loads(stored["payload"])["visitor_id"] == "redacted" and SECRET_MEMBER not in stored["payload"]


def test_a_request_refused_whole_is_stored_without_the_identifiers_of_unconsented_events() -> None:
    consented = event(consent={"analytics": True}, member_id="M-kept")
    unconsented = event(member_id=SECRET_MEMBER, props={"email": "jimin@example.com"})
    response, bus = post(batch(consented, unconsented), headers={"origin": "https://evil.example"})
    assert response.status == 403
    (stored,) = bus.rows("raw.bad_rows")
    events = json.loads(stored["payload"])["events"]
    assert events[0] == consented
    assert events[1]["member_id"] == events[1]["props"]["email"] == "redacted"
    assert SECRET_MEMBER not in published_text(bus) and "jimin@" not in published_text(bus)


def test_a_body_that_is_not_json_has_its_identifiers_masked_in_place() -> None:
    body = b'{"site_id": "demo-shop", "events": [{"member_id": "M-5521", "props": {"note": "jimin@a.kr 010-9876-5432"'
    response, bus = post(body)
    assert response.status == 400
    (stored,) = bus.rows("raw.bad_rows")
    assert stored["payload"] == (
        '{"site_id": "demo-shop", "events": [{"member_id": "redacted", "props": {"note": "redacted redacted"'
    )


def test_a_bad_row_of_a_retried_anonymous_request_is_stored_once() -> None:
    bad = event(consent={"analytics": False}, member_id=SECRET_MEMBER, ts="soon")
    _, first = post(batch(bad))
    _, again = post(batch(bad))
    assert first.rows("raw.bad_rows")[0]["bad_row_id"] == again.rows("raw.bad_rows")[0]["bad_row_id"]


def test_a_consent_event_becomes_ledger_rows_per_subject_and_purpose() -> None:
    ip_hash = ip_hash_of_this_client()
    tcf = (  # the shape and length of a TCF v2.2 TC string: base64url
        "CQHb4AAQHb4AAAKA1AENBJFsAP_gAEPgAAAAKYtV_G__bWlr8X73aftkeY1P9_h77sQxBhbJE-4FzLvW_JwXx2ExNA36tqIKmRIA"
        "u3bBIQNlHJDUTVCgaogVryDMakWcoTNKJ6BkiFMRM2dYCF5vm4tj-QKY5vr991dx2B-t7dr83dzyz4VHn3a5_2a0WJCdA5-tDfv9"
        "bROb-9IOd_x8v4v8_F_rE2_eT1l_tevp7D9-cts7_XW-9_fff79Ll_-mBwUcALMNCogDLIkJCDQMIIEAKgrCAigQAAAAkDRAQAmD"
        "Ap2BgEusJEAIAUAAwQAgABRkACAAASABCIAIACgQAAQCBQAAgAACAQAMDAAGACwEAgABAdAhTAggUCwASMyIhTAhCgSCAlsoEEgC"
        "BBXCEIs8CCAREwUAAAJABWAAICwWAxJICViQQJcQbQAAEACAQQAVCKTswBBAGbLUXiybRlaQFo-YLntMAwAAAAA"
    )
    consent = consent_event(
        {"analytics": True, "ad_user_data": False, "marketing": True},
        url="https://shop.example/consent?gclid=secret-click",
        consent={"analytics": True, "ads": False},
        props={
            "version": "v3",
            "tcf": tcf,
            "consent_mode": {"ad_storage": "denied", "analytics_storage": "granted", "ad_user_data": "denied"},
        },
    )
    response, bus = post(batch(consent))
    assert response.status == 200 and answer(response) == {"accepted": 1}
    rows = bus.rows("raw.consent")
    assert bus.rows() == rows  # a decision is a ledger entry, not an event row
    assert sorted((r["subject_type"], r["subject_value"], r["purpose"], r["granted"]) for r in rows) == [
        ("member", SECRET_MEMBER, "ad_user_data", False),
        ("member", SECRET_MEMBER, "analytics", True),
        ("member", SECRET_MEMBER, "marketing", True),
        ("visitor", SECRET_VISITOR, "ad_user_data", False),
        ("visitor", SECRET_VISITOR, "analytics", True),
        ("visitor", SECRET_VISITOR, "marketing", True),
    ]
    effective = datetime.fromtimestamp(consent["ts"] / 1000, UTC).isoformat(timespec="microseconds")
    for row in rows:
        assert (row["site_id"], row["source"], row["effective_at"], row["recorded_at"]) == (
            "demo-shop",
            "tracker",
            effective,
            NOW.isoformat(timespec="microseconds"),
        )
        assert row["event_date"] == "2026-11-20" and row["visitor_id"] == SECRET_VISITOR
        assert (row["wording_version"], row["tcf_string"], row["ip_hash"]) == ("v3", tcf, ip_hash)
        assert row["consent_mode"] == consent["props"]["consent_mode"]
        assert row["page_url"] == "https://shop.example/consent?gclid=redacted"  # no ads consent: no click id
    assert len({r["consent_event_id"] for r in rows}) == 6
    _, again = post(batch(consent))  # the tracker's retry: the same ids, so the ledger stores it once
    assert sorted(r["consent_event_id"] for r in again.rows("raw.consent")) == sorted(
        r["consent_event_id"] for r in rows
    )


def test_a_withdrawal_is_recorded_against_the_visitor_and_member_it_withdraws() -> None:
    withdrawal = consent_event({"analytics": False}, consent={"analytics": False})
    after = event(visitor_id=SECRET_VISITOR, consent={"analytics": False})
    response, bus = post(batch(withdrawal, after))
    assert response.status == 200 and answer(response) == {"accepted": 2}
    ledger = bus.rows("raw.consent")
    assert {(r["subject_type"], r["subject_value"], r["granted"]) for r in ledger} == {
        ("visitor", SECRET_VISITOR, False),
        ("member", SECRET_MEMBER, False),
    }
    (page,) = bus.rows("raw.page")
    assert page["visitor_id"] is None and page["ip_hash"] is None
    assert all(r["ip_hash"] for r in ledger)  # the proof goes with the ledger rows only


def test_a_consent_event_naming_nobody_is_accepted_and_records_nothing() -> None:
    refusal = event(
        type="consent", visitor_id=None, consent={"analytics": False}, props={"purposes": {"analytics": False}}
    )
    response, bus = post(batch(refusal))
    assert response.status == 200 and answer(response) == {"accepted": 1}
    assert bus.rows() == []


@pytest.mark.parametrize(
    ("props", "reason", "field"),
    [
        ({}, "missing_field", "events[0].props.purposes"),
        ({"purposes": {}}, "missing_field", "events[0].props.purposes"),
        ({"purposes": ["analytics"]}, "wrong_type", "events[0].props.purposes"),
        (
            {"purposes": {"analytics": True, "newsletter": True}},
            "unknown_purpose",
            "events[0].props.purposes.newsletter",
        ),
        ({"purposes": {"marketing": "yes"}}, "wrong_type", "events[0].props.purposes.marketing"),
        ({"purposes": {"marketing": 1}}, "wrong_type", "events[0].props.purposes.marketing"),
        ({"purposes": {"marketing": True}, "tcf": "C" * 4097}, "string_too_long", "events[0].props.tcf"),
        ({"purposes": {"marketing": True}, "tcf": "not a tc string!"}, "invalid_value", "events[0].props.tcf"),
        ({"purposes": {"marketing": True}, "tcf": 7}, "wrong_type", "events[0].props.tcf"),
        ({"purposes": {"marketing": True}, "version": "v" * 200}, "string_too_long", "events[0].props.version"),
        ({"purposes": {"marketing": True}, "consent_mode": "denied"}, "wrong_type", "events[0].props.consent_mode"),
        (
            {"purposes": {"marketing": True}, "consent_mode": {"ad_storage": "yes"}},
            "invalid_value",
            "events[0].props.consent_mode.ad_storage",
        ),
        (
            {"purposes": {"marketing": True}, "consent_mode": {"ads_storage": "denied"}},
            "invalid_value",
            "events[0].props.consent_mode.ads_storage",
        ),
        (
            {"purposes": {"marketing": True}, "consent_mode": {"ad_storage": ["denied"]}},
            "invalid_value",
            "events[0].props.consent_mode.ad_storage",
        ),
        ({"purposes": {"marketing": True}, "wording": "v3"}, "invalid_value", "events[0].props.wording"),
        ({"purposes": {"marketing": True}, "visitor_id": "undefined"}, "invalid_value", "events[0].visitor_id"),
    ],
)
def test_a_malformed_consent_event_is_rejected_naming_the_field_and_records_nothing(
    props: dict[str, Any], reason: str, field: str
) -> None:
    props = dict(props)
    visitor = props.pop("visitor_id", SECRET_VISITOR)  # a placeholder the ledger refuses: it names nobody
    bad = event(type="consent", visitor_id=visitor, consent={"analytics": True}, props=props)
    response, bus = post(batch(bad), config=dataclasses.replace(CONFIG, max_body_bytes=16384))
    assert response.status == 422
    (rejected,) = answer(response)["rejected"]
    assert (rejected["reason"], rejected["field"]) == (reason, field)
    assert bus.rows("raw.consent") == []
    (stored,) = bus.rows("raw.bad_rows")
    assert (stored["reason_code"], stored["field"]) == (reason, field)


@pytest.mark.parametrize(
    ("query", "visitor"),
    [
        ({}, SECRET_VISITOR),  # no parameter: the site's default (demo-shop: analytics runs)
        ({"consent": "analytics"}, SECRET_VISITOR),
        ({"consent": "analytics,ads"}, SECRET_VISITOR),
        ({"consent": ""}, None),
        ({"consent": "none"}, None),
        ({"consent": "ads"}, None),
    ],
)
def test_the_pixel_takes_a_consent_parameter(query: dict[str, str], visitor: str | None) -> None:
    bus = FakeBus()
    base = {"site_id": "demo-shop", "url": "https://shop.example/nojs?gclid=secret-click", "visitor_id": SECRET_VISITOR}
    request = HttpRequest("GET", "/p.gif", {"user-agent": CHROME}, b"", base | query, "198.51.100.4")
    response = handle_request(request, CONFIG, bus, NOW)
    assert response.status == 200
    (row,) = bus.rows("raw.page")
    assert row["visitor_id"] == visitor and (row["ip_hash"] is not None) is (visitor is not None)
    ads = "ads" in query.get("consent", "")
    assert row["consent_ads"] is ads and ("secret-click" in row["page_url"]) is ads


def test_a_pixel_on_an_opt_in_site_without_consent_is_anonymous_and_a_bad_one_keeps_no_identifier() -> None:
    bus = FakeBus()
    query = {"site_id": "optin-shop", "url": "https://shop.example/nojs", "visitor_id": SECRET_VISITOR}
    assert handle_request(HttpRequest("GET", "/p.gif", {}, b"", query), CONFIG, bus, NOW).status == 200
    assert bus.rows("raw.page")[0]["visitor_id"] is None
    typo = handle_request(HttpRequest("GET", "/p.gif", {}, b"", query | {"consent": "analytic"}), CONFIG, bus, NOW)
    assert typo.status == 400 and typo.headers["X-Reject-Reason"] == "unknown_purpose"
    wrong = handle_request(HttpRequest("GET", "/p.gif", {}, b"", query | {"type": "click"}), CONFIG, bus, NOW)
    assert wrong.status == 400 and wrong.headers["X-Reject-Reason"] == "invalid_value"
    assert SECRET_VISITOR not in published_text(bus)

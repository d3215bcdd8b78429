"""Beacon validation and shaping: the wire protocol (docs/collect-api.md) to raw table rows.

Pure functions: no I/O, the clock passed in. The collector, the pixel and the offline importer all
go through `validate_event` and `event_rows`, so an event is judged by one set of rules.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from shared.consent.vocabulary import Purpose
from shared.contacts import ASCII_DIGITS, normalize_email, normalize_phone
from shared.enrich.geo import Geo
from shared.enrich.inflow import classify_inflow
from shared.enrich.user_agent import ClientInfo, parse_user_agent

EVENT_TYPES = ("page", "land", "identify", "conv", "event", "consent", "push")
LEDGER_TYPES = ("consent", "push")  # decisions, not behaviour: ledger rows at the door (consent_events, push_events)
# Event types stored as one row each, completed by the loader; a consent event becomes ledger rows
# at the door instead (shared/consent_events.py).
TABLE_BY_TYPE = {t: f"raw.{t}" for t in ("page", "land", "conv", "event")} | {"identify": "raw.user"}
# The consent ledger's purposes: the names a consent object may use, with `ads` as the tracker's
# shorthand for advertising use of the event (ad_user_data).
PURPOSES = tuple(purpose.value for purpose in Purpose)
CONSENT_KEYS = frozenset((*PURPOSES, "ads"))
ORDER_TYPES = ("order", "refund")

MAX_URL = 2048
MAX_TITLE = 512
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_VISITOR_ID = 64
MAX_MEMBER_ID = 128
MAX_PROP_KEYS = 50
MAX_PROP_STRING = 1024
MAX_PROP_DEPTH = 3
MAX_NAME = 64
MAX_ITEMS = 100
MAX_PAYLOAD_CHARS = 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_events: int = 100
    max_age: timedelta | None = timedelta(days=30)
    max_future: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class Rejection:
    """Why an input was refused: a reason code, the field path and a sentence for humans."""

    reason: str
    field: str
    detail: str
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "field": self.field, "detail": self.detail}
        if self.index is not None:
            out = {"index": self.index, **out}
        return out


class Invalid(Exception):
    def __init__(self, reason: str, field: str, detail: str):
        super().__init__(detail)
        self.rejection = Rejection(reason, field, detail)


@dataclass(frozen=True)
class Context:
    """What the collector knows about the request, beyond the event itself."""

    site_id: str
    collected_at: datetime
    source: str = "tracker"
    request_id: str | None = None
    skew: timedelta = timedelta(0)
    user_agent: str | None = None
    client: ClientInfo | None = None
    geo: Geo | None = None
    ip_hash: str | None = None
    # The consent of an event that states none: the site's analytics default and, at the door,
    # advertising denied. None keeps "not stated" (the offline importer's own records).
    analytics_default: bool | None = None
    ads_default: bool | None = None


@dataclass
class ValidEvent:
    type: str
    event_id: str
    event_ts: datetime
    client_ts: datetime
    visitor_id: str | None
    member_id: str | None
    consent_analytics: bool | None
    consent_ads: bool | None
    url: str | None
    title: str | None
    referrer: str | None
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.consent_analytics is False


# ---------------------------------------------------------------- request level


def parse_body(body: bytes) -> Any:
    """Decode a request body as UTF-8 JSON, or raise Invalid with the request-level reason.

    orjson parses strictly (RFC 8259): NaN and Infinity literals, lone surrogate escapes and more
    than 1024 levels of nesting are malformed JSON here, so nothing that cannot be stored or
    re-encoded gets past the door. It is also several times faster than the standard library, on
    every request.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("invalid_utf8", "body", f"body is not valid UTF-8 at byte {exc.start}") from exc
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Invalid(
            "malformed_json", "body", f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def batch_envelope(data: Any, sites: Mapping[str, Any], limits: Limits) -> tuple[str, int | None, list[Any]]:
    """Check the batch wrapper: site id, sent_at and the events array."""
    if not isinstance(data, dict):
        raise Invalid("not_an_object", "body", f"body must be a JSON object, got {_kind(data)}")
    site_id = data.get("site_id")
    if site_id is None or site_id == "":
        raise Invalid("missing_site_id", "site_id", "site_id is required")
    if not isinstance(site_id, str):
        raise Invalid("wrong_type", "site_id", f"site_id must be a string, got {_kind(site_id)}")
    if site_id not in sites:
        raise Invalid("unknown_site_id", "site_id", f"site_id {site_id[:64]!r} is not a configured site")
    sent_at = data.get("sent_at")
    if sent_at is not None and not _is_number(sent_at):
        raise Invalid("wrong_type", "sent_at", f"sent_at must be milliseconds since epoch, got {_kind(sent_at)}")
    events = data.get("events")
    if events is None:
        raise Invalid("missing_field", "events", "events is required")
    if not isinstance(events, list):
        raise Invalid("wrong_type", "events", f"events must be an array, got {_kind(events)}")
    if not events:
        raise Invalid("no_events", "events", "events is empty")
    if len(events) > limits.max_events:
        raise Invalid("too_many_events", "events", f"{len(events)} events; at most {limits.max_events} per batch")
    return site_id, (int(sent_at) if sent_at is not None else None), events


SKEW_TOLERANCE = timedelta(seconds=60)


def clock_skew(collected_at: datetime, sent_at_ms: int | None) -> timedelta:
    """How far the device clock is behind the collector's (positive when the device is slow).

    The difference also holds the request's transit and queueing time, which reaches seconds on a
    busy server and differs between two batches of one visit; applying it would reorder a
    visitor's page views. Device clocks that matter are off by minutes to days, so differences
    within SKEW_TOLERANCE are taken as transit and the device's own times are kept.
    """
    if sent_at_ms is None:
        return timedelta(0)
    try:
        sent = datetime.fromtimestamp(sent_at_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return timedelta(0)
    skew = collected_at - sent
    return skew if abs(skew) > SKEW_TOLERANCE else timedelta(0)


# ---------------------------------------------------------------- event level


def validate_event(raw: Any, index: int, ctx: Context, limits: Limits) -> ValidEvent:
    """Check one event against the protocol; raise Invalid naming the first problem."""
    path = f"events[{index}]"
    if not isinstance(raw, dict):
        raise Invalid("not_an_object", path, f"{path} must be an object, got {_kind(raw)}")
    event_id = _event_id(_required_str(raw, "event_id", path, 64), path)
    event_type = _required_str(raw, "type", path, 32)
    if event_type not in EVENT_TYPES:
        raise Invalid(
            "unknown_event_type",
            f"{path}.type",
            f"{path}.type {event_type[:32]!r} is not one of {', '.join(EVENT_TYPES)}",
        )
    client_ts, event_ts = _timestamps(raw, path, ctx, limits)
    analytics, ads = _consent_flags(raw.get("consent"), f"{path}.consent", ctx)
    props = raw.get("props", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise Invalid("wrong_type", f"{path}.props", f"{path}.props must be an object, got {_kind(props)}")
    if event_type not in LEDGER_TYPES:  # their props have a fixed shape, checked whole where they become rows
        _check_props(props, f"{path}.props")
    event = ValidEvent(
        type=event_type,
        event_id=event_id,
        event_ts=event_ts,
        client_ts=client_ts,
        visitor_id=_optional_str(raw, "visitor_id", path, MAX_VISITOR_ID),
        member_id=_optional_str(raw, "member_id", path, MAX_MEMBER_ID),
        consent_analytics=analytics,
        consent_ads=ads,
        url=_optional_str(raw, "url", path, MAX_URL),
        title=_optional_str(raw, "title", path, MAX_TITLE),
        referrer=_optional_str(raw, "referrer", path, MAX_URL),
        props=dict(props),
    )
    if event_type == "identify" and not event.member_id:
        raise Invalid("missing_field", f"{path}.member_id", f"{path}.member_id is required for identify")
    return event


def _consent_flags(consent: Any, where: str, ctx: Context) -> tuple[bool | None, bool | None]:
    """The event's (analytics, ads) consent, the context's defaults standing in for what it leaves out.

    A key outside the purposes is refused rather than ignored: `{"analytic": false}` read as "not
    stated" would let the site's default grant what the visitor refused.
    """
    if consent is None:
        return ctx.analytics_default, ctx.ads_default
    if not isinstance(consent, dict):
        raise Invalid("wrong_type", where, f"{where} must be an object, got {_kind(consent)}")
    if not consent.keys() <= CONSENT_KEYS:  # one set operation for the usual, valid, object
        key = next(k for k in consent if k not in CONSENT_KEYS)
        at = f"{where}.{key[:40]}"
        raise Invalid("unknown_purpose", at, f"{at} is not a purpose: {', '.join(PURPOSES)} or ads")
    for key, value in consent.items():
        if value is not None and value.__class__ is not bool:
            raise Invalid("wrong_type", f"{where}.{key}", f"{where}.{key} must be true or false, got {_kind(value)}")
    analytics = consent.get("analytics")
    ads = consent.get("ad_user_data")
    if ads is None:
        ads = consent.get("ads")
    return (
        ctx.analytics_default if analytics is None else analytics,
        ctx.ads_default if ads is None else ads,
    )


def _event_id(value: str, path: str) -> str:
    """The UUID in canonical form. The tracker's ids are canonical already: one regex match (a tenth
    of parsing with uuid.UUID, which is on every event of every request) accepts them."""
    if CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise Invalid("invalid_event_id", f"{path}.event_id", f"{path}.event_id is not a UUID") from exc


def _timestamps(raw: dict[str, Any], path: str, ctx: Context, limits: Limits) -> tuple[datetime, datetime]:
    ts = raw.get("ts")
    if ts is None:
        raise Invalid("missing_field", f"{path}.ts", f"{path}.ts is required")
    if not _is_number(ts):
        raise Invalid("wrong_type", f"{path}.ts", f"{path}.ts must be milliseconds since epoch, got {_kind(ts)}")
    try:
        client_ts = datetime.fromtimestamp(float(ts) / 1000, UTC)
        event_ts = client_ts + ctx.skew
    except (OverflowError, OSError, ValueError) as exc:
        raise Invalid("invalid_timestamp", f"{path}.ts", f"{path}.ts {ts!r} is not a usable time") from exc
    if event_ts - ctx.collected_at > limits.max_future:
        raise Invalid(
            "timestamp_in_future", f"{path}.ts", f"{path}.ts is {_ago(event_ts - ctx.collected_at)} in the future"
        )
    if limits.max_age is not None and ctx.collected_at - event_ts > limits.max_age:
        raise Invalid(
            "timestamp_too_old",
            f"{path}.ts",
            f"{path}.ts is {_ago(ctx.collected_at - event_ts)} old; at most {limits.max_age.days} days",
        )
    return client_ts, event_ts


def _check_props(props: dict[str, Any], path: str) -> None:
    if len(props) > MAX_PROP_KEYS:
        raise Invalid("too_many_properties", path, f"{path} has {len(props)} keys; at most {MAX_PROP_KEYS}")
    _check_children(props, path, 1)


def _check_children(container: dict[str, Any] | list[Any], where: str, depth: int) -> None:
    """Names, strings, numbers and nesting of a container's values; `depth` is the children's.

    Most values are short strings and numbers, so a child's path is built only to name a problem
    or to descend into it.
    """
    items = container.items() if isinstance(container, dict) else enumerate(container)
    for key, child in items:
        if isinstance(key, str) and len(key) > MAX_NAME:
            raise Invalid("string_too_long", f"{where}.{key[:20]}", f"property name longer than {MAX_NAME} characters")
        if isinstance(child, str):
            if len(child) > MAX_PROP_STRING:
                at = _child_path(container, where, key)
                raise Invalid("string_too_long", at, f"{at} is {len(child)} characters; at most {MAX_PROP_STRING}")
        elif isinstance(child, float):
            if not math.isfinite(child):
                at = _child_path(container, where, key)
                raise Invalid("invalid_value", at, f"{at} is not a finite number")
        elif isinstance(child, dict | list):
            at = _child_path(container, where, key)
            if depth >= MAX_PROP_DEPTH:
                raise Invalid("nesting_too_deep", at, f"{at} nests deeper than {MAX_PROP_DEPTH} levels")
            _check_children(child, at, depth + 1)


def _child_path(container: dict[str, Any] | list[Any], where: str, key: Any) -> str:
    return f"{where}.{key}" if isinstance(container, dict) else f"{where}[{key}]"


# ---------------------------------------------------------------- rows


def event_rows(event: ValidEvent, index: int, ctx: Context) -> tuple[str, dict[str, Any]]:
    """The (table, row) for a valid event, enriched, with personal data removed when anonymous."""
    return complete_row(event, event_columns(event, index, ctx), ctx)


def event_columns(event: ValidEvent, index: int, ctx: Context) -> dict[str, Any]:
    """Validate and type the event's own columns (its props); raise Invalid naming the field.

    This is the part of shaping that can reject an event, so the collector runs it before it
    answers; `complete_row` adds what cannot fail (the envelope, the inflow classification).
    """
    path = f"events[{index}].props"
    props = dict(event.props)
    if event.type == "identify":
        sex = _sex(props.pop("sex", None), f"{path}.sex")
        birth_year = _birth_year(props.pop("birth_year", None), f"{path}.birth_year", ctx.collected_at.year)
        email = parse_email(props.pop("email", None), f"{path}.email")
        phone = parse_phone(props.pop("phone", None), f"{path}.phone")
        if event.anonymous:  # no consent: keep only that an identify happened
            sex, birth_year, email, phone, props = None, None, None, None, {}
        return {"sex": sex, "birth_year": birth_year, "email": email, "phone": phone, "traits": props or None}
    if event.type == "conv":
        return _conversion(props, path)
    if event.type == "event":
        return _custom_event(props, path)
    return {}


def complete_row(event: ValidEvent, columns: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
    """Envelope + enrichment + the event's columns: the row as stored. Pure, and cannot fail."""
    row = _envelope(event, ctx)
    if event.type == "land":
        inflow = classify_inflow(event.url, event.referrer)
        row.update(
            is_entry=inflow.is_entry,
            from_url=event.referrer,
            referrer_host=inflow.referrer_host,
            medium=inflow.medium,
            source_name=inflow.source_name,
            search_keyword=inflow.search_keyword,
            utm_source=inflow.utm_source,
            utm_medium=inflow.utm_medium,
            utm_campaign=inflow.utm_campaign,
            utm_term=inflow.utm_term,
            utm_content=inflow.utm_content,
            click_id_type=inflow.click_id_type,
            # Without advertising consent the click is kept as a kind (paid, which network), never
            # as the id that would match it to a person (collect already blanked it in the URL).
            click_id=inflow.click_id if event.consent_ads else None,
        )
    row.update(columns)
    return TABLE_BY_TYPE[event.type], nfc(row)


# ---------------------------------------------------------------- bus messages
#
# A collect message carries the request's context once and each event's validated fields; the
# loader completes the rows. Per-request facts (user agent, geo, IP hash) are not repeated per
# event, and the work that cannot reject anything leaves the request path.


def context_message(ctx: Context) -> dict[str, Any]:
    """The request's part of a bus message. Times stay datetimes: orjson writes them as ISO 8601,
    the same text as isoformat() (and several times faster), and the loader reads them back with
    fromisoformat."""
    client = ctx.client or parse_user_agent(ctx.user_agent)
    geo = ctx.geo or Geo(None, None, None)
    return {
        "site_id": ctx.site_id,
        "collected_at": ctx.collected_at,
        "source": ctx.source,
        "request_id": ctx.request_id,
        **_device_and_place(ctx.user_agent, client, geo),
        "ip_hash": ctx.ip_hash,
    }


def _device_and_place(user_agent: str | None, client: ClientInfo, geo: Geo) -> dict[str, Any]:
    """The enrichment columns every row and every bus message carry."""
    return {
        "user_agent": user_agent,
        "device_type": client.device_type,
        "os": client.os,
        "browser": client.browser,
        "is_bot": client.is_bot,
        "country": geo.country,
        "region": geo.region,
        "city": geo.city,
    }


def context_from_message(data: dict[str, Any]) -> Context:
    return Context(
        site_id=data["site_id"],
        collected_at=datetime.fromisoformat(data["collected_at"]),
        source=data["source"],
        request_id=data.get("request_id"),
        user_agent=data.get("user_agent"),
        client=ClientInfo(data["device_type"], data.get("os"), data.get("browser"), bool(data["is_bot"])),
        geo=Geo(data.get("country"), data.get("region"), data.get("city")),
        ip_hash=data.get("ip_hash"),
    )


def event_message(event: ValidEvent, columns: dict[str, Any]) -> dict[str, Any]:
    """One event's part of a bus message (times as datetimes, see context_message). An anonymous
    event's identifiers stay out of it: the bus keeps messages for days, dead letters for good."""
    anonymous = event.anonymous
    return {
        "type": event.type,
        "event_id": event.event_id,
        "visitor_id": None if anonymous else event.visitor_id,
        "member_id": None if anonymous else event.member_id,
        "consent_analytics": event.consent_analytics,
        "consent_ads": event.consent_ads,
        "url": event.url,
        "title": event.title,
        "referrer": event.referrer,
        "event_ts": event.event_ts,
        "client_ts": event.client_ts,
        "columns": columns,
    }


def message_rows(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (table, row) a collect message stands for, as the loader stores them (strict: raises on
    a malformed event; the loader itself turns those into bad rows)."""
    rows = [(entry["table"], entry["row"]) for entry in message["rows"]]
    if message.get("events"):
        ctx = context_from_message(message["context"])
        rows += [row_from_message(event, ctx) for event in message["events"]]
    return rows


def nfc(value: Any) -> Any:
    """Text in Unicode's composed form (NFC), inside lists and objects too.

    Browsers and keyboards usually send composed Hangul, but not always (macOS file names, some
    IMEs send "서울" as separate jamo): stored decomposed, it would never equal the composed text of
    a segment rule or another visit. ASCII, by far the most text, is returned as it is.
    """
    if isinstance(value, str):
        return value if value.isascii() else unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {k: nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nfc(v) for v in value]
    return value


def row_from_message(data: dict[str, Any], ctx: Context) -> tuple[str, dict[str, Any]]:
    """The stored row for one event of a collect message (raises KeyError/ValueError if malformed)."""
    if data["type"] not in TABLE_BY_TYPE or not isinstance(data["columns"], dict):
        raise ValueError(f"not an event: type {data.get('type')!r}")
    event = ValidEvent(
        type=data["type"],
        event_id=data["event_id"],
        event_ts=datetime.fromisoformat(data["event_ts"]),
        client_ts=datetime.fromisoformat(data["client_ts"]),
        visitor_id=data.get("visitor_id"),
        member_id=data.get("member_id"),
        consent_analytics=data.get("consent_analytics"),
        consent_ads=data.get("consent_ads"),
        url=data.get("url"),
        title=data.get("title"),
        referrer=data.get("referrer"),
    )
    return complete_row(event, data["columns"], ctx)


def _envelope(event: ValidEvent, ctx: Context) -> dict[str, Any]:
    host, page_path = _host_path(event.url)
    client = ctx.client or parse_user_agent(ctx.user_agent)
    geo = ctx.geo or Geo(None, None, None)
    anonymous = event.anonymous
    return {
        "event_id": event.event_id,
        "site_id": ctx.site_id,
        "event_date": event.event_ts.date().isoformat(),
        "event_ts": event.event_ts.isoformat(),
        "client_ts": event.client_ts.isoformat(),
        "collected_at": ctx.collected_at.isoformat(),
        "visitor_id": None if anonymous else event.visitor_id,
        "member_id": None if anonymous else event.member_id,
        "is_anonymous": anonymous,
        "consent_analytics": event.consent_analytics,
        "consent_ads": event.consent_ads,
        "page_url": event.url,
        "page_host": host,
        "page_path": page_path,
        "page_title": event.title,
        "referrer": event.referrer,
        **_device_and_place(ctx.user_agent, client, geo),
        "ip_hash": None if anonymous else ctx.ip_hash,
        "source": ctx.source,
        "request_id": ctx.request_id,
    }


def _conversion(props: dict[str, Any], path: str) -> dict[str, Any]:
    """Typed columns of an order or other conversion; what is left goes to `properties`."""
    conv_type = _required_prop(props, "conv_type", path).lower()
    order_id = _prop_str(props, "order_id", path, required=conv_type in ORDER_TYPES)
    revenue = _prop_number(props, "revenue", path, required=conv_type in ORDER_TYPES)
    currency = (_prop_str(props, "currency", path) or "KRW").upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise Invalid("invalid_value", f"{path}.currency", f"{path}.currency must be an ISO 4217 code like KRW")
    channel = (_prop_str(props, "channel", path) or "online").lower()
    store_id = _prop_str(props, "store_id", path)
    items = props.pop("items", None)
    return {
        "conv_type": conv_type,
        "order_id": order_id,
        "revenue": revenue,
        "currency": currency,
        "channel": channel,
        "store_id": store_id,
        "items": _items(items, f"{path}.items"),
        "properties": props or None,
    }


def _custom_event(props: dict[str, Any], path: str) -> dict[str, Any]:
    name = _required_prop(props, "name", path)
    keyword = _prop_str(props, "keyword", path, required=name == "search")
    row: dict[str, Any] = {
        "event_name": name,
        "product_id": _prop_str(props, "product_id", path),
        "product_name": _prop_str(props, "product_name", path),
        "category": _prop_str(props, "category", path),
        "price": _prop_number(props, "price", path),
        "quantity": _prop_int(props, "quantity", path),
        "search_keyword": " ".join(keyword.split()) if keyword else None,
    }
    if name == "product_view" and not (row["product_id"] or row["product_name"]):
        raise Invalid(
            "missing_field", f"{path}.product_id", f"{path}.product_id or product_name is required for product_view"
        )
    row["properties"] = props or None
    return row


def _items(items: Any, path: str) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid("wrong_type", path, f"{path} must be an array, got {_kind(items)}")
    if len(items) > MAX_ITEMS:
        raise Invalid("invalid_value", path, f"{path} has {len(items)} items; at most {MAX_ITEMS}")
    out = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise Invalid("wrong_type", where, f"{where} must be an object, got {_kind(item)}")
        item = dict(item)
        out.append(
            {
                "product_id": _prop_str(item, "product_id", where),
                "product_name": _prop_str(item, "product_name", where),
                "category": _prop_str(item, "category", where),
                "price": _prop_number(item, "price", where),
                "quantity": _prop_int(item, "quantity", where),
            }
        )
    return out


# ---------------------------------------------------------------- bad rows


def bad_row(
    rejection: Rejection,
    payload: Any,
    *,
    stage: str,
    failed_at: datetime,
    source: str | None = None,
    site_id: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """A raw.bad_rows row; its id hashes what failed and how, so the same failure is stored once."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    detail = rejection.detail
    if len(text) > MAX_PAYLOAD_CHARS:
        detail += f" (payload truncated from {len(text)} characters)"
        text = text[:MAX_PAYLOAD_CHARS]
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    event_type = payload.get("type") if isinstance(payload, dict) else None
    digest = hashlib.sha256(
        "\x1f".join([stage, rejection.reason, rejection.field, site_id or "", text]).encode("utf-8", "replace")
    ).hexdigest()[:32]
    return {
        "bad_row_id": digest,
        "event_date": failed_at.date().isoformat(),
        "failed_at": failed_at.isoformat(),
        "stage": stage,
        "source": source,
        "reason_code": rejection.reason,
        "reason_detail": detail[:2000],
        "field": rejection.field,
        "site_id": site_id,
        "event_id": event_id[:64] if isinstance(event_id, str) else None,
        "event_type": event_type[:32] if isinstance(event_type, str) else None,
        "request_id": request_id,
        "payload": text,
    }


# ---------------------------------------------------------------- small helpers


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ago(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{seconds / 86400:.1f} days" if seconds >= 86400 else f"{seconds / 60:.0f} minutes"


def _required_str(data: dict[str, Any], key: str, path: str, max_len: int) -> str:
    value = _optional_str(data, key, path, max_len)
    if not value:
        raise Invalid("missing_field", f"{path}.{key}", f"{path}.{key} is required")
    return value


def _optional_str(data: dict[str, Any], key: str, path: str, max_len: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("wrong_type", f"{path}.{key}", f"{path}.{key} must be a string, got {_kind(value)}")
    if len(value) > max_len:
        raise Invalid("string_too_long", f"{path}.{key}", f"{path}.{key} is {len(value)} characters; at most {max_len}")
    return value or None


def _prop_str(props: dict[str, Any], key: str, path: str, required: bool = False) -> str | None:
    value = props.pop(key, None)
    if value is None or value == "":
        if required:
            raise Invalid("missing_field", f"{path}.{key}", f"{path}.{key} is required")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common: "order_id": 1042
    if not isinstance(value, str):
        raise Invalid("wrong_type", f"{path}.{key}", f"{path}.{key} must be a string, got {_kind(value)}")
    text = value.strip()[:MAX_PROP_STRING]
    if not text and required:  # only spaces: as absent as an empty string
        raise Invalid("missing_field", f"{path}.{key}", f"{path}.{key} is required")
    return text or None


def _required_prop(props: dict[str, Any], key: str, path: str) -> str:
    """A required string property: absent, empty or only spaces is missing_field."""
    value = _prop_str(props, key, path, required=True)
    if value is None:
        raise Invalid("missing_field", f"{path}.{key}", f"{path}.{key} is required")
    return value


def _prop_number(props: dict[str, Any], key: str, path: str, required: bool = False) -> float | int | None:
    value = props.pop(key, None)
    if value is None:
        if required:
            raise Invalid("missing_field", f"{path}.{key}", f"{path}.{key} is required")
        return None
    if isinstance(value, str):  # "12,000" from a form field: strip separators, then insist on a number
        try:
            value = float(value.replace(",", "").strip())
        except ValueError as exc:
            raise Invalid("wrong_type", f"{path}.{key}", f"{path}.{key} must be a number, got {value[:40]!r}") from exc
    if not _is_number(value):
        raise Invalid("wrong_type", f"{path}.{key}", f"{path}.{key} must be a number, got {_kind(value)}")
    if abs(value) >= 1e15:
        raise Invalid("invalid_value", f"{path}.{key}", f"{path}.{key} is out of range")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _prop_int(props: dict[str, Any], key: str, path: str) -> int | None:
    value = _prop_number(props, key, path)
    if value is None:
        return None
    if not float(value).is_integer():
        raise Invalid("wrong_type", f"{path}.{key}", f"{path}.{key} must be a whole number")
    return int(value)


_SEX = {
    "m": "M",
    "male": "M",
    "man": "M",
    "남": "M",
    "남성": "M",
    "f": "F",
    "female": "F",
    "woman": "F",
    "여": "F",
    "여성": "F",
    "u": "U",
    "unknown": "U",
    "other": "U",
}


def _sex(value: Any, path: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in _SEX:
        raise Invalid("invalid_value", path, f"{path} must be M, F or U")
    return _SEX[value.strip().lower()]


def _birth_year(value: Any, path: str, this_year: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and ASCII_DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 1900 <= value <= this_year:
        raise Invalid("invalid_value", path, f"{path} must be a year between 1900 and {this_year}")
    return value


def parse_email(value: Any, path: str) -> str | None:
    """A protocol field holding an email: absent is None, anything but an address is invalid_value."""
    if value is None or value == "":
        return None
    email = normalize_email(value) if isinstance(value, str) else None
    if email is None:
        raise Invalid("invalid_value", path, f"{path} is not an email address")
    return email


def parse_phone(value: Any, path: str) -> str | None:
    """A protocol field holding a phone (a number counts: exports drop the quotes), as E.164."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    phone = normalize_phone(value) if isinstance(value, str) else None
    if phone is None:
        raise Invalid("invalid_value", path, f"{path} is not a phone number")
    return phone


def _host_path(url: str | None) -> tuple[str | None, str | None]:
    if not url:
        return None, None
    try:
        parts = urlsplit(url)
        return (parts.hostname or None), (parts.path or "/")
    except ValueError:
        return None, None

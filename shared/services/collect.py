"""The collect service: HTTP request in, events durable on the bus, answer out.

It answers 2xx only after the bus acknowledged the publish, so a 2xx means nothing can be lost;
503 means nothing was accepted and the tracker keeps the batch to retry. Nothing a visitor did not
consent to leaves it: identifiers and click ids are stripped before publishing (shared.redaction),
and consent events become consent-ledger rows here (shared.consent_events).

It also follows the click links of our messages (`GET /c`, shared/messaging/clicks.py): a redirect
to the destination a signed token names, and the click published like a beacon.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Protocol

import orjson

from shared import beacons, consent_events, push_events, redaction
from shared.beacons import Context, Invalid, Limits, Rejection, ValidEvent
from shared.config import Site
from shared.enrich.geo import Geo, parse_geo_header
from shared.enrich.ip import client_ip, hash_ip
from shared.enrich.user_agent import ClientInfo, parse_user_agent
from shared.messaging import clicks
from shared.ports import EventBus, TransientError
from shared.signing import SIGNATURE_ATTRIBUTE, sign
from shared.tracker import TrackerAsset

log = logging.getLogger(__name__)

PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain", "")
MESSAGE_VERSION = 2
BAD_ROWS = "raw.bad_rows"
WORKER_PATH: Final = "/sw.js"  # the web push service worker (functions/collect/sw.js)


class Headers(Protocol):
    """Header lookup by lower-case name: a dict so keyed, or the web framework's case-insensitive
    headers as they are (copying every header of every request into a dict costs more than the
    few lookups the service makes)."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request the service reads."""

    method: str
    path: str
    headers: Headers = field(default_factory=dict[str, str])
    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)
    remote_addr: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> HttpResponse:
        body = orjson.dumps(payload)
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


@dataclass
class Shaped:
    """A request's input as it goes on the bus."""

    events: list[dict[str, Any]] = field(default_factory=list)  # validated; the loader completes their rows
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # ready rows: consent ledger, bad rows
    rejections: list[Rejection] = field(default_factory=list)
    accepted: int = 0  # events accepted, consent events included


@dataclass(frozen=True)
class CollectorConfig:
    sites: Mapping[str, Site]
    topic: str
    ip_salt: str
    limits: Limits = Limits()
    max_body_bytes: int = 256 * 1024
    region_header: str = "X-Client-Geo-Location"
    trusted_proxy_hops: int = 1  # see shared.enrich.ip.client_ip
    bus_key: str | None = field(default=None, repr=False)  # signs bus messages (shared.signing)
    click_key: str | None = field(default=None, repr=False)  # checks click links (None: /c is not served)
    allow_local_push: bool = False  # loopback push endpoints (the local fake push service; CDP_WEBPUSH_ALLOW_LOCAL)


def handle_request(
    request: HttpRequest,
    config: CollectorConfig,
    bus: EventBus,
    now: datetime,
    tracker: TrackerAsset | None = None,
    worker: TrackerAsset | None = None,
) -> HttpResponse:
    """Route one request: the batch endpoint, the pixel, the tracker script and the web push
    service worker, click links, CORS preflight."""
    method = request.method.upper()
    path = request.path.rstrip("/") or "/"
    if method == "OPTIONS":
        return _preflight(request, config)
    if method == "GET" and path == "/tracker.js" and tracker is not None:
        return _tracker(request, tracker)
    if method == "GET" and path == WORKER_PATH and worker is not None:
        return _worker(request, worker)
    if method == "GET" and path == "/healthz":
        return HttpResponse.json(200, {"status": "ok"})
    if method == "GET" and path == "/p.gif":
        return collect_pixel(request, config, bus, now)
    if method == "POST" and path in ("/", "/e"):
        return collect_batch(request, config, bus, now)
    if path == clicks.PATH and method in ("GET", "HEAD"):
        return collect_click(request, config, bus, now)
    if path in ("/", "/e", "/p.gif", "/tracker.js", "/healthz", clicks.PATH, WORKER_PATH):
        return HttpResponse.json(405, {"error": "method_not_allowed", "detail": f"{method} is not allowed on {path}"})
    return HttpResponse.json(404, {"error": "not_found", "detail": f"no endpoint at {path}"})


def collect_batch(request: HttpRequest, config: CollectorConfig, bus: EventBus, now: datetime) -> HttpResponse:
    """POST of a JSON batch: validate, enrich, publish rows and bad rows together, then answer."""
    request_id = new_request_id()
    origin = request.header("origin")
    cors = _cors_headers(origin, config) if origin else {}
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    site_id: str | None = None
    try:
        if content_type not in ACCEPTED_CONTENT_TYPES:
            raise Invalid(
                "unsupported_media_type", "content-type", f"content type {content_type!r} is not JSON or text/plain"
            )
        if len(request.body) > config.max_body_bytes:
            raise Invalid(
                "body_too_large", "body", f"body is {len(request.body)} bytes; at most {config.max_body_bytes}"
            )
        data = beacons.parse_body(request.body)
        site_id, sent_at, events = beacons.batch_envelope(data, config.sites, config.limits)
        if origin and not config.sites[site_id].allows_origin(origin):
            raise Invalid(
                "origin_not_allowed", "origin", f"origin {origin[:200]!r} may not send events for site {site_id!r}"
            )
    except Invalid as exc:
        status = {"body_too_large": 413, "origin_not_allowed": 403, "unsupported_media_type": 415}.get(
            exc.rejection.reason, 400
        )
        # Refused whole, the request is no site's word on consent: each event counts as refusing
        # analytics unless it says otherwise.
        payload = redaction.redact_request(request.body.decode("utf-8", "backslashreplace"), False)
        bad = beacons.bad_row(
            exc.rejection,
            payload,
            stage="collect",
            failed_at=now,
            source="tracker",
            site_id=site_id,
            request_id=request_id,
        )
        shaped = Shaped(rows=[(BAD_ROWS, bad)], rejections=[exc.rejection])
        return _publish_then_answer(bus, config, shaped, request_id, site_id or "", status, cors)

    ctx = _context(request, config, site_id, now, request_id, beacons.clock_skew(now, sent_at), "tracker")
    shaped = _shape_events(events, ctx, config.limits, now, request_id, config.allow_local_push)
    status = 422 if shaped.rejections else 200
    return _publish_then_answer(bus, config, shaped, request_id, site_id, status, cors, ctx=ctx)


def collect_pixel(request: HttpRequest, config: CollectorConfig, bus: EventBus, now: datetime) -> HttpResponse:
    """GET of the 1x1 pixel for pages without JavaScript; always answers with the GIF."""
    request_id = new_request_id()
    q = request.query
    # Only a configured id goes on: into the message's attributes (Pub/Sub refuses values over
    # 1,024 bytes) and the bad row's site_id column. The query itself is kept in the payload.
    site_id = q.get("site_id", "") if q.get("site_id", "") in config.sites else ""
    event = {
        "event_id": q.get("event_id") or _pixel_event_id(q, now),
        "type": q.get("type", "page"),
        "ts": int(now.timestamp() * 1000),
        "visitor_id": q.get("visitor_id") or None,
        "member_id": q.get("member_id") or None,
        "url": q.get("url") or request.header("referer"),
        "title": q.get("title"),
        "referrer": q.get("referrer"),
    }
    if "consent" in q:
        event["consent"] = pixel_consent(q["consent"])
    ctx: Context | None = None
    if not site_id or event["type"] not in ("page", "land"):
        reason = (
            Rejection("unknown_site_id", "site_id", f"site_id {q.get('site_id', '')[:64]!r} is not a configured site")
            if not site_id
            else Rejection("invalid_value", "type", "pixel type must be page or land")
        )
        default = config.sites[site_id].analytics_default if site_id else False
        payload = redaction.redact_payload(dict(q), *redaction.declared_consent(event, default))
        bad = beacons.bad_row(
            reason,
            payload,
            stage="collect",
            failed_at=now,
            source="pixel",
            site_id=site_id or None,
            request_id=request_id,
        )
        shaped = Shaped(rows=[(BAD_ROWS, bad)], rejections=[reason])
    else:
        ctx = _context(request, config, site_id, now, request_id, beacons.clock_skew(now, None), "pixel")
        shaped = _shape_events([event], ctx, config.limits, now, request_id)
    rejections = shaped.rejections
    response = _publish_then_answer(bus, config, shaped, request_id, site_id, 400 if rejections else 200, {}, ctx=ctx)
    headers = {"Content-Type": "image/gif", "Cache-Control": "no-store, max-age=0"}
    if rejections:
        headers["X-Reject-Reason"] = rejections[0].reason
    if response.status == 503:
        headers.update(response.headers)
    return HttpResponse(response.status, PIXEL_GIF, headers)


_CLICK_REFUSED: Final = {"malformed": 400, "forged": 403, "expired": 410}


def collect_click(request: HttpRequest, config: CollectorConfig, bus: EventBus, now: datetime) -> HttpResponse:
    """GET /c?t=TOKEN, a click on a message's link: 302 to the destination the token names, with
    its UTM parameters, once the token's signature and expiry hold; otherwise 4xx with the reason
    and no redirect. The click is published like a beacon (a `message_clicked` event and, unless a
    bot made it, the delivery's `clicked` ledger row). The person is sent on even when the bus is
    down: one click's record is worth less than their way to the page. HEAD (link checkers)
    redirects without recording."""
    if not config.click_key:
        return HttpResponse.json(404, {"error": "not_found", "detail": "click links are not served here"})
    try:
        click = clicks.open_click(request.query.get("t", ""), config.click_key, now)
    except clicks.ClickError as exc:
        log.warning("click refused", extra={"reason": exc.reason})
        status = _CLICK_REFUSED[exc.reason]
        return HttpResponse.json(
            status, {"error": f"{exc.reason}_link", "detail": str(exc)}, {"Cache-Control": "no-store"}
        )
    if request.method.upper() == "GET":
        _record_click(request, config, bus, click, now)
    return HttpResponse(302, b"", {"Location": click.landing(), "Cache-Control": "no-store"})


def _record_click(
    request: HttpRequest, config: CollectorConfig, bus: EventBus, click: clicks.Click, now: datetime
) -> None:
    """Publish one click: its raw.event (device and place as for any beacon; no IP hash, since the
    event names the customer) and, for a person rather than a bot, its delivery_events row."""
    request_id = new_request_id()
    user_agent = request.header("user-agent")
    client, geo, _ = _request_facts(
        user_agent,
        request.header("x-forwarded-for"),
        request.remote_addr,
        request.header(config.region_header),
        config.ip_salt,
        config.trusted_proxy_hops,
    )
    ctx = Context(
        click.site_id, now, clicks.SOURCE, request_id, user_agent=user_agent[:1024] if user_agent else None,
        client=client, geo=geo,
    )  # fmt: skip
    event = ValidEvent(
        type="event", event_id=clicks.click_id(click, now), event_ts=now, client_ts=now, visitor_id=None,
        member_id=None, consent_analytics=None, consent_ads=None, url=click.url, title=None, referrer=None,
        props=clicks.event_props(click),
    )  # fmt: skip
    rows = [] if client.is_bot else [(clicks.LEDGER_TABLE, clicks.ledger_row(click, now))]
    message = encode_message(
        [beacons.event_message(event, beacons.event_columns(event, 0, ctx))], rows, request_id, ctx
    )
    attributes = {"site_id": click.site_id, "request_id": request_id, "rows": str(1 + len(rows))}
    if config.bus_key:
        attributes[SIGNATURE_ATTRIBUTE] = sign(message, config.bus_key)
    try:
        bus.publish(config.topic, message, attributes)
    except TransientError as exc:
        log.error(
            "click not recorded", extra={"request_id": request_id, "campaign_id": click.campaign_id, "error": str(exc)}
        )


def new_request_id() -> str:
    """128 random bits as 32 hex digits, the shape of a uuid4().hex.

    The id only has to be unique, not secret, so it comes from the process's seeded generator
    (reseeded in each forked worker) rather than os.urandom: a system call that gives up the
    interpreter lock on every request, which under 80 threads costs a wait to take it back.
    """
    return f"{random.getrandbits(128):032x}"


def pixel_consent(value: str) -> dict[str, bool]:
    """The pixel's `consent` parameter as an event's consent object: the purposes it lists (comma
    separated; empty or `none` lists none) granted, analytics and advertising otherwise refused. A
    name that is no purpose stays in, for validation to refuse with its field."""
    names = [name.strip() for name in value.split(",")]
    return {"analytics": False, "ads": False} | {name: True for name in names if name and name != "none"}


def _shape_events(
    events: list[Any], ctx: Context, limits: Limits, now: datetime, request_id: str, allow_local_push: bool = False
) -> Shaped:
    shaped = Shaped()
    seen: set[str] = set()
    analytics_default = bool(ctx.analytics_default)
    for index, raw in enumerate(events):
        try:
            event = beacons.validate_event(raw, index, ctx, limits)
            if event.event_id in seen:
                raise Invalid(
                    "duplicate_event_id",
                    f"events[{index}].event_id",
                    f"events[{index}].event_id repeats an earlier event in this batch",
                )
            if event.type == "consent":
                ledger = consent_events.ledger_rows(event, index, ctx)
                shaped.rows.extend((consent_events.LEDGER, row) for row in ledger)
            elif event.type == "push":
                row = push_events.ledger_row(event, index, ctx, allow_local=allow_local_push)
                shaped.rows.append((push_events.LEDGER, row))
            else:
                columns = redaction.strip_event(event, beacons.event_columns(event, index, ctx))
                shaped.events.append(beacons.event_message(event, columns))
            seen.add(event.event_id)
            shaped.accepted += 1
        except Invalid as exc:
            rejection = Rejection(exc.rejection.reason, exc.rejection.field, exc.rejection.detail, index)
            shaped.rejections.append(rejection)
            payload = redaction.redact_payload(raw, *redaction.declared_consent(raw, analytics_default))
            # Event payloads are stored as JSON text, even when the "event" was a bare string.
            payload = json.dumps(payload, ensure_ascii=False) if isinstance(payload, str) else payload
            bad = beacons.bad_row(
                rejection,
                payload,
                stage="collect",
                failed_at=now,
                source=ctx.source,
                site_id=ctx.site_id,
                request_id=request_id,
            )
            shaped.rows.append((BAD_ROWS, bad))
    return shaped


def _publish_then_answer(
    bus: EventBus,
    config: CollectorConfig,
    shaped: Shaped,
    request_id: str,
    site_id: str,
    status: int,
    cors: Mapping[str, str],
    ctx: Context | None = None,
) -> HttpResponse:
    message = encode_message(shaped.events, shaped.rows, request_id, ctx)
    rows = len(shaped.events) + len(shaped.rows)
    attributes = {"site_id": site_id, "request_id": request_id, "rows": str(rows)}
    if config.bus_key:
        attributes[SIGNATURE_ATTRIBUTE] = sign(message, config.bus_key)
    try:
        bus.publish(config.topic, message, attributes)
    except TransientError as exc:
        extra = {"request_id": request_id, "error": str(exc), "events": shaped.accepted}
        log.error("beacon publish failed", extra=extra)
        return HttpResponse.json(
            503,
            {"error": "unavailable", "detail": "events were not accepted; retry later"},
            {"Retry-After": "5", **cors},
        )
    for rejection in shaped.rejections:
        log.warning(
            "beacon rejected",
            extra={"reason": rejection.reason, "field": rejection.field, "site_id": site_id, "request_id": request_id},
        )
    if status == 200:
        return HttpResponse.json(200, {"accepted": shaped.accepted}, cors)
    if status == 422:
        rejected = [r.as_dict() for r in shaped.rejections]
        return HttpResponse.json(
            422, {"error": "invalid_events", "accepted": shaped.accepted, "rejected": rejected}, cors
        )
    first = shaped.rejections[0]
    return HttpResponse.json(status, {"error": first.reason, "field": first.field, "detail": first.detail}, cors)


def encode_message(
    events: list[dict[str, Any]], rows: list[tuple[str, dict[str, Any]]], request_id: str, ctx: Context | None
) -> bytes:
    """The bus message: the request's context once, its validated events, and ready rows.

    The loader completes each event's row (shared.beacons.row_from_message); consent-ledger rows,
    bad rows and rows from other producers travel as {"table", "row"} entries. The IP hash goes
    with the context only when an event may keep it.
    """
    message: dict[str, Any] = {
        "v": MESSAGE_VERSION,
        "request_id": request_id,
        "rows": [{"table": table, "row": row} for table, row in rows],
    }
    if events:
        assert ctx is not None
        context = beacons.context_message(ctx)
        if all(event["consent_analytics"] is False for event in events):
            context["ip_hash"] = None
        message["context"] = context
        message["events"] = events
    return orjson.dumps(message)


def _context(
    request: HttpRequest, config: CollectorConfig, site_id: str, now: datetime, request_id: str, skew: Any, source: str
) -> Context:
    """The request's facts, with the site's consent defaults for events that state none."""
    user_agent = request.header("user-agent")
    client, geo, ip_hash = _request_facts(
        user_agent,
        request.header("x-forwarded-for"),
        request.remote_addr,
        request.header(config.region_header),
        config.ip_salt,
        config.trusted_proxy_hops,
    )
    return Context(
        site_id=site_id,
        collected_at=now,
        source=source,
        request_id=request_id,
        skew=skew,
        user_agent=user_agent[:1024] if user_agent else None,
        client=client,
        geo=geo,
        ip_hash=ip_hash,
        analytics_default=config.sites[site_id].analytics_default,
        ads_default=False,
    )


@lru_cache(maxsize=8192)
def _request_facts(
    user_agent: str | None,
    forwarded_for: str | None,
    remote_addr: str | None,
    geo_header: str | None,
    salt: str,
    trusted_hops: int = 1,
) -> tuple[ClientInfo, Geo, str | None]:
    """Device, place and IP hash of a request: a visitor's requests repeat them, so they are memoised."""
    ip = client_ip(forwarded_for, remote_addr, trusted_hops)
    return parse_user_agent(user_agent), parse_geo_header(geo_header), hash_ip(ip, salt)


def _pixel_event_id(query: Mapping[str, str], now: datetime) -> str:
    """Stable within a second, so an image reloaded by the browser is stored once."""
    key = "|".join(
        [
            query.get("site_id", ""),
            query.get("visitor_id", ""),
            query.get("url", ""),
            query.get("type", "page"),
            str(int(now.timestamp())),
        ]
    )
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _cors_headers(origin: str, config: CollectorConfig) -> dict[str, str]:
    """CORS on every answer, rejections included, so the tracker can read a 4xx and stop retrying.

    The Origin check that protects a site's data is the per-site check on the batch; letting any
    page read our refusal reveals nothing.
    """
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Retry-After", "Vary": "Origin"}


def _preflight(request: HttpRequest, config: CollectorConfig) -> HttpResponse:
    origin = request.header("origin")
    if not origin or not any(site.allows_origin(origin) for site in config.sites.values()):
        return HttpResponse.json(
            403,
            {"error": "origin_not_allowed", "detail": f"origin {str(origin)[:200]!r} is not configured for any site"},
        )
    return HttpResponse(
        204,
        b"",
        {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400",
            "Vary": "Origin",
        },
    )


def _tracker(request: HttpRequest, tracker: TrackerAsset) -> HttpResponse:
    return _asset(request, tracker, {})


def _asset(request: HttpRequest, asset: TrackerAsset, extra: Mapping[str, str]) -> HttpResponse:
    """A script we serve (tracker, worker): cached an hour, revalidated by ETag, gzip when asked."""
    headers = {
        "Content-Type": asset.content_type,
        "Cache-Control": "public, max-age=3600",
        "ETag": asset.etag,
        "Access-Control-Allow-Origin": "*",
        "Vary": "Accept-Encoding",
        **extra,
    }
    if asset.etag in [tag.strip() for tag in (request.header("if-none-match") or "").split(",")]:
        return HttpResponse(304, b"", headers)
    if _accepts_gzip(request.header("accept-encoding") or ""):
        return HttpResponse(200, asset.gzip_body, {**headers, "Content-Encoding": "gzip"})
    return HttpResponse(200, asset.body, headers)


def _worker(request: HttpRequest, worker: TrackerAsset) -> HttpResponse:
    """The web push service worker. A worker must come from the page's own origin, so a site serves
    a one-line file that imports this one (or routes this path to us): `Service-Worker-Allowed: /`
    lets it control the site's whole scope when registered from a deeper path, and CORS and CORP
    let any site import it. Cached an hour like the tracker: browsers check imported scripts for
    updates through the HTTP cache."""
    return _asset(request, worker, {"Service-Worker-Allowed": "/", "Cross-Origin-Resource-Policy": "cross-origin"})


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False

"""Click tracking: a template's link(url) as a signed redirect through collect, with UTM parameters.

At send time deliver renders `link('https://shop.example/b')` as `<collect>/c?t=TOKEN` (ClickLinks).
The token carries what a click must record and where it leads: the delivery's site, campaign, run,
customer and channel (its delivery id follows from them, ledger.delivery_id), the destination as
the template wrote it, and an expiry, signed with HMAC-SHA256 (128 bits kept) under the `click-key`
secret. collect's `GET /c` redirects only where a token it can verify says, so nobody can use it to
send people elsewhere (no open redirect), adds the UTM parameters and records the click: a
`message_clicked` event in raw.event and a `clicked` row in audiences.delivery_events.

Signed, not sealed like the preference links: the token names no address, only our own ids and a
URL the template states in the open, and a signature costs 16 bytes where AES-GCM costs 28. The
fields are packed as bytes (the `https://` and the platform's customer ids in short forms), so a
token is about 120 characters for a short destination; an SMS pays for every one.

Nothing here imports the ledger's SQL at module level: collect imports this module, and its cold
start should not pay for sqlglot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from shared.messaging.ledger import Delivery

VERSION: Final = 1
DEFAULT_LIFETIME: Final = timedelta(days=90)  # an e-mail is opened, and its links followed, for weeks
PATH: Final = "/c"  # collect's route
MAX_DESTINATION: Final = 1024  # characters of a link's URL
MAX_TOKEN: Final = 2048
EVENT_NAME: Final = "message_clicked"  # raw.event event_name
SOURCE: Final = "click"  # raw.event source: a website can send an event of that name, never this source
LEDGER_TABLE: Final = "audiences.delivery_events"  # ledger.EVENTS, named here (see the docstring)
CLICKED: Final = "clicked"  # ledger.Event.CLICKED
BUCKET_SECONDS: Final = 60  # clicks of one link of one delivery within a minute are one click
CHANNELS: Final = ("email", "sms", "alimtalk", "webpush")  # the token's channel codes, in this order
MEDIUMS: Final = {"email": "email", "sms": "sms", "alimtalk": "alimtalk", "webpush": "push"}
"""utm_medium per channel: each is one that inflow classification (and GA4) reads as an owned message."""

_TAG: Final = 16  # bytes of the HMAC kept: half of SHA-256's, as RFC 2104 asks at least
_HEAD: Final = struct.Struct(">BBI")  # version, flags, expiry (Unix seconds)
_HTTPS: Final = 0b100  # flags: the destination starts with https:// (else http://), left out
_PACKED_CUSTOMER: Final = 0b1000  # flags: the customer id is c_ + 20 hex digits, kept as 10 bytes
_CUSTOMER: Final = re.compile(r"c_[0-9a-f]{20}")  # sql/refine/identities.sql's customer ids
_SCHEMES: Final = ("https://", "http://")
_LENGTHS: Final = tuple(bytes((n,)) for n in range(256))


class ClickError(ValueError):
    """A click link collect will not follow; `reason` is `malformed`, `forged` or `expired`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Click:
    """What one tracked link stands for: a delivery's ids, the destination and until when it works."""

    site_id: str
    campaign_id: str
    run_id: str
    customer_id: str
    channel: str
    url: str  # the destination as the template wrote it
    expires_at: datetime

    @property
    def delivery_id(self) -> str:
        from shared.messaging.ledger import delivery_id

        return delivery_id(self.campaign_id, self.run_id, self.customer_id, self.channel)

    def landing(self) -> str:
        """The destination with utm_source (the channel), utm_medium, utm_campaign (the campaign id)
        and utm_content (the run id) added; a parameter the URL has already is left as it is."""
        return landing(self.url, self.channel, self.campaign_id, self.run_id)


@lru_cache(maxsize=1024)
def landing(url: str, channel: str, campaign_id: str, run_id: str) -> str:
    """Click.landing: the same for every recipient of a run, so it is worked out once."""
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    utm = (
        ("utm_source", channel),
        ("utm_medium", MEDIUMS[channel]),
        ("utm_campaign", campaign_id),
        ("utm_content", run_id),
    )
    added = urlencode([(name, value) for name, value in utm if name not in present])
    if not added:
        return url
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


# -- the token ----------------------------------------------------------------------------------------


class _Mac:
    """HMAC-SHA256 (RFC 2104) under one key with its padded inner and outer states hashed once:
    copying them costs a third of what hmac.digest does per call under OpenSSL 3, and deliver signs
    every tracked link of every message. The key is derived from the secret for this use alone."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the click-link key is empty")
        block = hashlib.sha256(b"cdp click link\x00" + key.encode("utf-8")).digest().ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def tag(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_TAG]


@lru_cache(maxsize=8)
def _mac(key: str) -> _Mac:
    return _Mac(key)


def sign(click: Click, key: str) -> str:
    """The token of a click link (base64url without padding). ValueError for a channel without a
    code, a destination that is not http(s) or an id over 255 bytes."""
    return token(click.site_id, click.campaign_id, click.run_id, click.customer_id, click.channel, click.url,
                 int(click.expires_at.timestamp()), key)  # fmt: skip


def token(site: str, campaign: str, run: str, customer: str, channel: str, url: str, expires: int, key: str) -> str:
    """sign() without a Click: the fields packed (the layout is in docs/campaigns.md#click-tracking).
    What every recipient of a batch shares (the ids of the run, the destination) is packed once."""
    shared = _batch_part(site, campaign, run, channel)
    flags, rest = _destination_part(url)
    if len(customer) == 22 and _CUSTOMER.fullmatch(customer):
        flags |= _PACKED_CUSTOMER
        packed = bytes.fromhex(customer[2:])
    else:
        packed = customer.encode("utf-8")
        if not 0 < len(packed) <= 255:
            raise ValueError("a click link's ids are 1 to 255 bytes each")
    head = _HEAD.pack(VERSION, shared[0] | flags, expires)
    body = b"".join((head, shared[1], _LENGTHS[len(packed)], packed, rest))
    return base64.urlsafe_b64encode(body + _mac(key).tag(body)).rstrip(b"=").decode("ascii")


@lru_cache(maxsize=256)
def _batch_part(site: str, campaign: str, run: str, channel: str) -> tuple[int, bytes]:
    """The channel's flag bits and the site, campaign and run, each after its length."""
    if channel not in CHANNELS:
        raise ValueError(f"no click links for channel {channel!r}")
    parts: list[bytes] = []
    for value in (site.encode("utf-8"), campaign.encode("utf-8"), run.encode("utf-8")):
        if not 0 < len(value) <= 255:
            raise ValueError("a click link's ids are 1 to 255 bytes each")
        parts += (_LENGTHS[len(value)], value)
    return CHANNELS.index(channel), b"".join(parts)


@lru_cache(maxsize=256)
def _destination_part(url: str) -> tuple[int, bytes]:
    """The scheme's flag bit and the rest of the URL, which must be a destination a template may
    name (so no signed token holds one collect could not send a browser to)."""
    problem = destination_problem(url)
    if problem is not None:
        raise ValueError(problem)
    if url.startswith("https://"):
        return _HTTPS, url[8:].encode("ascii")
    return 0, url[7:].encode("ascii")


def open_click(token: str, key: str, now: datetime) -> Click:
    """The click a token stands for, or ClickError: malformed (not a token of ours), forged (altered
    or signed under another key) or expired."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        raise ClickError("malformed", "the link is incomplete")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ClickError("malformed", "the link is incomplete") from exc
    if len(raw) < _HEAD.size + 4 + _TAG or raw[0] != VERSION:
        raise ClickError("malformed", "the link is incomplete or of another version")
    body, tag = raw[:-_TAG], raw[-_TAG:]
    if not hmac.compare_digest(tag, _mac(key).tag(body)):
        raise ClickError("forged", "the link was not issued by this service or was altered")
    try:
        click = _unpack(body)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:  # signed by us, so a bug of ours
        raise ClickError("malformed", f"the link cannot be read: {exc}") from exc
    if now >= click.expires_at:
        raise ClickError("expired", f"the link expired on {click.expires_at:%Y-%m-%d}")
    return click


def _unpack(body: bytes) -> Click:
    _, flags, expires = _HEAD.unpack_from(body)
    at = _HEAD.size
    fields: list[bytes] = []
    for _ in range(4):
        size = body[at]
        fields.append(body[at + 1 : at + 1 + size])
        at += 1 + size
    if at > len(body):
        raise ValueError("truncated")
    site, campaign, run, customer = fields
    channel = flags & 0b11
    return Click(
        site_id=site.decode("utf-8"),
        campaign_id=campaign.decode("utf-8"),
        run_id=run.decode("utf-8"),
        customer_id="c_" + customer.hex() if flags & _PACKED_CUSTOMER else customer.decode("utf-8"),
        channel=CHANNELS[channel],
        url=_SCHEMES[0 if flags & _HTTPS else 1] + body[at:].decode("utf-8"),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


@lru_cache(maxsize=16)
def expiry(now: datetime, lifetime: timedelta) -> datetime:
    """When a link made at `now` stops working: the UTC midnight after `now + lifetime`. The same
    for every render of a day, so a message rendered again (deliver's lookup before a resend)
    carries the same links and is found by its body. Cached: every recipient of a batch asks at
    the same `now`."""
    return datetime.combine((now + lifetime).astimezone(UTC).date(), time(), UTC) + timedelta(days=1)


# -- links in messages --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickLinks:
    """Where click links point (collect's public URL, settings.clicks) and the key they are signed with."""

    url: str
    key: str = field(repr=False)
    lifetime: timedelta = DEFAULT_LIFETIME

    def tracked(self, click: Click) -> str:
        return f"{self.url.rstrip('/')}{PATH}?t={sign(click, self.key)}"


def linker(delivery: Delivery, links: ClickLinks | None, now: datetime) -> Callable[[object], str]:
    """`link` for one recipient's render: each destination as a click link of this delivery, or,
    without ClickLinks, the destination with its UTM parameters (nothing to count clicks with,
    but the landing page's tracker still attributes the visit to the campaign)."""
    expires = expiry(now, links.lifetime if links is not None else DEFAULT_LIFETIME)
    d = delivery
    made: dict[str, str] = {}

    def link(url: object) -> str:
        if not isinstance(url, str):
            raise TypeError(f"link() takes a URL, got {type(url).__name__}")
        found = made.get(url)
        if found is None:
            if links is not None:
                signed = token(d.site_id, d.campaign_id, d.run_id, d.customer_id, d.channel, url,
                               int(expires.timestamp()), links.key)  # fmt: skip
                found = f"{links.url.rstrip('/')}{PATH}?t={signed}"
            else:
                found = landing(url, d.channel, d.campaign_id, d.run_id)
            made[url] = found
        return found

    return link


SAMPLE_BASE: Final = "https://asia-northeast3-your-project.cloudfunctions.net/cdp-collect"
"""collect's default address (a custom domain makes every link shorter): what save-time checks measure with."""


def sample_link(url: object) -> str:
    """link(url) as the save-time checks render it: a real token for ids of typical length, so an
    SMS's length is measured with the link it will carry."""
    if not isinstance(url, str):
        raise TypeError(f"link() takes a URL, got {type(url).__name__}")
    click = Click(
        "sample-shop", "spring-sale-2026-win", "cron-20260601T0100Z", "c_" + "0" * 20, "sms", url,
        datetime(2026, 9, 1, tzinfo=UTC),
    )  # fmt: skip
    return ClickLinks(SAMPLE_BASE, "sample").tracked(click)


def destination_problem(url: object) -> str | None:
    """Why a link() argument cannot be a destination, or None. Only a quoted URL is one: a
    destination a profile value could choose would let data pick where a signed link sends people."""
    if not isinstance(url, str):
        return "link() takes the destination as a quoted URL, e.g. link('https://shop.example/sale')"
    if not url.startswith(_SCHEMES):
        return f"link({url[:100]!r}): the destination starts with https:// or http://"
    if len(url) > MAX_DESTINATION:
        return f"link(): the destination is {len(url):,} characters; at most {MAX_DESTINATION:,}"
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        return f"link({url[:100]!r}): write the URL in ASCII without spaces (percent-encode the rest)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        return f"link({url[:100]!r}): not a URL ({exc})"
    if not parts.hostname or "@" in parts.netloc:
        return f"link({url[:100]!r}): the destination names a host, and no user or password"
    return None


# -- what a click records -----------------------------------------------------------------------------


def _bucket_key(click: Click, at: datetime) -> str:
    return f"{int(at.timestamp()) // BUCKET_SECONDS}|{click.url}"


def click_id(click: Click, at: datetime) -> str:
    """The id of a click on one link of one delivery at `at`: the same within a minute (a double
    click, a reloaded redirect), and both the raw event's and the ledger row's id, so they join."""
    from shared.messaging.ledger import event_id

    return event_id(click.delivery_id, CLICKED, None, _bucket_key(click, at))


def ledger_row(click: Click, at: datetime) -> dict[str, Any]:
    """The `clicked` row of audiences.delivery_events (ledger.event_row), under click_id."""
    from shared.messaging.ledger import Delivery, Event, event_row

    delivery = Delivery(
        click.delivery_id, click.campaign_id, click.run_id, click.site_id, click.customer_id, click.channel
    )
    return event_row(delivery, Event.CLICKED, at, key=_bucket_key(click, at))


def event_props(click: Click) -> dict[str, str]:
    """The props of the `message_clicked` event (raw.event properties, beside event_name)."""
    return {
        "name": EVENT_NAME,
        "delivery_id": click.delivery_id,
        "campaign_id": click.campaign_id,
        "run_id": click.run_id,
        "customer_id": click.customer_id,
        "channel": click.channel,
    }


def is_click_row(table: str, row: dict[str, Any]) -> bool:
    """Whether a ready row of a collect message is a click's ledger row: the one row outside the
    raw tables the loader takes from collect."""
    return table == LEDGER_TABLE and row.get("event") == CLICKED

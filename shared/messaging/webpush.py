"""Web push rules shared by capture (collect), templates and the sender: pure, no I/O.

A browser's PushSubscription is an endpoint URL at its push service plus two keys: `p256dh`, the
browser's P-256 public key, and `auth`, a 16-byte secret (RFC 8291). Our server POSTs the payload
encrypted for those keys to the endpoint (RFC 8030), signed with our VAPID key (RFC 8292). Facts:
../shared/notes/activation.md §5.

- **Endpoints** must be https on a public host: the sender POSTs to whatever a browser (or anyone
  posting to collect) names, so a private, loopback or link-local address, or a name that only
  resolves inside a network, is refused at capture with a reason code and again by the sender.
  `allow_local` (the local stack's setting) admits the loopback fake push service only.
- **Keys**: p256dh a point on P-256 (65 bytes, uncompressed), auth 16 bytes, both base64url.
- **The payload** is the notification the service worker (functions/collect/sw.js) shows: JSON of
  title, body, url, icon, tag (the delivery id, so a resend replaces rather than repeats it) and a
  "수신거부" action; at most 3,000 bytes of plaintext (a push service may refuse over 4,096 bytes of
  ciphertext, and Firefox for Android was reported near 3,015 bytes of plaintext).
- **Topic** (RFC 8030 §5.4): the delivery id, so a resend replaces a copy the push service still
  holds. **TTL**: an advertising message sent by day expires by 21:00 in Seoul, so a device that
  comes online at night is not handed an advertisement the night rule kept us from sending then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from shared.consent.policy import NIGHT_START, SEOUL, is_night

MAX_ENDPOINT: Final = 2048  # the ledger's longest URL (shared/consent/ledger.py MAX_URL)
MAX_PLAINTEXT: Final = 3000
MAX_TITLE: Final = 120  # characters; platforms cut a title to one or two lines well before this
MAX_BODY: Final = 1000
MAX_URL: Final = 2048
URGENCIES: Final = ("very-low", "low", "normal", "high")  # RFC 8030 §5.3
MAX_TTL: Final = 28 * 24 * 3600  # push services keep a message at most about four weeks
OPT_OUT_ACTION: Final = "unsubscribe"
OPT_OUT_TITLE: Final = "수신거부"

# Reason codes of a refused subscription (collect's bad rows, the sender's Rejected codes).
INVALID_ENDPOINT: Final = "invalid_push_endpoint"
NOT_HTTPS: Final = "push_endpoint_not_https"
NOT_PUBLIC: Final = "push_endpoint_not_public"
INVALID_KEYS: Final = "invalid_push_keys"

# Names that resolve only inside a network (RFC 6761, RFC 6762, RFC 8375, common private zones).
_PRIVATE_SUFFIXES: Final = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp")
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_TOPIC: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BLANK: Final = re.compile(r"[\s\x00-\x20\x7f]")


class PushProblem(ValueError):
    """A subscription the channel cannot use; `reason` is one of the codes above."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field  # the subscription's field at fault (keys.p256dh), when it is not the endpoint

    def __str__(self) -> str:
        detail = super().__str__()
        return f"{self.field} {detail}" if self.field else detail


def check_endpoint(endpoint: object, *, allow_local: bool = False) -> str:
    """The endpoint as given, or PushProblem: https, no credentials or fragment, a public host (an
    IP literal must be globally routable). With `allow_local`, a loopback host passes too."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise PushProblem(INVALID_ENDPOINT, "the endpoint must be a non-empty URL")
    if len(endpoint) > MAX_ENDPOINT:
        raise PushProblem(INVALID_ENDPOINT, f"the endpoint is {len(endpoint)} characters; at most {MAX_ENDPOINT}")
    if _BLANK.search(endpoint):
        raise PushProblem(INVALID_ENDPOINT, "the endpoint has spaces or control characters")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise PushProblem(INVALID_ENDPOINT, f"the endpoint is not a URL: {exc}") from None
    if parts.scheme.lower() != "https":
        raise PushProblem(NOT_HTTPS, f"the endpoint must be https, not {parts.scheme or 'a relative URL'}")
    if not host:
        raise PushProblem(INVALID_ENDPOINT, "the endpoint names no host")
    if "@" in parts.netloc or parts.fragment:
        raise PushProblem(INVALID_ENDPOINT, "the endpoint may carry no user, password or fragment")
    problem = host_problem(host, allow_local=allow_local)
    if problem is not None:
        raise PushProblem(NOT_PUBLIC, problem)
    return endpoint


def host_problem(host: str, *, allow_local: bool = False) -> str | None:
    """Why a host (a name or an IP literal) is no public push service, or None."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        return address_problem(address, allow_local=allow_local)
    if allow_local and name == "localhost":
        return None
    if name == "localhost" or name.endswith(_PRIVATE_SUFFIXES) or "." not in name:
        return f"{host!r} is a local name, not a public push service"
    return None


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_local: bool = False) -> str | None:
    """Why an IP address is not a public one (private, loopback, link-local, reserved...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allow_local and address.is_loopback:
        return None
    if not address.is_global or address.is_multicast:
        kind = next(
            (k for k in ("loopback", "private", "link_local", "reserved", "multicast") if getattr(address, f"is_{k}")),
            "not public",
        )
        return f"{address} is a {kind.replace('_', '-')} address, not a public push service"
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def b64url(data: bytes) -> str:
    """base64url without padding, as browsers give keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_key(value: object) -> bytes | None:
    """A base64url value (padded or not) as bytes; None when it is not one."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        return None
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return None


def check_keys(keys: object, *, on_curve: bool = True) -> dict[str, str]:
    """{p256dh, auth} as given, or PushProblem naming the key (`keys.p256dh`): p256dh a P-256 point
    in uncompressed form (65 bytes), auth 16 bytes. `on_curve=False` checks the shape only (the
    sender: capture checked the point, and the encryption would refuse one that is not)."""
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - only capture of a push pays the import

    if not isinstance(keys, Mapping):
        raise PushProblem(INVALID_KEYS, "must be an object with p256dh and auth", "keys")
    extra = sorted(str(k)[:20] for k in keys if k not in ("p256dh", "auth"))
    if extra:
        raise PushProblem(INVALID_KEYS, "not a key of a push subscription (p256dh, auth)", f"keys.{extra[0]}")
    p256dh, auth = decode_key(keys.get("p256dh")), decode_key(keys.get("auth"))
    if p256dh is None or len(p256dh) != 65 or p256dh[0] != 4:
        raise PushProblem(INVALID_KEYS, "must be an uncompressed P-256 public key (65 bytes, base64url)", "keys.p256dh")
    try:
        if on_curve:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise PushProblem(INVALID_KEYS, "is not a point on P-256", "keys.p256dh") from None
    if auth is None or len(auth) != 16:
        raise PushProblem(INVALID_KEYS, "must be 16 bytes, base64url", "keys.auth")
    return {"p256dh": str(keys["p256dh"]), "auth": str(keys["auth"])}


@dataclass(frozen=True)
class Notification:
    """What the service worker shows; `tag` is the delivery id."""

    title: str
    body: str
    url: str | None = None
    icon: str | None = None
    tag: str | None = None

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"title": self.title, "body": self.body}
        for name in ("url", "icon", "tag"):
            if getattr(self, name):
                shown[name] = getattr(self, name)
        shown["actions"] = [{"action": OPT_OUT_ACTION, "title": OPT_OUT_TITLE}]
        return shown

    def payload(self) -> bytes:
        return orjson.dumps(self.as_json())


def topic(delivery_id: str) -> str:
    """RFC 8030 Topic: at most 32 URL-safe characters; a delivery id (32 hex digits) as it is."""
    if _TOPIC.fullmatch(delivery_id):
        return delivery_id
    return hashlib.sha256(delivery_id.encode("utf-8")).hexdigest()[:32]


def ttl_for(ttl: int, now: datetime, advertising: bool) -> int:
    """The TTL of one message: `ttl`, but an advertising message sent by day expires at 21:00 in
    Seoul (at night advertising goes out only with night consent, so it may keep its TTL)."""
    if not advertising or is_night(now):
        return ttl
    local = now.astimezone(SEOUL)
    night = datetime.combine(local.date(), NIGHT_START, SEOUL)
    return max(0, min(ttl, int((night - local) / timedelta(seconds=1))))

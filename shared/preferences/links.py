"""Sealed, expiring links to the preference centre.

Every message carries a link that lets its recipient see and change their choices without an
account, so the link itself is the credential: it names the site, the address the message went to
and an expiry, and is sealed with AES-256-GCM under the `preference-key` secret. Sealing rather than
signing keeps the address out of the URL, which mail clients, proxies and request logs keep in
plain text; the authentication tag makes a forged or altered link fail to open at all.

A message's link also names its delivery, so an unsubscribe through it becomes that delivery's
`unsubscribed` event. The sealed payload is packed bytes rather than JSON: an SMS pays for every
character of the URL, and packing keeps a token with its delivery id shorter than the first format
was without one. Tokens of that first format (JSON, `p1`, no delivery) still open until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.consent.ledger import normalize_address
from shared.consent.vocabulary import Channel

VERSION: Final = b"p2"  # bound into every seal as associated data: a later format cannot be confused with it
LEGACY_VERSION: Final = b"p1"  # the JSON payload of the first links, opened until the last expires
DEFAULT_LIFETIME: Final = timedelta(days=60)  # e-mail unsubscribe links must keep working for weeks
_NONCE_BYTES: Final = 12
MAX_TOKEN: Final = 1024
# p2 payload: flags (1 byte: the channel, and whether a delivery id follows), expiry (uint32 epoch
# seconds), the delivery id (16 bytes) if any, the site id's length (1 byte), the site id, the address.
_HEAD: Final = struct.Struct(">BI")
_CHANNELS: Final = (Channel.EMAIL, Channel.SMS)  # flag values 0 and 1
_HAS_DELIVERY: Final = 0x80
_DELIVERY_BYTES: Final = 16
_DELIVERY_ID: Final = re.compile(r"[0-9a-f]{32}")  # ledger.delivery_id


class LinkError(ValueError):
    """A link that does not open; `reason` is `malformed`, `forged` or `expired`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Link:
    """Who a preference link is for: one address on one site (the one the message went to)."""

    site_id: str
    channel: Channel  # email for an e-mail address, sms for a phone number (it also covers AlimTalk)
    address: str
    expires_at: datetime
    delivery_id: str | None = None  # the message's delivery (audiences.deliveries), when it was sealed with one


def _aead(key: str) -> AESGCM:
    if not key:
        raise ValueError("the preference-link key is empty")
    return AESGCM(hashlib.sha256(b"cdp preference link\x00" + key.encode("utf-8")).digest())


def seal(site_id: str, channel: object, address: object, key: str, now: datetime,
         lifetime: timedelta = DEFAULT_LIFETIME, delivery_id: str | None = None) -> str:  # fmt: skip
    """The link token for an address (normalised as the ledgers hold it), valid for `lifetime`, naming
    the delivery whose message carries it when given."""
    way, normalised = normalize_address(channel, address)
    if way not in _CHANNELS:
        raise ValueError(f"preference links are for e-mail addresses and phone numbers, not {way.value}")
    expires = int((now + lifetime).timestamp())
    if not 0 <= expires < 2**32:
        raise ValueError(f"a preference link cannot expire at {expires} (epoch seconds)")
    site = site_id.encode("utf-8")
    if not 0 < len(site) < 256:
        raise ValueError("a preference link's site id is 1 to 255 bytes")
    flags = _CHANNELS.index(way)
    delivery = b""
    if delivery_id is not None:
        if not _DELIVERY_ID.fullmatch(delivery_id):
            raise ValueError(f"a delivery id is 32 lower-case hex characters, not {delivery_id!r}")
        flags |= _HAS_DELIVERY
        delivery = bytes.fromhex(delivery_id)
    payload = _HEAD.pack(flags, expires) + delivery + bytes([len(site)]) + site + normalised.encode("utf-8")
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + _aead(key).encrypt(nonce, payload, VERSION)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def _unpack(payload: bytes) -> Link:
    flags, expires = _HEAD.unpack_from(payload)
    at = _HEAD.size
    delivery_id = None
    if flags & _HAS_DELIVERY:
        delivery_id = payload[at : at + _DELIVERY_BYTES].hex()
        at += _DELIVERY_BYTES
    size = payload[at]
    site = payload[at + 1 : at + 1 + size].decode("utf-8")
    address = payload[at + 1 + size :].decode("utf-8")
    channel = _CHANNELS[flags & ~_HAS_DELIVERY]
    return Link(site, channel, address, datetime.fromtimestamp(expires, UTC), delivery_id)


def _unpack_legacy(payload: bytes) -> Link:
    data = orjson.loads(payload)
    expires_at = datetime.fromtimestamp(int(data["x"]), UTC)
    return Link(str(data["s"]), Channel(data["c"]), str(data["a"]), expires_at)


def open_link(token: str, key: str, now: datetime) -> Link:
    """The link's subject, or LinkError: malformed (not one of ours), forged (altered or sealed under
    another key) or expired."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        raise LinkError("malformed", "the link is incomplete")
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LinkError("malformed", "the link is incomplete") from exc
    if len(sealed) <= _NONCE_BYTES + 16:
        raise LinkError("malformed", "the link is incomplete")
    aead, nonce, body = _aead(key), sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        link = _unpack(aead.decrypt(nonce, body, VERSION))
    except InvalidTag:
        try:
            link = _unpack_legacy(aead.decrypt(nonce, body, LEGACY_VERSION))
        except InvalidTag as exc:
            raise LinkError("forged", "the link was not issued by this service or was altered") from exc
    if now >= link.expires_at:
        raise LinkError("expired", f"the link expired on {link.expires_at:%Y-%m-%d}")
    return link

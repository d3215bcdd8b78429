"""Sealed, expiring links to the preference centre.

Every message carries a link that lets its recipient see and change their choices without an
account, so the link itself is the credential: it names the site, the address the message went to
and an expiry, and is sealed with AES-256-GCM under the `preference-key` secret. Sealing rather than
signing keeps the address out of the URL, which mail clients, proxies and request logs keep in
plain text; the authentication tag makes a forged or altered link fail to open at all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.consent.ledger import normalize_address
from shared.consent.vocabulary import Channel

VERSION: Final = b"p1"  # bound into every seal as associated data: a later format cannot be confused with it
DEFAULT_LIFETIME: Final = timedelta(days=60)  # e-mail unsubscribe links must keep working for weeks
_NONCE_BYTES: Final = 12
MAX_TOKEN: Final = 1024


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


def _aead(key: str) -> AESGCM:
    if not key:
        raise ValueError("the preference-link key is empty")
    return AESGCM(hashlib.sha256(b"cdp preference link\x00" + key.encode("utf-8")).digest())


def seal(site_id: str, channel: object, address: object, key: str, now: datetime,
         lifetime: timedelta = DEFAULT_LIFETIME) -> str:  # fmt: skip
    """The link token for an address (normalised as the ledgers hold it), valid for `lifetime`."""
    way, normalised = normalize_address(channel, address)
    if way not in (Channel.EMAIL, Channel.SMS):
        raise ValueError(f"preference links are for e-mail addresses and phone numbers, not {way.value}")
    expires = int((now + lifetime).timestamp())
    payload = orjson.dumps({"s": site_id, "c": way.value, "a": normalised, "x": expires})
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + _aead(key).encrypt(nonce, payload, VERSION)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


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
    try:
        payload = _aead(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], VERSION)
    except InvalidTag as exc:
        raise LinkError("forged", "the link was not issued by this service or was altered") from exc
    data = orjson.loads(payload)
    expires_at = datetime.fromtimestamp(int(data["x"]), UTC)
    if now >= expires_at:
        raise LinkError("expired", f"the link expired on {expires_at:%Y-%m-%d}")
    return Link(str(data["s"]), Channel(data["c"]), str(data["a"]), expires_at)

"""The web push channel: one encrypted push per message to the browser's push service (pywebpush).

A message's `to` is the subscription's endpoint and `push_keys` its p256dh and auth (the consent
gate's answer for the address: shared/services/deliver.py). The payload is the notification the
service worker shows (shared/messaging/webpush.py: title from `subject`, body from `text`, url and
icon from `parameters`, the delivery id as its tag), at most 3,000 bytes, encrypted by pywebpush
(RFC 8291, aes128gcm) and POSTed with:

- `Authorization: vapid t=<JWT>, k=<public key>` (RFC 8292): the private key is read from Secret
  Manager (`vapid-private-key`, PEM or the 32-byte base64url form `web-push` prints) through the
  SecretStore at send time (cached 5 minutes, so a rotation needs no redeploy) and checked against
  CDP_VAPID_PUBLIC_KEY, the key browsers subscribed with; one token per push service origin, valid
  12 hours and reused for 11 (signing is as dear as the encryption);
- `TTL` always (pywebpush's default is 0: dropped unless the browser is online that second):
  the configured TTL, an advertising message (its title starts with "(광고)", which the form puts
  on every one) sent by day cut at 21:00 in Seoul (the night rule);
- `Urgency` and `Topic` always (pywebpush has no arguments for them): Topic the delivery id, so a
  resend replaces a copy the service still holds;
- a timeout (pywebpush's default is none at all).

The endpoint is checked again before the call (https, and every address its host resolves to
public; the local fake only with `allow_local`): it came from a browser, so it must not make us
call into our own network.

The push service's answers become the port's errors: 201 accepted; 404 and 410 OptedOut (the
subscription is gone: deliver unsubscribes it with source push_gone); 429 ChannelThrottled with
Retry-After; 413 and other 4xx Rejected (400 errno 110 is this subscription's bad keys; 403 a
subscription made with another VAPID key); 401 ChannelUnavailable without a send (our token is
refused, so every send would be); 503 ChannelUnavailable, not sent; other 5xx, a read timeout or a
connection lost mid-request ChannelUnavailable that may have been sent. A push service keeps no
record to ask, so `lookup` answers None: a send that may have gone is left unknown, not repeated.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush  # type: ignore[import-untyped]

from shared.messaging import webpush as rules
from shared.messaging.adform import AD_MARK
from shared.ports.channels import (
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    OptedOut,
    Rejected,
    SendResult,
)
from shared.ports.secrets import CachedSecret, SecretStore

WEBPUSH: Final = "webpush"
TOKEN_LIFETIME: Final = 12 * 3600  # seconds a VAPID token is valid (RFC 8292 allows up to 24 hours)
TOKEN_REUSE: Final = 11 * 3600  # seconds a token is reused: an hour of margin for clocks and queues
HOST_CACHE: Final = 3600.0  # seconds a host's public addresses are trusted before resolving again

log = logging.getLogger(__name__)

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """The addresses a host name resolves to (socket.gaierror when it does not)."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)})


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key from a secret's text: PEM (PKCS#8 or SEC 1), DER in base64url, or the
    raw 32-byte scalar in base64url (what `web-push generate-vapid-keys` prints). ValueError else."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(stripped.encode(), password=None)
    else:
        raw = rules.decode_key(stripped)
        if raw is None:
            raise ValueError("the VAPID private key is neither PEM nor base64url")
        if len(raw) == 32:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        else:
            key = serialization.load_der_private_key(raw, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the VAPID private key must be a P-256 (prime256v1) EC key")
    return key


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The applicationServerKey browsers subscribe with: the public point, base64url, no padding."""
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return rules.b64url(raw)


@dataclass(frozen=True)
class Push:
    """One message ready to POST: what `send` hands to pywebpush (and a bench can time)."""

    subscription: Mapping[str, Any]
    data: bytes
    headers: Mapping[str, str]
    ttl: int
    endpoint: str = field(repr=False, default="")


class WebPush:
    name = WEBPUSH

    def __init__(
        self,
        secrets: SecretStore,
        *,
        subject: str,
        public_key: str | None = None,
        key_secret: str = "vapid-private-key",
        ttl: int = 24 * 3600,
        urgency: str = "normal",
        timeout: float = 10.0,
        allow_local: bool = False,
        ca_file: str | None = None,
        throttle_seconds: float = 60.0,
        resolver: Resolver = resolve,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`subject` is the VAPID `sub` (a mailto: or https: URL the push service may contact),
        `public_key` CDP_VAPID_PUBLIC_KEY (None: not checked), `ca_file` a certificate to trust
        besides the system's (the local fake's)."""
        if not subject.startswith(("mailto:", "https://")):
            raise ValueError(f"the VAPID subject must be a mailto: or https: URL, got {subject!r}")
        if urgency not in rules.URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(rules.URGENCIES)}, got {urgency!r}")
        if not 0 <= ttl <= rules.MAX_TTL:
            raise ValueError(f"ttl must be 0 to {rules.MAX_TTL} seconds, got {ttl}")
        self._subject, self._public_key = subject, public_key
        self._key = CachedSecret(secrets, key_secret)
        self._ttl, self._urgency, self._timeout = ttl, urgency, timeout
        self._allow_local = allow_local
        self._throttle_seconds = throttle_seconds
        self._resolver, self._clock = resolver, clock
        self._session = requests.Session()
        if ca_file:  # the environment's CA bundle (REQUESTS_CA_BUNDLE) would win over the session's
            self._session.verify, self._session.trust_env = ca_file, False
        self._lock = threading.Lock()
        self._signer: tuple[str, Any] | None = None  # (the secret's text, its Vapid)
        self._tokens: dict[str, tuple[float, str]] = {}  # push service origin -> (expiry, Authorization)
        self._hosts: dict[str, float] = {}  # host -> when its addresses were last found public

    # --- the port -------------------------------------------------------------------------------

    def send(self, message: Message) -> SendResult:
        push = self.prepare(message)
        self._check_host(push.endpoint)
        try:
            response = webpush(
                push.subscription,
                push.data,
                headers=dict(push.headers),
                ttl=push.ttl,
                timeout=self._timeout,
                requests_session=self._session,
            )
        except WebPushException as exc:
            raise self._refusal(exc) from None
        except ValueError as exc:  # the encryption refused the keys (p256dh not a point on P-256)
            raise Rejected(f"subscription not usable: {exc}", code=rules.INVALID_KEYS) from None
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise ChannelUnavailable(f"push service unreachable: {type(exc).__name__}", maybe_sent=False) from None
        except requests.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            before = type(reason).__name__ in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")
            raise ChannelUnavailable(f"push service unreachable: {type(exc).__name__}", maybe_sent=not before) from None
        except requests.RequestException as exc:  # a read timeout: the push may have been accepted
            raise ChannelUnavailable(f"push service did not answer: {type(exc).__name__}", maybe_sent=True) from None
        location = response.headers.get("Location") or None
        return SendResult("accepted", provider_id=location[:256] if location else None, code=str(response.status_code))

    def lookup(self, message: Message) -> SendResult | None:
        """A push service keeps no record a sender can ask about: unknown, never resent blindly."""
        return None

    # --- the message ----------------------------------------------------------------------------

    def prepare(self, message: Message) -> Push:
        """The subscription, encrypted-to-be payload and headers of one message; Rejected when the
        subscription or the payload cannot be used, ChannelUnavailable when our key is wrong."""
        if message.channel != WEBPUSH:
            raise ValueError(f"WebPush sends web push, not {message.channel}")
        try:
            endpoint = rules.check_endpoint(message.to, allow_local=self._allow_local)
            keys = rules.check_keys(message.push_keys or {}, on_curve=False)
        except rules.PushProblem as bad:
            raise Rejected(f"subscription not usable: {bad}", code=bad.reason) from None
        shown = rules.Notification(
            title=message.subject or "",
            body=message.text,
            url=message.parameters.get("url") or None,
            icon=message.parameters.get("icon") or None,
            tag=message.delivery_id,
        )
        data = shown.payload()
        if len(data) > rules.MAX_PLAINTEXT:
            raise Rejected(
                f"the notification is {len(data):,} bytes; at most {rules.MAX_PLAINTEXT:,}", code="payload_too_large"
            )
        now = self._clock()
        headers = {
            "Authorization": self._authorization(endpoint, time.time()),  # the push service's clock, not a test's
            "Urgency": self._urgency,
            "Topic": rules.topic(message.delivery_id),
        }
        advertising = shown.title.startswith(AD_MARK)  # the Network Act's mark: every advertisement has it
        ttl = rules.ttl_for(self._ttl, now, advertising)
        return Push({"endpoint": endpoint, "keys": keys}, data, headers, ttl, endpoint)

    def _vapid(self) -> Any:
        text = self._key.get()
        with self._lock:
            if self._signer is not None and self._signer[0] == text:
                return self._signer[1]
        try:
            key = load_private_key(text)
        except ValueError as exc:
            raise ChannelUnavailable(f"vapid-private-key: {exc}", code="vapid_key_invalid", maybe_sent=False) from None
        if self._public_key is not None and public_key_of(key) != self._public_key.rstrip("="):
            raise ChannelUnavailable(
                "vapid-private-key does not match CDP_VAPID_PUBLIC_KEY: browsers subscribed with the public key "
                "would refuse every push",
                code="vapid_key_mismatch",
                maybe_sent=False,
            )
        signer = Vapid02(private_key=key)
        with self._lock:
            self._signer, self._tokens = (text, signer), {}
        return signer

    def _authorization(self, endpoint: str, now: float) -> str:
        """The VAPID header for the endpoint's push service, signed at most once per TOKEN_REUSE."""
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        signer = self._vapid()
        with self._lock:
            found = self._tokens.get(origin)
            if found is not None and found[0] - now > TOKEN_LIFETIME - TOKEN_REUSE:
                return found[1]
        exp = int(now) + TOKEN_LIFETIME
        header = str(signer.sign({"aud": origin, "exp": exp, "sub": self._subject})["Authorization"])
        with self._lock:
            self._tokens[origin] = (float(exp), header)
        return header

    def _check_host(self, endpoint: str) -> None:
        """Every address the endpoint's host resolves to must be public (module docstring)."""
        host = urlsplit(endpoint).hostname or ""
        now = time.monotonic()
        with self._lock:
            if now - self._hosts.get(host, -HOST_CACHE) < HOST_CACHE:
                return
        try:
            addresses = [host] if rules.is_ip(host) else self._resolver(host)
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:
                raise ChannelUnavailable(f"{host} did not resolve: {exc}", code="dns", maybe_sent=False) from None
            raise Rejected(f"{host} does not resolve", code="push_endpoint_unresolved") from None
        for address in addresses:
            problem = rules.host_problem(address, allow_local=self._allow_local)
            if problem is not None:
                raise Rejected(f"{host} resolves to {problem}", code=rules.NOT_PUBLIC)
        with self._lock:
            self._hosts[host] = now

    def _refusal(self, exc: WebPushException) -> Exception:
        status = int(exc.status_code or 0)
        body = _body(exc.response)
        detail = f"push service refused ({status}): {body}"
        code = str(status)
        if status in (404, 410):
            return OptedOut(detail, code=code)
        if status == 429:
            return ChannelThrottled(detail, retry_after=self._retry_after(exc.retry_after), code=code)
        if status == 401:
            return ChannelUnavailable(detail, code=code, maybe_sent=False)
        if status == 503:
            return ChannelUnavailable(detail, code=code, maybe_sent=False)
        if status >= 500:
            return ChannelUnavailable(detail, code=code, maybe_sent=True)
        return Rejected(detail, code=code)

    def _retry_after(self, value: str | None) -> float:
        """Retry-After in seconds or as an HTTP date; the configured wait when absent or unreadable."""
        if not value:
            return self._throttle_seconds
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            return max((parsedate_to_datetime(value) - self._clock()).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return self._throttle_seconds


def _body(response: Any) -> str:
    """The push service's error text, short (autopush's JSON message, FCM's text)."""
    try:
        text = str(response.text or "")
    except (AttributeError, UnicodeDecodeError):
        return ""
    return " ".join(text.split())[:300]

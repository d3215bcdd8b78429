"""A fake web push service (RFC 8030) that reads what it is sent as a browser would: a real HTTPS
server on 127.0.0.1 and a free port.

`subscribe()` plays the browser: it makes a subscription as PushManager.subscribe would, with its
own P-256 key pair and 16-byte auth secret, and an endpoint `https://127.0.0.1:PORT/push/<id>`.
A POST to that endpoint is checked as a push service checks it, then decrypted with the
subscription's private key as the browser decrypts it, independently of the sender's libraries:

- `TTL` required (a whole number of seconds), `Urgency` one of RFC 8030's four, `Topic` at most 32
  URL-safe characters: else 400 (autopush's errno 111, 112, 113);
- `Authorization: vapid t=<JWT>, k=<public key>` (RFC 8292): the JWT's ES256 signature verified
  against `k`, `aud` this service's origin, `exp` in the future and at most 24 hours ahead, `sub` a
  mailto: or https: URL: else 401 (errno 109); a subscription made with an applicationServerKey
  refuses any other `k` with 403, as browsers' push services do;
- `Content-Encoding: aes128gcm` and a body of at most 4,096 bytes (else 413, errno 104); the body
  decrypted by RFC 8291 (ECDH with the sender's key from the record header, HKDF with the auth
  secret) and RFC 8188 (AES-128-GCM records, the padding delimiter checked);
- an unknown subscription 404 (errno 102), one the browser ended (`unsubscribe`) 410 (errno 106).

Errors have autopush's JSON shape `{"code", "errno", "error", "message", "more_info"}`. A message
accepted is 201 with `Location`. What it holds is recorded (`received`), and the notification the
service worker would show is worked out from the plaintext as functions/collect/sw.js does:
`shown(subscription)` lists what is on screen, a message with a tag replacing the one shown under
that tag. A message the browser cannot decrypt is accepted (the push service cannot tell) and shows
nothing, as in a browser. `fail_next(status)` answers the next pushes with a push service's error
(404, 410, 413, 429 with Retry-After, 500, 503).

TLS: a self-signed certificate for 127.0.0.1 is made at start and written to `ca_file`, which the
sender trusts (CDP_WEBPUSH_CA_FILE); the endpoints are https like every real push service's.

As a process for the demo: `python -m devstack.fakes.push_service --port N --ca-file PATH` prints
its URL; `POST /_fake/subscribe` (JSON `{"application_server_key": ...}`, optional) answers a new
subscription as PushSubscription.toJSON() gives it, `GET /_fake/shown` what every subscription shows.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import ipaddress
import itertools
import json
import os
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from devstack.fakes.serving import Answer, HttpServing, running, wait_for_signal

MAX_BODY: Final = 4096  # RFC 8030 §7.2: a push service may refuse more
URGENCIES: Final = ("very-low", "low", "normal", "high")
MORE_INFO: Final = "http://autopush.readthedocs.io/en/latest/http.html#error-codes"
_PATH: Final = re.compile(r"^/push/([A-Za-z0-9_-]{1,64})$")
_TOPIC: Final = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def error(status: int, errno: int | None, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    """An answer in autopush's error shape."""
    body = {"code": status, "errno": errno, "error": REASONS.get(status, "Error"), "message": message,
            "more_info": MORE_INFO}  # fmt: skip
    return Answer(status, body, dict(headers or {}))


# Errors as the push services answer them, for fail_next.
FAILURES: Final[Mapping[int, Answer]] = {
    404: error(404, 102, "Request did not validate invalid token"),
    410: error(410, 106, "Request did not validate No Subscription", {"Cache-Control": "max-age=86400"}),
    413: error(413, 104, "Data payload too large"),
    429: error(429, None, "Too Many Requests", {"Retry-After": "7"}),
    500: error(500, 999, "An unknown error occurred"),
    503: error(503, 201, "Service unavailable", {"Retry-After": "120"}),
}


# -- RFC 8291 / RFC 8188: what the browser does with a push it receives ------------------------------


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def decrypt(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """An aes128gcm push message's plaintext (RFC 8291 §3.4 key derivation, RFC 8188 records);
    ValueError when it does not decrypt."""
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    sender_public = body[21 : 21 + id_length]
    if id_length != 65 or record_size < 18:
        raise ValueError("the header's key id is not the sender's P-256 public key")
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    shared = private_key.exchange(ec.ECDH(), sender)
    receiver_public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    ikm = _hmac(_hmac(auth_secret, shared), b"WebPush: info\x00" + receiver_public + sender_public + b"\x01")
    prk = _hmac(salt, ikm)
    key = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    records = body[21 + id_length :]
    plaintext = b""
    for index, start in enumerate(range(0, len(records), record_size)):
        record = records[start : start + record_size]
        iv = (int.from_bytes(nonce, "big") ^ index).to_bytes(12, "big")
        try:
            padded = AESGCM(key).decrypt(iv, record, None)
        except InvalidTag:
            raise ValueError(f"record {index} does not authenticate") from None
        last = start + record_size >= len(records)
        data = padded.rstrip(b"\x00")
        if not data or data[-1] != (2 if last else 1):
            raise ValueError(f"record {index} has no padding delimiter")
        plaintext += data[:-1]
    return plaintext


# -- RFC 8292: the sender's VAPID token ----------------------------------------------------------------


class VapidRefused(ValueError):
    """The Authorization header does not hold; `status` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_vapid(authorization: str, origin: str, now: float, expected_key: str | None = None) -> dict[str, Any]:
    """The claims of a valid `vapid t=<JWT>, k=<key>` header for this origin, or VapidRefused."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise VapidRefused(401, "Authorization must use the vapid scheme (RFC 8292)")
    params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    token, key = params.get("t", ""), params.get("k", "")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        head, claims_part, signature = token.split(".")
        header = json.loads(unb64url(head))
        claims = json.loads(unb64url(claims_part))
        raw = unb64url(signature)
    except ValueError as exc:
        raise VapidRefused(401, f"unreadable VAPID token or key: {exc}") from None
    if header.get("alg") != "ES256" or len(raw) != 64:
        raise VapidRefused(401, "the token must be ES256 with a 64-byte signature")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{claims_part}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VapidRefused(401, "the VAPID signature does not verify against k") from None
    if claims.get("aud") != origin:
        raise VapidRefused(401, f"aud {claims.get('aud')!r} is not {origin!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
        raise VapidRefused(401, "exp must be in the future and at most 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise VapidRefused(401, "sub must be a mailto: or https: URL")
    if expected_key is not None and unb64url(expected_key) != unb64url(key):
        raise VapidRefused(403, "the VAPID key is not the one this subscription was made with")
    return dict(claims)


# -- what the fake holds -------------------------------------------------------------------------------


@dataclass
class FakeSubscription:
    """A subscription as a browser holds it: its endpoint, keys and the private half."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth_secret: bytes = field(repr=False)
    application_server_key: str | None = None
    active: bool = True

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def as_json(self) -> dict[str, Any]:
        """What PushSubscription.toJSON() gives the page."""
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@dataclass(frozen=True)
class Received:
    """One push the service accepted, and what the browser made of it."""

    subscription: str
    headers: Mapping[str, str]
    claims: Mapping[str, Any]
    ciphertext: bytes
    plaintext: bytes | None  # None: it did not decrypt (the browser drops it)
    notification: Mapping[str, Any] | None  # what the service worker shows
    problem: str | None = None

    @property
    def ttl(self) -> int:
        return int(self.headers["ttl"])


def notification_of(plaintext: bytes) -> dict[str, Any] | None:
    """What functions/collect/sw.js shows for a payload: its title, body, url, icon, tag and actions;
    None when the payload is no notification (the worker then shows nothing)."""
    try:
        data = json.loads(plaintext)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("title"), str):
        return None
    shown = {"title": data["title"], "body": str(data.get("body") or "")}
    for name in ("url", "icon", "tag"):
        if isinstance(data.get(name), str) and data[name]:
            shown[name] = data[name]
    actions = data.get("actions")
    shown["actions"] = [a for a in actions if isinstance(a, dict)] if isinstance(actions, list) else []
    return shown


class PushServiceFake(HttpServing):
    label = "the push service fake"

    def __init__(self, *, ca_file: str | None = None, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, FakeSubscription] = {}
        self._received: list[Received] = []
        self._failures: list[Answer] = []
        self._delay = 0.0
        self._ids = itertools.count(1)
        self._clock = clock
        self._ca_file = ca_file
        self._owned_ca = False
        self._origin = ""

    # -- serving -----------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        cert, key = _self_signed()
        if self._ca_file is None:
            handle, self._ca_file = tempfile.mkstemp(prefix="push-fake-", suffix=".pem")
            os.close(handle)
            self._owned_ca = True
        with open(self._ca_file, "wb") as out:
            out.write(cert)
        with tempfile.TemporaryDirectory() as folder:  # the key only until the context has read it
            cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            with open(cert_path, "wb") as out:
                out.write(cert)
            with open(key_path, "wb") as out:
                out.write(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_path, key_path)
        self.tls = context
        self._origin = super().start(port)  # kept: a late request may be answered after stop()
        return self._origin

    def stop(self) -> None:
        super().stop()
        if self._owned_ca and self._ca_file and os.path.exists(self._ca_file):
            os.unlink(self._ca_file)

    @property
    def ca_file(self) -> str:
        """The PEM certificate a sender must trust to reach this service."""
        if self._ca_file is None:
            raise RuntimeError(f"{self.label} is not running")
        return self._ca_file

    # -- the browser's side -----------------------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> FakeSubscription:
        """A new subscription, as PushManager.subscribe makes one (with the page's VAPID public key
        as applicationServerKey when given: then only that key may push to it)."""
        with self._lock:
            sid = f"s{next(self._ids)}{b64url(os.urandom(6))}"
            sub = FakeSubscription(
                sid, f"{self.url}/push/{sid}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16),
                application_server_key,
            )  # fmt: skip
            self._subscriptions[sid] = sub
            return sub

    def unsubscribe(self, subscription: FakeSubscription | str) -> None:
        """The browser ended the subscription (PushSubscription.unsubscribe, or permission revoked)."""
        sid = subscription if isinstance(subscription, str) else subscription.id
        with self._lock:
            self._subscriptions[sid].active = False

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` pushes with this push service error (FAILURES)."""
        answer = FAILURES[status]
        if retry_after is not None:
            answer = Answer(answer.status, answer.body, {**answer.headers, "Retry-After": retry_after})
        with self._lock:
            self._failures.extend([answer] * times)

    def delay_next(self, seconds: float) -> None:
        """Answer the next push only after `seconds` (a sender's timeout)."""
        with self._lock:
            self._delay = seconds

    def received(self, subscription: FakeSubscription | str | None = None) -> list[Received]:
        sid = subscription.id if isinstance(subscription, FakeSubscription) else subscription
        with self._lock:
            return [r for r in self._received if sid is None or r.subscription == sid]

    def shown(self, subscription: FakeSubscription | str) -> list[dict[str, Any]]:
        """The notifications on screen for a subscription, oldest first; a later one with the same
        tag replaces the earlier (showNotification with a tag)."""
        screen: dict[str, dict[str, Any]] = {}
        for index, item in enumerate(self.received(subscription)):
            if item.notification is not None:
                screen.pop(item.notification.get("tag") or f"#{index}", None)
                screen[item.notification.get("tag") or f"#{index}"] = dict(item.notification)
        return list(screen.values())

    # -- the push service's side ------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        path = urlsplit(target).path
        if path == "/_fake/subscribe" and method == "POST":
            asked = json.loads(body or b"{}")
            return Answer(201, self.subscribe(asked.get("application_server_key")).as_json())
        if path == "/_fake/shown" and method == "GET":
            with self._lock:
                ids = list(self._subscriptions)
            return Answer(200, {"shown": {sid: self.shown(sid) for sid in ids}})
        found = _PATH.match(path)
        if found is None or method != "POST":
            return error(404, 102, "Request did not validate invalid token")
        with self._lock:
            delay, self._delay = self._delay, 0.0
            failure = self._failures.pop(0) if self._failures else None
        if delay:
            time.sleep(delay)
        if failure is not None:
            return failure
        return self._push(found.group(1), {k.lower(): v for k, v in headers.items()}, body)

    def _push(self, sid: str, headers: Mapping[str, str], body: bytes) -> Answer:
        with self._lock:
            sub = self._subscriptions.get(sid)
        if sub is None:
            return error(404, 102, "Request did not validate invalid token")
        if not sub.active:
            return FAILURES[410]
        ttl = headers.get("ttl")
        if ttl is None:
            return error(400, 111, "Missing TTL Header")
        if not ttl.isdigit():
            return error(400, 112, "Invalid TTL header value")
        if headers.get("urgency", "normal") not in URGENCIES:
            return error(400, 111, "Invalid Urgency header value")
        if "topic" in headers and not _TOPIC.match(headers["topic"]):
            return error(400, 113, "Invalid Topic header value")
        try:
            claims = check_vapid(
                headers.get("authorization", ""), self._origin, self._clock(), sub.application_server_key
            )
        except VapidRefused as refused:
            return error(refused.status, 109, str(refused))
        if len(body) > MAX_BODY:
            return FAILURES[413]
        if body and headers.get("content-encoding") != "aes128gcm":
            return error(400, 110, "Content-Encoding must be aes128gcm (RFC 8291)")
        plaintext: bytes | None = None
        problem: str | None = None
        try:
            plaintext = decrypt(body, sub.private_key, sub.auth_secret) if body else b""
        except ValueError as exc:
            problem = f"does not decrypt: {exc}"
        shown = notification_of(plaintext) if plaintext else None
        with self._lock:
            self._received.append(Received(sid, dict(headers), claims, body, plaintext, shown, problem))
            number = len(self._received)
        return Answer(201, "", {"Location": f"{self._origin}/m/{number}", "TTL": ttl})


def _self_signed() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 and localhost, valid a day, and its key (both PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push service fake")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def running_push_service(ca_file: str | None = None) -> AbstractContextManager[PushServiceFake]:
    """The fake on a free port for the duration of a with block."""
    return running(PushServiceFake(ca_file=ca_file))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ca-file", required=True, help="where to write the certificate senders must trust")
    args = parser.parse_args()
    fake = PushServiceFake(ca_file=args.ca_file)
    print(fake.start(args.port), flush=True)
    try:
        wait_for_signal()
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

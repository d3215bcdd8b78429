"""WebPush (pywebpush) against the fake push service over HTTPS on a free port.

The fake plays the browser: it made the subscription's keys, so it decrypts what arrives (its own
RFC 8291 code, not the sender's library) and verifies the VAPID token's signature against the key in
the Authorization header. So each test shows what a browser would display, or what a push service
would answer, and what the port's caller gets.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.fakes.push_service import FakeSubscription, PushServiceFake, running_push_service
from shared.adapters.web_push import WEBPUSH, WebPush, load_private_key, public_key_of
from shared.messaging import webpush as rules
from shared.ports.channels import ChannelThrottled, ChannelUnavailable, Message, OptedOut, Rejected
from tests.fakes import FakeSecrets

SUBJECT = "mailto:push@shop.example"
DELIVERY = "0f" * 16
NOON = datetime(2026, 6, 3, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
EVENING = datetime(2026, 6, 3, 11, 0, tzinfo=UTC)  # 20:00 in Seoul


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def vapid() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def fake() -> Iterator[PushServiceFake]:
    with running_push_service() as server:
        yield server


@pytest.fixture
def secrets(vapid: ec.EllipticCurvePrivateKey) -> FakeSecrets:
    return FakeSecrets({"vapid-private-key": _pem(vapid)})


def _channel(fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey, **kw: object) -> WebPush:
    options: dict[str, object] = {
        "subject": SUBJECT, "public_key": public_key_of(vapid), "allow_local": True, "ca_file": fake.ca_file,
        "timeout": 2.0, "clock": lambda: NOON,
    } | kw  # fmt: skip
    return WebPush(secrets, **options)  # type: ignore[arg-type]


def _message(sub: FakeSubscription, **kw: object) -> Message:
    fields: dict[str, object] = {
        "delivery_id": DELIVERY, "channel": WEBPUSH, "to": sub.endpoint, "subject": "봄 세일 시작",
        "text": "길동님, 오늘부터 봄 신상품 20% 할인", "push_keys": {"p256dh": sub.p256dh, "auth": sub.auth},
        "parameters": {"url": "https://collect.example/c?t=abc", "icon": "https://shop.example/icon.png"},
        "metadata": {"campaign_id": "spring", "run_id": "r1"},
    } | kw  # fmt: skip
    return Message(**fields)  # type: ignore[arg-type]


def test_the_browser_decrypts_and_shows_what_was_rendered(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe(application_server_key=public_key_of(vapid))
    result = _channel(fake, secrets, vapid).send(_message(sub))

    assert result.state == "accepted" and result.code == "201"
    assert result.provider_id == f"{fake.url}/m/1"
    (received,) = fake.received(sub)
    assert received.problem is None
    assert json.loads(received.plaintext or b"") == {
        "title": "봄 세일 시작",
        "body": "길동님, 오늘부터 봄 신상품 20% 할인",
        "url": "https://collect.example/c?t=abc",
        "icon": "https://shop.example/icon.png",
        "tag": DELIVERY,
        "actions": [{"action": "unsubscribe", "title": "수신거부"}],
    }
    assert fake.shown(sub) == [
        {
            "title": "봄 세일 시작", "body": "길동님, 오늘부터 봄 신상품 20% 할인", "url": "https://collect.example/c?t=abc",
            "icon": "https://shop.example/icon.png", "tag": DELIVERY,
            "actions": [{"action": "unsubscribe", "title": "수신거부"}],
        }
    ]  # fmt: skip
    # RFC 8030 headers, always: TTL, Urgency, Topic; the body is aes128gcm, never the plaintext
    assert received.headers["ttl"] == "86400"
    assert received.headers["urgency"] == "normal"
    assert received.headers["topic"] == DELIVERY
    assert received.headers["content-encoding"] == "aes128gcm"
    assert "봄".encode() not in received.ciphertext
    # RFC 8292: the token the fake verified names this service, our subject, and expires in 12 hours
    assert received.claims["aud"] == fake.url
    assert received.claims["sub"] == SUBJECT
    assert received.claims["exp"] - int(datetime.now(UTC).timestamp()) in range(12 * 3600 - 60, 12 * 3600 + 1)
    assert secrets.asked == [("get", "vapid-private-key")]


def test_a_resend_replaces_the_notification_instead_of_adding_one(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    channel = _channel(fake, secrets, vapid)
    channel.send(_message(sub))
    channel.send(_message(sub))
    channel.send(_message(sub, delivery_id="1e" * 16, subject="다른 알림"))
    assert len(fake.received(sub)) == 3
    assert [n["title"] for n in fake.shown(sub)] == ["봄 세일 시작", "다른 알림"]
    # one token per push service, reused: the two later pushes carry the first one's header
    assert len({r.headers["authorization"] for r in fake.received(sub)}) == 1


def test_advertising_by_day_expires_at_nine_in_the_evening_in_seoul(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    ad = "(광고) 봄 세일 시작"
    _channel(fake, secrets, vapid, clock=lambda: EVENING).send(_message(sub, subject=ad))
    _channel(fake, secrets, vapid, clock=lambda: NOON).send(_message(sub, subject=ad))
    _channel(fake, secrets, vapid, clock=lambda: EVENING, urgency="low").send(_message(sub))
    assert [(r.ttl, r.headers["urgency"]) for r in fake.received(sub)] == [
        (3600, "normal"),
        (9 * 3600, "normal"),
        (86400, "low"),  # informational: the configured TTL
    ]


def test_a_payload_encrypted_for_other_keys_is_accepted_and_shows_nothing(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub, other = fake.subscribe(), fake.subscribe()
    wrong_keys = {"p256dh": other.p256dh, "auth": other.auth}
    assert _channel(fake, secrets, vapid).send(_message(sub, push_keys=wrong_keys)).state == "accepted"
    (received,) = fake.received(sub)
    assert received.plaintext is None and received.problem is not None and "authenticate" in received.problem
    assert fake.shown(sub) == []


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(404, OptedOut, "404"), (410, OptedOut, "410"), (413, Rejected, "413"), (500, ChannelUnavailable, "500")],
)
def test_push_service_refusals_become_the_ports_errors(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey, status: int,
    error: type[Exception], code: str,
) -> None:  # fmt: skip
    sub = fake.subscribe()
    fake.fail_next(status)
    with pytest.raises(error) as raised:
        _channel(fake, secrets, vapid).send(_message(sub))
    assert getattr(raised.value, "code", None) == code
    if status == 500:
        assert isinstance(raised.value, ChannelUnavailable) and raised.value.maybe_sent
    assert fake.received(sub) == []


def test_a_subscription_the_browser_ended_is_gone(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    fake.unsubscribe(sub)
    with pytest.raises(OptedOut, match="410") as raised:
        _channel(fake, secrets, vapid).send(_message(sub))
    assert raised.value.code == "410"


def test_429_honours_retry_after_in_seconds_or_as_a_date(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    fake.fail_next(429)
    with pytest.raises(ChannelThrottled) as first:
        _channel(fake, secrets, vapid).send(_message(sub))
    assert first.value.retry_after == 7.0
    fake.fail_next(429, retry_after="Wed, 03 Jun 2026 03:02:00 GMT")  # two minutes after NOON
    with pytest.raises(ChannelThrottled) as second:
        _channel(fake, secrets, vapid).send(_message(sub))
    assert second.value.retry_after == 120.0


def test_503_is_unavailable_and_was_not_sent(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    fake.fail_next(503)
    with pytest.raises(ChannelUnavailable) as raised:
        _channel(fake, secrets, vapid).send(_message(sub))
    assert raised.value.code == "503" and not raised.value.maybe_sent


def test_a_timeout_may_have_been_sent_and_is_never_looked_up(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    fake.delay_next(1.5)
    channel = _channel(fake, secrets, vapid, timeout=0.5)
    with pytest.raises(ChannelUnavailable) as raised:
        channel.send(_message(sub))
    assert raised.value.maybe_sent
    assert channel.lookup(_message(sub)) is None


def test_a_refused_connection_was_not_sent(secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sub = FakeSubscription("x", f"https://127.0.0.1:{port}/push/x", ec.generate_private_key(ec.SECP256R1()), b"a" * 16)
    channel = WebPush(secrets, subject=SUBJECT, allow_local=True, timeout=1.0)
    with pytest.raises(ChannelUnavailable) as raised:
        channel.send(_message(sub))
    assert not raised.value.maybe_sent


def test_a_key_other_than_the_subscriptions_is_refused(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    other = public_key_of(ec.generate_private_key(ec.SECP256R1()))
    sub = fake.subscribe(application_server_key=other)
    with pytest.raises(Rejected) as raised:
        _channel(fake, secrets, vapid).send(_message(sub))
    assert raised.value.code == "403"


def test_a_private_key_that_is_not_the_public_one_stops_every_send(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    wrong = public_key_of(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ChannelUnavailable) as raised:
        _channel(fake, secrets, vapid, public_key=wrong).send(_message(sub))
    assert raised.value.code == "vapid_key_mismatch" and not raised.value.maybe_sent
    secrets.values["vapid-private-key"] = "not a key"
    with pytest.raises(ChannelUnavailable, match="neither PEM nor base64url"):
        _channel(fake, secrets, vapid).send(_message(sub))
    assert fake.received(sub) == []


def test_the_key_in_web_push_s_raw_form_and_a_rotation(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    raw = rules.b64url(vapid.private_numbers().private_value.to_bytes(32, "big"))
    assert public_key_of(load_private_key(raw)) == public_key_of(vapid)
    secrets.values["vapid-private-key"] = raw
    sub = fake.subscribe(application_server_key=public_key_of(vapid))
    _channel(fake, secrets, vapid).send(_message(sub))
    assert len(fake.shown(sub)) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"to": "http://127.0.0.1:9/push/x"}, "push_endpoint_not_https"),
        ({"push_keys": None}, "invalid_push_keys"),
        ({"push_keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "invalid_push_keys"),
        ({"push_keys": {"p256dh": rules.b64url(b"\x04" + b"\x01" * 64), "auth": "A" * 22}}, "invalid_push_keys"),
        ({"text": "가" * 1200}, "payload_too_large"),
    ],
)
def test_what_cannot_be_sent_is_rejected_before_any_call(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey, change: dict[str, object],
    code: str,
) -> None:  # fmt: skip
    sub = fake.subscribe()
    with pytest.raises(Rejected) as raised:
        _channel(fake, secrets, vapid).send(_message(sub, **change))
    assert raised.value.code == code
    assert fake.received() == []


def test_without_the_local_setting_the_fake_is_a_private_address(
    fake: PushServiceFake, secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = fake.subscribe()
    with pytest.raises(Rejected) as raised:
        _channel(fake, secrets, vapid, allow_local=False).send(_message(sub))
    assert raised.value.code == "push_endpoint_not_public"


def test_a_public_name_that_resolves_to_a_private_address_is_refused(
    secrets: FakeSecrets, vapid: ec.EllipticCurvePrivateKey
) -> None:
    sub = FakeSubscription("x", "https://push.evil.example/p", ec.generate_private_key(ec.SECP256R1()), b"a" * 16)
    channel = WebPush(secrets, subject=SUBJECT, resolver=lambda host: ["10.0.0.7"])
    with pytest.raises(Rejected, match="private") as raised:
        channel.send(_message(sub))
    assert raised.value.code == "push_endpoint_not_public"

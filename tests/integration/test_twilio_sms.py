"""TwilioSms on the real `twilio` client against the fake Messages API on a free port.

The SDK builds the requests, authenticates and parses answers and errors; the fake checks Basic auth,
the Messaging Service, the number and the body, keeps the messages, answers with Twilio's error
shapes and codes, and signs the webhooks it sends as Twilio does (checked here with the SDK's own
RequestValidator). Each test asserts what went over the wire and what the port's caller gets.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from devstack.fakes.twilio_api import (
    SERVICE_UNAVAILABLE,
    TOO_MANY_REQUESTS,
    FakeMessage,
    TwilioApiFake,
    TwilioFailure,
    invalid_number,
    not_mobile,
    running_twilio_api,
)
from devstack.processes import free_port
from shared.adapters.twilio_sms import TwilioSms
from shared.ports.channels import ChannelError, ChannelThrottled, ChannelUnavailable, Message, OptedOut, Rejected
from tests.fakes import FakeSecrets

ACCOUNT = "AC" + "4f" * 16
TOKEN = "auth-token-3c1e"
SERVICE = "MG" + "a7" * 16
STATUS_URL = "https://hooks.shop.example/twilio-status"
INBOUND_URL = "https://hooks.shop.example/twilio-status?inbound=1"
MINJI = "+821012345678"
BODY = "(광고) 새봄마켓: 60일 만이에요! 이번 주 회원 쿠폰 5,000원. 무료수신거부 080-123-4567"


@pytest.fixture
def posted() -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """The webhooks the fake sent (url, form, headers); the receiver answers 200."""
    return []


@pytest.fixture
def fake(posted: list[tuple[str, dict[str, str], dict[str, str]]]) -> Iterator[TwilioApiFake]:
    def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        posted.append((url, dict(parse_qsl(body.decode())), dict(headers)))
        return 200

    with running_twilio_api(ACCOUNT, TOKEN, SERVICE, inbound_url=INBOUND_URL, post=post) as server:
        yield server


@pytest.fixture
def secrets() -> FakeSecrets:
    return FakeSecrets(values={"twilio-auth-token": TOKEN})


@pytest.fixture
def sms(fake: TwilioApiFake, secrets: FakeSecrets) -> TwilioSms:
    return TwilioSms(ACCOUNT, SERVICE, STATUS_URL, secrets, api_url=fake.url, timeout=1.0)


def message(delivery_id: str = "d-0001", to: str = MINJI, text: str = BODY) -> Message:
    return Message(delivery_id=delivery_id, channel="sms", to=to, text=text)


def test_send_creates_the_message_from_the_messaging_service_with_a_status_callback(
    fake: TwilioApiFake, sms: TwilioSms, secrets: FakeSecrets
) -> None:
    result = sms.send(message())

    [create] = fake.created()
    assert create.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert {name: create.field(name) for name in ("To", "Body", "MessagingServiceSid", "StatusCallback")} == {
        "To": MINJI,
        "Body": BODY,
        "MessagingServiceSid": SERVICE,
        "StatusCallback": f"{STATUS_URL}?d=d-0001",
    }
    assert create.field("From") is None  # the service's pool picks the sender
    assert create.headers["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert create.headers["user-agent"].startswith("twilio-python/9.13.0")
    assert (result.state, result.code) == ("accepted", "accepted")
    assert result.provider_id is not None and fake.messages[result.provider_id].body == BODY
    sms.send(message("d-0002"))
    assert secrets.asked == [("get", "twilio-auth-token")]  # one client, the token read once


def test_a_delivery_id_that_needs_escaping_stays_one_query_parameter(fake: TwilioApiFake, sms: TwilioSms) -> None:
    sms.send(message("run 7/cust 42&x=1"))

    assert fake.created()[0].field("StatusCallback") == f"{STATUS_URL}?d=run+7%2Fcust+42%26x%3D1"
    assert TwilioSms(ACCOUNT, SERVICE, STATUS_URL + "?site=shop", FakeSecrets()).status_callback("d-1") == (
        f"{STATUS_URL}?site=shop&d=d-1"
    )


def test_status_callbacks_are_signed_as_twilio_signs_them(
    fake: TwilioApiFake, sms: TwilioSms, posted: list[tuple[str, dict[str, str], dict[str, str]]]
) -> None:
    sid = sms.send(message()).provider_id
    assert sid is not None

    fake.set_status(sid, "sent")
    fake.set_status(sid, "undelivered", error_code=30003)

    assert [(url, form["MessageStatus"]) for url, form, _ in posted] == [
        (f"{STATUS_URL}?d=d-0001", "sent"),
        (f"{STATUS_URL}?d=d-0001", "undelivered"),
    ]
    url, form, headers = posted[1]
    assert form["ErrorCode"] == "30003" and form["MessageSid"] == sid and form["To"] == MINJI
    assert form["MessagingServiceSid"] == SERVICE and form["AccountSid"] == ACCOUNT
    validator = RequestValidator(TOKEN)
    assert validator.validate(url, form, headers["X-Twilio-Signature"]) is True
    assert validator.validate(url.replace("d-0001", "d-0002"), form, headers["X-Twilio-Signature"]) is False
    assert validator.validate(url, form | {"ErrorCode": "0"}, headers["X-Twilio-Signature"]) is False


@pytest.mark.parametrize(
    ("failure", "expected", "code"),
    [
        (invalid_number(MINJI), Rejected, "21211"),
        (not_mobile(MINJI), Rejected, "21614"),
        (TwilioFailure(400, 21408, "Permission to send an SMS has not been enabled for the region"), Rejected, "21408"),
        (TwilioFailure(400, 21610, "Attempt to send to unsubscribed recipient"), OptedOut, "21610"),
        (TOO_MANY_REQUESTS, ChannelThrottled, "20429"),
        (SERVICE_UNAVAILABLE, ChannelUnavailable, "20503"),
    ],
)
def test_twilio_errors_become_the_ports_errors(
    fake: TwilioApiFake, sms: TwilioSms, failure: TwilioFailure, expected: type[ChannelError], code: str
) -> None:
    fake.fail_next(failure)

    with pytest.raises(ChannelError) as refused:
        sms.send(message())

    assert type(refused.value) is expected and refused.value.code == code
    assert fake.messages == {}
    if isinstance(refused.value, ChannelThrottled):
        assert refused.value.retry_after == 2.0  # the Retry-After header
    if isinstance(refused.value, ChannelUnavailable):
        assert refused.value.maybe_sent is True  # a 5xx does not say whether Twilio created it


def test_a_stop_reply_makes_the_next_send_opted_out(
    fake: TwilioApiFake, sms: TwilioSms, posted: list[tuple[str, dict[str, str], dict[str, str]]]
) -> None:
    fake.inbound(MINJI, "stop")

    with pytest.raises(OptedOut) as out:
        sms.send(message())

    assert out.value.code == "21610"
    [(url, form, headers)] = posted
    assert (url, form["Body"], form["From"], form["SmsStatus"]) == (INBOUND_URL, "stop", MINJI, "received")
    assert RequestValidator(TOKEN).validate(url, form, headers["X-Twilio-Signature"]) is True


def test_a_wrong_token_is_unavailable_not_sent_and_read_again_next_time(fake: TwilioApiFake) -> None:
    secrets = FakeSecrets(values={"twilio-auth-token": "revoked"})
    sms = TwilioSms(ACCOUNT, SERVICE, STATUS_URL, secrets, api_url=fake.url)

    with pytest.raises(ChannelUnavailable) as refused:
        sms.send(message())
    secrets.values["twilio-auth-token"] = TOKEN  # rotated in Secret Manager
    sms.send(message())

    assert (refused.value.code, refused.value.maybe_sent) == ("20003", False)
    assert secrets.asked == [("get", "twilio-auth-token")] * 2
    assert len(fake.messages) == 1


def test_a_messaging_service_of_another_account_is_unavailable(fake: TwilioApiFake, secrets: FakeSecrets) -> None:
    sms = TwilioSms(ACCOUNT, "MG" + "00" * 16, STATUS_URL, secrets, api_url=fake.url)

    with pytest.raises(ChannelUnavailable) as refused:
        sms.send(message())

    assert (refused.value.code, refused.value.maybe_sent) == ("21701", False)


@pytest.mark.parametrize("number", ["01012345678", "+82 10-1234-5678", "+0821012345678", "", "+8210"])
def test_a_number_that_is_not_e164_is_rejected_before_any_call(
    fake: TwilioApiFake, sms: TwilioSms, number: str
) -> None:
    with pytest.raises(Rejected) as bad:
        sms.send(message(to=number))

    assert bad.value.code == "invalid_number"
    assert fake.requests == []


def test_nothing_listening_is_unavailable_and_not_sent(secrets: FakeSecrets) -> None:
    sms = TwilioSms(ACCOUNT, SERVICE, STATUS_URL, secrets, api_url=f"http://127.0.0.1:{free_port()}", timeout=1.0)

    with pytest.raises(ChannelUnavailable) as down:
        sms.send(message())

    assert down.value.maybe_sent is False


# --- lookup: Twilio has no idempotency key ---------------------------------------------------------


def test_a_create_that_timed_out_is_found_by_lookup_not_sent_again(fake: TwilioApiFake, sms: TwilioSms) -> None:
    fake.delay_next(2.0)  # longer than the client's 1 s timeout; the message is created all the same

    with pytest.raises(ChannelUnavailable) as unknown:
        sms.send(message())
    found = sms.lookup(message())

    assert unknown.value.maybe_sent is True
    [sid] = fake.messages
    assert found is not None and (found.state, found.provider_id) == ("accepted", sid)
    listing = fake.requests[-1]
    assert (listing.method, listing.path) == ("GET", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    assert (listing.field("To"), listing.field("PageSize")) == (MINJI, "50")


def test_lookup_by_sid_follows_the_status(fake: TwilioApiFake, sms: TwilioSms) -> None:
    sid = sms.send(message()).provider_id
    assert sid is not None
    fake.set_status(sid, "delivered")
    delivered = sms.lookup(message(), provider_id=sid)
    fake.set_status(sid, "undelivered", error_code=30005)
    undelivered = sms.lookup(message(), provider_id=sid)
    missing = sms.lookup(message(), provider_id="SM" + "0" * 32)

    assert delivered is not None and (delivered.state, delivered.code) == ("delivered", "delivered")
    assert undelivered is not None and (undelivered.state, undelivered.code) == ("failed", "30005")
    assert missing is not None and (missing.state, missing.code) == ("absent", "20404")


def test_lookup_says_absent_only_when_twilio_holds_nothing_of_ours_for_the_number(
    fake: TwilioApiFake, sms: TwilioSms
) -> None:
    before = sms.lookup(message())
    sms.send(message("d-0007", text="(광고) 다른 캠페인"))  # another delivery to the same person
    after = sms.lookup(message())
    elsewhere = sms.lookup(message(to="+821099998888"))

    assert before is not None and before.state == "absent"
    assert after is None  # ours, another body: cannot tell
    assert elsewhere is not None and elsewhere.state == "absent"


def test_lookup_ignores_messages_older_than_its_window(fake: TwilioApiFake, secrets: FakeSecrets) -> None:
    now = datetime(2026, 5, 11, 3, 0, tzinfo=UTC)
    fake.clock = lambda: now - timedelta(days=3)
    old = TwilioSms(ACCOUNT, SERVICE, STATUS_URL, secrets, api_url=fake.url, clock=lambda: now)
    old.send(message())  # the same text three days ago: an earlier campaign run

    found = old.lookup(message())

    assert found is not None and found.state == "absent"


def test_a_full_page_of_someone_elses_messages_cannot_tell(fake: TwilioApiFake, secrets: FakeSecrets) -> None:
    sms = TwilioSms(ACCOUNT, SERVICE, STATUS_URL, secrets, api_url=fake.url, lookup_depth=3)
    now = datetime.now(UTC)
    for n in range(3):  # sent from another Messaging Service of the account
        sid = f"SM{n:032x}"
        fake.messages[sid] = FakeMessage(
            sid, ACCOUNT, MINJI, f"OTP {n}", "MG" + "11" * 16, None, "delivered", None, now, now
        )

    assert sms.lookup(message()) is None
    assert fake.requests[-1].field("PageSize") == "3"

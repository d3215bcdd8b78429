"""SMS routed by country: Korean numbers through NhnSms, others through TwilioSms, each over real HTTP
to its fake; then deliver with the router on DuckDB (tests/messaging_world.py): an advertising
campaign planned, rendered in the Network Act's form and sent once per delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devstack.fakes.nhn_cloud import THROTTLED
from devstack.fakes.nhn_sms import NhnSmsFake, running_nhn_sms
from devstack.fakes.twilio_api import TwilioApiFake, running_twilio_api
from shared.adapters.nhn_sms import NhnSms
from shared.adapters.sms_router import SmsRouter, send_each
from shared.adapters.twilio_sms import TwilioSms
from shared.messaging.ledger import CLAIMS
from shared.ports.channels import BatchChannel, ChannelThrottled, ChannelUnavailable, Message, Rejected, SendResult
from shared.services.deliver import BatchReport, DeliveryIncomplete, RateLimiter, deliver_batch
from tests.fake_channels import LOST, REJECT, FakeChannel
from tests.fakes import FakeSecrets
from tests.messaging_world import NOON, World

APP, SECRET, SENDER = "sms-app-1", "sms-secret-1", "0212345678"
ACCOUNT, TOKEN, SERVICE = "AC" + "4f" * 16, "auth-token-1", "MG" + "a7" * 16
STATUS_URL = "https://hooks.shop.example/twilio-status"
LATER = NOON + timedelta(minutes=1)
US = "+14155550123"


@pytest.fixture
def nhn() -> Iterator[NhnSmsFake]:
    with running_nhn_sms(APP, SECRET, [SENDER]) as server:
        yield server


@pytest.fixture
def twilio() -> Iterator[TwilioApiFake]:
    with running_twilio_api(ACCOUNT, TOKEN, SERVICE) as server:
        yield server


def router(nhn: NhnSmsFake, twilio: TwilioApiFake, timeout: float = 1.0) -> SmsRouter:
    secrets = FakeSecrets(values={"nhn-sms-secret-key": SECRET, "twilio-auth-token": TOKEN})
    domestic = NhnSms(APP, SENDER, secrets, api_url=nhn.url, timeout=timeout)
    return SmsRouter(domestic, TwilioSms(ACCOUNT, SERVICE, STATUS_URL, secrets, api_url=twilio.url, timeout=timeout))


def message(n: int, to: str, text: str = "주문하신 상품이 준비되었습니다.") -> Message:
    return Message(delivery_id=f"{n:032x}", channel="sms", to=to, text=text)


def test_korean_numbers_go_to_nhn_and_others_to_twilio(nhn: NhnSmsFake, twilio: TwilioApiFake) -> None:
    sms = router(nhn, twilio)
    assert isinstance(sms, BatchChannel) and sms.batch_size == 1000
    batch = [message(1, "+821011112222"), message(2, US), message(3, "+821033334444"), message(4, "+447700900123")]
    results = sms.send_many(batch)
    [request] = nhn.sends()
    assert [r["recipientNo"] for r in request.body["recipientList"]] == ["01011112222", "01033334444"]
    assert sorted(m.to for m in twilio.messages.values()) == [US, "+447700900123"]
    ids = [str(r.provider_id) for r in results if isinstance(r, SendResult)]
    assert len(ids) == 4 and [i[:2] for i in ids] == ["20", "SM", "20", "SM"]  # NHN's requestId/seq, Twilio's SID
    assert sms.send(message(5, US)).provider_id in twilio.messages
    found = sms.lookup(message(1, "+821011112222"))  # asks NHN; Twilio is never asked about it
    assert found is not None and found.state == "accepted" and found.provider_id == ids[0]
    assert not [r for r in twilio.requests if r.method == "GET"]


def test_a_throttle_at_one_provider_leaves_the_other_sending(nhn: NhnSmsFake, twilio: TwilioApiFake) -> None:
    nhn.fail_next(THROTTLED)
    results = router(nhn, twilio).send_many([message(1, "+821011112222"), message(2, US), message(3, "+821033334444")])
    assert isinstance(results[0], ChannelThrottled) and isinstance(results[2], ChannelThrottled)
    assert isinstance(results[1], SendResult) and len(twilio.messages) == 1 and nhn.messages == {}


def test_send_each_stops_a_provider_after_an_outage_and_goes_on_after_a_refusal() -> None:
    channel = FakeChannel("sms", script={"+15550001": [REJECT], "+15550002": [LOST]})
    results = send_each(channel, [message(n, f"+1555000{n}") for n in range(1, 5)])
    assert isinstance(results[0], Rejected)
    assert isinstance(results[1], ChannelUnavailable) and results[1].maybe_sent
    assert all(isinstance(r, ChannelUnavailable) and not r.maybe_sent for r in results[2:])
    assert [c.to for c in channel.calls] == ["+15550001", "+15550002"]


# -- deliver on DuckDB with the router --------------------------------------------------------------


class RoutedWorld(World):
    """The messaging world's advertising SMS campaign (falling back to e-mail) with the router."""

    router: SmsRouter

    def deliver(self, data: bytes, at: datetime = LATER) -> BatchReport:
        return deliver_batch(self.ports(channels={"sms": self.router, "email": self.email}), data, at)


@pytest.fixture
def world(tmp_path: Path, nhn: NhnSmsFake, twilio: TwilioApiFake) -> RoutedWorld:
    made = RoutedWorld(tmp_path)
    made.router = router(nhn, twilio)
    return made


def test_deliver_sends_korean_numbers_by_nhn_as_one_advertising_request_and_others_by_twilio(
    world: RoutedWorld, nhn: NhnSmsFake, twilio: TwilioApiFake
) -> None:
    korean = [world.person(f"k{n}") for n in range(3)]
    abroad = world.person("us", phone=US)
    world.plan()
    [data] = world.batches()
    report = world.deliver(data)
    assert report.sent == 4 and report.complete
    [request] = nhn.sends()  # the same text for the three (no name): one request
    assert request.path.endswith("/sender/ad-mms")
    text = request.body["body"]
    assert text.startswith("(광고) 홍길동상회 02-1234-5678\n고객님, 60일 만이에요!") and text.endswith(
        "무료수신거부 080-123-4567"
    )
    assert request.body["title"] == "(광고) 홍길동상회 02-1234-5678" and request.body["sendNo"] == SENDER
    ids = {r["recipientGroupingKey"] for r in request.body["recipientList"]}
    assert ids == {world.delivery(p, "sms")["delivery_id"] for p in korean}
    [us_message] = twilio.messages.values()
    assert us_message.to == US and us_message.body.startswith("(광고)")
    assert world.events(korean[0]) == [("sms", "sent", "0")]
    assert world.events(abroad) == [("sms", "sent", "accepted")]
    claims = dict(world.documents.list(CLAIMS))
    held = nhn.by_grouping_key()
    for person in korean:
        delivery = world.delivery(person, "sms")["delivery_id"]
        [sent] = held[delivery]
        assert claims[delivery]["provider_id"] == f"{sent.request_id}/{sent.seq}"
    assert world.deliver(data).done_before  # a redelivery of the finished batch sends nothing
    assert len(nhn.sends()) == 1 and len(twilio.messages) == 1


def test_a_number_on_nhns_080_list_is_opted_out_and_falls_back_to_email(world: RoutedWorld, nhn: NhnSmsFake) -> None:
    blocked = world.person("blocked")
    nhn.block(str(blocked.phone).replace("+82", "0"))
    world.plan()
    [data] = world.batches()
    report = world.deliver(data)
    assert report.opted_out == 1 and report.fallbacks == 1
    assert world.events(blocked) == [("sms", "opted_out", "-6001"), ("email", "sent", None)]
    [opt_out] = [r for r in world.rows("raw.subscription") if r["source"] == "provider_opt_out"]
    assert (opt_out["channel"], opt_out["address"], opt_out["subscribed"]) == ("sms", blocked.phone, False)
    assert world.email.sent_to() == [blocked.email]


def test_a_timed_out_request_is_looked_up_and_never_sent_twice(
    tmp_path: Path, nhn: NhnSmsFake, twilio: TwilioApiFake
) -> None:
    world = RoutedWorld(tmp_path)
    world.router = router(nhn, twilio, timeout=0.5)
    people = [world.person(f"t{n}") for n in range(3)]
    world.plan()
    [data] = world.batches()
    nhn.delay_next(1.2)  # NHN takes the request; its answer comes after the client gave up
    with pytest.raises(DeliveryIncomplete):
        world.deliver(data)
    assert {c["state"] for c in dict(world.documents.list(CLAIMS)).values()} == {"lookup"}
    report = world.deliver(data, LATER + timedelta(minutes=2))
    assert report.sent == 3 and report.complete
    assert len(nhn.sends()) == 1  # found by grouping key: no second request
    held = nhn.by_grouping_key()
    assert len(held) == 3 and all(len(v) == 1 for v in held.values())
    assert world.events(people[0]) == [("sms", "sending", None), ("sms", "sent", "msgStatus 2")]


def test_a_short_informational_text_is_one_plain_sms(world: RoutedWorld, nhn: NhnSmsFake) -> None:
    world.edit("campaigns", "winback-sms", kind="informational")
    world.edit(
        "message_templates", "winback", sms={"text": "{{ given_name or '고객' }}님, 주문하신 상품이 준비되었습니다."}
    )
    person = world.person("short", given="민지")
    world.plan()
    [data] = world.batches()
    assert world.deliver(data).sent == 1
    [request] = nhn.sends()
    assert request.path.endswith("/sender/sms") and "title" not in request.body
    assert request.body["body"] == "민지님, 주문하신 상품이 준비되었습니다."
    assert world.events(person) == [("sms", "sent", "0")]


def test_each_provider_is_paced_under_its_own_throttle(world: RoutedWorld) -> None:
    """Korean numbers count against messaging/policy's nhn_sms throttle, others against twilio's."""

    class Recording(RateLimiter):
        def __init__(self) -> None:
            super().__init__(clock=lambda: 0.0, sleep=lambda _: None)
            self.slots: list[tuple[str, float]] = []

        def acquire(self, provider: str, rate: float) -> float:
            self.slots.append((provider, rate))
            return super().acquire(provider, rate)

    world.edit("messaging", "policy", throttles={"twilio": 5, "nhn_sms": 30})
    for n in range(3):
        world.person(f"k{n}")
    world.person("us", phone=US)
    world.plan()
    [data] = world.batches()
    limiter = Recording()
    report = deliver_batch(
        world.ports(channels={"sms": world.router, "email": world.email}, limiter=limiter), data, LATER
    )
    assert report.sent == 4
    assert sorted(limiter.slots) == [("nhn_sms", 30 / 3), ("twilio", 5 / 1)]  # one pass: a slot per message

"""deliver through AlimTalk: planned batches on DuckDB, NhnAlimTalk over real HTTP to the fake NHN API.

Each delivery is claimed before the request, a batch of them goes out in one request (1,000
recipients), each result is recorded per delivery; a refusal falls back to SMS with the policy run
again for SMS; a timeout is looked up before any resend; a redelivery storm sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.fakes.nhn_alimtalk import THROTTLED, FakeTemplate, NhnAlimTalkFake, running_nhn_alimtalk
from shared.services.deliver import DeliveryIncomplete
from tests.alimtalk_world import APP, CODE, CONTENT, LATER, SECRET, SENDER, KakaoWorld


@pytest.fixture
def fake() -> Iterator[NhnAlimTalkFake]:
    with running_nhn_alimtalk(APP, SECRET, SENDER, [FakeTemplate(CODE, "TSC03", CONTENT)]) as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, fake: NhnAlimTalkFake) -> KakaoWorld:
    made = KakaoWorld(tmp_path)
    made.setup(fake)
    return made


def test_a_batch_goes_out_in_one_request_each_delivery_claimed_and_recorded(
    world: KakaoWorld, fake: NhnAlimTalkFake
) -> None:
    people = [world.kakao_person(f"p{n:02d}", given=f"고객{n}") for n in range(25)]
    world.plan_kakao()
    [data] = world.batches()
    report = world.deliver(data)
    assert report.sent == 25 and report.complete
    [request] = fake.sends()
    assert len(request.body["recipientList"]) == 25
    sent = {r["recipientGroupingKey"]: r for r in request.body["recipientList"]}
    ann = world.delivery_id(people[0], "alimtalk")
    assert sent[ann]["templateParameter"] == {"고객명": "고객0", "member_id": "m-p00"}
    claims = world.claims()
    assert {c["state"] for c in claims.values()} == {"sent"} and len(claims) == 25
    request_id = next(iter(fake.messages))[0]
    seq = [r["recipientGroupingKey"] for r in request.body["recipientList"]].index(ann) + 1
    assert claims[ann]["provider_id"] == f"{request_id}/{seq}"
    assert world.events(people[0]) == [("alimtalk", "sent", "0")]
    assert {held.content for held in fake.messages.values()} >= {
        "고객0님, 주문하신 상품이 준비되었습니다. 회원번호 m-p00"
    }


def test_a_recipient_alimtalk_refuses_falls_back_to_sms_under_the_sms_policy(
    world: KakaoWorld, fake: NhnAlimTalkFake
) -> None:
    abroad = world.kakao_person("abroad", phone="+14155550100")  # AlimTalk takes Korean numbers only
    unsubscribed = world.kakao_person("nosms", phone="+14155550101", sms_subscribed=False)
    home = world.kakao_person("home")
    world.plan_kakao()
    [data] = world.batches()
    report = world.deliver(data)
    assert report.sent == 2 and report.failed == 2 and report.fallbacks == 2 and report.skipped == 1
    assert world.events(abroad) == [("alimtalk", "failed", "invalid_number"), ("sms", "sent", None)]
    assert world.events(unsubscribed) == [("alimtalk", "failed", "invalid_number"), ("sms", "skipped", "unsubscribed")]
    assert world.events(home) == [("alimtalk", "sent", "0")]
    assert world.sms.sent_to() == ["+14155550100"]
    assert world.sms.accepted[0].text == "고객님, 주문하신 상품이 준비되었습니다."


def test_a_timed_out_request_is_looked_up_and_never_sent_twice(tmp_path: Path, fake: NhnAlimTalkFake) -> None:
    world = KakaoWorld(tmp_path)
    world.setup(fake, timeout=0.5)
    people = [world.kakao_person(f"t{n}") for n in range(3)]
    world.plan_kakao()
    [data] = world.batches()
    fake.delay_next(1.2)  # NHN takes the request; its answer comes after the client gave up
    with pytest.raises(DeliveryIncomplete):
        world.deliver(data)
    assert {c["state"] for c in world.claims().values()} == {"lookup"}
    report = world.deliver(data, LATER + timedelta(minutes=2))
    assert report.sent == 3 and report.complete
    assert len(fake.sends()) == 1  # found by grouping key: no second request
    assert all(len(v) == 1 for v in fake.by_grouping_key().values()) and len(fake.by_grouping_key()) == 3
    assert world.events(people[0]) == [("alimtalk", "sending", None), ("alimtalk", "sent", "READY")]


def test_a_throttle_hands_the_claims_on_and_a_redelivery_sends_them(world: KakaoWorld, fake: NhnAlimTalkFake) -> None:
    for n in range(4):
        world.kakao_person(f"q{n}")
    world.plan_kakao()
    [data] = world.batches()
    fake.fail_next(THROTTLED)
    with pytest.raises(DeliveryIncomplete) as stopped:
        world.deliver(data)
    assert stopped.value.retry_after == 3.0
    assert {c["state"] for c in world.claims().values()} == {"retry"}
    report = world.deliver(data)
    assert report.sent == 4 and len(fake.sends()) == 2
    assert len(fake.messages) == 4


def test_a_redelivery_storm_sends_each_message_once(world: KakaoWorld, fake: NhnAlimTalkFake) -> None:
    for n in range(60):
        world.kakao_person(f"s{n:02d}")
    world.plan_kakao(batch_size=20)
    batches = world.batches()
    assert len(batches) == 3

    def attempt(data: bytes) -> str:
        try:
            world.deliver(data)
        except DeliveryIncomplete:
            return "incomplete"
        return "done"

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(attempt, [b for b in batches for _ in range(3)]))
    for data in batches:  # what a storm left to another worker is finished by Pub/Sub's next delivery
        attempt(data)
    held = fake.by_grouping_key()
    assert len(held) == 60 and all(len(v) == 1 for v in held.values())
    assert len(fake.sends()) <= 9


def test_1000_recipients_are_one_request(world: KakaoWorld, fake: NhnAlimTalkFake) -> None:
    for n in range(1000):
        world.kakao_person(f"m{n:04d}", phone=f"+8210{n + 10_000_000:08d}")
    world.plan_kakao(batch_size=1000)
    [data] = world.batches()
    report = world.deliver(data)
    assert report.sent == 1000
    [request] = fake.sends()
    assert len(request.body["recipientList"]) == 1000 and len(fake.messages) == 1000

"""NhnAlimTalk against the fake AlimTalk API v2.3 on a free port (real HTTP, `requests`).

The fake checks the app key, secret key, sender key, template status, each recipient's number and
`#{}` values, keeps idempotency keys for 10 minutes and answers with NHN's shapes and codes. Each test
asserts what went over the wire and what the port's caller gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.fakes.nhn_alimtalk import (
    SYSTEM_ERROR,
    THROTTLED,
    UNAVAILABLE,
    FakeTemplate,
    NhnAlimTalkFake,
    running_nhn_alimtalk,
)
from devstack.processes import free_port
from shared.adapters.nhn_alimtalk import NhnAlimTalk, idempotency_key, recipient_number
from shared.ports.channels import ChannelError, ChannelThrottled, ChannelUnavailable, Message, Rejected, SendResult
from tests.fakes import FakeSecrets

APP = "appkey-7Yq2"
SECRET = "secret-0c1d"
SENDER = "f" * 40
CODE = "GRADE_NOTICE"
CONTENT = "#{고객명}님, 회원 등급이 #{등급}(으)로 변경되었습니다."
MINJI = "+821012345678"


@pytest.fixture
def fake() -> Iterator[NhnAlimTalkFake]:
    templates = [
        FakeTemplate(CODE, "TSC03", CONTENT),
        FakeTemplate("UNDER_REVIEW", "TSC02", "검토 중 #{고객명}"),
        FakeTemplate("LONG", "TSC03", "#{본문}"),
    ]
    with running_nhn_alimtalk(APP, SECRET, SENDER, templates) as server:
        yield server


@pytest.fixture
def secrets() -> FakeSecrets:
    return FakeSecrets(values={"alimtalk-api-key": SECRET})


@pytest.fixture
def kakao(fake: NhnAlimTalkFake, secrets: FakeSecrets) -> NhnAlimTalk:
    return NhnAlimTalk(APP, SENDER, secrets, api_url=fake.url, timeout=1.0)


def message(n: int = 1, to: str = MINJI, code: str = CODE, **parameters: str) -> Message:
    values = parameters or {"고객명": f"고객{n}", "등급": "VIP"}
    return Message(
        delivery_id=f"{n:032x}", channel="alimtalk", to=to, text="(filled)", template_code=code,
        parameters=values, metadata={"campaign_id": "vip-notice", "run_id": "r1"},
    )  # fmt: skip


def number(n: int) -> str:
    return f"+8210{n:08d}"


def test_send_many_sends_one_request_with_our_ids_and_no_provider_resend(
    fake: NhnAlimTalkFake, kakao: NhnAlimTalk
) -> None:
    batch = [message(1), message(2, to=number(2)), message(3, to=number(3))]
    results = kakao.send_many(batch)
    [request] = fake.sends()
    assert request.path == f"/alimtalk/v2.3/appkeys/{APP}/messages"
    assert request.headers["x-secret-key"] == SECRET
    assert request.headers["x-nc-api-idempotency-key"] == idempotency_key([m.delivery_id for m in batch])
    body = request.body
    assert body["senderKey"] == SENDER and body["templateCode"] == CODE
    assert body["senderGroupingKey"] == "vip-notice"
    first = body["recipientList"][0]
    assert first == {
        "recipientNo": "01012345678",
        "templateParameter": {"고객명": "고객1", "등급": "VIP"},
        "resendParameter": {"isResend": False},
        "recipientGroupingKey": f"{1:032x}",
    }
    request_id = next(iter(fake.messages))[0]
    assert results == [SendResult("accepted", provider_id=f"{request_id}/{seq}", code="0") for seq in (1, 2, 3)]
    held = fake.messages[(request_id, 1)]
    assert held.content == "고객1님, 회원 등급이 VIP(으)로 변경되었습니다." and held.resend is False


def test_send_is_send_many_of_one(fake: NhnAlimTalkFake, kakao: NhnAlimTalk) -> None:
    result = kakao.send(message(7))
    assert result.state == "accepted" and result.provider_id is not None and result.provider_id.endswith("/1")
    with pytest.raises(Rejected) as refused:
        kakao.send(message(8, code="UNDER_REVIEW", 고객명="x"))
    assert refused.value.code == "-3005"


def test_2500_recipients_go_in_requests_of_1000(fake: NhnAlimTalkFake, kakao: NhnAlimTalk) -> None:
    batch = [message(n, to=number(n)) for n in range(1, 2501)]
    results = kakao.send_many(batch)
    assert [len(r.body["recipientList"]) for r in fake.sends()] == [1000, 1000, 500]
    assert all(isinstance(r, SendResult) and r.state == "accepted" for r in results)
    held = fake.by_grouping_key()
    assert len(held) == 2500 and all(len(v) == 1 for v in held.values())
    assert len({r.provider_id for r in results if isinstance(r, SendResult)}) == 2500


def test_each_recipient_gets_its_own_answer(fake: NhnAlimTalkFake, kakao: NhnAlimTalk) -> None:
    batch = [
        message(1),
        message(2, to=number(2), 고객명="누락"),  # #{등급} has no value
        message(3, to="+14155550100"),  # not Korean: never sent
        message(4, to=number(4), code="LONG", 본문="가" * 1301),
        message(5, to=number(5)),
    ]
    results = kakao.send_many(batch)
    codes = [r.code if isinstance(r, ChannelError) else r.state for r in results]
    assert codes == ["accepted", "-3004", "invalid_number", "-3048", "accepted"]
    assert all(isinstance(r, Rejected) for r in (results[1], results[2], results[3]))
    assert [len(r.body["recipientList"]) for r in fake.sends()] == [3, 1]  # per template; +1 never asked
    assert sorted(fake.by_grouping_key()) == [f"{1:032x}", f"{5:032x}"]


@pytest.mark.parametrize(
    ("setup", "kind", "code", "maybe_sent"),
    [
        ({"secret": "wrong"}, ChannelUnavailable, "-1001", False),
        ({"app": "other-app"}, ChannelUnavailable, "-1000", False),
        ({"sender": "e" * 40}, ChannelUnavailable, "-2017", False),
        ({"code": "NO_SUCH"}, Rejected, "-3003", None),
        ({"code": "UNDER_REVIEW"}, Rejected, "-3005", None),
        ({"fail": UNAVAILABLE}, ChannelUnavailable, "503", True),
        ({"fail": SYSTEM_ERROR}, ChannelUnavailable, "-9999", True),
    ],
)
def test_request_errors_become_the_ports_errors(
    fake: NhnAlimTalkFake, setup: dict[str, Any], kind: type[ChannelError], code: str, maybe_sent: bool | None
) -> None:
    secrets = FakeSecrets(values={"alimtalk-api-key": setup.get("secret", SECRET)})
    kakao = NhnAlimTalk(setup.get("app", APP), setup.get("sender", SENDER), secrets, api_url=fake.url, timeout=1.0)
    if "fail" in setup:
        fake.fail_next(setup["fail"])
    code_ = setup.get("code", CODE)
    results = kakao.send_many([message(1, code=code_, 고객명="a", 등급="b"), message(2, to=number(2), code=code_)])
    assert all(type(r) is kind and r.code == code for r in results), results
    if maybe_sent is not None:
        assert all(isinstance(r, ChannelUnavailable) and r.maybe_sent is maybe_sent for r in results)
    assert fake.messages == {}


def test_a_throttle_stops_the_batch_and_says_how_long(fake: NhnAlimTalkFake, kakao: NhnAlimTalk) -> None:
    fake.fail_next(THROTTLED)
    results = kakao.send_many([message(n, to=number(n)) for n in range(1, 1502)])
    assert len(fake.sends()) == 1  # the second request was never made
    assert all(isinstance(r, ChannelThrottled) and r.retry_after == 3.0 for r in results)


def test_an_outage_after_a_first_request_leaves_the_rest_unsent_not_unknown(
    fake: NhnAlimTalkFake, kakao: NhnAlimTalk
) -> None:
    batch = [message(n, to=number(n)) for n in range(1, 2002)]
    fake.fail_next(SYSTEM_ERROR)
    fake.fail_next(UNAVAILABLE)  # the first request fails; the fake answers the second the same way
    results = kakao.send_many(batch)
    assert len(fake.sends()) == 1
    first, rest = results[:1000], results[1000:]
    assert all(isinstance(r, ChannelUnavailable) and r.maybe_sent for r in first)
    assert all(isinstance(r, ChannelUnavailable) and not r.maybe_sent for r in rest)


def test_the_secret_key_is_read_at_each_request(fake: NhnAlimTalkFake, secrets: FakeSecrets) -> None:
    kakao = NhnAlimTalk(APP, SENDER, secrets, api_url=fake.url, timeout=1.0)
    secrets.values["alimtalk-api-key"] = "rotated"
    [refused] = kakao.send_many([message(1)])
    assert isinstance(refused, ChannelUnavailable) and refused.code == "-1001"
    fake.secret_key = "rotated"
    [sent] = kakao.send_many([message(2)])
    assert isinstance(sent, SendResult) and sent.state == "accepted"
    assert secrets.asked.count(("get", "alimtalk-api-key")) == 2


def test_a_send_that_timed_out_is_found_by_lookup_and_not_sent_again(fake: NhnAlimTalkFake, kakao: NhnAlimTalk) -> None:
    fake.delay_next(1.5)  # the fake sends, but answers after the client's 1 s timeout
    [lost] = kakao.send_many([message(1)])
    assert isinstance(lost, ChannelUnavailable) and lost.maybe_sent
    found = kakao.lookup(message(1))
    assert found is not None and found.state == "accepted" and found.provider_id is not None
    [duplicate] = kakao.send_many([message(1)])  # a blind resend within 10 minutes: NHN refuses it
    assert isinstance(duplicate, ChannelUnavailable) and duplicate.code == "-1005" and duplicate.maybe_sent
    assert len(fake.by_grouping_key()[f"{1:032x}"]) == 1
    [(request_id, seq)] = fake.messages
    fake.complete([(request_id, seq)], "3019")
    assert kakao.lookup(message(1)) == SendResult("failed", provider_id=f"{request_id}/{seq}", code="3019")


def test_lookup_follows_the_delivery_result_and_says_absent_for_nothing(
    fake: NhnAlimTalkFake, kakao: NhnAlimTalk
) -> None:
    assert kakao.lookup(message(9)) == SendResult("absent")
    kakao.send_many([message(1), message(2, to=number(2))])
    fake.outcomes["01000000002"] = "3020"
    fake.deliver_pending()
    one, two = kakao.lookup(message(1)), kakao.lookup(message(2, to=number(2)))
    assert one is not None and one.state == "delivered" and one.code == "1000"
    assert two is not None and two.state == "failed" and two.code == "3020"
    [query] = [r for r in fake.requests if r.method == "GET"][:1]
    assert query.query["recipientGroupingKey"] == f"{9:032x}"
    assert query.query["startRequestDate"] < query.query["endRequestDate"]


def test_request_results_lists_every_recipient_of_a_request(fake: NhnAlimTalkFake, kakao: NhnAlimTalk) -> None:
    results = kakao.send_many([message(n, to=number(n)) for n in range(1, 1201)])
    request_ids = {str(r.provider_id).split("/")[0] for r in results if isinstance(r, SendResult)}
    fake.deliver_pending()
    listed = [r for request in sorted(request_ids) for r in kakao.request_results(request)]
    assert len(listed) == 1200 and {r.result_code for r in listed} == {"1000"}
    assert {r.delivery_id for r in listed} == {f"{n:032x}" for n in range(1, 1201)}


def test_nothing_listening_is_unavailable_and_not_sent(secrets: FakeSecrets) -> None:
    kakao = NhnAlimTalk(APP, SENDER, secrets, api_url=f"http://127.0.0.1:{free_port()}", timeout=1.0)
    [result] = kakao.send_many([message(1)])
    assert isinstance(result, ChannelUnavailable) and result.maybe_sent is False


def test_recipient_numbers() -> None:
    assert recipient_number("+821012345678") == "01012345678"
    assert recipient_number("+82212345678") is None  # a landline: no KakaoTalk
    assert recipient_number("01012345678") is None
    assert recipient_number("+14155550100") is None

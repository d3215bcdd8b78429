"""NhnSms against the fake SMS API v3.0 on a free port (real HTTP, `requests`).

The fake checks the app key, secret key, registered sender number, sizes and characters as NHN
does, the advertising form and the 080 reject list, keeps every message with what a phone would
show of it, and answers with NHN's shapes and codes. Each test asserts what went over the wire and
what the port's caller gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.fakes.nhn_cloud import SYSTEM_ERROR, THROTTLED, UNAVAILABLE
from devstack.fakes.nhn_sms import NhnSmsFake, running_nhn_sms
from devstack.processes import free_port
from shared.adapters.nhn_sms import NhnSms, cut, form
from shared.ports.channels import (
    ChannelError,
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    OptedOut,
    Rejected,
    SendResult,
)
from tests.fakes import FakeSecrets

APP = "sms-app-5Kq1"
SECRET = "sms-secret-9d2e"
SENDER = "0212345678"
MINJI = "+821012345678"
HANGUL_45 = "가" * 45  # 90 bytes in EUC-KR: the longest SMS of Hangul
AD = "(광고) 새봄마켓 02-1234-5678\n이번 주 회원 쿠폰 5,000원\n무료수신거부 080-123-4567"


@pytest.fixture
def fake() -> Iterator[NhnSmsFake]:
    with running_nhn_sms(APP, SECRET, [SENDER]) as server:
        yield server


@pytest.fixture
def secrets() -> FakeSecrets:
    return FakeSecrets(values={"nhn-sms-secret-key": SECRET})


@pytest.fixture
def sms(fake: NhnSmsFake, secrets: FakeSecrets) -> NhnSms:
    return NhnSms(APP, SENDER, secrets, api_url=fake.url, timeout=1.0)


def message(
    n: int = 1, text: str = "민지님, 주문하신 상품이 준비되었습니다.", to: str | None = None, **fields: Any
) -> Message:
    return Message(
        delivery_id=f"{n:032x}", channel="sms", to=to or number(n), text=text,
        metadata={"campaign_id": "order-ready", "run_id": "r1"}, **fields,
    )  # fmt: skip


def number(n: int) -> str:
    return f"+8210{n:08d}"


def test_a_text_of_90_bytes_is_one_sms_with_our_ids(fake: NhnSmsFake, sms: NhnSms) -> None:
    result = sms.send(message(1, HANGUL_45, to=MINJI))
    [request] = fake.sends()
    assert request.path == f"/sms/v3.0/appKeys/{APP}/sender/sms"
    assert request.headers["x-secret-key"] == SECRET
    assert request.body == {
        "body": HANGUL_45,
        "sendNo": SENDER,
        "recipientList": [{"recipientNo": "01012345678", "recipientGroupingKey": f"{1:032x}"}],
        "senderGroupingKey": "order-ready",
    }
    [(request_id, seq)] = fake.messages
    assert result == SendResult("accepted", provider_id=f"{request_id}/{seq}", code="0")
    held = fake.messages[(request_id, seq)]
    assert held.kind == "SMS" and held.shown_body == HANGUL_45 and not held.cut


def test_one_byte_more_is_an_lms_with_a_title_never_an_sms_the_phone_cuts(fake: NhnSmsFake, sms: NhnSms) -> None:
    text = "주문 안내\n" + "가" * 41 + "요"  # 9 + 1 + 84 bytes = 94: NHN would take it as an SMS and cut it
    assert len(text) < 255
    sms.send(message(1, text))
    [request] = fake.sends()
    assert request.path.endswith("/sender/mms")
    assert request.body["title"] == "주문 안내" and request.body["body"] == text
    [held] = fake.messages.values()
    assert held.kind == "LMS" and held.shown_body == text and held.shown_title == "주문 안내" and not held.cut


def test_ascii_counts_one_byte_a_character(fake: NhnSmsFake, sms: NhnSms) -> None:
    sms.send_many([message(1, "a" * 90), message(2, "a" * 91)])
    assert [r.path.rsplit("/", 1)[1] for r in fake.sends()] == ["sms", "mms"]


def test_the_lms_title_is_the_subject_else_the_configured_one_else_the_first_line_cut_at_40_bytes(
    fake: NhnSmsFake, secrets: FakeSecrets
) -> None:
    long = "\n" + "긴 첫 줄이 제목이 됩니다 마흔 바이트를 넘으면 잘립니다" + "\n" + "나" * 60
    plain = NhnSms(APP, SENDER, secrets, api_url=fake.url)
    titled = NhnSms(APP, SENDER, secrets, api_url=fake.url, lms_title="새봄마켓 주문 안내")
    plain.send(message(1, long))
    plain.send(message(2, long, subject="배송 안내"))
    titled.send(message(3, long))
    titles = [r.body["title"] for r in fake.sends()]
    assert titles == ["긴 첫 줄이 제목이 됩니다 마흔 바이트를", "배송 안내", "새봄마켓 주문 안내"]
    assert len(titles[0].encode("euc_kr")) == 38  # with " 넘" it would be 41: cut there, the blank dropped
    assert not any(m.cut for m in fake.messages.values())


def test_2000_bytes_is_the_longest_lms_and_longer_is_refused_before_any_call(fake: NhnSmsFake, sms: NhnSms) -> None:
    results = sms.send_many([message(1, "가" * 1000), message(2, "가" * 1000 + "a"), message(3, "😀 쿠폰")])
    assert isinstance(results[0], SendResult) and results[0].state == "accepted"
    assert isinstance(results[1], Rejected) and results[1].code == "message_too_long"
    assert "2,001 bytes" in str(results[1])
    assert isinstance(results[2], Rejected) and results[2].code == "not_euc_kr"
    assert len(fake.sends()) == 1 and [m.shown_body for m in fake.messages.values()] == ["가" * 1000]


def test_numbers_outside_korea_or_not_mobile_are_refused_before_any_call(fake: NhnSmsFake, sms: NhnSms) -> None:
    results = sms.send_many(
        [message(1, to="+14155550100"), message(2, to="+82212345678"), message(3, to="01012345678")]
    )
    assert all(isinstance(r, Rejected) and r.code == "invalid_number" for r in results)
    assert fake.requests == []
    assert sms.lookup(message(1, to="+14155550100")) == SendResult("absent", code="invalid_number")


def test_one_text_for_many_goes_1000_to_a_request_and_personal_texts_one_each(fake: NhnSmsFake, sms: NhnSms) -> None:
    shared = [message(n, "이번 주 회원 쿠폰이 도착했어요") for n in range(1, 2501)]
    personal = [message(n, f"고객{n}님, 쿠폰이 도착했어요") for n in range(3001, 3004)]
    results = sms.send_many(shared + personal)
    assert [len(r.body["recipientList"]) for r in fake.sends()] == [1000, 1000, 500, 1, 1, 1]
    assert all(isinstance(r, SendResult) and r.state == "accepted" for r in results)
    held = fake.by_grouping_key()
    assert len(held) == 2503 and all(len(v) == 1 for v in held.values())
    assert len({r.provider_id for r in results if isinstance(r, SendResult)}) == 2503


def test_advertising_goes_to_the_ad_endpoints_and_numbers_on_the_080_list_opted_out(
    fake: NhnSmsFake, sms: NhnSms
) -> None:
    fake.block("01000000002")
    long_ad = AD.replace("5,000원", "5,000원 " + "혜택 " * 30)
    results = sms.send_many([message(1, AD), message(2, AD), message(3, long_ad)])
    assert [r.path.rsplit("/", 1)[1] for r in fake.sends()] == ["ad-sms", "ad-mms"]
    assert isinstance(results[0], SendResult) and results[0].state == "accepted"
    assert isinstance(results[1], OptedOut) and results[1].code == "-6001"
    assert isinstance(results[2], SendResult)
    assert fake.sends()[1].body["title"] == "(광고) 새봄마켓 02-1234-5678"
    assert {m.advertising for m in fake.messages.values()} == {True}


def test_an_advertisement_without_the_free_opt_out_is_refused_by_nhn(fake: NhnSmsFake, sms: NhnSms) -> None:
    [refused] = sms.send_many([message(1, "(광고) 새봄마켓 쿠폰 5,000원")])
    assert isinstance(refused, Rejected) and not isinstance(refused, OptedOut) and refused.code == "-6003"
    assert fake.messages == {}


@pytest.mark.parametrize(
    ("setup", "kind", "code", "maybe_sent"),
    [
        ({"secret": "wrong"}, ChannelUnavailable, "401", False),
        ({"app": "other-app"}, ChannelUnavailable, "-1000", False),
        ({"sender": "0298765432"}, ChannelUnavailable, "-2312", False),
        ({"blocked": True}, ChannelUnavailable, "-2313", False),
        ({"fail": UNAVAILABLE}, ChannelUnavailable, "503", True),
        ({"fail": SYSTEM_ERROR}, ChannelUnavailable, "-9999", True),
    ],
)
def test_request_errors_become_the_ports_errors(
    fake: NhnSmsFake, setup: dict[str, Any], kind: type[ChannelError], code: str, maybe_sent: bool
) -> None:
    secrets = FakeSecrets(values={"nhn-sms-secret-key": setup.get("secret", SECRET)})
    sms = NhnSms(setup.get("app", APP), setup.get("sender", SENDER), secrets, api_url=fake.url, timeout=1.0)
    if "fail" in setup:
        fake.fail_next(setup["fail"])
    if setup.get("blocked"):
        fake.blocked_senders.add(SENDER)
    results = sms.send_many([message(1), message(2)])
    assert all(type(r) is kind and r.code == code for r in results), results
    assert all(isinstance(r, ChannelUnavailable) and r.maybe_sent is maybe_sent for r in results)
    assert fake.messages == {}


def test_a_throttle_stops_the_batch_and_says_how_long(fake: NhnSmsFake, sms: NhnSms) -> None:
    fake.fail_next(THROTTLED)
    results = sms.send_many([message(n, "같은 안내") for n in range(1, 1502)])
    assert len(fake.sends()) == 1  # the second request was never made
    assert all(isinstance(r, ChannelThrottled) and r.retry_after == 3.0 for r in results)


def test_an_outage_leaves_the_rest_unsent_not_unknown(fake: NhnSmsFake, sms: NhnSms) -> None:
    fake.fail_next(SYSTEM_ERROR)
    results = sms.send_many([message(1, "첫 안내"), message(2, "둘째 안내"), message(3, "셋째 안내")])
    assert len(fake.sends()) == 1
    assert isinstance(results[0], ChannelUnavailable) and results[0].maybe_sent
    assert all(isinstance(r, ChannelUnavailable) and not r.maybe_sent for r in results[1:])


def test_the_secret_key_is_read_at_each_request(fake: NhnSmsFake, secrets: FakeSecrets) -> None:
    sms = NhnSms(APP, SENDER, secrets, api_url=fake.url, timeout=1.0)
    secrets.values["nhn-sms-secret-key"] = "rotated"
    [refused] = sms.send_many([message(1)])
    assert isinstance(refused, ChannelUnavailable) and refused.code == "401"
    fake.secret_key = "rotated"
    [sent] = sms.send_many([message(2)])
    assert isinstance(sent, SendResult) and sent.state == "accepted"
    assert secrets.asked.count(("get", "nhn-sms-secret-key")) == 2


def test_a_send_that_timed_out_is_found_by_lookup_before_any_resend(fake: NhnSmsFake, sms: NhnSms) -> None:
    fake.delay_next(1.5)  # the fake sends, but answers after the client's 1 s timeout
    [lost] = sms.send_many([message(1, "가" * 60)])  # an LMS: found among the mms
    assert isinstance(lost, ChannelUnavailable) and lost.maybe_sent
    found = sms.lookup(message(1, "가" * 60))
    [(request_id, seq)] = fake.messages
    assert found == SendResult("accepted", provider_id=f"{request_id}/{seq}", code="msgStatus 2")
    [query, other] = [r for r in fake.requests if r.method == "GET"]
    assert (query.path, other.path) == (f"/sms/v3.0/appKeys/{APP}/sender/sms", f"/sms/v3.0/appKeys/{APP}/sender/mms")
    assert query.query["recipientGroupingKey"] == f"{1:032x}"
    assert query.query["startRequestDate"] < query.query["endRequestDate"]
    assert len(query.query["startRequestDate"]) == len("2026-06-03 12:00:00")
    fake.complete([(request_id, seq)])
    assert sms.lookup(message(1)) == SendResult("delivered", provider_id=f"{request_id}/{seq}", code="1000")


def test_lookup_follows_the_result_and_says_absent_for_nothing(fake: NhnSmsFake, sms: NhnSms) -> None:
    assert sms.lookup(message(9)) == SendResult("absent")
    sms.send_many([message(1), message(2)])
    fake.outcomes["01000000002"] = "3001"
    assert fake.deliver_pending() == 2
    one, two = sms.lookup(message(1)), sms.lookup(message(2))
    assert one is not None and one.state == "delivered" and one.code == "1000"
    assert two is not None and two.state == "failed" and two.code == "3001"


def test_a_lookup_that_fails_raises_for_the_caller_to_try_later(fake: NhnSmsFake, sms: NhnSms) -> None:
    fake.fail_next(UNAVAILABLE)
    with pytest.raises(ChannelUnavailable):
        sms.lookup(message(1))


def test_nothing_listening_is_unavailable_and_not_sent(secrets: FakeSecrets) -> None:
    sms = NhnSms(APP, SENDER, secrets, api_url=f"http://127.0.0.1:{free_port()}", timeout=1.0)
    [result] = sms.send_many([message(1)])
    assert isinstance(result, ChannelUnavailable) and result.maybe_sent is False


def test_form_and_cut() -> None:
    assert cut("가나다라", 5) == "가나" and cut("abc", 40) == "abc" and cut("가a나", 3) == "가a"
    made = form(message(1, "a" * 91), "제목")
    assert not isinstance(made, Rejected) and (made.path, made.title, made.kind) == ("mms", "제목", "LMS")
    with pytest.raises(ValueError, match="sends SMS, not email"):
        form(Message("d", "email", MINJI, "x"))

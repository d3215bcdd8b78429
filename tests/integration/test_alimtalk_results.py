"""AlimTalk results: NHN's webhook (the fake POSTs it into the real handler, in a Flask request context
with bootstrap pointed at the world's DuckDB warehouse, documents and bus) and polling. Delivered
results become events; 3019/3020 fail the claim and publish the delivery again, and deliver then
falls back to SMS with the policy run for SMS; a webhook seen twice, or a result reported by both
the webhook and a poll, adds nothing and sends nothing twice; signatures and bad bodies refused."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
import pytest

from devstack.fakes.nhn_alimtalk import FakeTemplate, NhnAlimTalkFake, running_nhn_alimtalk
from devstack.fakes.nhn_cloud import UNAVAILABLE
from functions.nhn_status import main as handler
from functions.nhn_status.main import nhn_status
from shared import bootstrap
from shared.config import ChannelSettings, Settings
from shared.messaging.alimtalk import AlimTalkResult, parse_hook
from shared.ports.secrets import SecretMissing
from shared.services.alimtalk_results import ResultPorts, poll_results
from shared.services.delivery_events import ReportError
from tests.alimtalk_world import APP, CODE, CONTENT, LATER, SECRET, SENDER, KakaoWorld
from tests.messaging_world import Person

SIGNATURE = "nhn-webhook-signature-5b"
URL = "https://hooks.shop.example/nhn-status"


def call(body: bytes, headers: Mapping[str, str], method: str = "POST") -> flask.Response:
    app = flask.Flask("test")
    with app.test_request_context("/", method=method, data=body, headers=dict(headers)):
        response = nhn_status(flask.request)
    assert isinstance(response, flask.Response)
    return response


@pytest.fixture
def fake() -> Iterator[NhnAlimTalkFake]:
    def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return call(body, headers).status_code

    templates = [FakeTemplate(CODE, "TSC03", CONTENT)]
    with running_nhn_alimtalk(APP, SECRET, SENDER, templates, webhook_url=URL, signature=SIGNATURE, post=post) as f:
        yield f


@pytest.fixture
def world(tmp_path: Path, fake: NhnAlimTalkFake, monkeypatch: pytest.MonkeyPatch) -> KakaoWorld:
    made = KakaoWorld(tmp_path)
    made.setup(fake)
    settings = Settings(project="p", channels=ChannelSettings(nhn_webhook_signature=SIGNATURE))
    monkeypatch.setattr(bootstrap, "settings", lambda: settings)
    monkeypatch.setattr(bootstrap, "warehouse", lambda: made.warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: made.documents)
    monkeypatch.setattr(bootstrap, "bus", lambda: made.bus)
    monkeypatch.setattr(handler, "_now", lambda: LATER + timedelta(minutes=1))
    return made


def sent(world: KakaoWorld, fake: NhnAlimTalkFake, names: dict[str, str | None]) -> dict[str, Person]:
    """People sent the AlimTalk (each name with its delivery result: None is 1000)."""
    people = {name: world.kakao_person(name) for name in names}
    world.plan_kakao()
    [data] = world.batches()
    assert world.deliver(data).sent == len(names)
    for name, code in names.items():
        if code is not None:
            fake.outcomes["0" + str(people[name].phone)[3:]] = code
    return people


def test_results_are_events_and_3019_3020_fall_back_to_sms(world: KakaoWorld, fake: NhnAlimTalkFake) -> None:
    people = sent(world, fake, {"ok": None, "notkakao": "3019", "blocked": "3020"})
    hook = fake.deliver_pending()
    assert hook is not None and hook.answered == 200
    assert hook.headers["X-Toast-Webhook-Signature"] == SIGNATURE
    assert world.events(people["ok"]) == [("alimtalk", "sent", "0"), ("alimtalk", "delivered", "1000")]
    assert world.events(people["notkakao"])[-1] == ("alimtalk", "failed", "3019")
    claim = world.claims()[world.delivery_id(people["notkakao"], "alimtalk")]
    assert (claim["state"], claim["code"]) == ("failed", "3019")
    *_, fallback = world.batches()
    assert sorted(json.loads(fallback)["delivery_ids"]) == sorted(
        world.delivery_id(people[n], "alimtalk") for n in ("notkakao", "blocked")
    )
    report = world.deliver(fallback, LATER + timedelta(minutes=2))
    assert report.fallbacks == 2 and report.sent == 2 and report.already == 2
    assert sorted(world.sms.sent_to()) == sorted([str(people["notkakao"].phone), str(people["blocked"].phone)])
    assert world.events(people["blocked"])[-1] == ("sms", "sent", None)
    assert world.events(people["ok"])[-1] == ("alimtalk", "delivered", "1000")  # no fallback for a delivery


def test_a_webhook_seen_twice_or_a_result_reported_again_sends_nothing_twice(
    world: KakaoWorld, fake: NhnAlimTalkFake
) -> None:
    people = sent(world, fake, {"ann": "3019", "bob": None})
    hook = fake.deliver_pending()
    assert hook is not None
    batches, events = len(world.batches()), world.rows("audiences.delivery_events")
    again = call(json.dumps(hook.body).encode(), hook.headers)
    assert again.status_code == 200 and len(world.batches()) == batches  # the same hooksId: nothing done
    assert world.rows("audiences.delivery_events") == events
    for data in world.batches()[1:]:
        world.deliver(data, LATER + timedelta(minutes=2))
    resent = fake.send_webhook(hook.body["hooks"])  # NHN sends the same results under a new hooksId
    assert resent.answered == 200 and len(world.batches()) == batches + 1
    for data in world.batches()[1:]:
        world.deliver(data, LATER + timedelta(minutes=3))
    assert world.sms.sent_to() == [people["ann"].phone]  # once
    ledger = world.events(people["ann"])
    assert ledger.count(("alimtalk", "failed", "3019")) == 1 and ledger.count(("sms", "sent", None)) == 1


def test_polling_records_what_no_webhook_brought(world: KakaoWorld, fake: NhnAlimTalkFake) -> None:
    fake.webhook_url = None  # the webhook is lost
    people = sent(world, fake, {"cho": None, "dan": "3020"})
    fake.deliver_pending()
    ports = ResultPorts(world.warehouse, world.documents, world.bus)
    early = poll_results(ports, world.kakao, LATER + timedelta(minutes=5))
    assert (early.pending, early.requests) == (0, 0)  # too soon: the webhook may still come
    polled = poll_results(ports, world.kakao, LATER + timedelta(minutes=15))
    assert (polled.pending, polled.requests) == (2, 1)
    assert (polled.outcome.events, polled.outcome.fallbacks) == (2, 1)
    assert world.events(people["cho"])[-1] == ("alimtalk", "delivered", "1000")
    assert world.events(people["dan"])[-1] == ("alimtalk", "failed", "3020")
    assert poll_results(ports, world.kakao, LATER + timedelta(minutes=20)).pending == 0


def test_polling_while_nhn_is_down_keeps_the_tick_going_and_asks_again_later(
    world: KakaoWorld, fake: NhnAlimTalkFake
) -> None:
    fake.webhook_url = None
    people = sent(world, fake, {"eun": None})
    fake.deliver_pending()
    ports = ResultPorts(world.warehouse, world.documents, world.bus)
    fake.fail_next(UNAVAILABLE)
    down = poll_results(ports, world.kakao, LATER + timedelta(minutes=15))  # returns: the tick goes on
    assert (down.pending, down.requests, down.outcome.events) == (1, 0, 0)
    assert world.events(people["eun"]) == [("alimtalk", "sent", "0")]
    again = poll_results(ports, world.kakao, LATER + timedelta(minutes=20))
    assert (again.requests, again.outcome.events) == (1, 1)
    assert world.events(people["eun"])[-1] == ("alimtalk", "delivered", "1000")


@pytest.mark.parametrize(
    ("headers", "body", "status", "answer"),
    [
        ({}, b"{}", 403, "forbidden: X-Toast-Webhook-Signature does not match"),
        ({"X-Toast-Webhook-Signature": "nhn-webhook-signature-5c"}, b"{}", 403, "forbidden"),
        ({"X-Toast-Webhook-Signature": SIGNATURE}, b"{not json", 400, "bad request: body: not JSON"),
        ({"X-Toast-Webhook-Signature": SIGNATURE}, b"[]", 400, "bad request: body: expected a JSON object"),
        ({"X-Toast-Webhook-Signature": SIGNATURE}, b'{"event": "MESSAGE_RESULT_UPDATE"}', 400,
         "bad request: hooksId: expected the webhook's id"),
        ({"X-Toast-Webhook-Signature": SIGNATURE},
         b'{"hooksId": "h", "event": "MESSAGE_RESULT_UPDATE", "hooks": [{"requestId": "r", "recipientSeq": "x"}]}',
         400, "bad request: hooks[0].recipientSeq: 'x' is not a sequence number"),
    ],
)  # fmt: skip
def test_requests_without_the_signature_or_unreadable_are_refused(
    world: KakaoWorld, headers: dict[str, str], body: bytes, status: int, answer: str
) -> None:
    response = call(body, headers)
    assert response.status_code == status and response.get_data(as_text=True).startswith(answer)
    assert world.rows("audiences.delivery_events") == [] and world.documents.list("alimtalk_hooks") == []


def test_only_post_and_a_configured_signature(world: KakaoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    assert call(b"", {}, "GET").status_code == 405
    monkeypatch.setattr(bootstrap, "settings", lambda: Settings(project="p"))

    def missing() -> str:
        raise SecretMissing("alimtalk-webhook-signature has no version")

    monkeypatch.setattr(bootstrap, "alimtalk_webhook_signature", lambda: missing)
    assert call(b"{}", {"X-Toast-Webhook-Signature": SIGNATURE}).status_code == 503


def test_parse_hook_reads_alimtalk_results_only() -> None:
    body: dict[str, Any] = {
        "hooksId": "h-9",
        "event": "MESSAGE_RESULT_UPDATE",
        "hooks": [
            {"kakaoMessageType": "ALIMTALK_NORMAL", "requestId": "r1", "recipientSeq": 2, "resultCode": "3019",
             "recipientGroupingKey": "a" * 32, "hookId": "k1"},
            {"kakaoMessageType": "BRAND_MESSAGE_NORMAL", "requestId": "r2", "recipientSeq": 1, "resultCode": "1000"},
            {"requestId": "r3", "recipientSeq": "4", "resultCode": 1000},
        ],
    }  # fmt: skip
    hooks_id, results = parse_hook(body)
    assert hooks_id == "h-9"
    assert results == (
        AlimTalkResult("a" * 32, "r1", 2, "3019", hook_id="k1"),
        AlimTalkResult(None, "r3", 4, "1000"),
    )
    assert [r.event for r in results] == ["failed", "delivered"] and results[0].falls_back
    assert parse_hook({"hooksId": "t", "event": "TEMPLATE_STATUS_UPDATE", "hooks": []}) == ("t", ())
    with pytest.raises(ReportError) as bad:
        hook = {"requestId": "r", "recipientSeq": 1, "resultCode": "1000; drop"}
        parse_hook({"hooksId": "h", "event": "MESSAGE_RESULT_UPDATE", "hooks": [hook]})
    assert bad.value.field == "hooks[0].resultCode"
    assert AlimTalkResult(None, "r", 1, "3005").event is None and AlimTalkResult(None, "r", 1, None).event is None
    assert AlimTalkResult(None, "r", 1, None, "CANCEL").event == "canceled"

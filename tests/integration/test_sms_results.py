"""NHN's SMS results over real HTTP: NhnSms.request_results against the fake SMS API v3.0 on a free
port, then the messaging tick's poll (shared/services/sms_results.py) on the DuckDB ledger with
deliveries deliver sent through the same fake. Delivered, failed with NHN's code, still pending
(nothing recorded), and a second poll that adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devstack.fakes.nhn_cloud import UNAVAILABLE
from devstack.fakes.nhn_sms import NhnSmsFake, running_nhn_sms
from shared.adapters.nhn_sms import NhnSms
from shared.ports.channels import ChannelUnavailable, Message, SendResult
from shared.services.deliver import BatchReport, deliver_batch
from shared.services.sms_results import poll_sms_results
from tests.fakes import FakeSecrets
from tests.messaging_world import NOON, Person, World

APP, SECRET, SENDER = "sms-app-7", "sms-secret-7", "0212345678"
LATER = NOON + timedelta(minutes=1)
POLL = LATER + timedelta(minutes=15)


@pytest.fixture
def fake() -> Iterator[NhnSmsFake]:
    with running_nhn_sms(APP, SECRET, [SENDER]) as server:
        yield server


@pytest.fixture
def sms(fake: NhnSmsFake) -> NhnSms:
    return NhnSms(APP, SENDER, FakeSecrets(values={"nhn-sms-secret-key": SECRET}), api_url=fake.url, timeout=1.0)


def message(n: int, text: str = "주문하신 상품이 준비되었습니다.") -> Message:
    return Message(delivery_id=f"{n:032x}", channel="sms", to=f"+8210{n:08d}", text=text)


def test_a_requests_recipients_by_grouping_key_in_the_state_lookup_reads(fake: NhnSmsFake, sms: NhnSms) -> None:
    sent = sms.send_many([message(1), message(2), message(3)])
    request_id = str(sent[0].provider_id).split("/")[0] if isinstance(sent[0], SendResult) else ""
    fake.complete([(request_id, 1)])
    fake.complete([(request_id, 2)], code="3001")
    results = sms.request_results(request_id)
    assert results == {
        f"{1:032x}": SendResult("delivered", provider_id=f"{request_id}/1", code="1000"),
        f"{2:032x}": SendResult("failed", provider_id=f"{request_id}/2", code="3001"),
        f"{3:032x}": SendResult("accepted", provider_id=f"{request_id}/3", code="msgStatus 2"),
    }
    [query] = [r for r in fake.requests if r.method == "GET"]  # an SMS request: the LMS list is never asked
    assert query.path == f"/sms/v3.0/appKeys/{APP}/sender/sms"
    assert (query.query["requestId"], query.query["pageNum"], query.query["pageSize"]) == (request_id, "1", "1000")
    assert sms.request_results("20260603120000unknown") == {}


def test_an_lms_request_is_found_in_the_lms_list_page_by_page(fake: NhnSmsFake, sms: NhnSms) -> None:
    long = "가" * 60  # 120 bytes: an LMS
    sent = sms.send_many([message(n, long) for n in range(1, 6)])
    request_id = str(sent[0].provider_id).split("/")[0] if isinstance(sent[0], SendResult) else ""
    fake.deliver_pending()
    results = sms.request_results(request_id, page_size=2)
    assert sorted(results) == [f"{n:032x}" for n in range(1, 6)]
    assert {r.state for r in results.values()} == {"delivered"}
    queries = [(r.path.rsplit("/", 1)[1], r.query.get("pageNum")) for r in fake.requests if r.method == "GET"]
    assert queries == [("sms", "1"), ("mms", "1"), ("mms", "2"), ("mms", "3")]


def test_a_query_nhn_fails_raises_for_the_poll_to_stop(fake: NhnSmsFake, sms: NhnSms) -> None:
    fake.fail_next(UNAVAILABLE)
    with pytest.raises(ChannelUnavailable):
        sms.request_results("20260603120000x")


# -- the tick's poll on DuckDB ------------------------------------------------------------------------


class NhnWorld(World):
    """The messaging world's advertising SMS campaign sent through NhnSms to the fake."""

    nhn: NhnSms

    def deliver(self, data: bytes, at: datetime = LATER) -> BatchReport:
        return deliver_batch(self.ports(channels={"sms": self.nhn, "email": self.email}), data, at)

    def seq(self, fake: NhnSmsFake, person: Person) -> tuple[str, int]:
        [held] = fake.by_grouping_key()[str(self.delivery(person, "sms")["delivery_id"])]
        return held.request_id, held.seq


@pytest.fixture
def world(tmp_path: Path, sms: NhnSms) -> NhnWorld:
    made = NhnWorld(tmp_path)
    made.nhn = sms
    return made


def test_the_tick_records_delivered_and_failed_once_and_leaves_pending_ones(world: NhnWorld, fake: NhnSmsFake) -> None:
    ann, bob, cho = (world.person(n) for n in ("ann", "bob", "cho"))
    world.plan()
    [data] = world.batches()
    assert world.deliver(data).sent == 3
    [request] = fake.sends()  # the same advertisement for all three: one ad-mms request
    assert request.path.endswith("/sender/ad-mms")
    fake.complete([world.seq(fake, ann)])
    fake.complete([world.seq(fake, bob)], code="3001")  # no subscriber
    polled = poll_sms_results(world.warehouse, world.nhn, POLL)
    assert (polled.pending, polled.requests, polled.events, polled.stopped) == (3, 1, 2, None)
    assert world.events(ann) == [("sms", "sent", "0"), ("sms", "delivered", "1000")]
    assert world.events(bob) == [("sms", "sent", "0"), ("sms", "failed", "3001")]
    assert world.events(cho) == [("sms", "sent", "0")]  # the carrier has not answered: nothing recorded
    rows = world.rows("audiences.delivery_events")
    again = poll_sms_results(world.warehouse, world.nhn, POLL + timedelta(minutes=5))
    assert (again.pending, again.requests, again.events) == (1, 1, 0)
    assert world.rows("audiences.delivery_events") == rows  # the second poll added nothing
    fake.deliver_pending()
    assert poll_sms_results(world.warehouse, world.nhn, POLL + timedelta(minutes=10)).events == 1
    assert world.events(cho)[-1] == ("sms", "delivered", "1000")
    assert poll_sms_results(world.warehouse, world.nhn, POLL + timedelta(minutes=15)).pending == 0

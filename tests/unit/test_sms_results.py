"""Polling NHN's SMS results (shared/services/sms_results.py) on the messaging world's DuckDB ledger:
SMS sent through a channel that names its messages as NHN does, results from a fake of the
service's own port. Only NHN's deliveries in the window are asked about, each request once; results
become events once, pending ones none; an outage stops the poll and the next one asks again."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from shared.ports.channels import ChannelUnavailable, Message, SendResult
from shared.services.deliver import deliver_batch
from shared.services.sms_results import poll_sms_results
from tests.fake_channels import FakeChannel
from tests.messaging_world import NOON, Person, World

LATER = NOON + timedelta(minutes=1)
POLL = LATER + timedelta(minutes=15)
US = "+14155550123"
REQ_A, REQ_B, REQ_C = "202606031201000001a1b2c3", "202606031201000002d4e5f6", "202606031201000003a7b8c9"


@dataclass
class NhnLikeSms(FakeChannel):
    """Accepts as FakeChannel does, naming a Korean number's message `<requestId>/<seq>` (the request
    its number is put in, `request_of`, else REQ_A) and any other Twilio's way (`SM` + 32 hex)."""

    request_of: dict[str, str] = field(default_factory=dict)
    provider_ids: dict[str, str] = field(default_factory=dict)  # delivery id -> provider id
    _seqs: dict[str, itertools.count[int]] = field(default_factory=dict)

    def send(self, message: Message) -> SendResult:
        super().send(message)
        if message.to.startswith("+82"):
            request = self.request_of.get(message.to, REQ_A)
            seq = next(self._seqs.setdefault(request, itertools.count(1)))
            provider = f"{request}/{seq}"
        else:
            provider = "SM" + message.delivery_id[:32].ljust(32, "0")
        self.provider_ids[message.delivery_id] = provider
        return SendResult("accepted", provider_id=provider, code="0")


@dataclass
class Results:
    """The SMS channel's results, as NHN would list them: request id -> delivery id -> state."""

    held: dict[str, dict[str, SendResult]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    down_after: int | None = None  # answers this many requests, then NHN is unavailable

    def request_results(self, request_id: str) -> Mapping[str, SendResult]:
        if self.down_after is not None and len(self.asked) >= self.down_after:
            raise ChannelUnavailable("NHN failed (503)", code="503", maybe_sent=True)
        self.asked.append(request_id)
        return dict(self.held.get(request_id, {}))


class SmsWorld(World):
    nhn: NhnLikeSms

    def send(self, *people: Person) -> None:
        self.plan()
        for data in self.batches():
            report = deliver_batch(self.ports(channels={"sms": self.nhn, "email": self.email}), data, LATER)
            assert report.sent == len(people) and report.complete

    def result(self, results: Results, person: Person, state: str, code: str | None) -> None:
        """NHN's state for the person's SMS, under the request that sent it."""
        delivery = str(self.delivery(person, "sms")["delivery_id"])
        provider = self.nhn.provider_ids[delivery]
        request = provider.rsplit("/", 1)[0]
        results.held.setdefault(request, {})[delivery] = SendResult(state, provider_id=provider, code=code)  # type: ignore[arg-type]

    def event_ids(self) -> list[str]:
        return sorted(str(r["event_id"]) for r in self.rows("audiences.delivery_events"))


@pytest.fixture
def world(tmp_path: Path) -> SmsWorld:
    made = SmsWorld(tmp_path)
    made.nhn = NhnLikeSms("sms")
    return made


def test_delivered_and_failed_become_events_pending_ones_none_and_twilios_are_never_asked(world: SmsWorld) -> None:
    ann, bob, cho = (world.person(n) for n in ("ann", "bob", "cho"))
    dan = world.person("dan", phone=US)
    world.send(ann, bob, cho, dan)
    results = Results()
    world.result(results, ann, "delivered", "1000")
    world.result(results, bob, "failed", "3001")
    world.result(results, cho, "accepted", "msgStatus 2")
    early = poll_sms_results(world.warehouse, results, LATER + timedelta(minutes=5))
    assert (early.pending, early.requests, results.asked) == (0, 0, [])  # too soon: the carrier may still answer
    polled = poll_sms_results(world.warehouse, results, POLL)
    assert (polled.pending, polled.requests, polled.events, polled.stopped) == (3, 1, 2, None)
    assert results.asked == [REQ_A]  # one query answers the request's three recipients; Twilio's SID not asked
    assert world.events(ann) == [("sms", "sent", "0"), ("sms", "delivered", "1000")]
    assert world.events(bob) == [("sms", "sent", "0"), ("sms", "failed", "3001")]
    assert world.events(cho) == [("sms", "sent", "0")] and world.events(dan) == [("sms", "sent", "0")]
    [delivered] = [r for r in world.rows("audiences.delivery_events") if r["event"] == "delivered"]
    assert delivered["provider_id"] == world.nhn.provider_ids[str(world.delivery(ann, "sms")["delivery_id"])]
    again = poll_sms_results(world.warehouse, results, POLL + timedelta(minutes=5))
    assert (again.pending, again.requests, again.events) == (1, 1, 0)  # cho only: still pending
    assert poll_sms_results(world.warehouse, results, LATER + timedelta(days=3, minutes=1)).pending == 0  # too old
    world.result(results, cho, "delivered", "1000")
    assert poll_sms_results(world.warehouse, results, POLL + timedelta(minutes=10)).events == 1
    last = poll_sms_results(world.warehouse, results, POLL + timedelta(minutes=15))
    assert (last.pending, last.requests) == (0, 0) and results.asked == [REQ_A] * 3


def test_a_result_seen_by_two_overlapping_polls_is_one_event(world: SmsWorld) -> None:
    ann = world.person("ann")
    world.send(ann)
    inner = Results()
    world.result(inner, ann, "failed", "3006")

    class Overlapping(Results):
        """Answers as `inner` does, after another tick's poll has read and recorded the same."""

        def request_results(self, request_id: str) -> Mapping[str, SendResult]:
            assert poll_sms_results(world.warehouse, inner, POLL).events == 1
            return inner.request_results(request_id)

    outer = poll_sms_results(world.warehouse, Overlapping(), POLL)
    assert outer.pending == 1
    assert world.events(ann) == [("sms", "sent", "0"), ("sms", "failed", "3006")]
    failed = [r["event_id"] for r in world.rows("audiences.delivery_events") if r["event"] == "failed"]
    assert len(set(failed)) == 1  # both wrote the same id: readers count one


def test_an_outage_stops_the_poll_keeps_what_it_found_and_the_next_tick_asks_again(world: SmsWorld) -> None:
    people = [world.person(n) for n in ("ann", "bob", "cho")]
    world.nhn.request_of = {str(people[1].phone): REQ_B, str(people[2].phone): REQ_C}
    world.send(*people)
    results = Results(down_after=1)
    for person in people:
        world.result(results, person, "delivered", "1000")
    polled = poll_sms_results(world.warehouse, results, POLL)
    assert (polled.pending, polled.requests, polled.events) == (3, 1, 1)
    assert polled.stopped == "NHN failed (503)" and results.asked == [REQ_A]
    results.down_after = None
    later = poll_sms_results(world.warehouse, results, POLL + timedelta(minutes=5), max_requests=1)
    assert (later.pending, later.requests, later.events) == (2, 1, 1) and results.asked == [REQ_A, REQ_B]
    rest = poll_sms_results(world.warehouse, results, POLL + timedelta(minutes=10))
    assert (rest.pending, rest.requests, rest.events) == (1, 1, 1) and results.asked[-1] == REQ_C
    assert all(world.events(p)[-1] == ("sms", "delivered", "1000") for p in people)


def test_results_of_deliveries_not_pending_are_left_alone(world: SmsWorld) -> None:
    """A request's list may name deliveries already settled, or not ours: only the pending ones count."""
    ann, bob = world.person("ann"), world.person("bob")
    world.send(ann, bob)
    results = Results()
    world.result(results, ann, "delivered", "1000")
    assert poll_sms_results(world.warehouse, results, POLL, limit=1).events == 1
    results.held[REQ_A]["f" * 32] = SendResult("delivered", provider_id=f"{REQ_A}/9", code="1000")
    world.result(results, ann, "failed", "3001")  # a changed answer about a settled delivery is no new event
    world.result(results, bob, "delivered", "1000")
    before = world.event_ids()
    polled = poll_sms_results(world.warehouse, results, POLL + timedelta(minutes=5))
    assert (polled.pending, polled.events, polled.unmatched) == (1, 1, 0)
    assert len(world.event_ids()) == len(before) + 1
    assert world.events(ann)[-1] == ("sms", "delivered", "1000") and world.events(bob)[-1][1] == "delivered"

"""Planning a campaign run on DuckDB: the funnel with every reason, fallbacks planned on the next
channel, batches on the sends topic, a retried plan writing and publishing nothing twice, run ids
per schedule slot, holds released at their time (08:00 in Seoul after the night), dry runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.messaging.campaigns import parse_campaign
from shared.messaging.ledger import Event, Recipient, batch_key, delivery_id, event_row, parse_batch
from shared.ports import TransientError
from shared.privacy.subjects import Identifier
from shared.privacy.suppression import suppress
from shared.services.deliver import deliver_batch
from shared.services.send_messages import release_held, run_id_for
from tests.builders import SALT
from tests.messaging_world import CAMPAIGN, NOON, SEGMENT, SITE, World, seoul


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def sent_before(world: World, name: str, at: datetime, times: int, kind: str = "advertising") -> None:
    """`times` messages of another campaign sent to the person at `at`."""
    person = world.people[name]
    for n in range(times):
        about = Recipient(
            delivery_id("earlier", f"r{n}", person.customer_id, "sms"), "earlier", f"r{n}", SITE,
            person.customer_id, "sms", person.phone, kind, "send", "eligible",
        )  # fmt: skip
        row = {name: getattr(about, name) for name in ("delivery_id", "campaign_id", "run_id", "site_id",
               "customer_id", "channel", "address", "kind", "outcome", "reason")}  # fmt: skip
        row |= {"dry_run": False, "planned_at": at.isoformat()}
        assert not world.warehouse.insert_rows("audiences.deliveries", [row], [about.delivery_id]).errors
        event = event_row(about, Event.SENT, at)
        assert not world.warehouse.insert_rows("audiences.delivery_events", [event], [event["event_id"]]).errors


def planted(world: World) -> None:
    """One member for each way the plan can go; ivy is not in the segment."""
    w = world
    w.person("ann", given="안나")
    w.person("bob", phone=None)  # no number: falls back to e-mail
    w.person("cat", marketing=None)  # never decided
    w.person("dan", marketing=False)  # refused
    w.person("eve")
    w.person("fay", sms_subscribed=False)  # unsubscribed the number: e-mail
    w.person("gus", phone=None, email=None)  # no address on either channel
    w.person("hal")  # capped: two advertising messages this week
    w.person("ivy", member=False)
    w.person("jay", sms_subscribed=None)  # the number never subscribed: e-mail
    kim = w.person("kim")  # erased once; an identifier of hers came back
    w.commit()
    suppress(w.warehouse, SALT, SITE, {Identifier("phone", str(kim.phone)): "erase-kim"}, NOON - timedelta(days=5))
    w.withdraw(w.people["eve"], NOON - timedelta(days=2))
    sent_before(w, "hal", NOON - timedelta(days=3), 2)
    sent_before(w, "jay", NOON - timedelta(days=10), 2)  # outside the 7-day window: not capped
    sent_before(w, "ann", NOON - timedelta(days=1), 3, kind="informational")  # never counted


def test_the_plan_writes_one_row_per_recipient_and_channel_with_its_reason(world: World) -> None:
    planted(world)
    report = world.plan()

    assert report.funnel.planned == {
        ("sms", False, "send", "eligible"): 1,  # ann
        ("sms", False, "skip", "no_address"): 2,  # bob, gus
        ("sms", False, "skip", "no_marketing_consent"): 2,  # cat, dan
        ("sms", False, "skip", "marketing_withdrawn"): 1,  # eve
        ("sms", False, "skip", "unsubscribed"): 1,  # fay
        ("sms", False, "skip", "frequency_capped"): 1,  # hal
        ("sms", False, "skip", "no_subscription"): 1,  # jay
        ("sms", False, "skip", "erased"): 1,  # kim
        ("email", True, "send", "eligible"): 3,  # bob, fay, jay
        ("email", True, "skip", "no_address"): 1,  # gus
    }
    assert report.funnel.audience == 10 and report.written == 14
    assert report.funnel.outcomes() == {"send": 4, "skip": 10}
    status = report.status(NOON)
    assert status["state"] == "planned" and status["audience"] == 10 and status["reasons"]["eligible"] == 4
    assert world.delivery(world.people["kim"], "sms")["address"] is None  # no trace of an erased address

    bob_sms, bob_email = world.delivery(world.people["bob"], "sms"), world.delivery(world.people["bob"], "email")
    assert bob_email["fallback_of"] == bob_sms["delivery_id"] and bob_sms["fallback_of"] is None
    assert bob_email["address"] == "bob@example.com" and bob_email["consent_event_id"] is not None
    ann = world.delivery(world.people["ann"], "sms")
    assert ann["delivery_id"] == delivery_id(CAMPAIGN, "run-1", "c_ann", "sms")
    assert ann["address"] == world.people["ann"].phone and ann["subscription_event_id"] is not None
    assert ann["kind"] == "advertising" and ann["batch"] == 1 and ann["dry_run"] is False
    assert all(r["batch"] is None for r in world.rows("audiences.deliveries") if r["outcome"] != "send")

    [message] = world.batches()
    batch = parse_batch(message)
    assert batch.key == batch_key(CAMPAIGN, "run-1", "1") and report.batches == report.published == 1
    rows = [r for r in world.rows("audiences.deliveries") if r["campaign_id"] == CAMPAIGN]
    sends = {r["delivery_id"] for r in rows if r["outcome"] == "send"}
    assert set(batch.delivery_ids) == sends and list(batch.delivery_ids) == sorted(sends)
    assert world.bus.published[0][2] == {"campaign_id": CAMPAIGN}


def test_a_rerun_of_the_plan_writes_and_publishes_nothing_new(world: World) -> None:
    planted(world)
    first = world.plan(batch_size=1)
    rows = world.rows("audiences.deliveries")
    assert first.batches == first.published == 4 and len(world.batches()) == 4

    again = world.plan(batch_size=1)

    assert again.written == 0 and again.published == 0 and again.batches == 4
    assert world.rows("audiences.deliveries") == rows and len(world.batches()) == 4
    assert again.funnel == first.funnel


@dataclass
class FlakyBus:
    """Acknowledges `ok` messages, then fails like an unreachable Pub/Sub."""

    ok: int
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, attributes: Any) -> str:
        if len(self.published) >= self.ok:
            raise TransientError("pubsub unreachable")
        self.published.append((topic, data, dict(attributes)))
        return str(len(self.published))


def test_a_plan_retried_after_an_outage_publishes_only_the_batches_it_had_not(world: World) -> None:
    planted(world)
    world.bus = FlakyBus(ok=3)  # type: ignore[assignment]
    with pytest.raises(TransientError):
        world.plan(batch_size=1)
    assert len(world.batches()) == 3

    world.bus.ok = 10  # type: ignore[attr-defined]
    report = world.plan(batch_size=1)

    assert report.written == 0 and report.published == 1
    keys = [parse_batch(data).key for data in world.batches()]
    assert sorted(keys) == sorted(batch_key(CAMPAIGN, "run-1", str(n)) for n in range(1, 5)) and len(set(keys)) == 4


def test_a_disabled_campaign_plans_nothing(world: World) -> None:
    world.person("ann")
    world.edit("campaigns", CAMPAIGN, enabled=False)
    report = world.plan()
    assert report.state == "disabled" and report.written == 0
    assert world.rows("audiences.deliveries") == [] and world.bus.published == []


def test_a_dry_run_writes_its_rows_renders_a_preview_and_sends_nothing(world: World) -> None:
    world.person("ann", given="안나")
    world.person("bob", phone=None, given="보배")
    world.person("gus", phone=None, email=None)
    world.edit("campaigns", CAMPAIGN, dry_run=True)

    report = world.plan(preview=5)

    assert report.state == "dry_run" and report.published == 0 and world.bus.published == []
    assert report.funnel.outcomes() == {"send": 2, "skip": 3}  # gus on both channels
    assert all(r["dry_run"] for r in world.rows("audiences.deliveries"))
    [path] = report.outbox
    preview = json.loads(Path(path).read_text())
    by_channel = {m["channel"]: m for m in preview["messages"]}
    sms, email = by_channel["sms"], by_channel["email"]
    assert sms["to"] == world.people["ann"].phone
    assert sms["text"].startswith("(광고) 홍길동상회 02-1234-5678\n안나님, 60일 만이에요!")
    assert sms["text"].endswith("무료수신거부 080-123-4567")
    assert email["to"] == "bob@example.com" and email["subject"] == "(광고) 보배님, 새 혜택이 도착했어요"
    assert email["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email["headers"]["List-Unsubscribe"].startswith("<https://prefs.shop.example/unsubscribe?t=")
    assert world.sms.calls == [] and world.email.calls == []


def test_a_dry_run_needs_an_outbox(world: World) -> None:
    campaign, template, policy = world.loaded()
    from shared.services.send_messages import plan_run

    with pytest.raises(ValueError, match="outbox"):
        plan_run(world.warehouse, world.documents, world.bus, campaign, template, policy, NOON, "r", salt="s",
                 dry_run=True)  # fmt: skip


def test_run_ids_name_the_schedule_slot_the_send_at_or_the_request() -> None:
    doc = {"segment_id": SEGMENT, "template_id": "t", "kind": "informational", "channels": ["email"]}
    weekly = parse_campaign("c", {**doc, "schedule": {"cron": "0 10 * * MON", "timezone": "Asia/Seoul"}})
    monday = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # 10:00 on Monday in Seoul
    assert run_id_for(weekly, monday, "send_messages-1") == "cron-20260601T0100Z"
    # the same slot's job delivered twice, minutes or hours apart, is one run
    assert run_id_for(weekly, monday + timedelta(minutes=7), "send_messages-2") == "cron-20260601T0100Z"
    assert run_id_for(weekly, monday + timedelta(days=6), "send_messages-3") == "cron-20260601T0100Z"
    assert run_id_for(weekly, monday + timedelta(days=7), "send_messages-4") == "cron-20260608T0100Z"
    once = parse_campaign("c", {**doc, "send_at": "2026-06-01T10:00:00+09:00"})
    assert run_id_for(once, monday + timedelta(hours=3), "send_messages-5") == "at-20260601T010000Z"
    by_hand = parse_campaign("c", doc)
    assert run_id_for(by_hand, monday, "send_messages-6") == "send_messages-6"


def test_night_holds_are_released_at_eight_in_seoul_and_then_sent(world: World) -> None:
    ann = world.person("ann")  # no night consent: held
    kim = world.person("kim", night=True)
    report = world.plan(at=seoul(22))

    assert report.funnel.planned == {
        ("sms", False, "hold", "night_not_allowed"): 1,
        ("sms", False, "send", "eligible"): 1,
    }
    held = world.delivery(ann, "sms")
    assert held["release_at"] == seoul(8, day=4) and held["night_consent_event_id"] is None
    assert world.delivery(kim, "sms")["night_consent_event_id"] is not None
    [night_batch] = world.batches()
    deliver_batch(world.ports(), night_batch, seoul(22, 1))
    assert world.sms.sent_to() == [kim.phone]

    early = release_held(world.warehouse, world.bus, seoul(7, 59, day=4))
    assert early.released == 0 and len(world.batches()) == 1

    at_eight = release_held(world.warehouse, world.bus, seoul(8, day=4))
    assert at_eight.released == 1 and at_eight.batches == 1
    released = parse_batch(world.batches()[-1])
    assert released.delivery_ids == (held["delivery_id"],)
    deliver_batch(world.ports(), world.batches()[-1], seoul(8, day=4))
    assert world.sms.sent_to() == [kim.phone, ann.phone]
    assert world.events(ann) == [("sms", "released", None), ("sms", "sent", None)]

    assert release_held(world.warehouse, world.bus, seoul(8, 5, day=4)).released == 0
    assert len(world.batches()) == 2


def test_a_hold_found_too_late_is_skipped_not_sent(world: World) -> None:
    ann = world.person("ann")
    world.plan(at=seoul(22))
    late = release_held(world.warehouse, world.bus, seoul(15, day=4))  # 7 hours after 08:00
    assert late.expired == 1 and late.released == 0 and world.batches() == []
    assert world.events(ann) == [("sms", "skipped", "hold_expired")]
    assert release_held(world.warehouse, world.bus, seoul(15, 5, day=4)).expired == 0


def test_dry_run_holds_are_never_released(world: World) -> None:
    world.person("ann")
    world.edit("campaigns", CAMPAIGN, dry_run=True)
    world.plan(at=seoul(22))
    assert release_held(world.warehouse, world.bus, seoul(8, day=4)).released == 0


def test_quiet_hours_hold_until_they_end(world: World) -> None:
    ann = world.person("ann")
    policy = world.documents.get("messaging", "policy") or {}
    world.edit("messaging", "policy", quiet_hours={**policy.get("quiet_hours", {}), "start": "11:00", "end": "13:00"})
    report = world.plan()
    assert report.funnel.planned == {("sms", False, "hold", "quiet_hours"): 1}
    assert world.delivery(ann, "sms")["release_at"] == seoul(13)
    assert release_held(world.warehouse, world.bus, seoul(13)).released == 1

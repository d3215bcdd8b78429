"""Delivering planned batches on DuckDB with fake channels: each message at most once under
redeliveries (one after another, and a storm of three concurrent deliveries of every batch), the
policy decided again at send time (a withdrawal, an unsubscribe, the night), fallback along the
chain with the policy run again for the next channel, opt-outs into the consent ledger, timeouts
looked up before any resend, throttling and outages, and the rate limiter."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from shared.messaging.ledger import BATCHES, CLAIMS, Batch, Event, Recipient, event_row, parse_batch
from shared.services import consent
from shared.services.deliver import (
    BatchReport,
    DeliveryIncomplete,
    RateLimiter,
    Recorded,
    claim_id,
    deliver_batch,
    record_report,
)
from shared.services.delivery_events import twilio_report
from tests.builders import SALT
from tests.fake_channels import DOWN, LOST, OPT_OUT, REJECT, THROTTLE, TIMEOUT
from tests.messaging_world import CAMPAIGN, NOON, SITE, World, seoul

LATER = NOON + timedelta(minutes=1)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def deliver_all(world: World, at: object = LATER, **ports: object) -> list[BatchReport]:
    """Every published batch once, in order."""
    return [deliver_batch(world.ports(**ports), data, at) for data in world.batches()]  # type: ignore[arg-type]


def until_done(world: World, data: bytes, at: object = LATER, tries: int = 500) -> int:
    """Deliver a batch as Pub/Sub would: again, after a pause, while it says it is incomplete;
    return the tries it took."""
    for attempt in range(1, tries + 1):
        try:
            deliver_batch(world.ports(), data, at)  # type: ignore[arg-type]
        except DeliveryIncomplete:
            time.sleep(0.005)
            continue
        return attempt
    raise AssertionError("the batch never completed")


def test_a_batch_sends_each_planned_message_and_records_it(world: World) -> None:
    ann = world.person("ann", given="안나")
    bob = world.person("bob", phone=None)
    world.plan()
    [report] = deliver_all(world)

    assert report.sent == 2 and report.complete and report.counts()["already"] == 0
    [sms] = world.sms.accepted
    assert sms.to == ann.phone and sms.text.startswith("(광고) 홍길동상회 02-1234-5678\n안나님")
    assert sms.delivery_id == world.delivery(ann, "sms")["delivery_id"]
    assert sms.metadata == {"campaign_id": CAMPAIGN, "run_id": "run-1"}
    [mail] = world.email.accepted
    assert mail.to == bob.email and mail.subject is not None and mail.subject.startswith("(광고) ")
    assert "List-Unsubscribe" in mail.headers and mail.html is not None and "수신거부" in mail.html
    assert world.events(ann) == [("sms", "sent", None)] and world.events(bob) == [("email", "sent", None)]
    claim = world.documents.get(CLAIMS, sms.delivery_id)
    assert claim is not None and claim["state"] == "sent" and claim["provider_id"] == f"sms-{sms.delivery_id[:8]}"
    assert set(claim) >= {"at", "attempt", "campaign_id", "run_id", "channel"} and "to" not in claim


def test_the_message_takes_the_latest_name_that_is_not_blank(world: World) -> None:
    ann = world.person("ann", given="안나")
    stamp = "2026-05-20T00:00:00+00:00"
    later = {"event_id": "u-ann-2", "site_id": SITE, "event_date": stamp[:10], "event_ts": stamp,
             "collected_at": stamp, "member_id": ann.member, "given_name": " ", "source": "import"}  # fmt: skip
    world.queue("raw.user", later)  # a later import left the name blank
    world.plan()
    deliver_all(world)
    [sms] = world.sms.accepted
    assert sms.text.split("\n")[1].startswith("안나님")


def test_a_redelivered_batch_sends_nothing_twice(world: World) -> None:
    for name in ("ann", "bob", "cat"):
        world.person(name)
    world.plan()
    [data] = world.batches()
    deliver_batch(world.ports(), data, LATER)

    again = deliver_batch(world.ports(), data, LATER + timedelta(minutes=5))
    assert again.done_before and again.sent == 0
    key = parse_batch(data).key
    world.documents.delete(BATCHES, key)  # as if the first delivery died before marking the batch done
    third = deliver_batch(world.ports(), data, LATER + timedelta(minutes=6))

    assert third.already == 3 and third.sent == 0
    assert len(world.sms.calls) == 3 and world.sms.duplicates() == {}
    assert sorted(e for _, e, _ in world.events()) == ["sent"] * 3  # events written again are one each


def test_the_redelivery_storm_sends_every_message_exactly_once(world: World) -> None:
    people = [world.person(f"p{n:03d}", email=None if n % 5 == 0 else "") for n in range(120)]
    for n in range(0, 120, 5):  # a fifth have no e-mail; of those, every other has no sms subscription
        if n % 10 == 0:
            world.queued["raw.subscription"] = [
                r for r in world.queued["raw.subscription"] if r["address"] != people[n].phone
            ]
    report = world.plan(batch_size=10)
    sends = report.funnel.outcomes()["send"]
    batches = world.batches()
    assert len(batches) == report.batches == -(-sends // 10) and sends == 108

    world.sms.delay = world.email.delay = 0.005  # a send takes a while, and a batch's three copies
    starts = {data: threading.Barrier(3) for data in batches}  # start together: they meet each other's claims

    def redelivered(data: bytes) -> int:
        starts[data].wait(timeout=60)
        return until_done(world, data)

    storm = [data for data in batches for _ in range(3)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        tries = list(pool.map(redelivered, storm))

    assert world.sms.duplicates() == {} and world.email.duplicates() == {}
    assert len(world.sms.calls) + len(world.email.calls) == sends  # not one call more
    assert len(world.sms.accepted) + len(world.email.accepted) == sends
    events = world.events()
    assert sum(1 for _, e, _ in events if e == "sent") == sends
    assert max(tries) > 1, "no copy met another's claim: the storm did not overlap"


def test_a_withdrawal_between_plan_and_send_wins(world: World) -> None:
    ann = world.person("ann")
    bob = world.person("bob")
    world.plan()
    world.withdraw(ann, NOON + timedelta(seconds=30))
    [report] = deliver_all(world)

    assert world.sms.sent_to() == [bob.phone] and report.skipped == 1
    assert world.events(ann) == [("sms", "skipped", "marketing_withdrawn")]  # the person's refusal: no fallback
    assert world.email.calls == []


def test_an_unsubscribe_between_plan_and_send_falls_back_to_the_next_channel(world: World) -> None:
    ann = world.person("ann")
    world.plan()
    world.unsubscribe(ann, "sms", NOON + timedelta(seconds=30))
    [report] = deliver_all(world)

    assert world.sms.calls == [] and world.email.sent_to() == [ann.email] and report.fallbacks == 1
    assert world.events(ann) == [("sms", "skipped", "unsubscribed"), ("email", "sent", None)]
    fallback = world.delivery(ann, "email")
    assert fallback["fallback_of"] == world.delivery(ann, "sms")["delivery_id"]
    assert (fallback["outcome"], fallback["reason"], fallback["planned_at"]) == ("send", "eligible", LATER)


def test_a_rejected_email_falls_back_to_sms_with_the_whole_policy_again(world: World) -> None:
    world.edit("campaigns", CAMPAIGN, channels=["email", "sms"])
    ann = world.person("ann")  # e-mail bounces; sms allowed: sent by sms
    bob = world.person("bob", sms_subscribed=False)  # e-mail bounces; the number unsubscribed: nothing
    for person in (ann, bob):
        world.email.script[str(person.email)] = [REJECT]
    world.plan()
    [report] = deliver_all(world)

    assert world.email.accepted == [] and world.sms.sent_to() == [ann.phone]
    assert world.events(ann) == [("email", "bounced", "550 5.1.1"), ("sms", "sent", None)]
    assert world.events(bob) == [("email", "bounced", "550 5.1.1"), ("sms", "skipped", "unsubscribed")]
    assert report.fallbacks == 2 and report.failed == 2 and report.sent == 1
    ann_sms = world.delivery(ann, "sms")
    assert ann_sms["fallback_of"] == world.delivery(ann, "email")["delivery_id"] and ann_sms["address"] == ann.phone
    # a hard bounce unsubscribes the address through the consent ledger
    bounced = [r for r in world.rows("raw.subscription") if r["source"] == "bounce"]
    assert {r["address"] for r in bounced} == {ann.email, bob.email} and not any(r["subscribed"] for r in bounced)


def test_the_cap_counts_what_other_campaigns_sent_since_the_plan(world: World) -> None:
    ann = world.person("ann")
    bob = world.person("bob")
    world.plan()
    for n in range(2):  # two advertising messages of another campaign reach ann after the plan
        other = Recipient(
            f"{n:032x}", "other", "r", SITE, ann.customer_id, "email", ann.email, "advertising", "send", "eligible"
        )
        row = {k: getattr(other, k) for k in ("delivery_id", "campaign_id", "run_id", "site_id", "customer_id",
               "channel", "address", "kind", "outcome", "reason")} | {"dry_run": False, "planned_at": NOON}  # fmt: skip
        assert not world.warehouse.insert_rows("audiences.deliveries", [row], [other.delivery_id]).errors
        event = event_row(other, Event.SENT, NOON + timedelta(seconds=10))
        assert not world.warehouse.insert_rows("audiences.delivery_events", [event], [event["event_id"]]).errors
    [report] = deliver_all(world)

    assert world.sms.sent_to() == [bob.phone] and report.skipped == 1 and world.email.calls == []
    assert [e for e in world.events(ann) if e[0] == "sms"] == [("sms", "skipped", "frequency_capped")]


def test_an_opted_out_number_is_recorded_in_the_consent_ledger_and_e_mail_tried(world: World) -> None:
    ann = world.person("ann")
    world.sms.script[str(ann.phone)] = [OPT_OUT]
    world.plan()
    [report] = deliver_all(world)

    assert report.opted_out == 1 and world.email.sent_to() == [ann.email]
    assert world.events(ann) == [("sms", "opted_out", "21610"), ("email", "sent", None)]
    [stop] = [r for r in world.rows("raw.subscription") if r["source"] == "provider_opt_out"]
    assert (stop["channel"], stop["address"], stop["subscribed"], stop["reason"]) == (
        "sms",
        ann.phone,
        False,
        "sms 21610",
    )
    [gate] = consent.eligible_audience(
        world.warehouse, SITE, "marketing", "sms", LATER, SALT, customer_ids=[ann.customer_id]
    )
    assert gate.reason == "unsubscribed" and gate.subscription_event_id == stop["subscription_event_id"]


def test_a_timed_out_send_is_looked_up_and_not_sent_again(world: World) -> None:
    ann = world.person("ann")
    world.sms.script[str(ann.phone)] = [TIMEOUT]  # accepted, but the answer was lost
    world.plan()
    [data] = world.batches()
    with pytest.raises(DeliveryIncomplete) as stopped:
        deliver_batch(world.ports(), data, LATER)
    assert stopped.value.report.stopped is not None and world.events(ann) == [("sms", "sending", "timeout")]
    delivery = world.delivery(ann, "sms")["delivery_id"]
    assert (world.documents.get(CLAIMS, delivery) or {})["state"] == "lookup"

    report = deliver_batch(world.ports(), data, LATER + timedelta(minutes=1))

    assert report.sent == 1 and world.sms.lookups == [delivery] and len(world.sms.calls) == 1
    assert world.events(ann) == [("sms", "sending", "timeout"), ("sms", "sent", None)]


def test_a_send_the_provider_never_got_is_sent_again_after_its_lookup(world: World) -> None:
    ann = world.person("ann")
    world.sms.script[str(ann.phone)] = [LOST]
    world.plan()
    [data] = world.batches()
    with pytest.raises(DeliveryIncomplete):
        deliver_batch(world.ports(), data, LATER)

    deliver_batch(world.ports(), data, LATER + timedelta(minutes=1))

    delivery = world.delivery(ann, "sms")["delivery_id"]
    assert len(world.sms.calls) == 2 and len(world.sms.accepted) == 1 and world.sms.lookups == [delivery]
    assert (world.documents.get(CLAIMS, delivery) or {})["state"] == "absent"
    assert (world.documents.get(CLAIMS, claim_id(delivery, 1)) or {})["state"] == "sent"


def test_a_channel_that_cannot_look_up_leaves_the_delivery_unknown_never_resent(world: World) -> None:
    bob = world.person("bob", phone=None)
    world.email.can_lookup = False  # SMTP
    world.email.script[str(bob.email)] = [LOST]
    world.plan()
    [data] = world.batches()
    with pytest.raises(DeliveryIncomplete):
        deliver_batch(world.ports(), data, LATER)

    report = deliver_batch(world.ports(), data, LATER + timedelta(minutes=1))
    deliver_batch(world.ports(), data, LATER + timedelta(minutes=2))

    assert report.unknown == 1 and len(world.email.calls) == 1
    assert world.events(bob) == [("email", "sending", "timeout"), ("email", "unknown", None)]


def test_a_lookup_that_fails_is_tried_again_later(world: World) -> None:
    ann = world.person("ann")
    world.sms.script[str(ann.phone)] = [TIMEOUT]
    world.plan()
    [data] = world.batches()
    world.sms.lookup_down = True
    for minute in (1, 2):
        with pytest.raises(DeliveryIncomplete) as left:
            deliver_batch(world.ports(), data, LATER + timedelta(minutes=minute))
    assert left.value.report.lookups == 1
    world.sms.lookup_down = False
    assert deliver_batch(world.ports(), data, LATER + timedelta(minutes=3)).sent == 1
    assert len(world.sms.calls) == 1


def test_a_claim_left_sending_is_looked_up_only_once_it_is_stale(world: World) -> None:
    ann = world.person("ann")
    world.plan()
    [data] = world.batches()
    delivery = world.delivery(ann, "sms")["delivery_id"]
    world.documents.create(CLAIMS, delivery, {"state": "sending", "at": LATER, "attempt": 0})  # a worker at it

    with pytest.raises(DeliveryIncomplete) as busy:
        deliver_batch(world.ports(), data, LATER + timedelta(minutes=9))
    assert busy.value.report.busy == 1 and world.sms.calls == [] and world.sms.lookups == []

    report = deliver_batch(world.ports(), data, LATER + timedelta(minutes=11))  # it died: look up, then send
    assert report.sent == 1 and world.sms.lookups == [delivery] and world.sms.sent_to() == [ann.phone]


def test_a_throttled_batch_stops_leaves_the_rest_unclaimed_and_resumes(world: World) -> None:
    people = [world.person(name) for name in ("ann", "bob", "cat", "dan")]
    world.plan()
    [data] = world.batches()
    order = [m for m in parse_batch(data).delivery_ids]
    first = next(p for p in people if world.delivery(p, "sms")["delivery_id"] == order[0])
    world.sms.script[str(first.phone)] = [THROTTLE]

    with pytest.raises(DeliveryIncomplete) as stopped:
        deliver_batch(world.ports(), data, LATER)
    report = stopped.value.report
    assert report.left == 3 and stopped.value.retry_after == 2.0 and world.sms.accepted == []
    assert all(world.documents.get(CLAIMS, d) is None for d in order[1:])
    assert (world.documents.get(CLAIMS, order[0]) or {})["state"] == "retry"

    resumed = deliver_batch(world.ports(), data, LATER + timedelta(seconds=5))
    assert resumed.sent == 4 and world.sms.duplicates() == {} and len(world.sms.calls) == 5
    assert (world.documents.get(CLAIMS, claim_id(order[0], 1)) or {})["state"] == "sent"


def test_an_outage_before_anything_was_accepted_is_retried_by_the_redelivery(world: World) -> None:
    ann = world.person("ann")
    world.sms.script[str(ann.phone)] = [DOWN]
    world.plan()
    [data] = world.batches()
    with pytest.raises(DeliveryIncomplete):
        deliver_batch(world.ports(), data, LATER)
    assert deliver_batch(world.ports(), data, LATER + timedelta(minutes=1)).sent == 1
    assert world.sms.lookups == [] and len(world.sms.accepted) == 1


def test_the_night_is_judged_at_send_time(world: World) -> None:
    ann = world.person("ann")
    world.plan(at=seoul(20, 55))
    [data] = world.batches()
    [report] = [deliver_batch(world.ports(), data, seoul(21, 5))]

    assert report.held == 1 and world.sms.calls == []
    [event] = [r for r in world.rows("audiences.delivery_events") if r["event"] == "held"]
    assert event["code"] == "night_not_allowed" and event["release_at"] == seoul(8, day=4)
    # a redelivery before the release leaves it held
    world.documents.delete(BATCHES, parse_batch(data).key)
    assert deliver_batch(world.ports(), data, seoul(23)).held == 1 and world.sms.calls == []

    from shared.services.send_messages import release_held

    assert release_held(world.warehouse, world.bus, seoul(8, day=4)).released == 1
    deliver_batch(world.ports(), world.batches()[-1], seoul(8, day=4))
    assert world.sms.sent_to() == [ann.phone]
    assert world.events(ann)[-2:] == [("sms", "released", None), ("sms", "sent", None)]


def test_a_campaign_disabled_after_its_plan_sends_nothing(world: World) -> None:
    ann = world.person("ann")
    world.plan()
    world.edit("campaigns", CAMPAIGN, enabled=False)
    [report] = deliver_all(world)
    assert report.skipped == 1 and world.sms.calls == []
    assert world.events(ann) == [("sms", "skipped", "campaign_disabled")]


def test_a_name_korean_carriers_cannot_carry_falls_back_to_e_mail(world: World) -> None:
    ann = world.person("ann", given="안나😀")
    world.plan()
    deliver_all(world)
    assert world.sms.calls == [] and world.email.sent_to() == [ann.email]
    assert world.events(ann) == [("sms", "skipped", "render_failed"), ("email", "sent", None)]


def test_provider_reports_become_ledger_events_once_and_opt_outs_on_the_deliverys_site(world: World) -> None:
    ann = world.person("ann")
    world.plan()
    deliver_all(world)
    delivery = world.delivery(ann, "sms")["delivery_id"]
    sid = "SM" + "a" * 32
    delivered = twilio_report({"MessageSid": sid, "MessageStatus": "delivered"}, delivery, LATER)
    assert record_report(world.warehouse, delivered) == Recorded(events=1)
    record_report(world.warehouse, delivered)  # the webhook, delivered again
    assert world.events(ann) == [("sms", "sent", None), ("sms", "delivered", None)]
    assert len([r for r in world.rows("audiences.delivery_events") if r["event"] == "delivered"]) == 1

    stop = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610", "To": str(ann.phone)}
    assert record_report(world.warehouse, twilio_report(stop, delivery, LATER)) == Recorded(events=1, opt_outs=1)
    [row] = [r for r in world.rows("raw.subscription") if r["source"] == "provider_opt_out"]
    assert (row["site_id"], row["address"], row["subscribed"]) == (SITE, ann.phone, False)
    inbound = {"MessageSid": sid, "SmsStatus": "received", "Body": "STOP", "From": str(ann.phone)}
    assert record_report(world.warehouse, twilio_report(inbound, None, LATER)) == Recorded(unmatched=1)


def test_a_batch_message_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="delivery_ids"):
        parse_batch(b'{"campaign_id": "c", "run_id": "r", "batch": "b", "delivery_ids": ["x"]}')
    with pytest.raises(ValueError, match="JSON"):
        parse_batch(b"{")
    batch = Batch("c", "r", "k", ("a" * 32, "b" * 32))
    assert parse_batch(batch.data()) == batch


def test_the_rate_limiter_spaces_sends_per_provider_and_waits_out_a_pause() -> None:
    clock = [100.0]
    waits: list[float] = []
    limiter = RateLimiter(clock=lambda: clock[0], sleep=waits.append)
    for _ in range(3):
        limiter.acquire("twilio", 10.0)
    limiter.acquire("smtp", 5.0)  # another provider has its own bucket
    assert waits == pytest.approx([0.1, 0.2])
    clock[0] = 101.0
    limiter.pause("twilio", 2.0)
    limiter.acquire("twilio", 10.0)
    assert waits[-1] == pytest.approx(2.0)

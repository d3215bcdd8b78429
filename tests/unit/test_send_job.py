"""The send_messages job: which campaigns a message runs, what stops one (with the field at fault),
and that a redelivered message, a re-fired schedule or a re-run tick is one run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.folder_blobs import FolderBlobs
from shared.messaging import ledger
from shared.messaging.ledger import Event, event_row
from shared.ports.channels import SendResult
from shared.runs import RUNS
from shared.services.send_job import SendJob, SendPorts, run_send_job, send_job
from tests.builders import SALT
from tests.messaging_world import CAMPAIGN, NOON, SEGMENT, World, seoul


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.edit("segments", SEGMENT, computed_at=NOON - timedelta(hours=1))
    return world


def ports(world: World, **overrides: Any) -> SendPorts:
    fields: dict[str, Any] = {
        "warehouse": world.warehouse,
        "documents": world.documents,
        "bus": world.bus,
        "outbox": FolderBlobs(world.tmp / "outbox"),
        "salt": SALT,
        "available_channels": frozenset({"email", "sms"}),
        "links": world.links(),
    }
    return SendPorts(**(fields | overrides))


def status(world: World) -> dict[str, Any]:
    return dict((world.documents.get("campaigns", CAMPAIGN) or {})["status"])


def test_a_message_names_campaigns_or_asks_for_the_tick() -> None:
    job = send_job({"campaign_id": "a", "dry_run": True}, NOON)
    assert (job.campaigns, job.dry_run, job.tick, job.run_at) == (("a",), True, False, NOON)
    assert send_job({"campaign_ids": ["a", "b"], "run_at": "2026-06-03T03:00:00Z"}, NOON).campaigns == ("a", "b")
    assert send_job({"tick": True}, NOON).tick
    refused = [({}, "campaign_id"), ({"campaign_id": ""}, "campaign_id"), ({"campaign_ids": "a"}, "campaign_ids"),
               ({"campaign_id": "a", "dry_run": "yes"}, "dry_run"), ({"tick": 1}, "tick")]  # fmt: skip
    for body, field in refused:
        with pytest.raises(ValueError, match=field):
            send_job(body, NOON)


def test_a_run_plans_publishes_and_records_its_funnel_on_the_status(world: World) -> None:
    world.person("ann")
    world.person("bob", marketing=False)
    world.commit()
    report = run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,)), "send_messages-1")
    run = report.runs[CAMPAIGN]
    assert run.state == "planned" and run.run_id == "send_messages-1" and report.retry == []
    assert len(world.batches()) == 1
    got = status(world)
    assert (got["stage"], got["state"], got["audience"], got["published"]) == ("send", "planned", 2, 1)
    assert got["reasons"]["no_marketing_consent"] == 1
    record = world.documents.get(RUNS, f"send_messages-1-{CAMPAIGN}")
    assert record is not None and record["status"] == "planned" and record["audience"] == 2
    # The same message again (Pub/Sub redelivers): the rows are there, the batch is marked: nothing new.
    again = run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,)), "send_messages-1")
    assert again.runs[CAMPAIGN].plan is not None and again.runs[CAMPAIGN].plan.written == 0
    assert len(world.batches()) == 1 and len(world.rows("audiences.deliveries")) == 2


def test_two_fires_of_one_schedule_slot_are_one_run(world: World) -> None:
    world.edit("campaigns", CAMPAIGN, schedule={"cron": "0 12 * * *", "timezone": "Asia/Seoul"})
    world.person("ann")
    world.commit()
    first = run_send_job(ports(world), SendJob(seoul(12), (CAMPAIGN,)), "send_messages-m1")
    second = run_send_job(ports(world), SendJob(seoul(12, 1), (CAMPAIGN,)), "send_messages-m2")  # at least once
    assert first.runs[CAMPAIGN].run_id == second.runs[CAMPAIGN].run_id == "cron-20260603T0300Z"
    assert len(world.batches()) == 1 and len(world.rows("audiences.deliveries")) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"segments": None}, "segment_id"),  # the segment was deleted
        ({"segment_built": False}, "segment_id"),  # never built
        ({"template_id": "no-such-template"}, "template_id"),
        ({"channels": ["fax"]}, "channels[0]"),
    ],
)
def test_what_stops_a_campaign_is_on_its_status_with_the_field(
    world: World, caplog: pytest.LogCaptureFixture, change: dict[str, Any], field: str
) -> None:
    world.person("ann")
    world.commit()
    if "segments" in change:
        world.documents.delete("segments", SEGMENT)
    elif "segment_built" in change:
        world.documents.set("segments", SEGMENT, {"name": "inactive 60 days"})
    else:
        world.edit("campaigns", CAMPAIGN, **change)
    report = run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,)), "send_messages-2")
    run = report.runs[CAMPAIGN]
    assert run.state == "error" and run.error is not None and run.error.startswith(f"{field}: ")
    assert status(world)["state"] == "error" and status(world)["error"] == run.error
    assert world.batches() == [] and world.rows("audiences.deliveries") == []
    assert [r for r in caplog.records if r.getMessage() == "campaign stopped"]  # the alert's line


def test_an_invalid_policy_stops_every_campaign_until_fixed(world: World) -> None:
    world.person("ann")
    world.commit()
    world.documents.set("messaging", "policy", {"frequency_caps": {"advertising": {"max": -1, "days": 7}}})
    run = run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,)), "m").runs[CAMPAIGN]
    assert run.error is not None and run.error.startswith("policy: messaging/policy is invalid")
    assert world.batches() == []


def test_a_dry_run_plans_and_previews_but_publishes_nothing(world: World) -> None:
    world.person("ann", given="안나")
    world.commit()
    run = run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,), dry_run=True), "m").runs[CAMPAIGN]
    assert run.state == "dry_run" and world.batches() == []
    [preview] = status(world)["outbox"]
    assert "안나님" in (world.tmp / "outbox" / preview).read_text(encoding="utf-8")


def test_a_missing_campaign_is_reported_and_the_others_run(world: World) -> None:
    world.person("ann")
    world.commit()
    report = run_send_job(ports(world), SendJob(NOON, ("gone", CAMPAIGN)), "m")
    assert report.missing == ["gone"] and report.runs[CAMPAIGN].state == "planned"


def test_the_tick_starts_a_due_one_off_once_and_a_one_off_asked_early_waits(world: World) -> None:
    send_at = seoul(14)
    world.edit("campaigns", CAMPAIGN, send_at=send_at)
    world.person("ann")
    world.commit()
    early = run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,)), "by-hand")
    assert early.runs[CAMPAIGN].state == "waiting" and world.batches() == []
    assert status(world)["send_at"] == send_at
    assert run_send_job(ports(world), SendJob(seoul(13, 55), tick=True), "tick-1").runs == {}  # not yet due
    due = run_send_job(ports(world), SendJob(seoul(14, 5), tick=True), "tick-2")
    assert due.runs[CAMPAIGN].run_id == "at-20260603T050000Z" and len(world.batches()) == 1
    later = run_send_job(ports(world), SendJob(seoul(14, 10), tick=True), "tick-3")
    assert later.runs == {} and len(world.batches()) == 1  # the status says it is planned
    assert due.released is not None and due.released.released == 0


def test_the_tick_releases_night_holds_at_eight(world: World) -> None:
    world.person("ann")  # no night consent: an advertising SMS at 22:00 is held until 08:00
    world.commit()
    run_send_job(ports(world), SendJob(seoul(22), (CAMPAIGN,)), "evening")
    assert world.batches() == []
    morning = run_send_job(ports(world), SendJob(seoul(8, 2, day=4), tick=True), "tick")
    assert morning.released is not None and morning.released.released == 1 and len(world.batches()) == 1


def test_the_tick_asks_for_alimtalk_results_only_where_alimtalk_is_configured(world: World) -> None:
    class Source:
        asked: list[str] = []

        def request_results(self, request_id: str) -> list[Any]:
            self.asked.append(request_id)
            return []

    assert run_send_job(ports(world), SendJob(NOON, tick=True), "tick").polled is None
    polled = run_send_job(ports(world, alimtalk=Source()), SendJob(NOON, tick=True), "tick").polled
    assert polled is not None and (polled.pending, polled.requests) == (0, 0)  # nothing sent by AlimTalk yet


def test_the_tick_polls_nhns_sms_results_only_where_nhn_sends_sms(world: World) -> None:
    ann = world.person("ann")
    world.commit()
    run_send_job(ports(world), SendJob(NOON, (CAMPAIGN,)), "send_messages-1")
    [sent] = ledger.recipients(world.warehouse, [str(world.delivery(ann, "sms")["delivery_id"])])
    ledger.record_events(world.warehouse, [event_row(sent, Event.SENT, NOON, code="0", provider_id="r-1/1")])

    class Source:
        asked: list[str] = []

        def request_results(self, request_id: str) -> dict[str, SendResult]:
            self.asked.append(request_id)
            return {sent.delivery_id: SendResult("delivered", provider_id="r-1/1", code="1000")}

    tick = SendJob(NOON + timedelta(minutes=15), tick=True)
    assert run_send_job(ports(world), tick, "tick").sms_polled is None
    source = Source()
    polled = run_send_job(ports(world, sms=source), tick, "tick").sms_polled
    assert polled is not None and (polled.pending, polled.requests, polled.events) == (1, 1, 1)
    assert source.asked == ["r-1"] and world.events(ann)[-1] == ("sms", "delivered", "1000")
    assert run_send_job(ports(world, sms=source), SendJob(tick.run_at, (CAMPAIGN,)), "cmp").sms_polled is None

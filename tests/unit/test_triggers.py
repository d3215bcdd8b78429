"""Triggered campaigns on DuckDB, through the send_messages job's tick: entries due, not yet due and
expired; the still-member check; a redelivered or later tick planning nobody twice; a return to the
segment as a new entry; the gate and the policy applied (held at night, consent, fallback); events
resolved through refinement's identities, waiting until they are, answered once across a customer
merge; batches a failed tick left unpublished; the build's nudge; the latency a demo measures."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from functions_framework import create_app

from shared import bootstrap
from shared.config import ScheduleSettings
from shared.messaging.ledger import delivery_id, parse_batch
from shared.runs import RUNS
from shared.services import triggers
from shared.services.deliver import deliver_batch
from shared.services.send_job import JobReport, SendJob, run_send_job
from shared.sql import SQL_DIR, load_sql, parameter_names, to_duckdb
from tests.builders import planted_warehouse
from tests.fakes import FakeBus
from tests.messaging_world import CAMPAIGN, NOON, SEGMENT, SITE, Person, World, seoul
from tests.unit.test_segments_service import SEOUL_MOBILE_NO_BUY, pubsub_event, store
from tests.unit.test_send_job import ports, status
from tests.unit.test_send_messages import FlakyBus

ENTRY = {"when": "segment_entry", "delay_minutes": 60, "expire_minutes": 120}
SIGNUP = {"when": "event", "event_type": "conv", "event_name": "signup", "delay_minutes": 0, "expire_minutes": 60}


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.edit("campaigns", CAMPAIGN, trigger=ENTRY)
    return world


def enter(world: World, person: Person, at: datetime | None) -> None:
    """The person becomes a member of the segment at `at` (None: before entry times were kept)."""
    world.warehouse.query(  # test-only SQL: the build's MERGE is tested in test_segment_entry.py
        "delete from audiences.segment_members where customer_id = @c", {"c": person.customer_id}
    )
    row = {
        "membership_id": f"{SEGMENT}/{person.customer_id}", "segment_id": SEGMENT,
        "customer_id": person.customer_id, "site_id": SITE, "computed_at": (at or NOON).isoformat(),
        "entered_at": at.isoformat() if at is not None else None,
    }  # fmt: skip
    assert not world.warehouse.insert_rows("audiences.segment_members", [row], [row["membership_id"]]).errors


def leave(world: World, person: Person) -> None:
    world.warehouse.query("delete from audiences.segment_members where customer_id = @c", {"c": person.customer_id})


def tick(world: World, at: datetime, **overrides: Any) -> JobReport:
    world.commit()
    return run_send_job(ports(world, **overrides), SendJob(at, tick=True), f"tick-{at:%H%M}")


def rows(world: World, person: Person | None = None) -> list[tuple[str, str, str, str, str]]:
    """(customer, channel, run, outcome, reason) of the campaign's delivery rows, one per delivery id."""
    found = {r["delivery_id"]: r for r in world.rows("audiences.deliveries") if r["campaign_id"] == CAMPAIGN}
    return sorted(
        (r["customer_id"], r["channel"], r["run_id"], r["outcome"], r["reason"])
        for r in found.values()
        if person is None or r["customer_id"] == person.customer_id
    )


def sent_ids(world: World) -> list[str]:
    return [i for data in world.batches() for i in parse_batch(data).delivery_ids]


def entry_run(at: datetime) -> str:
    return f"entry-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


# -- segment entry ------------------------------------------------------------------------------------


def test_entries_are_planned_after_their_delay_and_before_they_expire(world: World) -> None:
    ann, bob, cat, dan = (world.person(n, member=False) for n in ("ann", "bob", "cat", "dan"))
    world.commit()
    enter(world, ann, NOON - timedelta(minutes=30))  # due at 12:30
    enter(world, bob, NOON - timedelta(hours=4))  # due at 09:00, expired at 11:00
    enter(world, cat, NOON - timedelta(minutes=90))  # due at 11:30, but gone since the last build
    leave(world, cat)
    enter(world, dan, None)  # a member from before entry times: never an entry

    early = tick(world, NOON).runs[CAMPAIGN]
    assert early.state == "idle" and rows(world) == [] and world.batches() == []
    due = tick(world, NOON + timedelta(minutes=30)).runs[CAMPAIGN]

    run = entry_run(NOON - timedelta(minutes=30))
    assert due.state == "planned" and due.run_id == run
    assert rows(world) == [("c_ann", "sms", run, "send", "eligible")]
    assert sent_ids(world) == [delivery_id(CAMPAIGN, run, "c_ann", "sms")]
    assert status(world)["trigger"] == {"due": 1, "waiting": 0, "runs": 1}
    assert status(world)["reasons"] == {"eligible": 1} and status(world)["stage"] == "send"


def test_a_redelivered_tick_and_the_later_ones_plan_nobody_twice(world: World) -> None:
    ann, bob = world.person("ann", member=False), world.person("bob", member=False)
    world.commit()
    enter(world, ann, NOON - timedelta(hours=1))
    enter(world, bob, NOON - timedelta(hours=1))
    first = tick(world, NOON)
    assert first.runs[CAMPAIGN].triggered is not None and first.runs[CAMPAIGN].triggered.written == 2
    before = (rows(world), list(world.batches()))

    again = tick(world, NOON).runs[CAMPAIGN].triggered  # the same message redelivered
    later = tick(world, NOON + timedelta(minutes=5)).runs[CAMPAIGN].triggered
    assert again is not None and later is not None
    assert (again.written, again.published, later.written, later.published) == (0, 0, 0, 0)
    assert (rows(world), world.batches()) == before
    assert len(world.rows("audiences.deliveries")) == 2  # not even a copy of a row


def test_a_member_who_leaves_and_comes_back_is_a_new_entry(world: World) -> None:
    ann = world.person("ann", member=False)
    world.commit()
    enter(world, ann, NOON - timedelta(hours=1))
    tick(world, NOON)
    leave(world, ann)
    back = NOON + timedelta(minutes=50)
    enter(world, ann, back)
    assert tick(world, back + timedelta(minutes=30)).runs[CAMPAIGN].state == "idle"  # its delay again
    tick(world, back + timedelta(minutes=60))
    first, second = entry_run(NOON - timedelta(hours=1)), entry_run(back)
    assert rows(world) == [("c_ann", "sms", first, "send", "eligible"), ("c_ann", "sms", second, "send", "eligible")]
    assert len(set(sent_ids(world))) == 2


def test_the_gate_and_the_policy_decide_each_entry(world: World) -> None:
    people = {
        "ann": world.person("ann", member=False),  # no night consent: held until 08:00
        "bob": world.person("bob", member=False, phone=None),  # no number: e-mail, held too
        "cat": world.person("cat", member=False, marketing=None),  # no marketing consent
        "dan": world.person("dan", member=False, night=True),  # night consent: sent now
    }
    world.commit()
    entered = seoul(21)
    for person in people.values():
        enter(world, person, entered)
    report = tick(world, seoul(22)).runs[CAMPAIGN].triggered
    run = entry_run(entered)
    assert rows(world) == [
        ("c_ann", "sms", run, "hold", "night_not_allowed"),
        ("c_bob", "email", run, "hold", "night_not_allowed"),
        ("c_bob", "sms", run, "skip", "no_address"),
        ("c_cat", "sms", run, "skip", "no_marketing_consent"),
        ("c_dan", "sms", run, "send", "eligible"),
    ]
    held = {r["customer_id"]: r["release_at"] for r in world.rows("audiences.deliveries") if r["outcome"] == "hold"}
    assert set(held.values()) == {seoul(8, day=4)}
    assert report is not None and report.outcomes == {"hold": 2, "skip": 2, "send": 1}
    assert sent_ids(world) == [delivery_id(CAMPAIGN, run, "c_dan", "sms")]
    morning = tick(world, seoul(8, 2, day=4))  # the tick releases the night's holds as any campaign's
    assert morning.released is not None and morning.released.released == 2


def test_a_disabled_campaign_is_not_ticked_and_a_dry_run_writes_rows_that_answer_its_entries(world: World) -> None:
    ann = world.person("ann", member=False, given="안나")
    world.commit()
    enter(world, ann, NOON - timedelta(hours=1))
    world.edit("campaigns", CAMPAIGN, enabled=False)
    assert CAMPAIGN not in tick(world, NOON).runs and rows(world) == []
    world.edit("campaigns", CAMPAIGN, enabled=True, dry_run=True)
    report = tick(world, NOON).runs[CAMPAIGN].triggered
    assert report is not None and report.state == "dry_run" and world.batches() == []
    assert [r["dry_run"] for r in world.rows("audiences.deliveries")] == [True]
    [path] = report.outbox
    assert "안나님, 60일 만이에요!" in Path(path).read_text()
    world.edit("campaigns", CAMPAIGN, dry_run=False)  # live from now: the entry was answered already
    assert tick(world, NOON + timedelta(minutes=5)).runs[CAMPAIGN].state == "idle"


def test_batches_a_failed_tick_left_unpublished_go_out_with_the_next(world: World) -> None:
    people = [world.person(n, member=False) for n in ("ann", "bob", "cat")]
    world.commit()
    for person in people:
        enter(world, person, NOON - timedelta(hours=1))
    world.bus = FlakyBus(ok=0)  # type: ignore[assignment]
    failed = tick(world, NOON)
    assert failed.retry == [CAMPAIGN] and len(rows(world)) == 3 and world.batches() == []
    world.bus.ok = 10  # type: ignore[attr-defined]
    retried = tick(world, NOON).runs[CAMPAIGN].triggered  # Pub/Sub redelivers the tick
    assert retried is not None and (retried.written, retried.published) == (0, 1)
    assert sorted(sent_ids(world)) == sorted(delivery_id(CAMPAIGN, entry_run(NOON - timedelta(hours=1)), p.customer_id,
                                                          "sms") for p in people)  # fmt: skip
    assert tick(world, NOON + timedelta(minutes=5)).runs[CAMPAIGN].triggered.published == 0  # type: ignore[union-attr]


def test_an_idle_tick_writes_no_run_record_and_leaves_the_status(world: World) -> None:
    ann = world.person("ann", member=False)
    world.commit()
    enter(world, ann, NOON - timedelta(hours=1))
    tick(world, NOON)
    planned = status(world)
    assert planned["state"] == "planned" and world.documents.get(RUNS, f"tick-{NOON:%H%M}-{CAMPAIGN}") is not None
    later = NOON + timedelta(minutes=5)
    tick(world, later)
    assert world.documents.get(RUNS, f"tick-{later:%H%M}-{CAMPAIGN}") is None
    idle = status(world)
    assert idle["state"] == "idle" and idle["at"] == later  # the state changed: written once
    tick(world, later + timedelta(minutes=5))
    assert status(world)["at"] == later  # nothing new: not written again


def test_a_stopped_triggered_campaign_says_so_once_not_every_tick(world: World) -> None:
    world.documents.delete("segments", SEGMENT)
    stopped = tick(world, NOON).runs[CAMPAIGN]
    assert stopped.error == f'segment_id: no segment "{SEGMENT}": segments/{SEGMENT} does not exist'
    assert status(world)["state"] == "error" and status(world)["at"] == NOON
    assert world.documents.get(RUNS, f"tick-{NOON:%H%M}-{CAMPAIGN}") is not None
    later = NOON + timedelta(minutes=5)
    assert tick(world, later).runs[CAMPAIGN].error == stopped.error
    assert status(world)["at"] == NOON and world.documents.get(RUNS, f"tick-{later:%H%M}-{CAMPAIGN}") is None


def test_a_build_asks_for_its_triggered_campaigns_at_once(world: World) -> None:
    world.edit("campaigns", "other", **{**(world.documents.get("campaigns", CAMPAIGN) or {}), "segment_id": "vip"})
    world.edit("campaigns", "welcome", segment_id=SEGMENT, trigger=SIGNUP, enabled=True)  # an event trigger
    assert triggers.after_build(world.documents, world.bus, "jobs", ["unused"]) is None
    assert triggers.after_build(world.documents, world.bus, "jobs", [SEGMENT, "x"]) is not None
    [(topic, data, attributes)] = world.bus.published
    assert (topic, attributes) == ("jobs", {"job": "send_messages"})
    assert data == b'{"job": "send_messages", "campaign_ids": ["winback-sms"]}'


def test_the_build_handler_asks_for_them_after_a_build(monkeypatch: pytest.MonkeyPatch) -> None:
    documents, bus = store(), FakeBus()
    documents.set("segments", "s", SEOUL_MOBILE_NO_BUY)
    documents.set("campaigns", "cart", {"segment_id": "s", "trigger": ENTRY, "enabled": True})
    monkeypatch.setattr(bootstrap, "warehouse", planted_warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    monkeypatch.setattr(bootstrap, "bus", lambda: bus)
    monkeypatch.setattr(bootstrap, "schedule_config", ScheduleSettings)
    client = create_app("build_segments", "functions/build_segments/main.py").test_client()
    headers = {"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
               "ce-source": "//pubsub.googleapis.com/projects/p/topics/jobs", "ce-id": "m1",
               "ce-time": "2026-03-10T06:00:00Z", "Content-Type": "application/json"}  # fmt: skip
    assert client.post("/", json=pubsub_event({"job": "build_segments"}), headers=headers).status_code == 200
    assert [(t, json.loads(d)) for t, d, _ in bus.published if json.loads(d)["job"] == "send_messages"] == [
        ("jobs", {"job": "send_messages", "campaign_ids": ["cart"]})
    ]


# -- events -------------------------------------------------------------------------------------------


def signup(world: World, event_id: str, at: datetime, *, member: str | None = None, visitor: str | None = None,
           bot: bool = False, conv_type: str = "signup") -> None:  # fmt: skip
    row = {
        "event_id": event_id, "site_id": SITE, "event_date": at.astimezone(UTC).date().isoformat(),
        "event_ts": at.isoformat(), "collected_at": (at + timedelta(seconds=2)).isoformat(), "source": "tracker",
        "member_id": member, "visitor_id": visitor, "conv_type": conv_type, "is_bot": bot,
    }  # fmt: skip
    assert not world.warehouse.insert_rows("raw.conv", [row], [event_id]).errors
    # the raw tables are append-only: a redelivered beacon may be stored twice (test-only SQL)
    world.warehouse.query("insert into raw.conv select * from raw.conv where event_id = @e", {"e": event_id})


def resolve(world: World, node: str, customer_id: str) -> None:
    """Refinement resolves one identifier (test-only SQL over refined.identities)."""
    kind, value = node.split(":", 1)
    world.warehouse.query("delete from refined.identities where node = @n", {"n": node})
    row = {"identity_id": f"{SITE}|{node}", "site_id": SITE, "node": node, "id_type": kind, "id_value": value}
    row["customer_id"] = customer_id
    assert not world.warehouse.insert_rows("refined.identities", [row], [row["identity_id"]]).errors


@pytest.fixture
def welcome(world: World) -> World:
    """An informational e-mail to whoever signs up, within the hour; no segment."""
    doc = {**(world.documents.get("campaigns", CAMPAIGN) or {}), "kind": "informational", "channels": ["email"]}
    del doc["segment_id"]
    world.documents.set("campaigns", CAMPAIGN, doc | {"trigger": SIGNUP})
    return world


def test_an_event_of_a_known_person_is_planned_at_the_next_tick(welcome: World) -> None:
    world = welcome
    ann = world.person("ann", member=False)
    world.person("bob", member=False)
    world.commit()
    signup(world, "e-ann", NOON - timedelta(minutes=3), member=ann.member)
    signup(world, "e-old", NOON - timedelta(minutes=61), member="m-bob")  # expired within the hour
    signup(world, "e-bot", NOON - timedelta(minutes=2), member="m-bob", bot=True)
    signup(world, "e-order", NOON - timedelta(minutes=2), member="m-bob", conv_type="order")
    report = tick(world, NOON).runs[CAMPAIGN]
    assert report.run_id == "event-e-ann" and report.state == "planned"
    assert rows(world) == [("c_ann", "email", "event-e-ann", "send", "eligible")]
    assert sent_ids(world) == [delivery_id(CAMPAIGN, "event-e-ann", "c_ann", "email")]
    assert tick(world, NOON).runs[CAMPAIGN].state == "idle"  # redelivered: nothing twice


def test_deliver_sends_a_triggered_message_once_even_without_a_segment(welcome: World) -> None:
    world = welcome
    ann = world.person("ann", member=False, given="안나")
    world.commit()
    signup(world, "e-ann", NOON - timedelta(minutes=3), member=ann.member)
    tick(world, NOON)
    [batch] = world.batches()
    for _ in range(2):  # a redelivered batch sends nothing twice
        deliver_batch(world.ports(), batch, NOON + timedelta(seconds=30))
    [message] = world.email.accepted
    assert (message.to, message.delivery_id) == (ann.email, delivery_id(CAMPAIGN, "event-e-ann", "c_ann", "email"))
    assert message.subject == "안나님, 새 혜택이 도착했어요"  # informational: no (광고)
    assert world.events(ann) == [("email", "sent", None)]


def test_a_first_time_visitor_waits_for_refinement_then_is_planned(welcome: World) -> None:
    world = welcome
    signup(world, "e-new", NOON - timedelta(minutes=1), member="m-new", visitor="v-new")
    waiting = tick(world, NOON).runs[CAMPAIGN].triggered
    assert waiting is not None and (waiting.waiting, waiting.written) == (1, 0)
    assert status(world)["trigger"]["waiting"] == 1
    new = world.person("new", member=False)  # refinement resolves the member and their e-mail
    world.commit()
    resolve(world, "visitor:v-new", new.customer_id)
    report = tick(world, NOON + timedelta(minutes=15)).runs[CAMPAIGN].triggered
    assert report is not None and (report.waiting, report.due) == (0, 1)
    assert rows(world) == [("c_new", "email", "event-e-new", "send", "eligible")]


def test_one_message_answers_the_events_before_it_and_a_later_event_is_new(welcome: World) -> None:
    world = welcome
    ann = world.person("ann", member=False)
    world.commit()
    signup(world, "e-1", NOON - timedelta(minutes=4), member=ann.member)
    signup(world, "e-2", NOON - timedelta(minutes=2), member=ann.member)
    tick(world, NOON)
    assert tick(world, NOON + timedelta(minutes=5)).runs[CAMPAIGN].state == "idle"
    signup(world, "e-3", NOON + timedelta(minutes=7), member=ann.member)
    tick(world, NOON + timedelta(minutes=10))
    assert [r[2] for r in rows(world)] == ["event-e-1", "event-e-3"]


def test_an_event_answered_before_a_merge_is_not_planned_again(welcome: World) -> None:
    world = welcome
    world.person("ann", member=False)
    world.commit()
    signup(world, "e-1", NOON - timedelta(minutes=4), visitor="v-ann")
    resolve(world, "visitor:v-ann", "c_ann")
    tick(world, NOON)
    resolve(world, "visitor:v-ann", "c_ann2")  # refinement merged her with a new member: a new customer id
    assert tick(world, NOON + timedelta(minutes=5)).runs[CAMPAIGN].state == "idle"
    assert rows(world) == [("c_ann", "email", "event-e-1", "send", "eligible")]


def test_an_event_trigger_with_a_segment_plans_only_its_members(welcome: World) -> None:
    world = welcome
    world.edit("campaigns", CAMPAIGN, segment_id=SEGMENT)
    ann, bob = world.person("ann"), world.person("bob", member=False)
    world.commit()
    signup(world, "e-ann", NOON - timedelta(minutes=3), member=ann.member)
    signup(world, "e-bob", NOON - timedelta(minutes=3), member=bob.member)
    tick(world, NOON)
    assert rows(world) == [("c_ann", "email", "event-e-ann", "send", "eligible")]


def clicked(world: World, event_id: str, at: datetime, customer_id: str, source: str = "click") -> None:
    """A click on a message's link as the loader stores it: no visitor or member, the customer in
    its properties."""
    row = {
        "event_id": event_id, "site_id": SITE, "event_date": at.astimezone(UTC).date().isoformat(),
        "event_ts": at.isoformat(), "collected_at": at.isoformat(), "source": source, "is_bot": False,
        "event_name": "message_clicked",
        "properties": json.dumps({"delivery_id": "d-1", "campaign_id": "winback", "customer_id": customer_id}),
    }  # fmt: skip
    assert not world.warehouse.insert_rows("raw.event", [row], [event_id]).errors


def test_a_click_on_a_messages_link_triggers_for_the_customer_it_was_sent_to(welcome: World) -> None:
    world = welcome
    trigger = {**SIGNUP, "event_type": "event", "event_name": "message_clicked"}
    world.edit("campaigns", CAMPAIGN, trigger=trigger)
    ann = world.person("ann", member=False)
    world.person("bob", member=False)
    world.commit()
    clicked(world, "k-ann", NOON - timedelta(minutes=3), ann.customer_id)
    # the same name and property sent by a website through the tracker: its word, not a click of ours
    clicked(world, "k-forged", NOON - timedelta(minutes=3), "c_bob", source="tracker")
    report = tick(world, NOON).runs[CAMPAIGN]
    assert report.run_id == "event-k-ann" and report.triggered is not None and report.triggered.waiting == 1
    assert rows(world) == [("c_ann", "email", "event-k-ann", "send", "eligible")]


def test_the_latency_from_a_beacon_to_its_delivery_row(welcome: World) -> None:
    world = welcome
    ann = world.person("ann", member=False)
    world.commit()
    signup(world, "e-ann", NOON - timedelta(minutes=3), member=ann.member)
    assert triggers.trigger_latency(world.warehouse, CAMPAIGN, "nobody") is None
    before = triggers.trigger_latency(world.warehouse, CAMPAIGN, "e-ann")
    assert before is not None and (before.customer_id, before.latency) == ("c_ann", None)
    tick(world, NOON)
    measured = triggers.trigger_latency(world.warehouse, CAMPAIGN, "e-ann")
    assert measured is not None and measured.latency == timedelta(minutes=2, seconds=58)  # collected 2 s late


# -- the statements -----------------------------------------------------------------------------------

FILES = ("trigger_entries", "trigger_events", "trigger_runs", "trigger_latency")


@pytest.mark.parametrize("name", FILES)
def test_each_statement_is_portable_and_keeps_parameters_out_of_comments(name: str) -> None:
    sql = load_sql(f"messaging/{name}")
    [statement] = sqlglot.parse(sql, read="bigquery")
    assert statement is not None and to_duckdb(sql) and (SQL_DIR / "messaging" / f"{name}.sql").exists()
    assert parameter_names(sql) <= {"campaign_id", "segment_id", "due_until", "oldest", "event_type", "event_name",
                                    "first_day", "run_prefix", "since", "event_id"}  # fmt: skip
    code = re.sub(r"--[^\n]*|r?'(?:[^'\\]|\\.)*'", "", sql)
    assert not re.findall(r"\b\w*[A-Z]\w*\b", code), "lower-case SQL"
    comments = "\n".join(line.split("--", 1)[1] for line in sql.splitlines() if "--" in line)
    assert "@" not in comments, "bqemulator substitutes parameters inside comments too"

"""A campaign's `trigger`: what is accepted, the defaults, every refusal by field path, the segment an
event trigger may go without, and validate_config's verdict through the same parse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml

from shared.messaging.campaigns import Trigger, TriggerWhen, parse_campaign
from shared.services.messaging_config import campaign_status
from shared.tam.rules import describe
from tests.fake_channels import SharedDocuments
from tests.unit.test_messaging_campaigns import NOW, POLICY_DOC, SMS_TEMPLATE, campaign, refused


def entry(**fields: Any) -> dict[str, Any]:
    return campaign(trigger={"when": "segment_entry", "delay_minutes": 60, "expire_minutes": 1440, **fields})


def event(**fields: Any) -> dict[str, Any]:
    trigger = {"when": "event", "event_name": "signup", "event_type": "conv", **fields}
    doc = campaign(kind="informational", trigger=trigger)
    del doc["segment_id"]
    return doc


def test_a_segment_entry_trigger_with_its_delay_and_expiry() -> None:
    parsed = parse_campaign("winback", entry(), now=NOW)
    assert parsed.trigger == Trigger(TriggerWhen.SEGMENT_ENTRY, timedelta(hours=1), timedelta(days=1))
    assert (parsed.segment_id, parsed.schedule, parsed.send_at) == ("inactive-60", None, None)
    said = "segment inactive-60, on entering the segment, 60 minutes later, until 1440 minutes after that"
    assert parsed.audience == said
    defaults = parse_campaign("winback", campaign(trigger={"when": "segment_entry"}), now=NOW).trigger
    assert defaults == Trigger(TriggerWhen.SEGMENT_ENTRY, timedelta(0), timedelta(days=1))


def test_an_event_trigger_needs_no_segment_and_may_name_one() -> None:
    parsed = parse_campaign("welcome", event(delay_minutes=0, expire_minutes=60), now=NOW)
    assert parsed.trigger == Trigger(TriggerWhen.EVENT, timedelta(0), timedelta(hours=1), "signup", "conv")
    assert parsed.segment_id is None
    assert parsed.audience == "each person on conv 'signup', 0 minutes later, until 60 minutes after that"
    scoped = parse_campaign("vip-cart", campaign(trigger={"when": "event", "event_name": "add_to_cart"}), now=NOW)
    assert scoped.segment_id == "inactive-60" and scoped.trigger is not None and scoped.trigger.event_type == "event"
    assert scoped.audience.startswith("each person in segment inactive-60 on event 'add_to_cart'")
    custom = parse_campaign("w", event(event_type="event", event_name="회원 가입 완료"), now=NOW).trigger
    assert custom is not None and custom.event_name == "회원 가입 완료"  # a site's own event name


def test_every_refusal_names_its_field() -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        (entry(when="entered"), "trigger.when", 'unknown value "entered"; one of segment_entry, event'),
        (campaign(trigger={"delay_minutes": 5}), "trigger.when", "is required; one of segment_entry, event"),
        (entry(delay_minutes=-1), "trigger.delay_minutes", "expected a whole number from 0 to 10080, got -1"),
        (entry(delay_minutes=10081), "trigger.delay_minutes", "expected a whole number from 0 to 10080, got 10081"),
        (entry(delay_minutes=1.5), "trigger.delay_minutes", "expected a whole number from 0 to 10080, got 1.5"),
        (entry(expire_minutes=5), "trigger.expire_minutes", "expected a whole number from 10 to 10080, got 5"),
        (entry(expire_minutes=True), "trigger.expire_minutes", "expected a whole number from 10 to 10080, got true"),
        (entry(event_name="signup"), "trigger.event_name", "only an event trigger names an event; remove it"),
        (
            entry(wait=3),
            "trigger.wait",
            "unknown field; expected one of when, delay_minutes, expire_minutes, event_name, event_type",
        ),  # fmt: skip
        (
            campaign(trigger="on entry"),
            "trigger",
            'expected an object with when, delay_minutes, expire_minutes, event_name, event_type, got "on entry"',
        ),  # fmt: skip
        (
            event(event_name=None),
            "trigger.event_name",
            "is required: the conv name to wait for (order, signup, refund, or your own)",
        ),  # fmt: skip
        (
            event(event_name=" signup"),
            "trigger.event_name",
            'expected a name of 1 to 100 characters, without line breaks or spaces around it, got " signup"',
        ),  # fmt: skip
        (
            event(event_name="a\nb"),
            "trigger.event_name",
            'expected a name of 1 to 100 characters, without line breaks or spaces around it, got "a\\nb"',
        ),  # fmt: skip
        (
            event(event_name="x" * 101),
            "trigger.event_name",
            "expected a name of 1 to 100 characters, without line "
            f"breaks or spaces around it, got {describe('x' * 101)}",
        ),  # fmt: skip
        (event(event_name="SignUp"), "trigger.event_name", 'collect stores conv types in lower case: use "signup"'),
        (event(event_type="page"), "trigger.event_type", 'unknown value "page"; one of event, conv'),
        (entry() | {"segment_id": None}, "segment_id", "is required"),
        (
            entry() | {"schedule": "0 10 * * *"},
            "trigger",
            "a campaign runs on a trigger, a schedule or a send_at, one of them; it has a schedule",
        ),  # fmt: skip
        (
            entry() | {"send_at": "2026-06-01T10:00:00+09:00"},
            "trigger",
            "a campaign runs on a trigger, a schedule or a send_at, one of them; it has a send_at",
        ),  # fmt: skip
    ]
    for doc, path, message in cases:
        found = refused(doc)
        assert found.get(path) == message, (doc.get("trigger"), found)


def test_without_a_trigger_the_segment_stays_required() -> None:
    doc = campaign()
    del doc["segment_id"]
    assert refused(doc) == {"segment_id": "is required"}
    bad_trigger = event(when="segment_entry")  # no segment and no event trigger: both said
    assert set(refused(bad_trigger)) == {"segment_id", "trigger.event_name", "trigger.event_type"}


def test_validate_config_writes_the_trigger_into_its_verdict() -> None:
    documents = SharedDocuments()
    documents.set("messaging", "policy", POLICY_DOC)
    documents.set("message_templates", "winback", SMS_TEMPLATE)
    documents.set("segments", "inactive-60", {"name": "inactive"})
    ok = campaign_status("w", entry(), documents, {"sms"}, NOW)
    assert ok["state"] == "ok", ok
    assert ok["message"].startswith("OK: advertising campaign to segment inactive-60, on entering the segment, 60")
    welcome = campaign_status("welcome", event(), documents, {"sms"}, NOW)
    assert welcome["state"] == "ok" and "to each person on conv 'signup'" in welcome["message"], welcome
    missing = campaign_status("w", entry() | {"segment_id": "gone"}, documents, {"sms"}, NOW)
    assert missing["state"] == "error" and missing["errors"][0].startswith('segment_id: no segment "gone"')
    wrong = campaign_status("w", entry(expire_minutes=1), documents, {"sms"}, NOW)
    assert wrong["errors"] == ["trigger.expire_minutes: expected a whole number from 10 to 10080, got 1"]


@pytest.mark.parametrize("name", ["order", "signup", "refund"])
def test_the_known_conv_types_are_accepted(name: str) -> None:
    parsed = parse_campaign("w", event(event_name=name), now=NOW).trigger
    assert parsed is not None and parsed.event_name == name


def test_a_yaml_file_reads_as_written() -> None:
    text = "segment_id: cart\nkind: advertising\nchannels: [sms]\ntemplate_id: t\ntrigger: {when: segment_entry}\n"
    parsed = parse_campaign("cart", yaml.safe_load(text), now=NOW).trigger
    assert parsed == Trigger(TriggerWhen.SEGMENT_ENTRY, timedelta(0), timedelta(days=1))
    on = yaml.safe_load(text.replace("when:", "on:"))  # YAML 1.1 reads the key on as true: hence `when`
    assert set(refused(on)) == {"trigger.True", "trigger.when"}

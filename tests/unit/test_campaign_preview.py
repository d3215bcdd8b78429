"""Previewing a campaign run on DuckDB: the same decisions and funnel a real plan makes, recipients
with a message first, each decision explained stage by stage, messages rendered as deliver renders
them, and nothing written or sent."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.messaging.ledger import delivery_id
from shared.privacy.subjects import Identifier
from shared.privacy.suppression import suppress
from shared.schema import table_specs
from shared.services.campaign_preview import (
    PREVIEW_RUN,
    CampaignPreview,
    Stage,
    Step,
    StepState,
    UnknownCustomers,
    deciding_stage,
    explain,
    preview_campaign,
)
from shared.services.send_messages import plan_decisions
from tests.builders import SALT
from tests.messaging_world import CAMPAIGN, NOON, SITE, World, seoul
from tests.unit.test_send_messages import sent_before


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def planted(world: World) -> None:
    """One member for each way a run can go."""
    w = world
    w.person("ann", given="안나")
    w.person("bob", phone=None, given="보배")  # no number: e-mail
    w.person("dan", marketing=False)  # refused
    w.person("eve")  # withdrew
    w.person("gus", phone=None, email=None)  # no address on either channel
    w.person("hal", given="한결")  # capped
    kim = w.person("kim")  # erased once; an identifier of hers came back
    w.commit()
    suppress(w.warehouse, SALT, SITE, {Identifier("phone", str(kim.phone)): "erase-kim"}, NOON - timedelta(days=5))
    w.withdraw(w.people["eve"], NOON - timedelta(days=2))
    sent_before(w, "hal", NOON - timedelta(days=3), 2)


def everything(world: World) -> dict[str, Any]:
    """Every table's rows, the documents and the bus: what a preview must leave as it found them."""
    tables = {name: world.rows(name) for name in table_specs()}
    return {"tables": tables, "documents": copy.deepcopy(world.documents.docs), "bus": list(world.bus.published)}


def preview(world: World, at: Any = NOON, **options: Any) -> CampaignPreview:
    world.commit()
    campaign, template, policy = world.loaded(at)
    return preview_campaign(world.warehouse, campaign, template, policy, at, salt=SALT, links=world.links(), **options)


def test_a_preview_decides_as_the_plan_and_writes_nothing(world: World) -> None:
    planted(world)
    world.commit()
    before = everything(world)

    shown = preview(world, count=10)

    assert everything(world) == before and not (world.tmp / "outbox").exists()
    assert shown.audience == 7
    assert shown.people == {
        ("send", "eligible"): 2,  # ann by sms, bob by e-mail
        ("skip", "no_marketing_consent"): 1,
        ("skip", "marketing_withdrawn"): 1,
        ("skip", "no_address"): 1,  # gus: on e-mail too
        ("skip", "frequency_capped"): 1,
        ("skip", "erased"): 1,
    }
    planned = world.plan()  # the real plan, now: the same rows by channel, outcome and reason
    assert shown.funnel.planned == planned.funnel.planned and shown.funnel.audience == planned.funnel.audience
    assert shown.to_json()["written"] == 0 and shown.to_json()["audience"] == 7


def test_recipients_with_a_message_come_first_rendered_with_their_values(world: World) -> None:
    planted(world)

    shown = preview(world, count=3)

    first, second, third = shown.recipients
    assert {first.customer_id, second.customer_id} == {"c_ann", "c_bob"} and third.final.outcome == "skip"
    ann = next(r for r in shown.recipients if r.customer_id == "c_ann")
    assert ann.values == {"given_name": "안나"} and ann.site_id == SITE
    [sms] = ann.channels
    assert (sms.channel, sms.outcome, sms.reason, sms.fallback) == ("sms", "send", "eligible", False)
    assert sms.message is not None and sms.message.to == world.people["ann"].phone
    assert sms.message.text.startswith("(광고) 홍길동상회 02-1234-5678\n안나님, 60일 만이에요!")
    assert sms.message.text.endswith("무료수신거부 080-123-4567")
    assert sms.message.delivery_id == delivery_id(CAMPAIGN, PREVIEW_RUN, "c_ann", "sms")
    assert [s.state for s in sms.steps] == [StepState.PASS] * 6

    bob = next(r for r in shown.recipients if r.customer_id == "c_bob")
    no_number, email = bob.channels
    assert (no_number.outcome, no_number.reason, no_number.message) == ("skip", "no_address", None)
    assert no_number.steps[0].state is StepState.DECIDES and "no address on this channel" in no_number.steps[0].detail
    assert email.fallback and email.outcome == "send" and email.message is not None
    assert email.message.subject == "(광고) 보배님, 새 혜택이 도착했어요"
    assert email.message.headers["List-Unsubscribe"].startswith("<https://prefs.shop.example/unsubscribe?t=")
    assert "보배님" in (email.message.html or "") and "홍길동상회" in email.message.text

    as_json = shown.to_json()["recipients"]
    sms_json = next(r for r in as_json if r["customer_id"] == "c_ann")["channels"][0]
    assert sms_json["message"]["sms_type"] == "LMS" and sms_json["message"]["euc_kr_bytes"] > 90
    assert [s["state"] for s in sms_json["steps"]] == ["pass"] * 6


def test_each_decision_names_the_stage_that_made_it(world: World) -> None:
    planted(world)

    shown = preview(world, customers=["c_dan", "c_eve", "c_hal", "c_kim", "c_gus"])

    by_id = {r.customer_id: r for r in shown.recipients}
    assert list(by_id) == ["c_dan", "c_eve", "c_hal", "c_kim", "c_gus"]

    def deciding(customer: str, channel: int = 0) -> tuple[str, str]:
        [step] = [s for s in by_id[customer].channels[channel].steps if s.state is StepState.DECIDES]
        return step.stage.value, step.detail

    stage, detail = deciding("c_dan")
    assert stage == "consent" and detail.startswith("gate no_consent; address +82") and "-> skip no_marketing" in detail
    assert deciding("c_eve")[1].endswith("-> skip marketing_withdrawn: marketing consent withdrawn")
    stage, detail = deciding("c_hal")
    assert stage == "frequency_cap" and detail.startswith("2 of at most 2 advertising messages in 7 Seoul days")
    hal = by_id["c_hal"].channels[0]
    assert [s.state for s in hal.steps] == [StepState.PASS] * 3 + [StepState.DECIDES] + [StepState.NOT_REACHED] * 2
    assert hal.message is None and hal.steps[1].detail.startswith("advertising with marketing consent, by day")
    kim = by_id["c_kim"].channels[0]
    assert kim.reason == "erased" and kim.address is None and "+82" not in kim.steps[0].detail
    gus = by_id["c_gus"]
    assert [(c.channel, c.reason) for c in gus.channels] == [("sms", "no_address"), ("email", "no_address")]


def test_the_night_holds_advertising_until_eight_and_the_message_is_still_shown(world: World) -> None:
    world.person("ann", given="안나")
    world.person("kim", night=True)

    shown = preview(world, at=seoul(22))

    assert shown.people == {("hold", "night_not_allowed"): 1, ("send", "eligible"): 1}
    ann = next(r for r in shown.recipients if r.customer_id == "c_ann").final
    assert ann.outcome == "hold" and ann.release_at == seoul(8, day=4)
    legal = ann.steps[1]
    assert legal.stage is Stage.LEGAL and legal.state is StepState.DECIDES
    assert legal.detail.endswith("until 2026-06-04 08:00 KST")
    assert ann.message is not None and "안나님" in ann.message.text  # what goes at 08:00
    kim = next(r for r in shown.recipients if r.customer_id == "c_kim").final
    assert kim.outcome == "send" and "at night in Seoul, with night_marketing consent" in kim.steps[1].detail


def test_quiet_hours_and_the_throttle_are_explained(world: World) -> None:
    world.person("ann")
    world.edit("messaging", "policy", quiet_hours={"start": "11:00", "end": "13:00"})

    [ann] = preview(world).recipients

    send_time = ann.final.steps[4]
    assert send_time.state is StepState.DECIDES
    assert send_time.detail == (
        "-> hold quiet_hours: inside the quiet hours (quiet hours 11:00-13:00 Asia/Seoul), until 2026-06-03 13:00 KST"
    )
    assert ann.final.steps[5] == Step(Stage.THROTTLE, StepState.NOT_REACHED, "")
    world.edit("messaging", "policy", quiet_hours=None)
    [ann] = preview(world).recipients
    assert ann.final.steps[5].detail == "twilio paced at 10000 messages a second"


def test_every_decision_of_a_plan_is_explained_by_exactly_the_stage_that_made_it(world: World) -> None:
    planted(world)
    world.person("ivy", sms_subscribed=False)
    world.person("jay", sms_subscribed=None)
    world.commit()
    campaign, _, policy = world.loaded()
    seen = set()
    for at in (NOON, seoul(22)):
        for part in plan_decisions(world.warehouse, campaign, policy, at, "r", SALT):
            for answer, decision in zip(part.answers, part.decisions, strict=True):
                steps = explain(part.rules, campaign, policy, answer, decision, part.sent.get(answer.customer_id, 0))
                states = [s.state for s in steps]
                deciding = deciding_stage(answer, decision)
                seen.add(decision.reason)
                if decision.reason == "eligible":
                    assert deciding is None and states == [StepState.PASS] * 6
                else:
                    assert deciding is not None
                    at_index = list(Stage).index(deciding)
                    assert states == [StepState.PASS] * at_index + [StepState.DECIDES] + [StepState.NOT_REACHED] * (
                        5 - at_index
                    )
    assert len(seen) == 9, seen


def test_customers_outside_the_audience_and_bad_counts_are_refused(world: World) -> None:
    world.person("ann")
    world.person("ivy", member=False)
    with pytest.raises(UnknownCustomers, match="not in the campaign's audience: c_ivy, c_nobody"):
        preview(world, customers=["c_ivy", "c_ann", "c_nobody"])
    with pytest.raises(ValueError, match="count must be 1 to 100"):
        preview(world, count=0)
    assert world.rows("audiences.deliveries") == []

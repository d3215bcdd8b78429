"""Campaign and messaging-policy documents: what is accepted, defaults, every refusal by field path,
the checks against other documents and the deployment, and daily windows."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest

from shared.activation.publications import InvalidConfig
from shared.consent.policy import SEOUL
from shared.consent.vocabulary import Channel, Kind, Purpose
from shared.messaging import MessageReason
from shared.messaging.adform import AdForm
from shared.messaging.campaigns import (
    DEFAULT_POLICY,
    DEFAULT_THROTTLES,
    Campaign,
    FrequencyCap,
    MessagingPolicy,
    check_campaign,
    first_send_time,
    parse_campaign,
    parse_policy,
    validate_campaign,
)
from shared.tam.rules import Schedule

NOW = datetime(2026, 5, 1, 3, tzinfo=UTC)
SMS_TEMPLATE = {"sms": {"text": "{{ given_name or '고객' }}님, 새 혜택이 도착했어요"}}
BOTH_TEMPLATE = {**SMS_TEMPLATE, "email": {"subject": "새 혜택", "text": "{{ given_name }}님"}}
POLICY_DOC = {
    "sender": {"name": "홍길동상회", "contact": "02-1234-5678"},
    "opt_out": {"number": "080-123-4567", "mailto": "Unsubscribe@Shop.example"},
}
POLICY = parse_policy(POLICY_DOC)


def campaign(**fields: Any) -> dict[str, Any]:
    return {"segment_id": "inactive-60", "kind": "advertising", "channels": ["sms"], "template_id": "winback", **fields}


def problems(error: pytest.ExceptionInfo[InvalidConfig]) -> dict[str, str]:
    return {p.path: p.message for p in error.value.problems}


def refused(doc: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(InvalidConfig) as error:
        parse_campaign("winback", doc, now=NOW, **kwargs)
    return problems(error)


def checked(
    doc: dict[str, Any],
    templates: dict[str, Any] | None = None,
    policy: MessagingPolicy = POLICY,
    available: tuple[str, ...] = ("email", "sms"),
    segments: tuple[str, ...] = ("inactive-60",),
) -> dict[str, str]:
    found, _ = check_campaign(
        parse_campaign("winback", doc, now=NOW),
        segment_exists=lambda segment_id: segment_id in segments,
        template_doc=(templates if templates is not None else {"winback": SMS_TEMPLATE}).get,
        policy=policy,
        available_channels=available,
    )
    return {p.path: p.message for p in found}


# -- the campaign's own fields --------------------------------------------------------------------


def test_a_campaign_with_defaults() -> None:
    parsed = parse_campaign("winback", campaign(), now=NOW)
    assert parsed == Campaign("winback", "inactive-60", Kind.ADVERTISING, (Channel.SMS,), "winback")
    assert (parsed.enabled, parsed.dry_run, parsed.schedule, parsed.send_at, parsed.send_window) == (
        False,  # nothing is sent until a marketer enables it
        False,
        None,
        None,
        None,
    )
    assert parsed.purpose is Purpose.MARKETING and parsed.template_for(Channel.SMS) == "winback"
    informational = parse_campaign("notice", campaign(kind="informational", channels=["email", "sms"]), now=NOW)
    assert informational.purpose is None and informational.channels == (Channel.EMAIL, Channel.SMS)


def test_a_campaign_with_everything() -> None:
    doc = campaign(
        name="Win-back",
        description="Members inactive 60+ days",
        channels=["sms", "email"],
        schedule={"cron": "0 10 * * MON", "timezone": "Asia/Seoul"},
        send_window={"start": "09:00", "end": "20:00"},
        enabled=True,
        dry_run=True,
        status={"state": "ok"},
        last_run="run-1",
    )
    parsed = parse_campaign("winback", doc, now=NOW)
    assert parsed.schedule == Schedule("0 10 * * MON", "Asia/Seoul")
    assert parsed.send_window is not None and str(parsed.send_window) == "09:00-20:00 Asia/Seoul"
    assert (parsed.name, parsed.enabled, parsed.dry_run) == ("Win-back", True, True)


@pytest.mark.parametrize(
    "send_at", [datetime(2026, 5, 2, 1, tzinfo=UTC), "2026-05-02T10:00:00+09:00", "2026-05-02T01:00:00Z"]
)
def test_a_one_off_send_at_is_a_timestamp_or_iso_text_with_an_offset(send_at: object) -> None:
    parsed = parse_campaign("winback", campaign(send_at=send_at), now=NOW)
    assert parsed.send_at == datetime(2026, 5, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"kind": None}, "kind", "is required; one of informational, advertising"),
        ({"kind": "promo"}, "kind", 'unknown value "promo"; one of informational, advertising'),
        ({"segment_id": None}, "segment_id", "is required"),
        ({"segment_id": "a b"}, "segment_id", '"a b" is not a document id'),
        ({"template_id": 3}, "template_id", "3 is not a document id"),
        ({"channels": []}, "channels", "expected a list of 1 to 4 channels in fallback order"),
        ({"channels": "sms"}, "channels", "expected a list of 1 to 4 channels"),
        ({"channels": ["sms", "fax"]}, "channels[1]", 'unknown channel "fax"; one of email, sms, alimtalk, webpush'),
        ({"channels": ["sms", "email", "sms"]}, "channels[2]", "sms is listed twice"),
        (
            {"channels": ["alimtalk", "sms"]},
            "channels[0]",
            "alimtalk cannot carry advertising messages (Kakao allows no advertising); use email, sms, webpush",
        ),
        ({"schedule": {"cron": "0 25 * * *"}}, "schedule.cron", "'0 25 * * *' has a value out of range"),
        ({"schedule": {"cron": "0 9 * * *", "timezone": "Seoul"}}, "schedule.timezone", "unknown time zone 'Seoul'"),
        ({"schedule": "0 9 * * *", "send_at": "2026-05-02T10:00:00+09:00"}, "send_at", "a campaign has a schedule"),
        (
            {"send_at": "2026-05-02 10:00"},
            "send_at",
            "expected a timestamp or a time such as 2026-05-01T10:00:00+09:00",
        ),
        ({"send_at": "tomorrow"}, "send_at", "expected a timestamp"),
        (
            {"send_window": {"start": "9:00", "end": "20:00"}},
            "send_window.start",
            'expected a time of day such as "09:00"',
        ),
        ({"send_window": {"start": "09:00", "end": "24:00"}}, "send_window.end", "expected a time of day"),
        ({"send_window": {"start": "09:00", "end": "09:00"}}, "send_window.end", "equals the start"),
        ({"send_window": {"start": "09:00", "end": "20:00", "days": 5}}, "send_window.days", "unknown field"),
        ({"send_window": "09-20"}, "send_window", "expected an object with start, end, timezone"),
        ({"enabled": "yes"}, "enabled", 'expected true or false, got "yes"'),
        ({"dry_run": 1}, "dry_run", "expected true or false, got 1"),
        ({"name": ""}, "name", "expected a printable text of at most 200 characters"),
        ({"template": "winback"}, "template", "unknown field; expected one of id, name, description"),
        ({"id": "other"}, "id", '"other" differs from the document id "winback"'),
    ],
)
def test_every_campaign_problem_is_reported_at_its_field(fields: dict[str, Any], path: str, message: str) -> None:
    found = refused(campaign(**fields))
    assert path in found, found
    assert found[path].startswith(message), found[path]


def test_every_campaign_problem_is_listed_at_once() -> None:
    found = refused({"kind": "x", "channels": ["fax"], "enabled": 2})
    assert set(found) == {"segment_id", "template_id", "kind", "channels[0]", "enabled"}


def test_a_document_that_is_not_a_map_or_a_bad_id() -> None:
    assert refused("campaign")[""].startswith("expected an object with id, name, description, segment_id, kind")
    with pytest.raises(InvalidConfig) as error:
        parse_campaign("a/b", campaign())
    assert error.value.path == "id"


def test_schedules_follow_the_minimum_interval() -> None:
    found = refused(campaign(schedule="*/10 * * * *"))
    assert "fires every 10 minutes" in found["schedule.cron"]
    assert parse_campaign("w", campaign(schedule="*/10 * * * *"), min_interval_minutes=0, now=NOW).schedule


# -- checks against other documents ---------------------------------------------------------------


def test_a_usable_campaign_has_no_problems_and_gives_its_template() -> None:
    found, template = check_campaign(
        parse_campaign("winback", campaign(channels=["sms", "email"]), now=NOW),
        segment_exists=lambda segment_id: True,
        template_doc={"winback": BOTH_TEMPLATE}.get,
        policy=POLICY,
        available_channels={"sms", "email"},
    )
    assert found == []
    assert template is not None and template.has(Channel.SMS) and template.has(Channel.EMAIL)


@pytest.mark.parametrize(
    ("doc", "kwargs", "path", "message"),
    [
        (campaign(), {"segments": ()}, "segment_id", 'no segment "inactive-60": segments/inactive-60 does not exist'),
        (
            campaign(),
            {"templates": {}},
            "template_id",
            'no template "winback": message_templates/winback does not exist',
        ),
        (
            campaign(),
            {"templates": {"winback": {"sms": {"text": "{{ nme }}"}}}},
            "template_id",
            "template \"winback\" is not usable: sms.text: unknown variable 'nme'",
        ),
        (
            campaign(channels=["sms", "email"]),
            {},
            "template_id",
            'template "winback" has no email part, which channels[1] needs',
        ),
        (
            campaign(kind="informational", channels=["email", "alimtalk"]),
            {"templates": {"winback": BOTH_TEMPLATE}},
            "channels[1]",
            "alimtalk has no sender on this deployment; available: email, sms",
        ),
        (
            campaign(),
            {"policy": DEFAULT_POLICY},
            "kind",
            "advertising needs the sender's name and contact (Network Act Art. 50(4))",
        ),
        (
            campaign(),
            {"policy": parse_policy({"sender": {"name": "상회", "contact": "02-1"}})},
            "channels[0]",
            "advertising by sms needs a free opt-out number",
        ),
        (
            campaign(),
            {"templates": {"winback": {"sms": {"text": "가" * 990}}}},
            "template_id",
            "with the advertising form the sms text is too long",
        ),
        (
            campaign(send_window={"start": "22:00", "end": "23:00"}),
            {"policy": parse_policy({**POLICY_DOC, "quiet_hours": {"start": "21:00", "end": "08:00"}})},
            "send_window",
            "22:00-23:00 Asia/Seoul lies within the quiet hours of messaging/policy (21:00-08:00 Asia/Seoul)",
        ),
    ],
)
def test_every_cross_check_is_reported_on_the_campaign(
    doc: dict[str, Any], kwargs: dict[str, Any], path: str, message: str
) -> None:
    found = checked(doc, **kwargs)
    assert path in found, found
    assert found[path].startswith(message), found[path]


def test_an_informational_campaign_needs_no_sender_and_fits_without_the_form() -> None:
    long_text = {"winback": {"sms": {"text": "가" * 990}}}
    assert checked(campaign(kind="informational"), long_text, DEFAULT_POLICY) == {}


def test_validate_campaign_raises_every_problem_or_returns_both() -> None:
    with pytest.raises(InvalidConfig) as error:
        validate_campaign(
            "winback",
            campaign(channels=["sms", "email"]),
            segment_exists=lambda segment_id: False,
            template_doc={"winback": SMS_TEMPLATE}.get,
            policy=POLICY,
            available_channels={"sms"},
            now=NOW,
        )
    assert set(problems(error)) == {"segment_id", "channels[1]", "template_id"}
    parsed, template = validate_campaign(
        "winback",
        campaign(),
        segment_exists=lambda segment_id: True,
        template_doc={"winback": SMS_TEMPLATE}.get,
        policy=POLICY,
        available_channels={"sms"},
        now=NOW,
    )
    assert parsed.id == template.id == "winback"


# -- the policy document --------------------------------------------------------------------------


def test_a_missing_policy_is_the_default() -> None:
    assert parse_policy(None) is DEFAULT_POLICY
    assert DEFAULT_POLICY.cap == FrequencyCap(2, 7) and DEFAULT_POLICY.quiet_hours is None
    assert DEFAULT_POLICY.form is None and DEFAULT_POLICY.rate(Channel.SMS) == DEFAULT_THROTTLES["twilio"]
    assert parse_policy({}) == MessagingPolicy()


def test_a_full_policy() -> None:
    policy = parse_policy(
        {
            **POLICY_DOC,
            "frequency_caps": {"advertising": {"max": 3, "days": 14}},
            "quiet_hours": {"start": "22:00", "end": "09:00", "kinds": ["advertising"]},
            "throttles": {"twilio": 25, "smtp": 2.5},
            "status": {"state": "ok"},
        }
    )
    assert policy.cap == FrequencyCap(3, 14)
    assert policy.quiet_hours is not None and policy.quiet_hours.kinds == {Kind.ADVERTISING}
    assert str(policy.quiet_hours.window) == "22:00-09:00 Asia/Seoul"
    assert (policy.rate(Channel.SMS), policy.rate(Channel.EMAIL), policy.throttles["webpush"]) == (25.0, 2.5, 50.0)
    assert policy.form == AdForm("홍길동상회", "02-1234-5678", "080-123-4567", "무료수신거부")
    assert policy.unsubscribe_mailto == "unsubscribe@shop.example"
    assert parse_policy({"frequency_caps": None}).cap is None
    assert parse_policy({"frequency_caps": {"advertising": None}}).cap is None


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"caps": {}}, "caps", "unknown field; expected one of frequency_caps, quiet_hours"),
        ({"frequency_caps": {"informational": {"max": 1, "days": 1}}}, "frequency_caps.informational", "informational"),
        (
            {"frequency_caps": {"advertising": {"max": 0, "days": 7}}},
            "frequency_caps.advertising.max",
            "expected a whole",
        ),
        ({"frequency_caps": {"advertising": {"max": 2, "days": 1.5}}}, "frequency_caps.advertising.days", "expected"),
        ({"frequency_caps": {"advertising": {"max": True, "days": 7}}}, "frequency_caps.advertising.max", "expected"),
        ({"frequency_caps": {"advertising": {"max": 2}}}, "frequency_caps.advertising.days", "expected a whole number"),
        ({"quiet_hours": {"start": "21:00"}}, "quiet_hours.end", 'expected a time of day such as "09:00"'),
        (
            {"quiet_hours": {"start": "21:00", "end": "08:00", "kinds": ["promo"]}},
            "quiet_hours.kinds",
            "expected a list",
        ),
        ({"throttles": {"twillio": 5}}, "throttles.twillio", "unknown field; expected one of smtp, twilio"),
        ({"throttles": {"twilio": 0}}, "throttles.twilio", "expected a number from 0.01 to 10000, got 0"),
        ({"sender": {"name": "상회"}}, "sender.contact", "is required"),
        ({"sender": {"name": "상회", "contact": "02\n1"}}, "sender.contact", "expected a printable text"),
        ({"opt_out": {"number": "02-123-4567"}}, "opt_out.number", "expected a free 080 number such as 080-123-4567"),
        ({"opt_out": {"mailto": "nobody"}}, "opt_out.mailto", 'expected an e-mail address, got "nobody"'),
    ],
)
def test_every_policy_problem_is_reported_at_its_field(doc: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(InvalidConfig) as error:
        parse_policy(doc)
    found = problems(error)
    assert path in found, found
    assert found[path].startswith(message), found[path]


# -- daily windows --------------------------------------------------------------------------------


def seoul(hour: int, minute: int = 0, day: int = 1) -> datetime:
    """An instant given as a wall time in Seoul on 2026-05-<day>, in UTC."""
    return datetime(2026, 5, day, hour, minute, tzinfo=SEOUL).astimezone(UTC)


def window(start: str, end: str) -> Any:
    parsed = parse_campaign("w", campaign(send_window={"start": start, "end": end}), now=NOW).send_window
    assert parsed is not None
    return parsed


def test_a_window_contains_its_start_but_not_its_end() -> None:
    day = window("09:00", "20:00")
    assert (day.start, day.end) == (time(9), time(20))
    assert [day.contains(seoul(h, m)) for h, m in ((8, 59), (9, 0), (19, 59), (20, 0))] == [False, True, True, False]
    night = window("21:00", "08:00")  # across midnight
    assert [night.contains(seoul(h, m)) for h, m in ((20, 59), (21, 0), (0, 0), (7, 59), (8, 0))] == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_first_send_time_holds_until_the_window_opens_and_the_quiet_hours_end() -> None:
    day, quiet = window("09:00", "20:00"), window("21:00", "10:00")
    assert first_send_time(seoul(12), day, None) == (None, None)
    assert first_send_time(seoul(7), day, None) == (MessageReason.OUTSIDE_SEND_WINDOW, seoul(9))
    assert first_send_time(seoul(20), day, None) == (MessageReason.OUTSIDE_SEND_WINDOW, seoul(9, day=2))
    assert first_send_time(seoul(23), None, quiet) == (MessageReason.QUIET_HOURS, seoul(10, day=2))
    # both: the quiet hours end at 10:00, inside the window
    assert first_send_time(seoul(8), day, quiet) == (MessageReason.QUIET_HOURS, seoul(10))
    assert first_send_time(seoul(20, 30), day, quiet) == (MessageReason.OUTSIDE_SEND_WINDOW, seoul(10, day=2))
    closed = window("22:00", "23:00")
    assert first_send_time(seoul(12), closed, window("21:00", "08:00")) == (MessageReason.NO_SEND_TIME, None)

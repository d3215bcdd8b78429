"""The policy engine: every reason code in its order, the night rule at its edges in Seoul (a hold
until 08:00, across dates), the cap's Seoul calendar days across UTC midnight, quiet hours and send
windows, and properties: nobody without the consent a message needs is ever sent to."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.consent.policy import SEOUL, ConsentState, SubscriptionState, check, is_night
from shared.consent.vocabulary import Channel, Kind, Purpose, Reason
from shared.messaging import MessageReason, Outcome
from shared.messaging.campaigns import Campaign, MessagingPolicy, parse_campaign, parse_policy
from shared.messaging.policy import GATE_SKIPS, Decision, Rules, cap_since, prepare, throttled
from shared.services.consent import Eligibility

POLICY = parse_policy({"sender": {"name": "상회", "contact": "02-1"}, "opt_out": {"number": "080-123-4567"}})


def seoul(hour: int, minute: int = 0, day: int = 1, month: int = 5, year: int = 2026) -> datetime:
    """An instant given as a wall time in Seoul, in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL).astimezone(UTC)


NOON = seoul(12)
NIGHT = seoul(22)


def campaign(kind: str = "advertising", **fields: Any) -> Campaign:
    doc = {"segment_id": "s", "template_id": "t", "kind": kind, "channels": ["sms", "email"], **fields}
    return parse_campaign("c1", doc)


def answer(**fields: Any) -> Eligibility:
    base = Eligibility("cust-1", Channel.SMS, "+821012345678", Reason.ELIGIBLE, "mkt-1", "sub-1", None, None)
    return dataclasses.replace(base, **fields)


def rules(at: datetime = NOON, kind: str = "advertising", policy: MessagingPolicy = POLICY, **kwargs: Any) -> Rules:
    fields = kwargs.pop("fields", {})
    return prepare(campaign(kind, **fields), Channel.SMS, policy, at, **kwargs)


# -- each reason ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "reason"),
    [
        (Reason.SUPPRESSED, MessageReason.ERASED),
        (Reason.NO_CONSENT, MessageReason.NO_MARKETING_CONSENT),
        (Reason.WITHDRAWN, MessageReason.MARKETING_WITHDRAWN),
        (Reason.NO_ADDRESS, MessageReason.NO_ADDRESS),
        (Reason.NO_SUBSCRIPTION, MessageReason.NO_SUBSCRIPTION),
        (Reason.UNSUBSCRIBED, MessageReason.UNSUBSCRIBED),
    ],
)
def test_the_gates_refusals_skip_with_their_code(gate: Reason, reason: MessageReason) -> None:
    assert rules().decide(answer(reason=gate)) == Decision(Outcome.SKIP, reason, None, "mkt-1", "sub-1")
    assert GATE_SKIPS[gate] is reason


def test_an_eligible_recipient_is_sent_with_the_rows_it_relied_on() -> None:
    assert rules().decide(answer()) == Decision(Outcome.SEND, MessageReason.ELIGIBLE, None, "mkt-1", "sub-1", None)
    informational = rules(kind="informational").decide(answer(consent_event_id=None))
    assert informational == Decision(Outcome.SEND, MessageReason.ELIGIBLE, None, None, "sub-1")


@pytest.mark.parametrize(
    ("channel", "address"),
    [(Channel.SMS, "01012345678"), (Channel.SMS, "+82 10 1234 5678"), (Channel.EMAIL, "Kim@Example.com")],
)
def test_an_address_the_channel_cannot_use_is_invalid(channel: Channel, address: str) -> None:
    rule = prepare(campaign(), channel, POLICY, NOON)
    assert rule.decide(answer(channel=channel, address=address)).reason is MessageReason.INVALID_ADDRESS
    assert rule.decide(answer(channel=channel, address=None)).reason is MessageReason.NO_ADDRESS


def test_advertising_on_an_answer_without_a_marketing_consent_row_is_refused() -> None:
    """An informational gate answer (no purpose asked) used for an advertising message."""
    decision = rules().decide(answer(consent_event_id=None))
    assert decision == Decision(Outcome.SKIP, MessageReason.NO_MARKETING_CONSENT, None, None, "sub-1")


def test_suppression_by_address_or_customer() -> None:
    by_address = rules(suppressed_addresses={"+821012345678"})
    assert by_address.decide(answer()).reason is MessageReason.SUPPRESSED
    assert by_address.decide(answer(address="+821099999999")).reason is MessageReason.ELIGIBLE
    assert rules(suppressed_customers=["cust-1"]).decide(answer()).reason is MessageReason.SUPPRESSED


def test_the_frequency_cap_skips_at_its_maximum_and_exempts_informational() -> None:
    assert rules().decide(answer(), sent=1).outcome is Outcome.SEND
    assert rules().decide(answer(), sent=2) == Decision(
        Outcome.SKIP, MessageReason.FREQUENCY_CAPPED, None, "mkt-1", "sub-1"
    )
    assert rules(kind="informational").decide(answer(), sent=50).outcome is Outcome.SEND
    assert rules(policy=parse_policy({"frequency_caps": None})).decide(answer(), sent=50).outcome is Outcome.SEND


def test_quiet_hours_and_the_send_window_hold_everyone_until_they_allow() -> None:
    quiet = parse_policy({"quiet_hours": {"start": "12:00", "end": "13:30"}})
    assert rules(kind="informational", policy=quiet).decide(answer()) == Decision(
        Outcome.HOLD, MessageReason.QUIET_HOURS, seoul(13, 30), None, "sub-1"
    )
    window = {"send_window": {"start": "14:00", "end": "18:00"}}
    held = rules(kind="informational", fields=window).decide(answer())
    assert (held.outcome, held.reason, held.release_at) == (Outcome.HOLD, MessageReason.OUTSIDE_SEND_WINDOW, seoul(14))
    ads_only = parse_policy({"quiet_hours": {"start": "12:00", "end": "13:30", "kinds": ["advertising"]}})
    assert rules(kind="informational", policy=ads_only).decide(answer()).outcome is Outcome.SEND


def test_no_send_time_when_quiet_hours_cover_the_window() -> None:
    quiet = parse_policy({"quiet_hours": {"start": "09:00", "end": "21:00"}})
    decided = rules(kind="informational", policy=quiet, fields={"send_window": {"start": "10:00", "end": "18:00"}})
    assert decided.decide(answer()) == Decision(Outcome.SKIP, MessageReason.NO_SEND_TIME, None, None, "sub-1")


def test_throttle_is_the_providers_rate_and_a_push_back_is_a_hold() -> None:
    rule = prepare(campaign(), Channel.SMS, parse_policy({"throttles": {"twilio": 30}}), NOON)
    assert (rule.provider, rule.rate) == ("twilio", 30.0)
    assert prepare(campaign(), Channel.EMAIL, POLICY, NOON).provider == "smtp"
    assert throttled(NOON, 2.5) == Decision(Outcome.HOLD, MessageReason.THROTTLED, NOON + timedelta(seconds=2.5))


# -- the order ------------------------------------------------------------------------------------


def test_without_marketing_consent_at_night_the_reason_is_consent_not_a_hold() -> None:
    decision = rules(NIGHT).decide(answer(reason=Reason.NO_CONSENT, consent_event_id=None))
    assert decision == Decision(Outcome.SKIP, MessageReason.NO_MARKETING_CONSENT, None, None, "sub-1")
    assert rules(NIGHT).decide(answer(reason=Reason.UNSUBSCRIBED)).reason is MessageReason.UNSUBSCRIBED
    assert rules(NIGHT).decide(answer(address="010")).reason is MessageReason.INVALID_ADDRESS


def test_the_night_hold_comes_before_suppression_cap_and_windows() -> None:
    quiet = parse_policy({**_policy_doc(), "quiet_hours": {"start": "21:30", "end": "23:00"}})
    rule = rules(NIGHT, policy=quiet, suppressed_addresses={"+821012345678"})
    assert rule.decide(answer(), sent=9).reason is MessageReason.NIGHT_NOT_ALLOWED


def test_suppression_comes_before_the_cap_and_the_cap_before_quiet_hours() -> None:
    quiet = parse_policy({**_policy_doc(), "quiet_hours": {"start": "11:00", "end": "13:00"}})
    assert rules(policy=quiet, suppressed_customers={"cust-1"}).decide(answer(), 9).reason is MessageReason.SUPPRESSED
    assert rules(policy=quiet).decide(answer(), sent=9).reason is MessageReason.FREQUENCY_CAPPED
    assert rules(policy=quiet).decide(answer(), sent=0).reason is MessageReason.QUIET_HOURS


def test_erasure_comes_first() -> None:
    assert rules(NIGHT, suppressed_customers={"cust-1"}).decide(answer(reason=Reason.SUPPRESSED), 9).reason is (
        MessageReason.ERASED
    )


def _policy_doc() -> dict[str, Any]:
    return {"sender": {"name": "상회", "contact": "02-1"}, "opt_out": {"number": "080-123-4567"}}


# -- the night rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "release"),
    [
        (seoul(20, 59), None),
        (seoul(21, 0), seoul(8, day=2)),
        (seoul(23, 59), seoul(8, day=2)),
        (seoul(0, 0, day=2), seoul(8, day=2)),
        (seoul(7, 59, day=2), seoul(8, day=2)),
        (seoul(8, 0, day=2), None),
        (seoul(21, 30, day=31), seoul(8, day=1, month=6)),  # the month changes
        (seoul(22, 0, day=31, month=12), seoul(8, day=1, month=1, year=2027)),  # and the year
        (seoul(2, 0, day=1, month=1, year=2027), seoul(8, day=1, month=1, year=2027)),
    ],
)
def test_advertising_at_night_without_night_consent_is_held_until_0800_seoul(
    at: datetime, release: datetime | None
) -> None:
    decision = rules(at).decide(answer())
    if release is None:
        assert decision.outcome is Outcome.SEND
    else:
        assert decision == Decision(Outcome.HOLD, MessageReason.NIGHT_NOT_ALLOWED, release, "mkt-1", "sub-1")
        assert decision.release_at is not None and decision.release_at.astimezone(SEOUL).hour == 8


def test_the_release_crosses_the_utc_date_as_seoul_says() -> None:
    """00:30 in Seoul on 2 May is 15:30 UTC on 1 May; the release is 08:00 Seoul on 2 May, 23:00 UTC on 1 May."""
    decision = rules(datetime(2026, 5, 1, 15, 30, tzinfo=UTC)).decide(answer())
    assert decision.release_at == datetime(2026, 5, 1, 23, 0, tzinfo=UTC)


def test_night_consent_lets_advertising_go_at_night() -> None:
    under_night_rule = answer(night_consent_event_id="night-1")  # the gate ran at night and passed it
    assert rules(NIGHT).decide(under_night_rule) == Decision(
        Outcome.SEND, MessageReason.ELIGIBLE, None, "mkt-1", "sub-1", "night-1"
    )
    refused = answer(reason=Reason.NIGHT_NOT_ALLOWED, night_consent_event_id="night-0")  # a withdrawal
    assert rules(NIGHT).decide(refused) == Decision(
        Outcome.HOLD, MessageReason.NIGHT_NOT_ALLOWED, seoul(8, day=2), "mkt-1", "sub-1", "night-0"
    )
    assert rules(NIGHT).decide(answer(), night_consent=True).outcome is Outcome.SEND  # the caller read it
    assert rules(NIGHT).decide(under_night_rule, night_consent=False).outcome is Outcome.HOLD


def test_a_night_answer_sent_by_day_goes_and_informational_has_no_night_rule() -> None:
    """The gate planned at night held it; by day the same answer is sent (the night is judged at now)."""
    planned_at_night = answer(reason=Reason.NIGHT_NOT_ALLOWED, night_consent_event_id="night-0")
    assert rules(NOON).decide(planned_at_night) == Decision(
        Outcome.SEND, MessageReason.ELIGIBLE, None, "mkt-1", "sub-1"
    )
    assert rules(NIGHT, kind="informational").decide(answer(consent_event_id=None)).outcome is Outcome.SEND


# -- the cap's window -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "since"),
    [
        (seoul(0, 30, day=8), seoul(0, 0, day=2)),  # 15:30 UTC on 7 May
        (seoul(23, 30, day=7), seoul(0, 0, day=1)),  # 14:30 UTC on 7 May: the same UTC day, another Seoul day
        (seoul(9, 0, day=8), seoul(0, 0, day=2)),
    ],
)
def test_the_cap_counts_calendar_days_in_seoul(now: datetime, since: datetime) -> None:
    assert cap_since(now, 7) == since
    assert rules(now).cap_since == since


def test_a_message_after_seoul_midnight_counts_and_one_before_does_not() -> None:
    now = seoul(0, 30, day=8)
    since = cap_since(now, 7)
    sent = [seoul(0, 10, day=2), seoul(23, 50, day=1), seoul(12, day=5)]  # 15:10 UTC 1 May counts, 14:50 UTC does not
    assert [at >= since for at in sent] == [True, False, True]
    counted = sum(at >= since for at in sent)
    assert rules(now).decide(answer(), counted, night_consent=True).reason is MessageReason.FREQUENCY_CAPPED
    assert cap_since(now, 1) == seoul(0, 0, day=8)


def test_decide_all_takes_counts_by_customer() -> None:
    answers = [answer(customer_id="a"), answer(customer_id="b"), answer(customer_id="c", reason=Reason.UNSUBSCRIBED)]
    decided = rules().decide_all(answers, {"b": 2})
    assert [d.reason for d in decided] == [
        MessageReason.ELIGIBLE,
        MessageReason.FREQUENCY_CAPPED,
        MessageReason.UNSUBSCRIBED,
    ]


# -- bugs are refused loudly ----------------------------------------------------------------------


def test_bad_calls_raise() -> None:
    with pytest.raises(ValueError, match="is not in campaign c1's channels"):
        prepare(campaign(), Channel.ALIMTALK, POLICY, NOON)
    forbidden = dataclasses.replace(campaign(), channels=(Channel.ALIMTALK,))
    with pytest.raises(ValueError, match="cannot carry advertising"):
        prepare(forbidden, Channel.ALIMTALK, POLICY, NOON)
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare(campaign(), Channel.SMS, POLICY, datetime(2026, 5, 1, 12))
    with pytest.raises(ValueError, match="given to the rules of sms"):
        rules().decide(answer(channel=Channel.EMAIL))
    with pytest.raises(ValueError, match="unknown gate reason"):
        rules().decide(answer(reason="maybe"))


# -- properties -----------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
instants = st.integers(0, 60 * 24 * 30).map(lambda minutes: T0 + timedelta(minutes=minutes))
consents = st.one_of(
    st.none(),
    st.builds(
        lambda granted, ever: ConsentState(Purpose.MARKETING, granted, "mkt", T0, granted or ever),
        st.booleans(),
        st.booleans(),
    ),
)
nights = st.one_of(
    st.none(),
    st.builds(lambda granted: ConsentState(Purpose.NIGHT_MARKETING, granted, "night", T0, granted), st.booleans()),
)
subscriptions = st.builds(
    lambda address, subscribed: SubscriptionState(Channel.SMS, address, subscribed, "sub", T0),
    st.sampled_from([None, "+821012345678", "010-1234"]),
    st.sampled_from([None, True, False]),
)


def gate_answer(planned: datetime, kind: Kind, consent: Any, subscription: Any, night: Any, erased: bool) -> Any:
    """What the gate answers at `planned` for these states (policy.check applies its rules)."""
    decided = check(planned, consent, subscription, kind, night_consent=night, suppressed=erased)
    return Eligibility(
        "cust-1",
        Channel.SMS,
        subscription.address,
        decided.reason,
        decided.consent_id,
        decided.subscription_id,
        decided.night_consent_id,
        decided.hold_until,
    )


@settings(max_examples=400, deadline=None)
@given(
    planned=instants,
    now=instants,
    kind=st.sampled_from([Kind.ADVERTISING, Kind.INFORMATIONAL]),
    consent=consents,
    subscription=subscriptions,
    night=nights,
    erased=st.booleans(),
    sent=st.integers(0, 3),
)
def test_nobody_without_the_consent_a_message_needs_is_ever_sent(
    planned: datetime,
    now: datetime,
    kind: Kind,
    consent: Any,
    subscription: Any,
    night: Any,
    erased: bool,
    sent: int,
) -> None:
    """Whenever the gate planned it, a send at `now` has every consent the message needs at `now`."""
    gate = gate_answer(planned, kind, consent, subscription, night, erased)
    decision = prepare(campaign(kind.value), Channel.SMS, POLICY, now).decide(gate, sent)
    at_now = check(now, consent, subscription, kind, night_consent=night, suppressed=erased)
    if decision.outcome is Outcome.SEND:
        assert at_now.eligible
        assert subscription.subscribed is True and not erased
        if kind is Kind.ADVERTISING:
            assert consent is not None and consent.granted and decision.consent_event_id == "mkt"
            assert not is_night(now) or (night is not None and night.granted and decision.night_consent_event_id)
            assert sent < 2
    if planned == now and at_now.eligible and subscription.address == "+821012345678" and sent < 2:
        assert decision.outcome is Outcome.SEND  # and the engine refuses nobody the gate lets through


@settings(max_examples=400, deadline=None)
@given(
    now=instants,
    kind=st.sampled_from(["advertising", "informational"]),
    reason=st.sampled_from(list(Reason)),
    consent_id=st.sampled_from([None, "mkt"]),
    night_id=st.sampled_from([None, "night"]),
    night_consent=st.sampled_from([None, True, False]),
)
def test_no_gate_refusal_and_no_unconsented_advertising_is_ever_sent(
    now: datetime, kind: str, reason: Reason, consent_id: str | None, night_id: str | None, night_consent: bool | None
) -> None:
    gate = answer(reason=reason, consent_event_id=consent_id, night_consent_event_id=night_id)
    decision = rules(now, kind).decide(gate, night_consent=night_consent)
    if reason in GATE_SKIPS:
        assert decision.outcome is Outcome.SKIP
    if decision.outcome is Outcome.SEND and kind == "advertising":
        assert consent_id is not None
        if is_night(now):
            assert night_consent is True or (night_consent is None and reason is Reason.ELIGIBLE and night_id)

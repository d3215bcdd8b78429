"""The final check before a send or upload: each reason in its order, the night rule at its edges in
Seoul time, held (not dropped) until 08:00, and arguments that do not fit the kind refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.consent.policy import ConsentState, Decision, SubscriptionState, check, is_night, night_ends
from shared.consent.vocabulary import Channel, ConsentError, Kind, Purpose, Reason

NOON = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
T0 = NOON - timedelta(days=10)


def kst(hour: int, minute: int = 0, day: int = 1) -> datetime:
    """An instant given as a wall time in Seoul on 2026-05-<day>."""
    return datetime(2026, 5, day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


def consent(granted: bool = True, ever: bool | None = None, purpose: Purpose = Purpose.MARKETING) -> ConsentState:
    return ConsentState(purpose, granted, f"{purpose.value}-{granted}", T0, granted if ever is None else ever)


def subscription(subscribed: bool | None = True, address: str | None = "a@b.co") -> SubscriptionState:
    return SubscriptionState(Channel.EMAIL, address, subscribed, None if subscribed is None else "sub-1", T0)


NIGHT_OK = consent(purpose=Purpose.NIGHT_MARKETING)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ({}, Reason.ELIGIBLE),
        ({"suppressed": True}, Reason.SUPPRESSED),
        ({"consent": None}, Reason.NO_CONSENT),
        ({"consent": consent(False, ever=False)}, Reason.NO_CONSENT),  # refused, never granted
        ({"consent": consent(False, ever=True)}, Reason.WITHDRAWN),
        ({"subscription": None}, Reason.NO_ADDRESS),
        ({"subscription": subscription(address=None, subscribed=None)}, Reason.NO_ADDRESS),
        ({"subscription": subscription(None)}, Reason.NO_SUBSCRIPTION),
        ({"subscription": subscription(False)}, Reason.UNSUBSCRIBED),
        # the order: suppression, consent, subscription
        ({"suppressed": True, "consent": None, "subscription": None}, Reason.SUPPRESSED),
        ({"consent": consent(False, ever=True), "subscription": subscription(False)}, Reason.WITHDRAWN),
    ],
)
def test_advertising_by_day(case: dict[str, object], expected: Reason) -> None:
    args: dict[str, object] = {"consent": consent(), "subscription": subscription(), "suppressed": False} | case
    decision = check(NOON, args["consent"], args["subscription"], Kind.ADVERTISING, suppressed=args["suppressed"])  # type: ignore[arg-type]
    assert decision.reason is expected
    assert decision.eligible is (expected is Reason.ELIGIBLE)
    assert decision.hold_until is None and decision.night_consent_id is None


def test_the_ids_of_the_states_consulted_are_returned_whatever_the_reason() -> None:
    assert check(NOON, consent(False, ever=True), subscription(), Kind.ADVERTISING) == Decision(
        Reason.WITHDRAWN, "marketing-False", "sub-1"
    )
    assert check(NOON, consent(), subscription(), Kind.INFORMATIONAL) == Decision(Reason.ELIGIBLE, None, "sub-1")
    assert check(NOON, consent(purpose=Purpose.AD_USER_DATA), None, Kind.PROCESSING) == Decision(
        Reason.ELIGIBLE, "ad_user_data-True"
    )


def test_informational_messages_need_a_subscription_but_no_marketing_consent() -> None:
    assert check(NOON, None, subscription(), Kind.INFORMATIONAL).reason is Reason.ELIGIBLE
    assert check(kst(23), None, subscription(), Kind.INFORMATIONAL).reason is Reason.ELIGIBLE  # no night rule
    assert check(NOON, None, subscription(False), Kind.INFORMATIONAL).reason is Reason.UNSUBSCRIBED
    assert check(NOON, None, None, Kind.INFORMATIONAL).reason is Reason.NO_ADDRESS
    assert check(NOON, None, subscription(), Kind.INFORMATIONAL, suppressed=True).reason is Reason.SUPPRESSED


def test_processing_needs_only_its_consent() -> None:
    upload = consent(purpose=Purpose.AD_USER_DATA)
    assert check(kst(23), upload, None, Kind.PROCESSING).reason is Reason.ELIGIBLE  # uploads have no night rule
    assert check(NOON, consent(False, True, Purpose.AD_USER_DATA), None, Kind.PROCESSING).reason is Reason.WITHDRAWN
    assert check(NOON, None, None, Kind.PROCESSING).reason is Reason.NO_CONSENT
    with pytest.raises(ConsentError, match="subscription: a processing use"):
        check(NOON, upload, subscription(), Kind.PROCESSING)


@pytest.mark.parametrize(
    ("at", "night"),
    [
        (kst(20, 59), False),
        (kst(21, 0), True),
        (kst(23, 59), True),
        (kst(0, 0), True),
        (kst(7, 59), True),
        (kst(8, 0), False),
        (kst(12), False),
    ],
)
def test_the_night_window_is_read_in_seoul(at: datetime, night: bool) -> None:
    assert is_night(at) is night
    assert is_night(at.astimezone(UTC)) is night


def test_night_advertising_needs_night_consent_and_is_held_until_eight() -> None:
    late = kst(22, 30)
    held = check(late, consent(), subscription(), Kind.ADVERTISING)
    assert held.reason is Reason.NIGHT_NOT_ALLOWED and held.hold_until == kst(8, 0, day=2)
    assert held.hold_until is not None and held.hold_until.tzinfo is UTC
    refused = check(
        late, consent(), subscription(), Kind.ADVERTISING, night_consent=consent(False, True, NIGHT_OK.purpose)
    )
    assert refused.reason is Reason.NIGHT_NOT_ALLOWED and refused.night_consent_id == "night_marketing-False"
    allowed = check(late, consent(), subscription(), Kind.ADVERTISING, night_consent=NIGHT_OK)
    assert allowed == Decision(Reason.ELIGIBLE, "marketing-True", "sub-1", "night_marketing-True")
    early = check(kst(6), consent(), subscription(), Kind.ADVERTISING)
    assert early.hold_until == kst(8)  # the same morning
    # night consent never replaces marketing consent, and the earlier reasons come first
    assert check(late, None, subscription(), Kind.ADVERTISING, night_consent=NIGHT_OK).reason is Reason.NO_CONSENT
    assert check(late, consent(), subscription(False), Kind.ADVERTISING).reason is Reason.UNSUBSCRIBED


def test_night_ends() -> None:
    assert night_ends(kst(21)) == kst(8, day=2)
    assert night_ends(kst(8)) == kst(8)
    assert night_ends(kst(3)) == kst(8)


def test_arguments_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ConsentError, match="consent: advertising needs the marketing consent, not analytics"):
        check(NOON, consent(purpose=Purpose.ANALYTICS), subscription(), Kind.ADVERTISING)
    with pytest.raises(ConsentError, match="night_consent: expected night_marketing, not marketing"):
        check(NOON, consent(), subscription(), Kind.ADVERTISING, night_consent=consent())
    with pytest.raises(ConsentError, match="at: must be a timezone-aware datetime"):
        check(datetime(2026, 5, 1, 12), consent(), subscription(), Kind.ADVERTISING)

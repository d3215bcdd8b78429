"""The final check just before a send or an upload: pure, the clock passed in.

The audience gate (sql/consent/gate.sql) decides for a whole audience in one statement; a send that
goes out later (a queue, a hold, a retry) asks this function again with the person's state as read
just before it. Both apply the same rules in the same order, so they give the same reason code for
the same state (tests/unit/test_consent_property.py compares them):

1. suppressed — an erasure's suppression matches one of the person's identifiers;
2. consent, unless the message is informational — no decision or only refusals: no_consent; the
   latest decision a withdrawal: withdrawn;
3. subscription, for a message — no address: no_address; no record: no_subscription; the latest
   record an unsubscribe: unsubscribed;
4. the night rule, for advertising — 21:00 to 08:00 in Seoul needs night_marketing consent
   (Network Act Art. 50(3)); without it the send is held until 08:00, not dropped.

Suppression comes first, against the design's order, because it is the only reason that must win
whatever the ledgers say (an erased person's ledger rows are gone, so they would read no_consent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from shared.consent.vocabulary import Channel, ConsentError, Kind, Purpose, Reason

SEOUL: Final = ZoneInfo("Asia/Seoul")
NIGHT_START: Final = time(21)
NIGHT_END: Final = time(8)


@dataclass(frozen=True)
class ConsentState:
    """A person's deciding consent row for one purpose: the latest across all their identifiers."""

    purpose: Purpose
    granted: bool
    event_id: str
    effective_at: datetime
    ever_granted: bool  # any grant up to the deciding row: a refusal is not a withdrawal


@dataclass(frozen=True)
class SubscriptionState:
    """The address a message would use on a channel and its latest record (None: never subscribed)."""

    channel: Channel
    address: str | None  # None: the person has no address for the channel
    subscribed: bool | None = None
    event_id: str | None = None
    effective_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    reason: Reason
    # The deciding rows of every state the kind consults, whatever the reason: what a delivery or
    # upload row records as the consent state it used.
    consent_id: str | None = None  # the purpose's (marketing for advertising); none for informational
    subscription_id: str | None = None  # the address's latest record; messages only
    night_consent_id: str | None = None  # night_marketing's, when the night rule is in force
    hold_until: datetime | None = None  # night_not_allowed: when the send may go

    @property
    def eligible(self) -> bool:
        return self.reason is Reason.ELIGIBLE


def is_night(at: datetime) -> bool:
    """Whether `at` falls in the night window (21:00 to 08:00 in Seoul)."""
    local = _aware(at).astimezone(SEOUL).time()
    return local >= NIGHT_START or local < NIGHT_END


def night_ends(at: datetime) -> datetime:
    """The first 08:00 in Seoul at or after `at` (UTC): when a held advertising message may go."""
    local = _aware(at).astimezone(SEOUL)
    end = datetime.combine(local.date(), NIGHT_END, SEOUL)
    if end < local:
        end = datetime.combine(local.date() + timedelta(days=1), NIGHT_END, SEOUL)
    return end.astimezone(UTC)


def check(
    now: datetime,
    consent: ConsentState | None,
    subscription: SubscriptionState | None,
    kind: Kind,
    *,
    night_consent: ConsentState | None = None,
    suppressed: bool = False,
) -> Decision:
    """Eligible, or the first reason (in the module's order) why this person may not be reached now.

    `consent` is the state of the purpose the activation needs (marketing for advertising), None when
    the person has none. `subscription` is needed for messages (None reads as no address) and must
    be None for PROCESSING. Raises ConsentError when the arguments do not fit the kind.
    """
    now = _aware(now)
    if kind is Kind.PROCESSING and subscription is not None:
        raise ConsentError("subscription", "a processing use (an upload) sends no message")
    if kind is Kind.ADVERTISING and consent is not None and consent.purpose is not Purpose.MARKETING:
        raise ConsentError("consent", f"advertising needs the marketing consent, not {consent.purpose.value}")
    if night_consent is not None and night_consent.purpose is not Purpose.NIGHT_MARKETING:
        raise ConsentError("night_consent", f"expected night_marketing, not {night_consent.purpose.value}")
    consent_id = consent.event_id if consent is not None and kind is not Kind.INFORMATIONAL else None
    subscription_id = subscription.event_id if subscription is not None and kind is not Kind.PROCESSING else None
    night = kind is Kind.ADVERTISING and is_night(now)
    night_id = night_consent.event_id if night and night_consent is not None else None
    ids = (consent_id, subscription_id, night_id)
    if suppressed:
        return Decision(Reason.SUPPRESSED, *ids)
    if kind is not Kind.INFORMATIONAL:
        if consent is None or (not consent.granted and not consent.ever_granted):
            return Decision(Reason.NO_CONSENT, *ids)
        if not consent.granted:
            return Decision(Reason.WITHDRAWN, *ids)
    if kind is not Kind.PROCESSING:
        if subscription is None or subscription.address is None:
            return Decision(Reason.NO_ADDRESS, *ids)
        if subscription.subscribed is None:
            return Decision(Reason.NO_SUBSCRIPTION, *ids)
        if not subscription.subscribed:
            return Decision(Reason.UNSUBSCRIBED, *ids)
    if night and (night_consent is None or not night_consent.granted):
        return Decision(Reason.NIGHT_NOT_ALLOWED, *ids, hold_until=night_ends(now))
    return Decision(Reason.ELIGIBLE, *ids)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ConsentError("at", "must be a timezone-aware datetime")
    return at

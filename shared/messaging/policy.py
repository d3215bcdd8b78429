"""The one policy engine: for each recipient and channel, send, hold or skip, with a reason code.

Every channel goes through it, and a fallback channel goes through it again from the start. In
this order, the first rule that applies decides (docs/campaigns.md lists every code):

1. consent and subscription: the consent gate's answer for the campaign's purpose (marketing for
   advertising, none for informational) and this channel, taken as given (the gate is not asked
   again here): erased, no_marketing_consent, marketing_withdrawn, no_address, no_subscription,
   unsubscribed; then an address the channel cannot use is invalid_address;
2. legal rules: an advertising message needs a marketing consent row (no_marketing_consent), and
   between 21:00 and 08:00 in Seoul a night_marketing consent too (Network Act Art. 50(3)),
   otherwise it is held until the next 08:00 (night_not_allowed), not dropped;
3. suppression: the run's suppression list, by address or customer (suppressed);
4. frequency cap: advertising messages already sent to the person in the cap's calendar days in
   Seoul (frequency_capped); informational messages are exempt;
5. quiet hours and the campaign's send window: held until both allow (quiet_hours,
   outside_send_window), skipped if they never do (no_send_time);
6. throttle: not a per-recipient decision: `Rules.rate` is the messages per second the sender
   applies to the channel's provider, and `throttled` is the hold for a provider's push-back.

`prepare` works out once per run, channel and clock time everything that does not depend on the
person (the night, the cap's window, the send window), so `Rules.decide` is a handful of
comparisons and one small tuple per recipient: a campaign of 100,000 is decided in well under a
second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final, NamedTuple, Protocol

from shared.consent.policy import SEOUL, is_night, night_ends
from shared.consent.vocabulary import Channel, Kind, Reason
from shared.contacts import normalize_email
from shared.messaging import MessageReason, Outcome
from shared.messaging.campaigns import CHANNEL_RULES, Campaign, FrequencyCap, MessagingPolicy, first_send_time

_E164: Final = re.compile(r"\+[1-9][0-9]{7,14}")

GATE_SKIPS: Final[Mapping[str, MessageReason]] = {
    Reason.SUPPRESSED: MessageReason.ERASED,
    Reason.NO_CONSENT: MessageReason.NO_MARKETING_CONSENT,
    Reason.WITHDRAWN: MessageReason.MARKETING_WITHDRAWN,
    Reason.NO_ADDRESS: MessageReason.NO_ADDRESS,
    Reason.NO_SUBSCRIPTION: MessageReason.NO_SUBSCRIPTION,
    Reason.UNSUBSCRIBED: MessageReason.UNSUBSCRIBED,
}
"""The gate's refusals as the engine's codes (the gate is asked for marketing only for advertising)."""
_GATE_PASSES: Final = frozenset({Reason.ELIGIBLE, Reason.NIGHT_NOT_ALLOWED})  # the night is decided at `now`


class GateAnswer(Protocol):
    """One customer's answer from the consent gate (shared.services.consent.Eligibility has these)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def channel(self) -> Channel | None: ...
    @property
    def address(self) -> str | None: ...
    @property
    def reason(self) -> Reason: ...
    @property
    def consent_event_id(self) -> str | None: ...
    @property
    def subscription_event_id(self) -> str | None: ...
    @property
    def night_consent_event_id(self) -> str | None: ...


class Decision(NamedTuple):
    """What to do with one recipient on one channel, and the consent rows it relied on."""

    outcome: Outcome
    reason: MessageReason
    release_at: datetime | None = None  # holds: when to evaluate again (UTC)
    consent_event_id: str | None = None  # advertising: the marketing consent row
    subscription_event_id: str | None = None
    night_consent_event_id: str | None = None  # advertising at night: the night_marketing row

    @property
    def sends(self) -> bool:
        return self.outcome is Outcome.SEND


def _email(address: str) -> bool:
    return normalize_email(address) == address


def _phone(address: str) -> bool:
    return _E164.fullmatch(address) is not None


def _push(address: str) -> bool:
    return address.startswith("https://")


ADDRESS_CHECKS: Final[Mapping[Channel, Callable[[str], bool]]] = {
    Channel.EMAIL: _email,  # as the ledgers spell it: trimmed, lower-case
    Channel.SMS: _phone,  # E.164
    Channel.ALIMTALK: _phone,
    Channel.WEBPUSH: _push,
}


def cap_since(now: datetime, days: int) -> datetime:
    """The start of a cap's window: midnight in Seoul `days - 1` days before today in Seoul (UTC).

    A cap of 7 days counts today and the 6 calendar days before it, whatever the hour now.
    """
    today = _aware(now).astimezone(SEOUL).date()
    return datetime.combine(today - timedelta(days=days - 1), time(0), SEOUL).astimezone(UTC)


def throttled(now: datetime, retry_after: float) -> Decision:
    """The hold for a send a provider pushed back (ChannelThrottled): evaluate again after the wait."""
    return Decision(Outcome.HOLD, MessageReason.THROTTLED, _aware(now) + timedelta(seconds=max(retry_after, 0.0)))


@dataclass(frozen=True, eq=False)
class Rules:
    """The policy for one campaign run on one channel at one time; `decide` for each recipient."""

    campaign_id: str
    channel: Channel
    kind: Kind
    now: datetime
    provider: str
    rate: float  # messages per second for the provider: the sender's throttle
    cap: FrequencyCap | None  # advertising only
    cap_since: datetime | None  # count advertising messages sent at or after this
    night_release: datetime | None  # advertising at night: the next 08:00 in Seoul
    window_reason: MessageReason | None  # quiet_hours, outside_send_window or no_send_time
    window_release: datetime | None
    suppressed_addresses: frozenset[str]
    suppressed_customers: frozenset[str]
    valid_address: Callable[[str], bool]

    def decide(self, answer: GateAnswer, sent: int = 0, night_consent: bool | None = None) -> Decision:
        """Send, hold or skip `answer`'s customer on this channel now.

        `sent`: advertising messages sent to the customer (any channel) since `cap_since`.
        `night_consent`: whether night_marketing is granted, when the caller read it; by default
        the gate's answer tells it only when the gate ran under the night rule (an eligible answer
        with a night consent row), and an unknown night consent is no consent.
        """
        if answer.channel != self.channel:
            raise ValueError(f"a gate answer for {answer.channel} given to the rules of {self.channel.value}")
        advertising = self.kind is Kind.ADVERTISING
        consent_id = answer.consent_event_id if advertising else None
        subscription_id = answer.subscription_event_id
        # 1. consent and subscription
        gate = answer.reason
        refused = GATE_SKIPS.get(gate)
        if refused is not None:
            return Decision(Outcome.SKIP, refused, None, consent_id, subscription_id)
        if gate not in _GATE_PASSES:
            raise ValueError(f"unknown gate reason {gate!r}")
        address = answer.address
        if address is None:
            return Decision(Outcome.SKIP, MessageReason.NO_ADDRESS, None, consent_id, subscription_id)
        if not self.valid_address(address):
            return Decision(Outcome.SKIP, MessageReason.INVALID_ADDRESS, None, consent_id, subscription_id)
        # 2. legal rules
        night_id = None
        if advertising:
            if consent_id is None:
                return Decision(Outcome.SKIP, MessageReason.NO_MARKETING_CONSENT, None, None, subscription_id)
            if self.night_release is not None:
                night_id = answer.night_consent_event_id
                if night_consent is None:
                    night_consent = gate is Reason.ELIGIBLE and night_id is not None
                if not night_consent:
                    reason, release = MessageReason.NIGHT_NOT_ALLOWED, self.night_release
                    return Decision(Outcome.HOLD, reason, release, consent_id, subscription_id, night_id)
        # 3. suppression
        if address in self.suppressed_addresses or answer.customer_id in self.suppressed_customers:
            return Decision(Outcome.SKIP, MessageReason.SUPPRESSED, None, consent_id, subscription_id, night_id)
        # 4. frequency cap
        if self.cap is not None and sent >= self.cap.max:
            return Decision(Outcome.SKIP, MessageReason.FREQUENCY_CAPPED, None, consent_id, subscription_id, night_id)
        # 5. quiet hours and the send window
        if self.window_reason is not None:
            outcome = Outcome.SKIP if self.window_release is None else Outcome.HOLD
            return Decision(outcome, self.window_reason, self.window_release, consent_id, subscription_id, night_id)
        return Decision(Outcome.SEND, MessageReason.ELIGIBLE, None, consent_id, subscription_id, night_id)

    def decide_all(self, answers: Iterable[GateAnswer], sent: Mapping[str, int] | None = None) -> list[Decision]:
        """`decide` over a batch; `sent` maps customer ids to their advertising messages in the window."""
        counts = sent or {}
        decide = self.decide
        return [decide(answer, counts.get(answer.customer_id, 0)) for answer in answers]


def prepare(
    campaign: Campaign,
    channel: Channel,
    policy: MessagingPolicy,
    now: datetime,
    *,
    suppressed_addresses: Collection[str] = (),
    suppressed_customers: Collection[str] = (),
) -> Rules:
    """The rules of one channel of a campaign at `now` (the time the messages would go).

    Raises ValueError for a channel outside the campaign's chain or one that cannot carry its kind:
    campaign validation refuses both, so meeting one here is a bug, not a recipient's problem.
    """
    now = _aware(now)
    if channel not in campaign.channels:
        raise ValueError(f"{channel} is not in campaign {campaign.id}'s channels")
    rule = CHANNEL_RULES[channel]
    if campaign.kind not in rule.kinds:
        raise ValueError(f"{channel} cannot carry {campaign.kind} messages")
    advertising = campaign.kind is Kind.ADVERTISING
    cap = policy.cap if advertising else None
    quiet = policy.quiet_hours
    quiet_window = quiet.window if quiet is not None and campaign.kind in quiet.kinds else None
    window_reason, window_release = first_send_time(now, campaign.send_window, quiet_window)
    return Rules(
        campaign_id=campaign.id,
        channel=channel,
        kind=campaign.kind,
        now=now,
        provider=rule.provider,
        rate=policy.rate(channel),
        cap=cap,
        cap_since=cap_since(now, cap.days) if cap is not None else None,
        night_release=night_ends(now) if advertising and is_night(now) else None,
        window_reason=window_reason,
        window_release=window_release,
        suppressed_addresses=frozenset(suppressed_addresses),
        suppressed_customers=frozenset(suppressed_customers),
        valid_address=ADDRESS_CHECKS[channel],
    )


def _aware(at: datetime) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError("the time must be a timezone-aware datetime")
    return at

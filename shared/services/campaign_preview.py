"""Preview a campaign run: what its first recipients would get and why, writing and sending nothing.

The run is decided as send_messages plans one (`plan_decisions`: the consent gate per site and
channel, the frequency cap's counts, the policy engine, fallbacks along the chain) at the time
asked for, and each shown recipient's messages are rendered as deliver renders them
(`deliver.render`: profile values, sealed preference links, the advertising form). Nothing is
written — no delivery rows, no batch on the bus, no outbox file — so a marketer may preview as
often as they like, on the production warehouse too. Links show their destination with UTM
parameters, never a signed click redirect: a click on a preview must count for no delivery.

Each decision shown is explained stage by stage in the engine's order (shared/messaging/policy.py):
consent and subscription, legal rules, suppression, frequency cap, quiet hours and send window,
throttle. The stage whose rule decided `decides`; the stages before it passed, those after it were
not reached. The explanation reads the prepared Rules and the gate's answer; the decision itself is
the engine's, so the two cannot disagree on the outcome.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from shared.consent.policy import SEOUL
from shared.consent.vocabulary import Channel, Kind
from shared.messaging import MessageReason, Outcome, ledger
from shared.messaging.campaigns import Campaign, MessagingPolicy
from shared.messaging.ledger import PROFILE_COLUMNS, Funnel, Recipient
from shared.messaging.policy import GATE_SKIPS, Decision, GateAnswer, Rules
from shared.messaging.templates import (
    SMS_BYTES,
    CompiledTemplate,
    MessageTemplate,
    RenderFailed,
    compiled,
    euc_kr_bytes,
)
from shared.ports import Warehouse
from shared.ports.channels import Message
from shared.services.deliver import Links, render
from shared.services.send_messages import ChannelPlan, plan_decisions

PREVIEW_RUN: Final = "preview"  # the run id the preview's delivery ids are derived with
MAX_RECIPIENTS: Final = 100
_ORDER: Final = {Outcome.SEND.value: 0, Outcome.HOLD.value: 1, Outcome.SKIP.value: 2}  # messages first

WHY: Final[Mapping[MessageReason, str]] = {
    MessageReason.ELIGIBLE: "every rule passed",
    MessageReason.ERASED: "an erasure's suppression matches the person",
    MessageReason.NO_MARKETING_CONSENT: "no marketing consent recorded",
    MessageReason.MARKETING_WITHDRAWN: "marketing consent withdrawn",
    MessageReason.NO_ADDRESS: "no address on this channel",
    MessageReason.NO_SUBSCRIPTION: "the address never subscribed",
    MessageReason.UNSUBSCRIBED: "the address unsubscribed",
    MessageReason.INVALID_ADDRESS: "an address this channel cannot use",
    MessageReason.NIGHT_NOT_ALLOWED: "21:00-08:00 in Seoul without night_marketing consent",
    MessageReason.SUPPRESSED: "on the run's suppression list",
    MessageReason.FREQUENCY_CAPPED: "the frequency cap is reached",
    MessageReason.QUIET_HOURS: "inside the quiet hours",
    MessageReason.OUTSIDE_SEND_WINDOW: "outside the campaign's send window",
    MessageReason.NO_SEND_TIME: "the quiet hours cover the whole send window",
    MessageReason.THROTTLED: "the provider asked to slow down",
    MessageReason.RENDER_FAILED: "the template could not be rendered for this person",
    MessageReason.MESSAGE_TOO_LONG: "the message is over the channel's limit",
}
"""Each reason code in a few words, for people reading a preview."""


class Stage(StrEnum):
    """The policy engine's stages, in the order it applies them."""

    CONSENT = "consent"  # the gate: consent for the purpose, the subscription, the address, erasures
    LEGAL = "legal"  # advertising: marketing consent, the night rule (Network Act Art. 50)
    SUPPRESSION = "suppression"
    FREQUENCY_CAP = "frequency_cap"
    SEND_TIME = "send_time"  # quiet hours and the campaign's send window
    THROTTLE = "throttle"


class StepState(StrEnum):
    PASS = "pass"
    DECIDES = "decides"
    NOT_REACHED = "not_reached"


_STAGE_OF: Final[Mapping[MessageReason, Stage]] = {
    MessageReason.NO_ADDRESS: Stage.CONSENT,
    MessageReason.INVALID_ADDRESS: Stage.CONSENT,
    MessageReason.NO_MARKETING_CONSENT: Stage.LEGAL,  # when the gate passed: an answer without a consent row
    MessageReason.NIGHT_NOT_ALLOWED: Stage.LEGAL,
    MessageReason.SUPPRESSED: Stage.SUPPRESSION,
    MessageReason.FREQUENCY_CAPPED: Stage.FREQUENCY_CAP,
    MessageReason.QUIET_HOURS: Stage.SEND_TIME,
    MessageReason.OUTSIDE_SEND_WINDOW: Stage.SEND_TIME,
    MessageReason.NO_SEND_TIME: Stage.SEND_TIME,
    MessageReason.THROTTLED: Stage.THROTTLE,
}


@dataclass(frozen=True)
class Step:
    stage: Stage
    state: StepState
    detail: str  # empty when not reached


@dataclass(frozen=True)
class ChannelPreview:
    """One recipient on one channel of the chain: the decision, why, and the message it would send."""

    channel: str
    fallback: bool  # planned because the previous channel could not be used
    outcome: str
    reason: str
    release_at: datetime | None  # holds: when deliver decides again
    address: str | None
    consent_event_id: str | None
    subscription_event_id: str | None
    night_consent_event_id: str | None
    steps: tuple[Step, ...]
    message: Message | None = None  # sends and holds: rendered as it would go
    failed: RenderFailed | None = None  # a render that would fail (deliver then tries the next channel)


@dataclass(frozen=True)
class RecipientPreview:
    site_id: str
    customer_id: str
    values: Mapping[str, Any]  # the profile values the template uses
    channels: tuple[ChannelPreview, ...]  # the chain as far as the plan goes for this person

    @property
    def final(self) -> ChannelPreview:
        return self.channels[-1]


@dataclass(frozen=True)
class CampaignPreview:
    """What a run at `at` would do: the funnel of the whole audience and a few recipients in full."""

    campaign: Campaign
    at: datetime
    funnel: Funnel  # delivery rows by channel, fallback, outcome and reason (no events: nothing was sent)
    people: Mapping[tuple[str, str], int]  # (outcome, reason) of each member's last row -> members
    recipients: tuple[RecipientPreview, ...]

    @property
    def audience(self) -> int:
        return self.funnel.audience

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: what `scripts/campaigns preview --json` prints."""
        c = self.campaign
        return {
            "campaign": {
                "id": c.id,
                "name": c.name,
                "kind": c.kind.value,
                "segment_id": c.segment_id,
                "channels": [channel.value for channel in c.channels],
                "template_id": c.template_id,
                "enabled": c.enabled,
                "dry_run": c.dry_run,
            },
            "at": self.at.isoformat(),
            "written": 0,
            "audience": self.audience,
            "people": [
                {"outcome": outcome, "reason": reason, "members": n}
                for (outcome, reason), n in sorted(self.people.items(), key=lambda item: (_ORDER[item[0][0]], item[0]))
            ],
            "rows": [
                {"channel": channel, "fallback": fallback, "outcome": outcome, "reason": reason, "deliveries": n}
                for (channel, fallback, outcome, reason), n in sorted(self.funnel.planned.items())
            ],
            "recipients": [_recipient_json(r) for r in self.recipients],
        }


class UnknownCustomers(ValueError):
    """Customers asked for by id are not in the campaign's audience."""


def preview_campaign(
    warehouse: Warehouse,
    campaign: Campaign,
    template: MessageTemplate,
    policy: MessagingPolicy,
    at: datetime,
    *,
    salt: str,
    links: Links | None = None,
    count: int = 5,
    customers: Sequence[str] = (),
) -> CampaignPreview:
    """Decide a run of a validated campaign at `at` and render `count` recipients' messages (or
    those of `customers`), reading only.

    Recipients with a message come first (sends, then holds), then people skipped, each group in
    delivery id order (a hash: no bias towards old or new customers). `salt`: the privacy salt the
    gate matches erasures with; `links`: the preference centre the messages link to.
    """
    if not 0 < count <= MAX_RECIPIENTS:
        raise ValueError(f"count must be 1 to {MAX_RECIPIENTS}")
    planned: Counter[tuple[str, bool, str, str]] = Counter()
    last: dict[tuple[str, str], tuple[str, str]] = {}  # (site, customer) -> their last row's outcome, reason
    rows: dict[tuple[str, str], list[tuple[ChannelPlan, int]]] = {}
    for part in plan_decisions(warehouse, campaign, policy, at, PREVIEW_RUN, salt):
        channel, fallback = part.rules.channel.value, part.replaces is not None
        for index, (answer, decision) in enumerate(zip(part.answers, part.decisions, strict=True)):
            key = (part.site_id, answer.customer_id)
            planned[(channel, fallback, decision.outcome.value, decision.reason.value)] += 1
            last[key] = (decision.outcome.value, decision.reason.value)
            rows.setdefault(key, []).append((part, index))
    chosen = _choose(rows, last, count, customers)
    values = _values(warehouse, chosen)
    renderer = compiled(template)
    shown = sorted(template.variables & set(PROFILE_COLUMNS))
    recipients = []
    for key in chosen:
        profile = values.get(key, dict.fromkeys(PROFILE_COLUMNS))
        channels = tuple(
            _channel(part, index, campaign, template, renderer, policy, profile, links, at) for part, index in rows[key]
        )
        recipients.append(RecipientPreview(key[0], key[1], {name: profile[name] for name in shown}, channels))
    people = Counter(last.values())
    return CampaignPreview(campaign, at, Funnel(dict(planned), {}), dict(people), tuple(recipients))


def _choose(
    rows: Mapping[tuple[str, str], list[tuple[ChannelPlan, int]]],
    last: Mapping[tuple[str, str], tuple[str, str]],
    count: int,
    customers: Sequence[str],
) -> list[tuple[str, str]]:
    if customers:
        by_customer: dict[str, list[tuple[str, str]]] = {}
        for key in rows:
            by_customer.setdefault(key[1], []).append(key)
        missing = [c for c in dict.fromkeys(customers) if c not in by_customer]
        if missing:
            raise UnknownCustomers(f"not in the campaign's audience: {', '.join(missing)}")
        return [key for c in dict.fromkeys(customers) for key in by_customer[c]]

    def order(key: tuple[str, str]) -> tuple[int, str]:
        part, index = rows[key][0]
        return _ORDER[last[key][0]], part.delivery_ids[index]

    return heapq.nsmallest(count, rows, key=order)


def _values(warehouse: Warehouse, chosen: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The template values of the chosen customers: one statement per site."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for site in sorted({site for site, _ in chosen}):
        ids = sorted(customer for s, customer in chosen if s == site)
        for row in ledger.run(warehouse, "preview_values", {"site_id": site, "customer_ids": ids}):
            found[(site, str(row["customer_id"]))] = {name: row[name] for name in PROFILE_COLUMNS}
    return found


def _channel(
    part: ChannelPlan,
    index: int,
    campaign: Campaign,
    template: MessageTemplate,
    renderer: CompiledTemplate,
    policy: MessagingPolicy,
    profile: Mapping[str, Any],
    links: Links | None,
    at: datetime,
) -> ChannelPreview:
    """One row of the plan for one person, explained, with its message rendered unless skipped."""
    answer, decision = part.answers[index], part.decisions[index]
    customer, channel = answer.customer_id, part.rules.channel.value
    address = None if decision.reason is MessageReason.ERASED else answer.address  # as the plan keeps it
    sent = part.sent.get(customer, 0)
    message: Message | None = None
    failed: RenderFailed | None = None
    if decision.outcome is not Outcome.SKIP:
        replaces = part.replaces.get(customer) if part.replaces is not None else None
        recipient = Recipient(
            part.delivery_ids[index], campaign.id, PREVIEW_RUN, part.site_id, customer, channel, address,
            campaign.kind.value, decision.outcome.value, decision.reason.value, replaces, profile, sent,
        )  # fmt: skip
        made = render(renderer, template, campaign, policy, recipient, links, decision.release_at or at)
        message, failed = (None, made) if isinstance(made, RenderFailed) else (made, None)
    return ChannelPreview(
        channel=channel,
        fallback=part.replaces is not None,
        outcome=decision.outcome.value,
        reason=decision.reason.value,
        release_at=decision.release_at,
        address=address,
        consent_event_id=decision.consent_event_id,
        subscription_event_id=decision.subscription_event_id,
        night_consent_event_id=decision.night_consent_event_id,
        steps=explain(part.rules, campaign, policy, answer, decision, sent),
        message=message,
        failed=failed,
    )


# -- the reason chain ---------------------------------------------------------------------------------


def deciding_stage(answer: GateAnswer, decision: Decision) -> Stage | None:
    """The stage whose rule made `decision` (None: every rule passed)."""
    if decision.reason is MessageReason.ELIGIBLE:
        return None
    if answer.reason in GATE_SKIPS:
        return Stage.CONSENT
    return _STAGE_OF[decision.reason]


def explain(
    rules: Rules,
    campaign: Campaign,
    policy: MessagingPolicy,
    answer: GateAnswer,
    decision: Decision,
    sent: int,
) -> tuple[Step, ...]:
    """Every stage of the engine for one decision: what it checked, which one decided."""
    deciding = deciding_stage(answer, decision)
    steps: list[Step] = []
    reached = True
    for stage in Stage:
        if not reached:
            steps.append(Step(stage, StepState.NOT_REACHED, ""))
            continue
        decides = stage is deciding
        detail = _DETAILS[stage](rules, campaign, policy, answer, decision, sent)
        steps.append(Step(stage, StepState.DECIDES if decides else StepState.PASS, detail))
        reached = not decides
    return tuple(steps)


def _consent(
    rules: Rules, campaign: Campaign, policy: MessagingPolicy, answer: GateAnswer, decision: Decision, sent: int
) -> str:
    said = [f"gate {answer.reason}"]
    if decision.reason is not MessageReason.ERASED and answer.address:
        said.append(f"address {answer.address}")
    if rules.kind is Kind.ADVERTISING and answer.consent_event_id:
        said.append(f"marketing consent {_short(answer.consent_event_id)}")
    if answer.subscription_event_id:
        said.append(f"subscription {_short(answer.subscription_event_id)}")
    if deciding_stage(answer, decision) is Stage.CONSENT:
        said.append(f"-> {decision.outcome} {decision.reason}: {WHY[decision.reason]}")
    return "; ".join(said)


def _legal(
    rules: Rules, campaign: Campaign, policy: MessagingPolicy, answer: GateAnswer, decision: Decision, sent: int
) -> str:
    if rules.kind is not Kind.ADVERTISING:
        return "informational: no marketing consent or night rule; no advertising form"
    if decision.reason is MessageReason.NO_MARKETING_CONSENT:
        return f"advertising needs marketing consent -> skip {decision.reason}: the gate's answer names none"
    if decision.reason is MessageReason.NIGHT_NOT_ALLOWED:
        return f"-> hold {decision.reason}: {WHY[decision.reason]}, until {_seoul(decision.release_at)}"
    when = "by day in Seoul" if rules.night_release is None else "at night in Seoul, with night_marketing consent"
    if rules.night_release is not None and decision.night_consent_event_id:
        when += f" {_short(decision.night_consent_event_id)}"
    return f"advertising with marketing consent, {when}; the Network Act's form is added"


def _suppression(
    rules: Rules, campaign: Campaign, policy: MessagingPolicy, answer: GateAnswer, decision: Decision, sent: int
) -> str:
    if decision.reason is MessageReason.SUPPRESSED:
        return f"-> skip {decision.reason}: {WHY[decision.reason]}"
    listed = len(rules.suppressed_addresses) + len(rules.suppressed_customers)
    return f"not on the run's suppression list ({listed} entries)" if listed else "the run has no suppression list"


def _cap(
    rules: Rules, campaign: Campaign, policy: MessagingPolicy, answer: GateAnswer, decision: Decision, sent: int
) -> str:
    cap = rules.cap
    if cap is None or rules.cap_since is None:
        return "informational messages are never capped" if rules.kind is Kind.INFORMATIONAL else "no frequency cap"
    said = (
        f"{sent} of at most {cap.max} advertising messages in {cap.days} Seoul days (since {_seoul(rules.cap_since)})"
    )
    return f"{said} -> skip {decision.reason}" if decision.reason is MessageReason.FREQUENCY_CAPPED else said


def _send_time(
    rules: Rules, campaign: Campaign, policy: MessagingPolicy, answer: GateAnswer, decision: Decision, sent: int
) -> str:
    quiet = policy.quiet_hours
    windows = []
    if quiet is not None and campaign.kind in quiet.kinds:
        windows.append(f"quiet hours {quiet.window}")
    if campaign.send_window is not None:
        windows.append(f"send window {campaign.send_window}")
    reason = rules.window_reason
    if reason is None:
        return f"sendable at {_seoul(rules.now)} ({', '.join(windows) or 'no quiet hours or send window'})"
    if rules.window_release is None:
        return f"-> skip {reason}: {WHY[reason]} ({', '.join(windows)})"
    return f"-> hold {reason}: {WHY[reason]} ({', '.join(windows)}), until {_seoul(rules.window_release)}"


def _throttle(
    rules: Rules, campaign: Campaign, policy: MessagingPolicy, answer: GateAnswer, decision: Decision, sent: int
) -> str:
    return f"{rules.provider} paced at {rules.rate:g} messages a second"


_DETAILS: Final = {
    Stage.CONSENT: _consent,
    Stage.LEGAL: _legal,
    Stage.SUPPRESSION: _suppression,
    Stage.FREQUENCY_CAP: _cap,
    Stage.SEND_TIME: _send_time,
    Stage.THROTTLE: _throttle,
}


def _short(event_id: str) -> str:
    return event_id[:10]


def _seoul(at: datetime | None) -> str:
    return "-" if at is None else f"{at.astimezone(SEOUL):%Y-%m-%d %H:%M} KST"


# -- JSON ---------------------------------------------------------------------------------------------


def sms_size(text: str) -> tuple[int, str]:
    """An SMS body's size in EUC-KR and what Korean carriers send it as (SMS up to 90 bytes, else LMS)."""
    size = euc_kr_bytes(text)
    return size, "SMS" if size <= SMS_BYTES else "LMS"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # Decimal, date


def _recipient_json(recipient: RecipientPreview) -> dict[str, Any]:
    channels = []
    for row in recipient.channels:
        item: dict[str, Any] = {
            "channel": row.channel,
            "fallback": row.fallback,
            "outcome": row.outcome,
            "reason": row.reason,
            "release_at": _plain(row.release_at),
            "address": row.address,
            "consent_event_id": row.consent_event_id,
            "subscription_event_id": row.subscription_event_id,
            "night_consent_event_id": row.night_consent_event_id,
            "steps": [{"stage": s.stage.value, "state": s.state.value, "detail": s.detail} for s in row.steps],
            "message": None,
            "render_failed": None,
        }
        if row.message is not None:
            m = row.message
            item["message"] = {
                "to": m.to,
                "subject": m.subject,
                "text": m.text,
                "html": m.html,
                "headers": dict(m.headers),
            }
            if m.channel == Channel.SMS:
                item["message"]["euc_kr_bytes"], item["message"]["sms_type"] = sms_size(m.text)
        if row.failed is not None:
            item["render_failed"] = {"reason": row.failed.reason.value, "detail": row.failed.detail}
        channels.append(item)
    values = {name: _plain(value) for name, value in recipient.values.items()}
    return {"site_id": recipient.site_id, "customer_id": recipient.customer_id, "values": values, "channels": channels}

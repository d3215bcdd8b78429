"""send_messages: plan a campaign run in the warehouse, then hand its sends to deliver in batches.

**Plan**, set-based and before any provider call. For each site of the segment: the consent gate
answers for every member on the chain's first channel (one statement: consent for the campaign's
purpose, the subscription and address, erasures, the night rule), the frequency cap's counts come
from the ledger (one statement: advertising sent since the cap's first Seoul day), and the policy
engine decides each member (`Rules.decide_all`). Members skipped for a reason of that channel (no
address, no subscription, unsubscribed, an address it cannot use) are planned on the next channel
of the chain the same way, their row naming the one it replaces (`fallback_of`), and so on. Every
decision is a row of `audiences.deliveries` with its outcome, reason, release time and the consent
rows it relied on: the funnel audience -> eligible -> held / skipped by reason -> planned sends.
The sends are numbered into batches in delivery id order, and the run's rows go to the warehouse
in one load before anything is published. Per member, Python only decides and appends a few values.
`plan_decisions` makes the same decisions and writes nothing: the preview shows them
(shared/services/campaign_preview.py).

**Exactly once.** Delivery ids derive from (campaign, run, customer, channel), and a run's rows are
written only when it has none: a retried plan finds them and writes nothing. Each batch is published
once and marked in `send_batches` after the bus acknowledged it, so a retry publishes only what it
had not (a batch published twice costs nothing: deliver claims each delivery). `run_id_for` gives a
scheduled run the id of its schedule slot and a one-off the id of its send_at, so two job messages
for one slot (Cloud Scheduler delivers at least once) are one run.

**Holds** (the night without night consent, quiet hours, the send window) are rows with a release
time; `release_held` publishes those due, with a `released` event, and deliver decides them again
(so the 21:00-08:00 holds go out at 08:00 in Seoul).

**Dry run** (the campaign's `dry_run`, or the deployment's): the rows are planned and written with
`dry_run` true (never published, released or counted), and the first sends are rendered into the
outbox for the marketer to read.

Design notes. The address is the gate's (the subscribed one among the customer's addresses on the
channel), not refined.profiles' e-mail or phone: the consent checked is that address's. Two plans
of one run at the same moment (a job redelivered while the first still runs) could both write the
rows; every reader takes one copy per delivery id and deliver's claims send once, so this costs
rows, never messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, Final

import pyarrow as pa
from croniter import croniter

from shared.messaging import MessageReason, Outcome, ledger
from shared.messaging.campaigns import Campaign, MessagingPolicy
from shared.messaging.ledger import (
    BATCHES,
    DELIVERIES,
    TOPIC,
    Batch,
    Delivery,
    Event,
    Funnel,
    SendCode,
    batch_key,
    event_row,
)
from shared.messaging.policy import Decision, Rules, prepare
from shared.messaging.templates import MessageTemplate, RenderFailed, compiled
from shared.ports import DocumentStore, EventBus, Warehouse
from shared.ports.blobs import BlobStore
from shared.services import consent
from shared.services.deliver import Links, render

log = logging.getLogger(__name__)

JOB: Final = "send_messages"
BATCH_SIZE: Final = 500
"""Deliveries per sends message: at 10 messages a second a batch takes under a minute to send."""
PREVIEW: Final = 5
PAGE_BATCHES: Final = 100  # batches read back per statement when publishing (50,000 ids)
RELEASE_MAX_DELAY: Final = timedelta(hours=6)
"""A hold found later than this after its release time is skipped (hold_expired), not sent: a
message hours late is not the one planned."""
RELEASE_LOOKBACK: Final = timedelta(days=7)  # how far back release_held looks for holds
PLAN_FALLBACKS: Final = frozenset(
    {
        MessageReason.NO_ADDRESS,
        MessageReason.NO_SUBSCRIPTION,
        MessageReason.UNSUBSCRIBED,
        MessageReason.INVALID_ADDRESS,
    }
)
"""Skips of a channel, not of the person: the plan tries the next channel of the chain."""

DELIVERY_TYPES: Final[Mapping[str, pa.DataType]] = {
    "delivery_id": pa.string(),
    "campaign_id": pa.string(),
    "run_id": pa.string(),
    "site_id": pa.string(),
    "customer_id": pa.string(),
    "channel": pa.string(),
    "address": pa.string(),
    "kind": pa.string(),
    "outcome": pa.string(),
    "reason": pa.string(),
    "release_at": pa.timestamp("us", tz="UTC"),
    "consent_event_id": pa.string(),
    "subscription_event_id": pa.string(),
    "night_consent_event_id": pa.string(),
    "fallback_of": pa.string(),
    "batch": pa.int64(),
    "dry_run": pa.bool_(),
    "planned_at": pa.timestamp("us", tz="UTC"),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def one_off_run_id(send_at: datetime) -> str:
    """The one run of a one-off campaign: named by its send_at."""
    return f"at-{send_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def run_id_for(campaign: Campaign, run_at: datetime, request_id: str) -> str:
    """The run a job message stands for: a one-off's send_at, a scheduled campaign's latest slot at
    or before `run_at` (in its time zone), otherwise the request (a run asked for by hand)."""
    if campaign.send_at is not None:
        return one_off_run_id(campaign.send_at)
    if campaign.schedule is not None:
        local = run_at.astimezone(campaign.schedule.tz) + timedelta(seconds=1)  # a run at the slot is its slot
        slot = croniter(campaign.schedule.cron, local).get_prev(datetime)
        return f"cron-{slot.astimezone(UTC):%Y%m%dT%H%MZ}"
    return request_id


@dataclass
class PlanReport:
    """What one call of plan_run did; `status` is the campaign's status map and the run's details."""

    campaign_id: str
    run_id: str
    dry_run: bool = False
    disabled: bool = False
    written: int = 0  # rows this call wrote (0 when the run's rows were there already)
    batches: int = 0  # the run's batches on the sends topic
    published: int = 0  # of those, published by this call
    funnel: Funnel = field(default_factory=lambda: Funnel({}, {}))
    outbox: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "disabled" if self.disabled else "dry_run" if self.dry_run else "planned"

    def status(self, at: datetime) -> dict[str, Any]:
        return {
            "state": self.state,
            "run_id": self.run_id,
            "audience": self.funnel.audience,
            "outcomes": self.funnel.outcomes(),
            "reasons": self.funnel.reasons(),
            "batches": self.batches,
            "published": self.published,
            "written": self.written,
            "outbox": list(self.outbox),
            "at": at,
        }


def plan_run(
    warehouse: Warehouse,
    documents: DocumentStore,
    bus: EventBus,
    campaign: Campaign,
    template: MessageTemplate,
    policy: MessagingPolicy,
    run_at: datetime,
    run_id: str,
    *,
    salt: str,
    links: Links | None = None,
    outbox: BlobStore | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    preview: int = PREVIEW,
    clock: Callable[[], datetime] = _utcnow,
) -> PlanReport:
    """Plan one run of a validated campaign at `run_at` and publish its batches (module docstring).

    `salt`: the privacy salt the gate matches erasures with; `links`: the preference centre (for
    the previews); `dry_run`: the deployment's (the campaign's own counts too), which needs an
    outbox. A disabled campaign plans nothing, except as a dry run.
    """
    if template.id != campaign.template_id:
        raise ValueError(f"campaign {campaign.id} uses template {campaign.template_id}, not {template.id}")
    if not 0 < batch_size <= ledger.MAX_BATCH_IDS:
        raise ValueError(f"batch_size must be 1 to {ledger.MAX_BATCH_IDS}")
    dry = dry_run or campaign.dry_run
    if dry and outbox is None:
        raise ValueError("a dry run needs an outbox for its previews")
    report = PlanReport(campaign.id, run_id, dry_run=dry)
    if not campaign.enabled and not dry:
        report.disabled = True
        return report
    [known] = ledger.run(warehouse, "run_planned", {"campaign_id": campaign.id, "run_id": run_id})
    if int(known["planned"]) == 0:
        table, batches = plan_rows(warehouse, campaign, policy, run_at, run_id, salt, dry, batch_size)
        report.batches = batches.get(run_id, 0)
        if table.num_rows:
            warehouse.append_arrow(DELIVERIES, table)
        report.written = table.num_rows
    else:
        report.batches = int(known["batches"])
    if dry:
        assert outbox is not None
        report.outbox = write_preview(warehouse, outbox, campaign, template, policy, run_id, links, run_at, preview)
    else:
        report.published = publish_batches(warehouse, documents, bus, campaign.id, run_id, report.batches, clock)
    report.funnel = ledger.funnel(warehouse, campaign.id, run_id)
    log.info(
        "campaign run planned",
        extra={
            "campaign_id": campaign.id,
            "run_id": run_id,
            "dry_run": dry,
            "written": report.written,
            "batches": report.batches,
            "published": report.published,
            "reasons": report.funnel.reasons(),
        },
    )
    return report


def plan_rows(
    warehouse: Warehouse,
    campaign: Campaign,
    policy: MessagingPolicy,
    run_at: datetime,
    run_id: str,
    salt: str,
    dry: bool,
    batch_size: int,
    audience: Audience | None = None,
    numbered: Mapping[str, int] | None = None,
) -> tuple[pa.Table, dict[str, int]]:
    """Every delivery row of the run (or of the runs `audience` names), as one Arrow table, and each
    run's batches: its sends numbered in delivery id order after the run's `numbered` batches."""
    columns: dict[str, list[Any]] = {name: [] for name in _PER_ROW}
    for part in plan_decisions(warehouse, campaign, policy, run_at, run_id, salt, audience=audience):
        _add_rows(columns, part)
    ids, outcomes = columns["delivery_id"], columns["outcome"]
    sends = sorted((r, d) for r, d, o in zip(columns["run_id"], ids, outcomes, strict=True) if o == Outcome.SEND)
    number: dict[str, int] = {}
    batches: dict[str, int] = {}
    for run, members in groupby(sends, key=lambda pair: pair[0]):
        before = (numbered or {}).get(run, 0)
        for index, (_, delivery) in enumerate(members):
            number[delivery] = before + index // batch_size + 1
            batches[run] = number[delivery]
    count = len(ids)
    values: dict[str, Any] = {
        **columns,
        "campaign_id": [campaign.id] * count,
        "kind": [campaign.kind.value] * count,
        "batch": [number.get(d) for d in ids],
        "dry_run": [dry] * count,
        "planned_at": [run_at] * count,
    }
    table = pa.table({name: pa.array(values[name], kind) for name, kind in DELIVERY_TYPES.items()})
    return table, batches


_PER_ROW: Final = (
    "delivery_id", "run_id", "site_id", "customer_id", "channel", "address", "outcome", "reason", "release_at",
    "consent_event_id", "subscription_event_id", "night_consent_event_id", "fallback_of",
)  # fmt: skip
Audience = Mapping[str, Mapping[str, str]]
"""site -> customer -> run: the people a plan is restricted to, each in the run of their entry
(a triggered campaign's, shared/services/triggers.py)."""


@dataclass(frozen=True)
class ChannelPlan:
    """One site's decisions on one channel of the chain, in the gate's order: what a run's delivery
    rows are made of, and what a preview explains (shared/services/campaign_preview.py)."""

    site_id: str
    rules: Rules
    answers: Sequence[consent.Eligibility]
    decisions: Sequence[Decision]
    delivery_ids: Sequence[str]
    run_ids: Sequence[str]  # each row's run: one run, or each entry's of a triggered campaign
    sent: Mapping[str, int]  # advertising messages sent to each customer since rules.cap_since
    replaces: Mapping[str, str] | None  # on a fallback channel: customer -> the delivery it replaces


def plan_decisions(
    warehouse: Warehouse,
    campaign: Campaign,
    policy: MessagingPolicy,
    run_at: datetime,
    run_id: str,
    salt: str,
    *,
    audience: Audience | None = None,
) -> Iterator[ChannelPlan]:
    """The run's decisions, site by site and channel by channel along the chain, reading only.

    Per site: the gate on the first channel for every member, the cap's counts once, then
    `Rules.decide_all`; members skipped for a reason of the channel (PLAN_FALLBACKS) are decided
    again on the next channel, and so on. With `audience`, only the customers it names, each in
    its own run, instead of the segment's members in `run_id`.
    """
    plans: list[tuple[str, str | None, list[str] | None, Mapping[str, str]]]
    if audience is None:
        sites = ledger.run(warehouse, "segment_sites", {"segment_id": campaign.segment_id})
        plans = [(str(row["site_id"]), campaign.segment_id, None, {}) for row in sites]
    else:
        plans = [(site, None, list(runs), runs) for site, runs in audience.items() if runs]
    for site, segment_id, customer_ids, runs in plans:
        sent: dict[str, int] | None = None
        replaces: dict[str, str] | None = None
        for channel in campaign.channels:
            answers = consent.eligible_audience(
                warehouse, site, campaign.purpose, channel, run_at, salt,
                segment_id=segment_id, customer_ids=customer_ids,
            )  # fmt: skip
            if replaces is not None:
                answers = [a for a in answers if a.customer_id in replaces]
            if not answers:
                break
            rules = prepare(campaign, channel, policy, run_at)
            if sent is None:
                since = rules.cap_since
                sent = ledger.sent_counts(warehouse, site, segment_id, since, customer_ids or ()) if since else {}
            decisions = rules.decide_all(answers, sent)
            run_ids = [runs.get(a.customer_id, run_id) for a in answers]
            ids = [
                ledger.delivery_id(campaign.id, r, a.customer_id, channel)
                for r, a in zip(run_ids, answers, strict=True)
            ]
            yield ChannelPlan(site, rules, answers, decisions, ids, run_ids, sent, replaces)
            falling = {
                answer.customer_id: delivery
                for answer, decision, delivery in zip(answers, decisions, ids, strict=True)
                if decision.outcome is Outcome.SKIP and decision.reason in PLAN_FALLBACKS
            }
            if not falling:
                break
            replaces = falling


def _add_rows(columns: dict[str, list[Any]], part: ChannelPlan) -> None:
    """One site's rows on one channel, appended to `columns`."""
    add = {name: columns[name].append for name in _PER_ROW}
    channel, site, replaces = part.rules.channel.value, part.site_id, part.replaces
    rows = zip(part.answers, part.decisions, part.delivery_ids, part.run_ids, strict=True)
    for answer, decision, delivery, run in rows:
        customer = answer.customer_id
        add["delivery_id"](delivery)
        add["run_id"](run)
        add["site_id"](site)
        add["customer_id"](customer)
        add["channel"](channel)
        add["address"](None if decision.reason is MessageReason.ERASED else answer.address)  # keep no trace
        add["outcome"](decision.outcome.value)
        add["reason"](decision.reason.value)
        add["release_at"](decision.release_at)
        add["consent_event_id"](decision.consent_event_id)
        add["subscription_event_id"](decision.subscription_event_id)
        add["night_consent_event_id"](decision.night_consent_event_id)
        add["fallback_of"](replaces[customer] if replaces is not None else None)


def _batches(warehouse: Warehouse, campaign_id: str, run_id: str, first: int, last: int) -> list[tuple[int, list[str]]]:
    """The plan's batches first..last: (number, delivery ids)."""
    params = {"campaign_id": campaign_id, "run_id": run_id, "first_batch": first, "last_batch": last}
    table = ledger.run_arrow(warehouse, "batches", params)
    pairs = zip(table.column("batch").to_pylist(), table.column("delivery_id").to_pylist(), strict=True)
    return [(int(number), [d for _, d in members]) for number, members in groupby(pairs, key=lambda p: p[0])]


def publish_batches(
    warehouse: Warehouse,
    documents: DocumentStore,
    bus: EventBus,
    campaign_id: str,
    run_id: str,
    batches: int,
    clock: Callable[[], datetime],
) -> int:
    """Publish the run's batches not published yet, each marked once the bus acknowledged it."""
    published = 0
    for first in range(1, batches + 1, PAGE_BATCHES):
        for number, ids in _batches(warehouse, campaign_id, run_id, first, min(first + PAGE_BATCHES - 1, batches)):
            key = batch_key(campaign_id, run_id, str(number))
            if documents.get(BATCHES, key) is not None:
                continue
            batch = Batch(campaign_id, run_id, key, tuple(ids))
            bus.publish(TOPIC, batch.data(), batch.attributes())
            marker = {"campaign_id": campaign_id, "run_id": run_id, "label": str(number), "deliveries": len(ids)}
            documents.set(BATCHES, key, {**marker, "published_at": clock()})
            published += 1
    return published


def write_preview(
    warehouse: Warehouse,
    outbox: BlobStore,
    campaign: Campaign,
    template: MessageTemplate,
    policy: MessagingPolicy,
    run_id: str,
    links: Links | None,
    run_at: datetime,
    count: int,
) -> list[str]:
    """The first `count` planned sends rendered as they would go, in one JSON file of the outbox."""
    first = _batches(warehouse, campaign.id, run_id, 1, 1)
    ids = first[0][1][:count] if first else []
    renderer = compiled(template)
    messages: list[dict[str, Any]] = []
    for row in ledger.recipients(warehouse, ids):
        item: dict[str, Any] = {"delivery_id": row.delivery_id, "customer_id": row.customer_id, "channel": row.channel}
        made = render(renderer, template, campaign, policy, row, links, run_at)
        if isinstance(made, RenderFailed):
            item |= {"skipped": made.reason.value, "detail": made.detail}
        else:
            item |= {"to": made.to, "subject": made.subject, "text": made.text, "html": made.html}
            item["headers"] = dict(made.headers)
        messages.append(item)
    body = {"campaign_id": campaign.id, "run_id": run_id, "messages": messages}
    name = f"campaigns/{campaign.id}/{run_id.replace('/', '_')}/preview.json"
    data = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
    return [outbox.write(name, data, "application/json")]


# -- holds ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold(Delivery):
    """A held delivery release_held found due."""

    hold_key: str  # 'plan', or the id of the held event deliver recorded
    expired: bool


@dataclass
class ReleaseReport:
    released: int = 0
    expired: int = 0
    batches: int = 0


def release_held(
    warehouse: Warehouse,
    bus: EventBus,
    now: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    max_delay: timedelta = RELEASE_MAX_DELAY,
) -> ReleaseReport:
    """Publish the held deliveries whose release time has come (deliver decides them again), each
    with a `released` event written once its batch is on the bus; holds found more than
    `max_delay` late are skipped as hold_expired. Run it every few minutes."""
    oldest = now - max_delay
    params = {"now": now, "oldest": oldest, "scan_from": oldest - RELEASE_LOOKBACK}
    holds = [
        Hold(
            str(r["delivery_id"]),
            str(r["campaign_id"]),
            str(r["run_id"]),
            str(r["site_id"]),
            str(r["customer_id"]),
            str(r["channel"]),
            str(r["hold_key"]),
            bool(r["expired"]),
        )  # fmt: skip
        for r in ledger.run(warehouse, "release_due", params)
    ]
    report = ReleaseReport()
    expired = [
        event_row(h, Event.SKIPPED, now, code=SendCode.HOLD_EXPIRED, key=f"expired {h.hold_key}")
        for h in holds
        if h.expired
    ]
    ledger.record_events(warehouse, expired)
    report.expired = len(expired)
    due = [h for h in holds if not h.expired]
    for (campaign_id, run_id), group in groupby(due, key=lambda h: (h.campaign_id, h.run_id)):
        members = list(group)
        for start in range(0, len(members), batch_size):
            part = members[start : start + batch_size]
            label = f"release {now.isoformat()} {start // batch_size + 1}"
            batch = Batch(
                campaign_id, run_id, batch_key(campaign_id, run_id, label), tuple(h.delivery_id for h in part)
            )
            bus.publish(TOPIC, batch.data(), batch.attributes())
            events = [event_row(h, Event.RELEASED, now, key=h.hold_key) for h in part]
            ledger.record_events(warehouse, events)
            report.batches += 1
            report.released += len(part)
    log.info("holds released", extra={"released": report.released, "expired": report.expired, "at": now})
    return report

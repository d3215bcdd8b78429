"""Triggered campaigns: one message to each entry, `delay` after it, planned on the messaging tick.

An **entry** is a member's entry into the campaign's segment (`audiences.segment_members.entered_at`,
the run time of the build that added them) or a collected event of the trigger's name (`raw.event`
by `event_name`, `raw.conv` by `conv_type`) whose person refinement has resolved. Each tick (and
each build of a trigger segment: `after_build`) reads the entries now due: the delay passed, not
expired, still members at the last build, and not answered yet by a row of the campaign. They are
planned by the campaign engine itself (`send_messages.plan_rows` restricted to these customers:
the same gate, caps, policy, fallbacks and rows) and their batches published as plan_run publishes.

**Never twice.** An entry is answered once a row of the campaign is planned for its customer at or
after it, and an event also once a row names its run, so a redelivered tick, an overlapping one or
a later one plans nobody twice. Each row's run is its entry's: `entry-<entered_at>` (everyone a
build added shares it) or `event-<event id>`; so the same entry always gives the same delivery id,
and deliver's claims send it once even if two plans raced. A tick that fails after writing its rows
publishes nothing more itself; the next ticks publish what is missing (`trigger_runs.sql`, the
runs of the last RESUME), each batch once (send_batches).

**Again.** A member who leaves and comes back is a new entry (a later entered_at), as is an event
after the message that answered the previous one; events before a message are answered by it.

**First-time visitors.** The gate reads consent and addresses through refined.identities, so an
event whose person refinement has not resolved (a new visitor, a new member id) waits for the
refinement that does (`waiting`), until it expires; its delay and expiry count from the event.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.messaging import ledger
from shared.messaging.campaigns import CAMPAIGNS, Campaign, MessagingPolicy, TriggerWhen
from shared.messaging.ledger import BATCHES, DELIVERIES, batch_key
from shared.messaging.templates import MessageTemplate
from shared.ports import DocumentStore, EventBus, Warehouse
from shared.ports.blobs import BlobStore
from shared.services.deliver import Links
from shared.services.send_messages import BATCH_SIZE, JOB, PREVIEW, plan_rows, publish_batches, write_preview

log = logging.getLogger(__name__)

RESUME: Final = timedelta(minutes=30)
"""How far back a tick looks for trigger runs whose batches a failed tick left unpublished."""
ENTRY_RUN: Final = "entry-"
EVENT_RUN: Final = "event-"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Entry:
    """One entry due: the customer, the run it is planned in, and when it happened."""

    site_id: str
    customer_id: str
    run_id: str
    at: datetime


@dataclass(frozen=True)
class Due:
    entries: list[Entry]
    waiting: int = 0  # events whose person refinement has not resolved yet


def due_entries(warehouse: Warehouse, campaign: Campaign, now: datetime) -> Due:
    """The campaign's entries due at `now` and not answered yet (module docstring), one per customer."""
    trigger = campaign.trigger
    if trigger is None:
        raise ValueError(f"campaign {campaign.id} has no trigger")
    due_until = now - trigger.delay
    oldest = due_until - trigger.expire
    params: dict[str, Any] = {
        "campaign_id": campaign.id,
        "segment_id": campaign.segment_id,
        "due_until": due_until,
        "oldest": oldest,
    }
    if trigger.when is TriggerWhen.SEGMENT_ENTRY:
        rows = ledger.run(warehouse, "trigger_entries", params)
        return Due([_entry(r, ENTRY_RUN + _stamp(r["entered_at"]), r["entered_at"]) for r in rows])
    params |= {
        "event_type": trigger.event_type,
        "event_name": trigger.event_name,
        "first_day": oldest.astimezone(UTC).date(),
        "run_prefix": EVENT_RUN,
    }
    rows = ledger.run(warehouse, "trigger_events", params)
    entries = [_entry(r, EVENT_RUN + str(r["event_id"]), r["event_ts"]) for r in rows if r["customer_id"]]
    return Due(entries, waiting=sum(1 for r in rows if not r["customer_id"]))


def _entry(row: Mapping[str, Any], run_id: str, at: datetime) -> Entry:
    return Entry(str(row["site_id"]), str(row["customer_id"]), run_id, at)


def _stamp(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


@dataclass
class TriggerReport:
    """What one tick did for a triggered campaign; `status` is the campaign's status map."""

    campaign_id: str
    dry_run: bool = False
    disabled: bool = False
    due: int = 0  # entries planned this tick
    waiting: int = 0  # events of people refinement has not resolved yet
    written: int = 0  # delivery rows written (fallbacks included)
    runs: list[str] = field(default_factory=list)  # the runs this tick planned rows in
    published: int = 0  # batches published, a failed tick's left-overs included
    outcomes: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    outbox: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.disabled:
            return "disabled"
        if self.dry_run:
            return "dry_run"
        return "planned" if self.written or self.published else "idle"

    @property
    def run_id(self) -> str | None:
        """The last run planned this tick."""
        return self.runs[-1] if self.runs else None

    def status(self, at: datetime) -> dict[str, Any]:
        trigger = {"due": self.due, "waiting": self.waiting, "runs": len(self.runs)}
        return {
            "state": self.state,
            "run_id": self.run_id,
            "trigger": trigger,
            "outcomes": dict(self.outcomes),
            "reasons": dict(self.reasons),
            "published": self.published,
            "written": self.written,
            "outbox": list(self.outbox),
            "at": at,
        }


def plan_triggers(
    warehouse: Warehouse,
    documents: DocumentStore,
    bus: EventBus,
    campaign: Campaign,
    template: MessageTemplate,
    policy: MessagingPolicy,
    now: datetime,
    *,
    salt: str,
    links: Links | None = None,
    outbox: BlobStore | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    clock: Callable[[], datetime] = _utcnow,
) -> TriggerReport:
    """Plan a triggered campaign's entries due at `now` and publish their batches (module docstring).

    The arguments are plan_run's. A disabled campaign plans nothing, except as a dry run, whose rows
    answer its entries as a live run's would (so the same delivery id is never planned twice) and
    whose first sends are rendered into the outbox.
    """
    if campaign.trigger is None:
        raise ValueError(f"campaign {campaign.id} has no trigger")
    if template.id != campaign.template_id:
        raise ValueError(f"campaign {campaign.id} uses template {campaign.template_id}, not {template.id}")
    dry = dry_run or campaign.dry_run
    if dry and outbox is None:
        raise ValueError("a dry run needs an outbox for its previews")
    report = TriggerReport(campaign.id, dry_run=dry)
    if not campaign.enabled and not dry:
        report.disabled = True
        return report
    due = due_entries(warehouse, campaign, now)
    report.waiting = due.waiting
    known = {str(r["run_id"]): int(r["batches"]) for r in ledger.run(warehouse, "trigger_runs", {
        "campaign_id": campaign.id, "since": now - RESUME})}  # fmt: skip
    if due.entries:
        audience: dict[str, dict[str, str]] = {}
        for entry in due.entries:
            audience.setdefault(entry.site_id, {})[entry.customer_id] = entry.run_id
        table, batches = plan_rows(warehouse, campaign, policy, now, "", salt, dry, batch_size, audience, known)
        if table.num_rows:
            warehouse.append_arrow(DELIVERIES, table)
        report.due, report.written = len(due.entries), table.num_rows
        report.runs = sorted(set(table.column("run_id").to_pylist()))
        report.outcomes = dict(Counter(table.column("outcome").to_pylist()))
        report.reasons = dict(sorted(Counter(table.column("reason").to_pylist()).items()))
        known |= batches
        if dry and batches:
            assert outbox is not None
            run = min(batches)
            report.outbox = write_preview(warehouse, outbox, campaign, template, policy, run, links, now, PREVIEW)
    if not dry:
        report.published = _publish_missing(warehouse, documents, bus, campaign.id, known, clock)
    log.info(
        "triggered campaign planned",
        extra={
            "campaign_id": campaign.id,
            "due": report.due,
            "waiting": report.waiting,
            "written": report.written,
            "runs": len(report.runs),
            "published": report.published,
            "reasons": report.reasons,
        },
    )
    return report


def _publish_missing(
    warehouse: Warehouse,
    documents: DocumentStore,
    bus: EventBus,
    campaign_id: str,
    runs: Mapping[str, int],
    clock: Callable[[], datetime],
) -> int:
    """Publish the batches of `runs` (run -> its last batch) without a send_batches marker: a run
    whose markers are all there costs no query."""
    published = 0
    for run_id, batches in sorted(runs.items()):
        keys = (batch_key(campaign_id, run_id, str(number)) for number in range(1, batches + 1))
        if all(documents.get(BATCHES, key) is not None for key in keys):
            continue
        published += publish_batches(warehouse, documents, bus, campaign_id, run_id, batches, clock)
    return published


def triggered(documents: DocumentStore) -> dict[str, Mapping[str, Any]]:
    """The enabled campaigns with a trigger: the tick plans each (an invalid one stops with its
    status.error, as any campaign run does)."""
    return {
        campaign_id: doc
        for campaign_id, doc in documents.list(CAMPAIGNS)
        if doc.get("enabled") is True and isinstance(doc.get("trigger"), Mapping)
    }


def after_build(documents: DocumentStore, bus: EventBus, topic: str, built: Collection[str]) -> str | None:
    """Ask send_messages to plan, now, the enabled campaigns triggered on entry into a segment a
    build just rebuilt, instead of at the next tick; the message id, or None if none."""
    wanted = sorted(
        campaign_id
        for campaign_id, doc in triggered(documents).items()
        if doc["trigger"].get("when") == TriggerWhen.SEGMENT_ENTRY.value and doc.get("segment_id") in built
    )
    if not wanted:
        return None
    body = {"job": JOB, "campaign_ids": wanted}
    return bus.publish(topic, json.dumps(body).encode(), {"job": JOB})


@dataclass(frozen=True)
class Latency:
    """From a beacon to the delivery row it brought about."""

    customer_id: str | None  # who the beacon resolves to (None: refinement has not resolved it yet)
    collected_at: datetime  # when collect accepted the beacon
    planned_at: datetime | None  # the first row of the campaign for that customer since; None: not yet

    @property
    def latency(self) -> timedelta | None:
        return self.planned_at - self.collected_at if self.planned_at is not None else None


def trigger_latency(warehouse: Warehouse, campaign_id: str, event_id: str) -> Latency | None:
    """The latency of a triggered campaign for one beacon (any raw event table, by its event id):
    the campaign's first delivery row planned for the beacon's customer after collect accepted the
    beacon; None when no beacon has that id. `planned_at` is the planning tick's time, the rows
    being written within that tick."""
    rows = ledger.run(warehouse, "trigger_latency", {"campaign_id": campaign_id, "event_id": event_id})
    if not rows:
        return None
    [row] = rows
    return Latency(row["customer_id"], row["collected_at"], row["planned_at"])

"""The delivery ledger: the plan's rows, the results' events, and the messages between the jobs.

`audiences.deliveries` holds one row per campaign run, customer and channel, written before any
provider call (send_messages plans them; deliver adds a fallback's row when a channel fails), and
`audiences.delivery_events` what became of each: sent, delivered, failed, ... (EVENTS). Both are
keyed by ids derived from what they stand for, so a retried job or a redelivered report writes the
same ids again and every statement reading them counts one row per id.

The jobs talk over the `sends` topic in batches of delivery ids (`Batch`); whether a delivery was
sent is decided by its claim in the document store (shared/services/deliver.py), never by these
tables, which a crash may leave a few events short: a redelivered batch writes them again.
docs/campaigns.md#sending describes the columns for segments and reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import pyarrow as pa

from shared.ports import Warehouse
from shared.sql import run_statement, run_statement_arrow

DELIVERIES: Final = "audiences.deliveries"
EVENTS: Final = "audiences.delivery_events"
TOPIC: Final = "sends"
CLAIMS: Final = "deliveries"  # Firestore: one claim document per delivery and attempt
BATCHES: Final = "send_batches"  # Firestore: a published batch, and whether deliver finished it
MAX_BATCH_IDS: Final = 1000  # delivery ids one message may carry (~40 KB of JSON)


class Event(StrEnum):
    """What happened to a delivery (`delivery_events.event`)."""

    SENDING = "sending"  # the claim was taken but the send's outcome is not known yet (a timeout)
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the provider reports it arrived
    FAILED = "failed"  # refused for this recipient, or undelivered
    BOUNCED = "bounced"  # an e-mail's hard bounce (the address was unsubscribed)
    HELD = "held"  # not now: release_held sends it again at release_at
    RELEASED = "released"  # release_held sent a hold to be decided again
    SKIPPED = "skipped"  # decided against at send time (code: the reason)
    UNKNOWN = "unknown"  # the provider cannot tell whether a timed-out send arrived: never resent
    OPTED_OUT = "opted_out"  # the provider says the person opted out (the address was unsubscribed)
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"  # the recipient reported the e-mail as spam (the address was unsubscribed)


class SendCode(StrEnum):
    """Why deliver skipped or held a delivery for a reason of its own (beside MessageReason's)."""

    ADDRESS_CHANGED = "address_changed"  # the gate now picks another address for the channel
    CAMPAIGN_DISABLED = "campaign_disabled"
    CAMPAIGN_DRY_RUN = "campaign_dry_run"  # set to dry run after its batches went out
    CAMPAIGN_INVALID = "campaign_invalid"  # the campaign, its template or the policy no longer validate
    CHANNEL_REMOVED = "channel_removed"  # no longer in the campaign's chain
    NO_SENDER = "no_sender"  # this deployment has no adapter for the channel
    HOLD_EXPIRED = "hold_expired"  # release_held found the hold too late to send


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def delivery_id(campaign_id: str, run_id: str, customer_id: str, channel: str) -> str:
    """The idempotency key of one message: the same campaign run, customer and channel, the same id."""
    return _digest(campaign_id, run_id, customer_id, channel)


def event_id(delivery: str, event: str, code: str | None = None, key: str = "") -> str:
    """The id of one event of a delivery; `key` tells apart events that may recur (each attempt's,
    each hold's release). A provider's report passes none, so its redeliveries share one id."""
    return _digest(delivery, event, code or "", key)


def batch_key(campaign_id: str, run_id: str, label: str) -> str:
    """The id of one batch message (its BATCHES document): the plan's are labelled by number."""
    return _digest(campaign_id, run_id, label)


# -- messages on the sends topic ----------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """One message of the sends topic: deliveries of one campaign run for deliver to send."""

    campaign_id: str
    run_id: str
    key: str  # batch_key: the same for a republished batch
    delivery_ids: tuple[str, ...]

    def data(self) -> bytes:
        body = {"campaign_id": self.campaign_id, "run_id": self.run_id, "batch": self.key}
        return json.dumps({**body, "delivery_ids": list(self.delivery_ids)}, separators=(",", ":")).encode()

    def attributes(self) -> dict[str, str]:
        return {"campaign_id": self.campaign_id}


def parse_batch(data: bytes) -> Batch:
    """A sends message, or ValueError saying what is wrong (the handler acknowledges those)."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"a sends message must be JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("a sends message must be a JSON object")
    for name in ("campaign_id", "run_id", "batch"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ValueError(f"{name}: must be a non-empty string")
    ids = body.get("delivery_ids")
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_BATCH_IDS:
        raise ValueError(f"delivery_ids: must be a list of 1 to {MAX_BATCH_IDS} delivery ids")
    if not all(isinstance(i, str) and len(i) == 32 and all(c in "0123456789abcdef" for c in i) for i in ids):
        raise ValueError("delivery_ids: every id is 32 lower-case hex characters")
    return Batch(body["campaign_id"], body["run_id"], body["batch"], tuple(dict.fromkeys(ids)))


# -- statements ---------------------------------------------------------------------------------------


def run(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """sql/messaging/<name>.sql with the parameters it uses."""
    return run_statement(warehouse, f"messaging/{name}", params)


def run_arrow(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> pa.Table:
    return run_statement_arrow(warehouse, f"messaging/{name}", params)


class LedgerError(RuntimeError):
    """The warehouse refused ledger rows; the same call may be retried (the same ids)."""


def _insert(warehouse: Warehouse, table: str, rows: Sequence[Mapping[str, Any]], id_field: str) -> None:
    if not rows:
        return
    result = warehouse.insert_rows(table, rows, [str(row[id_field]) for row in rows])
    if result.errors:
        reasons = "; ".join(f"row {e.index}: {e.reason}" for e in result.errors[:3])
        raise LedgerError(f"{table} refused {len(result.errors)} of {len(rows)} rows: {reasons}")


def record_events(warehouse: Warehouse, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append event rows (event_row); a row whose id is there already is a copy, ignored by readers."""
    _insert(warehouse, EVENTS, rows, "event_id")


def insert_deliveries(warehouse: Warehouse, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add delivery rows one at a time (a fallback's); the plan appends its rows in one load."""
    _insert(warehouse, DELIVERIES, rows, "delivery_id")


@dataclass(frozen=True)
class Delivery:
    """Which delivery an event is about: the ids every delivery_events row names."""

    delivery_id: str
    campaign_id: str
    run_id: str
    site_id: str
    customer_id: str
    channel: str


@dataclass(frozen=True)
class Recipient(Delivery):
    """A delivery row as deliver reads it, with the recipient's profile values for the template."""

    address: str | None
    kind: str
    outcome: str
    reason: str
    fallback_of: str | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)
    sent: int = 0  # advertising messages sent to the customer in the cap's window (recipients' `since`)


PROFILE_COLUMNS: Final = (
    "given_name", "family_name", "full_name", "member_id", "email", "phone", "region", "rfm", "age",
    "recency_days", "odr_ltv", "rvn_ltv",
)  # fmt: skip
"""The template variables recipients.sql reads (templates.PROFILE_VARIABLES)."""


def recipients(warehouse: Warehouse, ids: Sequence[str], since: datetime | None = None) -> list[Recipient]:
    """The delivery rows of `ids` that exist, with their profile values and, when `since` is given,
    the advertising messages each customer was sent since then; in delivery id order."""
    if not ids:
        return []
    rows = run(warehouse, "recipients", {"delivery_ids": ",".join(ids), "since": since})
    return [
        Recipient(
            delivery_id=str(r["delivery_id"]),
            campaign_id=str(r["campaign_id"]),
            run_id=str(r["run_id"]),
            site_id=str(r["site_id"]),
            customer_id=str(r["customer_id"]),
            channel=str(r["channel"]),
            address=r["address"],
            kind=str(r["kind"]),
            outcome=str(r["outcome"]),
            reason=str(r["reason"]),
            fallback_of=r["fallback_of"],
            profile={name: r[name] for name in PROFILE_COLUMNS},
            sent=int(r["sent"]),
        )
        for r in rows
    ]


def event_row(
    recipient: Delivery,
    event: Event,
    at: datetime,
    *,
    code: str | None = None,
    provider_id: str | None = None,
    release_at: datetime | None = None,
    key: str = "",
) -> dict[str, Any]:
    """One delivery_events row about a delivery."""
    return {
        "event_id": event_id(recipient.delivery_id, event, code, key),
        "delivery_id": recipient.delivery_id,
        "campaign_id": recipient.campaign_id,
        "run_id": recipient.run_id,
        "site_id": recipient.site_id,
        "customer_id": recipient.customer_id,
        "channel": recipient.channel,
        "event": event.value,
        "code": code,
        "provider_id": provider_id,
        "release_at": release_at.isoformat() if release_at is not None else None,
        "at": at.isoformat(),
    }


def sent_counts(
    warehouse: Warehouse, site_id: str, segment_id: str | None, since: datetime, customer_ids: Sequence[str] = ()
) -> dict[str, int]:
    """Advertising messages sent to each member of a segment (and each of `customer_ids`) on a site
    since `since`; members with none are absent."""
    params = {"site_id": site_id, "segment_id": segment_id, "since": since, "customer_ids": list(customer_ids)}
    return {str(r["customer_id"]): int(r["sent"]) for r in run(warehouse, "sent_counts", params)}


# -- the funnel ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    """A run's delivery rows by (channel, fallback, outcome, reason) and its deliveries by (channel,
    event): the funnel audience -> eligible -> held / skipped by reason -> sent -> delivered."""

    planned: Mapping[tuple[str, bool, str, str], int]
    events: Mapping[tuple[str, str], int]
    failures: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (channel, code): failed or bounced

    @property
    def audience(self) -> int:
        """Recipients the run considered: its rows on the first channel."""
        return sum(n for (_, fallback, _, _), n in self.planned.items() if not fallback)

    def outcomes(self) -> dict[str, int]:
        """Delivery rows by outcome (send, hold, skip), fallbacks included."""
        totals: dict[str, int] = {}
        for (_, _, outcome, _), n in self.planned.items():
            totals[outcome] = totals.get(outcome, 0) + n
        return totals

    def reasons(self) -> dict[str, int]:
        """Delivery rows by reason code (eligible, no_address, frequency_capped, ...)."""
        totals: dict[str, int] = {}
        for (_, _, _, reason), n in self.planned.items():
            totals[reason] = totals.get(reason, 0) + n
        return dict(sorted(totals.items()))

    def event_totals(self) -> dict[str, int]:
        """Deliveries with each event, all channels together."""
        totals: dict[str, int] = {}
        for (_, event), n in self.events.items():
            totals[event] = totals.get(event, 0) + n
        return dict(sorted(totals.items()))


def funnel(warehouse: Warehouse, campaign_id: str, run_id: str) -> Funnel:
    params = {"campaign_id": campaign_id, "run_id": run_id}
    planned = {
        (str(r["channel"]), bool(r["fallback"]), str(r["outcome"]), str(r["reason"])): int(r["deliveries"])
        for r in run(warehouse, "funnel", params)
    }
    events = {
        (str(r["channel"]), str(r["event"])): int(r["deliveries"]) for r in run(warehouse, "event_counts", params)
    }
    failures = {
        (str(r["channel"]), str(r["code"])): int(r["deliveries"]) for r in run(warehouse, "failure_codes", params)
    }
    return Funnel(planned, events, failures)

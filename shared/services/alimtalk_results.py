"""AlimTalk results into the ledgers, and the fallback they start: from NHN's webhook and from polling.

NHN accepts an AlimTalk at once and learns later whether it arrived (shared/messaging/alimtalk.py).
Each result about a delivery of ours (its recipientGroupingKey) becomes a delivery event through
provider_reports (delivered; failed with the code; ids from the delivery, the event and the code,
so a result reported twice adds nothing). A failure a text message can still reach (3018 inactive,
3019 not a KakaoTalk user, 3020 blocked) also moves the delivery's claim from `sent` to `failed`
and publishes its delivery id on the `sends` topic again, in a batch of its own: deliver then finds
the claim failed and falls back to the campaign's next channel, deciding the whole policy again
for it, exactly as for a refusal at send time. The batch's key comes from its delivery ids, so a
result seen twice (a webhook redelivered, a poll after the webhook) publishes the same batch, which
deliver has finished already.

The webhook is deduplicated on its `hooksId` (`alimtalk_hooks/{hooksId}`, written once everything
is recorded): a redelivered webhook is answered at once. Polling is the safety net for webhooks
that never came (`poll_results`, run by the messaging tick): deliveries accepted between 10
minutes and 3 days ago with no result yet (`pending_sends`, which the SMS safety net shares), asked
per NHN request (`<requestId>/<recipientSeq>` names the message), at most `limit` per call.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from shared.messaging import ledger
from shared.messaging.alimtalk import AlimTalkResult
from shared.messaging.ledger import CLAIMS, MAX_BATCH_IDS, TOPIC, Batch, Event, batch_key, event_row, recipients
from shared.ports import DocumentStore, EventBus, Warehouse
from shared.ports.channels import ALIMTALK, ChannelError
from shared.services.delivery_events import DeliveryEvent, Report
from shared.services.provider_reports import record_provider_report

log = logging.getLogger(__name__)

HOOKS: Final = "alimtalk_hooks"
POLL_AFTER: Final = timedelta(minutes=10)
POLL_WINDOW: Final = timedelta(days=3)  # NHN keeps 3005 (unconfirmed) open up to 3 days
POLL_LIMIT: Final = 5000
MAX_ATTEMPTS: Final = 20  # deliver's: a delivery's claims are <id>, <id>.1, ... <id>.19


class ResultSource(Protocol):
    """What polling needs of the channel (shared/adapters/nhn_alimtalk.py NhnAlimTalk)."""

    def request_results(self, request_id: str) -> list[AlimTalkResult]: ...


@dataclass(frozen=True)
class ResultPorts:
    warehouse: Warehouse
    documents: DocumentStore
    bus: EventBus


@dataclass(frozen=True)
class Outcome:
    events: int = 0  # ledger rows written about our deliveries
    unmatched: int = 0  # results naming no delivery of ours
    fallbacks: int = 0  # deliveries published again for their next channel
    duplicate: bool = False  # a webhook already recorded: nothing done


def record_results(ports: ResultPorts, results: Sequence[AlimTalkResult], received_at: datetime) -> Outcome:
    """Results into the ledger, and the fallback of those a text message can still reach (their
    failed event is the one deliver records from the claim: the same id, so one event)."""
    moved, published = _fall_back(ports, [r for r in results if r.falls_back and r.delivery_id], received_at)
    events = tuple(
        DeliveryEvent(r.delivery_id, ALIMTALK, kind, received_at, r.provider_id, r.message_status, r.result_code)
        for r in results
        if (kind := r.event) is not None and r.delivery_id not in moved
    )
    recorded = record_provider_report(ports.warehouse, Report(events))
    return Outcome(recorded.events + len(moved), recorded.unmatched, published)


def record_webhook(
    ports: ResultPorts, hooks_id: str, results: Sequence[AlimTalkResult], received_at: datetime
) -> Outcome:
    """One webhook, once: a `hooksId` recorded before is answered without doing anything again."""
    key = hashlib.sha256(hooks_id.encode()).hexdigest()[:40]  # any text NHN sends is a safe document id
    if ports.documents.get(HOOKS, key) is not None:
        return Outcome(duplicate=True)
    outcome = record_results(ports, results, received_at)
    counts = {"events": outcome.events, "unmatched": outcome.unmatched, "fallbacks": outcome.fallbacks}
    ports.documents.set(HOOKS, key, {"received_at": received_at, "results": len(results), **counts})
    return outcome


def _fall_back(ports: ResultPorts, results: Sequence[AlimTalkResult], at: datetime) -> tuple[set[str], int]:
    """Mark each delivery's sent claim failed with the code, write its failed event as deliver writes
    one from a claim (keyed by the attempt), and publish the deliveries again, a batch per campaign
    run. A claim still waiting for its send's outcome is left: its lookup will find the same failure
    and fall back itself. Returns the deliveries moved and how many were published."""
    codes = {str(r.delivery_id): str(r.result_code) for r in results}
    rows = recipients(ports.warehouse, sorted(codes))
    runs: dict[tuple[str, str], list[str]] = {}
    events: list[dict[str, Any]] = []
    for row in rows:
        failed = (
            _fail_claim(ports.documents, row.delivery_id, codes[row.delivery_id], at)
            if row.channel == ALIMTALK
            else None
        )
        if failed is None:
            continue
        attempt, claim = failed
        when = claim.get("updated_at") or at
        provider = claim.get("provider_id")
        events.append(event_row(row, Event.FAILED, when, code=claim["code"], provider_id=provider, key=f"a{attempt}"))
        runs.setdefault((row.campaign_id, row.run_id), []).append(row.delivery_id)
    ledger.record_events(ports.warehouse, events)
    published = 0
    for (campaign_id, run_id), ids in sorted(runs.items()):
        for start in range(0, len(ids), MAX_BATCH_IDS):
            chunk = tuple(ids[start : start + MAX_BATCH_IDS])
            label = "alimtalk-fallback:" + hashlib.sha256(",".join(chunk).encode()).hexdigest()[:32]
            batch = Batch(campaign_id, run_id, batch_key(campaign_id, run_id, label), chunk)
            ports.bus.publish(TOPIC, batch.data(), batch.attributes())
            published += len(chunk)
    if published:
        log.info("alimtalk fallbacks published", extra={"deliveries": published})
    return {e["delivery_id"] for e in events}, published


def _fail_claim(
    documents: DocumentStore, delivery_id: str, code: str, at: datetime
) -> tuple[int, dict[str, Any]] | None:
    """The delivery's last claim (its attempt and document), moved from sent to failed; one failed
    already is returned as it is; None for any other state."""
    last: tuple[int, str, dict[str, Any]] | None = None
    for attempt in range(MAX_ATTEMPTS):
        key = delivery_id if attempt == 0 else f"{delivery_id}.{attempt}"
        found = documents.get(CLAIMS, key)
        if found is None:
            break
        last = (attempt, key, found)
    if last is None:
        return None
    attempt, key, claim = last
    if claim.get("state") == "failed":
        return attempt, claim
    if claim.get("state") != "sent":
        return None
    update = {"state": "failed", "code": code, "updated_at": at, "reported": True}
    documents.set(CLAIMS, key, update, merge=True)
    return attempt, {**claim, **update}


def pending_sends(
    warehouse: Warehouse, channel: str, now: datetime, *, after: timedelta, window: timedelta, limit: int
) -> dict[str, str]:
    """Deliveries on `channel` NHN accepted between `window` and `after` ago with no result yet
    (sql/messaging/nhn_pending.sql), at most `limit`: delivery id -> `<requestId>/<recipientSeq>`.
    The SMS safety net (shared/services/sms_results.py) asks the same."""
    params = {"channel": channel, "since": now - window, "until": now - after, "limit": limit}
    return {str(r["delivery_id"]): str(r["provider_id"]) for r in ledger.run(warehouse, "nhn_pending", params)}


def request_ids(pending: Mapping[str, str]) -> list[str]:
    """The NHN requests that sent these deliveries, each once, in order (the ids start with the time)."""
    return sorted({provider.rsplit("/", 1)[0] for provider in pending.values()})


@dataclass(frozen=True)
class Polled:
    pending: int = 0  # deliveries without a result that were asked about
    requests: int = 0  # NHN requests queried
    outcome: Outcome = Outcome()


def poll_results(
    ports: ResultPorts,
    source: ResultSource,
    now: datetime,
    *,
    after: timedelta = POLL_AFTER,
    window: timedelta = POLL_WINDOW,
    limit: int = POLL_LIMIT,
) -> Polled:
    """Ask NHN about AlimTalk deliveries accepted between `window` and `after` ago with no result yet
    and record what it says (the webhook's way): the safety net for webhooks that never arrived."""
    pending = pending_sends(ports.warehouse, ALIMTALK, now, after=after, window=window, limit=limit)
    found: list[AlimTalkResult] = []
    asked = 0
    for request_id in request_ids(pending):
        try:
            results = source.request_results(request_id)
        except ChannelError as exc:
            # NHN down or throttling: keep what was found; the next tick asks about the rest. The
            # tick's other work (holds released, one-offs, triggers) must not wait for NHN.
            log.warning("alimtalk results: NHN did not answer", extra={"request_id": request_id, "error": str(exc)})
            break
        asked += 1
        found.extend(r for r in results if r.delivery_id in pending)
    outcome = record_results(ports, found, now)
    if pending:
        counts = {"pending": len(pending), "requests": asked, "events": outcome.events}
        log.info("alimtalk results polled", extra={**counts, "fallbacks": outcome.fallbacks})
    return Polled(len(pending), asked, outcome)

"""Delivery results of Korean SMS/LMS sent through NHN Cloud, polled by the messaging tick.

NHN accepts a send at once (deliver records it `sent`, provider id `<requestId>/<recipientSeq>`) and
learns later whether the carrier delivered it. Twilio reports by webhook (functions/twilio_status);
nothing brings NHN's SMS results, so without this poll a Korean SMS stays `sent` and the report
counts none delivered. The poll asks about the SMS deliveries NHN accepted between 10 minutes and 3
days ago with no delivered, failed or canceled event yet (alimtalk_results.pending_sends: Twilio's
SIDs have no slash and are left out), at most `limit`, one NHN request at a time and at most
`max_requests` a call (a personal text is a request of its own, so this bounds the tick's calls;
the rest waits for the next tick, oldest requests first). Each recipient's state is the one
`NhnSms.lookup` reads (1000 delivered; a failed status or another result code failed with that
code; else pending: nothing recorded) and goes through provider_reports as the webhooks' events do:
ids from the delivery, the event and the code, so a result seen twice adds nothing.

No fallback: a carrier's failure after NHN accepted the text ends the delivery, as Twilio's
`undelivered` does; SMS is the last text channel of a chain. An NHN outage or throttle stops the
poll where it is: what was found is recorded and the next tick asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from shared.ports import Warehouse
from shared.ports.channels import SMS, ChannelError, SendResult
from shared.services.alimtalk_results import POLL_AFTER, POLL_LIMIT, POLL_WINDOW, pending_sends, request_ids
from shared.services.delivery_events import DeliveryEvent, EventKind, Report
from shared.services.provider_reports import record_provider_report

log = logging.getLogger(__name__)

MAX_REQUESTS: Final = 500  # NHN requests asked per call (each one or two list queries)
RESULTS: Final[Mapping[str, EventKind]] = {"delivered": "delivered", "failed": "failed"}
"""A listed message's SendResult state -> its event; any other state is still pending."""


class SmsResultSource(Protocol):
    """What polling needs of the SMS channel (shared/adapters/nhn_sms.py NhnSms)."""

    def request_results(self, request_id: str) -> Mapping[str, SendResult]: ...


@dataclass(frozen=True)
class SmsPolled:
    pending: int = 0  # deliveries without a result found in the window
    requests: int = 0  # NHN requests asked about
    events: int = 0  # delivered and failed events recorded
    unmatched: int = 0  # results whose delivery has no planned row (erased since)
    stopped: str | None = None  # why the poll stopped before asking every request (an outage, a throttle)


def poll_sms_results(
    warehouse: Warehouse,
    source: SmsResultSource,
    now: datetime,
    *,
    after: timedelta = POLL_AFTER,
    window: timedelta = POLL_WINDOW,
    limit: int = POLL_LIMIT,
    max_requests: int = MAX_REQUESTS,
) -> SmsPolled:
    """Ask NHN about SMS deliveries accepted between `window` and `after` ago with no result yet and
    record the delivered and failed ones (module docstring)."""
    pending = pending_sends(warehouse, SMS, now, after=after, window=window, limit=limit)
    events: list[DeliveryEvent] = []
    asked = 0
    stopped: str | None = None
    for request_id in request_ids(pending)[:max_requests]:
        try:
            found = source.request_results(request_id)
        except ChannelError as exc:  # the next tick asks again
            stopped = str(exc)
            log.warning("sms results: NHN did not answer", extra={"request_id": request_id, "error": stopped})
            break
        asked += 1
        events.extend(
            DeliveryEvent(delivery_id, SMS, kind, now, result.provider_id, result.state, result.code)
            for delivery_id, result in found.items()
            if delivery_id in pending and (kind := RESULTS.get(result.state)) is not None
        )
    recorded = record_provider_report(warehouse, Report(tuple(events)))
    polled = SmsPolled(len(pending), asked, recorded.events, recorded.unmatched, stopped)
    if pending:
        log.info("sms results polled", extra={"pending": polled.pending, "requests": asked, "events": polled.events})
    return polled

"""A recipient's complaint about one of our e-mails into the ledgers, and the complaint rate's alarm.

A complaint (an ARF `abuse` or `fraud` report, shared/messaging/feedback.py) names the delivery by
the original's Message-ID. It becomes a `complained` event of that delivery and an opt-out of the
address the delivery went to, on the delivery's site (source `complaint`, with its `unsubscribed`
event), through provider_reports as every provider signal goes; the consent gate then refuses the
address for every message on that site until the person subscribes again. The delivery's own
address is unsubscribed whatever Original-Rcpt-To says: providers redact it, and it may be the
address the mail was forwarded to.

A report about no e-mail delivery of ours (another sender's Message-ID, a dry run, a delivery
erased since) records nothing and is counted; a complaint already recorded (the delivery has a
`complained` event) records nothing again, and a retry after a failure between the opt-out and the
events writes the opt-out with its first time, so its row id is the same.

Then the site's complaint rate over RATE_WINDOW, complaints against e-mails sent: mailbox providers
hold senders to it (Gmail: below 0.1 %, never reaching 0.3 %; ../shared/notes/activation.md §4).
At RATE_ALARM or more, once at least `min_sent` e-mails were sent (below that a single complaint is
a high rate and says little), the ERROR `email complaint rate high` is logged for an alert policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from shared.consent.vocabulary import Channel, SubscriptionSource
from shared.messaging import ledger
from shared.messaging.feedback import Feedback
from shared.ports import Warehouse
from shared.ports.channels import EMAIL
from shared.services.delivery_events import DeliveryEvent, OptOutSignal, Report
from shared.services.provider_reports import record_provider_report
from shared.timestamps import as_datetime

log = logging.getLogger(__name__)

RATE_WINDOW: Final = timedelta(days=7)
RATE_ALARM: Final = 0.001  # 0.1 %
MIN_SENT: Final = 1000
SEEN_WINDOW: Final = timedelta(days=30)
"""How far back a complaint recorded before is looked for (forwarders retry for days, not weeks)."""


@dataclass(frozen=True)
class ComplaintRate:
    """A site's e-mails sent and complained about over the window."""

    site_id: str
    complaints: int
    sent: int

    @property
    def rate(self) -> float | None:
        return self.complaints / self.sent if self.sent else None


@dataclass(frozen=True)
class ComplaintRecorded:
    recorded: bool = False  # the event and the opt-out were written
    unmatched: bool = False  # about no e-mail delivery of ours
    duplicate: bool = False  # recorded before
    rate: float | None = None  # the site's complaint rate once recorded (None: nothing sent in the window)


def record_complaint(
    warehouse: Warehouse, complaint: Feedback, now: datetime, *, min_sent: int = MIN_SENT
) -> ComplaintRecorded:
    """Record one complaint (module docstring); ValueError for a report that is no complaint."""
    if not complaint.complaint:
        raise ValueError(f"a {complaint.feedback_type} report is no complaint")
    delivery_id = complaint.delivery_id
    params = {"delivery_id": delivery_id, "since": now - SEEN_WINDOW}
    rows = ledger.run(warehouse, "complaint_delivery", params) if delivery_id is not None else []
    if not rows:
        log.warning("complaint about no delivery of ours", extra={"message_id": complaint.message_id})
        return ComplaintRecorded(unmatched=True)
    delivery = rows[0]
    if delivery["complained"]:
        return ComplaintRecorded(duplicate=True)
    assert delivery_id is not None
    at = as_datetime(delivery["opted_out_at"]) or now
    kind = complaint.feedback_type
    event = DeliveryEvent(delivery_id, EMAIL, "complained", at, complaint.message_id, kind, kind)
    address = delivery["address"]
    signal = OptOutSignal(Channel.EMAIL, address, SubscriptionSource.COMPLAINT, f"arf {kind}", at, delivery_id)
    record_provider_report(warehouse, Report((event,), (signal,) if address else ()))
    rate = complaint_rate(warehouse, str(delivery["site_id"]), now)
    if rate.rate is not None and rate.sent >= min_sent and rate.rate >= RATE_ALARM:
        log.error(
            "email complaint rate high",
            extra={"site_id": rate.site_id, "rate": rate.rate, "complaints": rate.complaints, "sent": rate.sent},
        )
    return ComplaintRecorded(recorded=True, rate=rate.rate)


def complaint_rate(warehouse: Warehouse, site_id: str, now: datetime) -> ComplaintRate:
    """The site's e-mail complaints against e-mails sent over the RATE_WINDOW before `now`."""
    [row] = ledger.run(warehouse, "complaint_rate", {"site_id": site_id, "since": now - RATE_WINDOW})
    return ComplaintRate(site_id, int(row["complaints"] or 0), int(row["sent"] or 0))

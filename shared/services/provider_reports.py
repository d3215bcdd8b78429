"""A provider's report into the ledgers, including opt-outs that name no delivery of ours.

deliver.record_report stores the events and opt-outs that name one of our deliveries (a status
callback carries its id). An inbound STOP reply names only the number it came from: it is recorded
on every site that planned an SMS to that number within REPLY_WINDOW, since a person answering
STOP to the sending number means every message from it. A number no site messaged in that window
is logged and left: an opt-out needs a site, and guessing one would unsubscribe nobody's customer.

Each opt-out recorded is also an `unsubscribed` event of the delivery it answers (for a STOP reply,
the site's latest delivery to the number), so segments and reports can count who left after which
message. Event ids come from the delivery and the signal, so a report delivered twice adds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final

from shared.messaging import ledger
from shared.messaging.ledger import Delivery, Event, event_row
from shared.ports import Warehouse
from shared.services import consent
from shared.services.deliver import Recorded, record_report
from shared.services.delivery_events import Report

log = logging.getLogger(__name__)

REPLY_WINDOW: Final = timedelta(days=90)
"""How far back a STOP reply is matched to the sites that messaged the number."""
_DELIVERY_FIELDS: Final = ("delivery_id", "campaign_id", "run_id", "site_id", "customer_id", "channel")


def record_provider_report(warehouse: Warehouse, report: Report) -> Recorded:
    """Store what the report says (module docstring); the counts of what was recorded."""
    named = Report(report.events, tuple(s for s in report.opt_outs if s.delivery_id))
    recorded = record_report(warehouse, named)  # its opt-outs' unsubscribed events included
    unsubscribed: list[dict[str, Any]] = []
    opt_outs = unmatched = 0
    for signal in report.opt_outs:
        if signal.delivery_id:
            continue
        since = signal.effective_at - REPLY_WINDOW
        params = {"channel": signal.channel.value, "address": signal.address, "since": since}
        rows = ledger.run(warehouse, "address_sites", params)
        latest = [Delivery(*(str(r[k]) for k in _DELIVERY_FIELDS)) for r in rows]
        for delivery in latest:
            consent.record_opt_out(
                warehouse, delivery.site_id, signal.channel, signal.address, signal.source, signal.reason,
                signal.effective_at, request_id=signal.request_id,
            )  # fmt: skip
            unsubscribed.append(event_row(delivery, Event.UNSUBSCRIBED, signal.effective_at, code=signal.reason))
        opt_outs += len(latest)
        unmatched += 0 if latest else 1
    ledger.record_events(warehouse, unsubscribed)
    if unmatched:
        log.warning("opt-out from an address no site messaged", extra={"unmatched": unmatched})
    return replace(recorded, opt_outs=recorded.opt_outs + opt_outs, unmatched=recorded.unmatched + unmatched)

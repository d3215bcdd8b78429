"""deliver: send one batch of planned deliveries, each at most once (CloudEvent pushed from `sends`).

shared/services/deliver.py does the work. A message that is not a batch is logged and acknowledged
(a retry cannot fix it); a batch left unfinished (a throttle, an outage, a claim another worker
holds) raises, so Pub/Sub redelivers it with backoff and the settled deliveries are skipped then.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.messaging.ledger import parse_batch
from shared.pubsub_events import decode_pubsub
from shared.services.deliver import deliver_batch

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def deliver(cloud_event: CloudEvent) -> None:
    message = decode_pubsub(cloud_event.data, flask.request.get_json(silent=True))
    try:
        batch = parse_batch(message.data)
    except ValueError as exc:
        log.error("sends message refused", extra={"message_id": message.message_id, "error": str(exc)})
        return
    report = deliver_batch(bootstrap.deliver_ports(), batch, datetime.now(UTC))
    log.info(
        "batch delivered",
        extra={
            "message_id": message.message_id,
            "campaign_id": report.campaign_id,
            "batch": report.batch,
            "done_before": report.done_before,
            **report.counts(),
        },
    )

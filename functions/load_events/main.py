"""load_events: beacon messages from Pub/Sub into the raw tables (CloudEvent)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.pubsub_events import decode_pubsub
from shared.services.load import load_message

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def load_events(cloud_event: CloudEvent) -> None:
    # The attempt count is only in the push body (shared.pubsub_events); Flask parsed it already.
    message = decode_pubsub(cloud_event.data, flask.request.get_json(silent=True))
    report = load_message(
        message.data,
        bootstrap.warehouse(),
        now=datetime.now(UTC),
        delivery_attempt=message.delivery_attempt,
        max_attempts=bootstrap.settings().max_delivery_attempts,
        attributes=message.attributes,
        bus_key=bootstrap.settings().bus_key,
    )
    log.info(
        "beacon message loaded",
        extra={
            "message_id": message.message_id,
            "inserted": report.inserted,
            "duplicates": report.duplicates,
            "bad_rows": report.bad_rows,
        },
    )

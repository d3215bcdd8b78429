"""load_dead_letters: messages Pub/Sub gave up on, stored whole in raw.bad_rows (CloudEvent)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.pubsub_events import decode_pubsub
from shared.services.load import bury_dead_letter

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def load_dead_letters(cloud_event: CloudEvent) -> None:
    message = decode_pubsub(cloud_event.data)
    bury_dead_letter(message.data, message.attributes, bootstrap.warehouse(), now=datetime.now(UTC))
    log.warning("dead-lettered message stored as a bad row", extra={"message_id": message.message_id})

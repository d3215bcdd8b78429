"""validate_config: check a segment the moment a marketer writes it and put the verdict on it (CloudEvent).

Triggered by Firestore `google.cloud.firestore.document.v1.written` on `segments/{id}`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.services.segments import handle_segment_write
from shared.tam.events import EventError, decode_document_event

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def validate_config(cloud_event: CloudEvent) -> None:
    try:
        change = decode_document_event(cloud_event.data, cloud_event.get("subject"))
    except EventError as exc:  # a redelivery would not read any better: log it and acknowledge
        log.error("unreadable segment event", extra={"event_id": cloud_event.get("id"), "error": str(exc)})
        return
    outcome = handle_segment_write(
        change,
        bootstrap.warehouse(),
        bootstrap.documents(),
        now=datetime.now(UTC),
        min_interval_minutes=bootstrap.schedule_config().min_interval_minutes,  # as sync_schedules applies it
        event_id=cloud_event.get("id"),
    )
    log.info("segment config checked", extra={"segment_id": change.doc_id, "outcome": outcome})

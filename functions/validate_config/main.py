"""validate_config: check a marketer's configuration document the moment it is written and put the
verdict on it (CloudEvent).

Triggered by Firestore `google.cloud.firestore.document.v1.written` on `segments/{id}`,
`destinations/{id}`, `publications/{id}`, `campaigns/{id}`, `message_templates/{id}` and
`messaging/{id}` (infra/functions.tf); each collection has its service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.services import messaging_config, publication_config
from shared.services.segments import handle_segment_write
from shared.tam.events import EventError, decode_document_event

log = logging.getLogger(__name__)

# Each collection's service, the bootstrap accessor of the port it needs beyond warehouse and
# documents (looked up at call time), and its log line; segments are the default.
HANDLERS: dict[str, tuple[Callable[..., str], str | None, str]] = {
    publication_config.DESTINATIONS: (publication_config.handle_destination_write, "secrets", "publishing"),
    publication_config.PUBLICATIONS: (publication_config.handle_publication_write, "secrets", "publishing"),
    **{
        collection: (messaging_config.handle_messaging_write, "available_channels", "messaging")
        for collection in (messaging_config.CAMPAIGNS, messaging_config.TEMPLATES, messaging_config.POLICY_COLLECTION)
    },
}


@functions_framework.cloud_event
def validate_config(cloud_event: CloudEvent) -> None:
    try:
        change = decode_document_event(cloud_event.data, cloud_event.get("subject"))
    except EventError as exc:  # a redelivery would not read any better: log it and acknowledge
        log.error("unreadable config event", extra={"event_id": cloud_event.get("id"), "error": str(exc)})
        return
    handle, port, kind = HANDLERS.get(change.collection, (handle_segment_write, None, "segment"))
    outcome = handle(
        change,
        bootstrap.warehouse(),
        bootstrap.documents(),
        *([getattr(bootstrap, port)()] if port is not None else []),
        now=datetime.now(UTC),
        min_interval_minutes=bootstrap.schedule_config().min_interval_minutes,  # as sync_schedules applies it
        event_id=cloud_event.get("id"),
    )
    log.info(
        f"{kind} config checked", extra={"collection": change.collection, "doc_id": change.doc_id, "outcome": outcome}
    )

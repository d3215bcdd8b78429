"""sync_schedules: segment schedules in Firestore become Cloud Scheduler jobs (CloudEvent, `jobs` topic)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.pubsub_events import decode_pubsub
from shared.scheduling import job_of
from shared.scheduling import sync_schedules as sync

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def sync_schedules(cloud_event: CloudEvent) -> None:
    message = decode_pubsub(cloud_event.data)
    if job_of(message.data, message.attributes) != "sync_schedules":
        log.info("not a sync_schedules message; ignored", extra={"message_id": message.message_id})
        return
    run_id = f"sync_schedules-{message.message_id}" if message.message_id else None  # a redelivery rewrites it
    documents, scheduler, config = bootstrap.documents(), bootstrap.job_scheduler(), bootstrap.schedule_config()
    report = sync(documents, scheduler, config, now=datetime.now(UTC), run_id=run_id)
    log.info("schedules synced", extra={"run_id": report.run_id, "counts": report.counts(), "errors": report.errors})

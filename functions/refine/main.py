"""refine: raw events into sessions, identities, profiles and RFM (CloudEvent, `jobs` topic).

A message {"job": "refine", "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"} runs one refinement over
that range of event dates (default: yesterday and today in Asia/Seoul). A message for another job
is ignored: the Pub/Sub emulator delivers every job's messages to every subscriber.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.pubsub_events import decode_pubsub
from shared.scheduling import job_of
from shared.services import refine as refinement

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def refine(cloud_event: CloudEvent) -> None:
    message = decode_pubsub(cloud_event.data)
    if job_of(message.data, message.attributes) != refinement.JOB:
        log.info("not a refine message; ignored", extra={"message_id": message.message_id})
        return
    now = datetime.now(UTC)
    try:
        job = refinement.parse_job(message.data, now)
    except ValueError as exc:  # a retry cannot fix the message: acknowledge it
        log.error("refine message rejected", extra={"message_id": message.message_id, "reason": str(exc)})
        return
    run_id = f"refine-{message.message_id}" if message.message_id else None  # a redelivery rewrites it
    refinement.refine(bootstrap.warehouse(), bootstrap.documents(), job.date_from, job.date_to, now, run_id=run_id)

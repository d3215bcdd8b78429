"""discover: K-Means discovery segments over the profiles (CloudEvent, `jobs` topic).

A message {"job": "discover"} (optionally "engine": "sklearn" | "bigquery_ml") runs one discovery
with Firestore `discoveries/config`. Bad config or data that cannot be clustered is acknowledged:
the error is on `runs/{run}` and `discoveries/config.status`, and a retry would fail the same way.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.discovery.features import ConfigError, DiscoveryError
from shared.pubsub_events import decode_pubsub
from shared.scheduling import job_of
from shared.services import discover as discovery

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def discover(cloud_event: CloudEvent) -> None:
    message = decode_pubsub(cloud_event.data)
    if job_of(message.data, message.attributes) != discovery.JOB:
        log.info("not a discover message; ignored", extra={"message_id": message.message_id})
        return
    try:
        job = discovery.parse_job(message.data)
    except ValueError as exc:
        log.error("discover message rejected", extra={"message_id": message.message_id, "reason": str(exc)})
        return
    run_id = f"discover-{message.message_id}" if message.message_id else None  # a redelivery rewrites it
    try:
        discovery.discover(
            bootstrap.warehouse(), bootstrap.documents(), datetime.now(UTC), run_id=run_id, engine=job["engine"]
        )
    except (ConfigError, DiscoveryError) as exc:  # recorded on the documents; retrying cannot help
        log.warning("discover could not run", extra={"message_id": message.message_id, "reason": str(exc)})

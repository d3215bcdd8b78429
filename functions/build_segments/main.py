"""build_segments: evaluate every due segment into the audiences tables (CloudEvent from the jobs topic)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.ports import TransientError
from shared.pubsub_events import decode_pubsub
from shared.services import segments

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def build_segments(cloud_event: CloudEvent) -> None:
    published = segments.as_datetime(cloud_event.get("time")) or datetime.now(UTC)
    job = segments.parse_build_job(decode_pubsub(cloud_event.data).data, fallback=published)
    if job is None:
        return  # another job's message on the shared topic
    report = segments.build_segments(bootstrap.warehouse(), bootstrap.documents(), job.run_at, only=job.only)
    log.info(
        "segments built",
        extra={
            "run_at": job.run_at.isoformat(),
            "built": len(report.built),
            "not_due": len(report.not_due),
            "invalid": report.invalid,
            "failed": sorted(report.failed),
        },
    )
    if report.transient:  # redelivery rebuilds only these: the others are no longer due
        raise TransientError(f"segments failed on an outage: {', '.join(report.transient)}")

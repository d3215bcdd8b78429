"""privacy_requests: the pending Firestore `privacy_requests` erased or exported in batches
(CloudEvent, `jobs` topic, job=privacy_requests; docs/privacy.md)."""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.services import privacy

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def privacy_requests(cloud_event: CloudEvent) -> None:
    job = jobs.accept(cloud_event, privacy.JOB, jobs.body_only)
    if job is None:
        return
    run = privacy.process_requests(bootstrap.documents(), bootstrap.privacy_ports(), job.run_at, run_id=job.run_id)
    log.info("privacy requests processed", extra={"run_id": run.run_id, "done": run.done, "pending": run.pending})

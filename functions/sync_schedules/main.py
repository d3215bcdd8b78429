"""sync_schedules: segment and publication schedules in Firestore become Cloud Scheduler jobs (`jobs` topic)."""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.services import sync_schedules as service

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def sync_schedules(cloud_event: CloudEvent) -> None:
    job = jobs.accept(cloud_event, service.JOB, jobs.body_only)
    if job is None:
        return
    documents, scheduler, config = bootstrap.documents(), bootstrap.job_scheduler(), bootstrap.schedule_config()
    report = service.sync_schedules(documents, scheduler, config, now=job.run_at, run_id=job.run_id)
    log.info("schedules synced", extra={"run_id": report.run_id, "counts": report.counts(), "errors": report.errors})

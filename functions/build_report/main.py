"""build_report: the report page built and written to the files bucket's reports/, with its link in
Firestore reports/latest (CloudEvent, `jobs` topic, job=build_report; docs/report.md)."""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.services import report

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def build_report(cloud_event: CloudEvent) -> None:
    # A redelivery runs at the first delivery's time, so it rewrites the same dated page.
    job = jobs.accept(cloud_event, report.JOB, jobs.body_only, run_time="published")
    if job is None:
        return
    built = report.build_report(bootstrap.report_ports(), job.run_at, run_id=job.run_id)
    log.info("report built", extra={"run_id": job.run_id, "location": built.location, "bytes": built.bytes})

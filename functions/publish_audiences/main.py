"""publish_audiences: keep each publication's audience on its ad platform in step (CloudEvent from the jobs topic).

Messages come from a publication's schedule, from build_segments after it rebuilt a publication's
segment, or by hand; shared/services/publish_job.py reads them and runs each publication.
"""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.ports import TransientError
from shared.services.publish_audiences import JOB
from shared.services.publish_job import publish_job, run_publications

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def publish_audiences(cloud_event: CloudEvent) -> None:
    job = jobs.accept(cloud_event, JOB, publish_job, run_time="published")
    if job is None:
        return
    report = run_publications(bootstrap.publish_ports(), job.request, job.run_id or f"{JOB}-{job.run_at:%Y%m%dT%H%M%S}")
    log.info(
        "publications run",
        extra={
            "run_at": job.run_at.isoformat(),
            "states": {p: r.state for p, r in sorted(report.runs.items())},
            "skipped": report.skipped,
        },
    )
    if report.retry:  # redelivery: the ledger makes each retried publication send only the rest
        raise TransientError(f"publications to retry: {', '.join(report.retry)}")

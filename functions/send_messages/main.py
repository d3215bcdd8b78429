"""send_messages: plan campaign runs and fan their sends out on `sends` (CloudEvent from the jobs topic).

Messages come from a campaign's schedule (sync_schedules' cdp-cmp-* jobs), from the five-minute
tick that releases due holds and starts one-off campaigns, or by hand; shared/services/send_job.py
reads them and plans each campaign.
"""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.ports import TransientError
from shared.services.send_job import run_send_job, send_job
from shared.services.send_messages import JOB

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def send_messages(cloud_event: CloudEvent) -> None:
    job = jobs.accept(cloud_event, JOB, send_job, run_time="published")
    if job is None:
        return
    report = run_send_job(bootstrap.send_ports(), job.request, job.run_id or f"{JOB}-{job.run_at:%Y%m%dT%H%M%S}")
    released = report.released
    log.info(
        "campaigns run",
        extra={
            "run_at": job.run_at.isoformat(),
            "states": {c: r.state for c, r in sorted(report.runs.items())},
            "missing": report.missing,
            "released": released.released if released is not None else None,
            "expired": released.expired if released is not None else None,
        },
    )
    if report.retry:  # redelivery: a run's rows are written once, its batches published once
        raise TransientError(f"campaigns to retry: {', '.join(report.retry)}")

"""refine: raw events into sessions, identities, profiles and RFM (CloudEvent, `jobs` topic).

A message {"job": "refine", "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"} runs one refinement over
that range of event dates (default: yesterday and today in Asia/Seoul). A message for another job
is ignored: the Pub/Sub emulator delivers every job's messages to every subscriber.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.services import refine as refinement


@functions_framework.cloud_event
def refine(cloud_event: CloudEvent) -> None:
    job = jobs.accept(cloud_event, refinement.JOB, refinement.job_request)
    if job is None:
        return
    request = job.request
    refinement.refine(
        bootstrap.warehouse(),
        bootstrap.documents(),
        request.date_from,
        request.date_to,
        job.run_at,
        settings=bootstrap.refine_settings(),
        run_id=job.run_id,
    )

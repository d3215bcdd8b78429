"""build_segments: evaluate every due segment into the audiences tables (CloudEvent from the jobs topic)."""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.ports import TransientError
from shared.services import segments
from shared.services.publish_job import after_build
from shared.services.triggers import after_build as plan_entries

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def build_segments(cloud_event: CloudEvent) -> None:
    # Run at the publish time (or the message's run_at): a redelivery then finds built segments not due.
    job = jobs.accept(cloud_event, segments.JOB, segments.build_job, run_time="published")
    if job is None:
        return
    build = job.request
    report = segments.build_segments(
        bootstrap.warehouse(),
        bootstrap.documents(),
        build.run_at,
        only=build.only,
        min_interval_minutes=bootstrap.schedule_config().min_interval_minutes,  # as sync_schedules applies it
    )
    log.info(
        "segments built",
        extra={
            "run_at": build.run_at.isoformat(),
            "built": len(report.built),
            "not_due": len(report.not_due),
            "invalid": report.invalid,
            "failed": sorted(report.failed),
        },
    )
    if report.built:  # membership changed: the publications of these segments follow within this build
        try:
            after_build(
                bootstrap.documents(), bootstrap.bus(), bootstrap.schedule_config().topic, report.built, build.run_at
            )
        except Exception:  # noqa: BLE001 - the publications' own schedules still run; a retry would not rebuild
            log.exception("could not ask for the publications of the built segments to run")
        try:  # campaigns triggered on entry plan the new members now, not at the next tick
            plan_entries(bootstrap.documents(), bootstrap.bus(), bootstrap.schedule_config().topic, report.built)
        except Exception:  # noqa: BLE001 - the five-minute tick plans them all the same
            log.exception("could not ask for the triggered campaigns of the built segments to run")
    if report.transient:  # redelivery rebuilds only these: the others are no longer due
        raise TransientError(f"segments failed on an outage: {', '.join(report.transient)}")

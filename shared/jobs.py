"""The `jobs` topic's protocol, one function for every job handler to accept its message with.

Cloud Scheduler (infra/scheduler.tf, and the jobs sync_schedules manages) publishes a JSON object
naming the job, e.g. `{"job": "build_segments", "segment_id": "<id>"}`, with the attribute `job`,
which each job function's push subscription filters on. The Pub/Sub emulator ignores filters, so
locally every job function sees every job's message: `accept` checks the name before anything else.

A message a retry cannot fix (not JSON, or content the job refuses) is logged and acknowledged; a
redelivery of the same message gets the same run id, so it rewrites its run record instead of
adding one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from cloudevents.http import CloudEvent

from shared.ports.scheduler import JobSpec
from shared.pubsub_events import decode_pubsub
from shared.timestamps import as_datetime

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class AcceptedJob(Generic[T]):
    """A message for this job, read: the job's request, and the run's id and time."""

    job: str
    request: T  # what the job's parse made of the JSON body
    message_id: str
    run_id: str | None  # "<job>-<message id>"; None when the message has no id
    run_at: datetime


def job_of(data: bytes, attributes: Mapping[str, str]) -> str | None:
    """The job a `jobs` message names: the attribute, else the JSON body's "job"; None if neither."""
    if attributes.get("job"):
        return attributes["job"]
    try:
        body = json.loads(data or b"null")
    except ValueError:
        return None
    job = body.get("job") if isinstance(body, dict) else None
    return job if isinstance(job, str) else None


def job_body(data: bytes) -> dict[str, Any]:
    """The JSON object of a `jobs` message ({} when empty); ValueError saying what is wrong."""
    try:
        body = json.loads(data or b"{}")
    except ValueError as exc:
        raise ValueError(f"message is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("message must be a JSON object")
    return body


def body_only(body: dict[str, Any], _run_at: datetime) -> dict[str, Any]:
    """The parse of a job that takes nothing from its message but its name."""
    return body


def accept(
    cloud_event: CloudEvent,
    job: str,
    parse: Callable[[dict[str, Any], datetime], T],
    *,
    run_time: Literal["received", "published"] = "received",
) -> AcceptedJob[T] | None:
    """The job's request from a Pub/Sub CloudEvent of the jobs topic; None when there is none to run.

    None, logged, for another job's message (ignored) and for a body that is not a JSON object or
    that parse refuses with ValueError (rejected: acknowledged, since a retry would fail alike).
    parse gets the body and the run time: the time the message arrived, or with run_time="published"
    the CloudEvent's time (falling back to arrival), so that a redelivery runs at the time its first
    delivery did.
    """
    message = decode_pubsub(cloud_event.data)
    if job_of(message.data, message.attributes) != job:
        log.info(f"not a {job} message; ignored", extra={"message_id": message.message_id})
        return None
    now = datetime.now(UTC)
    run_at = (as_datetime(cloud_event.get("time")) or now) if run_time == "published" else now
    try:
        request = parse(job_body(message.data), run_at)
    except ValueError as exc:
        log.error(f"{job} message rejected", extra={"message_id": message.message_id, "reason": str(exc)})
        return None
    run_id = f"{job}-{message.message_id}" if message.message_id else None
    return AcceptedJob(job, request, message.message_id, run_id, run_at)


def fixed_job_spec(
    job: str,
    cron: str,
    time_zone: str = "Asia/Seoul",
    description: str = "",
    prefix: str = "cdp",
    topic: str = "jobs",
    body: Mapping[str, Any] | None = None,
) -> JobSpec:
    """A fixed job as infra/scheduler.tf declares it (name <prefix>-<job with - for _>, its `body`
    beside the job's name in the message), for the local runner."""
    message = {**(body or {}), "job": job}
    return JobSpec(f"{prefix}-{job.replace('_', '-')}", cron, time_zone, topic, message, description)

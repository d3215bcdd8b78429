"""Segment schedules: Firestore `segments` documents become scheduler jobs, kept in step by sync_schedules.

Marketers set `schedule` and `enabled` on a segment; nobody edits Cloud Scheduler by hand. The
`JobScheduler` port has one adapter per place jobs can live: Cloud Scheduler in production
(shared/adapters/cloud_scheduler.py) and an in-process cron runner locally
(shared/devstack/local_scheduler.py), which has no emulator to stand in for it.

A managed job publishes, like the fixed jobs of infra/scheduler.tf, a JSON message naming the job to
the `jobs` topic with the attribute `job` (which the subscriptions filter on); segment jobs add the
segment id: `{"job": "build_segments", "segment_id": "<id>"}`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shared.config import ConfigError
from shared.ports import DocumentStore

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
MAX_DESCRIPTION = 500  # Cloud Scheduler's limit


class JobRejected(ValueError):
    """The scheduler refused one job for its content (a cron it does not accept): not worth a retry."""


# Default of JobSpec.attributes: derive them from the message (a distinct object, so {} stays {}).
_DERIVED: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job, the same wherever it runs: Cloud Scheduler or the local runner."""

    name: str  # the job id, e.g. cdp-seg-dormant (Cloud Scheduler: letters, digits, - and _)
    cron: str  # unix-cron, five fields
    time_zone: str  # IANA name the cron is read in
    topic: str  # short Pub/Sub topic name, e.g. jobs
    message: Mapping[str, Any]  # published as JSON
    description: str = ""
    # Pub/Sub attributes; by default {"job": message["job"]}, which the push subscriptions filter on.
    # A job read back from a scheduler carries what it really has, so a drift shows as a difference.
    attributes: Mapping[str, str] = field(default_factory=lambda: _DERIVED)

    def __post_init__(self) -> None:
        if not JOB_ID.match(self.name):
            raise ValueError(f"job name {self.name!r} must be 1-500 letters, digits, '-' or '_'")
        json.dumps(self.message)  # fail here, not at publish time
        if self.attributes is _DERIVED:
            derived = {"job": str(self.message["job"])} if "job" in self.message else {}
            object.__setattr__(self, "attributes", derived)

    @property
    def data(self) -> bytes:
        """The message as Terraform's jsonencode writes it (sorted keys, no spaces), so fixed and
        synced jobs publish byte-identical shapes."""
        return json.dumps(self.message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class JobScheduler(Protocol):
    """Where scheduled jobs live. Names are job ids; implementations are idempotent."""

    def list_jobs(self, prefix: str) -> list[JobSpec]:
        """Every job whose name starts with prefix (and no other)."""
        ...

    def upsert_job(self, spec: JobSpec) -> None:
        """Create the job, or replace its schedule, target and description if it exists.

        Raises JobRejected when the scheduler refuses the job itself, TransientError on outages.
        """
        ...

    def delete_job(self, name: str) -> None:
        """Delete the job if it exists."""
        ...


@dataclass(frozen=True)
class ScheduleConfig:
    """What sync_schedules needs to know about the deployment (env CDP_SCHEDULE_* / CDP_JOBS_TOPIC)."""

    job_prefix: str = "cdp-seg-"  # every job we manage, and only those, starts with this
    topic: str = "jobs"
    segment_job: str = "build_segments"  # the job a segment's schedule fires
    default_time_zone: str = "Asia/Seoul"
    # The schedule of a segment that names none (None: such a segment gets no job). Segment parsing
    # (shared/tam) builds such segments daily at 07:00, so the job fires then too.
    default_cron: str | None = "0 7 * * *"
    min_interval_minutes: int = 60  # one BigQuery segment build per fire: bound the cost
    location: str = "asia-northeast3"  # Cloud Scheduler region

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScheduleConfig:
        env = os.environ if env is None else env
        prefix = env.get("CDP_SCHEDULE_JOB_PREFIX", cls.job_prefix)
        if not re.fullmatch(r"[A-Za-z0-9_-]{2,100}", prefix):
            raise ConfigError(f"CDP_SCHEDULE_JOB_PREFIX must be 2-100 letters, digits, '-' or '_', got {prefix!r}")
        minutes = env.get("CDP_SCHEDULE_MIN_INTERVAL_MINUTES", str(cls.min_interval_minutes))
        if not minutes.isdigit():
            raise ConfigError(f"CDP_SCHEDULE_MIN_INTERVAL_MINUTES must be a whole number, got {minutes!r}")
        return cls(
            job_prefix=prefix,
            topic=env.get("CDP_JOBS_TOPIC", cls.topic),
            segment_job=env.get("CDP_SCHEDULE_SEGMENT_JOB", cls.segment_job),
            default_time_zone=env.get("CDP_SCHEDULE_TIME_ZONE", cls.default_time_zone),
            default_cron=env.get("CDP_SCHEDULE_DEFAULT_CRON", cls.default_cron or "") or None,
            min_interval_minutes=int(minutes),
            location=env.get("CDP_SCHEDULER_LOCATION", cls.location),
        )


def job_of(data: bytes, attributes: Mapping[str, str]) -> str | None:
    """The job a `jobs` message names: the attribute, else the JSON body's "job"; None if neither.

    Handlers check it because the Pub/Sub emulator ignores subscription filters: locally every
    function on the topic sees every job's messages.
    """
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


def fixed_job_spec(
    job: str, cron: str, time_zone: str = "Asia/Seoul", description: str = "", prefix: str = "cdp", topic: str = "jobs"
) -> JobSpec:
    """A fixed job as infra/scheduler.tf declares it (name <prefix>-<job with - for _>), for the local runner."""
    return JobSpec(f"{prefix}-{job.replace('_', '-')}", cron, time_zone, topic, {"job": job}, description)


# --- Validation ------------------------------------------------------------------------------------

# Unix-cron as Cloud Scheduler reads it: numbers, ranges, steps, lists, and month/day names. croniter
# alone would also take seconds fields, @daily, L, # and H, which Cloud Scheduler rejects.
_NAME = r"(?:[0-9]{1,2}|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)"
_TOKEN = re.compile(rf"^(?:\*|{_NAME}(?:-{_NAME})?)(?:/[0-9]{{1,2}})?$", re.IGNORECASE)
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def cron_error(cron: Any, min_interval_minutes: int = 0, now: datetime | None = None) -> str | None:
    """Why a cron cannot be a schedule, in words a marketer can act on; None when it can."""
    if not isinstance(cron, str) or not cron.strip():
        return "must be a cron expression such as '0 6 * * *' (every day at 06:00)"
    fields = cron.split()
    if len(fields) != 5:
        return f"{cron!r} has {len(fields)} fields; use five: minute hour day-of-month month day-of-week"
    for name, value in zip(_FIELDS, fields, strict=True):
        if not all(_TOKEN.match(token) for token in value.split(",")):
            return f"{cron!r}: the {name} field {value!r} is not valid unix-cron"
    if not croniter.is_valid(cron):
        return f"{cron!r} has a value out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
    if min_interval_minutes > 0:
        gap = _shortest_gap(cron, now)
        if gap is None:
            return f"{cron!r} never fires"
        if gap < timedelta(minutes=min_interval_minutes):
            return (
                f"{cron!r} fires every {int(gap.total_seconds() // 60)} minutes; a segment may be built at most "
                f"once every {min_interval_minutes} minutes"
            )
    return None


def _shortest_gap(cron: str, now: datetime | None) -> timedelta | None:
    """The shortest gap among the next fires. croniter jumps straight to matching times, so a burst
    such as '*/5 9 1 1 *' shows up within the first dozen fires however far away it is."""
    it = croniter(cron, now or datetime(2025, 1, 1))
    try:
        fires = [it.get_next(datetime) for _ in range(64)]
    except Exception:  # noqa: BLE001 - croniter raises its own errors for dates that never come
        return None
    return min(b - a for a, b in zip(fires, fires[1:], strict=False))


def time_zone_error(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "must be an IANA time zone name such as Asia/Seoul"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}; use an IANA name such as Asia/Seoul or UTC"
    return None


def segment_job_name(segment_id: str, prefix: str) -> str:
    """The job id of a segment: readable when the id allows, else a slug plus a hash (job ids allow only
    letters, digits, - and _; Firestore ids allow almost anything)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", segment_id) and len(prefix) + len(segment_id) <= 500:
        return prefix + segment_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", segment_id).strip("-")[:40]
    digest = hashlib.sha256(segment_id.encode()).hexdigest()[:12]
    return f"{prefix}{slug}-{digest}" if slug else f"{prefix}{digest}"


def segment_job(segment_id: str, segment: Mapping[str, Any], config: ScheduleConfig, now: datetime) -> JobSpec | str:
    """The job a segment document asks for, or the reason it cannot have one (the message names the field)."""
    schedule = segment.get("schedule", {"cron": config.default_cron})
    if isinstance(schedule, str):
        schedule = {"cron": schedule}
    if not isinstance(schedule, Mapping):
        return "schedule: must be a map {cron, timezone} or a cron string"
    unknown = sorted(set(schedule) - {"cron", "timezone"})
    if unknown:
        return f"schedule.{unknown[0]}: unknown field; a schedule has cron and timezone"
    error = cron_error(schedule.get("cron"), config.min_interval_minutes, now)
    if error:
        return f"schedule.cron: {error}"
    time_zone = schedule.get("timezone") or config.default_time_zone
    error = time_zone_error(time_zone)
    if error:
        return f"schedule.timezone: {error}"
    name = segment.get("name")
    label = f"{segment_id} ({name})" if isinstance(name, str) and name and name != segment_id else segment_id
    description = f"Builds segment {label}. Managed by sync_schedules from Firestore segments/{segment_id}."
    return JobSpec(
        name=segment_job_name(segment_id, config.job_prefix),
        cron=" ".join(str(schedule["cron"]).split()),
        time_zone=str(time_zone),
        topic=config.topic,
        message={"job": config.segment_job, "segment_id": segment_id},
        description=description[:MAX_DESCRIPTION],
    )


# --- The sync service ------------------------------------------------------------------------------


@dataclass
class SyncReport:
    run_id: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # segment id -> message

    @property
    def status(self) -> str:
        return "partial" if self.errors else "ok"

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "deleted": len(self.deleted),
            "unchanged": len(self.unchanged),
            "errors": len(self.errors),
        }


def sync_schedules(
    documents: DocumentStore,
    scheduler: JobScheduler,
    config: ScheduleConfig,
    now: datetime,
    run_id: str | None = None,
) -> SyncReport:
    """Make the scheduler's jobs under config.job_prefix exactly the enabled, valid segment schedules.

    Creates missing jobs, updates changed ones, deletes those whose segment is gone, disabled or has an
    invalid schedule (a segment without one gets config.default_cron); jobs without the prefix are
    never read or touched. Each segment's outcome goes to its `status.schedule`, written only when it
    changes, so a repeated run writes nothing; the run goes to `runs/<run_id>`. One bad segment never
    stops the others.
    """
    started = time.monotonic()
    report = SyncReport(run_id or f"sync_schedules-{now.strftime('%Y%m%dT%H%M%S%fZ')}")
    try:
        segments = documents.list("segments")
        wanted: dict[str, tuple[str, JobSpec]] = {}
        outcomes: dict[str, dict[str, Any] | None] = {}
        for segment_id, segment in segments:
            outcomes[segment_id] = _plan(segment_id, segment, config, now, wanted, report)

        existing = {job.name: job for job in scheduler.list_jobs(config.job_prefix)}
        for name, (segment_id, spec) in sorted(wanted.items()):
            current = existing.get(name)
            if current == spec:
                report.unchanged.append(name)
                continue
            try:
                scheduler.upsert_job(spec)
            except JobRejected as exc:
                report.errors[segment_id] = f"schedule: the scheduler refused the job: {exc}"
                outcomes[segment_id] = {"state": "error", "error": report.errors[segment_id]}
                continue
            (report.updated if current else report.created).append(name)
        # A job refused on update goes too: it must not keep firing on the schedule the marketer replaced.
        keep = {*report.created, *report.updated, *report.unchanged}
        for name in sorted(set(existing) - keep):
            scheduler.delete_job(name)
            report.deleted.append(name)

        for segment_id, segment in segments:
            _record_outcome(documents, segment_id, segment, outcomes[segment_id], now)
    except Exception as exc:
        _record_run(documents, report, now, started, failure=exc)
        raise
    _record_run(documents, report, now, started)
    return report


def _plan(
    segment_id: str,
    segment: Mapping[str, Any],
    config: ScheduleConfig,
    now: datetime,
    wanted: dict[str, tuple[str, JobSpec]],
    report: SyncReport,
) -> dict[str, Any] | None:
    """Add the segment's job to wanted; return the status.schedule entry it should carry.

    Defaults as segment parsing has them: `enabled` missing is true, `schedule` missing is the default.
    """
    if segment.get("enabled", True) is not True:
        return {"state": "off", "reason": "the segment is not enabled"}
    if "schedule" not in segment and config.default_cron is None:
        return None
    planned = segment_job(segment_id, segment, config, now)
    if isinstance(planned, str):
        report.errors[segment_id] = planned
        return {"state": "error", "error": planned}
    if planned.name in wanted:  # two ids that sanitise to one job name
        other = wanted[planned.name][0]
        report.errors[segment_id] = f"schedule: job name {planned.name} is already used by segment {other}; rename it"
        return {"state": "error", "error": report.errors[segment_id]}
    wanted[planned.name] = (segment_id, planned)
    return {"state": "scheduled", "job": planned.name, "cron": planned.cron, "timezone": planned.time_zone}


def _schedule_entry(segment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The segment's status.schedule without its timestamp, for comparison."""
    status = segment.get("status")
    entry = status.get("schedule") if isinstance(status, Mapping) else None
    return {k: v for k, v in entry.items() if k != "updated_at"} if isinstance(entry, Mapping) else None


def _record_outcome(
    documents: DocumentStore, segment_id: str, listed: Mapping[str, Any], entry: dict[str, Any] | None, now: datetime
) -> None:
    """Write status.schedule if it differs (ignoring its timestamp), keeping the rest of status:
    validate_config and build_segments own the other keys. Before a write the document is read again,
    so a status they wrote during this run is not put back to what it was when the run listed it."""
    if _schedule_entry(listed) == entry:
        return
    segment = documents.get("segments", segment_id)
    if segment is None or _schedule_entry(segment) == entry:
        return  # deleted meanwhile, or already right
    status = segment.get("status")
    status = dict(status) if isinstance(status, Mapping) else {}
    if entry is None:
        status.pop("schedule", None)
    else:
        status["schedule"] = {**entry, "updated_at": now}
    documents.set("segments", segment_id, {"status": status}, merge=True)


def _record_run(
    documents: DocumentStore, report: SyncReport, now: datetime, started: float, failure: Exception | None = None
) -> None:
    duration = time.monotonic() - started
    record: dict[str, Any] = {
        "job": "sync_schedules",
        "status": "failed" if failure else report.status,
        "started_at": now,
        "finished_at": now + timedelta(seconds=duration),
        "duration_ms": round(duration * 1000),
        "counts": report.counts(),
        "created": report.created,
        "updated": report.updated,
        "deleted": report.deleted,
        "errors": report.errors,
    }
    if failure is not None:
        record["error"] = f"{type(failure).__name__}: {failure}"
    try:
        documents.set("runs", report.run_id, record)
    except Exception:  # noqa: BLE001 - a failed run record must not hide the run's own outcome
        log.exception("could not record the sync_schedules run", extra={"run_id": report.run_id})

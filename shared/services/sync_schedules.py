"""Segment, publication and campaign schedules: Firestore `segments`, `publications` and `campaigns`
documents become scheduler jobs, kept in step by sync_schedules.

Marketers set `schedule` and `enabled` on a segment, a publication or a campaign; nobody edits Cloud
Scheduler by hand. The
`JobScheduler` port (shared/ports/scheduler.py) has one adapter per place jobs can live: Cloud
Scheduler in production (shared/adapters/cloud_scheduler.py) and an in-process cron runner locally
(devstack/local_scheduler.py), which has no emulator to stand in for it.

A managed job publishes, like the fixed jobs of infra/scheduler.tf, a jobs message (shared/jobs.py)
naming the segment: `{"job": "build_segments", "segment_id": "<id>"}`, the publication:
`{"job": "publish_audiences", "publication_id": "<id>"}`, or the campaign:
`{"job": "send_messages", "campaign_id": "<id>"}`. Each kind's jobs have their own prefix
(ScheduleSettings), so no two kinds share a name and each is listed and pruned on its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.activation.publications import InvalidConfig, parse_publication
from shared.config import ScheduleSettings
from shared.cron import check_schedule
from shared.messaging.campaigns import CAMPAIGNS, parse_campaign
from shared.ports.documents import DocumentStore
from shared.ports.errors import JobRejected
from shared.ports.scheduler import MAX_DESCRIPTION, JobScheduler, JobSpec
from shared.runs import Run, recorded

JOB = "sync_schedules"
PUBLICATIONS = "publications"
# Plans one document: adds its job to `wanted` and returns its status.schedule entry.
Plan = Callable[[str, Mapping[str, Any], ScheduleSettings, datetime, dict[str, tuple[str, JobSpec]], "SyncReport"], Any]


def segment_job_name(segment_id: str, prefix: str) -> str:
    """The job id of a segment: readable when the id allows, else a slug plus a hash (job ids allow only
    letters, digits, - and _; Firestore ids allow almost anything)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", segment_id) and len(prefix) + len(segment_id) <= 500:
        return prefix + segment_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", segment_id).strip("-")[:40]
    digest = hashlib.sha256(segment_id.encode()).hexdigest()[:12]
    return f"{prefix}{slug}-{digest}" if slug else f"{prefix}{digest}"


def segment_job(segment_id: str, segment: Mapping[str, Any], config: ScheduleSettings, now: datetime) -> JobSpec | str:
    """The job a segment document asks for, or the reason it cannot have one (the message names the field)."""
    schedule = segment.get("schedule", {"cron": config.default_cron})
    message = {"job": config.segment_job, "segment_id": segment_id}
    return _job("Builds segment", "segments", segment_id, segment, schedule, config.job_prefix, message, config, now)


def publication_job(
    publication_id: str, publication: Mapping[str, Any], config: ScheduleSettings, now: datetime
) -> JobSpec | str | None:
    """The job a publication document asks for; None when it has no schedule (it is published after
    each build of its segment only); else the reason it cannot have one, with the field path. An
    invalid publication has no job, whatever field is wrong: its runs would only fail."""
    try:
        parse_publication(publication_id, publication, min_interval_minutes=config.min_interval_minutes, now=now)
    except InvalidConfig as exc:
        return str(exc.problems[0])
    if publication.get("schedule") is None:
        return None
    message = {"job": config.publication_job, "publication_id": publication_id}
    prefix = config.publication_job_prefix
    return _job(
        "Publishes audience",
        PUBLICATIONS,
        publication_id,
        publication,
        publication["schedule"],
        prefix,
        message,
        config,
        now,
    )


def campaign_job(
    campaign_id: str, campaign: Mapping[str, Any], config: ScheduleSettings, now: datetime
) -> JobSpec | str | None:
    """The job a campaign document asks for; None when it has no schedule (a one-off starts from the
    messaging tick, a campaign without either by hand); else the reason it cannot have one."""
    try:
        parse_campaign(campaign_id, campaign, min_interval_minutes=config.min_interval_minutes, now=now)
    except InvalidConfig as exc:
        return str(exc.problems[0])
    if campaign.get("schedule") is None:
        return None
    message = {"job": config.campaign_job, "campaign_id": campaign_id}
    return _job(
        "Sends campaign", CAMPAIGNS, campaign_id, campaign, campaign["schedule"], config.campaign_job_prefix,
        message, config, now,
    )  # fmt: skip


def _job(
    does: str,
    collection: str,
    doc_id: str,
    doc: Mapping[str, Any],
    schedule: Any,
    prefix: str,
    message: dict[str, Any],
    config: ScheduleSettings,
    now: datetime,
) -> JobSpec | str:
    # The same check as validation (shared/tam/rules.py, shared/activation/publications.py), so both
    # refuse the same schedules.
    checked = check_schedule(schedule, config.default_time_zone, config.min_interval_minutes, now)
    if checked.first is not None or checked.cron is None or checked.timezone is None:
        return checked.first or "schedule: invalid"
    name = doc.get("name")
    label = f"{doc_id} ({name})" if isinstance(name, str) and name and name != doc_id else doc_id
    description = f"{does} {label}. Managed by sync_schedules from Firestore {collection}/{doc_id}."
    return JobSpec(
        name=segment_job_name(doc_id, prefix),
        cron=" ".join(checked.cron.split()),
        time_zone=checked.timezone,
        topic=config.topic,
        message=message,
        description=description[:MAX_DESCRIPTION],
    )


@dataclass(kw_only=True)
class SyncReport(Run):
    """What a sync did; also its `runs` document (status ok, partial when a segment failed, or failed)."""

    job: str = JOB
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # segment id, or publications/<id> -> message

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "deleted": len(self.deleted),
            "unchanged": len(self.unchanged),
            "errors": len(self.errors),
        }

    def document(self) -> dict[str, Any]:
        return super().document() | {
            "counts": self.counts(),
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "errors": self.errors,
        }


def sync_schedules(
    documents: DocumentStore,
    scheduler: JobScheduler,
    config: ScheduleSettings,
    now: datetime,
    run_id: str | None = None,
) -> SyncReport:
    """Make the scheduler's jobs under config.job_prefix exactly the enabled, valid segment schedules,
    those under config.publication_job_prefix the enabled, valid publication schedules, and those
    under config.campaign_job_prefix the enabled, valid campaign schedules.

    Creates missing jobs, updates changed ones, deletes those whose document is gone, disabled or
    invalid (a segment without a schedule gets config.default_cron, a publication none); jobs without
    either prefix are never read or touched. Each document's outcome goes to its `status.schedule`,
    written only when it changes, so a repeated run writes nothing but its run record,
    `runs/<run_id>`, written once at the end. One bad document never stops the others.
    """
    report = SyncReport(run_id=run_id or f"{JOB}-{now.strftime('%Y%m%dT%H%M%S%fZ')}", started_at=now)
    with recorded(documents, report, record_start=False):
        _sync("segments", config.job_prefix, _plan, documents, scheduler, config, now, report)
        _sync(PUBLICATIONS, config.publication_job_prefix, _plan_publication, documents, scheduler, config, now, report)
        _sync(CAMPAIGNS, config.campaign_job_prefix, _plan_campaign, documents, scheduler, config, now, report)
        report.status = "partial" if report.errors else "ok"
    return report


def _sync(
    collection: str,
    prefix: str,
    plan: Plan,
    documents: DocumentStore,
    scheduler: JobScheduler,
    config: ScheduleSettings,
    now: datetime,
    report: SyncReport,
) -> None:
    """One kind of document: its jobs (all under `prefix`) made to match what its documents ask for."""
    docs = documents.list(collection)
    wanted: dict[str, tuple[str, JobSpec]] = {}
    outcomes: dict[str, dict[str, Any] | None] = {}
    for doc_id, doc in docs:
        outcomes[doc_id] = plan(doc_id, doc, config, now, wanted, report)

    existing = {job.name: job for job in scheduler.list_jobs(prefix)}
    for name, (doc_id, spec) in sorted(wanted.items()):
        current = existing.get(name)
        if current == spec:
            report.unchanged.append(name)
            continue
        try:
            scheduler.upsert_job(spec)
        except JobRejected as exc:
            key = _error_key(collection, doc_id)
            report.errors[key] = f"schedule: the scheduler refused the job: {exc}"
            outcomes[doc_id] = {"state": "error", "error": report.errors[key]}
            continue
        (report.updated if current else report.created).append(name)
    # A job refused on update goes too: it must not keep firing on the schedule the marketer replaced.
    keep = {*report.created, *report.updated, *report.unchanged}
    for name in sorted(set(existing) - keep):
        scheduler.delete_job(name)
        report.deleted.append(name)

    for doc_id, doc in docs:
        _record_outcome(documents, collection, doc_id, doc, outcomes[doc_id], now)


def _error_key(collection: str, doc_id: str) -> str:
    """report.errors' key: a segment's id as it always was; other documents by path, as ids may repeat."""
    return doc_id if collection == "segments" else f"{collection}/{doc_id}"


def _plan(
    segment_id: str,
    segment: Mapping[str, Any],
    config: ScheduleSettings,
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
    try:
        planned = segment_job(segment_id, segment, config, now)
    except Exception as exc:  # noqa: BLE001 - one segment's data never stops the others
        planned = f"schedule: could not be planned: {type(exc).__name__}: {str(exc)[:200]}"
    return _claim("segment", segment_id, segment_id, planned, wanted, report)


def _planner(what: str, collection: str, job: Callable[..., JobSpec | str | None], enabled_by_default: bool) -> Plan:
    """The Plan of a kind whose job is optional (None: it has no schedule): a publication is enabled
    unless it says otherwise, a campaign only once `enabled` is true (it sends nothing before)."""

    def plan(
        doc_id: str,
        doc: Mapping[str, Any],
        config: ScheduleSettings,
        now: datetime,
        wanted: dict[str, tuple[str, JobSpec]],
        report: SyncReport,
    ) -> dict[str, Any] | None:
        """Add the document's job to wanted; return the status.schedule entry it should carry."""
        if doc.get("enabled", enabled_by_default) is not True:
            return {"state": "off", "reason": f"the {what} is not enabled"}
        try:
            planned = job(doc_id, doc, config, now)
        except Exception as exc:  # noqa: BLE001 - one document's data never stops the others
            planned = f"schedule: could not be planned: {type(exc).__name__}: {str(exc)[:200]}"
        if planned is None:
            return None
        return _claim(what, doc_id, _error_key(collection, doc_id), planned, wanted, report)

    return plan


_plan_publication = _planner("publication", PUBLICATIONS, publication_job, enabled_by_default=True)
_plan_campaign = _planner("campaign", CAMPAIGNS, campaign_job, enabled_by_default=False)


def _claim(
    what: str,
    doc_id: str,
    key: str,
    planned: JobSpec | str,
    wanted: dict[str, tuple[str, JobSpec]],
    report: SyncReport,
) -> dict[str, Any]:
    """The status.schedule entry of a planned job, its name claimed in wanted; an error (under `key`
    in the report) for a reason it cannot have one, or a name another document of its kind holds."""
    if isinstance(planned, str):
        report.errors[key] = planned
        return {"state": "error", "error": planned}
    if planned.name in wanted:  # two ids that sanitise to one job name
        other = wanted[planned.name][0]
        report.errors[key] = f"schedule: job name {planned.name} is already used by {what} {other}; rename it"
        return {"state": "error", "error": report.errors[key]}
    wanted[planned.name] = (doc_id, planned)
    return {"state": "scheduled", "job": planned.name, "cron": planned.cron, "timezone": planned.time_zone}


def _schedule_entry(segment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The segment's status.schedule without its timestamp, for comparison."""
    status = segment.get("status")
    entry = status.get("schedule") if isinstance(status, Mapping) else None
    return {k: v for k, v in entry.items() if k != "updated_at"} if isinstance(entry, Mapping) else None


def _record_outcome(
    documents: DocumentStore,
    collection: str,
    segment_id: str,
    listed: Mapping[str, Any],
    entry: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Write status.schedule if it differs (ignoring its timestamp), keeping the rest of status:
    validate_config and the build or publish job own the other keys. Before a write the document is read again,
    so a status they wrote during this run is not put back to what it was when the run listed it."""
    if _schedule_entry(listed) == entry:
        return
    segment = documents.get(collection, segment_id)
    if segment is None or _schedule_entry(segment) == entry:
        return  # deleted meanwhile, or already right
    status = segment.get("status")
    status = dict(status) if isinstance(status, Mapping) else {}
    if entry is None:
        status.pop("schedule", None)
    else:
        status["schedule"] = {**entry, "updated_at": now}
    documents.set(collection, segment_id, {"status": status}, merge=True)

"""The send_messages job: which campaigns a jobs message asks for, each run planned and recorded.

Messages on `jobs` with `"job": "send_messages"`:

- `{"campaign_id": "<id>"}` (or `campaign_ids`): a campaign's schedule (sync_schedules' `cdp-cmp-*`
  jobs) or a run asked for by hand. Optional `run_at` (ISO time) and `dry_run` (true: plan and render
  previews to the outbox, send nothing).
- `{"tick": true}`: the fixed every-five-minutes job (infra/scheduler.tf). It releases the holds now
  due (the 21:00-08:00 night, quiet hours, send windows), asks NHN for the AlimTalk results no
  webhook brought (shared/services/alimtalk_results.py) and for the results of Korean SMS/LMS
  (shared/services/sms_results.py), and starts the one-off campaigns whose
  `send_at` has come.

For each campaign the documents are read and validated as they are now (campaign, template,
`messaging/policy`); a campaign that does not validate, names a segment that does not exist or was
never built stops with `status.error` naming the field, and nothing is planned. The run id comes
from the schedule slot or the one-off's send_at (send_messages.run_id_for), so Cloud Scheduler's
at-least-once delivery, a redelivered message or a re-run tick make one run: plan_run finds the
run's rows and publishes only the batches not yet on the bus.

Each run is recorded in `runs/<run id>-<campaign id>` and on the campaign's `status` (stage "send",
the funnel by outcome and reason), keeping sync_schedules' `status.schedule`: output fields that
validate_config leaves alone, so the write triggers no check.

A campaign with a `trigger` is planned by every tick (and by a message naming it): its entries now
due (shared/services/triggers.py). A tick that finds nothing to do for it writes no run record, and
its status only when the state changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from shared.activation.publications import InvalidConfig
from shared.cron import MIN_INTERVAL_MINUTES
from shared.messaging.alimtalk import ALIMTALK_TEMPLATES
from shared.messaging.campaigns import CAMPAIGNS, POLICY, TEMPLATES, parse_policy, validate_campaign
from shared.ports import DocumentStore, EventBus, TransientError, Warehouse
from shared.ports.blobs import BlobStore
from shared.runs import Run, error_text, one_at_a_time, recorded, write
from shared.services.alimtalk_results import Polled, ResultPorts, ResultSource, poll_results
from shared.services.deliver import Links
from shared.services.segments import keep_schedule
from shared.services.send_messages import (
    JOB,
    RELEASE_MAX_DELAY,
    PlanReport,
    ReleaseReport,
    one_off_run_id,
    plan_run,
    release_held,
    run_id_for,
)
from shared.services.sms_results import SmsPolled, SmsResultSource, poll_sms_results
from shared.services.triggers import TriggerReport, plan_triggers, triggered
from shared.timestamps import as_datetime

log = logging.getLogger(__name__)

SEGMENTS: Final = "segments"


@dataclass(frozen=True)
class SendJob:
    """A jobs message for send_messages (module docstring)."""

    run_at: datetime
    campaigns: tuple[str, ...] = ()
    tick: bool = False
    dry_run: bool = False


def send_job(body: Mapping[str, Any], fallback: datetime) -> SendJob:
    """The request of a jobs message; ValueError naming the field when it cannot be run."""
    run_at = (as_datetime(body.get("run_at")) or fallback).astimezone(UTC)
    dry_run, tick = body.get("dry_run", False), body.get("tick", False)
    if not isinstance(dry_run, bool):
        raise ValueError("dry_run must be true or false")
    if not isinstance(tick, bool):
        raise ValueError("tick must be true or false")
    many = body.get("campaign_ids")
    ids = many if many is not None else ([body["campaign_id"]] if body.get("campaign_id") is not None else [])
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ValueError(
            f"{'campaign_ids' if many is not None else 'campaign_id'} must be a non-empty id or a list of ids"
        )
    if not ids and not tick:
        raise ValueError("name a campaign_id (or campaign_ids), or ask for the tick")
    return SendJob(run_at=run_at, campaigns=tuple(ids), tick=tick, dry_run=dry_run)


@dataclass(frozen=True)
class SendPorts:
    warehouse: Warehouse
    documents: DocumentStore
    bus: EventBus
    outbox: BlobStore | None  # dry runs' previews
    salt: str  # the privacy salt the consent gate matches suppressions with
    available_channels: frozenset[str]  # the channels this deployment has a sender for
    links: Links | None = None  # the preference centre the previews link to
    alimtalk: ResultSource | None = None  # where the tick asks for AlimTalk results no webhook brought
    sms: SmsResultSource | None = None  # where the tick asks for the results of SMS sent through NHN
    dry_run: bool = False  # the deployment's: every run is a dry run
    min_interval_minutes: int = MIN_INTERVAL_MINUTES


@dataclass
class CampaignRun:
    """One campaign's outcome in a job: its plan, or the field at fault."""

    campaign_id: str
    run_id: str
    plan: PlanReport | None = None
    error: str | None = None  # "<field>: <message>" when the campaign stopped before planning
    retry: bool = False  # stopped on an outage: the message is redelivered
    waiting_until: datetime | None = None  # a one-off asked for before its send_at: the tick starts it
    triggered: TriggerReport | None = None  # a triggered campaign's entries planned

    @property
    def state(self) -> str:
        if self.error is not None:
            return "error"
        if self.triggered is not None:
            return self.triggered.state
        return self.plan.state if self.plan is not None else "waiting" if self.waiting_until else "skipped"


@dataclass
class JobReport:
    runs: dict[str, CampaignRun] = field(default_factory=dict)
    released: ReleaseReport | None = None
    polled: Polled | None = None  # the tick's AlimTalk results safety net
    sms_polled: SmsPolled | None = None  # the tick's poll of NHN's SMS results
    missing: list[str] = field(default_factory=list)  # named by the message, not in Firestore

    @property
    def retry(self) -> list[str]:
        return sorted(c for c, r in self.runs.items() if r.retry)


def run_send_job(ports: SendPorts, job: SendJob, request_id: str, now: datetime | None = None) -> JobReport:
    """Run what the message asks for; one campaign's failure never stops the others."""
    now = now or job.run_at
    report = JobReport()
    wanted: dict[str, Mapping[str, Any]] = {}
    for campaign_id in job.campaigns:
        doc = ports.documents.get(CAMPAIGNS, campaign_id)
        if doc is None:
            report.missing.append(campaign_id)
            log.warning("campaign not found", extra={"campaign_id": campaign_id})
        else:
            wanted[campaign_id] = doc
    if job.tick:
        report.released = release_held(ports.warehouse, ports.bus, now)
        if ports.alimtalk is not None:
            report.polled = poll_results(ResultPorts(ports.warehouse, ports.documents, ports.bus), ports.alimtalk, now)
        if ports.sms is not None:
            report.sms_polled = poll_sms_results(ports.warehouse, ports.sms, now)
        wanted.update(due_one_offs(ports.documents, now))
        wanted.update(triggered(ports.documents))
    for campaign_id, wanted_doc in wanted.items():
        with one_at_a_time(JOB, campaign_id):
            report.runs[campaign_id] = run_campaign(ports, campaign_id, wanted_doc, job, request_id, now)
    return report


def due_one_offs(documents: DocumentStore, now: datetime) -> dict[str, Mapping[str, Any]]:
    """Enabled one-off campaigns whose send_at has come within the hold's lateness bound and whose
    run is not planned yet (a later tick finds the status and leaves them; plan_run would too)."""
    due: dict[str, Mapping[str, Any]] = {}
    for campaign_id, doc in documents.list(CAMPAIGNS):
        send_at = as_datetime(doc.get("send_at")) if isinstance(doc.get("send_at"), str | datetime) else None
        if doc.get("enabled") is not True or send_at is None:
            continue
        if not now - RELEASE_MAX_DELAY <= send_at.astimezone(UTC) <= now:
            continue
        status = doc["status"] if isinstance(doc.get("status"), Mapping) else {}
        run_id = one_off_run_id(send_at)
        if status.get("stage") == "send" and status.get("run_id") == run_id and status.get("state") == "planned":
            continue
        due[campaign_id] = doc
    return due


def run_campaign(
    ports: SendPorts, campaign_id: str, doc: Mapping[str, Any], job: SendJob, request_id: str, now: datetime
) -> CampaignRun:
    """One campaign's run, recorded in `runs` and on its status whatever happens."""
    result = CampaignRun(campaign_id, request_id)
    record = Run(job=JOB, run_id=f"{request_id}-{campaign_id}", started_at=now)
    record.details = {"campaign_id": campaign_id, "segment_id": doc.get("segment_id")}
    on_trigger = isinstance(doc.get("trigger"), Mapping)  # recorded below, only when it did something
    try:
        with recorded(None if on_trigger else ports.documents, record, record_start=not on_trigger):
            result = _run(ports, campaign_id, doc, job, request_id, now)
            record.status = result.state
            record.details["campaign_run_id"] = result.run_id
            if result.plan is not None:
                record.details |= {
                    "audience": result.plan.funnel.audience,
                    "outcomes": result.plan.funnel.outcomes(),
                    "reasons": result.plan.funnel.reasons(),
                    "batches": result.plan.batches,
                    "published": result.plan.published,
                }
            if result.triggered is not None:
                record.details |= result.triggered.status(now)
            if result.error is not None:
                record.error = result.error
    except TransientError as exc:
        result.error, result.retry = f"run: {exc}", True  # the message is redelivered; plan_run resumes
    except Exception as exc:  # noqa: BLE001 - a bug in one campaign must not stop the others
        log.exception("campaign run failed", extra={"campaign_id": campaign_id})
        result.error, result.retry = f"run: could not run: {error_text(exc)}", True
    if _write_status(ports.documents, result, now, quiet=on_trigger) and on_trigger and result.state != "idle":
        write(ports.documents, record)
    if result.error is not None and not result.retry:  # a person must act: infra/monitoring.tf alerts on this
        log.error("campaign stopped", extra={"campaign_id": campaign_id, "error": result.error})
    return result


def _run(
    ports: SendPorts, campaign_id: str, doc: Mapping[str, Any], job: SendJob, request_id: str, now: datetime
) -> CampaignRun:
    def stopped(path: str, message: str) -> CampaignRun:
        return CampaignRun(campaign_id, request_id, error=f"{path}: {message}")

    try:
        policy = parse_policy(ports.documents.get(*POLICY))
    except InvalidConfig as exc:
        return stopped("policy", f"{'/'.join(POLICY)} is invalid ({exc.problems[0]}); fix it before campaigns send")
    try:
        campaign, template = validate_campaign(
            campaign_id,
            doc,
            segment_exists=lambda segment_id: ports.documents.get(SEGMENTS, segment_id) is not None,
            template_doc=lambda template_id: ports.documents.get(TEMPLATES, template_id),
            policy=policy,
            available_channels=ports.available_channels,
            min_interval_minutes=ports.min_interval_minutes,
            now=now,
            alimtalk_templates=lambda code: ports.documents.get(ALIMTALK_TEMPLATES, code),
        )
    except InvalidConfig as exc:
        problem = exc.problems[0]
        return stopped(problem.path or exc.path, problem.message)
    dry_run = ports.dry_run or job.dry_run
    if campaign.trigger is not None:  # a segment not built yet has no entries: nothing is due
        report = plan_triggers(
            ports.warehouse, ports.documents, ports.bus, campaign, template, policy, job.run_at,
            salt=ports.salt, links=ports.links, outbox=ports.outbox, dry_run=dry_run,
        )  # fmt: skip
        return CampaignRun(campaign_id, report.run_id or request_id, triggered=report)
    segment = ports.documents.get(SEGMENTS, campaign.segment_id or "") or {}
    if segment.get("computed_at") is None:
        return stopped("segment_id", f"segment {campaign.segment_id} has not been built yet: nothing to send to")
    if campaign.send_at is not None and campaign.send_at > job.run_at and not dry_run:
        # Planned now, its sends would go now: deliver decides at the time it sends.
        return CampaignRun(campaign_id, request_id, waiting_until=campaign.send_at)
    run_id = run_id_for(campaign, job.run_at, request_id)
    plan = plan_run(
        ports.warehouse, ports.documents, ports.bus, campaign, template, policy, job.run_at, run_id,
        salt=ports.salt, links=ports.links, outbox=ports.outbox, dry_run=dry_run,
    )  # fmt: skip
    return CampaignRun(campaign_id, run_id, plan=plan)


def _write_status(documents: DocumentStore, result: CampaignRun, now: datetime, quiet: bool = False) -> bool:
    """The campaign's output fields; a lost write is logged (the run record and the ledger stand).
    `quiet` (a triggered campaign, run every tick): only news is written. Whether it wrote."""
    if result.triggered is not None:
        status = {**result.triggered.status(now), "stage": "send"}
    elif result.plan is not None:
        status = {**result.plan.status(now), "stage": "send"}
    elif result.waiting_until is not None:
        status = {"state": "waiting", "stage": "send", "run_id": None, "send_at": result.waiting_until, "at": now}
    else:
        status = {"state": "error", "stage": "send", "run_id": result.run_id, "error": result.error, "at": now}
    try:
        current = documents.get(CAMPAIGNS, result.campaign_id)
        if quiet and not _news(status, current):
            return False  # a tick with nothing to do: no write every five minutes
        fields: dict[str, Any] = {"status": keep_schedule(status, current)}
        if result.plan is not None and not result.plan.disabled:
            fields["last_run"] = {"run_id": result.run_id, "at": now, "dry_run": result.plan.dry_run}
        if result.triggered is not None and result.triggered.written:
            fields["last_run"] = {"run_id": result.run_id, "at": now, "dry_run": result.triggered.dry_run}
        documents.set(CAMPAIGNS, result.campaign_id, fields, merge=True)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("could not write the campaign's status", extra={"campaign_id": result.campaign_id})
    return True


def _news(status: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether a triggered campaign's tick has something to say: rows written or batches published,
    or a status other than the one the campaign shows (its state, error, people waiting)."""
    if status.get("written") or status.get("published"):
        return True
    previous = current.get("status") if isinstance(current, Mapping) else None
    if not isinstance(previous, Mapping):
        return True
    return any(previous.get(k) != status.get(k) for k in ("state", "stage", "error", "trigger"))

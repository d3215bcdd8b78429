"""The publish_audiences job: which publications a jobs message asks for, and each one's run recorded.

A message comes from a publication's schedule (`{"job": "publish_audiences", "publication_id": …}`,
managed by sync_schedules), from build_segments right after it rebuilt segments that publications
use (`"segment_ids": […]`), or by hand (no ids: every enabled publication). For each publication
this reads its documents (publication, destination, segment), connects to the destination through
the composition root's `connect` (which reads the access token from Secret Manager), and hands the
run to shared/services/publish_audiences.py. Bad configuration stops only that publication, with
`status.error` naming the field to fix; nothing is sent for it.

Each publication's run is recorded in `runs` (id `<job run id>-<publication id>`, so a redelivered
message rewrites its records) and its outcome on the publication's `status`, `last_success` and
`audience_size`: the output fields validate_config leaves alone, so the write does not re-trigger a
check. Runs of one publication never overlap: the function runs one message at a time
(infra/functions.tf: concurrency 1, one instance), and a process-wide lock guards the local stack.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.activation.publications import (
    InvalidConfig,
    parse_destination,
    parse_publication,
)
from shared.cron import MIN_INTERVAL_MINUTES
from shared.ports import AudienceDestination, DestinationError, DocumentStore, EventBus, TransientError, Warehouse
from shared.ports.blobs import BlobStore
from shared.ports.secrets import SecretMissing
from shared.runs import Run, error_text, one_at_a_time, recorded
from shared.services.publish_audiences import JOB, Failure, Report, publish
from shared.services.segments import keep_schedule
from shared.tam.rules import InvalidSegment, parse_segment
from shared.timestamps import as_datetime

log = logging.getLogger(__name__)

PUBLICATIONS = "publications"
DESTINATIONS = "destinations"
SEGMENTS = "segments"


@dataclass(frozen=True)
class PublishJob:
    """A jobs message for publish_audiences: which publications, and whether to send nothing."""

    run_at: datetime
    publications: tuple[str, ...] | None = None  # None: not narrowed by publication
    segments: tuple[str, ...] | None = None  # only the publications of these segments
    dry_run: bool = False

    def wants(self, publication_id: str, doc: Mapping[str, Any]) -> bool:
        if self.publications is not None and publication_id not in self.publications:
            return False
        return self.segments is None or doc.get("segment_id") in self.segments


def _ids(body: Mapping[str, Any], one: str, many: str) -> tuple[str, ...] | None:
    value = body.get(many) if body.get(many) is not None else ([body[one]] if body.get(one) is not None else None)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{many if many in body else one} must be a non-empty id or a list of ids")
    return tuple(value)


def publish_job(body: Mapping[str, Any], fallback: datetime) -> PublishJob:
    """The request of a jobs message: optional `publication_id(s)`, `segment_id(s)`, `dry_run`, `run_at`."""
    run_at = as_datetime(body.get("run_at")) or fallback
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValueError("dry_run must be true or false")
    return PublishJob(
        run_at=run_at.astimezone(UTC),
        publications=_ids(body, "publication_id", "publication_ids"),
        segments=_ids(body, "segment_id", "segment_ids"),
        dry_run=dry_run,
    )


Connect = Callable[[Any], AudienceDestination]
"""The composition root's connection to a destination (shared.activation.publications.Destination);
raises SecretMissing when the access token it names cannot be read."""


@dataclass(frozen=True)
class PublishPorts:
    warehouse: Warehouse
    documents: DocumentStore
    connect: Connect
    outbox: BlobStore | None  # dry runs' request bodies
    salt: str  # the privacy salt the consent gate matches suppressions with
    dry_run: bool = False  # the deployment's: every run is a dry run
    sleep: Callable[[float], None] = time.sleep
    min_interval_minutes: int = MIN_INTERVAL_MINUTES


@dataclass
class JobReport:
    runs: dict[str, Report] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # disabled

    @property
    def retry(self) -> list[str]:
        """Publications that stopped on something a later run may get past unaided (an outage, throttling)."""
        return sorted(p for p, r in self.runs.items() if r.failure is not None and r.failure.retry)


def run_publications(ports: PublishPorts, job: PublishJob, run_id: str, now: datetime | None = None) -> JobReport:
    """Run every enabled publication the message asks for; one's failure never stops the others."""
    report = JobReport()
    for publication_id, doc in ports.documents.list(PUBLICATIONS):
        if not job.wants(publication_id, doc):
            continue
        if doc.get("enabled", True) is False:
            report.skipped.append(publication_id)
            continue
        with one_at_a_time(JOB, publication_id):
            report.runs[publication_id] = run_one(ports, publication_id, doc, job, run_id, now or job.run_at)
    return report


def run_one(
    ports: PublishPorts, publication_id: str, doc: Mapping[str, Any], job: PublishJob, run_id: str, now: datetime
) -> Report:
    """One publication's run, recorded in `runs` and on its status whatever happens."""
    record = Run(job=JOB, run_id=f"{run_id}-{publication_id}", started_at=now)
    record.details = {"publication_id": publication_id, "segment_id": doc.get("segment_id")}
    report = Report(publication_id, record.run_id, str(doc.get("mode", "mirror")))
    try:
        with recorded(ports.documents, record):
            report = _run(ports, publication_id, doc, job, record.run_id, now)
            record.status = report.state
            record.details.update(_details(report))
            if report.failure is not None:
                record.error = str(report.failure)
    except TransientError:
        raise  # the message is redelivered; the ledger makes the retry send only the rest
    except Exception as exc:  # noqa: BLE001 - a bug in one publication must not stop the others
        log.exception("publication run failed", extra={"publication_id": publication_id})
        report.failure = Failure("", f"could not run: {error_text(exc)}", retry=True)
    _write_status(ports.documents, publication_id, report, now)
    if report.state == "error":  # a person must act: infra/monitoring.tf alerts on this line
        log.error("publication stopped", extra={"publication_id": publication_id, "error": str(report.failure)})
    return report


def _run(
    ports: PublishPorts, publication_id: str, doc: Mapping[str, Any], job: PublishJob, run_id: str, now: datetime
) -> Report:
    def stopped(path: str, message: str, retry: bool = False) -> Report:
        report = Report(publication_id, run_id, str(doc.get("mode", "mirror")))
        report.failure = Failure(path, message, retry)
        return report

    try:
        publication = parse_publication(publication_id, doc, min_interval_minutes=ports.min_interval_minutes, now=now)
    except InvalidConfig as exc:
        return stopped(exc.path, str(exc.problems[0].message))
    destination_doc = ports.documents.get(DESTINATIONS, publication.destination_id)
    if destination_doc is None:
        return stopped("destination_id", f"names destination {publication.destination_id}, which does not exist")
    try:
        destination = parse_destination(publication.destination_id, destination_doc)
    except InvalidConfig as exc:
        return stopped("destination_id", f"destination {publication.destination_id} is invalid: {exc.problems[0]}")
    segment_doc = ports.documents.get(SEGMENTS, publication.segment_id)
    if segment_doc is None:
        return stopped("segment_id", f"names segment {publication.segment_id}, which does not exist")
    try:
        segment = parse_segment(publication.segment_id, segment_doc, now=now)
    except InvalidSegment as exc:
        return stopped("segment_id", f"segment {publication.segment_id} is invalid: {exc.problems[0]}")
    if segment_doc.get("computed_at") is None:
        # Its members table is empty until then: a mirror would remove everyone it ever uploaded.
        message = f"segment {publication.segment_id} has not been built yet: its first build starts a run"
        return stopped("segment_id", message)
    dry_run = ports.dry_run or job.dry_run or publication.dry_run
    try:
        port = ports.connect(destination)
    except SecretMissing as exc:
        return stopped("destination_id", f"destination {destination.id}'s access_token_secret: {exc}")
    except DestinationError as exc:  # e.g. a file export with no bucket to write to
        return stopped("destination_id", f"destination {destination.id} {exc}")
    return publish(
        ports.warehouse, port, publication, destination, segment, now, run_id,
        salt=ports.salt, sleep=ports.sleep, dry_run=dry_run, outbox=ports.outbox,
    )  # fmt: skip


def _details(report: Report) -> dict[str, Any]:
    return {
        "mode": report.mode,
        "dry_run": report.dry_run,
        "audience_id": report.audience_id,
        "members": report.staged.members,
        "eligible": report.staged.eligible,
        "desired": report.staged.desired,
        "added": report.added,
        "removed": dict(sorted(report.removed.items())),
        "invalid": report.invalid,
        "batches": report.batches,
        "waited_seconds": round(report.waited_seconds, 1),
        "outbox": report.outbox[:20],
    }


def _write_status(documents: DocumentStore, publication_id: str, report: Report, now: datetime) -> None:
    """The publication's output fields; a lost write is logged (the run record and ledger stand)."""
    current = documents.get(PUBLICATIONS, publication_id)
    fields: dict[str, Any] = {"status": keep_schedule({**report.status(now), "stage": "publish"}, current)}
    if report.state in ("ok", "dry_run"):
        fields["last_success"] = now
    if report.audience_size is not None:
        lower, upper = report.audience_size
        fields["audience_size"] = {"lower": lower, "upper": upper, "at": now}
    try:
        documents.set(PUBLICATIONS, publication_id, fields, merge=True)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("could not write the publication's status", extra={"publication_id": publication_id})


def after_build(
    documents: DocumentStore, bus: EventBus, topic: str, built: Collection[str], run_at: datetime
) -> str | None:
    """Ask for a publish run of the publications whose segments a build just rebuilt, so a change
    of membership reaches the platform within one build; the message id, or None if none use them."""
    wanted = sorted(
        {str(doc["segment_id"]) for _, doc in documents.list(PUBLICATIONS) if doc.get("segment_id") in built}
        if built
        else set()
    )
    if not wanted:
        return None
    body = {"job": JOB, "segment_ids": wanted, "run_at": run_at.isoformat()}
    return bus.publish(topic, json.dumps(body).encode(), {"job": JOB})

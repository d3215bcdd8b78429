"""Segments: validate a marketer's edit at once, build due segments on schedule, publish the catalogue.

Plain functions over the Warehouse and DocumentStore ports. Everything a run writes is keyed by the
segment and the run's time, so a redelivered job or a retried trigger repeats nothing: a segment
built at a run time is not due again at that time, and its membership MERGE is idempotent per day.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from croniter import croniter

from shared.cron import MIN_INTERVAL_MINUTES
from shared.jobs import job_body
from shared.ports import DocumentStore, TransientError, Warehouse
from shared.segmentlets import CATALOGUE, PRODUCT_SEGMENTLETS, Segmentlet
from shared.services.audit import record_change
from shared.tam.compiler import compile_segment, segment_sql
from shared.tam.events import DocumentChange
from shared.tam.rules import (
    OUTPUT_FIELDS,
    VOCABULARIES,
    InvalidSegment,
    Segment,
    parse_segment,
    to_document,
    user_fields,
)
from shared.tam.templates import TEMPLATES
from shared.timestamps import as_datetime as as_datetime  # re-exported: callers read segment timestamps

log = logging.getLogger(__name__)

SEGMENTS = "segments"
JOB = "build_segments"
MAX_MESSAGE = 500  # characters of one status message or error: a status stays far below Firestore's 1 MiB


# -- status -----------------------------------------------------------------------------------------


def status(
    state: str,
    stage: str,
    at: datetime,
    *,
    message: str | None = None,
    errors: Collection[str] = (),
    estimate: int | None = None,
    definition_hash: str | None = None,
) -> dict[str, Any]:
    """The `status` map on a segment document. Every key is always present, so a Firestore merge
    that deep-merges maps still replaces the previous status whole. Texts are cut to MAX_MESSAGE
    characters (validation lists at most MAX_ERRORS problems), so the status can always be written."""
    return {
        "state": state,
        "stage": stage,
        "message": _short(message) if message is not None else None,
        "errors": [_short(e) for e in errors],
        "estimate": estimate,
        "definition_hash": definition_hash,
        "at": at,
    }


def _short(text: str) -> str:
    text = text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def keep_schedule(new: dict[str, Any], doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The new status with sync_schedules' `status.schedule` carried over: that key is its own."""
    previous = doc.get("status") if isinstance(doc, Mapping) else None
    if isinstance(previous, Mapping) and "schedule" in previous:
        return {**new, "schedule": previous["schedule"]}
    return new


def today_for(segment: Segment, now: datetime) -> date:
    """The run day in the segment's time zone: periods and membership days are local days."""
    return now.astimezone(segment.schedule.tz).date()


def estimate_size(segment: Segment, warehouse: Warehouse, now: datetime) -> int:
    compiled = compile_segment(segment, today_for(segment, now))
    rows = warehouse.query(compiled.count_sql(), compiled.params)
    return int(rows[0]["size"]) if rows else 0


def validate_segment(
    segment_id: str,
    doc: Mapping[str, Any],
    warehouse: Warehouse,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> dict[str, Any]:
    """The status for a segment document: its errors by field path, or OK with a size estimate."""
    try:
        segment = parse_segment(segment_id, doc, min_interval_minutes=min_interval_minutes, now=now)
    except InvalidSegment as exc:
        problems = [str(p) for p in exc.problems]
        return status("error", "validate", now, message=problems[0], errors=problems)
    try:
        estimate: int | None = estimate_size(segment, warehouse, now)
        message = f"OK: about {estimate:,} customers now"
    except Exception as exc:  # noqa: BLE001 - the rules are valid; only the estimate is missing
        log.warning("segment estimate failed", extra={"segment_id": segment_id, "error": str(exc)[:500]})
        estimate, message = None, f"OK; size estimate unavailable: {type(exc).__name__}"
    return status("ok", "validate", now, message=message, estimate=estimate, definition_hash=segment.definition_hash)


def _canonical(doc: Mapping[str, Any] | None) -> str:
    """A document's user fields as comparable text, whichever client or decoder produced it."""

    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else str(value)

    return json.dumps(to_document(user_fields(doc)), sort_keys=True, ensure_ascii=False, default=plain)


def handle_segment_write(
    change: DocumentChange,
    warehouse: Warehouse,
    documents: DocumentStore,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    event_id: str | None = None,
) -> str:
    """validate_config: record the edit in the audit log, check the segment and write its status;
    returns what happened.

    The status write is itself a write to the document and fires this trigger again. That event
    differs from its predecessor only in fields we write (status, and build results), so it is
    skipped: the loop ends after one round.
    """
    if change.collection != SEGMENTS:
        return "ignored: not a segment"
    try:
        return _check_and_report(change, warehouse, documents, now, min_interval_minutes)
    finally:  # after the verdict, which the marketer waits for; a failure here fails the function
        old, new = (user_fields(d) if d is not None else None for d in (change.old, change.new))
        record_change(
            warehouse, SEGMENTS, change.doc_id, old, new, "validate_config", recorded_at=now, event_id=event_id
        )


def _check_and_report(
    change: DocumentChange, warehouse: Warehouse, documents: DocumentStore, now: datetime, min_interval_minutes: int
) -> str:
    def failed(message: str) -> dict[str, Any]:
        return status("error", "validate", now, message=message, errors=[message])

    def verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
        return validate_segment(change.doc_id, doc, warehouse, now, min_interval_minutes)

    return write_verdict(change, documents, _canonical, verdict, failed)


def write_verdict(
    change: DocumentChange,
    documents: DocumentStore,
    canonical: Callable[[Mapping[str, Any] | None], str],
    verdict: Callable[[Mapping[str, Any]], dict[str, Any]],
    failed: Callable[[str], dict[str, Any]],
) -> str:
    """validate_config's round for any configuration document: write verdict(new document) as its
    status (sync_schedules' part kept) and return the state, unless the event is one we caused
    (`canonical`, the marketer's fields as text, is unchanged) or is stale (the document has been
    edited again, and that edit's own event will answer). `failed(message)` is the status when the
    check itself raises."""
    if change.new is None:
        return "skipped: deleted"
    if change.old is not None and canonical(change.old) == canonical(change.new):
        return "skipped: only results changed"
    try:
        result = verdict(change.new)
    except Exception as exc:  # noqa: BLE001 - a bug must not leave the marketer without a verdict
        log.exception("config validation failed", extra={"collection": change.collection, "doc_id": change.doc_id})
        result = failed(f"could not be checked: {type(exc).__name__}: {exc}")
    current = documents.get(change.collection, change.doc_id)
    if current is None:
        return "skipped: deleted"
    if canonical(current) != canonical(change.new):
        return "skipped: edited again since"  # that edit's own event writes the status
    documents.set(change.collection, change.doc_id, {"status": keep_schedule(result, current)}, merge=True)
    return str(result["state"])


def rewrite_verdict(
    documents: DocumentStore, collection: str, doc_id: str, doc: Mapping[str, Any], result: dict[str, Any]
) -> bool:
    """Write a re-check's verdict on a document only when its state or errors changed (an unchanged
    verdict keeps its time); True when written."""
    previous = doc.get("status")
    if isinstance(previous, Mapping) and (previous.get("state"), previous.get("errors")) == (
        result["state"],
        result["errors"],
    ):
        return False
    documents.set(collection, doc_id, {"status": keep_schedule(result, doc)}, merge=True)
    return True


# -- building ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    size: int
    entered: int
    left: int


@dataclass
class BuildReport:
    built: dict[str, Evaluation] = field(default_factory=dict)
    not_due: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)


def is_due(segment: Segment, doc: Mapping[str, Any], now: datetime) -> bool:
    """Never built, edited since its last build, or a cron time has passed since its last build.

    Cron times are read in the segment's time zone. A build stamps computed_at with the run time,
    so the same run time never finds the segment due twice.
    """
    last = as_datetime(doc.get("computed_at"))
    if last is None or doc.get("computed_hash") != segment.definition_hash:
        return True
    following: datetime = croniter(segment.schedule.cron, last.astimezone(segment.schedule.tz)).get_next(datetime)
    return following <= now


def evaluate_segment(segment: Segment, warehouse: Warehouse, now: datetime) -> Evaluation:
    """Members into audiences.segment_member_history and segment_members, and the day's counts."""
    today = today_for(segment, now)
    compiled = compile_segment(segment, today)
    day = {"segment_id": segment.id, "run_date": today}
    warehouse.query(compiled.history_merge_sql(), {**compiled.params, **day, "run_day": today.isoformat()})
    warehouse.query(segment_sql("merge_members"), {"segment_id": segment.id, "computed_at": now})
    rows = warehouse.query(segment_sql("membership_counts"), day)
    counts = rows[0] if rows else {}
    return Evaluation(int(counts.get("size") or 0), int(counts.get("entered") or 0), int(counts.get("exited") or 0))


def freshness(warehouse: Warehouse, now: datetime) -> dict[str, Any]:
    """How old the profiles behind this run are: the last refine that wrote them."""
    rows = warehouse.query(segment_sql("profiles_freshness"))
    as_of = as_datetime(rows[0]["computed_at"]) if rows else None
    lag = int((now - as_of).total_seconds() // 60) if as_of is not None else None
    return {"data_as_of": as_of, "lag_minutes": lag, "profiles": int(rows[0]["profiles"]) if rows else 0}


def build_segments(
    warehouse: Warehouse,
    documents: DocumentStore,
    now: datetime,
    only: Collection[str] | None = None,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> BuildReport:
    """Evaluate every enabled, due segment (or only those named); one failure never stops the rest.

    A segment's failure goes on its own document's status, whatever the document holds: its parsing,
    due check and build all run inside the segment's own isolation. Outages are also collected in
    `transient`, so the job can ask for redelivery: the retry finds the segments already built
    not due and rebuilds only the ones that failed.
    """
    report = BuildReport()
    fresh = freshness(warehouse, now)  # an outage here fails the whole job, which is retried
    for segment_id, doc in documents.list(SEGMENTS):
        if only is not None and segment_id not in only:
            continue
        stage = "build"
        try:
            try:
                segment = parse_segment(segment_id, doc, min_interval_minutes=min_interval_minutes, now=now)
            except InvalidSegment as exc:
                report.invalid.append(segment_id)
                problems = [str(p) for p in exc.problems]
                error = status("error", "build", now, message=problems[0], errors=problems)
                previous = doc.get("status")
                if not isinstance(previous, Mapping) or (previous.get("state"), previous.get("errors")) != (
                    "error",
                    error["errors"],
                ):
                    _write_status(documents, segment_id, keep_schedule(error, doc))
                continue
            if not segment.enabled:
                report.disabled.append(segment_id)
                continue
            stage = "due check"
            if not is_due(segment, doc, now):
                report.not_due.append(segment_id)
                continue
            stage = "build"
            evaluation = evaluate_segment(segment, warehouse, now)
            documents.set(
                SEGMENTS,
                segment_id,
                {
                    "size": evaluation.size,
                    "entered": evaluation.entered,
                    "left": evaluation.left,
                    "computed_at": now,
                    "freshness": fresh,
                    "computed_hash": segment.definition_hash,
                    "status": keep_schedule(
                        status(
                            "ok",
                            "build",
                            now,
                            message=f"{evaluation.size:,} members (+{evaluation.entered} / -{evaluation.left} today)",
                            estimate=evaluation.size,
                            definition_hash=segment.definition_hash,
                        ),
                        doc,
                    ),
                },
                merge=True,
            )
        except Exception as exc:  # noqa: BLE001 - isolate: the next segment still runs
            log.exception("segment build failed", extra={"segment_id": segment_id, "stage": stage})
            message = f"{stage} failed: {type(exc).__name__}: {exc}"[:MAX_MESSAGE]
            report.failed[segment_id] = message
            if isinstance(exc, TransientError):
                report.transient.append(segment_id)
            error = status("error", "build", now, message=message, errors=[message])
            _write_status(documents, segment_id, keep_schedule(error, doc))
            continue
        report.built[segment_id] = evaluation
        log.info(
            "segment built",
            extra={
                "segment_id": segment_id,
                "size": evaluation.size,
                "entered": evaluation.entered,
                "left": evaluation.left,
            },
        )
    return report


def _write_status(documents: DocumentStore, segment_id: str, value: dict[str, Any]) -> None:
    try:
        documents.set(SEGMENTS, segment_id, {"status": value}, merge=True)
    except Exception:  # noqa: BLE001 - the document store is down too: the log keeps the error
        log.exception("could not write segment status", extra={"segment_id": segment_id})


@dataclass(frozen=True)
class BuildJob:
    run_at: datetime
    only: tuple[str, ...] | None


def build_job(body: Mapping[str, Any], fallback: datetime) -> BuildJob:
    """The request of a jobs message for this job: `{"job": "build_segments"}`, optionally with
    `"segment_id"` (or `"segment_ids"`) and `"run_at"`.

    Without run_at the run time is the fallback (the message's publish time), so a redelivered
    message runs at the same time as its first delivery.
    """
    run_at = as_datetime(body.get("run_at")) or fallback
    ids = body.get("segment_ids") or ([body["segment_id"]] if body.get("segment_id") else None)
    only = tuple(str(i) for i in ids) if isinstance(ids, list) else None
    try:
        run_at = run_at.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59-14:00: a redelivery would not read any better
        raise ValueError(f"run_at {str(body.get('run_at'))[:40]!r} is out of range") from exc
    return BuildJob(run_at, only)


def parse_build_job(data: bytes, fallback: datetime) -> BuildJob | None:
    """build_job from a raw message body; None when it is not a JSON object naming this job."""
    try:
        body = job_body(data)
        return build_job(body, fallback) if body.get("job") == JOB else None
    except ValueError:
        return None


# -- catalogue --------------------------------------------------------------------------------------


def segmentlet_document(segmentlet: Segmentlet, order: int) -> dict[str, Any]:
    return {
        "code": segmentlet.code,
        "name_ko": segmentlet.name_ko,
        "name_en": segmentlet.name_en,
        "group": segmentlet.group,
        "type": segmentlet.type,
        "description": segmentlet.description,
        "operators": list(segmentlet.operators),
        "values": list(VOCABULARIES[segmentlet.code]) if segmentlet.code in VOCABULARIES else None,
        "product": segmentlet.code in PRODUCT_SEGMENTLETS,
        "templates": [t.id for t in TEMPLATES.values() if segmentlet.code in t.segmentlets],
        "order": order,
    }


def publish_catalogue(documents: DocumentStore) -> dict[str, int]:
    """Write the segmentlets and templates to Firestore as the code defines them; drop stale ones.

    Unchanged documents are not rewritten, so publishing twice writes nothing.
    """
    wanted = {
        "segmentlets": {s.code: segmentlet_document(s, i) for i, s in enumerate(CATALOGUE)},
        "templates": {t.id: t.document() for t in TEMPLATES.values()},
    }
    counts = {"written": 0, "unchanged": 0, "deleted": 0}
    for collection, docs in wanted.items():
        existing = dict(documents.list(collection))
        for doc_id, doc in docs.items():
            if existing.get(doc_id) == doc:
                counts["unchanged"] += 1
            else:
                documents.set(collection, doc_id, doc)
                counts["written"] += 1
        for doc_id in sorted(set(existing) - set(docs)):
            documents.delete(collection, doc_id)
            counts["deleted"] += 1
    return counts


# -- files and previews -----------------------------------------------------------------------------


def apply_segment(
    documents: DocumentStore,
    segment_id: str,
    definition: Mapping[str, Any],
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> str:
    """Store a validated definition as segments/{id}: "created", "updated" or "unchanged".

    The marketer's fields are replaced whole (a field removed from the file goes away); the
    results we wrote (status, size, …) are kept. Raises InvalidSegment.
    """
    parse_segment(segment_id, definition, min_interval_minutes=min_interval_minutes)
    stored = to_document({k: v for k, v in definition.items() if k != "id" and k not in OUTPUT_FIELDS})
    current = documents.get(SEGMENTS, segment_id)
    if current is not None and _canonical(current) == _canonical(stored):
        return "unchanged"
    kept = {k: v for k, v in (current or {}).items() if k in OUTPUT_FIELDS}
    documents.set(SEGMENTS, segment_id, {**kept, **stored})
    return "created" if current is None else "updated"


@dataclass(frozen=True)
class Preview:
    size: int
    sample: list[dict[str, Any]]


def preview_segment(segment: Segment, warehouse: Warehouse, now: datetime, limit: int = 5) -> Preview:
    compiled = compile_segment(segment, today_for(segment, now))
    size = estimate_size(segment, warehouse, now)
    return Preview(size, warehouse.query(compiled.sample_sql(limit), compiled.params))

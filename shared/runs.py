"""Job runs recorded in the document store's `runs` collection, one document per run.

Every job (refine, backfill, discover, sync_schedules) records itself the same way: the job, its
status, when it started and finished and how long it took, the error if it failed, and the job's own
counts. The document id is the run id; a handler derives it from the Pub/Sub message id, so a
redelivered message rewrites its run's document instead of adding another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from shared.ports.documents import DocumentStore

log = logging.getLogger(__name__)

RUNS = "runs"
MAX_ERROR = 2000  # characters of an error kept on the run document


@dataclass(kw_only=True)
class Run:
    """One run's document: what every job records, plus `details` (jobs may subclass for typed fields)."""

    job: str
    run_id: str
    started_at: datetime
    status: str = "running"  # then succeeded or failed, or a job's own (skipped, ok, partial)
    error: str | None = None
    duration_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def finished_at(self) -> datetime | None:
        return None if self.status == "running" else self.started_at + timedelta(milliseconds=self.duration_ms)

    def document(self) -> dict[str, Any]:
        """The `runs` document; `error` only once there is one."""
        document = {
            "job": self.job,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            **self.details,
        }
        if self.error is not None:
            document["error"] = self.error
        return document


R = TypeVar("R", bound=Run)


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def one_at_a_time(job: str, key: str) -> threading.Lock:
    """The process-wide lock of one job's runs of one thing (a publication, a campaign): on GCP the
    function's single instance at concurrency 1 keeps them apart; locally, threads share a process."""
    with _locks_guard:
        return _locks.setdefault((job, key), threading.Lock())


def error_text(exc: BaseException, message: str | None = None) -> str:
    """How a run document names a failure: the exception's type and message (or the given one), bounded."""
    return f"{type(exc).__name__}: {exc if message is None else message}"[:MAX_ERROR]


def write(documents: DocumentStore | None, run: Run) -> dict[str, Any]:
    """Store the run's document (no store: nothing to do); return it.

    A failed write is logged, never raised: a lost record must not fail the run or hide its outcome.
    """
    document = run.document()
    if documents is not None:
        try:
            documents.set(RUNS, run.run_id, document)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("could not record the run", extra={"run_id": run.run_id, "job": run.job})
    return document


@contextmanager
def recorded(documents: DocumentStore | None, run: R, *, record_start: bool = True) -> Iterator[R]:
    """Record the run around the block: `running` first (unless record_start is false), then at the end
    `succeeded` (or the status the block set), or `failed` with the error (unless the block set one),
    the duration, and one log line with the document."""
    started = time.monotonic()
    if record_start:
        write(documents, run)
    try:
        yield run
    except BaseException as exc:
        run.status = "failed"
        if run.error is None:
            run.error = error_text(exc)
        raise
    else:
        if run.status == "running":
            run.status = "succeeded"
    finally:
        run.duration_ms = round((time.monotonic() - started) * 1000)
        document = write(documents, run)
        level = logging.ERROR if run.status == "failed" else logging.INFO
        log.log(level, f"{run.job} {run.status}", extra={"run_id": run.run_id, "run": document})

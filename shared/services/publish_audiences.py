"""publish_audiences: keep one publication's audience on an ad platform equal to what it should hold.

One run: stage the desired rows (segment members the consent gate allows for ad_user_data, with at
least one key; shared/activation/deltas.py), then send the difference with the ledger in batches of
at most 10,000 rows and 60 KB, recording each accepted batch in the ledger and the log before the
next is sent (shared/activation/ledger.py). So a run that stops part-way, for any reason, leaves
the next one only the rest to send, and a retried run sends nothing twice.

Modes: mirror removes first (a changed row must leave before its successor arrives: both may match
the same person) and then adds; add_only only adds; replace sends the whole desired set as one
/usersreplace session, whose session id is derived from the publication and the count of sessions
the log knows, so a session interrupted even before its first batch was logged is resumed under
the same id, and one stuck open is ended with a small last batch before a new one starts.

Throttling waits for the port's hint and resumes (the sleep function is injected); a policy block,
an expired token or a deleted audience stop the run with a Failure naming the field the marketer
must fix, written as the publication's status.error by the caller. A dry run computes the same
batches, writes each request body to an outbox and sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Final

from shared.activation import ledger
from shared.activation.deltas import (
    PAGE_ROWS,
    Addition,
    Removal,
    Staged,
    additions,
    batches,
    pending_count,
    removals,
    run,
    sent,
    stage,
)
from shared.activation.publications import FACEBOOK, FILE_EXPORT, Destination, Publication, check_pair
from shared.ports import Warehouse
from shared.ports.audiences import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ROWS,
    AudienceDestination,
    AudienceGone,
    BatchResult,
    DestinationError,
    DestinationUnavailable,
    PolicyBlocked,
    Row,
    RunFiles,
    SessionStuck,
    Throttled,
    TokenExpired,
    UploadSession,
    Usage,
    payload_json,
)
from shared.ports.blobs import BlobStore
from shared.tam.rules import Segment

log = logging.getLogger(__name__)

JOB: Final = "publish_audiences"
MAX_THROTTLE_WAIT: Final = 900.0
"""Seconds a run waits out throttling in all before it stops and leaves the rest to the next run."""
SLOW_DOWN_PERCENT: Final = 90.0
"""Usage (X-Business-Use-Case-Usage and the like) from which a run pauses between batches."""
PAUSE_SECONDS: Final = 10.0


@dataclass(frozen=True)
class Failure:
    """Why a run stopped: the field of the publication the marketer must look at, and what to do.

    retry: a later run may succeed unaided (an outage, throttling, a stuck session); otherwise a
    person must act (a restricted audience, an expired token, a deleted audience).
    """

    path: str
    message: str
    retry: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Report:
    """What one run did; the caller writes it on the publication's status and on runs/{id}."""

    publication_id: str
    run_id: str
    mode: str
    dry_run: bool = False
    audience_id: str | None = None
    created_audience: bool = False
    staged: Staged = field(default_factory=Staged)
    added: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    batches: int = 0
    waited_seconds: float = 0.0
    audience_size: tuple[int | None, int | None] | None = None  # the platform's lower and upper bound
    outbox: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: Failure | None = None
    disabled: bool = False

    @property
    def state(self) -> str:
        if self.disabled:
            return "disabled"
        if self.failure is not None:
            return "retry" if self.failure.retry else "error"
        return "dry_run" if self.dry_run else "ok"

    def status(self, at: datetime) -> dict[str, Any]:
        """The publication's `status` map: every key present, so a merge replaces it whole."""
        lower, upper = self.audience_size or (None, None)
        return {
            "state": self.state,
            "error": str(self.failure) if self.failure is not None else None,
            "run_id": self.run_id,
            "audience_id": self.audience_id,
            "added": self.added,
            "removed": dict(sorted(self.removed.items())),
            "invalid": self.invalid,
            "batches": self.batches,
            "audience_size_lower": lower,
            "audience_size_upper": upper,
            "warnings": list(self.warnings),
            "at": at,
        }


class _Stop(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def publish(
    warehouse: Warehouse,
    destination_port: AudienceDestination,
    publication: Publication,
    destination: Destination,
    segment: Segment,
    now: datetime,
    run_id: str,
    *,
    salt: str,
    sleep: Callable[[float], None] = time.sleep,
    dry_run: bool = False,
    outbox: BlobStore | None = None,
    page_rows: int = PAGE_ROWS,
    max_batch_rows: int = MAX_BATCH_ROWS,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    max_throttle_wait: float = MAX_THROTTLE_WAIT,
) -> Report:
    """One run of one publication (see the module docstring). `salt` is the privacy salt the gate
    matches suppressions with; `outbox` receives a dry run's request bodies."""
    if dry_run and outbox is None:
        raise ValueError("a dry run needs an outbox for its request bodies")
    report = Report(publication.id, run_id, publication.mode, dry_run=dry_run)
    problem = _unusable(publication, destination, segment, destination_port)
    if problem is not None:
        report.failure = problem
        return report
    if not publication.enabled:
        report.disabled = True
        return report
    keys = publication.keys_for(destination)
    files = destination_port if isinstance(destination_port, RunFiles) and not dry_run else None
    if files is not None:  # a file export: batches gather into the run's files, written at the end
        files.begin(publication.id, run_id, now)
    job = _Run(
        warehouse, destination_port, publication, destination, keys, now, run_id, report,
        sleep=sleep, outbox=outbox, page_rows=page_rows, max_rows=max_batch_rows, max_bytes=max_batch_bytes,
        max_wait=max_throttle_wait,
    )  # fmt: skip
    try:
        report.audience_id = job.audience()
        report.staged = stage(
            warehouse, publication.id, segment.id, segment.site_id, keys,
            run_id=run_id, now=now, salt=salt, page_rows=page_rows,
        )  # fmt: skip
        if publication.mode == "replace" and (report.staged.desired or job.open_session() is not None):
            job.replace()
        if publication.mode == "mirror" or (publication.mode == "replace" and not report.staged.desired):
            job.remove()  # replace: a session holds at least one row, so an empty set is reached by removals
        if publication.mode in ("mirror", "add_only"):
            job.add()
    except _Stop as stop:
        report.failure = stop.failure
    if files is not None:
        try:
            report.outbox.extend(files.finish(final=report.failure is None))
        except DestinationError as exc:  # the batches stay spooled: the next run writes them
            report.failure = report.failure or Failure("destination_id", f"files not written: {exc.message}", True)
    if report.failure is None and not dry_run:
        job.read_size()
    log.info(
        "publish run",
        extra={
            "publication_id": publication.id,
            "run_id": run_id,
            "state": report.state,
            "added": report.added,
            "removed": report.removed,
            "batches": report.batches,
            "failure": str(report.failure) if report.failure else None,
        },
    )
    return report


def _unusable(
    publication: Publication, destination: Destination, segment: Segment, port: AudienceDestination
) -> Failure | None:
    """Bad input that must stop a run before anything is sent."""
    wrong_port = (destination.type == FILE_EXPORT) != isinstance(port, RunFiles)  # the caller picks it by type
    if destination.type not in (FACEBOOK, FILE_EXPORT) or wrong_port:
        return Failure("destination_id", f"{destination.id} is a {destination.type} destination, not this port's")
    if publication.segment_id != segment.id:
        return Failure("segment_id", f"names {publication.segment_id}, but segment {segment.id} was given")
    problems = check_pair(publication, destination)
    if problems:
        return Failure(problems[0].path, problems[0].message)
    return None


def session_id_for(publication_id: str, audience_id: str, number: int) -> int:
    """The id of a publication's number-th replace session: the same for a run that retries it."""
    digest = hashlib.sha256(f"{publication_id}|{audience_id}|{number}".encode()).hexdigest()
    return int(digest[:15], 16) or 1  # 60 bits: a positive int64


class _Run:
    """The sending part of one run: batches, the port, throttling, the ledger and the log."""

    def __init__(
        self,
        warehouse: Warehouse,
        port: AudienceDestination,
        publication: Publication,
        destination: Destination,
        keys: tuple[str, ...],
        now: datetime,
        run_id: str,
        report: Report,
        *,
        sleep: Callable[[float], None],
        outbox: BlobStore | None,
        page_rows: int,
        max_rows: int,
        max_bytes: int,
        max_wait: float,
    ) -> None:
        self.warehouse, self.port, self.publication, self.destination = warehouse, port, publication, destination
        self.keys, self.now, self.run_id, self.report = keys, now, run_id, report
        self.sleep, self.outbox, self.page_rows = sleep, outbox, page_rows
        self.max_rows, self.max_bytes, self.max_wait = max_rows, max_bytes, max_wait
        self.dry = report.dry_run
        self.seq = 0 if self.dry else ledger.last_batch_seq(warehouse, run_id, publication.id)
        self.audience_id = ""
        self.attempt = 1  # of the batch being sent: 2 and on after throttling
        self._paced: Usage | None = None

    # -- the audience -------------------------------------------------------------------------------

    def audience(self) -> str:
        """The audience to publish to, created on the first run of a publication set to "create"."""
        pub = self.publication
        if not pub.creates_audience:
            self.audience_id = pub.audience_id
            return self.audience_id
        known = ledger.known_audience(self.warehouse, pub.id)
        if known is not None:
            self.audience_id = known
        elif self.dry:
            self.audience_id = "new"  # what the first real run will create
        else:
            source = pub.customer_file_source or "USER_PROVIDED_ONLY"
            description = f"CDP publication {pub.id} of segment {pub.segment_id}"
            self.audience_id = self._call(lambda: self.port.create_audience(pub.name, description, source), "create")
            self.report.created_audience = True
        return self.audience_id

    def read_size(self) -> None:
        try:
            info = self.port.audience_info(self.audience_id)
        except DestinationError as exc:  # the run itself succeeded; only the size is missing
            self.report.warnings.append(f"audience size unavailable: {type(exc).__name__}: {exc.message}")
            return
        self.report.audience_size = (info.approximate_count_lower_bound, info.approximate_count_upper_bound)
        if info.delivery_status is not None and info.delivery_status.code != 200:
            self.report.warnings.append(
                f"delivery status {info.delivery_status.code}: {info.delivery_status.description}"
            )

    # -- mirror and add_only ------------------------------------------------------------------------

    def remove(self) -> None:
        for page in removals(self.warehouse, self.publication.id, self.page_rows):
            self._record_shared([r for r in page if r.shared])
            for keys, group in groupby((r for r in page if not r.shared), key=lambda r: r.keys):
                rows = list(group)
                for part in self._batches(keys, [r.row for r in rows]):
                    self._remove_batch(keys, rows[part])

    def _remove_batch(self, keys: tuple[str, ...], rows: list[Removal]) -> None:
        self.seq += 1
        result = self._send("remove", keys, [r.row for r in rows], self.seq)
        if not self.dry:
            ledger.record_removed(self.warehouse, self.publication.id, rows, run_id=self.run_id, at=self.now)
            self._logged("remove", self.seq, len(rows), result)
        self._count_removed(rows)

    def _record_shared(self, rows: list[Removal]) -> None:
        """Rows another customer is to hold as well leave the ledger only: a removal would take
        that customer out of the audience too."""
        if rows and not self.dry:
            ledger.record_removed(self.warehouse, self.publication.id, rows, run_id=self.run_id, at=self.now)
        self._count_removed(rows)

    def _count_removed(self, rows: list[Removal]) -> None:
        for row in rows:
            self.report.removed[row.reason] = self.report.removed.get(row.reason, 0) + 1

    def add(self) -> None:
        for page in additions(self.warehouse, self.publication.id, None, self.page_rows):
            for part in self._batches(self.keys, [a.row for a in page]):
                self.seq += 1
                rows = page[part]
                result = self._send("add", self.keys, [a.row for a in rows], self.seq)
                self._record_added(rows, None)
                if not self.dry:
                    self._logged("add", self.seq, len(rows), result)
                self.report.added += len(rows)

    # -- replace ------------------------------------------------------------------------------------

    def open_session(self) -> ledger.Session | None:
        if self.dry:
            return None
        return next((s for s in ledger.sessions(self.warehouse, self.publication.id) if not s.ended), None)

    def replace(self) -> None:
        known = [] if self.dry else ledger.sessions(self.warehouse, self.publication.id)
        current = next((s for s in known if not s.ended), None)
        if current is not None and current.stuck and current.last_ok_seq > 0:
            # The platform holds this session open yet refuses its batches: end it, then start anew.
            self._close(current.session_id, current.last_ok_seq + 1)
            current = None
            known = ledger.sessions(self.warehouse, self.publication.id)
        if current is None:
            session_id, seq = session_id_for(self.publication.id, self.audience_id, len(known) + 1), 1
        else:
            session_id, seq = current.session_id, current.last_ok_seq + 1
        pending = pending_count(self.warehouse, self.publication.id, session_id)
        if pending == 0:
            self._close(session_id, seq)
            return
        done = 0
        for page in additions(self.warehouse, self.publication.id, session_id, self.page_rows):
            for part in self._batches(self.keys, [a.row for a in page]):
                rows = page[part]
                done += len(rows)
                session = UploadSession(session_id, seq, done >= pending, pending)
                self._replace_batch(rows, session)
                seq += 1
                if session.last_batch_flag:
                    return

    def _close(self, session_id: int, seq: int) -> None:
        """End a session with one row: a desired one if any, else one the session sent."""
        found = run(self.warehouse, "session_row", {"publication_id": self.publication.id, "session_id": session_id})
        if not found:
            raise _Stop(Failure("audience_id", f"replace session {session_id} cannot be ended: no row to end it with"))
        row = found[0]
        closing = Addition(str(row["site_id"]), str(row["customer_id"]), str(row["row_hash"]), sent(row["hashes"]))
        self._replace_batch([closing], UploadSession(session_id, seq, True, None))

    def _replace_batch(self, rows: Sequence[Addition], session: UploadSession) -> None:
        result = self._send("replace", self.keys, [a.row for a in rows], session.batch_seq, session)
        self.report.added += len(rows)  # replace: rows the session sent
        if self.dry:
            return
        self._record_added(rows, session.session_id)
        self._logged("replace", session.batch_seq, len(rows), result, session)
        if session.last_batch_flag:
            before = ledger.held_count(self.warehouse, self.publication.id)
            ledger.record_replaced(
                self.warehouse, self.publication.id, session.session_id, run_id=self.run_id, at=self.now
            )
            replaced = before - ledger.held_count(self.warehouse, self.publication.id)
            self.report.removed["replaced"] = self.report.removed.get("replaced", 0) + replaced

    # -- batches, the port, the records ---------------------------------------------------------------

    def _batches(self, keys: Sequence[str], rows: Sequence[Row]) -> list[slice]:
        return list(batches(keys, rows, self.max_rows, self.max_bytes))

    def _record_added(self, rows: Sequence[Addition], session_id: int | None) -> None:
        if self.dry:
            return
        ledger.record_added(
            self.warehouse, self.publication.id, self.destination.id, self.audience_id, self.keys, rows,
            run_id=self.run_id, at=self.now, session_id=session_id,
        )  # fmt: skip

    def _logged(
        self,
        op: str,
        seq: int,
        rows: int,
        result: BatchResult | None,
        session: UploadSession | None = None,
        *,
        outcome: str = "ok",
        error: str | None = None,
    ) -> None:
        entry = ledger.LogEntry(
            self.run_id, self.publication.id, self.audience_id, seq, op, rows, _clock(), outcome,
            attempt=self.attempt, result=result, error=error,
            session_id=session.session_id if session else None,
            last_batch=session.last_batch_flag if session else None,
        )  # fmt: skip
        ledger.log(self.warehouse, entry)

    def _send(
        self, op: str, keys: Sequence[str], rows: list[Row], seq: int, session: UploadSession | None = None
    ) -> BatchResult | None:
        """One batch through the port (or into the outbox)."""
        self.report.batches += 1
        if self.dry:
            self._write_body(op, keys, rows, session)
            return None
        calls: dict[str, Callable[[], BatchResult]] = {
            "add": lambda: self.port.add(self.audience_id, keys, rows),
            "remove": lambda: self.port.remove(self.audience_id, keys, rows),
            "replace": lambda: self.port.replace(self.audience_id, keys, rows, session),  # type: ignore[arg-type]
        }
        result: BatchResult = self._call(calls[op], op, seq=seq, rows=len(rows), session=session)
        self.report.invalid += result.num_invalid_entries
        self._pace()
        return result

    def _call(
        self,
        call: Callable[[], Any],
        op: str,
        *,
        seq: int = 0,
        rows: int = 0,
        session: UploadSession | None = None,
    ) -> Any:
        """Run one port call, waiting out throttling; log each refused attempt of a batch, and stop
        the run on anything else."""
        self.attempt = 1
        while True:
            try:
                return call()
            except DestinationError as exc:
                if seq:
                    outcome = "throttled" if isinstance(exc, Throttled) else "error"
                    error = f"{type(exc).__name__}: {exc.message}"
                    self._logged(op, seq, rows, None, session, outcome=outcome, error=error)
                if not isinstance(exc, Throttled):
                    raise _Stop(self._failure(exc)) from None
                self._wait(exc.retry_after)
                self.attempt += 1

    def _failure(self, exc: DestinationError) -> Failure:
        audience = self.audience_id or "(new)"
        if isinstance(exc, PolicyBlocked):
            return Failure(
                "audience_id",
                f"Facebook restricted audience {audience} (operation status 471) and refuses changes to it: "
                f"resolve or appeal the restriction in Audience Manager, or publish to a new audience ({exc.message})",
            )
        if isinstance(exc, TokenExpired):
            return Failure(
                "destination_id",
                f"the access token of destination {self.destination.id} (secret "
                f"{self.destination.access_token_secret}) expired or was revoked: store a new one in the secret",
            )
        if isinstance(exc, AudienceGone):
            return Failure(
                "audience_id",
                f"audience {audience} was deleted on Facebook or this destination's token cannot see it: "
                'set audience_id to another audience or to "create"',
            )
        if isinstance(exc, SessionStuck):
            return Failure(
                "audience_id", "a replace session of this audience is still open: the next run ends it", True
            )
        if isinstance(exc, Throttled):
            return Failure(
                "", f"Facebook throttled the account beyond {self.max_wait:.0f} s: the next run resumes", True
            )
        if isinstance(exc, DestinationUnavailable):
            return Failure("", f"Facebook was unreachable: the next run resumes ({exc.message})", True)
        return Failure("", f"Facebook refused a request: {exc.message}")

    def _wait(self, seconds: float) -> None:
        if self.report.waited_seconds + seconds > self.max_wait:
            raise _Stop(self._failure(Throttled("throttled", retry_after=seconds)))
        self.report.waited_seconds += seconds
        self.sleep(seconds)

    def _pace(self) -> None:
        """Slow down before the platform throttles: a pause when an answer reports usage near the
        limit. The port keeps the latest usage that came with headers, so a figure already paced
        for (no newer answer carried one) does not pause the run again."""
        usage = self.port.usage()
        if usage is self._paced:
            return
        self._paced = usage
        if usage.highest_percent >= SLOW_DOWN_PERCENT:
            seconds = max(usage.regain_access_seconds, PAUSE_SECONDS)
            self.report.waited_seconds += seconds
            self.sleep(seconds)

    def _write_body(self, op: str, keys: Sequence[str], rows: list[Row], session: UploadSession | None) -> None:
        """The request the adapter would send, as its form fields, into the outbox."""
        assert self.outbox is not None
        method, edge = _REQUESTS[op]
        body: dict[str, Any] = {"payload": payload_json(keys, rows)}
        if session is not None:
            body["session"] = json.dumps(
                {
                    "session_id": session.session_id,
                    "batch_seq": session.batch_seq,
                    "last_batch_flag": session.last_batch_flag,
                    **({"estimated_num_total": session.estimated_num_total} if session.estimated_num_total else {}),
                },
                separators=(",", ":"),
            )
        request = {
            "method": method,
            "path": f"/{self.destination.api_version}/{self.audience_id}/{edge}",
            "form": body,
            "rows": len(rows),
        }
        name = f"{self.publication.id}/{self.run_id}/{self.report.batches:05d}-{op}.json"
        data = json.dumps(request, ensure_ascii=False, indent=1).encode()
        self.report.outbox.append(self.outbox.write(name, data, "application/json"))


_REQUESTS: Final = {"add": ("POST", "users"), "remove": ("DELETE", "users"), "replace": ("POST", "usersreplace")}
"""Graph API method and edge of each operation (shared/adapters/facebook_audiences.py)."""


def _clock() -> datetime:
    return datetime.now(UTC)

"""An in-memory AudienceDestination for the publishing service's unit tests.

It keeps each audience's members as Meta does (rows per schema; a replace session's batches gather
and become the audience when the last one arrives), checks each batch against the port's limits,
counts blank or malformed rows as invalid entries, and records every call. Tests make it refuse the
next calls with the port's errors, or crash the caller the way a killed process would.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.activation.customer_file import UNHASHED
from shared.ports.audiences import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ROWS,
    AudienceGone,
    AudienceInfo,
    BatchResult,
    DestinationError,
    PolicyBlocked,
    Row,
    SessionStuck,
    Status,
    UploadSession,
    Usage,
    payload_bytes,
)

_HASH = re.compile(r"[0-9a-f]{64}")
_BATCH_OPS = ("add", "remove", "replace")


class Crash(BaseException):
    """A process killed mid-call: not a DestinationError, so nothing in the service handles it."""


@dataclass
class Call:
    op: str
    audience_id: str
    schema: tuple[str, ...]
    rows: list[Row]
    session: UploadSession | None = None


@dataclass
class _Session:
    session_id: int
    next_seq: int = 1
    rows: set[tuple[tuple[str, ...], Row]] = field(default_factory=set)
    answers: dict[int, BatchResult] = field(default_factory=dict)


@dataclass
class FakeAudiences:
    """AudienceDestination in memory; `members` is what each audience holds as (schema, row) pairs."""

    members: dict[str, set[tuple[tuple[str, ...], Row]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    current_usage: Usage = field(default_factory=Usage)
    restricted: set[str] = field(default_factory=set)
    failures: list[BaseException] = field(default_factory=list)
    fail_on_batch: dict[int, BaseException] = field(default_factory=dict)  # batch call number (from 1) -> raised
    crash_after_call: int | None = None  # the batch call of that number is applied, then Crash
    unreadable: frozenset[str] = frozenset()  # values the platform cannot read (counted invalid)
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _ended: dict[tuple[str, int], _Session] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(23850000000000001))

    # -- what tests set and read -----------------------------------------------------------------------

    def fail_next(self, error: BaseException, times: int = 1) -> None:
        self.failures.extend([error] * times)

    def held(self, audience_id: str) -> set[tuple[tuple[str, ...], Row]]:
        return set(self.members.get(audience_id, set()))

    def sent(self, op: str | None = None) -> list[Call]:
        return [c for c in self.calls if op is None or c.op == op]

    def rows_sent(self, op: str | None = None) -> int:
        return sum(len(c.rows) for c in self.sent(op))

    # -- the port -----------------------------------------------------------------------------------

    def create_audience(self, name: str, description: str, customer_file_source: str) -> str:
        self._before("create", "", (), [])
        audience_id = str(next(self._ids))
        self.members[audience_id] = set()
        self.names[audience_id] = name
        return audience_id

    def add(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        result, valid = self._batch("add", audience_id, schema, rows, session)
        self.members[audience_id] |= valid
        return self._after(result)

    def remove(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        result, valid = self._batch("remove", audience_id, schema, rows, session)
        self.members[audience_id] -= valid
        return self._after(result)

    def replace(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession
    ) -> BatchResult:
        result, valid = self._batch("replace", audience_id, schema, rows, session)
        ended = self._ended.get((audience_id, session.session_id))
        if ended is not None:  # a retry after the session ended: the same answer, nothing changes
            return self._after(ended.answers.get(session.batch_seq, result))
        current = self._sessions.get(audience_id)
        if current is not None and current.session_id != session.session_id:
            raise SessionStuck("a replace session of this audience is still open", code=2650, subcode=1870147)
        if current is None:
            if session.batch_seq != 1:
                raise DestinationError(f"session {session.session_id} does not exist", code=100)
            current = self._sessions[audience_id] = _Session(session.session_id)
        if session.batch_seq < current.next_seq:
            return self._after(current.answers[session.batch_seq])
        if session.batch_seq > current.next_seq:
            raise DestinationError(f"batch_seq {session.batch_seq} out of order", code=100)
        current.rows |= valid
        current.answers[session.batch_seq] = result
        current.next_seq += 1
        if session.last_batch_flag:
            self.members[audience_id] = set(current.rows)
            self._ended[(audience_id, session.session_id)] = current
            del self._sessions[audience_id]
        return self._after(result)

    def audience_info(self, audience_id: str) -> AudienceInfo:
        self._before("info", audience_id, (), [])
        size = len(self.members[audience_id])
        return AudienceInfo(
            audience_id,
            self.names.get(audience_id, ""),
            size,
            size,
            Status(471, "restricted") if audience_id in self.restricted else Status(200, "Normal"),
            Status(200, "ready") if size >= 100 else Status(300, "This audience is too small to use."),
        )

    def usage(self) -> Usage:
        return self.current_usage

    # -- shared checks ----------------------------------------------------------------------------------

    def _before(
        self,
        op: str,
        audience_id: str,
        schema: Sequence[str],
        rows: Sequence[Row],
        session: UploadSession | None = None,
    ) -> None:
        self.calls.append(Call(op, audience_id, tuple(schema), list(rows), session))
        if self.failures:
            raise self.failures.pop(0)
        if op in _BATCH_OPS and self._batch_calls() in self.fail_on_batch:
            raise self.fail_on_batch.pop(self._batch_calls())
        if audience_id and op != "create" and audience_id not in self.members:
            raise AudienceGone(f"Object with ID '{audience_id}' does not exist", code=100, subcode=33)
        if audience_id in self.restricted and op in _BATCH_OPS:
            raise PolicyBlocked("Audience Upload Blocked", code=100, subcode=1713230)

    def _batch(
        self, op: str, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None
    ) -> tuple[BatchResult, set[tuple[tuple[str, ...], Row]]]:
        self._before(op, audience_id, schema, rows, session)
        assert schema and rows and len(rows) <= MAX_BATCH_ROWS, (op, len(rows))
        assert payload_bytes(schema, rows) <= MAX_BATCH_BYTES, payload_bytes(schema, rows)
        assert all(len(row) == len(schema) for row in rows)
        key = tuple(schema)
        valid = {(key, row) for row in rows if _readable(key, row) and not self.unreadable & set(row)}
        samples = {v: k for row in rows for k, v in zip(key, row, strict=True) if v in self.unreadable}
        invalid = sum(1 for row in rows if (key, row) not in valid)
        return BatchResult(audience_id, len(rows), invalid, samples, session.session_id if session else None), valid

    def _batch_calls(self) -> int:
        return sum(1 for c in self.calls if c.op in _BATCH_OPS)

    def _after(self, result: BatchResult) -> BatchResult:
        applied = self._batch_calls()
        if self.crash_after_call is not None and applied >= self.crash_after_call:
            self.crash_after_call = None
            raise Crash(f"killed after call {applied}")
        return result


def _readable(schema: tuple[str, ...], row: Row) -> bool:
    if all(value is None for value in row):
        return False
    return all(
        value is None or key in UNHASHED or _HASH.fullmatch(value) for key, value in zip(schema, row, strict=True)
    )

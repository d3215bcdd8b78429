"""The AudienceDestination port: an ad platform's customer-list audience (Facebook Custom Audiences).

One call sends one batch. Chunking, deltas and the replace session's bookkeeping are the publishing
service's; an adapter refuses a batch over the limits below before anything leaves the process, so
a chunker that sizes its batches with `row_bytes` never meets that refusal.

Rows arrive normalised and hashed (shared/activation/customer_file.py): one tuple per person in the
order of the schema's keys, None for a key the person lacks (Meta takes it blank).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

Row = tuple[str | None, ...]

MAX_BATCH_ROWS: Final = 10_000
"""Meta's limit on records per /users or /usersreplace request (Custom Audience Users reference)."""

MAX_BATCH_BYTES: Final = 60_000
"""Payload JSON per request. Meta documents none; RudderStack found requests failing above about
65,000 bytes and batches at 60,000 (rudder-transformer fb_custom_audience/config.ts)."""

CUSTOMER_FILE_SOURCES: Final = frozenset(
    {"USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"}
)
"""Where the people in a customer file came from; Meta requires one on every customer-list audience."""


def payload_json(schema: Sequence[str], rows: Sequence[Row]) -> str:
    """The `payload` form field as sent: compact JSON, blanks as "", non-ASCII kept as UTF-8."""
    data = ",".join(_row_json(row) for row in rows)
    return f'{{"schema":{json.dumps(list(schema), separators=(",", ":"))},"data":[{data}]}}'


def row_bytes(row: Row) -> int:
    """What one row adds to payload_json, its separating comma included: what a chunker sums."""
    return len(_row_json(row).encode()) + 1


def payload_bytes(schema: Sequence[str], rows: Sequence[Row]) -> int:
    """len(payload_json(schema, rows).encode()), computed from the rows' sizes."""
    empty = len(payload_json(schema, []).encode())
    return empty + sum(row_bytes(row) for row in rows) - (1 if rows else 0)


def _row_json(row: Row) -> str:
    return json.dumps(["" if value is None else value for value in row], separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class UploadSession:
    """Meta's `session` object: batches of one logical upload, and the unit a replace is made of.

    session_id is ours to choose (an int64, unique per ad account); batch_seq counts from 1; the
    session ends only with a batch whose last_batch_flag is set. The service persists the pair so
    an interrupted run resumes where it stopped.
    """

    session_id: int
    batch_seq: int
    last_batch_flag: bool
    estimated_num_total: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.session_id < 2**63:
            raise ValueError(f"session_id must be a positive int64, got {self.session_id}")
        if self.batch_seq < 1:
            raise ValueError(f"batch_seq counts from 1, got {self.batch_seq}")
        if self.estimated_num_total is not None and self.estimated_num_total < 0:
            raise ValueError(f"estimated_num_total cannot be negative, got {self.estimated_num_total}")


@dataclass(frozen=True)
class BatchResult:
    """What Meta said of one batch: counts and a few invalid entries, as recorded per batch."""

    audience_id: str
    num_received: int
    num_invalid_entries: int
    invalid_entry_samples: Mapping[str, str] = field(default_factory=dict)
    session_id: int | None = None


@dataclass(frozen=True)
class Status:
    """An audience's operation or delivery status as Meta reports it (code 200 is normal)."""

    code: int
    description: str


@dataclass(frozen=True)
class AudienceInfo:
    """The audience as Meta reports it; counts are Meta's ranges, not exact sizes."""

    audience_id: str
    name: str
    approximate_count_lower_bound: int | None
    approximate_count_upper_bound: int | None
    operation_status: Status | None
    delivery_status: Status | None


@dataclass(frozen=True)
class Usage:
    """The rate-limit headers of the latest answer that had them (Meta sends them once calls add
    up), so a caller slows down before it is throttled.

    highest_percent is the largest of X-Business-Use-Case-Usage, X-Ad-Account-Usage and X-App-Usage
    (100 means throttled); regain_access_seconds is how long Meta says access stays blocked.
    """

    highest_percent: float = 0.0
    regain_access_seconds: float = 0.0


class DestinationError(RuntimeError):
    """The destination refused a call; the message is the provider's (never a credential)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        http_status: int | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.http_status = http_status
        self.trace_id = trace_id


class Throttled(DestinationError):
    """A rate limit (codes 17, 613, 80003, 80004 or HTTP 429): wait retry_after seconds and resume."""

    def __init__(self, message: str, *, retry_after: float, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class DestinationUnavailable(DestinationError):
    """An outage or a transient provider error (network, 5xx, is_transient): retry later."""


class PolicyBlocked(DestinationError):
    """The audience is restricted (operation_status 471, error 100/1713230): a person must appeal."""


class TokenExpired(DestinationError):
    """The access token expired or was revoked (190): a person must issue a new one."""


class AudienceGone(DestinationError):
    """The audience was deleted or this token cannot see it (100/33): publishing to it must stop."""


class SessionStuck(DestinationError):
    """A replace session is still open (2650/1870147): close it before starting another."""


class AudienceDestination(Protocol):
    """A customer-list audience on an ad platform, one batch per call."""

    def create_audience(self, name: str, description: str, customer_file_source: str) -> str:
        """Create an empty customer-list audience; return its id."""
        ...

    def add(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        """Add one batch of people (at most MAX_BATCH_ROWS rows and MAX_BATCH_BYTES of payload)."""
        ...

    def remove(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        """Remove one batch of people, matched by the same key hashes they were added with."""
        ...

    def replace(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession
    ) -> BatchResult:
        """Send one batch of a replace session; when its last batch arrives, the audience holds
        exactly the people the session sent."""
        ...

    def audience_info(self, audience_id: str) -> AudienceInfo:
        """Size and statuses as the platform reports them."""
        ...

    def usage(self) -> Usage:
        """Rate-limit usage as of the latest answer."""
        ...


@runtime_checkable
class RunFiles(Protocol):
    """A destination that delivers a run's batches together, as files (the file export): the
    service tells it which run the batches belong to, and when the run is over."""

    def begin(self, publication_id: str, run_id: str, at: datetime) -> None:
        """The batches that follow belong to this run of this publication (a retry repeats the run id)."""
        ...

    def finish(self, *, final: bool) -> list[str]:
        """Write the run's files from every batch it took, and return where they are. final: the run
        did not stop part-way, so its files will not change again."""
        ...

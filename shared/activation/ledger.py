"""The publication ledger and the publish log: what an audience holds, and every batch sent.

The ledger is the truth a run compares the desired rows with, so each batch the platform accepted
is recorded right after it returns: a run that stops part-way (a crash, a throttle it gave up on, a
policy block) leaves a ledger that the next run's delta starts from, and nothing recorded is sent
again. Statements are in sql/publish/; ledger writes are MERGE/UPDATE keyed by entry, so a retried
recording changes nothing. The log is append-only and read one copy per log_id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.activation.deltas import Addition, Removal, run
from shared.ports import Warehouse
from shared.ports.audiences import BatchResult
from shared.privacy.removals import RemovalQueue

LOG: Final = "audiences.publish_log"
SAMPLES: Final = 10  # invalid entries kept per batch
SAMPLE_CHARS: Final = 8  # of each: enough to tell a blank from a bad hash, never a whole value


class LedgerWriteError(RuntimeError):
    """The warehouse refused a log row; the batch itself is recorded in the ledger."""


def record_added(
    warehouse: Warehouse,
    publication_id: str,
    destination_id: str,
    audience_id: str,
    keys: Sequence[str],
    rows: Sequence[Addition],
    *,
    run_id: str,
    at: datetime,
    session_id: int | None = None,
) -> None:
    """The audience now holds these staged rows (a replace session: the session sent them): one
    batch, a run of consecutive pending rows as deltas.additions pages them."""
    first, last = rows[0], rows[-1]
    params = {
        "publication_id": publication_id,
        "destination_id": destination_id,
        "audience_id": audience_id,
        "keys": list(keys),
        "first_customer": first.customer_id,
        "first_hash": first.row_hash,
        "last_customer": last.customer_id,
        "last_hash": last.row_hash,
        "run_id": run_id,
        "added_at": at,
        "session_id": session_id,
    }
    run(warehouse, "record_added", params)


def record_removed(
    warehouse: Warehouse, publication_id: str, rows: Sequence[Removal], *, run_id: str, at: datetime
) -> None:
    """The audience no longer holds these rows: consecutive rows of the run's removal plan (a batch,
    or the shared rows of a page), all shared or all not, marked by range with their planned reasons.
    Copies kept for an erasure are deleted, and the erasure's request too once no publication has
    anything of the customer left to remove."""
    if not rows:
        return
    first, last = rows[0], rows[-1]
    if any(row.shared != first.shared for row in rows):
        raise ValueError("a recorded range is all shared rows or none")
    customers = [row.customer_id for row in rows]
    params = {
        "publication_id": publication_id,
        "shared": first.shared,
        "first_schema": ",".join(first.keys),
        "first_entry": first.entry_id,
        "last_schema": ",".join(last.keys),
        "last_entry": last.entry_id,
        "low_customer": min(customers),
        "high_customer": max(customers),
        "removed_at": at,
        "run_id": run_id,
    }
    run(warehouse, "record_removed", params)
    erased = [row for row in rows if row.reason == "erased"]
    if erased:
        run(warehouse, "forget_erasures", {"publication_id": publication_id, "entry_ids": [r.entry_id for r in erased]})
        customers_by_site: dict[str, set[str]] = defaultdict(set)
        for row in erased:
            customers_by_site[row.site_id].add(row.customer_id)
        for site_id, ids in sorted(customers_by_site.items()):
            run(warehouse, "removals_done", {"site_id": site_id, "customer_ids": sorted(ids)})


def record_replaced(warehouse: Warehouse, publication_id: str, session_id: int, *, run_id: str, at: datetime) -> None:
    """A replace session ended: held rows it did not send are out (reason replaced)."""
    params = {"publication_id": publication_id, "session_id": session_id, "removed_at": at, "run_id": run_id}
    run(warehouse, "record_replaced", params)


@dataclass(frozen=True)
class LogEntry:
    """One publish_log row: a batch sent, or refused."""

    run_id: str
    publication_id: str
    audience_id: str
    batch_seq: int
    op: str
    rows: int
    sent_at: datetime
    outcome: str  # ok, throttled or error
    attempt: int = 1
    result: BatchResult | None = None
    session_id: int | None = None
    last_batch: bool | None = None
    error: str | None = None

    def row(self) -> dict[str, object]:
        result = self.result
        return {
            "log_id": "|".join(
                map(str, (self.run_id, self.publication_id, self.session_id or "", self.batch_seq, self.attempt))
            ),
            "run_id": self.run_id,
            "publication_id": self.publication_id,
            "audience_id": self.audience_id,
            "batch_seq": self.batch_seq,
            "attempt": self.attempt,
            "op": self.op,
            "rows": self.rows,
            "num_received": result.num_received if result else None,
            "num_invalid_entries": result.num_invalid_entries if result else None,
            "invalid_entry_samples": samples(result.invalid_entry_samples) if result else [],
            "session_id": self.session_id,
            "last_batch": self.last_batch,
            "sent_at": self.sent_at.isoformat(),
            "outcome": self.outcome,
            "error": self.error[:1000] if self.error else None,
        }


def samples(invalid: Mapping[str, str]) -> list[str]:
    """Invalid entries as 'KEY: first characters…': what was wrong, without keeping the value."""
    return [f"{key or '?'}: {value[:SAMPLE_CHARS]}…" for value, key in list(invalid.items())[:SAMPLES]]


def log(warehouse: Warehouse, entry: LogEntry) -> None:
    row = entry.row()
    result = warehouse.insert_rows(LOG, [row], [str(row["log_id"])])
    if result.errors:
        raise LedgerWriteError(f"{LOG} refused a row: {result.errors[0].reason}")


def last_batch_seq(warehouse: Warehouse, run_id: str, publication_id: str) -> int:
    """The last add or remove batch this run logged: a retried run numbers on from it."""
    rows = run(warehouse, "last_batch_seq", {"run_id": run_id, "publication_id": publication_id})
    return int(rows[0]["last_seq"]) if rows else 0


@dataclass(frozen=True)
class Session:
    """A replace session as the log tells it."""

    session_id: int
    last_ok_seq: int
    ended: bool
    stuck: bool  # its latest attempt met another open session on the audience


def sessions(warehouse: Warehouse, publication_id: str) -> list[Session]:
    """The publication's replace sessions, newest first."""
    rows = run(warehouse, "sessions", {"publication_id": publication_id})
    return [
        Session(
            int(r["session_id"]),
            int(r["last_ok_seq"]),
            bool(r["ended"]),
            r["latest_outcome"] == "error" and str(r["latest_error"] or "").startswith("SessionStuck"),
        )
        for r in rows
    ]


def held_count(warehouse: Warehouse, publication_id: str) -> int:
    """Rows the publication's audience holds, as the ledger says."""
    rows = run(warehouse, "held_count", {"publication_id": publication_id})
    return int(rows[0]["held"]) if rows else 0


def known_audience(warehouse: Warehouse, publication_id: str) -> str | None:
    """The audience this publication sent to before, if any (for a publication set to "create")."""
    rows = run(warehouse, "known_audience", {"publication_id": publication_id})
    return str(rows[0]["audience_id"]) if rows else None


class LedgerRemovals:
    """The erasure's AudienceRemovals hook (shared/privacy/removals.py) for publishing.

    An erasure deletes the customer's ledger rows with everything else about them, yet the platform
    can only forget a person whose exact hashes it is sent again. So before that, this copies the
    customer's held rows to audiences.publication_erasures (kept until sent, then deleted) and
    records the request in privacy.audience_removals as RemovalQueue does, for the customers that
    had anything uploaded; each publication's next run removes them with reason erased.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse
        self._queue = RemovalQueue(warehouse)

    def request_removal(self, site_id: str, customers: Mapping[str, str], requested_at: datetime) -> int:
        if not customers:
            return 0
        params = {"site_id": site_id, "customer_ids": sorted(customers), "requested_at": requested_at}
        run(self._warehouse, "hold_erased", params)
        held = {str(r["customer_id"]) for r in run(self._warehouse, "erasures_held", params)}
        return self._queue.request_removal(site_id, {c: r for c, r in customers.items() if c in held}, requested_at)

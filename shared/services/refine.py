"""Refinement: raw events into refined events, sessions, journeys, identities, profiles and RFM.

A run covers a range of event dates. The event-level tables (events, sessions, journeys, node_days,
node_traits) are rewritten only for the dates the range touches (a delete, then an insert), and
identity_edges gains the links the range shows. Identities, RFM and profiles are then recomputed
from the identity graph and the per-node daily aggregates, whose size follows customers, not
events. Every statement rebuilds a state from its inputs, so a retried or repeated run changes
nothing but computed_at, and a backfill produces the tables day-by-day runs would.

SQL: sql/refine/*.sql, one statement each, values only as @parameters. Definitions and guardrails:
docs/segmentlets.md. Usage: `scripts/backfill FROM TO` (cli/refine.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shared.config import LOCAL_PRIVACY_SALT
from shared.jobs import job_body
from shared.ports import DocumentStore, Warehouse
from shared.runs import Run, recorded
from shared.sql import load_sql, parameter_names

JOB = "refine"
BACKFILL_JOB = "backfill"
TIMEZONE = ZoneInfo("Asia/Seoul")  # the default range is yesterday..today here
SESSION_GAP = timedelta(minutes=30)  # under a day: events.sql carries sessions over from the day before only
# Copies of an order (same site and order_id) at most this many days apart are one order: the copy
# collected last replaces the others (events.sql). raw.conv is read this far beyond a range.
ORDER_COPY_DAYS = 7
# Identifier values that mean "unknown": they never identify anyone and never link anyone.
BLOCKED_IDS = (
    "", "null", "(null)", "none", "nil", "undefined", "anonymous", "anon", "unknown", "guest", "test",
    "0", "-1", "-", "n/a", "na", "nan", "false", "true", "[object object]", "noemail@noemail.com",
)  # fmt: skip
# Values made only of zeros, dashes, dots, underscores and spaces (e.g. "000-0000-0000", "0000").
BLOCKED_PATTERN = r"^[0\s._-]*$"
# Event-level tables rewritten for the dates of a range, in order: each is cleared (<table>_delete)
# and inserted anew (<table>); then identity_edges gains the range's links.
PARTITIONED = ("events", "sessions", "journeys", "node_days", "node_traits")


@dataclass(frozen=True)
class RefineSettings:
    """Knobs of a run; docs/segmentlets.md explains each."""

    period_days: int = 90  # the period of rvn, odr, avg_rvn, sessions, page views, lists and RFM
    max_members_per_key: int = 3  # a visitor, email or phone linked to more members is shared
    list_limit: int = 20  # values kept in each list segmentlet, most recent first
    max_rounds: int = 32  # label propagation rounds before giving up
    # The salt of privacy.suppressions' hashes (Settings.privacy): events.sql drops identifiers an
    # erasure suppressed. Secret, so out of repr; the local default matches the local stack's.
    privacy_salt: str = field(default=LOCAL_PRIVACY_SALT, repr=False)


@dataclass(kw_only=True)
class RunReport(Run):
    """What a run did; also its `runs` document (shared/runs.py), which always carries `error`."""

    date_from: date
    date_to: date
    as_of: date
    rows: dict[str, int] = field(default_factory=dict)
    identity_rounds: int = 0
    profiles_rebuilt: int = 0

    def document(self) -> dict[str, Any]:
        return super().document() | {
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "as_of": self.as_of.isoformat(),
            "rows": dict(self.rows),
            "identity_rounds": self.identity_rounds,
            "profiles_rebuilt": self.profiles_rebuilt,
            "error": self.error,
        }


class Progress(Protocol):
    """Where a backfill reports its steps (the command line draws a bar): chunks, then one final step."""

    def step(self, label: str) -> None:
        """A step starts."""
        ...

    def done(self) -> None:
        """The step finished."""
        ...


class RefineError(RuntimeError):
    """A run could not complete for a reason a retry will not fix (e.g. identity did not converge)."""


def _run(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run sql/refine/<name>.sql with the parameters it uses (engines refuse unused ones)."""
    sql = load_sql(f"refine/{name}")
    return warehouse.query(sql, {key: params[key] for key in parameter_names(sql)})


def range_params(date_from: date, date_to: date, privacy_salt: str = LOCAL_PRIVACY_SALT) -> dict[str, Any]:
    """Parameters of the event-level statements for [date_from, date_to]."""
    if date_from > date_to:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    day = timedelta(days=1)
    return {
        "date_from": date_from,
        "date_to": date_to,
        # Raw copies of an event on a neighbouring day pick the same winner; sessions continue
        # from the day before and into the day after.
        "day_before": date_from - day,
        "day_after": date_to + day,
        # Copies of an order: the latest collected within ORDER_COPY_DAYS replaces the others.
        "order_copy_days": ORDER_COPY_DAYS,
        "orders_from": date_from - ORDER_COPY_DAYS * day,
        "orders_to": date_to + ORDER_COPY_DAYS * day,
        "carry_from_ts": datetime.combine(date_from, clock(), UTC) - SESSION_GAP,
        "session_gap_seconds": int(SESSION_GAP.total_seconds()),
        "blocked_ids": list(BLOCKED_IDS),
        "blocked_pattern": BLOCKED_PATTERN,
        "privacy_salt": privacy_salt,
    }


def _rewrite(warehouse: Warehouse, params: Mapping[str, Any]) -> None:
    """Clear and insert the event-level tables for the dates of params, queuing the nodes active
    there before the rewrite (with the customer that counted them) and after it (nodes new there)."""
    _run(warehouse, "profile_queue_range", params)
    for table in PARTITIONED:
        _run(warehouse, f"{table}_delete", params)
        _run(warehouse, table, params)
    _run(warehouse, "profile_queue_range", params)


def refine_range(warehouse: Warehouse, date_from: date, date_to: date, privacy_salt: str = LOCAL_PRIVACY_SALT) -> None:
    """Rewrite the event-level tables for the dates of the range and add its identity links.

    Days outside the range (within ORDER_COPY_DAYS) whose refined orders a copy in the range now
    replaces are rewritten too, in date order around the range, so that a correction arriving after
    its order's day was refined leaves the tables a refine of everything at once would build. The
    nodes of every rewritten day are queued for the next profile build. Nodes never seen before get
    an identities row, resolved by resolve_identities. Identifiers an erasure suppressed (hashed
    with privacy_salt) are dropped from the events, so an erased person is not refined again.
    """
    params = range_params(date_from, date_to, privacy_salt)
    stale = [_as_date(row["event_date"]) for row in _run(warehouse, "order_days", params)]
    for day in sorted(d for d in stale if d < date_from):
        _rewrite(warehouse, range_params(day, day, privacy_salt))
    _rewrite(warehouse, params)
    for day in sorted(d for d in stale if d > date_to):
        _rewrite(warehouse, range_params(day, day, privacy_salt))
    _run(warehouse, "identity_edges", params)
    _run(warehouse, "identities_new", params)


def _as_date(value: Any) -> date:
    """A DATE as the warehouse returns it (a date, or an ISO string)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def resolve_identities(warehouse: Warehouse, settings: RefineSettings, every_node: bool = False) -> int:
    """Connected components of the used edges by label propagation; return the rounds it took.

    Only the components with an end of a pending edge (new, or used flag changed) are resolved
    again (identity_seed); the rest keep their labels. Each round is one MERGE over those; the loop
    ends when a round lowers no label. Pointer jumping keeps the rounds logarithmic in a component's
    diameter, and identity graphs are shallow (a member with its visitors and contact keys), so a
    handful of rounds is normal; max_rounds guards a bug. identities.sql then resolves the nodes whose customer
    may have changed. every_node resolves every component and node again: a repair after deleting
    or editing identity_edges by hand, which marks nothing pending.
    """
    _run(warehouse, "identity_guard", {"max_members_per_key": settings.max_members_per_key})
    _run(warehouse, "identity_seed", {"every_node": every_node})
    for round_number in range(1, settings.max_rounds + 1):
        _run(warehouse, "identity_propagate", {"round_number": round_number})
        [changes] = _run(warehouse, "identity_changes", {"round_number": round_number})
        if not changes["changed"]:
            break
    else:
        raise RefineError(f"identity resolution did not converge in {settings.max_rounds} rounds")
    _run(warehouse, "profile_queue_identities", {"every_node": every_node})
    _run(warehouse, "identities_gone", {})
    _run(warehouse, "identities", {"every_node": every_node})
    _run(warehouse, "identity_settle", {})
    _run(warehouse, "identity_edges_settle", {})
    return round_number


def build_profiles(warehouse: Warehouse, run_date: date, now: datetime, settings: RefineSettings) -> int:
    """RFM, then the profiles (which carry the RFM group) of the customers anything touched.

    profile_scope queues the customers whose inputs changed since the last build: activity of the
    refined dates, a change of identity, days entering or leaving the period, a new RFM score.
    Those are rebuilt from all their history into profile_staging and swapped in for their old
    rows; every other profile only has its date-relative columns moved to run_date. The queue is
    emptied last, so a failed build is redone by the next run. Returns how many customers were
    rebuilt (or deleted).
    """
    params = {
        "run_date": run_date,
        "period_start": run_date - timedelta(days=settings.period_days - 1),
        "now": now,
        "list_limit": settings.list_limit,
    }
    _run(warehouse, "rfm", params)
    _run(warehouse, "profile_scope", params)
    [queued] = _run(warehouse, "profile_queue_size", params)
    for name in (
        "profile_refresh",
        "profile_staging_clear",
        "profiles",
        "profile_swap_out",
        "profile_swap_in",
        "profile_staging_clear",
        "profile_done",
        "profile_queue_clear",
    ):
        _run(warehouse, name, params)
    return int(queued["customers"])


def row_counts(warehouse: Warehouse) -> dict[str, int]:
    return {row["table_name"]: int(row["row_count"]) for row in _run(warehouse, "row_counts", {})}


def as_of(date_to: date, now: datetime) -> date:
    """The date profiles and RFM describe: today in Asia/Seoul, or date_to when that is later.

    Not simply date_to: re-running an old range must not turn the profiles back to that date.
    """
    return max(date_to, now.astimezone(TIMEZONE).date())


def _report(job: str, date_from: date, date_to: date, now: datetime, run_id: str | None) -> RunReport:
    return RunReport(
        job=job,
        run_id=run_id or f"{job}-{now:%Y%m%dT%H%M%S%f}-{date_from}-{date_to}",
        started_at=now,
        date_from=date_from,
        date_to=date_to,
        as_of=as_of(date_to, now),
    )


def refine(
    warehouse: Warehouse,
    documents: DocumentStore | None,
    date_from: date,
    date_to: date,
    now: datetime,
    settings: RefineSettings | None = None,
    run_id: str | None = None,
    every_node: bool = False,
) -> RunReport:
    """One run over the event dates [date_from, date_to]; profiles and RFM as of as_of(date_to, now).

    run_id names the `runs` document (default: job, start time and range); a handler passes one
    derived from the Pub/Sub message id so that a redelivery rewrites the same document.
    every_node resolves every identity again (resolve_identities).
    """
    settings = settings or RefineSettings()
    with recorded(documents, _report(JOB, date_from, date_to, now, run_id)) as report:
        refine_range(warehouse, date_from, date_to, settings.privacy_salt)
        report.identity_rounds = resolve_identities(warehouse, settings, every_node)
        report.profiles_rebuilt = build_profiles(warehouse, report.as_of, now, settings)
        report.rows = row_counts(warehouse)
    return report


def chunks(date_from: date, date_to: date, days: int) -> list[tuple[date, date]]:
    """[date_from, date_to] cut into consecutive ranges of at most `days` days."""
    if days < 1:
        raise ValueError("chunk days must be at least 1")
    out = []
    start = date_from
    while start <= date_to:
        end = min(start + timedelta(days=days - 1), date_to)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def backfill(
    warehouse: Warehouse,
    documents: DocumentStore | None,
    date_from: date,
    date_to: date,
    now: datetime,
    chunk_days: int = 7,
    settings: RefineSettings | None = None,
    progress: Progress | None = None,
    every_node: bool = False,
) -> RunReport:
    """Refine a range chunk by chunk (event-level tables), then identities and profiles once.

    Chunks keep each statement's size bounded on a long history; the result is the same for any
    chunk size, and the same as day-by-day runs, because each chunk reads the day before it.
    progress hears of len(chunks(...)) + 1 steps. every_node resolves every identity again
    (resolve_identities).
    """
    settings = settings or RefineSettings()
    parts = chunks(date_from, date_to, chunk_days)
    with recorded(documents, _report(BACKFILL_JOB, date_from, date_to, now, None)) as report:
        for start, end in parts:
            if progress:
                progress.step(f"{start}..{end}")
            refine_range(warehouse, start, end, settings.privacy_salt)
            if progress:
                progress.done()
        if progress:
            progress.step("identities, RFM, profiles")
        report.identity_rounds = resolve_identities(warehouse, settings, every_node)
        report.profiles_rebuilt = build_profiles(warehouse, report.as_of, now, settings)
        if progress:
            progress.done()
        report.rows = row_counts(warehouse)
    return report


def default_range(now: datetime) -> tuple[date, date]:
    """Yesterday and today in Asia/Seoul: a daily run also catches the previous day's late events."""
    today = now.astimezone(TIMEZONE).date()
    return today - timedelta(days=1), today


@dataclass(frozen=True)
class JobRequest:
    date_from: date
    date_to: date


def job_request(body: Mapping[str, Any], now: datetime) -> JobRequest:
    """The range of a `jobs` message: {"job": "refine", "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}.

    Missing dates default to default_range(now); a message that names an impossible range raises
    ValueError naming the field.
    """
    defaults = default_range(now)
    dates = []
    for name, default in zip(("from", "to"), defaults, strict=True):
        value = body.get(name)
        if value is None:
            dates.append(default)
            continue
        try:
            dates.append(date.fromisoformat(str(value)))
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a date like 2024-05-01") from None
    if dates[0] > dates[1]:
        raise ValueError(f"from {dates[0]} is after to {dates[1]}")
    return JobRequest(dates[0], dates[1])


def parse_job(data: bytes, now: datetime) -> JobRequest:
    """job_request from a raw message body; ValueError also when it is not a JSON object."""
    return job_request(job_body(data), now)

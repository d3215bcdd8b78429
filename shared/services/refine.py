"""Refinement: raw events into refined events, sessions, journeys, identities, profiles and RFM.

A run covers a range of event dates. The event-level tables (events, sessions, journeys, node_days,
node_traits) are rewritten only for the dates the range touches (a delete, then an insert), and
identity_edges gains the links the range shows. Identities, RFM and profiles are then recomputed
from the identity graph and the per-node daily aggregates, whose size follows customers, not
events. Every statement rebuilds a state from its inputs, so a retried or repeated run changes
nothing but computed_at, and a backfill produces the tables day-by-day runs would.

SQL: sql/refine/*.sql, one statement each, values only as @parameters. Definitions and guardrails:
docs/segmentlets.md. Usage: `scripts/backfill FROM TO` or `python -m shared.services.refine`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from tqdm import tqdm

from shared.ports import DocumentStore, Warehouse
from shared.scheduling import job_body
from shared.sql import load_sql, parameter_names

log = logging.getLogger(__name__)

JOB = "refine"
BACKFILL_JOB = "backfill"
RUNS = "runs"
TIMEZONE = ZoneInfo("Asia/Seoul")  # the default range is yesterday..today here
SESSION_GAP = timedelta(minutes=30)  # under a day: events.sql carries sessions over from the day before only
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


@dataclass
class RunReport:
    """What a run did; also the body of its Firestore `runs` document."""

    run_id: str
    job: str
    date_from: date
    date_to: date
    as_of: date
    status: str = "running"
    rows: dict[str, int] = field(default_factory=dict)
    identity_rounds: int = 0
    profiles_rebuilt: int = 0
    duration_ms: int = 0
    error: str | None = None

    def document(self, started_at: datetime) -> dict[str, Any]:
        finished = None if self.status == "running" else started_at + timedelta(milliseconds=self.duration_ms)
        return {
            "job": self.job,
            "status": self.status,
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "as_of": self.as_of.isoformat(),
            "started_at": started_at,
            "finished_at": finished,
            "duration_ms": self.duration_ms,
            "rows": dict(self.rows),
            "identity_rounds": self.identity_rounds,
            "profiles_rebuilt": self.profiles_rebuilt,
            "error": self.error,
        }


class RefineError(RuntimeError):
    """A run could not complete for a reason a retry will not fix (e.g. identity did not converge)."""


def _run(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run sql/refine/<name>.sql with the parameters it uses (engines refuse unused ones)."""
    sql = load_sql(f"refine/{name}")
    return warehouse.query(sql, {key: params[key] for key in parameter_names(sql)})


def range_params(date_from: date, date_to: date) -> dict[str, Any]:
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
        "carry_from_ts": datetime.combine(date_from, clock(), UTC) - SESSION_GAP,
        "session_gap_seconds": int(SESSION_GAP.total_seconds()),
        "blocked_ids": list(BLOCKED_IDS),
        "blocked_pattern": BLOCKED_PATTERN,
    }


def refine_range(warehouse: Warehouse, date_from: date, date_to: date) -> None:
    """Rewrite the event-level tables for the dates of the range and add its identity links.

    The nodes active in the range are queued for the next profile build twice: before the rewrite
    (with the customer that counted them) and after it (nodes new to the range). Nodes never seen
    before get an identities row, resolved by resolve_identities.
    """
    params = range_params(date_from, date_to)
    _run(warehouse, "profile_queue_range", params)
    for table in PARTITIONED:
        _run(warehouse, f"{table}_delete", params)
        _run(warehouse, table, params)
    _run(warehouse, "profile_queue_range", params)
    _run(warehouse, "identity_edges", params)
    _run(warehouse, "identities_new", params)


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


def _record(documents: DocumentStore | None, report: RunReport, now: datetime) -> None:
    if documents is None:
        return
    try:
        documents.set(RUNS, report.run_id, report.document(now))
    except Exception:  # noqa: BLE001 - a lost run record must not fail (or hide the outcome of) the run
        log.exception("could not record the run", extra={"run_id": report.run_id})


@contextmanager
def _recorded(
    documents: DocumentStore | None,
    job: str,
    date_from: date,
    date_to: date,
    now: datetime,
    run_id: str | None,
) -> Iterator[RunReport]:
    """Record the run in Firestore `runs`: running first, then succeeded or failed with the error."""
    report = RunReport(
        run_id or f"{job}-{now:%Y%m%dT%H%M%S%f}-{date_from}-{date_to}",
        job,
        date_from,
        date_to,
        as_of(date_to, now),
    )
    started = time.monotonic()
    _record(documents, report, now)
    try:
        yield report
        report.status = "succeeded"
    except BaseException as exc:
        report.status = "failed"
        report.error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        report.duration_ms = round((time.monotonic() - started) * 1000)
        _record(documents, report, now)
        level = logging.INFO if report.status == "succeeded" else logging.ERROR
        log.log(level, f"{job} {report.status}", extra={"run_id": report.run_id, "run": report.document(now)})


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
    with _recorded(documents, JOB, date_from, date_to, now, run_id) as report:
        refine_range(warehouse, date_from, date_to)
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
    progress: bool = True,
    every_node: bool = False,
) -> RunReport:
    """Refine a range chunk by chunk (event-level tables), then identities and profiles once.

    Chunks keep each statement's size bounded on a long history; the result is the same for any
    chunk size, and the same as day-by-day runs, because each chunk reads the day before it.
    every_node resolves every identity again (resolve_identities).
    """
    settings = settings or RefineSettings()
    parts = chunks(date_from, date_to, chunk_days)
    with _recorded(documents, BACKFILL_JOB, date_from, date_to, now, None) as report:
        bar = tqdm(total=len(parts) + 1, desc="refine", unit="chunk", disable=not progress, file=sys.stderr)
        with bar:
            for start, end in parts:
                bar.set_postfix_str(f"{start}..{end}")
                refine_range(warehouse, start, end)
                bar.update()
            bar.set_postfix_str("identities, RFM, profiles")
            report.identity_rounds = resolve_identities(warehouse, settings, every_node)
            report.profiles_rebuilt = build_profiles(warehouse, report.as_of, now, settings)
            bar.update()
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


def parse_job(data: bytes, now: datetime) -> JobRequest:
    """The range of a `jobs` message: {"job": "refine", "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}.

    Missing dates default to default_range(now); a message that names an impossible range raises
    ValueError naming the field.
    """
    body = job_body(data)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/backfill", description="Refine a range of event dates.")
    parser.add_argument("command", choices=("backfill", "run"), help="backfill: chunked with progress; run: one run")
    parser.add_argument("date_from", type=date.fromisoformat, metavar="FROM", help="first event date, YYYY-MM-DD")
    parser.add_argument("date_to", type=date.fromisoformat, metavar="TO", help="last event date, YYYY-MM-DD")
    parser.add_argument("--chunk-days", type=int, default=7, help="days per chunk of a backfill (default 7)")
    parser.add_argument("--no-record", action="store_true", help="do not record the run in Firestore `runs`")
    parser.add_argument(
        "--every-node",
        action="store_true",
        help="resolve every identity again, not only where edges changed: after deleting or editing edges by hand",
    )
    args = parser.parse_args(argv)
    if args.date_from > args.date_to:
        parser.error(f"FROM {args.date_from} is after TO {args.date_to}")

    from shared import bootstrap

    warehouse = bootstrap.warehouse()
    documents = None if args.no_record else bootstrap.documents()
    now = datetime.now(UTC)
    if args.command == "run":
        report = refine(warehouse, documents, args.date_from, args.date_to, now, every_node=args.every_node)
    else:
        report = backfill(
            warehouse,
            documents,
            args.date_from,
            args.date_to,
            now,
            chunk_days=args.chunk_days,
            every_node=args.every_node,
        )
    print(json.dumps(report.document(now) | {"run_id": report.run_id}, default=str, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Privacy: 100 erasure requests as one batch against the same number one at a time (DuckDB).

The warehouse is the refinement bench's (benchmarks/refine.py builds it: by default about 1.4M raw
events of 150,000 visitors and 120,000 customers over 180 days, then one full refine), so every
table an erasure visits holds realistic data. Then, in the same run:
- batch: `privacy.erase` of N requests at once (one find, delete and verify statement per table);
- single: `privacy.erase` of N other people, one request per call.
Both sets are members picked evenly through the customers, named by member id or by e-mail in
turn, so each request expands through identity resolution to visitors, e-mail and phone. The last
line is `privacy batch/single ratio: X.XX` (the target is at most 0.10). Usage:
`scripts/bench privacy [--requests N] [--sessions N] [--days N] [--quick] [--keep]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.refine import LAST_DAY, checkpoint, generate
from shared.adapters.duckdb_warehouse import DuckDBWarehouse, remove_database
from shared.privacy.receipts import DONE, Receipt
from shared.privacy.removals import RemovalQueue
from shared.privacy.subjects import PrivacyRequest, build_request, identifier
from shared.schema import table_specs
from shared.services import privacy
from shared.services import refine as refinement

REPO = Path(__file__).resolve().parents[1]
WORK_DIR = REPO / ".local" / "bench" / "privacy"
SITE = "bench-shop"
SALT = "bench-salt"


def subjects(warehouse: DuckDBWarehouse, count: int) -> list[PrivacyRequest]:
    """count members spread evenly over the customers, alternately named by member id and e-mail."""
    rows = warehouse.query(
        "select id_value from refined.identities where id_type = 'member' order by hash(id_value) limit @n",
        {"n": count},
    )
    if len(rows) < count:
        raise SystemExit(f"bench privacy: only {len(rows)} members in the history; use more --sessions")
    requests = []
    for n, row in enumerate(rows):
        member = str(row["id_value"])
        named = identifier("member", member) if n % 2 else identifier("email", f"c{member[1:]}@example.com")
        requests.append(build_request(f"bench-{n:04d}", "erase", [named], SITE))
    return requests


def erase(warehouse: DuckDBWarehouse, requests: Sequence[PrivacyRequest], now: datetime) -> list[Receipt]:
    return privacy.erase(warehouse, requests, salt=SALT, now=now, removals=RemovalQueue(warehouse))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench privacy", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per side (default 100)")
    parser.add_argument("--sessions", type=int, default=200_000, help="sessions in the history (default 200000)")
    parser.add_argument("--visitors", type=int, default=150_000, help="visitors (default 150000)")
    parser.add_argument("--customers", type=int, default=120_000, help="customers (default 120000)")
    parser.add_argument("--days", type=int, default=180, help="days of history (default 180)")
    parser.add_argument("--quick", action="store_true", help="a small history (20,000 sessions, 30 days): a smoke run")
    parser.add_argument("--keep", action="store_true", help=f"keep the DuckDB file in {WORK_DIR}")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.visitors, args.customers, args.days = 20_000, 15_000, 12_000, 30

    print(f"machine: {os.cpu_count()} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / "erase.duckdb"  # not privacy.duckdb: DuckDB names the catalog after the file
    remove_database(path)
    warehouse = DuckDBWarehouse(path, idle_release=3600, max_hold=3600)  # one process: hold the file
    warehouse.ensure_tables(list(table_specs().values()))
    with warehouse.connection() as conn:
        conn.execute("set enable_progress_bar = false")

    started = time.perf_counter()
    events = generate(warehouse, 0, args.sessions, args.visitors, args.customers, args.days, LAST_DAY)
    first_day = LAST_DAY - timedelta(days=args.days - 1)
    now = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=14)
    settings = refinement.RefineSettings(privacy_salt=SALT)
    refined = refinement.refine(warehouse, None, first_day, LAST_DAY, now, settings)
    checkpoint(warehouse)
    print(
        f"warehouse: {events:,} raw events, {refined.rows['profiles']:,} profiles, "
        f"{refined.rows['identities']:,} identities (built in {time.perf_counter() - started:.1f} s)"
    )

    requests = subjects(warehouse, 2 * args.requests)
    batch, single = requests[: args.requests], requests[args.requests :]

    started = time.perf_counter()
    batch_receipts = erase(warehouse, batch, now)
    checkpoint(warehouse)
    batch_seconds = time.perf_counter() - started
    erased = sum(c.erased for r in batch_receipts for c in r.tables.values())
    print(f"batch: {len(batch)} requests in one batch: {batch_seconds:.2f} s per batch ({erased:,} rows erased)")

    started = time.perf_counter()
    single_receipts = [receipt for request in single for receipt in erase(warehouse, [request], now)]
    checkpoint(warehouse)
    single_seconds = time.perf_counter() - started
    erased = sum(c.erased for r in single_receipts for c in r.tables.values())
    print(
        f"single: {len(single)} requests one at a time: {single_seconds:.2f} s "
        f"({single_seconds / len(single):.2f} s per request, {erased:,} rows erased)"
    )
    receipts = batch_receipts + single_receipts
    if not all(r.status == DONE for r in receipts):
        raise SystemExit("bench privacy: an erasure did not verify")
    print(f"verified: {len(receipts)} receipts done, 0 rows left; peak memory {peak_mb():,.0f} MB")
    warehouse.close()
    if not args.keep:
        remove_database(path)
    print(f"privacy batch/single ratio: {batch_seconds / single_seconds:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

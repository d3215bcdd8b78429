"""Report: build_report over the refinement bench's warehouse (≥ 1M raw events), its time and peak memory.

The warehouse is the refinement bench's (benchmarks/refine.py: by default about 1.4M raw events of
150,000 visitors and 120,000 customers over 180 days, then one full refine), with the 20 segments of
benchmarks/segments.py built over it and a campaign's worth of deliveries and events generated in
SQL (one delivery per customer of a 100,000 sample, most sent, some delivered and clicked). Then the
report is built once in a child process, as the scheduled job runs it (every section, the consent
gate over its sample of each site's customers, the page rendered with its font), from the warehouse
alone (no Firestore). The child's own wall time and peak RSS are the figures; the last line is
`report: built in S s, peak N MB` (targets: at most 30 s and 1 GB). Usage:
`scripts/bench report [--sessions N] [--days N] [--quick] [--keep]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.refine import LAST_DAY, checkpoint, generate
from shared.adapters.duckdb_warehouse import DuckDBWarehouse, remove_database
from shared.config import ReportSettings
from shared.schema import table_specs
from shared.services import refine as refinement

REPO = Path(__file__).resolve().parents[1]
WORK_DIR = REPO / ".local" / "bench" / "report"
SALT = "bench-salt"
NOW = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(hours=14)

# A campaign run over a sample of the customers: planned rows, then events for most of them.
DELIVERIES_SQL = """
insert into audiences.deliveries by name
select
    substr(md5('bench|' || customer_id), 1, 32) as delivery_id,
    if(hash(customer_id) % 3 = 0, 'bench-notice', 'bench-winback') as campaign_id,
    'run-1' as run_id,
    site_id,
    customer_id,
    if(hash(customer_id, 'ch') % 4 = 0, 'email', 'sms') as channel,
    'advertising' as kind,
    ['send', 'send', 'send', 'send', 'send', 'send', 'skip', 'hold'][cast(hash(customer_id, 'o') % 8 as integer) + 1]
        as outcome,
    'eligible' as reason,
    false as dry_run,
    $planned as planned_at
from refined.profiles
order by customer_id
limit $n
"""
EVENTS_SQL = """
insert into audiences.delivery_events by name
select
    substr(md5(delivery_id || '|' || e.event), 1, 32) as event_id,
    d.delivery_id, d.campaign_id, d.run_id, d.site_id, d.customer_id, d.channel,
    e.event,
    null as code,
    d.planned_at + interval 5 minute as at
from audiences.deliveries as d
cross join (values ('sent', 90), ('delivered', 70), ('clicked', 6), ('failed', 4)) as e(event, percent)
where d.outcome = 'send' and hash(d.delivery_id, e.event) % 100 < e.percent
"""


def peak_mb() -> float:
    """This process's peak resident memory. VmHWM, since ru_maxrss survives exec: a child started
    from the large parent would report the parent's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def prepare(path: Path, args: argparse.Namespace) -> str:
    """The refinement bench's warehouse, its segments, and a campaign's deliveries; a summary line."""
    remove_database(path)
    warehouse = DuckDBWarehouse(path, idle_release=3600, max_hold=3600)  # one process: hold the file
    warehouse.ensure_tables(list(table_specs().values()))
    with warehouse.connection() as conn:
        conn.execute("set enable_progress_bar = false")
    events = generate(warehouse, 0, args.sessions, args.visitors, args.customers, args.days, LAST_DAY)
    first_day = LAST_DAY - timedelta(days=args.days - 1)
    refined = refinement.refine(warehouse, None, first_day, LAST_DAY, NOW, refinement.RefineSettings(privacy_salt=SALT))
    from benchmarks.segments import build_20_segments_seconds

    build_20_segments_seconds(warehouse, NOW)
    with warehouse.connection() as conn:
        conn.execute(DELIVERIES_SQL, {"planned": NOW - timedelta(days=1), "n": args.deliveries})
        conn.execute(EVENTS_SQL)
        [(deliveries,)] = conn.execute("select count(*) from audiences.deliveries").fetchall()
        [(members,)] = conn.execute("select count(*) from audiences.segment_members").fetchall()
    checkpoint(warehouse)
    return (
        f"{events:,} raw events, {refined.rows['profiles']:,} profiles, {members:,} segment members, "
        f"{deliveries:,} deliveries"
    )


def build(path: Path, out: Path, days: int, coverage_sample: int) -> dict[str, float | str]:
    """One report run, as the job does it (here in the child process)."""
    from shared.adapters.folder_blobs import FolderBlobs
    from shared.services import report

    warehouse = DuckDBWarehouse(path, idle_release=3600, max_hold=3600)
    started = time.perf_counter()
    ports = report.ReportPorts(warehouse, None, FolderBlobs(out), SALT, days=days, coverage_sample=coverage_sample)
    built = report.build_report(ports, NOW)
    seconds = time.perf_counter() - started
    warehouse.close()
    return {"seconds": seconds, "peak_mb": peak_mb(), "bytes": built.bytes, "location": built.location}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench report", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000, help="sessions in the history (default 200000)")
    parser.add_argument("--visitors", type=int, default=150_000, help="visitors (default 150000)")
    parser.add_argument("--customers", type=int, default=120_000, help="customers (default 120000)")
    parser.add_argument("--days", type=int, default=180, help="days of history (default 180)")
    parser.add_argument("--deliveries", type=int, default=100_000, help="campaign deliveries (default 100000)")
    parser.add_argument("--quick", action="store_true", help="a small history (20,000 sessions, 30 days): a smoke run")
    parser.add_argument("--keep", action="store_true", help=f"keep the DuckDB file and the page in {WORK_DIR}")
    parser.add_argument(
        "--coverage-sample",
        type=int,
        default=ReportSettings.coverage_sample,
        help="customers per site the consent coverage asks the gate about "
        f"(default {ReportSettings.coverage_sample:,}: CDP_REPORT_COVERAGE_SAMPLE's default)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the measured run, in its own process
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(build(args.child, WORK_DIR / f"page-{os.getpid()}", 30, args.coverage_sample)))
        return 0
    if args.quick:
        args.sessions, args.visitors, args.customers, args.days, args.deliveries = 20_000, 15_000, 12_000, 30, 10_000

    print(f"machine: {os.cpu_count()} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / f"report-{os.getpid()}.duckdb"
    started = time.perf_counter()
    try:
        summary = prepare(path, args)
        print(f"warehouse: {summary} (built in {time.perf_counter() - started:.1f} s)")
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.report",
                "--child",
                str(path),
                "--coverage-sample",
                str(args.coverage_sample),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            raise SystemExit("bench report: the report run failed")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        page = Path(str(result["location"]))
        print(f"page: {int(result['bytes']) / 1024:,.0f} KB" + (f", {page}" if args.keep else " (--keep keeps it)"))
    finally:
        if not args.keep:
            remove_database(path)
            for folder in WORK_DIR.glob("page-*"):
                for file in folder.iterdir():
                    file.unlink()
                folder.rmdir()
    print(f"report: built in {float(result['seconds']):.1f} s, peak {float(result['peak_mb']):,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

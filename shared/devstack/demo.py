"""The main job, locally: the whole pipeline on a synthetic storefront, with counts that must agree.

Run it with `scripts/demo` (options: --visitors, --days, --seed, --workers). Everything runs on this
machine: the emulators, collect and load_events under functions-framework, DuckDB as the warehouse.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.beacons import TABLE_BY_TYPE
from shared.devstack.pipeline import LocalPipeline, running_pipeline
from shared.devstack.storefront import ORIGIN, SITE_ID, Beacon, Storefront

REPO = Path(__file__).resolve().parents[2]
RAW_TABLES = ["raw.page", "raw.land", "raw.event", "raw.user", "raw.conv"]


@dataclass
class Tally:
    """What the collector answered, added up: the expectation every later stage must meet."""

    requests: int = 0
    events_sent: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    bad_rows: int = 0
    retries: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, beacon: Beacon, status: int, answer: dict[str, Any]) -> None:
        with self.lock:
            self.requests += 1
            self.events_sent += len(beacon.events)
            rejected_indexes: set[int] = set()
            if status == 422:
                for r in answer["rejected"]:
                    rejected_indexes.add(r["index"])
                    self.rejected[r["reason"]] += 1
                self.bad_rows += len(answer["rejected"])
            elif status != 200:
                self.rejected[f"{answer.get('error')} (whole request)"] += 1
                self.bad_rows += 1
                rejected_indexes = set(range(len(beacon.events)))
            for index, event in enumerate(beacon.events):
                if index not in rejected_indexes:
                    self.accepted[TABLE_BY_TYPE[event["type"]]] += 1
            got = None if status == 200 else (answer.get("error") if status != 422 else answer["rejected"][0]["reason"])
            if got != beacon.expect_reason:
                self.unexpected.append(f"expected {beacon.expect_reason}, got {status} {got}")


def send_all(pipeline: LocalPipeline, beacons: list[Beacon], workers: int) -> Tally:
    """POST every beacon like the tracker: retry 503s and network errors with backoff."""
    tally = Tally()
    local = threading.local()
    url = pipeline.collect_url + "/e"

    def send(beacon: Beacon) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        delay = 0.2
        for _ in range(8):
            try:
                response = session.post(url, data=beacon.body, headers=beacon.headers, timeout=30)
                if response.status_code != 503:
                    tally.record(beacon, response.status_code, response.json())
                    return
            except requests.RequestException:
                pass
            with tally.lock:
                tally.retries += 1
            time.sleep(delay)
            delay *= 2
        raise RuntimeError("collect kept failing; see .local/demo/logs/collect.log")

    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(beacons), desc="sending beacons", unit="req") as bar:
        for future in [pool.submit(send, b) for b in beacons]:
            future.result()
            bar.update()
    return tally


def loaded_counts(path: Path) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{t}' AS t, COUNT(*) AS n FROM {t}" for t in [*RAW_TABLES, "raw.bad_rows"])
    warehouse = DuckDBWarehouse(path)
    try:
        return {r["t"]: int(r["n"]) for r in warehouse.query(sql)}
    finally:
        warehouse.close()


def wait_until_loaded(pipeline: LocalPipeline, tally: Tally, timeout: float) -> dict[str, int]:
    """Follow the loader's per-message log lines (as one would in Cloud Logging), then count rows.

    Polling the warehouse instead would contend with the loader for the DuckDB file.
    """
    log = pipeline.loader.log_path
    deadline = time.monotonic() + timeout
    with tqdm(total=tally.requests, desc="loading messages", unit="msg") as bar:
        while time.monotonic() < deadline:
            done = log.read_text(errors="replace").count('"beacon message loaded"')
            bar.n = min(done, tally.requests)
            bar.refresh()
            if done >= tally.requests:
                break
            time.sleep(0.5)
    time.sleep(1.0)  # a redelivery still in flight would show up now
    return loaded_counts(pipeline.duckdb_path)


def report(tally: Tally, counts: dict[str, int], visitors: int, days: int, seconds: dict[str, float]) -> bool:
    ok = True
    print()
    print(f"Ingestion: {SITE_ID}, {visitors:,} visitors over {days} days")
    print(f"  requests sent        {tally.requests:>9,}   ({tally.retries} retried after 503/network errors)")
    print(f"  events sent          {tally.events_sent:>9,}")
    print(f"  accepted             {sum(tally.accepted.values()):>9,}")
    print(f"  rejected             {sum(tally.rejected.values()):>9,}")
    for reason, n in sorted(tally.rejected.items()):
        print(f"    {reason:<36}{n:>6,}")
    print("  loaded per raw table        loaded   accepted")
    for table in [*RAW_TABLES, "raw.bad_rows"]:
        expected = tally.bad_rows if table == "raw.bad_rows" else tally.accepted[table]
        agree = counts.get(table, 0) == expected
        ok &= agree
        print(f"    {table:<20}{counts.get(table, 0):>11,}{expected:>11,}   {'ok' if agree else 'MISMATCH'}")
    if tally.unexpected:
        ok = False
        print(
            f"  {len(tally.unexpected)} answers differed from what the generator intended, e.g. {tally.unexpected[0]}"
        )
    rate = tally.events_sent / seconds["send"] if seconds["send"] else 0.0
    print(f"  timings: send {seconds['send']:.1f}s ({rate:,.0f} events/s), load caught up {seconds['load']:.1f}s after")
    print("All stages agree." if ok else "Stages DISAGREE: see above and .local/demo/logs/.")
    return ok


def refine_and_segment(pipeline: LocalPipeline, days: int, out: Path) -> bool:
    """Refine the history, discover clusters, apply the example segments, build them; print it all."""
    from datetime import UTC, datetime, timedelta

    from shared.adapters.firestore_store import FirestoreStore
    from shared.services import discover, refine, segments
    from shared.tam.files import load_file

    now = datetime.now(UTC)
    warehouse = DuckDBWarehouse(pipeline.duckdb_path)
    documents = FirestoreStore(pipeline.emulators.project)
    try:
        print("\ndemo: refining the history into sessions, identities, profiles and RFM")
        started = time.monotonic()
        run = refine.backfill(
            warehouse, documents, (now - timedelta(days=days + 1)).date(), now.date(), now, chunk_days=31
        )
        refined = time.monotonic() - started
        print("demo: discovering K-Means segments (charts in the report folder)")
        discovered = discover.discover(warehouse, documents, now, charts_dir=out / "discovery")
        segments.publish_catalogue(documents)
        for path in sorted((REPO / "examples" / "segments").glob("*.yaml")):
            segment_id, definition = load_file(path)
            segments.apply_segment(documents, segment_id, definition)
        built = segments.build_segments(warehouse, documents, now)
        rfm = warehouse.query(
            "SELECT rfm, COUNT(*) AS n FROM refined.profiles WHERE rfm IS NOT NULL GROUP BY rfm ORDER BY n DESC, rfm"
        )
        profiles = warehouse.query("SELECT COUNT(*) AS n, COUNTIF(is_member) AS members FROM refined.profiles")[0]
    finally:
        warehouse.close()
    print(f"Refinement: {run.status} in {refined:.1f}s; rows {run.rows}")
    print(f"  profiles {profiles['n']:,} (members {profiles['members']:,})")
    print("  RFM groups (customers with an order in the period)")
    for row in rfm:
        print(f"    {row['rfm']:<24}{row['n']:>7,}")
    print("Discovery (K-Means over the profiles)")
    print("  " + discover.format_results(discovered).replace("\n", "\n  "))
    for chart in discovered["charts"]:
        print(f"  chart {chart}")
    print("Segments (examples/segments, and the discovery segments of clusters and RFM groups)")
    for segment_id, evaluation in sorted(built.built.items()):
        doc = documents.get("segments", segment_id) or {}
        print(f"    {doc.get('name', segment_id):<40}{evaluation.size:>7,} members")
    for segment_id, error in sorted(built.failed.items()):
        print(f"    {segment_id:<40} FAILED: {error}")
    return run.status == "succeeded" and not built.failed and not built.invalid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / ".local" / "demo")
    args = parser.parse_args(argv)

    shutil.rmtree(args.out, ignore_errors=True)  # a fresh warehouse, so the counts can be compared
    args.out.mkdir(parents=True)
    print(f"demo: generating a storefront (seed {args.seed})")
    beacons = list(Storefront(seed=args.seed, visitors=args.visitors, days=args.days).beacons())
    print(f"demo: starting the emulators, collect and load_events (logs in {args.out / 'logs'})")
    env = {"CDP_MAX_EVENT_AGE_DAYS": str(args.days + 2)}  # the demo replays history through the live endpoint
    with running_pipeline(args.out, {SITE_ID: [ORIGIN]}, extra_env=env) as pipeline:
        print(f"demo: collect at {pipeline.collect_url}  (try {pipeline.collect_url}/tracker.js)")
        started = time.monotonic()
        tally = send_all(pipeline, beacons, args.workers)
        sent = time.monotonic()
        counts = wait_until_loaded(pipeline, tally, timeout=900)
        loaded = time.monotonic()
        ok = report(tally, counts, args.visitors, args.days, {"send": sent - started, "load": loaded - sent})
        ok = refine_and_segment(pipeline, args.days, args.out) and ok
    (args.out / "report.json").write_text(
        json.dumps(
            {
                "accepted": dict(tally.accepted),
                "rejected": dict(tally.rejected),
                "loaded": counts,
                "bad_rows_expected": tally.bad_rows,
                "agree": ok,
            },
            indent=2,
        )
    )
    print(f"demo: warehouse {pipeline.duckdb_path} (open it with duckdb), report {args.out / 'report.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

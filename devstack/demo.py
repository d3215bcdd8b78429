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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from devstack.pipeline import LocalPipeline, running_pipeline
from devstack.storefront import ORIGIN, SITE_ID, Beacon, Storefront
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.beacons import TABLE_BY_TYPE
from shared.schema import table_specs

REPO = Path(__file__).resolve().parents[1]
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
    """Distinct row ids per raw table: raw tables are append-only, as on BigQuery, so a redelivered
    message may repeat rows there; refinement keeps one of each."""
    specs = table_specs()
    sql = " UNION ALL ".join(
        f"SELECT '{t}' AS t, COUNT(DISTINCT {specs[t].row_id}) AS n FROM {t}" for t in [*RAW_TABLES, "raw.bad_rows"]
    )
    warehouse = DuckDBWarehouse(path)
    try:
        return {r["t"]: int(r["n"]) for r in warehouse.query(sql)}
    finally:
        warehouse.close()


def wait_until_loaded(pipeline: LocalPipeline, tally: Tally, timeout: float) -> float:
    """Follow the loader's per-message log lines (as one would in Cloud Logging) until every message
    is loaded; return when the last one was (time.monotonic).

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
                return time.monotonic()
            time.sleep(0.1)
    raise RuntimeError(
        f"{tally.requests - bar.n} of {tally.requests} messages were not loaded within {timeout:.0f} s; see {log}"
    )


def report(tally: Tally, counts: dict[str, int], visitors: int, days: int) -> bool:
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
    print("All stages agree." if ok else "Stages DISAGREE: see above and .local/demo/logs/.")
    return ok


@dataclass
class Timings:
    """Seconds per stage, in the order they ran; loading overlaps sending (it starts with the first push)."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.stages[name] = time.monotonic() - started

    def print(self, tally: Tally, load_seconds: float) -> None:
        print("Timings")
        for name, seconds in self.stages.items():
            print(f"  {name:<28}{seconds:>7.1f} s")
        print(
            f"  load rate                   {tally.requests / load_seconds:>7.1f} messages/s, "
            f"{sum(tally.accepted.values()) / load_seconds:,.0f} events/s "
            "(from the first request sent to the last message loaded, through the push subscription)"
        )


def refine_and_segment(pipeline: LocalPipeline, days: int, out: Path, timings: Timings) -> bool:
    """Refine the history, discover clusters, apply the example segments, build them, publish one to a
    fake Graph API (stopped at the end); print it all."""
    from devstack import publish_demo
    from devstack.fakes.meta_graph import running_meta_graph

    with running_meta_graph(access_token=publish_demo.DEMO_TOKEN) as graph:
        return _refine_and_segment(pipeline, days, out, timings, graph.url)


def _refine_and_segment(pipeline: LocalPipeline, days: int, out: Path, timings: Timings, graph_url: str) -> bool:
    from datetime import UTC, datetime, timedelta

    from cli.refine import backfill
    from devstack import campaign_demo, consent_demo, preferences_demo, privacy_demo, publish_demo
    from shared.adapters.firestore_store import FirestoreStore
    from shared.config import LOCAL_PRIVACY_SALT
    from shared.services import discover, segments
    from shared.tam.files import load_file

    now = datetime.now(UTC)
    warehouse = DuckDBWarehouse(pipeline.duckdb_path)
    documents = FirestoreStore(pipeline.emulators.project)
    try:
        print("\ndemo: refining the history into sessions, identities, profiles and RFM")
        with timings.stage("refine"):
            run = backfill(warehouse, documents, (now - timedelta(days=days + 1)).date(), now.date(), now, 31)
        print("demo: discovering K-Means segments (charts in the report folder)")
        with timings.stage("discover"):
            discovered = discover.discover(warehouse, documents, now, charts_dir=out / "discovery")
        with timings.stage("segments"):
            segments.publish_catalogue(documents)
            for path in sorted((REPO / "examples" / "segments").glob("*.yaml")):
                segment_id, definition = load_file(path)
                segments.apply_segment(documents, segment_id, definition)
            built = segments.build_segments(warehouse, documents, now)
        with timings.stage("consent"):
            consent_report = consent_demo.run(warehouse, SITE_ID, now, LOCAL_PRIVACY_SALT)
        with timings.stage("publishing"):
            publishing = publish_demo.configure(documents, out, graph_url)
            publish_demo.first(publishing, warehouse, documents, pipeline.env, now)
        rfm = warehouse.query(
            "SELECT rfm, COUNT(*) AS n FROM refined.profiles WHERE rfm IS NOT NULL GROUP BY rfm ORDER BY n DESC, rfm"
        )
        profiles = warehouse.query("SELECT COUNT(*) AS n, COUNTIF(is_member) AS members FROM refined.profiles")[0]
    finally:
        warehouse.close()
    with timings.stage("privacy requests"):
        privacy_report, privacy_ok = privacy_demo.run(pipeline, SITE_ID, out, now)
    with timings.stage("preference centre"):
        preferences_report, preferences_ok = preferences_demo.run(
            pipeline, SITE_ID, out / "logs", now, LOCAL_PRIVACY_SALT
        )
    with timings.stage("publishing, after the changes"):
        warehouse = DuckDBWarehouse(pipeline.duckdb_path)
        try:
            publish_demo.second(publishing, warehouse, documents, pipeline.env, now, LOCAL_PRIVACY_SALT)
        finally:
            warehouse.close()
    with timings.stage("campaigns"):
        campaigns = campaign_demo.run(pipeline, documents, out, now, SITE_ID, LOCAL_PRIVACY_SALT)
    with timings.stage("report"):
        from devstack import report_demo

        page = report_demo.run(pipeline.duckdb_path, documents, out, now, days + 1)
    print(f"Refinement: {run.status} in {timings.stages['refine']:.1f}s; rows {run.rows}")
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
    print(consent_report)
    print(privacy_report)
    print(preferences_report)
    print(publish_demo.report(publishing))
    print(campaign_demo.report(campaigns))
    print(f"Report: {page} (open it in a browser; docs/report.md)")
    return (
        run.status == "succeeded"
        and not built.failed
        and not built.invalid
        and preferences_ok
        and privacy_ok
        and publishing.ok
        and campaigns.ok
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--visitors", type=int, default=2000, help="visitors of the synthetic shop (default 2000)")
    parser.add_argument("--days", type=int, default=60, help="days of history to send (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the shop's traffic (default 7)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent senders, like browsers (default 8)")
    parser.add_argument(
        "--out", type=Path, default=REPO / ".local" / "demo", help="warehouse, logs, charts and report (emptied first)"
    )
    args = parser.parse_args(argv)

    begun = time.monotonic()
    shutil.rmtree(args.out, ignore_errors=True)  # a fresh warehouse, so the counts can be compared
    args.out.mkdir(parents=True)
    timings = Timings()
    print(f"demo: generating a storefront (seed {args.seed})")
    with timings.stage("generate"):
        beacons = list(Storefront(seed=args.seed, visitors=args.visitors, days=args.days).beacons())
    print(f"demo: starting the emulators, collect and load_events (logs in {args.out / 'logs'})")
    env = {
        "CDP_MAX_EVENT_AGE_DAYS": str(args.days + 2),  # the demo replays history through the live endpoint
        "CDP_WEBPUSH_ALLOW_LOCAL": "true",  # browsers subscribe at the local fake push service (127.0.0.1)
    }
    with ExitStack() as stack:
        with timings.stage("start the local stack"):
            pipeline = stack.enter_context(running_pipeline(args.out, {SITE_ID: [ORIGIN]}, extra_env=env))
        print(f"demo: collect at {pipeline.collect_url}  (try {pipeline.collect_url}/tracker.js)")
        started = time.monotonic()
        with timings.stage("send (HTTP to collect)"):
            tally = send_all(pipeline, beacons, args.workers)
        sent = time.monotonic()
        loaded = wait_until_loaded(pipeline, tally, timeout=900)
        timings.stages["load (after the last send)"] = loaded - sent
        time.sleep(1.0)  # a redelivery still in flight would show up now
        counts = loaded_counts(pipeline.duckdb_path)
        ok = report(tally, counts, args.visitors, args.days)
        ok = refine_and_segment(pipeline, args.days, args.out, timings) and ok
    load_seconds = loaded - started
    print()
    timings.print(tally, load_seconds)
    (args.out / "report.json").write_text(
        json.dumps(
            {
                "accepted": dict(tally.accepted),
                "rejected": dict(tally.rejected),
                "loaded": counts,
                "bad_rows_expected": tally.bad_rows,
                "agree": ok,
                "seconds": timings.stages,
                "load_messages_per_s": tally.requests / load_seconds,
            },
            indent=2,
        )
    )
    print(f"demo: warehouse {pipeline.duckdb_path} (open it with duckdb), report {args.out / 'report.json'}")
    if not ok:
        print("demo: FAILED, stages disagree or a build failed (see above)")
        return 1
    print(f"demo: done in {time.monotonic() - begun:.0f} s (load {tally.requests / load_seconds:.0f} msgs/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ingest throughput: collect against a bare functions-framework endpoint, and the DuckDB loader.

Run it with `scripts/bench ingest` (about 1-2 minutes) or `scripts/bench ingest --quick` (about 20 s).
benchmarks/README.md says what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.emulators import running_emulators
from devstack.pipeline import BEACON_TOPIC, pipeline_env
from devstack.processes import Server, StackError, free_port, start_server, wait_http
from devstack.storefront import ORIGIN, SITE_ID, Beacon, Storefront
from shared import beacons, offline_import
from shared.adapters.duckdb_warehouse import DuckDBWarehouse, short_gil_turns
from shared.adapters.pubsub_bus import PubSubBus
from shared.config import Site
from shared.schema import table_specs
from shared.services.collect import CollectorConfig, HttpRequest, handle_request
from shared.services.load import load_message

REPO = Path(__file__).resolve().parents[1]
LOG_DIR = REPO / ".local" / "bench" / "ingest"
TARGET_RATIO = 0.6
# As devstack/pipeline.py runs the loader (CDP_DUCKDB_THREADS=1): it only appends small batches.
LOADER_DUCKDB_THREADS = 1
TARGET_LOADER_MSGS = 200  # load_message from the loader's threads, small (one page view) messages
# How collect is deployed (infra/functions.tf): THREADS gunicorn threads, one per request Cloud Run's
# `concurrency` gives an instance at once; tests/infra checks the two agree. The default load matches.
PRODUCTION_THREADS = 80
RAW_TABLES = ("raw.page", "raw.land", "raw.event", "raw.user", "raw.conv")
IMPORTER_TABLES = tuple(offline_import.TABLES.values())  # what the CRM/POS importer writes: raw.user, raw.conv

# The load generator's script. wrk replays pre-built requests (one storefront beacon each, cycled; each
# thread starts at a different offset), counts statuses and accepted events from the answers, and
# prints one JSON line with the latency quantiles at 0.05 %, 0.15 %, ... 99.95 % (microseconds): each
# stands for 1/1000 of the round's requests, so rounds merge into one distribution (to 0.1 percentile).
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end

local requests, index = {}, 0
accepted, statuses = 0, {}  -- globals: done() reads them from each thread with thread:get
function init(args)
  local f = assert(io.open(args[1], "rb"))
  while true do
    local size = f:read("*l")
    if not size then break end
    requests[#requests + 1] = f:read(tonumber(size))
  end
  f:close()
  index = offset % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local n = body and body:match('"accepted":%s*(%d+)')
  if n then accepted = accepted + tonumber(n) end
end

function done(summary, latency, requests)
  local total, codes = 0, {}
  for _, t in ipairs(threads) do
    total = total + t:get("accepted")
    for code, n in pairs(t:get("statuses")) do codes[code] = (codes[code] or 0) + n end
  end
  local parts, quantiles = {}, {}
  for code, n in pairs(codes) do parts[#parts + 1] = string.format('"%d":%d', code, n) end
  if summary.requests > 0 then
    for i = 1, 1000 do quantiles[i] = string.format("%d", latency:percentile((i - 0.5) / 10)) end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"accepted":%d,"statuses":{%s},' ..
    '"socket_errors":%d,"quantiles_us":[%s]}\n',
    summary.requests, summary.duration, total, table.concat(parts, ","),
    e.connect + e.read + e.write + e.timeout, table.concat(quantiles, ",")))
end
"""


class BenchError(RuntimeError):
    """The benchmark could not measure (a server did not start, requests failed); exit non-zero."""


@dataclass(frozen=True)
class Options:
    duration: int  # measured seconds per server, split over the rounds
    rounds: int  # each round measures both servers; the order alternates (bare, collect, collect, bare)
    warmup: int  # unmeasured seconds per server before the first round
    connections: int
    wrk_threads: int
    visitors: int  # storefront size: how many distinct beacons the generator replays
    batching: str  # "session": the storefront's beacons as they are; "page": one request per page view
    seed: int
    loader_messages: int
    loader_threads: int
    bulk_rows: int  # per table
    bulk_chunk: int
    threads: int | None = None  # gunicorn threads for both servers; None keeps the framework's default


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="scripts/bench ingest", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 20 s (shorter, smaller)")
    parser.add_argument("--duration", type=int, help="measured seconds per server (default 24; quick 4)")
    parser.add_argument("--rounds", type=int, help="alternating rounds the duration is split into (default 6; quick 2)")
    parser.add_argument("--warmup", type=int, help="unmeasured seconds per server first (default 3; quick 1)")
    parser.add_argument(
        "--connections",
        type=int,
        default=PRODUCTION_THREADS,
        help=f"concurrent keep-alive connections (default {PRODUCTION_THREADS}: collect's concurrency)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=PRODUCTION_THREADS,
        help=f"gunicorn threads per worker for BOTH servers (default {PRODUCTION_THREADS}, collect's THREADS in "
        "infra/functions.tf; 0: the framework's own default, cores x 4)",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="load generator threads (default 1)")
    parser.add_argument(
        "--visitors", type=int, help="storefront visitors to draw beacons from (default 2000; quick 300)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--batching",
        choices=("session", "page"),
        default="page",
        help="page: re-batched per page view, as the live tracker sends them (default); "
        "session: the storefront's beacons, a whole visit per request, as a history replay sends them",
    )
    parser.add_argument("--loader-messages", type=int, help="bus messages for the loader (default 600; quick 20)")
    parser.add_argument("--loader-threads", type=int, default=8, help="the loader's gunicorn threads")
    parser.add_argument("--bulk-rows", type=int, help="rows per table for the bulk case (default 25000; quick 2000)")
    parser.add_argument("--bulk-chunk", type=int, default=2000, help="rows per insert_many call")
    args = parser.parse_args(argv)
    quick = bool(args.quick)

    def pick(value: int | None, default: int, quick_default: int) -> int:
        return value if value is not None else (quick_default if quick else default)

    options = Options(
        duration=pick(args.duration, 24, 4),
        rounds=pick(args.rounds, 6, 2),
        warmup=pick(args.warmup, 3, 1),
        connections=args.connections,
        wrk_threads=args.wrk_threads,
        visitors=pick(args.visitors, 2000, 300),
        batching=args.batching,
        seed=args.seed,
        loader_messages=pick(args.loader_messages, 600, 20),
        loader_threads=args.loader_threads,
        bulk_rows=pick(args.bulk_rows, 25_000, 2_000),
        bulk_chunk=args.bulk_chunk,
        threads=args.threads or None,
    )
    if options.rounds < 1 or options.duration < options.rounds or options.connections < options.wrk_threads:
        parser.error("need rounds >= 1, duration >= rounds (whole seconds per round) and connections >= wrk threads")
    return options


# ---------------------------------------------------------------------------------------------
# HTTP: both servers under the same load generator
# ---------------------------------------------------------------------------------------------


@dataclass
class HttpResult:
    """What wrk saw for one server, added up over rounds."""

    seconds: float = 0.0
    requests: int = 0
    accepted: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0
    latency_us: list[tuple[float, float]] = field(default_factory=list)  # (latency, weight in requests)
    server_cpu: float = 0.0  # CPU seconds of the server's processes (gunicorn master and worker)
    emulator_cpu: float = 0.0  # CPU seconds of the Pub/Sub emulator
    machine_busy: float = 0.0  # CPU seconds of the whole machine (every core, every process)
    window: float = 0.0  # wall seconds over which the CPU figures were taken (wrk's start to its exit)

    def add(self, other: HttpResult) -> None:
        self.seconds += other.seconds
        self.requests += other.requests
        self.accepted += other.accepted
        self.statuses.update(other.statuses)
        self.socket_errors += other.socket_errors
        self.latency_us += other.latency_us
        self.server_cpu += other.server_cpu
        self.emulator_cpu += other.emulator_cpu
        self.machine_busy += other.machine_busy
        self.window += other.window

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu / self.requests if self.requests else float("nan")

    def share(self, cpu_seconds: float) -> float:
        """CPU seconds as a percentage of one core over the measuring window."""
        return 100 * cpu_seconds / self.window if self.window else float("nan")

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        """Every answer but a 2xx (the bench sends no deliberately bad beacons), and socket errors."""
        return self.socket_errors + sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def latency_ms(self, percentile: float) -> float:
        """A percentile of the rounds' merged latency distribution."""
        total = sum(weight for _, weight in self.latency_us)
        if not total:
            return float("nan")
        rank, seen = percentile / 100 * total, 0.0
        for us, weight in sorted(self.latency_us):
            seen += weight
            if seen >= rank:
                return us / 1000
        return max(us for us, _ in self.latency_us) / 1000


def per_page(beacons: Sequence[Beacon]) -> list[Beacon]:
    """Split each visit into one request per page view: what the live tracker sends (docs/tracker.md:
    events wait at most flushInterval, 1 s, and the storefront's page views are 5-240 s apart)."""
    out: list[Beacon] = []
    for beacon in beacons:
        groups: list[list[dict[str, Any]]] = []
        for event in beacon.events:
            if event["type"] == "page" or not groups:
                groups.append([])
            groups[-1].append(event)
        for group in groups:
            body = json.dumps({"site_id": SITE_ID, "events": group}, ensure_ascii=False).encode()
            out.append(Beacon(body, dict(beacon.headers), group))
    return out


def write_requests(path: Path, beacons: Sequence[Beacon]) -> None:
    """The raw HTTP/1.1 requests wrk replays: each preceded by its size in bytes on a line of its own."""
    with path.open("wb") as out:
        for beacon in beacons:
            headers = {"Host": "127.0.0.1", **beacon.headers, "Content-Length": str(len(beacon.body))}
            head = "POST /e HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            raw = head.encode() + beacon.body
            out.write(f"{len(raw)}\n".encode() + raw)


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, from /proc; 0 for one that is gone."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_cpu() -> float:
    """CPU seconds all cores spent running anything since boot: user, nice, system, irq and softirq."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return (sum(values) - values[3] - values[4]) / _TICKS  # less idle and I/O wait (guest time is in user)


def measure(
    wrk: str, script: Path, requests: Path, server: Server, emulator: Server, seconds: int, options: Options
) -> HttpResult:
    """One wrk run against a server, with the CPU its processes, the emulator and the machine used meanwhile."""
    before = (tree_cpu(server.process.pid), tree_cpu(emulator.process.pid), machine_cpu(), time.monotonic())
    result = run_wrk(wrk, script, requests, server.url + "/e", seconds, options)
    after = (tree_cpu(server.process.pid), tree_cpu(emulator.process.pid), machine_cpu(), time.monotonic())
    result.server_cpu, result.emulator_cpu, result.machine_busy, result.window = (
        a - b for a, b in zip(after, before, strict=True)
    )
    if server.process.poll() is not None:
        raise BenchError(f"{server.name} exited during the run; log {server.log_path}:\n{server.log_tail()}")
    return result


def run_wrk(wrk: str, script: Path, requests: Path, url: str, seconds: int, options: Options) -> HttpResult:
    argv = [
        wrk,
        f"-t{options.wrk_threads}",
        f"-c{options.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(requests),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return HttpResult(
        seconds=data["duration_us"] / 1e6,
        requests=data["requests"],
        accepted=data["accepted"],
        statuses=Counter({int(k): v for k, v in data["statuses"].items()}),
        socket_errors=data["socket_errors"],
        latency_us=[(us, data["requests"] / len(data["quantiles_us"])) for us in data["quantiles_us"]],
    )


def serve(name: str, source: str, target: str, env: Mapping[str, str]) -> Server:
    """One entry point under functions-framework (gunicorn, its default workers and threads) on a free port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--source={source}",
        f"--target={target}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    server = start_server(name, argv, port, LOG_DIR, env=env, cwd=REPO)
    wait_http(server, "/healthz", timeout=60)
    return server


SERVERS = (  # name, source, target: both served by the same functions-framework command line
    ("bare", "benchmarks/bare_function/main.py", "bare"),
    ("collect", "main.py", "collect"),
)


def start_servers(stack: ExitStack, env: Mapping[str, str]) -> dict[str, Server]:
    """Both servers, started in parallel; each stopped by process group when the stack closes."""
    pool = ThreadPoolExecutor(len(SERVERS))
    futures = {name: pool.submit(serve, name, source, target, env) for name, source, target in SERVERS}
    try:
        pool.shutdown(wait=True)
    finally:
        pool.shutdown(wait=True)  # after a Ctrl-C too: let the starts end, so nothing started is left running
        for future in futures.values():
            if future.exception() is None:
                stack.callback(future.result().stop)
    errors = [exc for exc in (f.exception() for f in futures.values()) if exc is not None]
    if errors:
        raise errors[0]
    return {name: future.result() for name, future in futures.items()}


def bench_http(
    options: Options, beacons: Sequence[Beacon], work: Path, report: Callable[[str], None]
) -> dict[str, HttpResult]:
    """Start the Pub/Sub emulator, collect and the bare baseline; drive both with wrk in alternating rounds."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed: apt-get install wrk (scripts/bench installs it when run as root)")
    script, requests = work / "replay.lua", work / "requests.bin"
    script.write_text(WRK_SCRIPT)
    write_requests(requests, beacons)
    results = {name: HttpResult() for name, _, _ in SERVERS}
    with ExitStack() as stack:
        started = time.monotonic()
        emulators = stack.enter_context(running_emulators(LOG_DIR))
        emulators.export()
        PubSubBus(emulators.project).ensure_topic(BEACON_TOPIC)  # a topic, no subscription: publishes are acked
        env = pipeline_env(emulators, work / "unused.duckdb", {SITE_ID: [ORIGIN]})
        servers = start_servers(stack, env)
        report(f"  emulators and both servers up in {time.monotonic() - started:.1f} s; logs in {LOG_DIR}")
        for server in servers.values():
            run_wrk(wrk, script, requests, server.url + "/e", options.warmup, options)
        seconds = options.duration // options.rounds
        for round_ in range(options.rounds):
            order = ("bare", "collect") if round_ % 2 == 0 else ("collect", "bare")
            for name in order:
                result = measure(wrk, script, requests, servers[name], emulators.pubsub, seconds, options)
                report(
                    f"  round {round_ + 1} {name:8s} {result.requests_per_s:8.1f} req/s "
                    f"{result.events_per_s:9.1f} events/s  p50 {result.latency_ms(50):6.1f} ms  "
                    f"server CPU {result.share(result.server_cpu):3.0f} %"
                )
                results[name].add(result)
    return results


# ---------------------------------------------------------------------------------------------
# The loader: bus messages into DuckDB, in-process
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoaderResult:
    case: str
    rows: int
    messages: int
    seconds: float
    problems: int  # rows the loader did not insert (duplicates, bad rows), or rows missing from the tables
    note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds


@dataclass
class RecordingBus:
    """An EventBus that keeps what it is given: the loader's input, made by the real collect service."""

    messages: list[bytes] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.messages.append(data)
        return str(len(self.messages))

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows the messages stand for, completed as the loader completes them."""
        return [row for data in self.messages for t, row in beacons.message_rows(json.loads(data)) if t == table]


def bus_messages(beacons: Sequence[Beacon], count: int, now: datetime) -> RecordingBus:
    """The messages collect publishes for the first `count` beacons (the real service, a recording bus)."""
    config = CollectorConfig({SITE_ID: Site(SITE_ID, (ORIGIN,))}, BEACON_TOPIC, "bench-salt")
    bus = RecordingBus()
    for beacon in beacons[:count]:
        headers = {k.lower(): v for k, v in beacon.headers.items()}
        answer = handle_request(
            HttpRequest("POST", "/e", headers, beacon.body, remote_addr="127.0.0.1"), config, bus, now
        )
        if answer.status != 200:
            raise BenchError(f"collect answered {answer.status} in-process: {answer.body[:300]!r}")
    return bus


@contextmanager
def fresh_warehouse(path: Path, keyed_raw: bool = False) -> Iterator[DuckDBWarehouse]:
    """A new warehouse file; keyed_raw gives the raw tables a primary key and exact deduplication by
    `INSERT OR IGNORE`, as before they were append-only: the baseline of the loader's rate."""
    specs = list(table_specs().values())
    if keyed_raw:
        specs = [replace(s, append_only=False, enforce_row_id=True) if s.append_only else s for s in specs]
    warehouse = DuckDBWarehouse(path, specs={s.name: s for s in specs}, threads=LOADER_DUCKDB_THREADS)
    warehouse.ensure_tables(specs)
    try:
        yield warehouse
    finally:
        warehouse.close()


def table_rows(warehouse: DuckDBWarehouse, tables: Sequence[str] = RAW_TABLES) -> int:
    return sum(int(warehouse.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]) for t in tables)


def bench_load_messages(
    case: str, messages: Sequence[bytes], threads: int, path: Path, now: datetime, keyed_raw: bool = False
) -> LoaderResult:
    """load_message over every message, serially or from a pool of threads like the loader's gunicorn."""
    expected = sum(len(m["rows"]) + len(m.get("events", [])) for m in map(json.loads, messages))
    with fresh_warehouse(path, keyed_raw) as warehouse:

        def load(message: bytes) -> int:
            report = load_message(message, warehouse, now=now)
            return report.total_inserted

        started = time.perf_counter()
        if threads == 1:
            inserted = sum(load(m) for m in messages)
        else:
            with ThreadPoolExecutor(threads) as pool:
                inserted = sum(pool.map(load, messages))
        stored = table_rows(warehouse)  # timed too: it moves the write-behind buffer into the tables
        seconds = time.perf_counter() - started
    return LoaderResult(case, inserted, len(messages), seconds, abs(expected - inserted) + abs(expected - stored))


def bench_bulk(
    samples: Mapping[str, list[dict[str, Any]]], per_table: int, chunk: int, path: Path, seed: int
) -> LoaderResult:
    """insert_many of `per_table` new rows into each table, `chunk` rows a call, one table at a time: the
    offline importer's pattern. Rows are copies of collected ones with new ids; only the inserts are timed."""
    rng = random.Random(seed)
    specs = table_specs()
    calls: list[tuple[str, list[dict[str, Any]], list[str]]] = []
    for table, rows in samples.items():
        row_id = specs[table].row_id
        copies = [
            dict(rows[i % len(rows)], **{row_id: str(uuid.UUID(int=rng.getrandbits(128), version=4))})
            for i in range(per_table)
        ]
        calls += [
            (table, copies[i : i + chunk], [r[row_id] for r in copies[i : i + chunk]])
            for i in range(0, per_table, chunk)
        ]
    with fresh_warehouse(path) as warehouse:
        started = time.perf_counter()
        inserted = sum(warehouse.insert_many({table: (rows, ids)})[table].inserted for table, rows, ids in calls)
        seconds = time.perf_counter() - started
        stored = table_rows(warehouse, list(samples))
    expected = per_table * len(samples)
    tables = " + ".join(t.removeprefix("raw.") for t in samples)
    return LoaderResult(
        f"insert_many, {chunk:,}-row chunks ({tables})",
        inserted,
        len(calls),
        seconds,
        abs(expected - inserted) + abs(expected - stored),
        note="(msgs = insert_many calls)",
    )


def bench_loader(options: Options, beacons: Sequence[Beacon], work: Path) -> list[LoaderResult]:
    """The loader's DuckDB side in this process, set up as the local loader runs it (bootstrap)."""
    short_gil_turns()
    now = datetime.now(UTC)
    bus = bus_messages(beacons, max(options.loader_messages, 300), now)  # 300: enough orders and logins to copy
    messages = bus.messages[: options.loader_messages]
    serial = bench_load_messages("load_message, serial", messages, 1, work / "serial.duckdb", now)
    threaded = bench_load_messages(
        f"load_message, {options.loader_threads} threads",
        messages,
        options.loader_threads,
        work / "threads.duckdb",
        now,
    )
    keyed = bench_load_messages(
        "same, keyed raw tables (baseline)",
        messages,
        options.loader_threads,
        work / "keyed.duckdb",
        now,
        keyed_raw=True,
    )
    samples = {table: bus.rows(table) for table in IMPORTER_TABLES}
    if not all(samples.values()):
        raise BenchError(f"no rows to copy for the bulk case: {', '.join(t for t, r in samples.items() if not r)}")
    bulk = bench_bulk(samples, options.bulk_rows, options.bulk_chunk, work / "bulk.duckdb", options.seed)
    return [serial, threaded, keyed, bulk]


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def machine_facts(options: Options, beacons: Sequence[Beacon]) -> list[str]:
    cores = os.cpu_count() or 1
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    events = sum(len(b.events) for b in beacons) / len(beacons)
    size = sum(len(b.body) for b in beacons) / len(beacons) / 1024
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split(" [")[0]
    ff = importlib.metadata.version("functions-framework")
    gunicorn = importlib.metadata.version("gunicorn")
    seconds = options.duration // options.rounds
    batching = "a whole visit per request" if options.batching == "session" else "one request per page view"
    return [
        f"machine: {cores} cores ({model}), load average at start {load} (1/5/15 min), "
        f"Python {platform.python_version()}",
        f"servers: functions-framework {ff} on gunicorn {gunicorn} gthread, 1 worker x "
        f"{options.threads or cores * 4} threads "
        f"({'THREADS for both' if options.threads else 'its defaults WORKERS=1, THREADS=cores x 4'}); "
        "Pub/Sub emulator on the same machine",
        f"load: {wrk or 'wrk'}, {options.wrk_threads} thread(s), {options.connections} keep-alive connections, "
        f"replaying {len(beacons):,} storefront requests in a cycle (seed {options.seed}, {batching}: "
        f"{events:.1f} events, {size:.1f} KiB each)",
        f"      per server: {options.warmup} s warm-up, then {options.rounds} x {seconds} s measured, "
        "order bare, collect, collect, bare, ...",
    ]


def print_table(http: Mapping[str, HttpResult], loader: Sequence[LoaderResult], ratio: float) -> None:
    cores = os.cpu_count() or 1
    print()
    print(
        f"{'HTTP, one worker':44s} {'req/s':>8s} {'events/s':>9s} {'p50 ms':>7s} {'p99 ms':>7s} {'errors':>6s} "
        f"{'CPU ms/req':>10s} {'server CPU':>10s}"
    )
    for name, label in (
        ("bare", "bare functions-framework function"),
        ("collect", "collect (validate, enrich, publish)"),
    ):
        r = http[name]
        print(
            f"  {label:42s} {r.requests_per_s:8.1f} {r.events_per_s:9.1f} {r.latency_ms(50):7.1f} "
            f"{r.latency_ms(99):7.1f} {r.errors:6d} {r.cpu_ms_per_request:10.2f} "
            f"{r.share(r.server_cpu):8.0f} %"
        )
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"  {'collect/bare, requests/s':42s} {ratio:8.2f}  (target >= {TARGET_RATIO:.2f}: {met})")
    bare, collect = http["bare"], http["collect"]
    busy = 100 * (bare.machine_busy + collect.machine_busy) / (bare.window + collect.window) / cores
    print(
        f"  CPU per request, collect/bare: {collect.cpu_ms_per_request / bare.cpu_ms_per_request:.1f} x; "
        f"Pub/Sub emulator {collect.share(collect.emulator_cpu):.0f} % of a core during collect rounds; "
        f"machine {busy:.0f} % busy (all {cores} cores) over all rounds"
    )
    print()
    print(f"{'DuckDB loader, in-process':44s} {'rows/s':>8s} {'msgs/s':>9s} {'rows':>7s} {'msgs':>7s} {'seconds':>7s}")
    for result in loader:
        print(
            f"  {result.case:42s} {result.rows_per_s:8.0f} {result.messages_per_s:9.1f} {result.rows:7d} "
            f"{result.messages:7d} {result.seconds:7.2f}  {result.note}".rstrip()
        )
    threaded, keyed = loader[1], loader[2]
    met = "met" if threaded.messages_per_s >= TARGET_LOADER_MSGS else "NOT met"
    label = "loader msgs/s, " + threaded.case.removeprefix("load_message, ")
    speedup = keyed.seconds / threaded.seconds  # the same messages
    print(
        f"  {label:42s} {threaded.messages_per_s:8.1f}  "
        f"(target >= {TARGET_LOADER_MSGS}: {met}; {speedup:.1f} x the keyed baseline)"
    )
    print()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the servers through the same finally blocks as Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)
    for name in ("WORKERS", "THREADS"):  # the bench sets these, whatever the shell says
        os.environ.pop(name, None)
    if options.threads:  # the same for both servers, so the ratio stays a like-for-like comparison
        os.environ["THREADS"] = str(options.threads)
    beacons = list(Storefront(seed=options.seed, visitors=options.visitors, days=1, bad_share=0).beacons())
    if options.batching == "page":
        beacons = per_page(beacons)
    for line in machine_facts(options, beacons):
        print(line)
    print()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        try:
            http = bench_http(options, beacons, work, lambda line: print(line, flush=True))
            loader = bench_loader(options, beacons, work)
        except (BenchError, StackError) as exc:
            print(f"bench ingest: {exc}", file=sys.stderr)
            return 1
    ratio = http["collect"].requests_per_s / http["bare"].requests_per_s if http["bare"].requests_per_s else 0.0
    print_table(http, loader, ratio)
    failures = [
        f"{name}: {r.errors} errors ({dict(r.statuses)}, {r.socket_errors} socket errors)"
        for name, r in http.items()
        if r.errors
    ]
    failures += [f"{r.case}: {r.problems} rows missing or not inserted" for r in loader if r.problems]
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"collect/bare ratio: {ratio:.2f}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench ingest: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)

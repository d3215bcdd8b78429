"""Publishing: customer-file hashing, a 1M-member first upload to the fake Graph API, a day's delta.

Cases (one function each; `--cases` picks them, comma- or space-separated, all by default):
- hash: `shared.activation.customer_file.hash_rows` over N generated profiles (default 1,000,000;
  EMAIL, PHONE, FN, LN as refined.profiles and raw.user hold them: lower-case e-mails, E.164
  Korean mobiles, Hangul names with Korea's surname skew and a few Latin ones), in batches of
  10,000 as an upload streams them, against `hashlib.sha256(s.encode()).hexdigest()` over the
  same strings already normalised. Both run on each batch in turn (alternating which goes first),
  so they share whatever load the machine has; only those calls are timed, and every batch's
  digests must be equal. The ratio is bare seconds / our seconds (our rate against the bare
  rate; the target is at least 0.5).
- upload: N segment members (default 1,000,000; --quick 100,000) generated straight into a DuckDB
  file with SQL (profiles, identities, names in raw.user, ad_user_data decisions: 90 % granted, 5 %
  refused, 5 % never asked), then `publish()` through the real adapter
  (`shared.adapters.facebook_audiences`, the facebook-business SDK) to the fake Graph API
  (`devstack.fakes.meta_graph`) running as its own process on a free port, keys EMAIL, PHONE, FN, LN,
  mirror mode: requests sent, seconds (staging apart), and the process's peak RSS.
- delta: a day later, 1 % churn (a quarter each: members leave the segment, new ones enter, members
  change their e-mail, members withdraw ad_user_data; and every profile rewritten as a refine run
  does, values unchanged), then `publish()` again: the same figures and delta/full, the delta's
  seconds over the first upload's (target at most 1/20). Needs the upload (run first if not chosen).
Both check that the fake's audience ends up exactly as large as the desired set.
The last line gathers each case's figure: `publish hash ratio: X.XX, 1M first upload: N requests in
S s, delta/full: Y.YY`. Usage: `scripts/bench publish [--quick] [--profiles N] [--members N]
[--batch N] [--seed S] [--duckdb-memory SIZE] [--cases hash,upload,delta]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from devstack.processes import Server, free_port, start_server, wait_http
from shared.activation.customer_file import PROFILE_COLUMNS, hash_rows
from shared.activation.deltas import Staged
from shared.activation.publications import Destination, Publication, parse_destination, parse_publication
from shared.adapters.duckdb_warehouse import DuckDBWarehouse, remove_database
from shared.adapters.facebook_audiences import FacebookAudiences
from shared.schema import table_specs
from shared.services import publish_audiences
from shared.services.publish_audiences import Report, publish
from shared.tam.rules import Segment, parse_segment

FULL_PROFILES = 1_000_000
QUICK_PROFILES = 100_000
BATCH = 10_000  # rows per request Meta accepts, and so per batch an upload hashes
HASH_KEYS = ("EMAIL", "PHONE", "FN", "LN")
TARGET_RATIO = 0.5

# Korean surnames with roughly their shares in the 2015 census (%); the rest share what is left.
SURNAMES = {
    "김": 21.5, "이": 14.7, "박": 8.4, "최": 4.7, "정": 4.3, "강": 2.4, "조": 2.1, "윤": 2.0, "장": 2.0,
    "임": 1.6, "한": 1.5, "오": 1.5, "서": 1.5, "신": 1.4, "권": 1.4, "황": 1.4, "안": 1.3, "송": 1.3,
}  # fmt: skip
RARE_SURNAMES = [
    *"전홍유고문양손배백허남심노하곽성차주우구민류나진지엄채원천방공현함변염여추도소석선설마길연위표명기반왕금옥육인맹",
    *["남궁", "제갈", "선우", "황보", "독고"],
]
SYLLABLES = "민서지현수준하은도윤우예주연진영재아원태성호동혜유채소희승건시나정경상"
LATIN_NAMES = ["Minji", "Seojun", "Jiwoo", "Hyun-woo", "Anna", "José", "Kim", "Lee", "Park", "O'Brien"]
DOMAINS = ["naver.com", "gmail.com", "daum.net", "kakao.com", "hanmail.net", "nate.com", "example.co.kr"]

Profile = dict[str, object]
T = TypeVar("T")


def generated_batch(first: int, count: int, seed: int) -> tuple[list[Profile], list[str]]:
    """`count` profiles numbered from `first`, and their key strings already normalised, key by key.

    The normalised strings are written from what the generator knows (a lower-case address, the
    E.164 digits, the name as given or lower-cased), not by the code under measurement.
    """
    rng = random.Random(seed * 1_000_003 + first)
    surnames = list(SURNAMES) + ["rare"]
    weights = list(SURNAMES.values()) + [100 - sum(SURNAMES.values())]
    email_col, phone_col, fn_col, ln_col = (PROFILE_COLUMNS[key] for key in HASH_KEYS)
    profiles: list[Profile] = []
    normalised: list[str] = []
    for n in range(first, first + count):
        subscriber = rng.randrange(20_000_000, 100_000_000)
        if 59_700_000 <= subscriber < 60_000_000:  # 010-597x to 010-599x are not assigned
            subscriber -= 1_000_000
        phone = f"8210{subscriber}"
        email = f"user{n}.{rng.randrange(1000)}@{rng.choice(DOMAINS)}"
        if rng.random() < 0.05:
            given, family = rng.choice(LATIN_NAMES), rng.choice(LATIN_NAMES)
            given_key = given.lower().replace("-", "").replace("'", "")
            family_key = family.lower().replace("-", "").replace("'", "")
        else:
            family = rng.choices(surnames, weights)[0]
            family = rng.choice(RARE_SURNAMES) if family == "rare" else family
            given = rng.choice(SYLLABLES) + rng.choice(SYLLABLES)
            given_key, family_key = given, family
        profiles.append({email_col: email, phone_col: "+" + phone, fn_col: given, ln_col: family})
        normalised += (email, phone, given_key, family_key)
    return profiles, normalised


def bare_hashes(strings: Sequence[str]) -> list[str]:
    """The floor: SHA-256 hex of strings that need no normalising, in one comprehension."""
    return [sha256(s.encode()).hexdigest() for s in strings]


def timed(run: Callable[..., T], *args: object) -> tuple[T, float, float]:
    """The result, and the wall and CPU seconds of this process the call took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def case_hash(args: argparse.Namespace) -> str:
    """Normalise and hash `args.profiles` profiles, timed against the bare loop batch by batch."""
    ours, bare = [0.0, 0.0], [0.0, 0.0]  # wall and CPU seconds
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for number, first in enumerate(range(0, args.profiles, args.batch)):
        profiles, strings = generated_batch(first, min(args.batch, args.profiles - first), args.seed)
        if number % 2 == 0:
            rows, *ours_s = timed(hash_rows, profiles, HASH_KEYS)
            digests, *bare_s = timed(bare_hashes, strings)
        else:
            digests, *bare_s = timed(bare_hashes, strings)
            rows, *ours_s = timed(hash_rows, profiles, HASH_KEYS)
        ours = [total + part for total, part in zip(ours, ours_s, strict=True)]
        bare = [total + part for total, part in zip(bare, bare_s, strict=True)]
        flat = [digest for row in rows for digest in row]
        if flat != digests:
            wrong = next(i for i, (a, b) in enumerate(zip(flat, digests, strict=True)) if a != b)
            raise SystemExit(f"publish hash: digests differ for {strings[wrong]!r}: the case measured nothing")
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    n = args.profiles
    print(f"hash: {n:,} profiles in batches of {args.batch:,}, keys {', '.join(HASH_KEYS)}")
    print(f"  {'':6} {'wall s':>7} {'CPU s':>7} {'profiles per CPU s':>19}")
    for name, (w, c), what in [("ours", ours, "hash_rows: normalise + SHA-256"),
                               ("bare", bare, f"{len(HASH_KEYS)} x sha256(s.encode()).hexdigest()")]:  # fmt: skip
        print(f"  {name:6} {w:7.2f} {c:7.2f} {n / c:19,.0f}  {what}")
    print(f"  this process had {100 * cpu / wall:.0f} % of a core over the case ({wall:.1f} s, generation included)")
    ratio, wall_ratio = bare[1] / ours[1], bare[0] / ours[0]
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"  ratio {ratio:.2f} in CPU seconds ({wall_ratio:.2f} in wall seconds): target >= {TARGET_RATIO} {met}")
    return f"publish hash ratio: {ratio:.2f}"


# -- upload and delta ---------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
WORK_DIR = REPO / ".local" / "bench" / "publish"
FULL_MEMBERS = 1_000_000
QUICK_MEMBERS = 100_000
UPLOAD_KEYS = ("EMAIL", "PHONE", "FN", "LN")
DUCKDB_MEMORY = "512MB"
MEMORY_TARGET_MB = 1024
DELTA_TARGET = 1 / 20
SITE = "bench-shop"
SEGMENT = "bench-vip"
SALT = "bench-salt"
TOKEN = "EAAB-bench-token"
DAY0 = datetime(2026, 11, 2, 3, tzinfo=UTC)  # the first upload; the delta runs a day later
CHURN_KINDS = ("leave", "enter", "email", "withdraw")  # a quarter of the 1 % each

# Native DuckDB SQL for the generator only (the code under measurement runs sql/publish through the
# port): people numbered from $first, every value derived from the number and the seed.
PEOPLE_SQL = """
create or replace temp table people as
with numbered as (
    select i, hash(i, $seed) as h from range($first, $first + $count) as r(i)
)
select
    i,
    'c' || lpad(i::varchar, 9, '0') as customer_id,
    'm' || i as member_id,
    'user' || i || '.' || (h % 1000) || '@' || ['naver.com', 'gmail.com', 'daum.net', 'kakao.com',
        'hanmail.net', 'nate.com', 'example.co.kr'][(1 + (h >> 10) % 7)::bigint] as email,
    '+8210' || (20000000 + (h >> 13) % 39700000) as phone,  -- 010-2000 to 010-5969: assigned blocks
    s.surname as family_name,
    g.given as given_name,
    (h >> 40) % 100 as dice  -- < 90 granted ad_user_data, < 95 refused, else never asked
from numbered
inner join surnames as s on s.n = (h >> 20) % $surnames
inner join given_names as g on g.n = (h >> 30) % $given_names
"""
INSERTS_SQL = [
    """insert into refined.identities (identity_id, site_id, node, id_type, id_value, customer_id)
    select $site || '|member:' || member_id, $site, 'member:' || member_id, 'member', member_id, customer_id
    from people
    union all
    select $site || '|email:' || email, $site, 'email:' || email, 'email', email, customer_id from people""",
    """insert into refined.profiles (customer_id, site_id, member_id, email, phone, is_member, computed_at)
    select customer_id, $site, member_id, email, phone, true, $at from people""",
    """insert into raw.user (event_id, site_id, event_date, event_ts, collected_at, member_id, given_name,
        family_name, source)
    select 'user-' || i, $site, $at::date, $at, $at, member_id, given_name, family_name, 'import' from people""",
    """insert into raw.consent (consent_event_id, site_id, event_date, effective_at, recorded_at, subject_type,
        subject_value, purpose, granted, source)
    select 'consent-' || i, $site, $at::date, $at, $at, 'member', member_id, 'ad_user_data', dice < 90, 'import'
    from people where dice < 95""",
    """insert into audiences.segment_members (membership_id, segment_id, customer_id, site_id, computed_at)
    select $segment || '/' || customer_id, $segment, customer_id, $site, $at from people""",
]
# The churn picks members by a hash of their number: bucket 0 leaves, 1 changes e-mail, 2 withdraws.
CHURN_SQL = {
    "leave": """delete from audiences.segment_members
        where segment_id = $segment and hash(customer_id, $seed, 'churn') % $buckets = 0""",
    "email": """update refined.profiles set email = 'new.' || email
        where customer_id in (select customer_id from audiences.segment_members)
        and hash(customer_id, $seed, 'churn') % $buckets = 1""",
    "withdraw": """insert into raw.consent (consent_event_id, site_id, event_date, effective_at, recorded_at,
            subject_type, subject_value, purpose, granted, source)
        select 'withdrawal-' || p.member_id, $site, $at::date, $at, $at, 'member', p.member_id, 'ad_user_data',
            false, 'preference_centre'
        from refined.profiles as p
        inner join audiences.segment_members as m on m.customer_id = p.customer_id
        where hash(p.customer_id, $seed, 'churn') % $buckets = 2""",
    "refine": "update refined.profiles set computed_at = $at",  # a refine run rewrites every profile
}


def name_tables(conn: Any) -> tuple[int, int]:
    """Surnames weighted by their census shares and two-syllable given names, as temp tables."""
    surnames = [name for name, share in SURNAMES.items() for _ in range(round(share * 10))]
    rest = 1000 - len(surnames)
    surnames += [RARE_SURNAMES[n % len(RARE_SURNAMES)] for n in range(rest)]
    given = [a + b for a in SYLLABLES for b in SYLLABLES]
    for table, column, values in (("surnames", "surname", surnames), ("given_names", "given", given)):
        data = pa.table({"n": pa.array(range(len(values)), pa.int64()), column: pa.array(values)})
        conn.register(f"{table}_arrow", data)
        conn.execute(f"create or replace temp table {table} as select * from {table}_arrow")
        conn.unregister(f"{table}_arrow")
    return len(surnames), len(given)


def execute(conn: Any, sql: str, params: dict[str, Any]) -> Any:
    """conn.execute with the parameters the statement names (DuckDB refuses any other)."""
    return conn.execute(sql, {key: value for key, value in params.items() if f"${key}" in sql})


def generate_members(warehouse: DuckDBWarehouse, first: int, count: int, seed: int, at: datetime) -> None:
    """`count` customers numbered from `first`: profile, identities, names, decision, membership."""
    with warehouse.connection() as conn:
        surnames, given = name_tables(conn)
        conn.execute(
            PEOPLE_SQL,
            {"first": first, "count": count, "seed": seed, "surnames": surnames, "given_names": given},
        )
        for sql in INSERTS_SQL:
            execute(conn, sql, {"site": SITE, "segment": SEGMENT, "at": at})
        conn.execute("drop table people")


def churn(warehouse: DuckDBWarehouse, members: int, seed: int, at: datetime) -> dict[str, int]:
    """A day's 1 % churn; the number of members each kind touched."""
    buckets = round(len(CHURN_KINDS) / 0.01)
    counts: dict[str, int] = {}
    with warehouse.connection() as conn:
        for kind in ("leave", "email", "withdraw", "refine"):
            params = {"segment": SEGMENT, "site": SITE, "seed": seed, "buckets": buckets, "at": at}
            counts[kind] = int(execute(conn, CHURN_SQL[kind], params).fetchone()[0])
    counts["enter"] = members // buckets
    generate_members(warehouse, members, counts["enter"], seed, at)
    del counts["refine"]
    return counts


def checkpoint(warehouse: DuckDBWarehouse) -> None:
    """Everything written so far to the file, outside any timed phase."""
    with warehouse.connection() as conn:
        conn.execute("checkpoint")


# Peak memory: the kernel's high-water mark of this process's RSS (VmHWM), reset before each phase by
# writing 5 to /proc/self/clear_refs (Linux); DuckDB's buffers count, so DuckDB is capped for the run.
def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Phase:
    """One timed publish() run."""

    report: Report
    wall: float
    cpu: float
    staging: float
    requests: int
    peak_mb: float
    audience_size: int


@dataclass
class Stack:
    """What the upload leaves for the delta: the warehouse, the fake and the publication."""

    warehouse: DuckDBWarehouse
    graph: Server
    port: FacebookAudiences
    publication: Publication
    destination: Destination
    segment: Segment
    members: int
    upload: Phase | None = None


def fake_state(graph: Server) -> dict[str, Any]:
    with urllib.request.urlopen(graph.url + "/_fake/audiences", timeout=10) as answer:
        state: dict[str, Any] = json.loads(answer.read())
    return state


@contextmanager
def staging_clock(seconds: list[float]) -> Iterator[None]:
    """Time the staging step inside publish() (a probe around the service's `stage`)."""
    original: Callable[..., Staged] = getattr(publish_audiences, "stage")  # noqa: B009 - a probe, restored after

    def timed(*args: Any, **kwargs: Any) -> Staged:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    setattr(publish_audiences, "stage", timed)  # noqa: B010
    try:
        yield
    finally:
        setattr(publish_audiences, "stage", original)  # noqa: B010


def publish_phase(stack: Stack, run_id: str, now: datetime) -> Phase:
    """One publish() run, timed, with the requests it sent and the audience it left."""
    before = fake_state(stack.graph)["requests"]
    staging: list[float] = []
    measurable = reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    with staging_clock(staging):
        report = publish(
            stack.warehouse, stack.port, stack.publication, stack.destination, stack.segment, now, run_id, salt=SALT
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = peak_mb() if measurable else float("nan")
    state = fake_state(stack.graph)
    if report.failure is not None:
        raise SystemExit(f"publish {run_id} failed: {report.failure}")
    size = int(state["audiences"][stack.publication.audience_id]["size"])
    if size != report.staged.desired:
        raise SystemExit(
            f"publish {run_id}: the fake holds {size:,} rows, the desired set is {report.staged.desired:,}"
        )
    return Phase(report, wall, cpu, sum(staging), int(state["requests"]) - before - 1, peak, size)


def print_phase(name: str, phase: Phase) -> None:
    r = phase.report
    removed = ", ".join(f"{k} {v:,}" for k, v in sorted(r.removed.items())) or "none"
    print(f"  {name}: {phase.wall:.1f} s wall ({phase.cpu:.1f} s CPU of this process), {phase.requests:,} requests")
    print(
        f"    staging {phase.staging:.1f} s: {r.staged.members:,} members, {r.staged.eligible:,} consenting, "
        f"{r.staged.desired:,} with a key, {r.staged.hashed:,} hashed"
    )
    sending = phase.wall - phase.staging
    print(
        f"    sending {sending:.1f} s: {r.batches:,} batches, +{r.added:,} / -{sum(r.removed.values()):,} ({removed})"
    )
    print(f"    audience on the fake: {phase.audience_size:,} rows; peak RSS {phase.peak_mb:,.0f} MB")


def count_label(n: int) -> str:
    """1M, 100k, 2.5M, 12,345."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:,}"


_STACK: list[Stack] = []  # the upload's, for the delta case of the same run


def start_stack(args: argparse.Namespace) -> Stack:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / "upload.duckdb"
    remove_database(path)
    warehouse = DuckDBWarehouse(path, idle_release=3600, max_hold=3600)  # one process: hold the file
    warehouse.ensure_tables(list(table_specs().values()))
    with warehouse.connection() as conn:
        conn.execute("set enable_progress_bar = false")
        conn.execute(f"set memory_limit = '{args.duckdb_memory}'")
    port = free_port()
    argv = [sys.executable, "-m", "devstack.fakes.meta_graph", "--port", str(port), "--access-token", TOKEN]
    graph = start_server("meta_graph", [*argv, "--no-bodies"], port, WORK_DIR, cwd=REPO)
    wait_http(graph, "/_fake/audiences", timeout=30)
    adapter = FacebookAudiences("act_1234567890", TOKEN, graph_url=graph.url, timeout=60)
    audience = adapter.create_audience("bench VIP", "scripts/bench publish", "USER_PROVIDED_ONLY")
    destination = parse_destination(
        "bench-meta",
        {"type": "facebook_custom_audience", "ad_account_id": "act_1234567890", "access_token_secret": "meta-token"},
    )
    doc = {"segment_id": SEGMENT, "destination_id": destination.id, "audience_id": audience, "keys": list(UPLOAD_KEYS)}
    publication = parse_publication("bench-vip-meta", doc)
    rules = {"all": [{"segmentlet": "rvn_ltv", "op": "gte", "value": 0}]}
    segment = parse_segment(
        SEGMENT,
        {"name": "bench", "template": "behaviour", "period": {"last_days": 3650}, "rules": rules, "site_id": SITE},
    )
    return Stack(warehouse, graph, adapter, publication, destination, segment, args.members)


def case_upload(args: argparse.Namespace) -> str:
    """The first upload of `args.members` members."""
    stack = start_stack(args)
    _STACK.append(stack)
    keys = ", ".join(UPLOAD_KEYS)
    print(f"upload: {args.members:,} members, keys {keys}, mirror mode, DuckDB file capped at {args.duckdb_memory}")
    reset_peak()
    started = time.perf_counter()
    generate_members(stack.warehouse, 0, args.members, args.seed, DAY0 - timedelta(days=30))
    checkpoint(stack.warehouse)
    made = time.perf_counter() - started
    print(
        f"  generated in {made:.1f} s (SQL into DuckDB; peak RSS {peak_mb():,.0f} MB), fake Graph API {stack.graph.url}"
    )
    stack.upload = publish_phase(stack, "upload", DAY0)
    print_phase("first upload", stack.upload)
    met = "met" if stack.upload.peak_mb <= MEMORY_TARGET_MB else "NOT met"
    print(
        f"  peak RSS {stack.upload.peak_mb:,.0f} MB (DuckDB's buffers included): target <= {MEMORY_TARGET_MB} MB {met}"
    )
    return f"{count_label(args.members)} first upload: {stack.upload.requests:,} requests in {stack.upload.wall:.0f} s"


def case_delta(args: argparse.Namespace) -> str:
    """A day's 1 % churn after the upload, published."""
    stack = _STACK[-1]
    assert stack.upload is not None
    started = time.perf_counter()
    now = DAY0 + timedelta(days=1)
    touched = churn(stack.warehouse, stack.members, args.seed, now - timedelta(hours=2))
    checkpoint(stack.warehouse)
    kinds = ", ".join(f"{kind} {touched[kind]:,}" for kind in CHURN_KINDS)
    made = time.perf_counter() - started
    print(f"delta: a day later, churn of {sum(touched.values()):,} members ({kinds}; profiles rewritten), {made:.1f} s")
    delta = publish_phase(stack, "delta", now)
    print_phase("delta", delta)
    ratio = delta.wall / stack.upload.wall
    met = "met" if ratio <= DELTA_TARGET else "NOT met"
    cpu = delta.cpu / stack.upload.cpu
    print(f"  delta/full {ratio:.3f} in wall seconds ({cpu:.3f} in CPU seconds): target <= {DELTA_TARGET:.2f} {met}")
    return f"delta/full: {ratio:.2f}"


CASES: dict[str, Callable[[argparse.Namespace], str]] = {"hash": case_hash, "upload": case_upload, "delta": case_delta}
"""Each case prints its figures and returns its part of the last line, in this order."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench publish", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profiles", type=int, help=f"generated profiles (default {FULL_PROFILES:,})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_PROFILES:,} profiles")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"profiles per batch (default {BATCH:,})")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--members", type=int, help=f"upload: segment members (default {FULL_MEMBERS:,})")
    parser.add_argument(
        "--duckdb-memory", default=DUCKDB_MEMORY, help=f"upload: DuckDB's memory_limit ({DUCKDB_MEMORY})"
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), help=f"cases to run: {','.join(CASES)} (all)")
    args = parser.parse_args(argv)
    args.cases = {name for value in args.cases for name in value.split(",") if name}
    if args.cases - set(CASES):
        parser.error(f"unknown cases {', '.join(sorted(args.cases - set(CASES)))}: choose from {', '.join(CASES)}")
    if "delta" in args.cases:
        args.cases.add("upload")  # the delta is measured against, and applied after, a first upload
    args.profiles = args.profiles or (QUICK_PROFILES if args.quick else FULL_PROFILES)
    args.members = args.members or (QUICK_MEMBERS if args.quick else FULL_MEMBERS)
    if args.profiles <= 0 or args.batch <= 0 or args.members < 400:
        parser.error("--profiles and --batch must be positive, --members at least 400")
    print(f"machine: {os.cpu_count()} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        parts = [CASES[name](args) for name in CASES if name in args.cases]
    finally:
        for stack in _STACK:  # the fake stopped by its process group, the generated warehouse deleted
            stack.graph.stop()
            stack.warehouse.close()
            remove_database(stack.warehouse.path)
    print(", ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

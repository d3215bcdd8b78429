"""Campaign sending: a 100k-recipient campaign planned and delivered, render against bare Jinja2, AlimTalk, web push.

Cases (`--cases`, comma- or space-separated; `campaign` alone by default), each with its part of the
last line, joined by "; ":

campaign (issue 17's). A generated DuckDB warehouse (`--recipients N`, default 100,000; `--quick`
10,000): profiles, identities, Hangul names, marketing consent and SMS / e-mail subscriptions for
most people, and a mix of the rest (never asked, withdrawn, no phone, no e-mail, unsubscribed,
erased, over the frequency cap from an earlier campaign, an emoji in the name that Korean carriers
cannot carry). An advertising campaign (SMS, then e-mail) is planned with `send_messages.plan_run`
(the real SQL) and every batch delivered once with `deliver.deliver_batch` through channel fakes in
this process that count what they accept: plan, policy, render and ledger in recipients/s, and
where the time went. Then the render step alone against a bare `SandboxedEnvironment` loop over the
same template sources and values, batch by batch in alternating order (ratio = our rate / the bare
rate, in CPU seconds; target >= 0.5) and where our render's time goes; the peak RSS (target <= 1
GB); a sample of messages through the real adapters to devstack's network fakes (`--network N` per
channel); and a redelivery storm: a second run of the campaign whose every batch is delivered three
times at once from six threads, after which no delivery and no address may have been accepted
twice. Part: `send render ratio: X.XX, 100k planned+sent in S s, duplicates: 0`.

alimtalk (issue 18's). The same number of people, each a member with a Korean mobile number
subscribed to AlimTalk; an informational campaign planned in batches of 1,000 and delivered through
the real NhnAlimTalk adapter (its send_many: one request a batch) over HTTP to the NHN fake serving
from a thread of this process; then a redelivery storm of every batch, three copies at once, after
its done marker is dropped. Part: `alimtalk: 100k recipients in N requests, duplicates: D` (N =
recipients / 1,000, rounded up; D = messages the fake holds again for a delivery id or a number).

push (issue 18's). Preparing and encrypting a web push as the sender does (WebPush.prepare, then
pywebpush's WebPusher(subscription).encode) against bare http_ece.encrypt calls of the same
payloads to the same browser keys with a new P-256 key each (`--push N` a round, `--rounds R`
interleaved); ratio = our best round's rate / the bare's, per core (this thread's CPU seconds;
target >= 0.5). Part: `push encrypt ratio: X.XX`.

The generated files are deleted at the end. benchmarks/README.md says what each figure means. Usage:
`scripts/bench send [--cases campaign,alimtalk,push] [--quick] [--recipients N] [--network N]
[--push N] [--rounds R] [--seed S] [--duckdb-memory SIZE]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment
from pywebpush import WebPusher  # type: ignore[import-untyped]

from devstack.fakes.nhn_alimtalk import FakeTemplate, NhnAlimTalkFake, running_nhn_alimtalk
from devstack.processes import Server, StackError, free_port, start_server, wait_http
from shared.adapters.duckdb_warehouse import DuckDBWarehouse, remove_database
from shared.adapters.local_secrets import LocalSecrets, env_name
from shared.adapters.nhn_alimtalk import NhnAlimTalk
from shared.adapters.smtp_email import SmtpEmail
from shared.adapters.twilio_sms import TwilioSms
from shared.adapters.web_push import WEBPUSH, WebPush, public_key_of
from shared.consent.policy import SEOUL
from shared.consent.vocabulary import Channel
from shared.messaging import adform, clicks, ledger
from shared.messaging.alimtalk import ALIMTALK_TEMPLATES, APPROVED
from shared.messaging.campaigns import Campaign, MessagingPolicy, parse_policy, validate_campaign
from shared.messaging.clicks import ClickLinks
from shared.messaging.ledger import BATCHES, Recipient
from shared.messaging.policy import Rules
from shared.messaging.templates import CompiledTemplate, MessageTemplate, RenderFailed, compiled
from shared.messaging.webpush import b64url
from shared.ports.channels import Message, MessageChannel, SendResult
from shared.privacy.suppression import id_hash, suppression_id
from shared.schema import table_specs
from shared.services import consent, deliver
from shared.services.deliver import BatchReport, DeliverPorts, DeliveryIncomplete, Links, RateLimiter, deliver_batch
from shared.services.send_messages import PlanReport, plan_run

FULL = 100_000
QUICK = 10_000
REPO = Path(__file__).resolve().parents[1]
WORK_DIR = REPO / ".local" / "bench" / "send"
DUCKDB_MEMORY = "512MB"
TARGET_RATIO = 0.5
MEMORY_TARGET_MB = 1024
STORM_COPIES = 3
STORM_THREADS = 6
NETWORK = 200  # messages per channel sent through the real adapters to the network fakes
SITE = "bench-shop"
SEGMENT = "bench-winback"
CAMPAIGN = "bench-winback"
TEMPLATE = "bench-winback"
SALT = "bench-salt"
RUN_AT = datetime(2026, 11, 3, 12, tzinfo=SEOUL).astimezone(UTC)  # noon in Seoul: no night rule
SEND_DELAY = timedelta(minutes=1)  # deliver runs a minute after the plan
STORM_AT = RUN_AT + timedelta(hours=2)  # the second run, inside the cap's window (the first run's sends count)

POLICY_DOC: dict[str, Any] = {
    "sender": {"name": "벤치상회", "contact": "02-1234-5678"},
    "opt_out": {"number": "080-123-4567", "mailto": "unsubscribe@bench-shop.example"},
    "throttles": {"smtp": 10_000, "twilio": 10_000},  # the most a policy allows: pacing does not bound the figure
    "frequency_caps": {"advertising": {"max": 2, "days": 7}},
}
HTML = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>새 혜택</title></head>
<body style="margin:0;padding:0;background:#f4f4f4;font-family:sans-serif">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="600" cellpadding="24" style="background:#ffffff">
<tr><td><h1 style="font-size:22px">{{ family_name }}{{ given_name }}님, 다시 만나 반가워요</h1>
<p>마지막 방문 후 {{ recency_days }}일이 지났어요. {{ region or '전국' }} 회원님께 드리는 혜택을 확인하세요.</p>
{% if odr_ltv and odr_ltv > 1 %}<p>지금까지 {{ odr_ltv }}번 주문해 주셔서 감사합니다.</p>{% endif %}
<p><a href="{{ link('https://bench-shop.example/benefits') }}"
 style="background:#0064ff;color:#fff;padding:12px 20px;text-decoration:none">혜택 보기</a></p>
<p style="color:#888">회원 등급: {{ rfm or '일반' }}</p>
</td></tr></table></td></tr></table>
</body></html>"""
TEMPLATE_DOC: dict[str, Any] = {
    "name": "Win-back",
    "sms": {
        "text": "{{ given_name or '고객' }}님, {{ recency_days }}일 만이에요! 새 혜택을 확인하세요 "
        "{{ link('https://bench-shop.example/b') }}"
    },
    "email": {
        "subject": "{{ given_name or '고객' }}님, 새 혜택이 도착했어요",
        "html": HTML,
        "text": "{{ family_name }}{{ given_name }}님, 마지막 방문 후 {{ recency_days }}일이 지났어요.\n"
        "새 혜택: {{ link('https://bench-shop.example/benefits') }}\n",
    },
}
CAMPAIGN_DOC: dict[str, Any] = {
    "name": "Win-back",
    "segment_id": SEGMENT,
    "kind": "advertising",
    "channels": ["sms", "email"],
    "template_id": TEMPLATE,
    "enabled": True,
}

# -- the warehouse ------------------------------------------------------------------------------------

# Native DuckDB SQL for the generator only (the code under measurement runs sql/messaging and
# sql/consent through the port). Each person's dice (a hash each) decide, out of 1,000: e-mail < 60 none; phone
# < 80 none; consent < 40 never asked, < 70 withdrawn; sms < 40 never subscribed, < 70 unsubscribed;
# email < 50 unsubscribed; cap < 30 two advertising messages in the last two days; name < 3 an emoji.
PEOPLE_SQL = """
create or replace temp table people as
with numbered as (
    select
        i,
        hash(i, $seed, 'email') % 1000 as d_email,
        hash(i, $seed, 'phone') % 1000 as d_phone,
        hash(i, $seed, 'consent') % 1000 as d_consent,
        hash(i, $seed, 'sms') % 1000 as d_sms,
        hash(i, $seed, 'mail') % 1000 as d_mail,
        hash(i, $seed, 'cap') % 1000 as d_cap,
        hash(i, $seed, 'emoji') % 1000 as d_emoji,
        hash(i, $seed, 'values') as h
    from range($count) as r(i)
)
select
    *,
    'c' || lpad(i::varchar, 9, '0') as customer_id,
    'm' || i as member_id,
    if(d_email < 60, null, 'user' || i || '@' || ['naver.com', 'gmail.com', 'daum.net', 'kakao.com',
        'hanmail.net', 'nate.com'][(1 + h % 6)::bigint]) as email,
    if(d_phone < 80, null, '+8210' || (20000000 + i)) as phone,
    ['김', '이', '박', '최', '정', '강', '조', '윤', '장', '임', '한', '오'][(1 + (h >> 4) % 12)::bigint]
        as family_name,
    substr('민서지현수준하은도윤우예주연진영재아원태', (1 + (h >> 9) % 20)::bigint, 1)
        || substr('민서지현수준하은도윤우예주연진영재아원태', (1 + (h >> 14) % 20)::bigint, 1)
        || if(d_emoji < 3, '😊', '') as given_name,
    ['Seoul', 'Busan', 'Incheon', 'Daegu', 'Gyeonggi', null][(1 + (h >> 19) % 6)::bigint] as region,
    ['Champions', 'Loyal', 'Need attention', 'At risk', 'Hibernating'][(1 + (h >> 23) % 5)::bigint] as rfm,
    60 + (h >> 27) % 300 as recency_days,
    1 + (h >> 37) % 9 as odr_ltv
from numbered
"""
INSERTS_SQL = [
    """insert into refined.identities (identity_id, site_id, node, id_type, id_value, customer_id)
    select $site || '|member:' || member_id, $site, 'member:' || member_id, 'member', member_id, customer_id
    from people
    union all
    select $site || '|email:' || email, $site, 'email:' || email, 'email', email, customer_id
    from people where email is not null
    union all
    select $site || '|phone:' || phone, $site, 'phone:' || phone, 'phone', phone, customer_id
    from people where phone is not null""",
    """insert into refined.profiles (customer_id, site_id, member_id, email, phone, region, rfm, age,
        recency_days, odr_ltv, rvn_ltv, is_member, computed_at)
    select customer_id, $site, member_id, email, phone, region, rfm, 20 + i % 50, recency_days, odr_ltv,
        odr_ltv * 38000, true, $t0
    from people""",
    """insert into raw.user (event_id, site_id, event_date, event_ts, collected_at, member_id, given_name,
        family_name, source)
    select 'user-' || i, $site, $t0::date, $t0, $t0, member_id, given_name, family_name, 'import' from people""",
    """insert into raw.consent (consent_event_id, site_id, event_date, effective_at, recorded_at, subject_type,
        subject_value, purpose, granted, source)
    select 'grant-' || i, $site, $t0::date, $t0, $t0, 'member', member_id, 'marketing', true, 'preference_centre'
    from people where d_consent >= 40
    union all
    select 'withdraw-' || i, $site, $withdrawn::date, $withdrawn, $withdrawn, 'member', member_id, 'marketing',
        false, 'preference_centre'
    from people where d_consent >= 40 and d_consent < 70""",
    """insert into raw.subscription (subscription_event_id, site_id, event_date, effective_at, recorded_at,
        channel, address, subscribed, source)
    select 'sms-' || i, $site, $t0::date, $t0, $t0, 'sms', phone, true, 'form'
    from people where phone is not null and d_sms >= 40
    union all
    select 'sms-stop-' || i, $site, $withdrawn::date, $withdrawn, $withdrawn, 'sms', phone, false, 'preference_centre'
    from people where phone is not null and d_sms >= 40 and d_sms < 70
    union all
    select 'mail-' || i, $site, $t0::date, $t0, $t0, 'email', email, true, 'form'
    from people where email is not null
    union all
    select 'mail-stop-' || i, $site, $withdrawn::date, $withdrawn, $withdrawn, 'email', email, false,
        'preference_centre'
    from people where email is not null and d_mail < 50""",
    """insert into audiences.segment_members (membership_id, segment_id, customer_id, site_id, computed_at)
    select $segment || '/' || customer_id, $segment, customer_id, $site, $t0 from people""",
    # two advertising messages of an earlier campaign in the last two days: over the cap of 2 in 7 days
    """insert into audiences.deliveries (delivery_id, campaign_id, run_id, site_id, customer_id, channel,
        address, kind, outcome, reason, batch, dry_run, planned_at)
    select md5('earlier' || i || '-' || k), 'bench-earlier', 'run-' || k, $site, customer_id, 'sms', phone,
        'advertising', 'send', 'eligible', 1, false, $earlier + to_days(k::integer)
    from people, range(2) as r(k) where d_cap < 30 and phone is not null""",
    """insert into audiences.delivery_events (event_id, delivery_id, campaign_id, run_id, site_id, customer_id,
        channel, event, "at")
    select md5('earlier-sent' || i || '-' || k), md5('earlier' || i || '-' || k), 'bench-earlier', 'run-' || k,
        $site, customer_id, 'sms', 'sent', $earlier + to_days(k::integer)
    from people, range(2) as r(k) where d_cap < 30 and phone is not null""",
]
ERASED_SHARE = 500  # one person in 500 was erased: a suppression hash of their member id


def execute(conn: Any, sql: str, params: Mapping[str, Any]) -> Any:
    """conn.execute with the parameters the statement names (DuckDB refuses any other)."""
    return conn.execute(sql, {key: value for key, value in params.items() if f"${key}" in sql})


def generate(
    warehouse: DuckDBWarehouse, count: int, seed: int, inserts: Sequence[str] = INSERTS_SQL, erase: bool = True
) -> None:
    """`count` segment members with their profiles, names, consent, subscriptions and history
    (what `inserts` write of the generated people), and one in ERASED_SHARE erased if `erase`."""
    t0 = RUN_AT - timedelta(days=90)
    params = {
        "seed": seed, "count": count, "site": SITE, "segment": SEGMENT, "t0": t0,
        "withdrawn": RUN_AT - timedelta(days=20), "earlier": RUN_AT - timedelta(days=2),
    }  # fmt: skip
    with warehouse.connection() as conn:
        execute(conn, PEOPLE_SQL, params)
        for sql in inserts:
            execute(conn, sql, params)
        conn.execute("drop table people")
    if not erase:
        with warehouse.connection() as conn:
            conn.execute("checkpoint")
        return
    erased = [f"m{i}" for i in range(7, count, ERASED_SHARE)]
    hashes = [id_hash(SALT, SITE, "member", member) for member in erased]
    rows = [
        {"suppression_id": suppression_id(SITE, h), "site_id": SITE, "id_type": "member", "id_hash": h,
         "suppressed_at": t0.isoformat(), "request_id": f"bench-{n}", "reason": "erasure"}
        for n, h in enumerate(hashes)
    ]  # fmt: skip
    result = warehouse.insert_rows("privacy.suppressions", rows, [r["suppression_id"] for r in rows])
    if result.errors:
        raise SystemExit(f"bench send: suppressions refused: {result.errors[:3]}")
    with warehouse.connection() as conn:
        conn.execute("checkpoint")


# -- the fakes: ports in this process ------------------------------------------------------------------


class Documents:
    """The DocumentStore port as a dict behind one lock: `create` is atomic, as Firestore's is.
    Documents are copied one level deep on the way in and out (claims are flat)."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._docs.get((collection, doc_id))
        return dict(found) if found is not None else None

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        with self._lock:
            kept = self._docs.get((collection, doc_id), {}) if merge else {}
            self._docs[(collection, doc_id)] = {**kept, **data}

    def create(self, collection: str, doc_id: str, data: Mapping[str, Any]) -> bool:
        with self._lock:
            if (collection, doc_id) in self._docs:
                return False
            self._docs[(collection, doc_id)] = dict(data)
            return True

    def list(self, collection: str, where: Sequence[tuple[str, str, Any]] = ()) -> list[tuple[str, dict[str, Any]]]:
        if where:
            raise NotImplementedError("the bench's documents list whole collections only")
        with self._lock:
            return sorted((key, dict(doc)) for (name, key), doc in self._docs.items() if name == collection)

    def drop(self, collection: str) -> int:
        """Delete a whole collection (not the port's: the bench forgets what a dead worker never wrote)."""
        with self._lock:
            keys = [key for key in self._docs if key[0] == collection]
            for key in keys:
                del self._docs[key]
        return len(keys)

    def delete(self, collection: str, doc_id: str) -> None:
        with self._lock:
            self._docs.pop((collection, doc_id), None)


@dataclass
class Topic:
    """The EventBus port: what was published, in order."""

    published: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.published.append((topic, data))
        return str(len(self.published))

    def batches(self, first: int = 0) -> list[bytes]:
        return [data for topic, data in self.published[first:] if topic == ledger.TOPIC]


@dataclass
class Provider:
    """A channel that accepts every message and counts, per delivery id and per (run, address), how
    often it accepted one: any count above 1 is a duplicate send. It keeps no message bodies."""

    name: str
    by_delivery: Counter[str] = field(default_factory=Counter)
    by_address: Counter[tuple[str, str]] = field(default_factory=Counter)
    characters: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, message: Message) -> SendResult:
        with self._lock:
            self.by_delivery[message.delivery_id] += 1
            self.by_address[(message.metadata.get("run_id", ""), message.to)] += 1
            self.characters += len(message.text) + len(message.html or "")
        return SendResult("accepted", provider_id=f"{self.name}-{message.delivery_id[:12]}")

    def lookup(self, message: Message) -> SendResult | None:
        with self._lock:
            accepted = self.by_delivery[message.delivery_id] > 0
        return SendResult("sent" if accepted else "absent")

    @property
    def accepted(self) -> int:
        return sum(self.by_delivery.values())

    def duplicates(self) -> int:
        """Sends accepted beyond the first, by delivery id and by address within a run."""
        extra = sum(n - 1 for n in self.by_delivery.values() if n > 1)
        return extra + sum(n - 1 for n in self.by_address.values() if n > 1)


@dataclass
class Stack:
    """The warehouse, the fakes and the campaign as deliver loads it."""

    warehouse: DuckDBWarehouse
    documents: Documents
    topic: Topic
    providers: dict[str, Provider]
    campaign: Campaign
    template: MessageTemplate
    policy: MessagingPolicy
    links: Links
    clicks: ClickLinks
    limiter: RateLimiter
    renderer: CompiledTemplate

    def ports(self) -> DeliverPorts:
        channels = dict(self.providers)
        return DeliverPorts(
            self.warehouse, self.documents, channels, SALT, self.links, self.limiter, clicks=self.clicks
        )

    def render(self, row: Recipient, now: datetime) -> Message | RenderFailed:
        """One message as deliver renders it (its signed click and preference links included),
        with the template compiled once, as deliver compiles it once per batch."""
        return deliver.render(
            self.renderer, self.template, self.campaign, self.policy, row, self.links, now, self.clicks
        )

    def plan(self, at: datetime, run_id: str) -> PlanReport:
        return plan_run(
            self.warehouse, self.documents, self.topic, self.campaign, self.template, self.policy, at, run_id,
            salt=SALT, links=self.links,
        )  # fmt: skip


def open_warehouse(args: argparse.Namespace, name: str) -> DuckDBWarehouse:
    """A new warehouse file of this process (two runs at once, a test and a bench, keep apart)."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / f"{name}-{os.getpid()}.duckdb"
    remove_database(path)
    warehouse = DuckDBWarehouse(path, idle_release=3600, max_hold=3600)  # one process: hold the file
    warehouse.ensure_tables(list(table_specs().values()))
    with warehouse.connection() as conn:
        conn.execute("set enable_progress_bar = false")
        conn.execute(f"set memory_limit = '{args.duckdb_memory}'")
    return warehouse


def start_stack(args: argparse.Namespace) -> Stack:
    warehouse = open_warehouse(args, "send")
    documents = Documents()
    documents.set("messaging", "policy", POLICY_DOC)
    documents.set("message_templates", TEMPLATE, TEMPLATE_DOC)
    documents.set("campaigns", CAMPAIGN, CAMPAIGN_DOC)
    policy = parse_policy(POLICY_DOC)
    campaign, template = validate_campaign(
        CAMPAIGN, CAMPAIGN_DOC, segment_exists=lambda _: True, template_doc=lambda _: TEMPLATE_DOC,
        policy=policy, available_channels={"sms", "email"}, now=RUN_AT,
    )  # fmt: skip
    links = Links("https://prefs.bench-shop.example/", "bench-preference-key")
    click_links = ClickLinks("https://collect.bench-shop.example/", "bench-click-key")
    providers = {"sms": Provider("sms"), "email": Provider("email")}
    limiter, renderer = RateLimiter(), compiled(template)
    return Stack(
        warehouse, documents, Topic(), providers, campaign, template, policy, links, click_links, limiter, renderer
    )


# -- measuring ----------------------------------------------------------------------------------------


class Peak:
    """This process's resident high-water mark (VmHWM), which Linux resets on writing 5 to
    /proc/self/clear_refs; DuckDB's buffers count, so DuckDB is capped for the run."""

    def __init__(self) -> None:
        self.resettable = True

    def reset(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.resettable = False  # then the peak is the whole run's so far

    def mb(self) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise SystemExit("bench send: /proc/self/status has no VmHWM: peak memory cannot be measured")


@contextmanager
def probes(seconds: dict[str, float], targets: Mapping[str, tuple[object, str]]) -> Iterator[None]:
    """Add the wall seconds spent in each function `targets` names (an attribute of a module, a
    class or an object, as the services look it up) to `seconds`; restored after."""
    originals = {name: getattr(owner, attr) for name, (owner, attr) in targets.items()}
    own = {name: attr in vars(owner) for name, (owner, attr) in targets.items()}  # else inherited

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

        return run

    for name, (owner, attr) in targets.items():
        setattr(owner, attr, timed(name, originals[name]))
    try:
        yield
    finally:
        for name, (owner, attr) in targets.items():
            if own[name]:
                setattr(owner, attr, originals[name])
            else:
                delattr(owner, attr)


def plan_probes(warehouse: DuckDBWarehouse) -> dict[str, tuple[object, str]]:
    return {
        "consent gate (SQL)": (consent, "eligible_audience"),
        "cap counts (SQL)": (ledger, "sent_counts"),
        "policy (Rules.decide_all)": (Rules, "decide_all"),
        "ledger rows (Arrow load)": (warehouse, "append_arrow"),
        "batches read back (SQL)": (ledger, "run_arrow"),
        "funnel (SQL)": (ledger, "funnel"),
    }


DELIVER_PROBES: dict[str, tuple[object, str]] = {
    "consent gate (SQL)": (consent, "eligible_audience"),
    "recipients (SQL)": (deliver, "recipients"),
    "render": (deliver, "render"),
    "ledger events (insert)": (deliver, "record_events"),
    "fallback rows (insert)": (deliver, "insert_deliveries"),
}


def size_label(n: int) -> str:
    """100k, 10k, 2.5k, 1M; a count that is no round hundred as it is (12,345)."""
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1_000:g}k"
    return f"{n:,}"


def print_breakdown(seconds: Mapping[str, float], total: float) -> None:
    for name, value in seconds.items():
        print(f"    {name:34} {value:7.2f} s  {100 * value / total:4.0f} %")


# -- phases -------------------------------------------------------------------------------------------


@dataclass
class Delivered:
    reports: list[BatchReport]
    wall: float
    cpu: float

    def total(self, name: str) -> int:
        return sum(int(getattr(r, name)) for r in self.reports)


def plan_phase(stack: Stack, audience: int) -> tuple[PlanReport, float]:
    seconds: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    with probes(seconds, plan_probes(stack.warehouse)):
        report = stack.plan(RUN_AT, "run-1")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    funnel = report.funnel
    if funnel.audience != audience:
        raise SystemExit(f"bench send: the plan considered {funnel.audience:,} people, the segment has {audience:,}")
    print(f"  plan: {wall:.1f} s wall ({cpu:.1f} s CPU), {report.written:,} delivery rows, {report.batches:,} batches")
    rest = wall - sum(seconds.values())
    print_breakdown({**seconds, "rows, ids, the Arrow table, the rest": rest}, wall)
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(funnel.reasons().items(), key=lambda kv: -kv[1]))
    print(f"    rows by reason: {reasons}")
    return report, wall


def deliver_phase(stack: Stack, batches: Sequence[bytes], now: datetime) -> Delivered:
    """Every batch once, one after another, as one deliver instance takes its messages."""
    seconds: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    with probes(seconds, DELIVER_PROBES):
        reports = [deliver_batch(stack.ports(), data, now) for data in batches]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = Delivered(reports, wall, cpu)
    sends = done.total("sent")
    print(
        f"  deliver: {wall:.1f} s wall ({cpu:.1f} s CPU), {len(batches):,} batches, {sends:,} sent "
        f"({stack.providers['sms'].accepted:,} SMS, {stack.providers['email'].accepted:,} e-mail), "
        f"{done.total('skipped'):,} skipped, {done.total('fallbacks'):,} fallback rows, "
        f"{sends / wall:,.0f} messages/s"
    )
    rest = wall - sum(seconds.values())
    print_breakdown({**seconds, "claims, policy, the rest": rest}, wall)
    return done


def render_phase(stack: Stack, batches: Sequence[bytes], now: datetime) -> float:
    """Our render against bare SandboxedEnvironment renders of the same sources and values, batch
    by batch and channel by channel, alternating which goes first; the ratio of their rates in CPU
    seconds. Then a pass with probes over a sample: where our render's time goes."""
    text_env, html_env = SandboxedEnvironment(), SandboxedEnvironment(autoescape=True)
    for env in (text_env, html_env):
        env.globals["link"] = lambda url: url  # the floor: the URL itself, neither signed nor tagged
    sources = stack.template.parts
    bare_parts: dict[str, list[Template]] = {
        Channel.SMS.value: [text_env.from_string(sources[Channel.SMS]["text"])],
        Channel.EMAIL.value: [
            text_env.from_string(sources[Channel.EMAIL]["subject"]),
            text_env.from_string(sources[Channel.EMAIL]["text"]),
            html_env.from_string(sources[Channel.EMAIL]["html"]),
        ],
    }

    def ours(rows: Sequence[Recipient]) -> list[Any]:
        return [stack.render(row, now) for row in rows]

    def bare(rows: Sequence[Recipient]) -> list[list[str]]:
        return [[part.render(row.profile) for part in bare_parts[row.channel]] for row in rows]

    cpu: defaultdict[tuple[str, str], float] = defaultdict(float)  # (ours or bare, channel) -> CPU seconds
    wall: defaultdict[str, float] = defaultdict(float)
    messages: Counter[str] = Counter()
    sample: list[Recipient] = []
    mismatched = turn = 0
    for data in batches:
        rows = ledger.recipients(stack.warehouse, ledger.parse_batch(data).delivery_ids)
        for channel in bare_parts:
            chosen = [r for r in rows if r.outcome == "send" and r.channel == channel]
            turn += 1
            results: dict[str, list[Any]] = {}
            for function in (ours, bare) if turn % 2 else (bare, ours):
                started, cpu_started = time.perf_counter(), time.process_time()
                results[function.__name__] = function(chosen)
                cpu[(function.__name__, channel)] += time.process_time() - cpu_started
                wall[function.__name__] += time.perf_counter() - started
            for made, plain in zip(results["ours"], results["bare"], strict=True):
                if isinstance(made, Message):
                    messages[channel] += 1
                    body = made.text if channel == Channel.SMS.value else made.subject or ""
                    mismatched += plain[0].split("http")[0].strip() not in body  # the greeting, before any link
            if len(sample) < SPLIT_SAMPLE:
                sample += chosen
    if mismatched:
        raise SystemExit(f"bench send: {mismatched:,} of our messages lack the bare render's text: nothing compared")
    ours_cpu = sum(v for (name, _), v in cpu.items() if name == "ours")
    bare_cpu = sum(v for (name, _), v in cpu.items() if name == "bare")
    ratio = bare_cpu / ours_cpu
    total = sum(messages.values())
    print(f"render: {total:,} messages rendered both ways (the deliver run's sends, read again)")
    print(f"  {'':14} {'CPU s':>7} {'us each':>8} {'ratio':>6}")
    for channel, count in messages.items():
        for name in ("ours", "bare"):
            print(f"  {name + ' ' + channel:14} {cpu[(name, channel)]:7.2f} {1e6 * cpu[(name, channel)] / count:8.1f}")
        print(f"  {'':14} {'':7} {'':8} {cpu[('bare', channel)] / cpu[('ours', channel)]:6.2f}")
    print("  ours: deliver.render (context, preference and click links, the template, the form, EUC-KR check);")
    print("  bare: SandboxedEnvironment().from_string(part).render(profile) for each part, link() the URL itself")
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    wall_ratio = wall["bare"] / wall["ours"]
    print(f"  ratio {ratio:.2f} in CPU seconds ({wall_ratio:.2f} in wall seconds): target >= {TARGET_RATIO} {met}")
    render_split(stack, sample, now)
    return ratio


SPLIT_SAMPLE = 5_000  # messages rendered again with probes


def render_split(stack: Stack, rows: Sequence[Recipient], now: datetime) -> None:
    """Our render again with probes around its parts (which slow it a little): microseconds per
    message of each, over a sample of the sends."""
    seconds: dict[str, float] = {}
    targets: dict[str, tuple[object, str]] = {
        "template (Jinja + form + links)": (CompiledTemplate, "render"),
        "click links (sign)": (clicks, "token"),
        "the form, SMS": (adform, "sms"),
        "the form, e-mail text": (adform, "email_text"),
        "the form, e-mail HTML": (adform, "email_html"),
        "preference links (seal)": (adform, "preference_urls"),
    }
    started = time.perf_counter()
    with probes(seconds, targets):
        made = [stack.render(row, now) for row in rows]
    elapsed = time.perf_counter() - started
    inner = sum(seconds.get(name, 0.0) for name in targets if name.startswith(("click", "the form")))
    parts = {
        "Jinja (the template's own rendering)": seconds["template (Jinja + form + links)"] - inner,
        **{name: value for name, value in seconds.items() if not name.startswith("template")},
        "the rest (context, EUC-KR check, Message)": elapsed - seconds["template (Jinja + form + links)"]
        - seconds.get("preference links (seal)", 0.0),
    }  # fmt: skip
    print(f"  where our render's time goes (a pass with probes over {len(made):,} of them), microseconds per message:")
    print("    " + ", ".join(f"{name} {1e6 * value / len(made):.1f}" for name, value in parts.items()))


def storm_phase(stack: Stack, expected: int) -> None:
    """A second run whose every batch is delivered STORM_COPIES times at once from STORM_THREADS
    threads, each copy again while it is incomplete (another copy holds some of its claims). It
    must send exactly what the first run sent: the same people are eligible, nothing is lost."""
    first = len(stack.topic.published)
    before = {name: p.accepted for name, p in stack.providers.items()}
    stack.plan(STORM_AT, "run-2")
    batches = stack.topic.batches(first)
    now = STORM_AT + SEND_DELAY
    starts = {data: threading.Barrier(STORM_COPIES) for data in batches}

    def redelivered(data: bytes) -> int:
        """Deliver a batch as Pub/Sub would: again, after a pause, while it is incomplete."""
        starts[data].wait(timeout=600)
        for attempt in range(1, 1001):
            try:
                deliver_batch(stack.ports(), data, now)
            except DeliveryIncomplete:
                time.sleep(0.005)
                continue
            return attempt
        raise SystemExit("bench send: a stormed batch never completed")

    storm = [data for data in batches for _ in range(STORM_COPIES)]
    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=STORM_THREADS) as pool:
        tries = list(pool.map(redelivered, storm))
    wall = time.perf_counter() - wall
    sent = sum(p.accepted - before[name] for name, p in stack.providers.items())
    print(
        f"storm: a second run, {len(batches):,} batches each delivered {STORM_COPIES} times at once from "
        f"{STORM_THREADS} threads: {wall:.1f} s, {sent:,} sent; {sum(t > 1 for t in tries):,} of {len(tries):,} "
        f"copies met another's claims and were delivered again (up to {max(tries)} tries)"
    )
    if sent != expected:
        raise SystemExit(f"bench send: the storm's run sent {sent:,} messages, the first run {expected:,}")


# -- the real adapters over the network ---------------------------------------------------------------

TWILIO = {"account_sid": "AC" + "b" * 32, "auth_token": "bench-twilio-token", "service": "MG" + "c" * 32}


def wait_smtp(server: Server, timeout: float = 30.0) -> None:
    """Until the sink accepts a connection (it speaks no HTTP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StackError(f"smtp_sink exited before it was ready:\n{server.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"smtp_sink did not listen on {server.port} within {timeout:.0f} s")


def network_phase(stack: Stack, batches: Sequence[bytes], count: int, now: datetime) -> None:
    """`count` of the run's messages per channel sent one after another through the real adapters
    (SmtpEmail, TwilioSms with the twilio client) to devstack's fakes, each its own process: what a
    message costs where the in-process fakes cost nothing. The fakes must hold every message."""
    messages: dict[str, list[Message]] = {"sms": [], "email": []}
    for data in batches:
        for row in ledger.recipients(stack.warehouse, ledger.parse_batch(data).delivery_ids):
            made = stack.render(row, now)
            if isinstance(made, Message) and len(messages[made.channel]) < count:
                messages[made.channel].append(made)
        if all(len(found) == count for found in messages.values()):
            break
    maildir = WORK_DIR / f"maildir-{os.getpid()}"
    servers: list[Server] = []
    try:
        port = free_port()
        argv = [sys.executable, "-m", "devstack.fakes.twilio_api", "--port", str(port),
                "--account-sid", TWILIO["account_sid"], "--auth-token", TWILIO["auth_token"],
                "--messaging-service-sid", TWILIO["service"]]  # fmt: skip
        servers.append(start_server(f"twilio_api-{os.getpid()}", argv, port, WORK_DIR, cwd=REPO))
        wait_http(servers[-1], "/_fake/messages", timeout=30)
        secrets = LocalSecrets(environ={env_name("twilio-auth-token"): TWILIO["auth_token"]})
        twilio = TwilioSms(
            TWILIO["account_sid"], TWILIO["service"], "https://bench-shop.example/twilio/status", secrets,
            api_url=servers[-1].url,
        )  # fmt: skip
        port = free_port()
        argv = [sys.executable, "-m", "devstack.fakes.smtp_sink", "--port", str(port), "--maildir", str(maildir)]
        servers.append(start_server(f"smtp_sink-{os.getpid()}", argv, port, WORK_DIR, cwd=REPO))
        wait_smtp(servers[-1])
        smtp = SmtpEmail("127.0.0.1", port, "벤치상회 <news@bench-shop.example>", security="none")
        adapters: dict[str, MessageChannel] = {"sms": twilio, "email": smtp}
        print(f"network: {count} messages per channel through the real adapters to devstack's fakes (own processes)")
        for channel, adapter in adapters.items():
            started = time.perf_counter()
            for message in messages[channel]:
                adapter.send(message)
            wall = time.perf_counter() - started
            sent = len(messages[channel])
            rate, each, name = sent / wall, 1000 * wall / sent, type(adapter).__name__
            print(f"  {channel:5} {sent:,} in {wall:.2f} s: {rate:,.0f} messages/s, {each:.1f} ms each ({name})")
        smtp.close()
        with urllib.request.urlopen(servers[0].url + "/_fake/messages", timeout=10) as answer:
            held = len(json.loads(answer.read())["messages"])
        arrived = len(list(maildir.glob("*.eml")))
        if (held, arrived) != (len(messages["sms"]), len(messages["email"])):
            raise SystemExit(f"bench send: the fakes hold {held} SMS and {arrived} e-mails of {count} each")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(maildir, ignore_errors=True)
    for server in servers:  # kept when the case failed: they say why
        server.log_path.unlink(missing_ok=True)


# -- AlimTalk: the real adapter to the NHN fake, 1,000 recipients a request ---------------------------

KAKAO_APP, KAKAO_SECRET, KAKAO_SENDER = "bench-app", "bench-nhn-secret", "s" * 40
KAKAO_CODE = "POINTS_EXPIRING"
KAKAO_CONTENT = "#{고객명}님, 적립금 #{적립금}원이 이번 달 말에 소멸됩니다. 회원번호 #{member_id}"
KAKAO_CAMPAIGN = KAKAO_TEMPLATE = "bench-points-expiring"
KAKAO_BATCH = 1000  # recipients a batch and a request: NHN's most
KAKAO_TIMEOUT = 60.0  # seconds: a loaded machine's 1,000-recipient request is no timeout
KAKAO_POLICY: dict[str, Any] = {"throttles": {"nhn_alimtalk": 10_000}}  # the most a policy allows
KAKAO_TEMPLATE_DOC: dict[str, Any] = {
    "name": "Points expiring",
    "alimtalk": {
        "template_code": KAKAO_CODE,
        "parameters": {"고객명": "{{ given_name or '고객' }}", "적립금": "{{ odr_ltv * 1000 }}"},
    },
}
KAKAO_CAMPAIGN_DOC: dict[str, Any] = {
    "name": "Points expiring",
    "segment_id": SEGMENT,
    "kind": "informational",
    "channels": ["alimtalk"],
    "template_id": KAKAO_TEMPLATE,
    "enabled": True,
}
KAKAO_PHONE = "'+8210' || (20000000 + i)"  # a Korean mobile number each, as NHN takes them
# Everyone of the generated people is a recipient: a member with a Korean mobile number subscribed
# to AlimTalk (an informational message needs no marketing consent), so each batch is full.
KAKAO_INSERTS_SQL = [
    f"""insert into refined.identities (identity_id, site_id, node, id_type, id_value, customer_id)
    select $site || '|member:' || member_id, $site, 'member:' || member_id, 'member', member_id, customer_id
    from people
    union all
    select $site || '|phone:' || {KAKAO_PHONE}, $site, 'phone:' || {KAKAO_PHONE}, 'phone', {KAKAO_PHONE}, customer_id
    from people""",
    f"""insert into refined.profiles (customer_id, site_id, member_id, phone, region, rfm, age, recency_days,
        odr_ltv, rvn_ltv, is_member, computed_at)
    select customer_id, $site, member_id, {KAKAO_PHONE}, region, rfm, 20 + i % 50, recency_days, odr_ltv,
        odr_ltv * 38000, true, $t0
    from people""",
    INSERTS_SQL[2],  # the names
    f"""insert into raw.subscription (subscription_event_id, site_id, event_date, effective_at, recorded_at,
        channel, address, subscribed, source)
    select 'kakao-' || i, $site, $t0::date, $t0, $t0, 'alimtalk', {KAKAO_PHONE}, true, 'form' from people""",
    INSERTS_SQL[5],  # the segment
]


def case_alimtalk(args: argparse.Namespace) -> str:
    """The AlimTalk campaign through NhnAlimTalk to the NHN fake (a server thread of this process)."""
    warehouse = open_warehouse(args, "alimtalk")
    try:
        approved = FakeTemplate(KAKAO_CODE, "TSC03", KAKAO_CONTENT)
        with running_nhn_alimtalk(KAKAO_APP, KAKAO_SECRET, KAKAO_SENDER, [approved]) as fake:
            return alimtalk_run(warehouse, fake, args)
    finally:
        warehouse.close()
        remove_database(warehouse.path)


def alimtalk_run(warehouse: DuckDBWarehouse, fake: NhnAlimTalkFake, args: argparse.Namespace) -> str:
    """Plan in batches of 1,000, deliver each once (one send_many, one request), then the storm; the
    fake's requests and the messages it holds per grouping key (our delivery id) and number."""
    n = args.recipients
    started = time.perf_counter()
    generate(warehouse, n, args.seed, KAKAO_INSERTS_SQL, erase=False)
    print(f"alimtalk: {n:,} recipients generated in {time.perf_counter() - started:.1f} s, each a member with a "
          "Korean mobile number subscribed to AlimTalk")  # fmt: skip
    print("  campaign: informational, AlimTalk, NhnAlimTalk over HTTP to the NHN fake (a thread of this process)")
    documents = Documents()
    documents.set("messaging", "policy", KAKAO_POLICY)
    documents.set(ALIMTALK_TEMPLATES, KAKAO_CODE, {"status": APPROVED, "content": KAKAO_CONTENT})
    documents.set("message_templates", KAKAO_TEMPLATE, KAKAO_TEMPLATE_DOC)
    documents.set("campaigns", KAKAO_CAMPAIGN, KAKAO_CAMPAIGN_DOC)
    policy = parse_policy(KAKAO_POLICY)
    campaign, template = validate_campaign(
        KAKAO_CAMPAIGN, KAKAO_CAMPAIGN_DOC, segment_exists=lambda _: True, template_doc=lambda _: KAKAO_TEMPLATE_DOC,
        policy=policy, available_channels={"alimtalk"}, now=RUN_AT,
        alimtalk_templates=lambda code: documents.get(ALIMTALK_TEMPLATES, code),
    )  # fmt: skip
    secrets = LocalSecrets(environ={env_name("alimtalk-api-key"): KAKAO_SECRET})
    adapter = NhnAlimTalk(KAKAO_APP, KAKAO_SENDER, secrets, api_url=fake.url, timeout=KAKAO_TIMEOUT)
    links = Links("https://prefs.bench-shop.example/", "bench-preference-key")
    ports = DeliverPorts(warehouse, documents, {"alimtalk": adapter}, SALT, links, RateLimiter())
    topic = Topic()
    wall = time.perf_counter()
    report = plan_run(
        warehouse, documents, topic, campaign, template, policy, RUN_AT, "run-1", salt=SALT, links=links,
        batch_size=KAKAO_BATCH,
    )  # fmt: skip
    wall = time.perf_counter() - wall
    batches = topic.batches()
    print(f"  plan: {wall:.1f} s, {report.written:,} delivery rows, {len(batches):,} batches of up to {KAKAO_BATCH:,}")
    now = RUN_AT + SEND_DELAY
    seconds: dict[str, float] = {}
    wall = time.perf_counter()
    with probes(seconds, {**DELIVER_PROBES, "NhnAlimTalk.send_many (HTTP + fake)": (NhnAlimTalk, "send_many")}):
        reports = [deliver_batch(ports, data, now) for data in batches]
    wall = time.perf_counter() - wall
    sent, requests = sum(r.sent for r in reports), len(fake.sends())
    print(
        f"  deliver: {wall:.1f} s, {len(batches):,} batches one after another: {sent:,} sent in {requests:,} "
        f"requests ({sent / max(requests, 1):,.0f} recipients a request), {sent / wall:,.0f} recipients/s"
    )
    print_breakdown({**seconds, "claims, policy, the rest": wall - sum(seconds.values())}, wall)
    alimtalk_storm(ports, documents, batches, now)
    requests = len(fake.sends())
    held = fake.by_grouping_key()
    numbers = Counter(m.recipient_no for found in held.values() for m in found)
    duplicates = sum(len(found) - 1 for found in held.values()) + sum(c - 1 for c in numbers.values())
    expected = -(-n // KAKAO_BATCH)
    met = "met" if requests == expected else "NOT met"
    print(
        f"  after the storm: {requests:,} requests (target {expected:,}: {met}); the fake holds {len(held):,} "
        f"deliveries to {len(numbers):,} numbers; duplicates (a grouping key or a number held again): {duplicates}"
    )
    if len(held) != n:
        raise SystemExit(f"bench send: the NHN fake holds {len(held):,} deliveries of {n:,} recipients")
    return f"alimtalk: {size_label(n)} recipients in {requests} requests, duplicates: {duplicates}"


def alimtalk_storm(ports: DeliverPorts, documents: Documents, batches: Sequence[bytes], now: datetime) -> None:
    """Every batch delivered STORM_COPIES times at once from STORM_THREADS threads, after its done
    marker is dropped (as if each worker died between its sends and the marker): each copy reads
    the batch and must find every delivery settled by its claim, sending nothing."""
    dropped = documents.drop(BATCHES)
    starts = {data: threading.Barrier(STORM_COPIES) for data in batches}

    def redelivered(data: bytes) -> BatchReport:
        starts[data].wait(timeout=600)
        for _ in range(1000):
            try:
                return deliver_batch(ports, data, now)
            except DeliveryIncomplete:
                time.sleep(0.005)
        raise SystemExit("bench send: a stormed AlimTalk batch never completed")

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=STORM_THREADS) as pool:
        reports = list(pool.map(redelivered, [data for data in batches for _ in range(STORM_COPIES)]))
    wall = time.perf_counter() - wall
    already, sent = sum(r.already for r in reports), sum(r.sent for r in reports)
    skipped = sum(r.done_before for r in reports)
    print(
        f"  storm: {dropped:,} done markers dropped, each batch delivered {STORM_COPIES} times at once from "
        f"{STORM_THREADS} threads: {wall:.1f} s; {already:,} deliveries found settled by their claims, {sent:,} "
        f"sent, {skipped:,} copies found their batch marked done by another copy"
    )


# -- web push: preparing and encrypting against a bare http_ece loop ----------------------------------

PUSH = 2_000  # messages a round
PUSH_QUICK = 500
PUSH_ROUNDS = 7
PUSH_BROWSERS = 60  # subscriptions, each its own key pair; the messages go to them in turn
PUSH_SERVICES = (  # endpoint prefixes of the push services browsers use: one VAPID token each
    "https://fcm.googleapis.com/fcm/send/",
    "https://updates.push.services.mozilla.com/wpush/v2/",
    "https://web.push.apple.com/",
)
AES128GCM = "aes128gcm"


@dataclass(frozen=True)
class Browser:
    """A subscription as a browser makes it: its key pair, auth secret and endpoint."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str

    @property
    def p256dh(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )


def push_messages(count: int) -> tuple[list[Browser], list[Message]]:
    """`count` notifications (a shipping notice with a click link and an icon) to PUSH_BROWSERS
    subscriptions in turn."""
    browsers = [
        Browser(ec.generate_private_key(ec.SECP256R1()), os.urandom(16), PUSH_SERVICES[i % 3] + os.urandom(60).hex())
        for i in range(PUSH_BROWSERS)
    ]  # fmt: skip
    messages = []
    for i in range(count):
        browser = browsers[i % len(browsers)]
        delivery = hashlib.md5(f"push-{i}".encode()).hexdigest()
        text = f"{'김이박최'[i % 4]}고객님, 주문하신 상품 {i:06d}번이 출발했어요. 내일 도착 예정입니다."
        parameters = {"url": f"https://collect.bench-shop.example/c/{delivery}?to=orders",
                      "icon": "https://bench-shop.example/icon-192.png"}  # fmt: skip
        keys = {"p256dh": b64url(browser.p256dh), "auth": b64url(browser.auth)}
        messages.append(
            Message(delivery, WEBPUSH, browser.endpoint, text, subject="배송이 시작되었어요", parameters=parameters,
                    metadata={"campaign_id": "bench-shipping", "run_id": "run-1"}, push_keys=keys)
        )  # fmt: skip
    return browsers, messages


def case_push(args: argparse.Namespace) -> str:
    """Ours (WebPush.prepare, then pywebpush's WebPusher(...).encode) against bare http_ece.encrypt
    calls of the same payloads to the same keys, each with a new ephemeral P-256 key as ours makes:
    rounds in alternating order, each side's best round in this thread's CPU seconds."""
    n, rounds = args.push, args.rounds
    browsers, messages = push_messages(n)
    vapid = ec.generate_private_key(ec.SECP256R1())
    pem = vapid.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()  # fmt: skip
    secrets = LocalSecrets(environ={env_name("vapid-private-key"): pem})
    push = WebPush(secrets, subject="mailto:push@bench-shop.example", public_key=public_key_of(vapid),
                   clock=lambda: RUN_AT)  # fmt: skip
    payloads = [push.prepare(m).data for m in messages]  # also signs each push service's VAPID token once
    keys = [(browsers[i % len(browsers)].p256dh, browsers[i % len(browsers)].auth) for i in range(n)]
    check_push(push, browsers, messages[0], payloads[0])

    def ours() -> None:
        for message in messages:
            prepared = push.prepare(message)
            WebPusher(prepared.subscription).encode(prepared.data)

    def bare() -> None:
        for data, (dh, auth) in zip(payloads, keys, strict=True):
            private = ec.generate_private_key(ec.SECP256R1())
            http_ece.encrypt(data, private_key=private, dh=dh, auth_secret=auth, version=AES128GCM)

    cpu: dict[str, list[float]] = {"ours": [], "bare": []}
    wall: dict[str, list[float]] = {"ours": [], "bare": []}
    for turn in range(rounds):
        for function in (ours, bare) if turn % 2 == 0 else (bare, ours):
            started, cpu_started = time.perf_counter(), time.thread_time()
            function()
            cpu[function.__name__].append(time.thread_time() - cpu_started)
            wall[function.__name__].append(time.perf_counter() - started)
    size = sum(map(len, payloads)) / n
    print(f"push: {n:,} notifications a round ({size:.0f} bytes of JSON each) to {len(browsers)} subscriptions, "
          f"{rounds} rounds in alternating order, CPU seconds of this thread")  # fmt: skip
    for name in ("ours", "bare"):
        rates = ", ".join(f"{n / c:,.0f}" for c in cpu[name])
        print(f"  {name}: messages/s per core by round: {rates}; best {n / min(cpu[name]):,.0f} "
              f"({1e6 * min(cpu[name]) / n:.0f} us each; wall best {n / min(wall[name]):,.0f}/s)")  # fmt: skip
    print("  ours: WebPush.prepare(message) (checks, the notification JSON, headers, the cached VAPID token), then")
    print("        pywebpush.WebPusher(subscription).encode(data) (a new P-256 key, ECDH, HKDF, AES-128-GCM)")
    print("  bare: http_ece.encrypt(data, private_key=<a new P-256 key>, dh=p256dh, auth_secret=auth, aes128gcm)")
    ratio = min(cpu["bare"]) / min(cpu["ours"])
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"  ratio {ratio:.2f} (best round against best round): target >= {TARGET_RATIO} {met}")
    push_split(push, messages[: min(n, 500)])
    return f"push encrypt ratio: {ratio:.2f}"


def check_push(push: WebPush, browsers: Sequence[Browser], message: Message, payload: bytes) -> None:
    """What both sides make must be what the browser decrypts: else the ratio compares nothing."""
    browser = next(b for b in browsers if b.endpoint == message.to)
    prepared = push.prepare(message)
    ours = WebPusher(prepared.subscription).encode(prepared.data)["body"]
    private = ec.generate_private_key(ec.SECP256R1())
    bare = http_ece.encrypt(payload, private_key=private, dh=browser.p256dh, auth_secret=browser.auth,
                            version=AES128GCM)  # fmt: skip
    for body in (ours, bare):
        shown = http_ece.decrypt(body, private_key=browser.key, auth_secret=browser.auth, version=AES128GCM)
        if shown != payload:
            raise SystemExit("bench send: a push the browser's key cannot decrypt to the notification")


def push_split(push: WebPush, messages: Sequence[Message]) -> None:
    """Microseconds per message (this thread's CPU) of ours' three steps over a sample, and of the
    ephemeral key either side makes."""
    seconds: Counter[str] = Counter()
    clock = time.thread_time
    for message in messages:
        t0 = clock()
        prepared = push.prepare(message)
        t1 = clock()
        pusher = WebPusher(prepared.subscription)
        t2 = clock()
        pusher.encode(prepared.data)
        t3 = clock()
        ec.generate_private_key(ec.SECP256R1())
        t4 = clock()
        seconds.update({"prepare": t1 - t0, "WebPusher(...)": t2 - t1, "encode": t3 - t2, "a P-256 key": t4 - t3})
    each = ", ".join(f"{name} {1e6 * value / len(messages):.0f}" for name, value in seconds.items())
    print(
        f"  where ours goes ({len(messages):,} messages, CPU), microseconds per message: {each} "
        "(the last: what either side spends on its ephemeral key)"
    )


# -- the entry point ----------------------------------------------------------------------------------


def case_campaign(args: argparse.Namespace) -> str:
    """Issue 17's: the advertising campaign over SMS and e-mail, render, network, storm."""
    stack = start_stack(args)
    try:
        return measure(stack, args)
    finally:
        stack.warehouse.close()
        remove_database(stack.warehouse.path)


CASES: dict[str, Callable[[argparse.Namespace], str]] = {
    "campaign": case_campaign, "alimtalk": case_alimtalk, "push": case_push,
}  # fmt: skip
"""Each case prints its figures and returns its part of the last line, in this order."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench send", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recipients", type=int, help=f"segment members (default {FULL:,})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK:,} recipients")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument(
        "--network",
        type=int,
        default=NETWORK,
        help=f"campaign: messages per channel through the real adapters ({NETWORK}; 0: none)",
    )
    parser.add_argument("--duckdb-memory", default=DUCKDB_MEMORY, help=f"DuckDB's memory_limit ({DUCKDB_MEMORY})")
    parser.add_argument("--push", type=int, help=f"push: notifications a round (default {PUSH:,}; quick {PUSH_QUICK})")
    parser.add_argument("--rounds", type=int, default=PUSH_ROUNDS, help=f"push: rounds a side ({PUSH_ROUNDS})")
    parser.add_argument(
        "--cases", nargs="+", default=["campaign"], help=f"cases to run: {','.join(CASES)} (default: campaign)"
    )
    args = parser.parse_args(argv)
    args.cases = {name for value in args.cases for name in value.split(",") if name}
    if not args.cases or args.cases - set(CASES):
        parser.error(f"unknown cases {', '.join(sorted(args.cases - set(CASES)))}: choose from {', '.join(CASES)}")
    args.recipients = args.recipients or (QUICK if args.quick else FULL)
    args.push = args.push or (PUSH_QUICK if args.quick else PUSH)
    if args.recipients < 1000:
        parser.error("--recipients must be at least 1,000")
    if args.push < 1 or args.rounds < 1:
        parser.error("--push and --rounds must be positive")
    logging.basicConfig(level=logging.ERROR)  # the planted emoji names' render failures are expected warnings
    print(f"machine: {os.cpu_count()} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    parts = [CASES[name](args) for name in CASES if name in args.cases]
    print("; ".join(parts))
    return 0


def measure(stack: Stack, args: argparse.Namespace) -> str:
    n = args.recipients
    started = time.perf_counter()
    generate(stack.warehouse, n, args.seed)
    print(f"send: {n:,} recipients generated in {time.perf_counter() - started:.1f} s (SQL into DuckDB)")
    print("  campaign: advertising, SMS then e-mail, the Network Act's form, cap 2 in 7 days, at noon in Seoul")
    peak = Peak()
    peak.reset()
    report, plan_wall = plan_phase(stack, n)
    batches = stack.topic.batches()
    done = deliver_phase(stack, batches, RUN_AT + SEND_DELAY)
    memory = peak.mb()
    total = plan_wall + done.wall
    sent = done.total("sent")
    print(
        f"  planned+sent: {total:.1f} s for {n:,} recipients: {n / total:,.0f} recipients/s "
        f"({sent:,} messages, {sent / total:,.0f} messages/s)"
    )
    met = "met" if memory <= MEMORY_TARGET_MB else "NOT met"
    print(f"  peak RSS {memory:,.0f} MB over plan and deliver (DuckDB's buffers included): target <= "
          f"{MEMORY_TARGET_MB} MB {met}")  # fmt: skip
    ratio = render_phase(stack, batches, RUN_AT + SEND_DELAY)
    if args.network:
        network_phase(stack, batches, args.network, RUN_AT + SEND_DELAY)
    peak.reset()
    storm_phase(stack, sent)
    duplicates = sum(p.duplicates() for p in stack.providers.values())
    accepted = sum(p.accepted for p in stack.providers.values())
    print(f"  peak RSS {peak.mb():,.0f} MB; the fakes accepted {accepted:,} messages over both runs; duplicates "
          f"(a delivery id or an address accepted again within a run): {duplicates}")  # fmt: skip
    return f"send render ratio: {ratio:.2f}, {size_label(n)} planned+sent in {total:.0f} s, duplicates: {duplicates}"


if __name__ == "__main__":
    raise SystemExit(main())

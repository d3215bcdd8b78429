"""A shop for campaign tests: people with identities, profiles, names, marketing consent and channel
subscriptions in a real DuckDB warehouse, a segment of them, the campaign, template and policy
documents, and the channels as fakes. Rows are queued and written per table in one insert
(`commit`), so a test can plant hundreds of people quickly; the consent rows come from the ledger's
own builders, as the preference centre and the importer write them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.folder_blobs import FolderBlobs
from shared.consent.ledger import consent_rows, subscription_row
from shared.consent.policy import SEOUL
from shared.messaging.campaigns import Campaign, MessagingPolicy, parse_policy, validate_campaign
from shared.messaging.templates import MessageTemplate
from shared.services import consent
from shared.services.deliver import DeliverPorts, Links, RateLimiter
from shared.services.send_messages import PlanReport, plan_run
from tests.builders import SALT, new_warehouse
from tests.fake_channels import FakeChannel, SharedDocuments
from tests.fakes import FakeBus

SITE = "shop"
SEGMENT = "winback"
CAMPAIGN = "winback-sms"


def seoul(hour: int, minute: int = 0, day: int = 3) -> datetime:
    """A wall time in Seoul on a day of June 2026, in UTC."""
    return datetime(2026, 6, day, hour, minute, tzinfo=SEOUL).astimezone(UTC)


NOON = seoul(12)
T0 = NOON - timedelta(days=30)  # when the planted decisions were made

POLICY_DOC: dict[str, Any] = {
    "sender": {"name": "홍길동상회", "contact": "02-1234-5678"},
    "opt_out": {"number": "080-123-4567", "mailto": "unsubscribe@shop.example"},
    "throttles": {"smtp": 10000, "twilio": 10000},
    "frequency_caps": {"advertising": {"max": 2, "days": 7}},
}
TEMPLATE_DOC: dict[str, Any] = {
    "name": "Win-back",
    "sms": {"text": "{{ given_name or '고객' }}님, 60일 만이에요! 새 혜택을 확인하세요 https://shop.example/b"},
    "email": {
        "subject": "{{ given_name or '고객' }}님, 새 혜택이 도착했어요",
        "html": "<html><body><p>{{ given_name }}님, 새 혜택</p></body></html>",
        "text": "{{ given_name }}님, 새 혜택: https://shop.example/b",
    },
}
CAMPAIGN_DOC: dict[str, Any] = {
    "name": "Win-back",
    "segment_id": SEGMENT,
    "kind": "advertising",
    "channels": ["sms", "email"],
    "template_id": "winback",
    "enabled": True,
}


@dataclass
class Person:
    name: str
    email: str | None
    phone: str | None

    @property
    def customer_id(self) -> str:
        return f"c_{self.name}"

    @property
    def member(self) -> str:
        return f"m-{self.name}"


@dataclass
class World:
    tmp: Path
    warehouse: DuckDBWarehouse = field(default_factory=new_warehouse)
    documents: SharedDocuments = field(default_factory=SharedDocuments)
    bus: FakeBus = field(default_factory=FakeBus)
    sms: FakeChannel = field(default_factory=lambda: FakeChannel("sms"))
    email: FakeChannel = field(default_factory=lambda: FakeChannel("email"))
    waits: list[float] = field(default_factory=list)
    people: dict[str, Person] = field(default_factory=dict)
    queued: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.documents.set("messaging", "policy", POLICY_DOC)
        self.documents.set("message_templates", "winback", TEMPLATE_DOC)
        self.documents.set("campaigns", CAMPAIGN, CAMPAIGN_DOC)
        self.documents.set("segments", SEGMENT, {"name": "inactive 60 days"})

    # -- people ---------------------------------------------------------------------------------------

    def person(
        self,
        name: str,
        *,
        email: str | None = "",
        phone: str | None = "",
        marketing: bool | None = True,
        night: bool = False,
        email_subscribed: bool | None = True,
        sms_subscribed: bool | None = True,
        given: str | None = None,
        member: bool = True,
    ) -> Person:
        """c_<name> with member id m-<name>; by default an e-mail and a phone, both subscribed, and
        marketing granted (by the member id) a month before NOON."""
        index = len(self.people) + 1
        email = f"{name}@example.com" if email == "" else email
        phone = f"+8210{index:08d}" if phone == "" else phone
        person = Person(name, email, phone)
        self.people[name] = person
        nodes = [f"member:{person.member}"] + [f"email:{email}"] * bool(email) + [f"phone:{phone}"] * bool(phone)
        for node in nodes:
            kind, value = node.split(":", 1)
            row = {"identity_id": f"{SITE}|{node}", "site_id": SITE, "node": node, "id_type": kind, "id_value": value}
            self.queue("refined.identities", {**row, "customer_id": person.customer_id})
        profile = {"customer_id": person.customer_id, "site_id": SITE, "member_id": person.member, "email": email}
        self.queue("refined.profiles", {**profile, "phone": phone, "region": "Seoul", "computed_at": T0.isoformat()})
        if given is not None:
            self.queue(
                "raw.user",
                {
                    "event_id": f"u-{name}", "site_id": SITE, "event_date": T0.date().isoformat(),
                    "event_ts": T0.isoformat(), "collected_at": T0.isoformat(), "member_id": person.member,
                    "given_name": given, "source": "import",
                },
            )  # fmt: skip
        if marketing is not None:
            decisions = {"marketing": marketing} | ({"night_marketing": True} if night else {})
            for row in consent_rows(SITE, "member", person.member, decisions, T0, T0, "preference_centre"):
                self.queue("raw.consent", row)
        for channel, address, subscribed in (("email", email, email_subscribed), ("sms", phone, sms_subscribed)):
            if address and subscribed is not None:
                self.queue("raw.subscription", subscription_row(SITE, channel, address, subscribed, T0, T0, "form"))
        if member:
            membership = {"membership_id": f"{SEGMENT}/{person.customer_id}", "segment_id": SEGMENT}
            row = {**membership, "customer_id": person.customer_id, "site_id": SITE, "computed_at": T0.isoformat()}
            self.queue("audiences.segment_members", row)
        return person

    def queue(self, table: str, row: dict[str, Any]) -> None:
        self.queued.setdefault(table, []).append(row)

    def commit(self) -> None:
        ids = {"refined.identities": "identity_id", "refined.profiles": "customer_id", "raw.user": "event_id",
               "raw.consent": "consent_event_id", "raw.subscription": "subscription_event_id",
               "audiences.segment_members": "membership_id"}  # fmt: skip
        batches = {t: (rows, [str(r[ids[t]]) for r in rows]) for t, rows in self.queued.items()}
        self.queued = {}
        for table, result in self.warehouse.insert_many(batches).items():
            assert not result.errors, (table, result)

    def withdraw(self, person: Person, at: datetime) -> None:
        consent.record_consent(
            self.warehouse, SITE, "member", person.member, {"marketing": False}, at, "preference_centre",
            recorded_at=at,
        )  # fmt: skip

    def unsubscribe(self, person: Person, channel: str, at: datetime) -> None:
        address = person.email if channel == "email" else person.phone
        consent.record_subscription(
            self.warehouse, SITE, channel, address, False, at, "preference_centre", recorded_at=at
        )

    # -- the campaign ---------------------------------------------------------------------------------

    def edit(self, collection: str, doc_id: str, **fields: Any) -> None:
        doc = self.documents.get(collection, doc_id) or {}
        self.documents.set(collection, doc_id, {**doc, **fields})

    def loaded(self, at: datetime = NOON) -> tuple[Campaign, MessageTemplate, MessagingPolicy]:
        policy = parse_policy(self.documents.get("messaging", "policy"))
        campaign, template = validate_campaign(
            CAMPAIGN,
            self.documents.get("campaigns", CAMPAIGN),
            segment_exists=lambda s: self.documents.get("segments", s) is not None,
            template_doc=lambda t: self.documents.get("message_templates", t),
            policy=policy,
            available_channels={"email", "sms"},
            now=at,
        )
        return campaign, template, policy

    def plan(self, at: datetime = NOON, run_id: str = "run-1", **options: Any) -> PlanReport:
        self.commit()
        campaign, template, policy = self.loaded(at)
        return plan_run(
            self.warehouse, self.documents, self.bus, campaign, template, policy, at, run_id,
            salt=SALT, links=self.links(), outbox=FolderBlobs(self.tmp / "outbox"), **options,
        )  # fmt: skip

    def links(self) -> Links:
        return Links("https://prefs.shop.example/", "test-preference-key")

    def ports(self, **overrides: Any) -> DeliverPorts:
        limiter = RateLimiter(clock=lambda: 0.0, sleep=self.waits.append)
        fields: dict[str, Any] = {
            "warehouse": self.warehouse,
            "documents": self.documents,
            "channels": {"sms": self.sms, "email": self.email},
            "salt": SALT,
            "links": self.links(),
            "limiter": limiter,
        }
        return DeliverPorts(**(fields | overrides))

    def batches(self) -> list[bytes]:
        """The bodies published on the sends topic so far."""
        return [data for topic, data, _ in self.bus.published if topic == "sends"]

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.warehouse.query(f"select * from {table}")  # test-only SQL over a fixed table name

    def delivery(self, person: Person, channel: str) -> dict[str, Any]:
        rows = [r for r in self.rows("audiences.deliveries") if r["campaign_id"] == CAMPAIGN]
        [row] = [r for r in rows if r["customer_id"] == person.customer_id and r["channel"] == channel]
        return row

    def events(self, person: Person | None = None) -> list[tuple[str, str, str | None]]:
        """(channel, event, code) of each distinct event, of one person or everyone, in time order (as
        written, within one instant)."""
        rows = self.rows("audiences.delivery_events")
        unique = {r["event_id"]: r for r in rows}.values()
        chosen = [r for r in unique if person is None or r["customer_id"] == person.customer_id]
        return [(r["channel"], r["event"], r["code"]) for r in sorted(chosen, key=lambda r: r["at"])]  # stable

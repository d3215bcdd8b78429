"""A small shop for publishing tests: people with profiles, identities, names in raw.user, consent
decisions and segment membership on a real DuckDB warehouse, changed the way the pipeline changes
them; and, computed apart from the service, the rows the audience should hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.activation.customer_file import has_any_key, hash_row
from shared.activation.publications import Destination, Publication, parse_destination, parse_publication
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.ports.audiences import Row
from shared.privacy.subjects import build_request, identifier
from shared.services import consent, privacy
from shared.tam.rules import Segment, parse_segment
from tests.builders import SALT, leaf, link, new_warehouse, segment_doc

SITE = "shop"
SEGMENT = "vip"
T0 = datetime(2026, 11, 1, 3, tzinfo=UTC)
KEYS = ("EMAIL", "PHONE", "FN", "LN")


@dataclass
class Person:
    customer_id: str
    member: str
    email: str | None
    phone: str | None
    given: str | None
    family: str | None
    sex: str | None = None
    birth_year: int | None = None

    def profile(self) -> dict[str, Any]:
        """The columns customer_file.PROFILE_COLUMNS reads, as the service should find them."""
        return {
            "email": self.email,
            "phone": self.phone,
            "given_name": self.given,
            "family_name": self.family,
            "sex": self.sex,
            "birth_year": self.birth_year,
            "member_id": self.member,
        }


@dataclass
class World:
    warehouse: DuckDBWarehouse = field(default_factory=new_warehouse)
    people: dict[str, Person] = field(default_factory=dict)
    clock: datetime = T0
    events: int = 0

    def tick(self, hours: int = 1) -> datetime:
        self.clock += timedelta(hours=hours)
        return self.clock

    def person(
        self,
        name: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        given: str | None = None,
        family: str | None = None,
        consent: bool | None = True,
        member: bool = True,
        **profile: Any,
    ) -> Person:
        """A customer c_<name> with member id m-<name>, linked by its member id and e-mail."""
        person = Person(f"c_{name}", f"m-{name}", email, phone, given, family, **profile)
        self.people[person.customer_id] = person
        nodes = [f"member:{person.member}"] + ([f"email:{email}"] if email else [])
        link(self.warehouse, person.customer_id, *nodes, site=SITE)
        self._write_profile(person)
        if given or family:
            self._user_row(person)
        if consent is not None:
            self.decide(person, consent)
        if member:
            self.join(person)
        return person

    def decide(self, person: Person, granted: bool) -> None:
        """An ad_user_data decision by the member (a withdrawal when granted is False)."""
        at = self.tick()
        consent.record_consent(
            self.warehouse, SITE, "member", person.member, {"ad_user_data": granted}, at, "preference_centre",
            recorded_at=at,
        )  # fmt: skip

    def join(self, person: Person) -> None:
        row = {
            "membership_id": f"{SEGMENT}/{person.customer_id}",
            "segment_id": SEGMENT,
            "customer_id": person.customer_id,
            "site_id": SITE,
            "computed_at": self.clock.isoformat(),
        }
        result = self.warehouse.insert_rows("audiences.segment_members", [row], [row["membership_id"]])
        assert not result.errors, result

    def leave(self, person: Person) -> None:
        self.warehouse.query(
            "delete from audiences.segment_members where segment_id = @s and customer_id = @c",
            {"s": SEGMENT, "c": person.customer_id},
        )

    def change(self, person: Person, **fields: Any) -> None:
        """New contact data for the person: the profile (e-mail, phone, ...) and, for names, raw.user."""
        for key, value in fields.items():
            setattr(person, key, value)
        self.warehouse.query("delete from refined.profiles where customer_id = @c", {"c": person.customer_id})
        self._write_profile(person)
        if "given" in fields or "family" in fields:
            self._user_row(person)

    def erase(self, person: Person, removals: Any) -> None:
        """A privacy erasure of the person by member id, with the given AudienceRemovals hook."""
        request = build_request(f"erase-{person.member}", "erase", [identifier("member", person.member)], SITE)
        [receipt] = privacy.erase(self.warehouse, [request], salt=SALT, now=self.tick(), removals=removals)
        assert receipt.status == "done", receipt
        del self.people[person.customer_id]

    def desired(self, keys: tuple[str, ...] = KEYS, at: datetime | None = None) -> set[tuple[tuple[str, ...], Row]]:
        """What the audience should hold: members granted ad_user_data (as the gate reads it) with a key."""
        members = {r["customer_id"] for r in self.warehouse.query("select customer_id from audiences.segment_members")}
        gate = consent.eligible_audience(
            self.warehouse, SITE, "ad_user_data", None, at or self.clock, SALT, segment_id=SEGMENT
        )
        eligible = {e.customer_id for e in gate if e.eligible}
        rows = {hash_row(p.profile(), keys) for c, p in self.people.items() if c in members and c in eligible}
        return {(keys, row) for row in rows if has_any_key(row)}

    def _write_profile(self, person: Person) -> None:
        row = {
            "customer_id": person.customer_id,
            "site_id": SITE,
            "member_id": person.member,
            "email": person.email,
            "phone": person.phone,
            "sex": person.sex,
            "birth_year": person.birth_year,
            "computed_at": self.clock.isoformat(),
        }
        result = self.warehouse.insert_rows("refined.profiles", [row], [person.customer_id])
        assert not result.errors, result

    def _user_row(self, person: Person) -> None:
        self.events += 1
        at = self.tick()
        row = {
            "event_id": f"u{self.events}",
            "site_id": SITE,
            "event_date": at.date().isoformat(),
            "event_ts": at.isoformat(),
            "collected_at": at.isoformat(),
            "member_id": person.member,
            "given_name": person.given,
            "family_name": person.family,
            "source": "import",
        }
        result = self.warehouse.insert_rows("raw.user", [row], [row["event_id"]])
        assert not result.errors, result


def segment(site_id: str | None = SITE) -> Segment:
    """The published segment; without a site it covers every site its members belong to."""
    rules = {"all": [leaf("rvn_ltv", "gte", 0)]}
    return parse_segment(SEGMENT, segment_doc(rules, **({"site_id": site_id} if site_id else {})))


def facebook(**fields: Any) -> Destination:
    doc = {"type": "facebook_custom_audience", "ad_account_id": "act_1234567890", "access_token_secret": "meta-token"}
    return parse_destination("meta", {**doc, **fields})


def publication(audience_id: str, **fields: Any) -> Publication:
    doc = {"segment_id": SEGMENT, "destination_id": "meta", "audience_id": audience_id, "keys": list(KEYS), **fields}
    return parse_publication("vip-meta", doc)

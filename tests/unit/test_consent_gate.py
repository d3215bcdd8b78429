"""The gate and the current-state statements on DuckDB: every reason code with the row that decided
it, identity merges, ties, time, suppression by salted hash, the night rule, address choice, segment
audiences, the final recheck agreeing with the gate, the SQL files' shape, and 100k in one statement."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from shared.consent.vocabulary import ConsentError, Reason
from shared.ports import Warehouse
from shared.privacy.subjects import Identifier
from shared.privacy.suppression import suppress
from shared.services import consent as service
from shared.sql import SQL_DIR, load_sql, parameter_names, to_duckdb
from tests.builders import SALT, SITE, link, new_warehouse

T0 = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
DAY = timedelta(days=1)
NOON = T0 + 20 * DAY
NIGHT = NOON + timedelta(hours=11)  # 23:00 in Seoul
PUSH = "https://push.example/endpoint-lee"


def grant(w: Warehouse, subject: str, purposes: Mapping[str, bool], at: datetime, source: str = "tracker") -> str:
    subject_type, value = subject.split(":", 1)
    return service.record_consent(w, SITE, subject_type, value, purposes, at, source, recorded_at=at)[0]


def subscribe(w: Warehouse, channel: str, address: str, at: datetime, subscribed: bool = True, **kw: Any) -> str:
    return service.record_subscription(w, SITE, channel, address, subscribed, at, "form", recorded_at=at, **kw)


@pytest.fixture(scope="module")
def planted() -> tuple[Warehouse, dict[str, str]]:
    """Customers c_<name>, each planted for one rule; `ids` names the ledger rows that decide."""
    w = new_warehouse()
    ids: dict[str, str] = {}
    link(w, "c_alice", "visitor:vA", "member:m-alice", "email:alice@x.com", "phone:+821011112222")
    ids["alice_email_grant"] = grant(w, "email:alice@x.com", {"marketing": True}, T0)
    ids["alice_visitor_withdraws"] = grant(w, "visitor:vA", {"marketing": False}, T0 + 5 * DAY)
    ids["alice_member_grants"] = grant(w, "member:m-alice", {"marketing": True}, T0 + 10 * DAY)
    ids["alice_sub"] = subscribe(w, "email", "alice@x.com", T0)
    link(w, "c_bob", "email:bob@x.com")
    subscribe(w, "email", "bob@x.com", T0)
    service.record_reconfirmation(w, SITE, "email", "bob@x.com", ["marketing"], T0)  # a notice never grants
    link(w, "c_carol", "visitor:vC")
    ids["carol_refuses"] = grant(w, "visitor:vC", {"marketing": False}, T0)
    link(w, "c_dan", "member:m-dan")
    grant(w, "member:m-dan", {"marketing": True}, T0)
    link(w, "c_erin", "email:erin@x.com")
    grant(w, "email:erin@x.com", {"marketing": True}, T0)
    link(w, "c_fay", "phone:+821033334444")
    grant(w, "phone:010-3333-4444", {"marketing": True}, T0)
    subscribe(w, "sms", "010-3333-4444", T0)
    ids["fay_stop"] = service.record_opt_out(w, SITE, "sms", "01033334444", "sms_stop", "STOP", T0 + DAY)
    link(w, "c_gus", "email:gus@x.com", "visitor:vG")
    grant(w, "email:gus@x.com", {"marketing": True}, T0)
    subscribe(w, "email", "gus@x.com", T0)
    suppress(w, SALT, SITE, {Identifier("email", "gus@x.com"): "erase-1"}, T0)
    link(w, "c_hal", "email:hal@x.com")
    both = {"marketing": True, "night_marketing": True}
    ids["hal_night"] = service.record_consent(w, SITE, "email", "hal@x.com", both, T0, "import", recorded_at=T0)[1]
    subscribe(w, "email", "hal@x.com", T0)
    link(w, "c_ivy", "email:ivy@x.com", "visitor:vI")
    subscribe(w, "email", "ivy@x.com", T0)
    grant(w, "email:ivy@x.com", {"marketing": True}, T0)
    ids["ivy_tie"] = grant(w, "visitor:vI", {"marketing": False}, T0)  # the same instant: withdrawal wins
    link(w, "c_jo", "email:jo@x.com")
    subscribe(w, "email", "jo@x.com", T0)
    grant(w, "email:jo@x.com", {"marketing": True}, NOON + timedelta(seconds=1))  # after the send time
    link(w, "c_kim", "email:k1@x.com", "email:k2@x.com", "email:k3@x.com")
    grant(w, "email:k1@x.com", {"marketing": True}, T0)
    subscribe(w, "email", "k1@x.com", T0 + 2 * DAY, subscribed=False)
    ids["kim_k2"] = subscribe(w, "email", "k2@x.com", T0 + DAY)  # k3 has no record at all
    link(w, "c_lee", "visitor:vL")
    grant(w, "visitor:vL", {"marketing": True, "ad_user_data": True}, T0)
    ids["lee_push"] = subscribe(w, "webpush", PUSH, T0, visitor_id="vL", push_keys={"p256dh": "k", "auth": "a"})
    link(w, "c_max", "member:m-max")
    subscribe(w, "email", "max@work.example", T0, member_id="m-max")  # an address known only by its member
    # the same people on another site are other customers with their own ledgers
    link(w, "c_alice_other", "email:alice@x.com", site="other")
    return w, ids


EVERYONE = ["c_alice", "c_bob", "c_carol", "c_dan", "c_erin", "c_fay", "c_gus", "c_hal", "c_ivy", "c_jo", "c_kim",
            "c_lee", "c_max", "c_nobody"]  # fmt: skip


def gate(w: Warehouse, purpose: str | None, channel: str | None, at: datetime, **audience: Any) -> dict[str, Any]:
    audience = audience or {"customer_ids": EVERYONE}
    rows = service.eligible_audience(w, SITE, purpose, channel, at, SALT, **audience)
    assert len(rows) == len({r.customer_id for r in rows}), "one row per customer"
    return {r.customer_id: r for r in rows}


def reasons(result: Mapping[str, Any]) -> dict[str, str]:
    return {c: r.reason.value for c, r in sorted(result.items())}


def test_every_reason_for_advertising_email_by_day(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, ids = planted
    result = gate(w, "marketing", "email", NOON)
    assert reasons(result) == {
        "c_alice": "eligible",  # the member's later grant beats the visitor's withdrawal
        "c_bob": "no_consent",
        "c_carol": "no_consent",  # refused, never granted
        "c_dan": "no_address",
        "c_erin": "no_subscription",
        "c_fay": "no_address",  # has a phone, not an e-mail
        "c_gus": "suppressed",
        "c_hal": "eligible",
        "c_ivy": "withdrawn",
        "c_jo": "no_consent",  # the grant takes effect after the send time
        "c_kim": "eligible",
        "c_lee": "no_address",
        "c_max": "no_consent",
        "c_nobody": "no_consent",
    }
    alice = result["c_alice"]
    assert (alice.address, alice.consent_event_id, alice.subscription_event_id) == (
        "alice@x.com",
        ids["alice_member_grants"],
        ids["alice_sub"],
    )
    assert result["c_carol"].consent_event_id == ids["carol_refuses"]
    assert result["c_ivy"].consent_event_id == ids["ivy_tie"]
    assert (result["c_kim"].address, result["c_kim"].subscription_event_id) == ("k2@x.com", ids["kim_k2"])
    assert all(r.hold_until is None and r.night_consent_event_id is None for r in result.values())


def test_a_withdrawal_by_one_identifier_holds_until_a_later_grant(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, ids = planted
    for at, reason, decided_by in [
        (T0 + DAY, "eligible", "alice_email_grant"),
        (T0 + 5 * DAY - timedelta(microseconds=1), "eligible", "alice_email_grant"),
        (T0 + 5 * DAY, "withdrawn", "alice_visitor_withdraws"),
        (T0 + 9 * DAY, "withdrawn", "alice_visitor_withdraws"),
        (T0 + 10 * DAY, "eligible", "alice_member_grants"),
    ]:
        alice = gate(w, "marketing", "email", at, customer_ids=["c_alice"])["c_alice"]
        assert (alice.reason.value, alice.consent_event_id) == (reason, ids[decided_by]), at


def test_sms_unsubscribed_by_a_provider_signal(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, ids = planted
    before, after = gate(w, "marketing", "sms", T0 + timedelta(hours=1)), gate(w, "marketing", "sms", NOON)
    assert before["c_fay"].reason is Reason.ELIGIBLE and before["c_fay"].address == "+821033334444"
    assert after["c_fay"].reason is Reason.UNSUBSCRIBED and after["c_fay"].subscription_event_id == ids["fay_stop"]
    assert after["c_alice"].reason is Reason.NO_SUBSCRIPTION  # a phone, never subscribed for SMS
    assert gate(w, "marketing", "alimtalk", NOON)["c_fay"].reason is Reason.NO_SUBSCRIPTION  # another channel


def test_night_advertising_is_held_without_night_consent(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, ids = planted
    result = gate(w, "marketing", "email", NIGHT)
    assert result["c_hal"].reason is Reason.ELIGIBLE and result["c_hal"].night_consent_event_id == ids["hal_night"]
    alice = result["c_alice"]
    assert alice.reason is Reason.NIGHT_NOT_ALLOWED and alice.night_consent_event_id is None
    assert alice.hold_until == datetime(2026, 4, 21, 23, 0, tzinfo=UTC)  # 08:00 in Seoul the next morning
    assert result["c_ivy"].reason is Reason.WITHDRAWN  # earlier reasons first
    informational = gate(w, None, "email", NIGHT)
    assert informational["c_alice"].reason is Reason.ELIGIBLE and informational["c_alice"].consent_event_id is None


def test_informational_messages_and_uploads(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, _ = planted
    info = reasons(gate(w, None, "email", NOON))
    assert info["c_bob"] == info["c_ivy"] == info["c_jo"] == "eligible"  # a subscription is enough
    assert info["c_gus"] == "suppressed" and info["c_erin"] == "no_subscription" and info["c_dan"] == "no_address"
    assert info["c_max"] == "eligible"  # the address recorded under the customer's member id
    push = gate(w, None, "webpush", NOON)
    assert (push["c_lee"].reason, push["c_lee"].address) == (Reason.ELIGIBLE, PUSH)
    upload = reasons(gate(w, "ad_user_data", None, NIGHT))
    assert upload["c_lee"] == "eligible" and upload["c_alice"] == "no_consent"
    assert {r.channel for r in gate(w, "ad_user_data", None, NOON).values()} == {None}


def test_suppression_is_salted_and_per_site(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, _ = planted
    wrong_salt = service.eligible_audience(w, SITE, None, "email", NOON, "other-salt", customer_ids=["c_gus"])
    assert wrong_salt[0].reason is Reason.ELIGIBLE
    other_site = service.eligible_audience(w, "other", "marketing", "email", NOON, SALT, customer_ids=["c_alice_other"])
    assert other_site[0].reason is Reason.NO_CONSENT  # the grants were given on SITE
    assert other_site[0].address == "alice@x.com" and other_site[0].subscription_event_id is None


def test_segment_audiences(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, _ = planted
    members = [
        {"membership_id": f"seg/{c}", "segment_id": "seg", "customer_id": c, "site_id": SITE, "computed_at": NOON}
        for c in ("c_alice", "c_ivy", "c_nobody")
    ]
    w.insert_rows("audiences.segment_members", members, [m["membership_id"] for m in members])
    assert reasons(gate(w, "marketing", "email", NOON, segment_id="seg")) == {
        "c_alice": "eligible",
        "c_ivy": "withdrawn",
        "c_nobody": "no_consent",
    }
    assert gate(w, "marketing", "email", NOON, segment_id="no-such-segment") == {}


def test_recheck_agrees_with_the_gate(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, _ = planted
    for purpose, channel in [("marketing", "email"), ("marketing", "sms"), (None, "webpush"), ("ad_user_data", None)]:
        for at in (NOON, NIGHT, T0 + 5 * DAY):
            gated = gate(w, purpose, channel, at)
            rechecked = service.recheck(w, SITE, EVERYONE, purpose, channel, at, SALT)
            assert {c: (d.reason, d.consent_id, d.subscription_id, d.night_consent_id, d.hold_until)
                    for c, d in rechecked.items()} == {
                c: (e.reason, e.consent_event_id, e.subscription_event_id, e.night_consent_event_id, e.hold_until)
                for c, e in gated.items()
            }  # fmt: skip


def test_bad_requests(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, _ = planted
    for purpose, channel, audience, message in [
        ("marketting", "email", {"customer_ids": ["c"]}, "purpose: unknown purpose 'marketting'"),
        ("marketing", "kakao", {"customer_ids": ["c"]}, "channel: unknown channel 'kakao'"),
        (None, None, {"customer_ids": ["c"]}, "purpose: give a purpose, a channel"),
        ("ad_user_data", "email", {"customer_ids": ["c"]}, "channel: messages need marketing consent or none"),
        ("marketing", "email", {}, "audience: give either a segment_id or customer_ids"),
        ("marketing", "email", {"segment_id": "s", "customer_ids": ["c"]}, "audience: give either"),
        ("marketing", "email", {"customer_ids": [""]}, "customer_ids: must be non-empty strings"),
    ]:
        with pytest.raises(ConsentError, match=re.escape(message)):
            service.eligible_audience(w, SITE, purpose, channel, NOON, SALT, **audience)
    with pytest.raises(ConsentError, match="salt: the privacy salt is required"):
        service.eligible_audience(w, SITE, "marketing", "email", NOON, "", customer_ids=["c"])
    with pytest.raises(ConsentError, match="at: must be a timezone-aware datetime"):
        service.eligible_audience(w, SITE, "marketing", "email", datetime(2026, 5, 1), SALT, customer_ids=["c"])


def test_current_state_statements(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, ids = planted
    states = {(s["customer_id"], s["purpose"]): s for s in service.consent_states(w, SITE, NOON)}
    alice = states["c_alice", "marketing"]
    assert (alice["granted"], alice["consent_event_id"], alice["subject_type"]) == (
        True,
        ids["alice_member_grants"],
        "member",
    )
    assert states["c_ivy", "marketing"]["granted"] is False and states["c_ivy", "marketing"]["ever_granted"] is True
    assert states["c_carol", "marketing"]["ever_granted"] is False
    assert ("c_bob", "marketing") not in states  # the notice is no decision
    assert ("c_jo", "marketing") not in states  # not yet effective
    assert states["c_hal", "night_marketing"]["granted"] is True
    earlier = {(s["customer_id"], s["purpose"]): s["granted"] for s in service.consent_states(w, SITE, T0 + 6 * DAY)}
    assert earlier["c_alice", "marketing"] is False
    subscriptions = {(s["channel"], s["address"]): s for s in service.subscription_states(w, SITE, NOON)}
    assert subscriptions["sms", "+821033334444"]["subscribed"] is False
    assert subscriptions["sms", "+821033334444"]["source"] == "sms_stop"
    assert subscriptions["email", "k1@x.com"]["subscribed"] is False
    assert subscriptions["webpush", PUSH]["visitor_id"] == "vL"


def test_an_unresolved_subject_stands_alone_in_the_state(planted: tuple[Warehouse, dict[str, str]]) -> None:
    w, _ = planted
    grant(w, "email:stranger@x.com", {"analytics": True}, T0)
    states = [s for s in service.consent_states(w, SITE, NOON) if s["subject_value"] == "stranger@x.com"]
    assert [(s["customer_id"], s["purpose"], s["granted"]) for s in states] == [(None, "analytics", True)]


# -- the SQL files -----------------------------------------------------------------------------------

FILES = sorted(path.stem for path in (SQL_DIR / "consent").glob("*.sql"))
SERVICE_PARAMS = {
    "gate": {
        "site_id",
        "segment_id",
        "customer_ids",
        "purpose",
        "channel",
        "address_type",
        "night_rule",
        "at",
        "privacy_salt",
    },
    "consent_state": {"site_id", "at"},
    "subscription_state": {"site_id", "at"},
    "reconfirmation_due": {"site_id", "at", "confirmed_before"},
}


def test_the_service_runs_every_file() -> None:
    assert set(FILES) == set(SERVICE_PARAMS)


@pytest.mark.parametrize("name", FILES)
def test_one_portable_statement_in_house_style(name: str) -> None:
    sql = load_sql(f"consent/{name}")
    [statement] = sqlglot.parse(sql, read="bigquery")
    assert statement is not None and to_duckdb(sql)
    assert parameter_names(sql) == SERVICE_PARAMS[name]
    ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        assert table.db in ("raw", "refined", "audiences", "privacy") or table.name in ctes, table.sql("bigquery")
    code = re.sub(r"--[^\n]*|r?'(?:[^'\\]|\\.)*'", "", sql)
    assert not re.findall(r"\b\w*[A-Z]\w*\b", code), "dbt style: lower-case SQL"
    comments = "\n".join(line.split("--", 1)[1] for line in sql.splitlines() if "--" in line)
    assert "@" not in comments, "bqemulator substitutes parameters inside comments too"
    assert sql.startswith("-- ") and not re.search(r"\{|\}|%s|%\(", sql)


# -- scale -------------------------------------------------------------------------------------------


class Counting:
    """A warehouse that counts the statements it is asked to run."""

    def __init__(self, inner: Warehouse):
        self.inner, self.statements = inner, 0

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self.statements += 1
        return self.inner.query(sql, params)


def test_a_segment_of_100k_customers_in_one_statement() -> None:
    n = 100_000
    people = {"site": SITE, "n": n, "t0": T0, "segment_id": "big"}
    w = new_warehouse()

    def fill(sql: str) -> None:
        w.query(sql, {key: people[key] for key in parameter_names(sql)})

    fill(
        "insert into refined.identities (identity_id, site_id, node, id_type, id_value, customer_id)"
        " select concat(@site, '|', kind, ':', kind, cast(i as string)), @site,"
        " concat(kind, ':', kind, cast(i as string)),"
        " kind, if(kind = 'email', concat('email', cast(i as string), '@x.com'), concat(kind, cast(i as string))),"
        " concat('c', cast(i as string))"
        " from unnest(generate_array(1, @n)) as i cross join unnest(['visitor', 'email']) as kind"
    )
    fill(
        "insert into audiences.segment_members (membership_id, segment_id, customer_id, site_id, computed_at)"
        " select concat('big/c', cast(i as string)), @segment_id, concat('c', cast(i as string)), @site, @t0"
        " from unnest(generate_array(1, @n)) as i"
    )
    fill(  # every third grants (each grant twice: duplicates), every ninth withdraws an hour later
        "insert into raw.consent (consent_event_id, site_id, event_date, effective_at, recorded_at, subject_type,"
        " subject_value, purpose, granted, source)"
        " select concat('ce', cast(i as string), '-', cast(g as string)), @site, date '2026-04-01',"
        " timestamp_add(@t0, interval g hour), @t0, 'visitor', concat('visitor', cast(i as string)), 'marketing',"
        " g = 0, 'tracker'"
        " from unnest(generate_array(1, @n, 3)) as i cross join unnest([0, 1, 0]) as g"
        " where g = 0 or mod(i, 9) = 1"
    )
    fill(
        "insert into raw.subscription (subscription_event_id, site_id, event_date, effective_at, recorded_at,"
        " channel, address, subscribed, source)"
        " select concat('se', cast(i as string)), @site, date '2026-04-01', @t0, @t0, 'email',"
        " concat('email', cast(i as string), '@x.com'), true, 'form'"
        " from unnest(generate_array(1, @n, 2)) as i"
    )
    counting = Counting(w)
    started = time.monotonic()
    result = service.eligible_audience(counting, SITE, "marketing", "email", NOON, SALT, segment_id="big")  # type: ignore[arg-type]
    seconds = time.monotonic() - started
    assert counting.statements == 1
    assert len(result) == n
    counts: dict[str, int] = {}
    for row in result:
        counts[row.reason.value] = counts.get(row.reason.value, 0) + 1
    granted = set(range(1, n + 1, 3))
    withdrawn = {i for i in granted if i % 9 == 1}
    eligible = {i for i in granted - withdrawn if i % 2 == 1}
    assert counts == {
        "no_consent": n - len(granted),
        "withdrawn": len(withdrawn),
        "eligible": len(eligible),
        "no_subscription": len(granted) - len(withdrawn) - len(eligible),
    }
    print(f"gate over {n:,} customers: {seconds:.2f} s")

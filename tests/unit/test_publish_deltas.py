"""The delta's parts: row identity, request batches within both limits, rows two customers share,
a multi-site segment, the consent gate as a property (nobody without ad_user_data is uploaded), and
incremental staging: a rerun hashes exactly the members that changed and stages what a fresh
stage of everyone would."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.activation.customer_file import hash_row
from shared.activation.deltas import PURPOSE, batches, row_hash, sent, spelling, stage, stored
from shared.activation.ledger import LedgerRemovals
from shared.ports.audiences import MAX_BATCH_BYTES, payload_bytes
from shared.services import consent
from shared.services.publish_audiences import publish
from shared.sql import SQL_DIR, load_sql, parameter_names, to_duckdb
from tests.builders import SALT
from tests.fake_audiences import FakeAudiences
from tests.publish_world import KEYS, SEGMENT, SITE, Person, World, facebook, publication, segment

HEX = "0123456789abcdef"


def test_a_row_is_identified_by_its_schema_and_values() -> None:
    row = ("a" * 64, None)
    assert row_hash(("EMAIL", "PHONE"), row) != row_hash(("EMAIL", "FN"), row)
    assert row_hash(("EMAIL", "PHONE"), row) != row_hash(("EMAIL", "PHONE"), ("a" * 64, "b" * 64))
    assert row_hash(("EMAIL", "PHONE"), row) == row_hash(["EMAIL", "PHONE"], ["a" * 64, None])
    assert sent(stored(row)) == row and stored(row) == ["a" * 64, ""]


@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a" * 64, "b" * 64, None]), st.text(alphabet="김민지ab", max_size=30) | st.none()),
        max_size=400,
    ),
    max_rows=st.integers(1, 50),
    max_bytes=st.integers(200, 3000),
)
def test_batches_cover_the_rows_in_order_within_both_limits(
    rows: list[tuple[str | None, str | None]], max_rows: int, max_bytes: int
) -> None:
    schema = ("EMAIL", "FN")
    parts = list(batches(schema, rows, max_rows, max_bytes))
    assert [i for part in parts for i in range(len(rows))[part]] == list(range(len(rows)))
    for part in parts:
        chunk = rows[part]
        assert 1 <= len(chunk) <= max_rows and payload_bytes(schema, chunk) <= max_bytes
    for before, after in zip(parts, parts[1:], strict=False):  # a batch ends only when the next row would not fit
        chunk = rows[before.start : after.start + 1]
        assert len(chunk) > max_rows or payload_bytes(schema, chunk) > max_bytes


def test_sixty_kilobytes_of_four_keys_is_a_few_hundred_rows() -> None:
    rows = [tuple(c * 64 for c in HEX[i % 16] * 4) for i in range(1000)]
    sizes = [len(rows[part]) for part in batches(KEYS, rows)]
    assert sizes == [222, 222, 222, 222, 112]  # 270 bytes a row
    assert payload_bytes(KEYS, rows[:222]) <= MAX_BATCH_BYTES < payload_bytes(KEYS, rows[:223])


def test_a_row_over_the_cap_is_refused() -> None:
    try:
        list(batches(("EXTERN_ID",), [("x" * 5000,)], max_bytes=1000))
    except ValueError as error:
        assert "over the 1,000-byte cap" in str(error)
    else:
        raise AssertionError("a row larger than a request was batched")


def test_a_row_two_customers_share_leaves_the_ledger_without_a_removal() -> None:
    world, port = World(), FakeAudiences()
    mum = world.person("mum", email="family@example.com")
    world.person("son", email="family@example.com")  # the same e-mail: the same row
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    pub = publication(audience, keys=["EMAIL"])
    publish(world.warehouse, port, pub, facebook(), segment(), world.tick(), "r1", salt=SALT)
    assert len(port.held(audience)) == 1
    world.leave(mum)
    report = publish(world.warehouse, port, pub, facebook(), segment(), world.tick(), "r2", salt=SALT)
    assert report.removed == {"left_segment": 1} and port.sent("remove") == []
    assert port.held(audience) == world.desired(("EMAIL",)) != set()
    held = world.warehouse.query("select customer_id from audiences.publication_ledger where removed_at is null")
    assert held == [{"customer_id": "c_son"}]


def test_a_segment_of_every_site_is_gated_per_site() -> None:
    world, port = World(), FakeAudiences()
    world.person("ann", email="ann@example.com")
    other = {
        "membership_id": f"{SEGMENT}/c_zed",
        "segment_id": SEGMENT,
        "customer_id": "c_zed",
        "site_id": "other",
        "computed_at": world.clock.isoformat(),
    }
    world.warehouse.insert_rows("audiences.segment_members", [other], [other["membership_id"]])
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    report = publish(
        world.warehouse, port, publication(audience), facebook(), segment(None), world.tick(), "r1", salt=SALT
    )
    assert (report.staged.members, report.staged.eligible, report.added) == (2, 1, 1)
    staged = world.warehouse.query("select site_id, reason from audiences.publication_staging order by site_id")
    assert staged == [{"site_id": "other", "reason": "no_consent"}, {"site_id": SITE, "reason": "eligible"}]


STAGED = "select * from audiences.publication_staging where publication_id = @p order by customer_id"


def staged(world: World, publication_id: str = "vip-meta") -> dict[str, dict[str, Any]]:
    """The staged rows by customer, without the run that wrote them."""
    rows = world.warehouse.query(STAGED, {"p": publication_id})
    return {r["customer_id"]: {k: v for k, v in r.items() if k not in ("run_id", "staged_at")} for r in rows}


def fresh(world: World) -> dict[str, dict[str, Any]]:
    """What staging everyone from nothing gives now (another publication id, so nothing is reused),
    in the form `staged` reads, as the publication's own ids."""
    now = world.tick()
    stage(world.warehouse, "fresh", SEGMENT, SITE, KEYS, run_id="fresh", now=now, salt=SALT)
    rows = staged(world, "fresh")
    world.warehouse.query("delete from audiences.publication_staging where publication_id = 'fresh'")
    return {c: {**r, "publication_id": "vip-meta", "staging_id": f"vip-meta|{c}"} for c, r in rows.items()}


def hashed_by(world: World, run_id: str) -> set[str]:
    rows = world.warehouse.query(STAGED, {"p": "vip-meta"})
    return {r["customer_id"] for r in rows if r["run_id"] == run_id and r["fingerprint"] is not None}


def test_a_rerun_hashes_only_what_changed_and_stages_what_a_fresh_stage_would() -> None:
    world, port = World(), FakeAudiences()
    people = {
        name: world.person(name, email=f"{name}@example.com", given="민지", family="김")
        for name in ("ann", "cat", "fay", "gus", "hal", "kim")
    }
    people["bob"] = world.person("bob", email="bob@example.com", consent=False)
    people["ivy"] = world.person("ivy", email="ivy@example.com", member=False)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    pub = publication(audience)
    first = publish(world.warehouse, port, pub, facebook(), segment(), world.tick(), "r1", salt=SALT)
    assert first.staged.hashed == first.staged.eligible == 6 and staged(world) == fresh(world)

    world.change(people["ann"], given="서연")  # a name in raw.user: FN changes
    world.change(people["cat"], email="cat@new.example")  # a key changes
    world.leave(people["fay"])  # leaves the segment
    world.decide(people["gus"], False)  # withdraws
    world.erase(people["hal"], LedgerRemovals(world.warehouse))  # erased
    world.decide(people["bob"], True)  # newly eligible
    world.join(people["ivy"])  # enters the segment
    world.change(people["kim"], sex="F")  # a column no key reads: rehashed, the same row
    report = publish(world.warehouse, port, pub, facebook(), segment(), world.tick(), "r2", salt=SALT)

    assert hashed_by(world, "r2") == {"c_ann", "c_cat", "c_bob", "c_ivy", "c_kim"} and report.staged.hashed == 5
    assert staged(world)["c_gus"]["reason"] == "withdrawn" and staged(world)["c_gus"]["hashes"] == []
    assert "c_fay" not in staged(world) and "c_hal" not in staged(world)
    assert staged(world) == fresh(world)
    assert report.removed == {"left_segment": 1, "no_consent": 1, "erased": 1, "key_changed": 2}
    assert report.added == 4 and port.held(audience) == world.desired()  # ann, cat, bob, ivy

    again = publish(world.warehouse, port, pub, facebook(), segment(), world.tick(), "r3", salt=SALT)
    assert again.staged.hashed == 0 and again.batches == 0 and hashed_by(world, "r3") == set()
    assert (again.staged.members, again.staged.eligible, again.staged.desired) == (6, 5, 5)  # gus refused
    scratch = "select count(*) as n from audiences.publication_gate, audiences.publication_changes"
    assert world.warehouse.query(scratch) == [{"n": 0}]  # no copy of the key values outlives staging


def test_new_keys_or_new_rules_restage_everyone() -> None:
    world, port = World(), FakeAudiences()
    for name in ("ann", "bob", "cat"):
        world.person(name, email=f"{name}@example.com", phone="010-1234-5678")
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    publish(world.warehouse, port, publication(audience), facebook(), segment(), world.tick(), "r1", salt=SALT)
    fewer = publication(audience, keys=["EMAIL"])
    report = publish(world.warehouse, port, fewer, facebook(), segment(), world.tick(), "r2", salt=SALT)
    assert report.staged.hashed == 3 and report.removed == {"key_changed": 3} and report.added == 3
    assert port.held(audience) == world.desired(("EMAIL",))
    assert spelling(("EMAIL",)) != spelling(("EMAIL", "PHONE")) != spelling(("PHONE", "EMAIL"))
    assert spelling(("DOBY",)).endswith(f"|DOBY|{world.clock.year}")  # a birth year becomes valid in its year


def test_the_set_based_gate_answers_as_eligible_audience() -> None:
    world = World()
    for name, granted in (("ann", True), ("bob", False), ("cat", None), ("dan", True)):
        world.person(name, email=f"{name}@example.com", consent=granted)
    world.decide(world.people["c_ann"], False)
    world.decide(world.people["c_ann"], True)  # granted again: the latest decision counts
    world.decide(world.people["c_dan"], False)
    now = world.tick()
    rows = consent.eligible_audience(world.warehouse, SITE, PURPOSE, None, now, SALT, segment_id=SEGMENT)
    table = consent.eligible_table(world.warehouse, SITE, PURPOSE, now, SALT, segment_id=SEGMENT)
    assert sorted(table.to_pylist(), key=lambda r: r["customer_id"]) == [
        {"customer_id": r.customer_id, "reason": r.reason.value, "consent_event_id": r.consent_event_id}
        for r in sorted(rows, key=lambda r: r.customer_id)
    ]
    assert {r["reason"] for r in table.to_pylist()} == {"eligible", "withdrawn", "no_consent"}


CHANGES = ("grant", "withdraw", "leave", "join", "email", "name", "erase")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.lists(st.tuples(st.sampled_from(("ann", "bob", "cat", "dan")), st.sampled_from(CHANGES)), max_size=4),
        min_size=1,
        max_size=4,
    )
)
def test_incremental_staging_equals_staging_afresh(steps: list[list[tuple[str, str]]]) -> None:
    world, port = World(), FakeAudiences()
    people = {
        name: world.person(name, email=f"{name}@example.com", given="Ann") for name in ("ann", "bob", "cat", "dan")
    }
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    members = set(people)
    for n, changes in enumerate(steps):
        for name, change in changes:
            if name in members or change != "erase":
                _change(world, people, name, change, members)
        now = world.tick()
        pub = publication(audience)
        report = publish(world.warehouse, port, pub, facebook(), segment(), now, f"r{n}", salt=SALT, page_rows=2)
        assert report.failure is None and staged(world) == fresh(world)  # pages of two members
        assert port.held(audience) == world.desired()


def _change(world: World, people: dict[str, Person], name: str, change: str, members: set[str]) -> None:
    person = people[name]
    if person.customer_id not in world.people:  # erased: gone for good
        return
    if change == "name":
        world.change(person, given=f"{name}{world.events}")
    elif change == "erase":
        world.erase(person, LedgerRemovals(world.warehouse))
        members.discard(name)
    else:
        _apply(world, person, change, members)


PEOPLE = ("ann", "bob", "cat", "dan")
step = st.tuples(st.sampled_from(PEOPLE), st.sampled_from(["grant", "withdraw", "leave", "join", "email"]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    decisions=st.lists(st.tuples(st.sampled_from(PEOPLE), st.booleans() | st.none())),
    changes=st.lists(step, max_size=8),
)
def test_nobody_without_ad_user_data_is_ever_uploaded(
    decisions: list[tuple[str, bool | None]], changes: list[tuple[str, str]]
) -> None:
    world, port = World(), FakeAudiences()
    people = {name: world.person(name, email=f"{name}@example.com", consent=None) for name in PEOPLE}
    for name, granted in decisions:
        if granted is not None:
            world.decide(people[name], granted)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    members = set(PEOPLE)
    for n, (name, change) in enumerate([("ann", "none"), *changes]):
        _apply(world, people[name], change, members)
        now, calls = world.tick(), len(port.calls)
        report = publish(world.warehouse, port, publication(audience), facebook(), segment(), now, f"r{n}", salt=SALT)
        assert report.failure is None
        gate = consent.eligible_audience(world.warehouse, SITE, "ad_user_data", None, now, SALT, segment_id=SEGMENT)
        allowed = {e.customer_id for e in gate if e.eligible}
        uploaded = {row for call in port.calls[calls:] if call.op == "add" for row in call.rows}
        assert uploaded <= {hash_row(people[c[2:]].profile(), KEYS) for c in allowed}
        held = world.warehouse.query("select customer_id from audiences.publication_ledger where removed_at is null")
        assert {r["customer_id"] for r in held} <= allowed
        assert port.held(audience) == world.desired(at=now)


def _apply(world: World, person: Any, change: str, members: set[str]) -> None:
    name = person.customer_id[2:]
    if change in ("grant", "withdraw"):
        world.decide(person, change == "grant")
    elif change == "leave" and name in members:
        world.leave(person)
        members.discard(name)
    elif change == "join" and name not in members:
        world.join(person)
        members.add(name)
    elif change == "email":
        world.change(person, email=f"{name}.{world.events}{len(members)}@example.com")


FILES = sorted(path.stem for path in (SQL_DIR / "publish").glob("*.sql"))
CALLERS = ("shared/activation/deltas.py", "shared/activation/ledger.py", "shared/services/publish_audiences.py")


def test_every_publish_statement_is_used_and_every_use_has_its_file() -> None:
    used = set()
    for caller in CALLERS:
        used |= set(re.findall(r'\brun(?:_arrow)?\(\s*[^,()]+,\s*"([a-z_]+)"', (SQL_DIR.parent / caller).read_text()))
    assert used == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_one_bigquery_statement_that_duckdb_runs(name: str) -> None:
    sql = load_sql(f"publish/{name}")
    [statement] = sqlglot.parse(sql, read="bigquery")
    assert statement is not None and to_duckdb(sql)
    assert parameter_names(sql), "values reach the statement as parameters"


@pytest.mark.parametrize("name", FILES)
def test_no_comment_names_a_parameter(name: str) -> None:
    """bqemulator binds an @name written in a comment as a parameter, and the statement then writes
    nothing (tests/integration/test_publish_bigquery.py found it): comments say it in words."""
    comments = [line for line in load_sql(f"publish/{name}").splitlines() if "--" in line]
    assert not [line for line in comments if re.search(r"@\w", line.split("--", 1)[1])]

"""The erasure test of issue 15: every table of the schema files holds rows of two people, one of them
merged with a third identifier through a shared e-mail; erasing that one by a single identifier
leaves no row about them anywhere, and the other person's rows untouched. The check reads every
row of every table whole, so it does not depend on the declarations it tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.privacy.documents import COLLECTIONS, DocumentKey
from shared.privacy.receipts import DONE
from shared.privacy.removals import RemovalQueue
from shared.privacy.statements import Dml
from shared.privacy.subjects import Identifier, build_request, identifier
from shared.privacy.suppression import id_hash
from shared.schema import Field, TableSpec, table_specs
from shared.services import privacy
from shared.services import refine as refinement
from tests.builders import History, new_warehouse
from tests.fakes import FakeDocumentStore

SITE = "shop"
SALT = "test-salt"
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)
DAY = date(2026, 5, 1)


@dataclass(frozen=True)
class Person:
    key: str  # in every value of their rows, so a leftover row is found by reading it whole
    member: str
    visitors: tuple[str, ...]
    email: str
    phone: str
    name: str
    customer: str = ""

    def marks(self) -> tuple[str, ...]:
        """Strings any row about the person contains (lowercased)."""
        return (self.key, self.phone, "0" + self.phone[3:], *([self.customer] if self.customer else []))


ALICE = Person("alice", "alice-m", ("alice-v1", "alice-v2"), "alice@example.com", "+821011112222", "Alice Kim")
BOB = Person("bob", "bob-m", ("bob-v1",), "bob@example.com", "+821033334444", "Bob Lee")


def history() -> History:
    """Alice logs in on her phone (alice-v1, member, e-mail, phone); on a second browser (alice-v2)
    she only leaves her e-mail in a form, so resolution joins it to her through the e-mail alone.
    Bob logs in once."""
    h = History()
    h.visit("05-01 10:00", "alice-v1", "/", medium="search", source="naver")
    h.add("raw.user", "05-01 10:01", "alice-v1", ALICE.member, email=ALICE.email, phone=ALICE.phone)
    h.add("raw.event", "05-01 10:02", "alice-v1", ALICE.member, event_name="product_view", product_name="코트")
    h.order("05-01 10:03", "o-alice", 50000, ["코트"], visitor_id="alice-v1", member_id=ALICE.member)
    h.visit("05-02 20:00", "alice-v2", "/contact")
    h.add("raw.user", "05-02 20:01", "alice-v2", email=ALICE.email)
    h.visit("05-01 11:00", "bob-v1", "/")
    h.add("raw.user", "05-01 11:01", "bob-v1", BOB.member, email=BOB.email, phone=BOB.phone)
    h.order("05-01 11:02", "o-bob", 30000, ["셔츠"], visitor_id="bob-v1", member_id=BOB.member)
    return h


def value(spec: TableSpec, column: Field, person: Person, n: int) -> Any:
    """A value of a column for a row about person: identifiers where the column names one, their key
    in every other string, so that nothing about them can hide in an undeclared column."""
    name, node = column.name, f"member:{person.member}"
    by_name: dict[str, Any] = {
        "site_id": SITE,
        "visitor_id": person.visitors[n % len(person.visitors)],
        "visitor_ids": list(person.visitors),
        "member_id": person.member,
        "email": person.email,
        "phone": person.phone,
        "customer_id": person.customer,
        "profiled_customer_id": person.customer,
        "node": node,
        "node_a": node,
        "node_b": f"visitor:{person.visitors[0]}",
        "id_type": "member",
        "id_value": person.member,
        "subject_type": "email",
        "subject_value": person.email,
        "channel": "sms",
        "address": person.phone,
        "payload": json.dumps({"events": [{"member_id": person.member, "props": {"tel": "0" + person.phone[3:]}}]}),
        "properties": {"email": person.email, "phone": person.phone, "note": person.key},
        "traits": {"name": person.name},
        "full_name": person.name,
    }
    if name in by_name:
        return by_name[name]
    if column.repeated:
        return []
    return {
        "STRING": f"{name}-{person.key}-{n}",
        "DATE": DAY.isoformat(),
        "TIMESTAMP": datetime(2026, 5, 1, 9, tzinfo=UTC).isoformat(),
        "INT64": n,
        "FLOAT64": 1.5,
        "NUMERIC": "1000",
        "BOOL": False,
        "BOOLEAN": False,
        "JSON": {"who": person.key},
    }[column.type]


def fill(warehouse: DuckDBWarehouse, people: list[Person]) -> None:
    """Two generic rows per person in every table that holds personal data (the privacy dataset is
    the erasure's own record), on top of what refinement built."""
    for spec in table_specs().values():
        if spec.retained_after_erasure:
            continue
        rows = [{f.name: value(spec, f, p, n) for f in spec.fields} for p in people for n in range(2)]
        result = warehouse.insert_rows(spec.name, rows, [str(r[spec.row_id]) for r in rows])
        assert not result.errors, (spec.name, result)  # keyed by customer_id: one row each at most


def rows_about(warehouse: DuckDBWarehouse, table: str, person: Person) -> int:
    rows = warehouse.query(f"select * from {table}")  # test-only SQL over a table name from the specs
    texts = [json.dumps(row, default=str, ensure_ascii=False).lower() for row in rows]
    return sum(1 for text in texts if any(mark.lower() in text for mark in person.marks()))


def customer_of(warehouse: DuckDBWarehouse, member: str) -> str:
    [row] = warehouse.query(
        "select customer_id from refined.identities where node = @node", {"node": f"member:{member}"}
    )
    return str(row["customer_id"])


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    warehouse = new_warehouse(history())
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 2), NOW)
    return warehouse


def test_erasing_one_person_leaves_nothing_of_them_in_any_table_and_the_other_intact(
    warehouse: DuckDBWarehouse,
) -> None:
    alice = replace(ALICE, customer=customer_of(warehouse, ALICE.member))
    bob = replace(BOB, customer=customer_of(warehouse, BOB.member))
    [second_browser] = warehouse.query("select customer_id from refined.identities where node = 'visitor:alice-v2'")
    assert second_browser["customer_id"] == alice.customer, "resolution joins alice-v2 through the e-mail"
    fill(warehouse, [alice, bob])
    tables = [s.name for s in table_specs().values() if not s.retained_after_erasure]
    before = {t: (rows_about(warehouse, t, alice), rows_about(warehouse, t, bob)) for t in tables}
    assert all(a > 0 and b > 0 for a, b in before.values()), before

    documents = FakeDocumentStore()
    collections = {**COLLECTIONS, "people_notes": (DocumentKey("email", "email"),)}
    documents.set("people_notes", "n1", {"email": alice.email, "site_id": SITE})
    documents.set("people_notes", "n2", {"email": bob.email, "site_id": SITE})
    request = build_request("req-alice", "erase", [identifier("member", " alice-m ")], SITE)
    [receipt] = privacy.erase(
        warehouse,
        [request],
        salt=SALT,
        now=NOW,
        removals=RemovalQueue(warehouse),
        documents=documents,
        collections=collections,
    )

    after = {t: (rows_about(warehouse, t, alice), rows_about(warehouse, t, bob)) for t in tables}
    assert {t: a for t, (a, _) in after.items() if a} == {}, "rows about the erased person are left"
    assert {t: b for t, (_, b) in after.items()} == {t: b for t, (_, b) in before.items()}, "the other person changed"
    assert receipt.status == DONE and receipt.left == 0 and receipt.verified_at == NOW
    assert receipt.identifiers == {"visitor": 2, "member": 1, "email": 1, "phone": 1, "customers": 1}
    assert set(receipt.tables) == {s.name for s in privacy.subject_tables()}
    assert all(c.found == c.erased >= before[t][0] for t, c in receipt.tables.items()), receipt.tables
    assert receipt.documents == {"people_notes": 1}
    assert documents.get("people_notes", "n1") is None and documents.get("people_notes", "n2") is not None

    expected = {Identifier("member", "alice-m"), Identifier("email", alice.email), Identifier("phone", alice.phone)}
    expected |= {Identifier("visitor", v) for v in alice.visitors}
    hashes = {r["id_hash"] for r in warehouse.query("select id_hash from privacy.suppressions")}
    assert hashes == {id_hash(SALT, SITE, i.type, i.value) for i in expected}
    removals = warehouse.query("select site_id, customer_id, request_id from privacy.audience_removals")
    assert removals == [{"site_id": SITE, "customer_id": alice.customer, "request_id": "req-alice"}]


def test_a_retried_erasure_changes_nothing_and_reports_nothing_left(warehouse: DuckDBWarehouse) -> None:
    request = build_request("req-1", "erase", [identifier("email", "Alice@Example.com")], SITE)
    ports = {"salt": SALT, "now": NOW, "removals": RemovalQueue(warehouse)}
    [first] = privacy.erase(warehouse, [request], **ports)  # type: ignore[arg-type]
    [again] = privacy.erase(warehouse, [request], **ports)  # type: ignore[arg-type]
    assert first.status == again.status == DONE
    assert first.tables["raw.page"].erased == 2 and again.tables["raw.page"].found == 0
    assert warehouse.query("select count(*) as n from privacy.suppressions") == [{"n": 5}]
    assert warehouse.query("select count(*) as n from privacy.audience_removals") == [{"n": 1}]
    assert first.documents is None and "not checked" in first.summary()


def test_a_request_matching_nobody_completes_with_an_empty_receipt(warehouse: DuckDBWarehouse) -> None:
    request = build_request("req-nobody", "erase", [identifier("email", "nobody@example.com")], SITE)
    [receipt] = privacy.erase(warehouse, [request], salt=SALT, now=NOW, removals=RemovalQueue(warehouse))
    assert receipt.status == DONE and receipt.left == 0
    assert all(c.found == c.erased == c.remaining == 0 for c in receipt.tables.values())
    assert receipt.identifiers == {"visitor": 0, "member": 0, "email": 1, "phone": 0, "customers": 0}
    assert rows_about(warehouse, "raw.page", ALICE) == 2


def test_one_batch_erases_several_people_and_attributes_rows_to_each(warehouse: DuckDBWarehouse) -> None:
    requests = [
        build_request("req-alice", "erase", [identifier("visitor", "alice-v2")], SITE),
        build_request("req-bob", "erase", [identifier("phone", "010-3333-4444")], None),
    ]
    receipts = privacy.erase(warehouse, requests, salt=SALT, now=NOW, removals=RemovalQueue(warehouse))
    assert [r.status for r in receipts] == [DONE, DONE]
    alice, bob = receipts
    assert alice.tables["raw.page"].erased == 2 and bob.tables["raw.page"].erased == 1
    assert alice.tables["raw.conv"].erased == 1 and bob.tables["raw.conv"].erased == 1
    assert bob.sites == [SITE] and bob.identifiers["member"] == 1
    assert warehouse.query("select count(*) as n from raw.page") == [{"n": 0}]


def test_rows_the_streaming_buffer_holds_keep_the_request_pending(warehouse: DuckDBWarehouse) -> None:
    """On BigQuery, deletes skip rows that arrived after settled_before; verification still sees
    them, so the request stays pending and names the tables to retry."""
    request = build_request("req-1", "erase", [identifier("member", "alice-m")], SITE)
    late = Dml(settled_before=datetime(2026, 5, 1, 10, 1, 30, tzinfo=UTC))  # alice-v1's first rows only
    [receipt] = privacy.erase(warehouse, [request], salt=SALT, now=NOW, removals=RemovalQueue(warehouse), dml=late)
    assert receipt.status == "pending" and receipt.verified_at is None
    assert receipt.tables["raw.page"].found == 2 and receipt.tables["raw.page"].remaining == 1
    assert receipt.waiting == []  # DuckDB has no buffer to refuse: the rows were only skipped
    assert receipt.tables["refined.events"].remaining == 0
    [retry] = privacy.erase(warehouse, [request], salt=SALT, now=NOW, removals=RemovalQueue(warehouse))
    assert retry.status == DONE and rows_about(warehouse, "raw.page", ALICE) == 0

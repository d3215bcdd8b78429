"""FirestoreStore through the real google-cloud-firestore client against the Firestore emulator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from devstack.emulators import Emulators
from shared.adapters.firestore_store import FirestoreStore
from shared.ports import DocumentStore, TransientError
from tests.fakes import FakeDocumentStore

pytestmark = pytest.mark.emulator

KST = timezone(timedelta(hours=9))


@pytest.fixture
def store(emulators: Emulators) -> Iterator[FirestoreStore]:
    emulators.reset_firestore()
    yield FirestoreStore(emulators.project)


class Fake(FakeDocumentStore):
    """FakeDocumentStore, except that set(merge=False) into a new collection works (it raises KeyError)."""

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        self.docs.setdefault(collection, {})
        super().set(collection, doc_id, data, merge)


def seed(store: DocumentStore) -> None:
    """Homogeneous fields, no nulls: where Firestore and the fake agree by construction."""
    for doc_id, size, tier, region in [
        ("s1", 10, "gold", "Seoul"),
        ("s2", 250, "silver", "Busan"),
        ("s3", 250, "gold", "Seoul"),
        ("s4", 4000, "bronze", "Incheon"),
        ("s5", 7, "silver", "Seoul"),
    ]:
        store.set("segments", doc_id, {"size": size, "tier": tier, "region": region, "nested": {"n": size}})
    store.set("segments", "s6", {"tier": "gold"})  # no size, no region


def ids(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [doc_id for doc_id, _ in rows]


def test_a_missing_document_is_none_and_deleting_it_is_fine(store: FirestoreStore) -> None:
    assert store.get("segments", "nope") is None
    store.delete("segments", "nope")
    assert store.list("segments") == []


def test_values_round_trip_with_nested_maps_lists_and_aware_datetimes(store: FirestoreStore) -> None:
    when = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=KST)
    doc = {
        "name": "휴면 회원",
        "count": 42,
        "ratio": 0.25,
        "enabled": True,
        "nothing": None,
        "rules": {"all": [{"segmentlet": "recency_days", "op": "gte", "value": 60}, {"any": [{"x": [1, 2.5, "s"]}]}]},
        "tags": ["a", "b", {"deep": {"deeper": [when]}}],
        "created_at": when,
        "key.with.dots": "kept",
    }
    store.set("segments", "dormant", doc)

    got = store.get("segments", "dormant")

    assert got == doc
    assert got is not None
    assert type(got["created_at"]) is datetime and got["created_at"].tzinfo == UTC
    assert got["created_at"] == when and got["created_at"].microsecond == 123456
    assert got["tags"][2]["deep"]["deeper"][0] == when
    assert isinstance(got["count"], int) and isinstance(got["ratio"], float)


def test_naive_datetimes_are_refused_with_their_path(store: FirestoreStore) -> None:
    with pytest.raises(ValueError, match=r"status\.history\[1\]: naive datetime"):
        store.set("segments", "x", {"status": {"history": [datetime.now(UTC), datetime(2025, 1, 1)]}})
    assert store.get("segments", "x") is None


def test_set_replaces_and_merge_replaces_only_the_given_top_level_fields(store: FirestoreStore) -> None:
    store.set("segments", "a", {"name": "A", "status": {"state": "ok", "size": 10}, "old": 1})
    store.set("segments", "a", {"name": "A2", "status": {"state": "error"}})
    assert store.get("segments", "a") == {"name": "A2", "status": {"state": "error"}}

    store.set("segments", "a", {"status": {"schedule": {"state": "scheduled"}}, "k.dot": 1}, merge=True)
    # The whole `status` is replaced (Firestore's merge=True would have merged it key by key).
    assert store.get("segments", "a") == {"name": "A2", "status": {"schedule": {"state": "scheduled"}}, "k.dot": 1}

    store.set("segments", "new", {"enabled": False}, merge=True)  # merge creates a missing document
    assert store.get("segments", "new") == {"enabled": False}
    store.set("segments", "empty", {}, merge=True)
    assert store.get("segments", "empty") == {}
    store.set("segments", "a", {}, merge=True)  # and changes nothing of an existing one
    assert store.get("segments", "a") == {"name": "A2", "status": {"schedule": {"state": "scheduled"}}, "k.dot": 1}


def test_create_claims_once_even_when_racing(store: FirestoreStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.fakes import FakeDocumentStore

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda i: store.create("claims", "d1", {"by": i}), range(8)))
    assert won.count(True) == 1
    assert store.get("claims", "d1") == {"by": won.index(True)}
    fake = FakeDocumentStore()
    assert [fake.create("claims", "d1", {"by": 1}), fake.create("claims", "d1", {"by": 2})] == [True, False]
    assert fake.get("claims", "d1") == {"by": 1}


def test_delete_removes_the_document(store: FirestoreStore) -> None:
    store.set("runs", "r1", {"status": "ok"})
    store.delete("runs", "r1")
    assert store.get("runs", "r1") is None


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ([], ["s1", "s2", "s3", "s4", "s5", "s6"]),
        ([("tier", "==", "gold")], ["s1", "s3", "s6"]),
        ([("tier", "!=", "gold")], ["s2", "s4", "s5"]),
        ([("size", "<", 250)], ["s1", "s5"]),
        ([("size", "<=", 250)], ["s1", "s2", "s3", "s5"]),
        ([("size", ">", 250)], ["s4"]),
        ([("size", ">=", 250)], ["s2", "s3", "s4"]),
        ([("region", "in", ["Seoul", "Incheon"])], ["s1", "s3", "s4", "s5"]),
        ([("tier", "==", "gold"), ("size", ">", 5)], ["s1", "s3"]),
        ([("region", "==", "Seoul"), ("tier", "in", ["silver", "bronze"])], ["s5"]),
        ([("size", ">", 5), ("size", "<", 300)], ["s1", "s2", "s3", "s5"]),
        ([("tier", "in", [])], []),
        ([("tier", "==", "platinum")], []),
    ],
)
def test_list_filters_agree_with_the_fake(store: FirestoreStore, where: list[Any], expected: list[str]) -> None:
    fake = Fake()
    seed(store)
    seed(fake)
    assert ids(store.list("segments", where)) == expected
    assert store.list("segments", where) == fake.list("segments", where)


def test_same_operations_same_results_as_the_fake(store: FirestoreStore) -> None:
    fake = Fake()
    docs: list[DocumentStore] = [store, fake]
    for target in docs:
        seed(target)
        target.set("segments", "s2", {"tier": "gold", "extra": [1, {"a": "b"}]}, merge=True)
        target.set("segments", "s3", {"only": "this"})
        target.delete("segments", "s4")
        target.delete("segments", "missing")
        target.set("templates", "t1", {"name": "all users", "segmentlets": ["sex", "age"]})
    for collection in ("segments", "templates", "none"):
        assert store.list(collection) == fake.list(collection)
    for doc_id in ("s1", "s2", "s3", "s4", "s6", "missing"):
        assert store.get("segments", doc_id) == fake.get("segments", doc_id)


def test_datetime_filters(store: FirestoreStore) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for day in range(5):
        store.set("runs", f"r{day}", {"started_at": base + timedelta(days=day)})
    since = (base + timedelta(days=2)).astimezone(KST)
    assert ids(store.list("runs", [("started_at", ">=", since)])) == ["r2", "r3", "r4"]


def test_a_dotted_field_filters_inside_a_map(store: FirestoreStore) -> None:
    seed(store)
    assert ids(store.list("segments", [("nested.n", ">", 100)])) == ["s2", "s3", "s4"]


def test_in_with_more_values_than_one_query_allows(store: FirestoreStore) -> None:
    for i in range(40):
        store.set("segments", f"d{i:02}", {"i": i, "even": i % 2 == 0, "bucket": i % 3})
    wanted = list(range(0, 80, 2))  # 40 values, Firestore takes 30 per query
    assert ids(store.list("segments", [("i", "in", wanted)])) == [f"d{i:02}" for i in range(0, 40, 2)]
    both = store.list("segments", [("i", "in", list(range(35))), ("bucket", "in", [0, 1])])
    assert ids(both) == [f"d{i:02}" for i in range(35) if i % 3 in (0, 1)]
    with pytest.raises(ValueError, match="at most 30 combinations"):
        store.list("segments", [("i", "in", list(range(40))), ("bucket", "in", list(range(31)))])


def test_firestore_semantics_where_python_would_differ(store: FirestoreStore) -> None:
    # Documented on FirestoreStore: != and in skip missing and null fields; ranges compare within a type.
    for doc_id, value in [("n", 5), ("f", 5.0), ("s", "5"), ("b", True), ("one", 1), ("null", None)]:
        store.set("mixed", doc_id, {"v": value})
    store.set("mixed", "missing", {"w": 1})
    assert ids(store.list("mixed", [("v", "!=", 5)])) == ["b", "one", "s"]
    assert ids(store.list("mixed", [("v", "==", 5)])) == ["f", "n"]  # 5 == 5.0, as in Python
    assert ids(store.list("mixed", [("v", "==", True)])) == ["b"]  # but True is not 1
    assert ids(store.list("mixed", [("v", ">", 0)])) == ["f", "n", "one"]  # numbers only, no TypeError
    assert ids(store.list("mixed", [("v", "==", None)])) == ["null"]


def test_bad_arguments_are_refused_clearly(store: FirestoreStore) -> None:
    with pytest.raises(ValueError, match="unsupported filter operator 'like'"):
        store.list("segments", [("name", "like", "x")])
    with pytest.raises(ValueError, match="must be a list, got str"):
        store.list("segments", [("name", "in", "abc")])
    with pytest.raises(ValueError, match="document id must be a non-empty string without '/'"):
        store.set("segments", "a/b", {"x": 1})
    with pytest.raises(ValueError, match="collection must be"):
        store.get("", "a")


def test_a_named_database_is_separate(store: FirestoreStore, emulators: Emulators) -> None:
    other = FirestoreStore(emulators.project, database="staging")
    other.delete("segments", "a")
    other.set("segments", "a", {"db": "staging"})
    store.set("segments", "a", {"db": "default"})
    assert other.get("segments", "a") == {"db": "staging"}
    assert store.get("segments", "a") == {"db": "default"}
    other.delete("segments", "a")


class _DownClient:
    """A client whose every call fails like Firestore in an outage."""

    def collection(self, _name: str) -> _DownClient:
        return self

    def document(self, _name: str) -> _DownClient:
        return self

    def get(self, *_args: Any, **_kwargs: Any) -> None:
        raise gexc.ServiceUnavailable("firestore is down")  # type: ignore[no-untyped-call]

    set = delete = get


def test_an_outage_is_a_transient_error() -> None:
    store = FirestoreStore("p", client=_DownClient())
    with pytest.raises(TransientError, match="get segments/a failed"):
        store.get("segments", "a")
    with pytest.raises(TransientError):
        store.set("segments", "a", {"x": 1})

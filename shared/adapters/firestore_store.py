"""DocumentStore on Firestore; honours FIRESTORE_EMULATOR_HOST through the client library itself."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from shared.ports import TransientError

OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in")
MAX_DISJUNCTION = 30  # Firestore's limit on the values of `in` filters in one query

# Outages, throttling and contention (base classes: DeadlineExceeded is a GatewayTimeout, and so on).
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.Aborted,
    gexc.RetryError,
)


class FirestoreStore:
    """Documents as plain dicts. Timestamps come back as UTC-aware `datetime`s (not the client's
    DatetimeWithNanoseconds), and naive ones are refused on write instead of silently read as UTC.

    `list` filters keep Firestore's semantics, which Python comparisons (and so the fake) only match
    for fields of one type without nulls: `field` may be a dotted path into a map; `!=` and `in`
    never match a missing field or null; ranges compare only values of the filter value's type;
    True is not 1. Results come in document-id order, as from the fake.
    """

    def __init__(self, project: str, database: str = "(default)", client: Any = None):
        self.project = project
        self.database = database
        self._client = client if client is not None else firestore.Client(project=project, database=database)

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        with _mapped(f"get {collection}/{doc_id}"):
            snapshot = self._doc(collection, doc_id).get()
        return _plain(snapshot.to_dict()) if snapshot.exists else None

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        for key, value in data.items():
            _check_value(value, key)
        ref = self._doc(collection, doc_id)
        with _mapped(f"set {collection}/{doc_id}"):
            if merge and data:
                # Field paths, not merge=True: Firestore's merge=True merges nested maps too, while the
                # port replaces each given top-level field whole. FieldPath quotes keys with dots.
                ref.set(dict(data), merge=[FieldPath(key) for key in data])
            elif merge:
                ref.set({}, merge=True)  # creates an empty document if missing, changes nothing otherwise
            else:
                ref.set(dict(data))

    def create(self, collection: str, doc_id: str, data: Mapping[str, Any]) -> bool:
        for key, value in data.items():
            _check_value(value, key)
        ref = self._doc(collection, doc_id)
        with _mapped(f"create {collection}/{doc_id}"):
            try:
                ref.create(dict(data))
            except gexc.Conflict:  # AlreadyExists: someone else holds the claim
                return False
        return True

    def list(self, collection: str, where: Sequence[tuple[str, str, Any]] = ()) -> list[tuple[str, dict[str, Any]]]:
        filters = [_filter(f, op, value) for f, op, value in where]
        if any(op == "in" and not value for _, op, value in filters):
            return []  # Firestore rejects an empty `in`; nothing can match it
        found: dict[str, dict[str, Any]] = {}
        with _mapped(f"list {collection}"):
            for query_filters in _split_disjunctions(filters):
                query = self._client.collection(_name(collection, "collection"))
                for f, op, value in query_filters:
                    query = query.where(filter=FieldFilter(f, op, value))
                for snapshot in query.stream():
                    found[snapshot.id] = _plain(snapshot.to_dict())
        return sorted(found.items())

    def delete(self, collection: str, doc_id: str) -> None:
        with _mapped(f"delete {collection}/{doc_id}"):
            self._doc(collection, doc_id).delete()

    def _doc(self, collection: str, doc_id: str) -> Any:
        return self._client.collection(_name(collection, "collection")).document(_name(doc_id, "document id"))


def _name(value: str, what: str) -> str:
    """One path segment: a slash would silently address a different (sub)collection."""
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ValueError(f"{what} must be a non-empty string without '/', got {value!r}")
    return value


def _filter(field: str, op: str, value: Any) -> tuple[str, str, Any]:
    if op not in OPERATORS:
        raise ValueError(f"unsupported filter operator {op!r} on {field!r}; use one of {', '.join(OPERATORS)}")
    if op == "in":
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | set | frozenset):
            raise ValueError(f"the value of an 'in' filter on {field!r} must be a list, got {type(value).__name__}")
        value = list(value)
    _check_value(value, field)
    return field, op, value


def _split_disjunctions(filters: list[tuple[str, str, Any]]) -> Iterator[list[tuple[str, str, Any]]]:
    """Queries whose `in` filters stay within Firestore's 30-value limit, together covering the request.

    The longest `in` list is cut into chunks sized so that, multiplied by the other `in` lists, each
    query stays within the limit; the caller merges the results by document id.
    """
    ins = [i for i, (_, op, _) in enumerate(filters) if op == "in"]
    sizes = [len(filters[i][2]) for i in ins]
    if math.prod(sizes) <= MAX_DISJUNCTION:
        yield filters
        return
    longest = max(ins, key=lambda i: len(filters[i][2]))
    others = math.prod(len(filters[i][2]) for i in ins if i != longest)
    if others > MAX_DISJUNCTION:
        raise ValueError(f"'in' filters allow at most {MAX_DISJUNCTION} combinations of values besides the longest")
    field, _, values = filters[longest]
    step = MAX_DISJUNCTION // others
    for start in range(0, len(values), step):
        chunk = values[start : start + step]
        yield [*filters[:longest], (field, "in", chunk), *filters[longest + 1 :]]


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{path}: naive datetime {value.isoformat()}; documents hold timezone-aware datetimes only")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_value(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")


def _plain(value: Any) -> Any:
    """Client types to plain ones: DatetimeWithNanoseconds to datetime (UTC), recursively."""
    if isinstance(value, datetime):
        v = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)  # the client reads UTC
        return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as exc:
        raise TransientError(f"Firestore: {what} failed: {exc}") from exc

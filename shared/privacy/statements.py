"""The per-table statements of a privacy batch, generated from each table's declared subject keys.

One batch is the requests of one site: each table gets one statement to find the subjects' rows,
one to delete them and one to verify that none is left (or one to export them), whatever the
number of people in the batch. The text is assembled from fixed fragments and from names read from
sql/schema (checked to be plain identifiers); every identifier of a person travels as a query
parameter, so the statements are BigQuery SQL that shared.sql transpiles for DuckDB.

Rows are found per key column with a semi-join against the batch's values (`col in (select v from
unnest(@values) as v)`), which both engines run as a hash join: one statement for a hundred people
costs about what one for a single person does. The find statement groups the matching rows by
their key values (and partition), so a receipt can say how many rows were each request's
(attribute) and the delete can name exactly the partitions that hold them (partition-aware DML:
BigQuery then rewrites only those partitions).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, Final

from shared.privacy.subjects import Identifier
from shared.schema import IDENTIFIER_TYPES, SubjectKey, TableSpec

# Array parameter of each key type's values.
PARAMS: Final = {
    "visitor": "visitors",
    "member": "members",
    "email": "emails",
    "phone": "phones",
    "customer": "customers",
    "node": "nodes",
}
KEY_PREFIX: Final = "privacy_key_"  # extra columns an export statement adds, dropped before writing
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_VALUE = re.compile(r"[a-z0-9_]+")  # type-column values written into the SQL (from tables.json)
# An identifier in free text: not inside a longer run of letters and digits.
_EDGE_BEFORE, _EDGE_AFTER = r"(^|[^0-9A-Za-z])", r"($|[^0-9A-Za-z])"
_PHONE_SEPARATOR = r"[ .()-]?"
EARLIEST: Final = date(1900, 1, 1)  # a partition filter that keeps every partition (BigQuery requires one)
# How long BigQuery may keep streamed rows out of reach of DML: 30 minutes usually, up to 90.
STREAMING_BUFFER: Final = timedelta(minutes=90)
# The sweep of late rows (sweep_sql) reads the partitions of events dated up to this long before
# their arrival (a tracker's queued batch); older late events cost a wider scan on every run, and
# refinement drops their identifiers anyway, so the next erasure takes them.
LATE_EVENT_DAYS: Final = timedelta(days=1)
# What each sweep looks back over; the job runs every 30 minutes, so runs overlap.
SWEEP_WINDOW: Final = timedelta(hours=3)


@dataclass(frozen=True)
class Keys:
    """What to look for on one site: identifiers (expanded through identity resolution) and customers."""

    site_id: str
    identifiers: frozenset[Identifier]
    customers: frozenset[str] = frozenset()

    def values(self, key_type: str) -> list[str]:
        if key_type == "customer":
            return sorted(self.customers)
        if key_type == "node":
            return sorted(i.node for i in self.identifiers)
        return sorted(i.value for i in self.identifiers if i.type == key_type)

    @cached_property
    def text_pattern(self) -> str | None:
        """A regular expression (RE2 and Python alike) that finds any of the identifiers in free text."""
        return text_pattern(self.identifiers)

    @cached_property
    def _compiled(self) -> re.Pattern[str] | None:
        return re.compile(self.text_pattern) if self.text_pattern else None

    def names(self, key: SubjectKey, values: Sequence[Any]) -> bool:
        """Whether a row whose values for this key are `values` (see Plan.group) is about these keys."""
        if key.type == "text":
            return self._compiled is not None and isinstance(values[0], str) and bool(self._compiled.search(values[0]))
        if key.type == "customer":
            return values[0] in self.customers
        return identifier_of(key, values) in self.identifiers

    def union(self, other: Keys) -> Keys:
        assert other.site_id == self.site_id
        return Keys(self.site_id, self.identifiers | other.identifiers, self.customers | other.customers)


@dataclass(frozen=True)
class Dml:
    """How deletes are written for the engine at hand.

    settled_before: BigQuery refuses DML over rows still in the streaming buffer (rows streamed in
    the last ~30-90 minutes); deletes of streamed tables then skip rows that arrived after this
    time, and verification finds them, so the request stays pending and is retried.
    """

    settled_before: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """The statements of one table for one batch (the union of its requests' keys)."""

    spec: TableSpec
    where: str
    params: dict[str, Any]
    group: tuple[tuple[SubjectKey, tuple[str, ...]], ...]  # each key with its value expressions
    dml: Dml = field(default_factory=Dml)

    @property
    def table(self) -> str:
        return self.spec.name

    def _expressions(self) -> list[str]:
        return [expression for _, expressions in self.group for expression in expressions]

    def find_sql(self) -> str:
        """Rows about the batch, counted per key values (and partition): for receipts and deletes."""
        columns = [f"{e} as k{n}" for n, e in enumerate(self._expressions())]
        if self.spec.partition_field:
            columns.append(f"{self.spec.partition_field} as partition_value")
        ordinals = ", ".join(str(n + 1) for n in range(len(columns)))
        return (
            f"select {', '.join(columns)}, count(*) as row_count\n"
            f"from {self.table}\nwhere {self._always()}{self.where}\ngroup by {ordinals}"
        )

    def delete_sql(self, partitions: Collection[date] = ()) -> tuple[str, dict[str, Any]]:
        """Delete the batch's rows; with partitions, only in those (the ones find_sql saw them in)."""
        where, params = self.where, dict(self.params)
        if self.spec.partition_field and partitions:
            column = self.spec.partition_field
            where = (
                f"{column} between @partition_first and @partition_last\n"
                f"    and {column} in unnest(@partitions)\n    and {where}"
            )
            params |= {"partitions": sorted(partitions), "partition_first": min(partitions)}
            params["partition_last"] = max(partitions)
        elif self.spec.require_partition_filter:
            where = self._always() + where
        if self.dml.settled_before is not None and self.spec.arrival_column:
            where = f"{self.spec.arrival_column} < @settled_before\n    and {where}"
            params["settled_before"] = self.dml.settled_before
        return f"delete from {self.table}\nwhere {where}", params

    def export_sql(self) -> str:
        """Every column of the batch's rows, with the key values (KEY_PREFIX) to tell whose they are."""
        keys = ", ".join(f"{e} as {KEY_PREFIX}{n}" for n, e in enumerate(self._expressions()))
        return f"select t.*, {keys}\nfrom {self.table} as t\nwhere {self._always()}{self.where}"

    def _always(self) -> str:
        """The partition filter a table requiring one gets when every partition is wanted."""
        if self.spec.require_partition_filter and self.spec.partition_field:
            return f"{self.spec.partition_field} >= date '{EARLIEST.isoformat()}'\n    and "
        return ""

    def key_values(self, row: Mapping[str, Any], prefix: str = "k") -> list[tuple[SubjectKey, list[Any]]]:
        """Each key with its values in a row of find_sql (prefix k) or export_sql (KEY_PREFIX)."""
        out, position = [], 0
        for key, expressions in self.group:
            out.append((key, [row[f"{prefix}{position + n}"] for n in range(len(expressions))]))
            position += len(expressions)
        return out

    def belongs(self, row: Mapping[str, Any], keys: Keys, prefix: str = "k") -> bool:
        """Whether a found or exported row is about `keys` (one request's subject)."""
        return any(keys.names(key, values) for key, values in self.key_values(row, prefix))


def plan(spec: TableSpec, keys: Keys, dml: Dml | None = None) -> Plan | None:
    """The statements of a table for a batch; None when the batch has nothing its keys could match."""
    for name in (spec.dataset, spec.table, *(f.name for f in spec.fields)):
        if not _NAME.fullmatch(name):
            raise ValueError(f"{spec.name}: {name!r} is not a plain SQL name")
    if spec.subject_keys and "site_id" not in spec.column_names:
        raise ValueError(f"{spec.name} declares subject keys but has no site_id column")
    params: dict[str, Any] = {"site_id": keys.site_id}
    conditions: list[str] = []
    group: list[tuple[SubjectKey, tuple[str, ...]]] = []
    for key in spec.subject_keys:
        condition = _condition(key, keys, params)
        if condition is not None:
            conditions.append(condition)
            group.append((key, _expressions(key)))
    if not conditions:
        return None
    texts_only = all(key.type == "text" for key, _ in group)
    site = "(site_id = @site_id or site_id is null)" if texts_only else "site_id = @site_id"
    where = f"{site}\n    and (\n        " + "\n        or ".join(conditions) + "\n    )"
    return Plan(spec, where, params, tuple(group), dml or Dml())


def sweep_sql(
    spec: TableSpec, arrived_since: datetime, salt: str, dml: Dml | None = None
) -> tuple[str, dict[str, Any]] | None:
    """Delete the rows of a streamed table that arrived since `arrived_since` and name an identifier
    on the suppression list: a late beacon from an erased cookie, a replayed dead letter. Rows are
    matched by hashing their identifiers with the salt, in the partitions of the last days
    (LATE_EVENT_DAYS before arrived_since); free text cannot be hashed and is left to the next
    erasure. None for a table that is not streamed (nothing arrives there on its own)."""
    if not spec.arrival_column or not _NAME.fullmatch(spec.arrival_column):
        return None
    conditions = []
    for key in spec.subject_keys:
        if key.type in ("text", "customer", "node"):
            continue
        value = f"json_value({key.column}, '{key.json_path}')" if key.json_path else key.column
        for id_type in key.identifier_types():
            hashed = f"to_hex(sha256(concat(@privacy_salt, site_id, '|{id_type}|', {value})))"
            condition = f"{hashed} in (select id_hash from privacy.suppressions)"
            if key.type_column is not None:
                labels = sorted(label for label, mapped in _type_map(key).items() if mapped == id_type)
                if not all(_VALUE.fullmatch(label) for label in labels):
                    continue
                listed = ", ".join(f"'{label}'" for label in labels)
                condition = f"({key.type_column} in ({listed}) and {condition})"
            conditions.append(condition)
    if not conditions:
        return None
    where = [f"{spec.arrival_column} >= @arrived_since"]
    params: dict[str, Any] = {"arrived_since": arrived_since, "privacy_salt": salt}
    if spec.partition_field:
        where.append(f"{spec.partition_field} >= @partition_since")
        params["partition_since"] = arrived_since.date() - LATE_EVENT_DAYS
    if dml is not None and dml.settled_before is not None:
        where.append(f"{spec.arrival_column} < @settled_before")
        params["settled_before"] = dml.settled_before
    where.append("(\n        " + "\n        or ".join(conditions) + "\n    )")
    return f"delete from {spec.name}\nwhere " + "\n    and ".join(where), params


def _condition(key: SubjectKey, keys: Keys, params: dict[str, Any]) -> str | None:
    """The SQL of one key over the batch's values, adding its parameters; None when it has none."""
    if key.type == "text":
        if keys.text_pattern is None:
            return None
        params["text_pattern"] = keys.text_pattern
        return f"regexp_contains({key.column}, @text_pattern)"
    if key.type_column is not None:
        parts = []
        for id_type in key.identifier_types():
            labels = sorted(label for label, mapped in _type_map(key).items() if mapped == id_type)
            if not keys.values(id_type) or not all(_VALUE.fullmatch(label) for label in labels):
                continue
            listed = ", ".join(f"'{label}'" for label in labels)
            parts.append(f"({key.type_column} in ({listed}) and {_in(key.column, id_type, keys, params)})")
        return " or ".join(parts) if parts else None
    assert key.type is not None
    if not keys.values(key.type):
        return None
    column = f"json_value({key.column}, '{key.json_path}')" if key.json_path else key.column
    return _in(column, key.type, keys, params)


def _in(expression: str, key_type: str, keys: Keys, params: dict[str, Any]) -> str:
    name = PARAMS[key_type]
    params[name] = keys.values(key_type)
    return f"{expression} in (select v from unnest(@{name}) as v)"


def _expressions(key: SubjectKey) -> tuple[str, ...]:
    if key.type_column is not None:
        return (key.type_column, key.column)
    if key.json_path is not None:
        return (f"json_value({key.column}, '{key.json_path}')",)
    return (key.column,)


def _type_map(key: SubjectKey) -> dict[str, str]:
    return dict(key.types) if key.types else {t: t for t in IDENTIFIER_TYPES}


def identifier_of(key: SubjectKey, values: Sequence[Any]) -> Identifier | None:
    """The identifier a row holds in a key that holds identifiers (not text, not customer ids)."""
    if key.type_column is not None:
        id_type = _type_map(key).get(values[0]) if isinstance(values[0], str) else None
        value = values[1]
    elif key.type == "node":
        id_type, _, value = values[0].partition(":") if isinstance(values[0], str) else ("", "", None)
    else:
        id_type, value = key.type, values[0]
    return Identifier(id_type, value) if id_type in IDENTIFIER_TYPES and isinstance(value, str) and value else None


class Owners:
    """Which requests of a batch a found or exported row is about: a dict lookup per key value, so
    attributing a batch's rows costs what scanning them does, whatever the number of requests."""

    def __init__(self, subjects: Mapping[str, Keys]) -> None:
        self._subjects = subjects
        self._identifiers: dict[Identifier, set[str]] = {}
        self._customers: dict[str, set[str]] = {}
        for request_id, keys in subjects.items():
            for identifier in keys.identifiers:
                self._identifiers.setdefault(identifier, set()).add(request_id)
            for customer in keys.customers:
                self._customers.setdefault(customer, set()).add(request_id)

    def of(self, plan: Plan, row: Mapping[str, Any], prefix: str = "k") -> set[str]:
        owners: set[str] = set()
        for key, values in plan.key_values(row, prefix):
            if key.type == "text":
                owners |= {request_id for request_id, keys in self._subjects.items() if keys.names(key, values)}
            elif key.type == "customer":
                owners |= self._customers.get(values[0], set())
            else:
                identifier = identifier_of(key, values)
                owners |= self._identifiers.get(identifier, set()) if identifier else set()
        return owners


# ---------------------------------------------------------------- free text


def text_pattern(identifiers: Iterable[Identifier]) -> str | None:
    """One pattern finding any identifier as a whole token: e-mails in any case, phones in any common
    spelling (+82 10-1234-5678, 010.1234.5678, 01012345678), ids exactly. Written in the syntax RE2
    (BigQuery, DuckDB) and Python share."""
    alternatives = sorted({_alternative(i) for i in identifiers})
    if not alternatives:
        return None
    return f"{_EDGE_BEFORE}({'|'.join(alternatives)}){_EDGE_AFTER}"


def _alternative(identifier: Identifier) -> str:
    if identifier.type == "email":
        return f"(?i:{_literal(identifier.value)})"
    if identifier.type == "phone":
        digits = identifier.value.lstrip("+")
        if digits.startswith("82"):  # Korean numbers are also written nationally, with a leading 0
            return rf"(\+?82{_PHONE_SEPARATOR}|0)" + _PHONE_SEPARATOR.join(digits[2:])
        return r"\+?" + _PHONE_SEPARATOR.join(digits)
    return _literal(identifier.value)


def _literal(text: str) -> str:
    """text as a regular expression matching exactly it, in the subset RE2 and Python agree on."""
    out = []
    for char in text:
        if char.isascii() and not char.isalnum():
            out.append("\\" + char if char.isprintable() and char != " " else f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)

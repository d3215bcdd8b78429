"""In-memory fakes of our own ports, for unit tests of services."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.ports import TransientError


@dataclass
class FakeBus:
    """Records published messages; can be told to fail like an unreachable Pub/Sub."""

    fail: bool = False
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        if self.fail:
            raise TransientError("fake bus is down")
        self.published.append((topic, data, dict(attributes)))
        return str(len(self.published))

    def rows(self, table: str | None = None) -> list[dict[str, Any]]:
        """Rows every published message stands for (as the loader completes them), optionally of one table."""
        from shared.beacons import message_rows

        return [
            row
            for _, data, _ in self.published
            for t, row in message_rows(json.loads(data))
            if table is None or t == table
        ]


@dataclass
class FakeDocumentStore:
    """Firestore as nested dicts. Filters follow Firestore's rules where tests meet them: a missing
    or null field never matches, `in` needs a list, values of another type never match a range,
    and dotted paths reach into maps."""

    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        found = self.docs.get(collection, {}).get(doc_id)
        return copy.deepcopy(found) if found is not None else None

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        stored = self.docs.setdefault(collection, {})
        current = stored.get(doc_id, {}) if merge else {}
        stored[doc_id] = {**current, **copy.deepcopy(dict(data))}

    def create(self, collection: str, doc_id: str, data: Mapping[str, Any]) -> bool:
        stored = self.docs.setdefault(collection, {})
        if doc_id in stored:
            return False
        stored[doc_id] = copy.deepcopy(dict(data))
        return True

    def list(self, collection: str, where: Any = ()) -> list[tuple[str, dict[str, Any]]]:
        return [
            (doc_id, copy.deepcopy(doc))
            for doc_id, doc in sorted(self.docs.get(collection, {}).items())
            if all(_matches(_field(doc, f), op, value) for f, op, value in where)
        ]

    def delete(self, collection: str, doc_id: str) -> None:
        self.docs.get(collection, {}).pop(doc_id, None)


_MISSING = object()


def _field(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _matches(actual: Any, op: str, value: Any) -> bool:
    if actual is _MISSING or actual is None:
        return False
    if op == "in":
        if not isinstance(value, list):
            raise ValueError("'in' needs a list")
        return any(type(actual) is type(v) and actual == v for v in value)
    if op in ("==", "!="):
        same = type(actual) is type(value) and actual == value
        return same if op == "==" else not same
    if type(actual) is not type(value) and not (isinstance(actual, int | float) and isinstance(value, int | float)):
        return False
    return bool({"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[op])


@dataclass
class FakeSecrets:
    """A SecretStore in memory: `values` by name; `down` fails like an unreachable Secret Manager.
    `asked` records each call, so a test sees whether a value was read or only looked for."""

    values: dict[str, str] = field(default_factory=dict)
    down: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str:
        from shared.ports.secrets import SecretMissing

        self.asked.append(("get", name))
        if self.down:
            raise TransientError("fake Secret Manager is down")
        if name not in self.values:
            raise SecretMissing(f"secret {name} not found")
        return self.values[name]

    def exists(self, name: str) -> bool:
        self.asked.append(("exists", name))
        if self.down:
            raise TransientError("fake Secret Manager is down")
        return name in self.values

"""In-memory fakes of our own ports, for unit tests of services."""

from __future__ import annotations

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
        """Rows of every published message, optionally only those for one table."""
        out = []
        for _, data, _ in self.published:
            for entry in json.loads(data)["rows"]:
                if table is None or entry["table"] == table:
                    out.append(entry["row"])
        return out


@dataclass
class FakeDocumentStore:
    """Firestore as nested dicts, with the same filter operators as the real adapter."""

    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        found = self.docs.get(collection, {}).get(doc_id)
        return json.loads(json.dumps(found, default=str)) if found is not None else None

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        current = self.docs.setdefault(collection, {}).get(doc_id, {}) if merge else {}
        self.docs[collection][doc_id] = {**current, **dict(data)}

    def list(self, collection: str, where: Any = ()) -> list[tuple[str, dict[str, Any]]]:
        ops = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
               "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
               "in": lambda a, b: a in b}
        out = []
        for doc_id, doc in sorted(self.docs.get(collection, {}).items()):
            if all(f in doc and ops[op](doc[f], value) for f, op, value in where):
                out.append((doc_id, dict(doc)))
        return out

    def delete(self, collection: str, doc_id: str) -> None:
        self.docs.get(collection, {}).pop(doc_id, None)

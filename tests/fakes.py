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

"""The receipt of a privacy request: what was found, erased or exported, and the proof none is left.

A request stays `pending` until verification (the find statements run again after the deletes)
shows zero rows left in every table; rows BigQuery still holds in its streaming buffer keep it
pending with the tables named in `waiting`, and the next run retries them. The receipt names no
identifier: counts, table names, times, and the identifiers' suppression hashes at most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.privacy.expansion import Expansion

PENDING, DONE, ERROR = "pending", "done", "error"


@dataclass
class TableCount:
    """Rows about the subject: found before, erased, and left after (exported, for an export)."""

    found: int = 0
    erased: int = 0
    remaining: int = 0


@dataclass
class Receipt:
    request_id: str
    kind: str
    started_at: datetime
    status: str = PENDING
    sites: list[str] = field(default_factory=list)
    identifiers: dict[str, int] = field(default_factory=dict)  # expanded identifiers per type, and customers
    tables: dict[str, TableCount] = field(default_factory=dict)  # every table checked, in order
    documents: dict[str, int] | None = None  # per collection; None when no document store was checked
    suppressed: int = 0
    audience_removals: int = 0
    waiting: list[str] = field(default_factory=list)  # tables whose rows were still being streamed
    export: dict[str, Any] | None = None  # the manifest's location and content
    verified_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, str] | None = None
    # What the request expanded to: never in document() or summary() (it names the person); a
    # pending request keeps it on its Firestore document for the retry.
    expansion: Expansion | None = field(default=None, repr=False)

    def count(self, table: str) -> TableCount:
        return self.tables.setdefault(table, TableCount())

    @property
    def left(self) -> int:
        return sum(t.remaining for t in self.tables.values())

    def document(self) -> dict[str, Any]:
        """The receipt as Firestore stores it on the request (JSON-compatible, datetimes kept)."""
        return {
            "status": self.status,
            "kind": self.kind,
            "started_at": self.started_at,
            "verified_at": self.verified_at,
            "finished_at": self.finished_at,
            "sites": list(self.sites),
            "identifiers": dict(self.identifiers),
            "tables": {name: vars(count).copy() for name, count in self.tables.items()},
            "documents": None if self.documents is None else dict(self.documents),
            "suppressed": self.suppressed,
            "audience_removals": self.audience_removals,
            "waiting": list(self.waiting),
            "rows_left": self.left,
            "export": self.export,
            "error": self.error,
        }

    def summary(self) -> str:
        """The receipt as the command line prints it: only tables with rows, the rest counted."""
        head = f"{self.kind} {self.request_id}: {self.status}"
        if self.error:
            return f"{head} ({self.error['field']}: {self.error['reason']})"
        ids = ", ".join(f"{n} {kind}" for kind, n in self.identifiers.items() if n) or "nothing"
        lines = [head, f"  sites: {', '.join(self.sites) or 'none'}; expanded to {ids}"]
        empty = 0
        for name, count in self.tables.items():
            if not (count.found or count.remaining):
                empty += 1
            elif self.kind == "export":
                lines.append(f"  {name:<34} {count.found:>9,} rows exported")
            else:
                lines.append(
                    f"  {name:<34} {count.found:>9,} found {count.erased:>9,} erased {count.remaining:>6,} left"
                )
        lines.append(f"  {empty} other tables: no rows about the subject")
        if self.documents is None:
            lines.append("  documents: not checked (no document store)")
        else:
            docs = ", ".join(f"{c} {n}" for c, n in self.documents.items()) or "none"
            lines.append(f"  documents {'exported' if self.kind == 'export' else 'erased'}: {docs}")
        if self.kind == "erase":
            lines.append(
                f"  suppressed identifiers: {self.suppressed}; audience removals requested: {self.audience_removals}"
            )
            verified = self.verified_at.isoformat() if self.verified_at else "not yet"
            lines.append(f"  verification: {self.left} rows left, verified {verified}")
        if self.waiting:
            lines.append(f"  waiting for BigQuery's streaming buffer: {', '.join(self.waiting)}")
        if self.export:
            lines.append(f"  manifest: {self.export['location']}")
        return "\n".join(lines)

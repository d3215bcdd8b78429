"""Ports: what the services need from the outside world, as Protocols.

Services take these as parameters; adapters in shared/adapters implement them; the composition root
(shared/bootstrap.py) picks the adapters from settings. Unit tests pass fakes from tests/fakes.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from shared.schema import TableSpec


class TransientError(RuntimeError):
    """A dependency is unavailable for now; the caller should retry (HTTP 503, Pub/Sub redelivery)."""


@dataclass(frozen=True)
class RowError:
    """A row the warehouse refused for its content (not for an outage): it goes to bad_rows."""

    index: int
    reason: str


@dataclass
class InsertResult:
    inserted: int = 0
    skipped_duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)


class Warehouse(Protocol):
    """The analytical store: BigQuery in production, DuckDB embedded locally.

    Table names are logical (`raw.page`); SQL is BigQuery Standard SQL with named `@params`.
    """

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create missing datasets and tables (idempotent)."""
        ...

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> InsertResult:
        """Append rows; a row whose id was already inserted is not inserted again.

        Rows use JSON-compatible values: ISO strings for TIMESTAMP and DATE, dicts for JSON
        columns, lists of dicts for repeated records. Raises TransientError on outages.
        """
        ...

    def insert_many(
        self, batches: Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str]]]
    ) -> dict[str, InsertResult]:
        """insert_rows for several tables at once (one transaction where the store has them)."""
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one BigQuery Standard SQL statement with named parameters; return the rows."""
        ...

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """query, with the result as one Arrow table: columnar reads of many rows, no dict per row."""
        ...

    def append_arrow(self, table: str, data: pa.Table) -> int:
        """Append an Arrow table's rows (columns by name, a subset of the table's) in one load; no dedup.

        For bulk results a job computed (e.g. a clustering of every customer); return the row count.
        """
        ...


class EventBus(Protocol):
    """Durable message transport: Pub/Sub (the emulator locally)."""

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish and wait for the broker's acknowledgement; return the message id.

        Raises TransientError when the broker did not acknowledge in time.
        """
        ...


class DocumentStore(Protocol):
    """Marketer-facing configuration and results: Firestore (the emulator locally).

    Collections used: segments, templates, segmentlets, discoveries, runs, and later destinations,
    publications, campaigns, consents. Documents are plain JSON-compatible dicts; timestamps are
    timezone-aware datetimes.
    """

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document, or None when it does not exist."""
        ...

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        """Create or overwrite (merge=True: update only the given top-level fields)."""
        ...

    def list(self, collection: str, where: Sequence[tuple[str, str, Any]] = ()) -> list[tuple[str, dict[str, Any]]]:
        """(id, document) pairs, filtered by (field, op, value) with ops ==, !=, <, <=, >, >=, in."""
        ...

    def delete(self, collection: str, doc_id: str) -> None:
        """Delete the document if it exists."""
        ...

"""The Warehouse port (BigQuery in production, DuckDB locally) and its BigQuery ML capability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from shared.schema import TableSpec


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

    def close(self) -> None:
        """Release connections and files (a command line's last step); a later call may open them again."""
        ...


@runtime_checkable
class MLWarehouse(Protocol):
    """A warehouse that can also train and apply BigQuery ML models (the BigQuery adapter).

    A separate port because only BigQuery has it: discovery checks for it instead of asking a
    warehouse whether it happens to carry the methods. Model statements name tables fully
    (table_id), since the SQL rewriter behind query cannot parse them.
    """

    def table_id(self, table: str) -> str:
        """The fully qualified name of a logical table (`raw.page` -> `project.{prefix}raw.page`)."""
        ...

    def run_qualified(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a statement whose table and model names are already qualified with table_id."""
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """As Warehouse.query."""
        ...

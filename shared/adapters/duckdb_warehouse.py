"""Warehouse on an embedded DuckDB file: the local default for the demo, tests and scripts.

DuckDB lets one process hold a database file for writing. Functions, the demo and scripts run in
separate processes over the same file, so each call opens the file under an exclusive lock and
closes it when done; an in-memory database keeps one connection instead.
"""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shared.ports import InsertResult, RowError, TransientError
from shared.schema import Field, TableSpec
from shared.sql import to_duckdb

_SCALAR_TYPES = {
    "STRING": "VARCHAR",
    "BYTES": "BLOB",
    "INTEGER": "BIGINT",
    "INT64": "BIGINT",
    "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "NUMERIC": "DECIMAL(38, 9)",
    "BIGNUMERIC": "DECIMAL(38, 9)",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATETIME": "TIMESTAMP",
    "DATE": "DATE",
    "TIME": "TIME",
    "JSON": "JSON",
}


def duckdb_type(field: Field) -> str:
    if field.type in ("RECORD", "STRUCT"):
        inner = ", ".join(f'"{f.name}" {duckdb_type(f)}' for f in field.fields)
        base = f"STRUCT({inner})"
    else:
        base = _SCALAR_TYPES[field.type]
    return f"{base}[]" if field.repeated else base


_TEXT_STAGED = {"NUMERIC", "BIGNUMERIC", "TIMESTAMP", "DATETIME", "DATE", "TIME"}


def _arrow_type(field: Field) -> pa.DataType:
    """Staging type: text for anything DuckDB casts better than Arrow (timestamps, decimals, JSON)."""
    if field.type in ("RECORD", "STRUCT"):
        base: pa.DataType = pa.struct([(f.name, _arrow_type(f)) for f in field.fields])
    elif field.type in ("INTEGER", "INT64"):
        base = pa.int64()
    elif field.type in ("FLOAT", "FLOAT64"):
        base = pa.float64()
    elif field.type in ("BOOLEAN", "BOOL"):
        base = pa.bool_()
    else:
        base = pa.string()
    return pa.list_(base) if field.repeated else base


def create_table_sql(spec: TableSpec) -> str:
    columns = [
        f'"{f.name}" {duckdb_type(f)}{" NOT NULL" if f.required else ""}' for f in spec.fields
    ]
    columns.append(f'PRIMARY KEY ("{spec.row_id}")')
    return f'CREATE TABLE IF NOT EXISTS "{spec.dataset}"."{spec.table}" ({", ".join(columns)})'


def _stage(field: Field, value: Any) -> Any:
    """Shape one JSON-compatible value for its Arrow staging type; DuckDB does the final cast."""
    if value is None:
        return None
    if field.repeated:
        if not isinstance(value, list):
            raise TypeError(f"{field.name}: expected a list, got {type(value).__name__}")
        element = Field(field.name, field.type, "NULLABLE", field.fields)
        return [_stage(element, v) for v in value]
    if field.type in ("RECORD", "STRUCT"):
        if not isinstance(value, dict):
            raise TypeError(f"{field.name}: expected an object, got {type(value).__name__}")
        return {f.name: _stage(f, value.get(f.name)) for f in field.fields}
    if field.type == "JSON":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if field.type in _TEXT_STAGED and not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, date, datetime)):
            raise TypeError(f"{field.name}: unexpected {type(value).__name__}")
        return value.isoformat() if isinstance(value, (date, datetime)) else str(value)
    return value


class DuckDBWarehouse:
    """Warehouse port over DuckDB; SQL arrives in BigQuery dialect and is transpiled."""

    def __init__(self, path: str | Path = ":memory:", specs: Mapping[str, TableSpec] | None = None):
        self.path = str(path)
        self._specs: dict[str, TableSpec] = dict(specs or {})
        self._memory = self.path == ":memory:"
        self._shared: duckdb.DuckDBPyConnection | None = None
        self._thread_lock = threading.RLock()
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held exclusively for the block (thread- and process-safe)."""
        with self._thread_lock:
            if self._memory:
                if self._shared is None:
                    self._shared = duckdb.connect(":memory:")
                yield self._shared
                return
            with open(self.path + ".lock", "a+") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    conn = duckdb.connect(self.path)
                except duckdb.IOException as exc:
                    raise TransientError(f"cannot open {self.path}: {exc}") from exc
                try:
                    yield conn
                finally:
                    conn.close()

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        with self.connection() as conn:
            for spec in specs:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{spec.dataset}"')
                conn.execute(create_table_sql(spec))
                self._specs[spec.name] = spec

    def _spec(self, table: str) -> TableSpec:
        if table not in self._specs:
            from shared.schema import table_spec

            self._specs[table] = table_spec(table)
        return self._specs[table]

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]
    ) -> InsertResult:
        spec = self._spec(table)
        if len(rows) != len(row_ids):
            raise ValueError("rows and row_ids differ in length")
        unique: dict[str, int] = {}
        for index, row_id in enumerate(row_ids):
            unique.setdefault(row_id, index)
        result = InsertResult(skipped_duplicates=len(rows) - len(unique))
        indexes = list(unique.values())
        with self.connection() as conn:
            try:
                result.inserted = self._insert(conn, spec, [rows[i] for i in indexes])
            except (duckdb.ConversionException, duckdb.ConstraintException, duckdb.InvalidInputException,
                    pa.ArrowException, TypeError, ValueError):
                # One bad value fails the whole statement: retry row by row to name the culprits.
                result.inserted = 0
                for index in indexes:
                    try:
                        result.inserted += self._insert(conn, spec, [rows[index]])
                    except (duckdb.Error, pa.ArrowException, TypeError, ValueError) as exc:
                        result.errors.append(RowError(index, f"{type(exc).__name__}: {exc}"[:500]))
        result.skipped_duplicates += len(indexes) - result.inserted - len(result.errors)
        return result

    @staticmethod
    def _insert(conn: duckdb.DuckDBPyConnection, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> int:
        schema = pa.schema([(f.name, _arrow_type(f)) for f in spec.fields])
        staged = [{f.name: _stage(f, row.get(f.name)) for f in spec.fields} for row in rows]
        batch = pa.Table.from_pylist(staged, schema=schema)
        conn.register("_staged_rows", batch)
        try:
            before = conn.execute(f'SELECT count(*) FROM "{spec.dataset}"."{spec.table}"').fetchone()
            conn.execute(
                f'INSERT OR IGNORE INTO "{spec.dataset}"."{spec.table}" BY NAME SELECT * FROM _staged_rows'
            )
            after = conn.execute(f'SELECT count(*) FROM "{spec.dataset}"."{spec.table}"').fetchone()
        finally:
            conn.unregister("_staged_rows")
        assert before is not None and after is not None
        return int(after[0]) - int(before[0])

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        statement = to_duckdb(sql)
        with self.connection() as conn:
            cursor = conn.execute(statement, dict(params or {}))
            if cursor.description is None:
                return []
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

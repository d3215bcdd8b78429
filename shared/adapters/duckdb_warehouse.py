"""Warehouse on an embedded DuckDB file: the local default for the demo, tests and scripts.

DuckDB lets one process hold a database file for writing. Functions, the demo and scripts run in
separate processes over the same file, so each call opens the file under an exclusive lock and
closes it when done; an in-memory database keeps one connection instead.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

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
    columns = [f'"{f.name}" {duckdb_type(f)}{" NOT NULL" if f.required else ""}' for f in spec.fields]
    if spec.enforce_row_id:
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


@dataclass
class _Pending:
    """One caller's rows waiting for the group writer, and what happened to them."""

    spec: TableSpec
    rows: Sequence[Mapping[str, Any]]
    row_ids: Sequence[str]
    done: bool = False
    result: InsertResult | None = None
    error: BaseException | None = None


class DuckDBWarehouse:
    """Warehouse port over DuckDB; SQL arrives in BigQuery dialect and is transpiled."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        specs: Mapping[str, TableSpec] | None = None,
        idle_release: float = 0.2,
        max_hold: float = 1.0,
        linger: float | None = None,
    ):
        self.path = str(path)
        self._specs: dict[str, TableSpec] = dict(specs or {})
        self._memory = self.path == ":memory:"
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock_file: IO[str] | None = None
        self._acquired_at = 0.0
        self._idle_release = idle_release
        self._max_hold = max_hold
        self._timer: threading.Timer | None = None
        self._thread_lock = threading.RLock()
        self._writer = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        # Only a file shared by a multi-threaded loader gains from waiting for company.
        self._linger = (0.0 if self._memory else 0.02) if linger is None else linger
        self._linger_target = 8
        self._callers = 0
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held exclusively for the block (thread- and process-safe).

        Opening the file costs ~80 ms, so a file connection is kept between calls and released
        after `idle_release` seconds without calls, or at the first call after `max_hold`
        seconds, so another process waiting for the file gets its turn.
        """
        with self._thread_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._conn is not None and not self._memory and time.monotonic() - self._acquired_at > self._max_hold:
                self._release()
            if self._conn is None:
                self._acquire()
            assert self._conn is not None
            try:
                yield self._conn
            finally:
                if not self._memory and self._conn is not None:
                    self._timer = threading.Timer(self._idle_release, self.close)
                    self._timer.daemon = True
                    self._timer.start()

    def _acquire(self) -> None:
        if self._memory:
            self._conn = duckdb.connect(":memory:")
            return
        lock_file = open(self.path + ".lock", "a+")  # noqa: SIM115 - held across calls, closed in _release
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            self._conn = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()
            raise TransientError(f"cannot open {self.path}: {exc}") from exc
        self._lock_file = lock_file
        self._acquired_at = time.monotonic()

    def _release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        """Release the file (and its lock) now; the next call opens it again."""
        with self._thread_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._memory:
                self._release()

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create missing tables, and add the columns a newer schema gives a table that exists.

        A warehouse file outlives upgrades (the demo's, a developer's): a NULLABLE or REPEATED column
        new in sql/schema is added, as Terraform adds it on BigQuery; a new REQUIRED column cannot
        be filled for the rows already there, so it stops with the table and column named.
        """
        with self.connection() as conn:
            for spec in specs:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{spec.dataset}"')
                conn.execute(create_table_sql(spec))
            present = set(
                conn.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns").fetchall()
            )
            for spec in specs:
                for f in spec.fields:
                    if (spec.dataset, spec.table, f.name) in present:
                        continue
                    if f.required:
                        raise ValueError(
                            f"{spec.name} exists without the REQUIRED column {f.name!r} of sql/schema: "
                            "add it with a value for the stored rows, or recreate the table"
                        )
                    conn.execute(f'ALTER TABLE "{spec.dataset}"."{spec.table}" ADD COLUMN "{f.name}" {duckdb_type(f)}')
                self._specs[spec.name] = spec

    def _spec(self, table: str) -> TableSpec:
        if table not in self._specs:
            from shared.schema import table_spec

            self._specs[table] = table_spec(table)
        return self._specs[table]

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> InsertResult:
        return self.insert_many({table: (rows, row_ids)})[table]

    def insert_many(
        self, batches: Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str]]]
    ) -> dict[str, InsertResult]:
        """Group commit: concurrent callers' rows are written together by whichever holds the writer.

        A DuckDB statement costs milliseconds whatever its size, and the loader runs one call per
        Pub/Sub message on several threads; writing everything queued in one transaction with one
        statement per table turns N statements into one while each caller still gets its own result.
        """
        pendings: dict[str, _Pending] = {}
        for table, (rows, row_ids) in batches.items():
            if len(rows) != len(row_ids):
                raise ValueError(f"{table}: rows and row_ids differ in length")
            pendings[table] = _Pending(self._spec(table), rows, row_ids)
        with self._queue_lock:
            self._queue.extend(pendings.values())
            self._callers += 1
        try:
            with self._writer:
                if not all(p.done for p in pendings.values()):
                    if self._linger and self._company():
                        time.sleep(self._linger)  # callers in flight queue behind us and share the statements
                    with self._queue_lock:
                        batch, self._queue = self._queue, []
                    self._write(batch)
        finally:
            with self._queue_lock:
                self._callers -= 1
        results: dict[str, InsertResult] = {}
        for table, pending in pendings.items():
            if pending.error is not None:
                raise pending.error
            assert pending.result is not None
            results[table] = pending.result
        return results

    def _company(self) -> bool:
        """Other callers are inside insert_rows but not yet queued: waiting briefly lets them join."""
        with self._queue_lock:
            waiting = len({id(p.rows) for p in self._queue})
            return waiting < self._callers and waiting < self._linger_target

    def _write(self, batch: list[_Pending]) -> None:
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.spec.name, []).append(item)
        try:
            with self.connection() as conn:
                try:  # the fast path: every table in one transaction, one statement each
                    conn.execute("BEGIN TRANSACTION")
                    for group in groups.values():
                        self._write_group(conn, group)
                    conn.execute("COMMIT")
                except (duckdb.Error, pa.ArrowException, TypeError, ValueError):
                    conn.execute("ROLLBACK")
                    for group in groups.values():  # find the culprits, one table and row at a time
                        try:
                            self._write_group(conn, group, row_by_row=True)
                        except Exception as exc:  # noqa: BLE001 - handed to each waiting caller
                            for item in group:
                                item.error = exc
        except Exception as exc:  # noqa: BLE001 - the file could not be opened: every caller fails
            for item in batch:
                item.error = item.error or exc
        finally:
            for item in batch:
                item.done = True

    def _write_group(self, conn: duckdb.DuckDBPyConnection, group: list[_Pending], row_by_row: bool = False) -> None:
        spec = group[0].spec
        first_seen: dict[str, tuple[int, int]] = {}  # row id -> (caller, row index): the first copy wins
        for caller, item in enumerate(group):
            item.result = InsertResult()
            for index, row_id in enumerate(item.row_ids):
                first_seen.setdefault(row_id, (caller, index))
        owners = list(first_seen.values())
        if not row_by_row:
            for row_id in self._insert(conn, spec, [group[c].rows[i] for c, i in owners]):
                result = group[first_seen[row_id][0]].result
                assert result is not None
                result.inserted += 1
        else:
            for caller, index in owners:
                result = group[caller].result
                assert result is not None
                try:
                    result.inserted += len(self._insert(conn, spec, [group[caller].rows[index]]))
                except (duckdb.Error, pa.ArrowException, TypeError, ValueError) as exc:
                    result.errors.append(RowError(index, f"{type(exc).__name__}: {exc}"[:500]))
        for item in group:
            assert item.result is not None
            item.result.skipped_duplicates = len(item.rows) - item.result.inserted - len(item.result.errors)

    @staticmethod
    def _insert(conn: duckdb.DuckDBPyConnection, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """Insert the rows whose id is new; return the ids actually inserted."""
        if not rows:
            return set()
        schema = pa.schema([(f.name, _arrow_type(f)) for f in spec.fields])
        staged = [{f.name: _stage(f, row.get(f.name)) for f in spec.fields} for row in rows]
        conn.register("_staged_rows", pa.Table.from_pylist(staged, schema=schema))
        table, key = f'"{spec.dataset}"."{spec.table}"', f'"{spec.row_id}"'
        if spec.enforce_row_id:
            statement = f"INSERT OR IGNORE INTO {table} BY NAME SELECT * FROM _staged_rows RETURNING {key}"
        else:  # no key to conflict on: skip the ids already stored ourselves
            statement = (
                f"INSERT INTO {table} BY NAME SELECT * FROM _staged_rows AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.{key} = s.{key}) RETURNING {key}"
            )
        try:
            inserted = conn.execute(statement).fetchall()
        finally:
            conn.unregister("_staged_rows")
        return {row[0] for row in inserted}

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        statement = to_duckdb(sql)
        with self.connection() as conn:
            cursor = conn.execute(statement, dict(params or {}))
            if cursor.description is None:
                return []
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        statement = to_duckdb(sql)
        with self.connection() as conn:
            table: pa.Table = conn.execute(statement, dict(params or {})).to_arrow_table()
            return table

    def append_arrow(self, table: str, data: pa.Table) -> int:
        spec = self._spec(table)
        names = ", ".join(f'"{name}"' for name in data.column_names)
        with self.connection() as conn:
            conn.register("_appended_rows", data)
            try:
                conn.execute(
                    f'INSERT INTO "{spec.dataset}"."{spec.table}" ({names}) SELECT {names} FROM _appended_rows'
                )
            finally:
                conn.unregister("_appended_rows")
        return int(data.num_rows)

"""Warehouse on an embedded DuckDB file: the local default for the demo, tests and scripts.

DuckDB lets one process hold a database file for writing. Functions, the demo and scripts run in
separate processes over the same file, so a process holds the file under an exclusive lock while its
calls keep coming and hands it over when idle or when another process announces that it waits (see
`DuckDBWarehouse.connection`); an in-memory database keeps one connection instead.

Raw tables are append-only here as on BigQuery streaming: their row ids deduplicate best effort (ids
this process wrote recently are skipped) and refinement deduplicates on them exactly. A keyed
`INSERT OR IGNORE … RETURNING` costs DuckDB a hash join per statement, about twice a plain append.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import IO, Any
from weakref import ref

import duckdb
import pyarrow as pa

from shared.adapters.duckdb_buffer import WriteBehind, castable
from shared.ports import InsertResult, RowError, TransientError
from shared.schema import Field, TableSpec
from shared.sql import to_duckdb

log = logging.getLogger(__name__)

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


@cache
def _staging_schema(spec: TableSpec) -> pa.Schema:
    return pa.schema([(f.name, _arrow_type(f)) for f in spec.fields])


def create_table_sql(spec: TableSpec) -> str:
    columns = [f'"{f.name}" {duckdb_type(f)}{" NOT NULL" if f.required else ""}' for f in spec.fields]
    if spec.enforce_row_id:  # schema.py: never for append-only tables
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


# Python's default is 5 ms. See short_gil_turns.
GIL_SWITCH_INTERVAL = 0.0001


def short_gil_turns() -> None:
    """Make threads hand the GIL over every 0.1 ms, for a process whose threads share DuckDB.

    An Arrow scan inside a DuckDB statement takes the GIL back many times; while another thread runs
    Python, each take waits out that thread's switch interval. Measured on this project's 2-core
    machine: a 27-column append ran 8.5 times a second beside one busy thread, 99 with 0.2 ms, and
    the loader's 8-thread bench went from ~95 to ~190 messages/s with 0.1 ms. Process-wide, so the
    composition root calls it for the embedded warehouse only; production (BigQuery) keeps the default.
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


class _RecentIds:
    """The row ids this process committed lately, per append-only table: BigQuery-like best-effort
    deduplication of redelivered messages without a keyed insert. Bounded, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: dict[str, OrderedDict[str, None]] = {}

    def seen(self, table: str, row_id: str) -> bool:
        ids = self._ids.get(table)
        return ids is not None and row_id in ids

    def add(self, table: str, row_ids: set[str]) -> None:
        ids = self._ids.setdefault(table, OrderedDict())
        for row_id in row_ids:
            ids[row_id] = None
        while len(ids) > self._capacity:
            ids.popitem(last=False)


# Errors that are about the rows, not the file or the machine.
_REFUSALS = (
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.InvalidInputException,
    duckdb.BinderException,
    pa.ArrowException,
)


class DuckDBWarehouse:
    """Warehouse port over DuckDB; SQL arrives in BigQuery dialect and is transpiled."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        specs: Mapping[str, TableSpec] | None = None,
        idle_release: float = 1.0,
        max_hold: float | None = None,
        linger: float | None = None,
        threads: int | None = None,
        recent_ids: int = 100_000,
        write_behind: bool = True,
    ):
        self.path = str(path)
        self._specs: dict[str, TableSpec] = dict(specs or {})
        self._memory = self.path == ":memory:"
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock_file: IO[str] | None = None
        self._want_file: IO[str] | None = None
        self._acquired_at = 0.0
        self._idle_release = idle_release
        self._max_hold = max_hold
        self._threads = threads
        self._last_call = 0.0
        self._reaper: threading.Thread | None = None
        self._thread_lock = threading.RLock()
        self._writer = threading.Lock()
        self._queue_lock = threading.Lock()
        self._arrived = threading.Condition(self._queue_lock)
        self._queued_callers = 0  # callers with rows in the queue
        self._expect = 1  # callers a writer waits for: how many were lately inside insert_many at once
        self._queue: list[_Pending] = []
        self._recent = _RecentIds(recent_ids)
        self._shapes: dict[str, tuple[bool, bool]] = {}  # see _stored_shape
        self._optimizer_off = False
        # Only a file shared by a multi-threaded loader gains from waiting for company.
        self._linger = (0.0 if self._memory else 0.01) if linger is None else linger
        self._linger_target = 8
        self._callers = 0
        # Append-only tables of a file go through a journal first (shared/adapters/duckdb_buffer.py).
        self._buffer = WriteBehind(Path(self.path + ".buffer")) if write_behind and not self._memory else None
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            atexit.register(_close_at_exit, ref(self))

    @contextmanager
    def connection(self, drain: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held exclusively for the block (thread- and process-safe), with every
        buffered row in its table (unless `drain` is off: the buffered write path itself).

        Opening the file costs ~80 ms and closing it a checkpoint, so a process keeps the file
        between calls: it hands it over at its next call once another process announces that it
        waits (a shared lock on `<file>.want`, taken before queueing for the file), after
        `max_hold` seconds if set, or after `idle_release` seconds without calls.
        """
        with self._thread_lock:
            if self._conn is not None and not self._memory and self._should_hand_over():
                self._release()
                self._let_waiters_in()
            if self._conn is None:
                self._acquire()
            assert self._conn is not None
            if drain and self._buffer is not None and self._buffer.rows:
                self._drain(self._conn)
            try:
                yield self._conn
            finally:
                self._last_call = time.monotonic()

    def _reap(self) -> None:
        """Release the file once no call came for `idle_release` seconds (one thread per holding)."""
        while True:
            time.sleep(self._idle_release / 4)
            with self._thread_lock:  # held by any call in progress: it waits for the call to end
                if self._conn is not None and time.monotonic() - self._last_call < self._idle_release:
                    continue
                self._release()
                self._reaper = None
                return

    def _want(self) -> IO[str]:
        if self._want_file is None:
            self._want_file = open(self.path + ".want", "a+")  # noqa: SIM115 - kept for the object's life
        return self._want_file

    def _should_hand_over(self) -> bool:
        if self._max_hold is not None and time.monotonic() - self._acquired_at > self._max_hold:
            return True
        try:  # an exclusive probe fails while any other process waits with its shared lock
            fcntl.flock(self._want(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._want(), fcntl.LOCK_UN)
        return False

    def _let_waiters_in(self) -> None:
        """Block until every process that waited has taken the file, so the one that just handed it
        over does not take it straight back."""
        fcntl.flock(self._want(), fcntl.LOCK_EX)
        fcntl.flock(self._want(), fcntl.LOCK_UN)

    def _acquire(self) -> None:
        config: dict[str, str | bool | int | float | list[str]] = {}
        if self._threads is not None:
            config["threads"] = self._threads
        if self._memory:
            self._conn = duckdb.connect(":memory:", config=config)
            return
        lock_file = open(self.path + ".lock", "a+")  # noqa: SIM115 - held across calls, closed in _release
        want = self._want()
        fcntl.flock(want, fcntl.LOCK_SH)  # announce ourselves: the holder hands over at its next call
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        finally:
            fcntl.flock(want, fcntl.LOCK_UN)
        try:
            self._conn = duckdb.connect(self.path, config=config)
        except duckdb.IOException as exc:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()
            raise TransientError(f"cannot open {self.path}: {exc}") from exc
        self._lock_file = lock_file
        self._acquired_at = self._last_call = time.monotonic()
        if self._buffer is not None:
            self._buffer.recover()
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="duckdb-idle-release", daemon=True)
            self._reaper.start()

    def _release(self) -> None:
        if self._buffer is not None:
            if self._conn is not None and self._buffer.rows:
                try:
                    self._drain(self._conn)
                except Exception:  # noqa: BLE001 - the journal stays for the next holder
                    log.exception("could not move buffered rows into %s; the next holder will", self.path)
            self._buffer.forget()
        self._optimizer_off = False  # a new connection starts with it on
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
            if not self._memory:
                self._release()

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create missing tables, and add the columns a newer schema gives a table that exists.

        A warehouse file outlives upgrades (the demo's, a developer's): a NULLABLE or REPEATED column
        new in sql/schema is added, as Terraform adds it on BigQuery; a new REQUIRED column cannot
        be filled for the rows already there, so it stops with the table and column named.
        """
        self._shapes.clear()
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
        with self._arrived:
            self._queue.extend(pendings.values())
            self._queued_callers += 1
            self._callers += 1
            self._expect = min(max(self._expect, self._callers), self._linger_target)
            self._arrived.notify_all()
        try:
            with self._writer:
                if not all(p.done for p in pendings.values()):
                    self._write(self._gather())
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

    def _gather(self) -> list[_Pending]:
        """Take the queue, first waiting up to `linger` for as many callers as were lately seen at once.

        Pub/Sub pushes a few messages at a time (the emulator two per subscription): the writer that
        waits a few milliseconds for the next push shares one transaction and one statement per table
        with it, and their acknowledgements go out together, so the next pushes arrive together too.
        A wait that ends short lowers the expectation, so a single stream pays it once.
        """
        deadline = time.monotonic() + self._linger
        with self._arrived:
            while self._queued_callers < self._expect and (remaining := deadline - time.monotonic()) > 0:
                self._arrived.wait(remaining)
            self._expect = max(1, self._queued_callers)
            batch, self._queue, self._queued_callers = self._queue, [], 0
        return batch

    def _write(self, batch: list[_Pending]) -> None:
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.spec.name, []).append(item)
        try:
            with self.connection(drain=False) as conn:
                try:
                    try:  # the fast path: every table in one transaction, one statement each
                        conn.execute("BEGIN TRANSACTION")
                        journal: list[tuple[str, pa.Table]] = []  # the rows to buffer, not insert
                        written = [
                            (group[0].spec, self._write_group(conn, group, journal=journal))
                            for group in groups.values()
                        ]
                        if journal:
                            assert self._buffer is not None
                            self._buffer.append(journal, time.monotonic())
                        conn.execute("COMMIT")
                        for spec, row_ids in written:  # remembered once durable: a rollback forgets nothing
                            self._remember(spec, row_ids)
                        if self._buffer is not None and self._buffer.due(time.monotonic()):
                            self._drain_quietly(conn)
                    except (duckdb.Error, pa.ArrowException, TypeError, ValueError):
                        conn.execute("ROLLBACK")
                        for group in groups.values():  # find the culprits, one table and row at a time
                            try:
                                self._write_group(conn, group, row_by_row=True)
                            except Exception as exc:  # noqa: BLE001 - handed to each waiting caller
                                for item in group:
                                    item.error = exc
                finally:
                    self._set_optimizer(conn, enabled=True)  # queries on this connection need it
        except Exception as exc:  # noqa: BLE001 - the file could not be opened: every caller fails
            for item in batch:
                item.error = item.error or exc
        finally:
            for item in batch:
                item.done = True

    def _write_group(
        self,
        conn: duckdb.DuckDBPyConnection,
        group: list[_Pending],
        row_by_row: bool = False,
        journal: list[tuple[str, pa.Table]] | None = None,
    ) -> set[str]:
        """Insert a table's queued rows, each id once, or stage them for the `journal`; return their
        ids (row by row: each statement commits on its own, so its ids are remembered at once)."""
        spec = group[0].spec
        first_seen: dict[str, tuple[int, int]] = {}  # row id -> (caller, row index): the first copy wins
        for caller, item in enumerate(group):
            item.result = InsertResult()
            for index, row_id in enumerate(item.row_ids):
                if not (spec.append_only and self._recent.seen(spec.name, row_id)):
                    first_seen.setdefault(row_id, (caller, index))
        owners = list(first_seen.values())
        inserted: set[str] = set()
        if not row_by_row:
            inserted = self._insert(conn, spec, [group[c].rows[i] for c, i in owners], journal)
            for row_id in inserted:
                result = group[first_seen[row_id][0]].result
                assert result is not None
                result.inserted += 1
        else:
            for caller, index in owners:
                result = group[caller].result
                assert result is not None
                try:
                    ids = self._insert(conn, spec, [group[caller].rows[index]])
                except (duckdb.Error, pa.ArrowException, TypeError, ValueError) as exc:
                    result.errors.append(RowError(index, f"{type(exc).__name__}: {exc}"[:500]))
                    continue
                result.inserted += len(ids)
                self._remember(spec, ids)
        for item in group:
            assert item.result is not None
            item.result.skipped_duplicates = len(item.rows) - item.result.inserted - len(item.result.errors)
        return inserted

    def _remember(self, spec: TableSpec, row_ids: set[str]) -> None:
        if spec.append_only and row_ids:
            self._recent.add(spec.name, row_ids)

    def _set_optimizer(self, conn: duckdb.DuckDBPyConnection, enabled: bool) -> None:
        """Switch the connection's optimizer for plain appends; _write switches it back on."""
        if enabled == self._optimizer_off:
            conn.execute("PRAGMA enable_optimizer" if enabled else "PRAGMA disable_optimizer")
            self._optimizer_off = not enabled

    def _stored_shape(self, conn: duckdb.DuckDBPyConnection, spec: TableSpec) -> tuple[bool, bool]:
        """(columns in the spec's order, has a primary key) of the stored table. A file made before a
        table became append-only still has its key; one upgraded by ensure_tables may differ in order."""
        if spec.name not in self._shapes:
            params = {"schema": spec.dataset, "table": spec.table}
            columns = conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $schema AND table_name = $table ORDER BY ordinal_position",
                params,
            ).fetchall()
            keys = conn.execute(
                "SELECT count(*) FROM duckdb_constraints() "
                "WHERE schema_name = $schema AND table_name = $table AND constraint_type = 'PRIMARY KEY'",
                params,
            ).fetchall()
            self._shapes[spec.name] = (tuple(name for (name,) in columns) == spec.column_names, bool(keys[0][0]))
        return self._shapes[spec.name]

    def _insert(
        self,
        conn: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        rows: Sequence[Mapping[str, Any]],
        journal: list[tuple[str, pa.Table]] | None = None,
    ) -> set[str]:
        """Insert the rows whose id is new (append-only tables: every row given), or add them to the
        `journal` when the table is buffered and every value will cast; return their ids."""
        if not rows:
            return set()
        schema = _staging_schema(spec)
        columns = [
            pa.array([_stage(f, row.get(f.name)) for row in rows], type=t)
            for f, t in zip(spec.fields, schema.types, strict=True)
        ]
        staged = pa.Table.from_arrays(columns, schema=schema)  # column by column: ~40 % less than from_pylist
        if journal is not None and self._buffer is not None and self._appendable(conn, spec) and castable(spec, staged):
            journal.append((spec.name, staged))
            return {str(row[spec.row_id]) for row in rows}
        return self._insert_staged(conn, spec, staged)

    def _appendable(self, conn: duckdb.DuckDBPyConnection, spec: TableSpec) -> bool:
        """An append-only table stored unkeyed with the spec's columns in order: a plain append."""
        if not spec.append_only:
            return False
        in_order, keyed = self._stored_shape(conn, spec)
        return in_order and not keyed

    def _insert_staged(self, conn: duckdb.DuckDBPyConnection, spec: TableSpec, staged: pa.Table) -> set[str]:
        ids = {str(value) for value in staged.column(spec.row_id).to_pylist()}
        table, key = f'"{spec.dataset}"."{spec.table}"', f'"{spec.row_id}"'
        keyed = self._stored_shape(conn, spec)[1] if spec.append_only else spec.enforce_row_id
        if self._appendable(conn, spec):
            # A relation append binds no statement by name, and the optimizer has nothing to do for
            # it: about 2 ms instead of 4-5 ms for a keyed insert by name on this machine.
            self._set_optimizer(conn, enabled=False)
            conn.from_arrow(staged).insert_into(f"{spec.dataset}.{spec.table}")
            return ids
        self._set_optimizer(conn, enabled=True)
        conn.register("_staged_rows", staged)
        try:
            if spec.append_only and not keyed:
                conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _staged_rows")
                return ids
            if keyed:
                statement = f"INSERT OR IGNORE INTO {table} BY NAME SELECT * FROM _staged_rows RETURNING {key}"
            else:  # no key to conflict on: skip the ids already stored ourselves
                statement = (
                    f"INSERT INTO {table} BY NAME SELECT * FROM _staged_rows AS s "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.{key} = s.{key}) RETURNING {key}"
                )
            return {row[0] for row in conn.execute(statement).fetchall()}
        finally:
            conn.unregister("_staged_rows")

    def _drain(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Move the buffered rows into their tables: one statement per table, one transaction.

        Should a table refuse them all the same (they were checked when buffered), each batch and then
        each row is tried on its own and the refused rows go to the quarantine file; an error that
        is not about the rows (the disk) leaves the journal for the next attempt.
        """
        buffer = self._buffer
        assert buffer is not None
        try:
            try:
                conn.execute("BEGIN TRANSACTION")
                for name, batches in buffer.batches.items():
                    self._insert_staged(conn, self._spec(name), pa.concat_tables(batches))
                conn.execute("COMMIT")
            except _REFUSALS:
                conn.execute("ROLLBACK")
                for name, batches in buffer.batches.items():
                    for batch in batches:
                        self._salvage(conn, self._spec(name), batch)
        finally:
            self._set_optimizer(conn, enabled=True)
        buffer.clear()

    def _salvage(self, conn: duckdb.DuckDBPyConnection, spec: TableSpec, batch: pa.Table) -> None:
        """Insert a refused batch row by row, quarantining the rows the table refuses."""
        for start in range(batch.num_rows):
            piece = batch.slice(start, 1)
            try:
                self._insert_staged(conn, spec, piece)
            except _REFUSALS as exc:
                assert self._buffer is not None
                self._buffer.reject(spec.name, piece.to_pylist(), f"{type(exc).__name__}: {exc}"[:500])

    def _drain_quietly(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Drain from the write path: the callers' rows are durable already, so a failure is logged
        and the journal kept, not reported to them."""
        try:
            self._drain(conn)
        except Exception:  # noqa: BLE001 - the journal stays; the next read or release drains it
            log.exception("could not move buffered rows into %s yet", self.path)

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


def remove_database(path: str | Path) -> None:
    """Delete a closed warehouse file and every file kept beside it: DuckDB's WAL, our lock and
    hand-over files, the write-behind journal and its quarantine."""
    for suffix in ("", ".wal", ".lock", ".want", ".buffer", ".buffer.rejected.ndjson"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _close_at_exit(warehouse: ref[DuckDBWarehouse]) -> None:
    """Move buffered rows into the file when the process ends normally; a killed one leaves its
    journal, which the next process to open the file recovers."""
    held = warehouse()
    if held is not None:
        held.close()

"""Warehouse on BigQuery: the production adapter.

SQL files name tables logically (`raw.page`); this adapter qualifies them with the project and the
environment's dataset prefix in the parsed syntax tree, so one SQL file serves every environment
and the DuckDB adapter alike. Values travel only as typed query parameters. Streaming inserts carry
the row id as insertId (BigQuery's best-effort dedupe; refinement deduplicates on event_id for the
rest). Every call has a bounded retry: the client's defaults retry for 10 minutes (40 for query
jobs), longer than a Cloud Function lives.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import requests.exceptions
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import bigquery
from google.cloud.bigquery.query import ArrayQueryParameter, ScalarQueryParameter
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY
from sqlglot import exp

from shared.ports import InsertResult, RowError, RowsStillStreaming, TransientError
from shared.schema import Field, TableSpec
from shared.sql import parse_statement

# insertAll limits are 50,000 rows and 10 MB per request; Google recommends about 500 rows, and the
# 1 MB margin covers the request envelope the estimate below does not count exactly.
MAX_ROWS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 9 * 1024 * 1024
_ROW_ENVELOPE_BYTES = 32  # {"insertId": "", "json": },

# Error reasons (HTTP error bodies and job errors) that mean "try again later", not "bad request".
_TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "badGateway", "rateLimitExceeded", "quotaExceeded",
     "jobBackendError", "jobInternalError", "jobRateLimitExceeded"}
)  # fmt: skip
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    api_exceptions.RetryError,  # the bounded retry gave up on a retryable error
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.GatewayTimeout,
    api_exceptions.TooManyRequests,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)
_DATASET_PREFIX = re.compile(r"[A-Za-z0-9_]*")


_Pending = tuple[int, dict[str, Any], int]  # caller's row index, insertAll row, estimated bytes


class TableNotFoundError(LookupError):
    """The table does not exist in BigQuery: a deployment problem, so retrying will not help."""


def is_streaming_buffer_conflict(exc: BaseException) -> bool:
    """BigQuery's refusal of DML over rows still in the streaming buffer ("UPDATE or DELETE statement
    over table ... would affect rows in the streaming buffer, which is not supported")."""
    return isinstance(exc, api_exceptions.BadRequest) and "streaming buffer" in str(exc)


def is_transient(exc: BaseException) -> bool:
    """True for outages and rate limits (retry later), False for errors a retry would repeat."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        reasons = {e.get("reason") for e in exc.errors if isinstance(e, Mapping)}
        return bool(reasons & _TRANSIENT_REASONS)
    return False


# -- tables ----------------------------------------------------------------------------------------


def schema_field(field: Field) -> bigquery.SchemaField:
    """The BigQuery column for a spec field, nested RECORD fields included."""
    return bigquery.SchemaField(
        field.name,
        field.type,
        mode=field.mode,
        description=field.description,
        fields=tuple(schema_field(f) for f in field.fields),
    )


def table_resource(spec: TableSpec, project: str, dataset_prefix: str = "") -> bigquery.Table:
    """The full table definition (schema, partitioning, clustering) for create_table."""
    ref = bigquery.DatasetReference(project, dataset_prefix + spec.dataset).table(spec.table)
    table = bigquery.Table(ref, schema=[schema_field(f) for f in spec.fields])
    table.description = spec.description or None
    if spec.partition_field:
        days = spec.partition_expiration_days
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY,
            field=spec.partition_field,
            expiration_ms=days * 86_400_000 if days else None,
        )
        table.require_partition_filter = spec.require_partition_filter
    table.clustering_fields = list(spec.clustering) or None
    return table


# -- streaming inserts -----------------------------------------------------------------------------


def insert_value(field: Field, value: Any) -> Any:
    """One row value as insertAll expects it: JSON columns as JSON text, decimals and times as text.

    A str in a JSON column is taken as JSON text already, as the DuckDB adapter does.
    """
    if value is None:
        return None
    if field.repeated:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{field.name}: expected a list, got {type(value).__name__}")
        element = Field(field.name, field.type, "NULLABLE", field.fields)
        return [insert_value(element, v) for v in value]
    if field.type in ("RECORD", "STRUCT"):
        if not isinstance(value, Mapping):
            raise TypeError(f"{field.name}: expected an object, got {type(value).__name__}")
        return insert_row(field.fields, value)
    if field.type == "JSON":
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def insert_row(fields: Sequence[Field], row: Mapping[str, Any]) -> dict[str, Any]:
    """The insertAll `json` object for a row: only the spec's columns, as in the DuckDB adapter."""
    return {f.name: insert_value(f, row[f.name]) for f in fields if f.name in row}


def chunk_by_size(
    sizes: Sequence[int],
    max_rows: int = MAX_ROWS_PER_REQUEST,
    max_bytes: int = MAX_BYTES_PER_REQUEST,
) -> list[list[int]]:
    """Split positions 0..n-1 into consecutive requests within the row and byte limits."""
    chunks: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for position, size in enumerate(sizes):
        if current and (len(current) >= max_rows or current_bytes + size > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(position)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


def row_errors(
    insert_errors: Sequence[Mapping[str, Any]],
    indexes: Sequence[int],
) -> tuple[list[RowError], list[int]]:
    """Map an insertAll `insertErrors` list to RowErrors indexed into the caller's rows.

    `indexes[i]` is the caller's index of request row i. Returns (errors, stopped): rows refused
    only with reason `stopped` were valid but not inserted because another row was invalid, so
    they are sent again rather than reported.
    """
    errors: list[RowError] = []
    stopped: list[int] = []
    for entry in insert_errors:
        index = indexes[int(entry["index"])]
        details = [e for e in entry.get("errors", ()) if isinstance(e, Mapping)]
        if details and all(e.get("reason") == "stopped" for e in details):
            stopped.append(index)
            continue
        reason = "; ".join(
            f"{e.get('reason') or 'invalid'}: {e.get('message') or ''}".rstrip(": ")
            + (f" (at {e['location']})" if e.get("location") else "")
            for e in details
        )
        errors.append(RowError(index, (reason or "rejected by BigQuery")[:500]))
    return errors, stopped


# -- queries ---------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def qualify_tables(sql: str, project: str, dataset_prefix: str = "") -> str:
    """Rewrite logical `dataset.table` references to `project.{prefix}dataset.table`.

    Every two-part name is a logical one, except a name whose first part is an explicit alias or a
    CTE (a correlated path such as `JOIN c.items`) or a `region-*` qualifier; three-part names
    already name their project and are left alone.
    """
    tree = parse_statement(sql).copy()
    aliases = {n.alias for n in tree.find_all(exp.Table, exp.Subquery, exp.CTE, exp.Unnest)}
    for table in tree.find_all(exp.Table):
        dataset = table.db
        if not dataset or table.catalog or dataset in aliases or dataset.startswith("region-"):
            continue
        table.set("catalog", exp.to_identifier(project, quoted=True))
        table.set("db", exp.to_identifier(dataset_prefix + dataset))
    return tree.sql(dialect="bigquery")


@lru_cache(maxsize=512)
def declared_parameter_types(sql: str) -> dict[str, str]:
    """Types the SQL declares for parameters with `CAST(@name AS TYPE)` (or SAFE_CAST).

    BigQuery needs a type for every parameter, and a None value has none of its own: the cast
    gives it one, and keeps the statement portable to DuckDB.
    """
    found: dict[str, set[str]] = {}
    for cast in parse_statement(sql).find_all(exp.Cast):
        if isinstance(cast.this, exp.Parameter):
            found.setdefault(cast.this.name, set()).add(cast.to.sql(dialect="bigquery").upper())
    return {name: types.pop() for name, types in found.items() if len(types) == 1}


_PYTHON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "BOOL"),  # before int: bool is an int
    (int, "INT64"),
    (float, "FLOAT64"),
    (Decimal, "NUMERIC"),
    (datetime, "TIMESTAMP"),  # before date: datetime is a date; naive means UTC
    (date, "DATE"),
    (time, "TIME"),
    (str, "STRING"),
    (bytes, "BYTES"),
)


def scalar_type(value: Any) -> str:
    """The BigQuery type of a Python parameter value."""
    if isinstance(value, Decimal) and not _fits_numeric(value):
        return "BIGNUMERIC"
    for python_type, bigquery_type in _PYTHON_TYPES:
        if isinstance(value, python_type):
            return bigquery_type
    raise TypeError(
        f"no BigQuery parameter type for {type(value).__name__}; "
        "pass str, bool, int, float, Decimal, datetime, date, time, bytes or a list of one of them"
    )


def _fits_numeric(value: Decimal) -> bool:
    """NUMERIC holds 29 integer digits and 9 decimals; anything larger needs BIGNUMERIC."""
    if not value.is_finite():
        return False
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    return exponent >= -9 and len(digits) + exponent <= 29


def query_parameter(
    name: str,
    value: Any,
    declared: str | None = None,
) -> ScalarQueryParameter | ArrayQueryParameter:
    """A typed parameter inferred from the value, or from the SQL's cast when the value is None."""
    declared_element = declared[6:-1] if declared and declared.startswith("ARRAY<") else None
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise ValueError(f"parameter @{name}: BigQuery arrays cannot hold NULL")
        types = {scalar_type(v) for v in value}
        if types == {"INT64", "FLOAT64"}:
            types = {"FLOAT64"}
        if len(types) > 1:
            raise TypeError(f"parameter @{name}: array mixes {', '.join(sorted(types))}")
        element = types.pop() if types else declared_element
        if element is None:
            raise ValueError(
                f"parameter @{name} is an empty list, so BigQuery cannot tell its element type: "
                f"write CAST(@{name} AS ARRAY<type>) in the SQL"
            )
        return ArrayQueryParameter(name, element, list(value))
    if value is None:
        if declared is None:
            hint = f"write CAST(@{name} AS type) in the SQL"
            raise ValueError(f"parameter @{name} is None, so BigQuery cannot tell its type: {hint}")
        if declared_element is not None:
            return ArrayQueryParameter(name, declared_element, [])  # BigQuery: NULL array = []
        return ScalarQueryParameter(name, declared, None)
    return ScalarQueryParameter(name, scalar_type(value), value)


# -- the adapter -----------------------------------------------------------------------------------


def _default_client(project: str, location: str) -> bigquery.Client:
    """Application default credentials; anonymous when BIGQUERY_EMULATOR_HOST names bqemulator."""
    if os.environ.get("BIGQUERY_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return bigquery.Client(project, credentials=credentials, location=location)
    return bigquery.Client(project, location=location)


class BigQueryWarehouse:
    """Warehouse port over BigQuery; logical dataset `raw` lives in dataset `{prefix}raw`."""

    def __init__(
        self,
        project: str,
        dataset_prefix: str = "",
        location: str = "asia-northeast3",
        client: bigquery.Client | None = None,
        *,
        retry_deadline: float = 30.0,
        request_timeout: float = 30.0,
    ) -> None:
        if not _DATASET_PREFIX.fullmatch(dataset_prefix):
            raise ValueError(f"dataset prefix {dataset_prefix!r} may hold only letters, digits, _")
        self.project = project
        self.dataset_prefix = dataset_prefix
        self.location = location
        self._client = client
        self._retry: Retry = DEFAULT_RETRY.with_deadline(retry_deadline)
        self._job_retry: Retry = DEFAULT_JOB_RETRY.with_deadline(retry_deadline)
        self._timeout = request_timeout
        self._specs: dict[str, TableSpec] = {}

    @property
    def client(self) -> bigquery.Client:
        """Built on first use, so wiring the adapter needs no credentials."""
        if self._client is None:
            self._client = _default_client(self.project, self.location)
        return self._client

    def close(self) -> None:
        """Close the client's HTTP connections (a command line's last step); later calls reconnect."""
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]

    def table_id(self, table: str) -> str:
        """`raw.page` -> `project.{prefix}raw.page`."""
        dataset, _, name = table.partition(".")
        return f"{self.project}.{self.dataset_prefix}{dataset}.{name}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Outages become TransientError (the caller retries later), DML over rows still streaming
        RowsStillStreaming (the same statement succeeds later); other errors pass unchanged."""
        try:
            yield
        except TransientError:
            raise
        except Exception as exc:
            if is_streaming_buffer_conflict(exc):
                raise RowsStillStreaming(f"BigQuery refused {action}: {exc}") from exc
            if is_transient(exc):
                raise TransientError(f"BigQuery unavailable while {action}: {exc}") from exc
            raise

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        with self._errors("creating tables"):
            for dataset_id in sorted({self.dataset_prefix + s.dataset for s in specs}):
                dataset = bigquery.Dataset(bigquery.DatasetReference(self.project, dataset_id))
                dataset.location = self.location
                self.client.create_dataset(
                    dataset,
                    exists_ok=True,
                    retry=self._retry,
                    timeout=self._timeout,
                )
            for spec in specs:
                self.client.create_table(
                    table_resource(spec, self.project, self.dataset_prefix),
                    exists_ok=True,
                    retry=self._retry,
                    timeout=self._timeout,
                )
                self._specs[spec.name] = spec

    def _spec(self, table: str) -> TableSpec:
        if table not in self._specs:
            from shared.schema import table_spec

            self._specs[table] = table_spec(table)
        return self._specs[table]

    def insert_many(
        self, batches: Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str]]]
    ) -> dict[str, InsertResult]:
        """One streaming insert per table: BigQuery has no multi-table transaction to offer here,
        and insertIds make a retry of the whole set harmless."""
        return {table: self.insert_rows(table, rows, row_ids) for table, (rows, row_ids) in batches.items()}

    def insert_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        row_ids: Sequence[str],
    ) -> InsertResult:
        """Stream rows with their ids as insertIds; a row BigQuery refuses becomes a RowError.

        `inserted` counts rows BigQuery accepted: it cannot say which of them its best-effort
        dedupe dropped, so only duplicates within the batch count as skipped.
        """
        if len(rows) != len(row_ids):
            raise ValueError("rows and row_ids differ in length")
        spec = self._spec(table)
        first: dict[str, int] = {}
        for index, row_id in enumerate(row_ids):
            first.setdefault(row_id, index)
        result = InsertResult(skipped_duplicates=len(rows) - len(first))
        pending: list[_Pending] = []
        for index in first.values():
            try:
                entry = {"insertId": row_ids[index], "json": insert_row(spec.fields, rows[index])}
                size = len(json.dumps(entry)) + _ROW_ENVELOPE_BYTES
            except (TypeError, ValueError) as exc:
                result.errors.append(RowError(index, f"{type(exc).__name__}: {exc}"[:500]))
                continue
            if size > MAX_BYTES_PER_REQUEST:
                reason = f"row is {size} bytes, over the {MAX_BYTES_PER_REQUEST}-byte request limit"
                result.errors.append(RowError(index, reason))
                continue
            pending.append((index, entry, size))
        for chunk in chunk_by_size([size for _, _, size in pending]):
            batch = [pending[position] for position in chunk]
            errors, stopped = self._send(table, batch)
            if stopped:  # only without skip_invalid_rows; the same insertIds make this safe
                again = [item for item in batch if item[0] in stopped]
                retried_errors, still_stopped = self._send(table, again)
                errors += retried_errors
                errors += [RowError(i, "stopped: not inserted, twice") for i in still_stopped]
            result.inserted += len(batch) - len(errors)
            result.errors += errors
        result.errors.sort(key=lambda e: e.index)
        return result

    def _send(self, table: str, batch: Sequence[_Pending]) -> tuple[list[RowError], list[int]]:
        table_id = self.table_id(table)
        with self._errors(f"inserting into {table}"):
            try:
                response = self.client.insert_rows_json(
                    table_id,
                    [entry["json"] for _, entry, _ in batch],
                    row_ids=[entry["insertId"] for _, entry, _ in batch],
                    skip_invalid_rows=True,  # insert the valid rows, report the others
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except api_exceptions.NotFound as exc:
                raise TableNotFoundError(
                    f"BigQuery table {table_id} (logical {table}) does not exist; "
                    "create it with ensure_tables or Terraform"
                ) from exc
        return row_errors(response, [index for index, _, _ in batch])

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one statement; rows come back as dicts (JSON columns as text, like DuckDB)."""
        result: list[dict[str, Any]] = self.query_arrow(sql, params).to_pylist()
        return result

    def append_arrow(self, table: str, data: pa.Table) -> int:
        """One Parquet load job (append): a million rows is one request, not thousands of inserts."""
        self._spec(table)  # a known table, or a clear error
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        with self._errors(f"loading {table}"):
            # No size: bqemulator refuses multipart uploads; the resumable one works on both.
            job = self.client.load_table_from_file(
                buffer, self.table_id(table), job_config=config, location=self.location, timeout=self._timeout
            )
            job.result(timeout=max(self._timeout, 300.0))
        return int(data.num_rows)

    def run_qualified(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a statement whose table and model names the caller qualified with table_id().

        For BigQuery ML statements (ML.CENTROIDS, CREATE MODEL) that the SQL parser behind
        qualify_tables cannot rewrite; parameters are typed from their values only.
        """
        try:
            declared = declared_parameter_types(sql)  # CAST(@name AS type) types a None value
        except ValueError:  # a statement the parser does not know (ML.CENTROIDS): values only
            declared = {}
        return self._arrow(sql, declared, params, "running a BigQuery ML statement")

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run one statement; the rows as one Arrow table (JSON columns as text, like DuckDB)."""
        statement = qualify_tables(sql, self.project, self.dataset_prefix)
        return self._arrow(statement, declared_parameter_types(sql), params, "running a query")

    def _arrow(
        self, statement: str, declared: Mapping[str, str], params: Mapping[str, Any] | None, action: str
    ) -> pa.Table:
        parameters = [query_parameter(k, v, declared.get(k)) for k, v in (params or {}).items()]
        config = bigquery.QueryJobConfig(query_parameters=parameters)
        with self._errors(action):
            rows = self.client.query_and_wait(
                statement,
                job_config=config,
                location=self.location,
                api_timeout=self._timeout,
                retry=self._retry,
                job_retry=self._job_retry,
            )
            # REST only: the Storage Read API needs an extra package, and bqemulator cannot serve
            # query results through it.
            table: pa.Table = rows.to_arrow(create_bqstorage_client=False)
        return table

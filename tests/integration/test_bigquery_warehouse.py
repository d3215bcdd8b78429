"""BigQueryWarehouse through the real google-cloud-bigquery client against bqemulator.

One emulator per module (scripts/install-bqemu installs it into .venv-emu, and scripts/test runs
the installer first; a missing emulator fails with that hint), one dataset prefix per test,
datasets deleted afterwards.

What bqemulator cannot show, so tests/unit/test_bigquery_mapping.py checks only the requests the
adapter builds (contract tests), not BigQuery's reaction to them:
- insertId dedupe: the emulator stores a re-sent insertId again;
- require_partition_filter: neither enforced nor returned by get_table;
- dataset location: not returned; column types come back as sent (INT64), where BigQuery answers
  with legacy names (INTEGER), so the test compares normalised names;
- per-row insert errors: BigQuery answers 200 with insertErrors. The emulator does so only with
  skip_invalid_rows (which the adapter sends) and blames the wrong column; without it, it answers
  HTTP 500. Unknown fields and missing REQUIRED fields are accepted silently, and the `stopped`
  reason never occurs.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from devstack.bqemu import bigquery_client, start_bqemulator
from devstack.processes import Server, free_port
from shared.adapters.bigquery_warehouse import BigQueryWarehouse, TableNotFoundError
from shared.ports import RowError, TransientError
from shared.schema import Field, TableSpec, table_spec, table_specs

PROJECT = "cdp-local"
DAY = date(2024, 5, 1)
RAW_TABLES = sorted(name for name in table_specs() if name.startswith("raw."))

# What the API may answer for the type names our schema files use.
LEGACY_TYPES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu"), PROJECT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(emulator: Server) -> bigquery.Client:
    return bigquery_client(emulator, PROJECT)


@pytest.fixture
def warehouse(client: bigquery.Client) -> Iterator[BigQueryWarehouse]:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield BigQueryWarehouse(PROJECT, prefix, client=client, retry_deadline=10, request_timeout=10)
    for dataset in {spec.dataset for spec in table_specs().values()}:
        dataset_id = f"{PROJECT}.{prefix}{dataset}"
        client.delete_dataset(dataset_id, delete_contents=True, not_found_ok=True)


def schema_shape(fields: Any) -> list[tuple[str, str, str, Any]]:
    """(name, type, mode, nested) for API SchemaFields and spec Fields alike."""
    shape = []
    for f in fields:
        kind = f.field_type if isinstance(f, bigquery.SchemaField) else f.type
        shape.append((f.name, LEGACY_TYPES.get(kind, kind), f.mode, schema_shape(f.fields)))
    return shape


def test_ensure_tables_creates_every_table_idempotently(
    warehouse: BigQueryWarehouse,
    client: bigquery.Client,
) -> None:
    specs = list(table_specs().values())
    warehouse.ensure_tables(specs)
    warehouse.ensure_tables(specs)  # again: nothing to do, no error
    for spec in specs:
        table = client.get_table(warehouse.table_id(spec.name))
        assert schema_shape(table.schema) == schema_shape(spec.fields), spec.name
        assert [f.description for f in table.schema] == [f.description for f in spec.fields]
        assert table.description == spec.description
        assert table.clustering_fields == (list(spec.clustering) or None)
        if spec.partition_field is None:  # snapshot tables (profiles, current members)
            assert table.time_partitioning is None
            continue
        assert table.time_partitioning is not None
        assert (table.time_partitioning.type_, table.time_partitioning.field) == (
            "DAY",
            spec.partition_field,
        )
        days = spec.partition_expiration_days
        assert table.time_partitioning.expiration_ms == (days * 86_400_000 if days else None)
        assert table.clustering_fields == list(spec.clustering)
    items = client.get_table(warehouse.table_id("raw.conv")).schema[-2]
    assert (items.name, items.field_type, items.mode) == ("items", "RECORD", "REPEATED")


def sample(field: Field) -> tuple[Any, Any]:
    """(value as a loader sends it, value as a query returns it) for one column."""
    if field.repeated:
        element = Field(field.name, field.type, "NULLABLE", field.fields)
        elements = [sample(element), sample(element)]
        return [e[0] for e in elements], [e[1] for e in elements]
    if field.type == "RECORD":
        pairs = {f.name: sample(f) for f in field.fields}
        return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}
    values: dict[str, tuple[Any, Any]] = {
        "STRING": (f"{field.name} 값", f"{field.name} 값"),
        "BOOL": (True, True),
        "INT64": (42, 42),
        "FLOAT64": (1.5, 1.5),
        "NUMERIC": ("12.345", Decimal("12.345")),
        "TIMESTAMP": (
            "2024-05-01T10:00:00.123456Z",
            datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        ),
        "DATE": (DAY.isoformat(), DAY),
        "JSON": ({"coupon": "WELCOME", "n": [1, 2.5], "nested": {"é": None}}, None),
    }
    return values[field.type]


def sample_row(spec: TableSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    pairs = {f.name: sample(f) for f in spec.fields}
    return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}


@pytest.mark.parametrize("name", RAW_TABLES)
def test_insert_rows_round_trips_every_column(warehouse: BigQueryWarehouse, name: str) -> None:
    spec = table_spec(name)
    warehouse.ensure_tables([spec])
    row, expected = sample_row(spec)
    result = warehouse.insert_rows(name, [row], [row[spec.row_id]])
    assert (result.inserted, result.skipped_duplicates, result.errors) == (1, 0, [])

    [back] = warehouse.query(f"SELECT * FROM `{name}` WHERE event_date = @day", {"day": DAY})
    for field in spec.fields:
        if field.type == "JSON":  # JSON comes back as JSON text, as from DuckDB
            assert json.loads(back[field.name]) == row[field.name], field.name
        else:
            assert back[field.name] == expected[field.name], field.name


def test_query_binds_every_parameter_type(warehouse: BigQueryWarehouse) -> None:
    params: dict[str, Any] = {
        "s": "서울",
        "b": True,
        "i": 7,
        "f": 2.5,
        "n": Decimal("12.345"),
        "ts": datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
        "d": DAY,
        "strings": ["a", "b"],
        "ints": [1, 2, 3],
        "dates": [DAY],
        "nothing": None,
        "empty": [],
    }
    sql = """
        SELECT @s AS s, @b AS b, @i + 1 AS i, @f * 2 AS f, @n AS n, @ts AS ts, @d AS d,
               @strings AS strings, ARRAY_LENGTH(@ints) AS ints, @dates AS dates,
               CAST(@nothing AS INT64) AS nothing,
               ARRAY_LENGTH(CAST(@empty AS ARRAY<STRING>)) AS empty,
               'b' IN UNNEST(@strings) AS found
    """
    [row] = warehouse.query(sql, params)
    assert row == {
        "s": "서울",
        "b": True,
        "i": 8,
        "f": 5.0,
        "n": Decimal("12.345"),
        "ts": datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
        "d": DAY,
        "strings": ["a", "b"],
        "ints": 3,
        "dates": [DAY],
        "nothing": None,
        "empty": 0,
        "found": True,
    }


def test_logical_dataset_names_are_prefixed(
    warehouse: BigQueryWarehouse,
    client: bigquery.Client,
) -> None:
    spec = table_spec("raw.user")  # `user`: a keyword in many dialects
    warehouse.ensure_tables([spec])
    row, _ = sample_row(spec)
    warehouse.insert_rows("raw.user", [row], [row["event_id"]])

    client.get_dataset(f"{PROJECT}.{warehouse.dataset_prefix}raw")
    with pytest.raises(NotFound):
        client.get_dataset(f"{PROJECT}.raw")
    for reference in ("raw.user", "`raw.user`", "`raw`.`user`", "raw.`user`"):
        sql = f"SELECT COUNT(*) AS n FROM {reference} AS u WHERE u.event_date = @day"
        assert warehouse.query(sql, {"day": DAY}) == [{"n": 1}], reference
    ids = warehouse.query(
        "SELECT event_id FROM raw.user WHERE event_date = @day AND event_id IN UNNEST(@ids)",
        {"day": DAY, "ids": [row["event_id"], "other"]},
    )
    assert ids == [{"event_id": row["event_id"]}]
    assert warehouse.query("DELETE FROM raw.user WHERE event_date = @day", {"day": DAY}) == []
    count = "SELECT COUNT(*) AS n FROM raw.user WHERE event_date = @day"
    assert warehouse.query(count, {"day": DAY}) == [{"n": 0}]


def test_insert_rows_skips_batch_duplicates_and_maps_row_errors(
    warehouse: BigQueryWarehouse,
) -> None:
    spec = table_spec("raw.user")
    warehouse.ensure_tables([spec])
    base: dict[str, Any] = {"site_id": "s", "event_date": DAY.isoformat(), "source": "tracker"}
    base |= {"event_ts": "2024-05-01T10:00:00Z", "collected_at": "2024-05-01T10:00:01Z"}
    rows: list[dict[str, Any]] = [
        {**base, "event_id": "a", "birth_year": 1990},
        {**base, "event_id": "a", "birth_year": 1991},  # same id in the batch: dropped
        {**base, "event_id": "b", "birth_year": "not a year"},  # refused by the warehouse
        {**base, "event_id": "c", "birth_year": 1992},
    ]
    result = warehouse.insert_rows("raw.user", rows, [r["event_id"] for r in rows])
    assert (result.inserted, result.skipped_duplicates) == (2, 1)
    assert [e.index for e in result.errors] == [2]
    assert isinstance(result.errors[0], RowError) and result.errors[0].reason.startswith("invalid")
    stored = warehouse.query(
        "SELECT event_id, birth_year FROM raw.user WHERE event_date = @day ORDER BY event_id",
        {"day": DAY},
    )
    assert stored == [{"event_id": "a", "birth_year": 1990}, {"event_id": "c", "birth_year": 1992}]


def test_missing_table_is_a_clear_permanent_error(warehouse: BigQueryWarehouse) -> None:
    # The message names the real table and the logical one.
    message = rf"{re.escape(warehouse.table_id('raw.page'))} \(logical raw\.page\) does not exist"
    with pytest.raises(TableNotFoundError, match=message):
        warehouse.insert_rows("raw.page", [{"event_id": "a"}], ["a"])


def test_unreachable_bigquery_is_transient_within_the_retry_deadline() -> None:
    closed = bigquery.Client(
        PROJECT,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{free_port()}"),
    )
    warehouse = BigQueryWarehouse(PROJECT, "x_", client=closed, retry_deadline=1, request_timeout=1)
    calls: list[Callable[[], object]] = [
        lambda: warehouse.ensure_tables([table_spec("raw.page")]),
        lambda: warehouse.insert_rows("raw.page", [{"event_id": "a"}], ["a"]),
        lambda: warehouse.query("SELECT 1 AS x"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(TransientError, match="BigQuery unavailable"):
            call()
        assert time.monotonic() - started < 8


def test_the_load_service_writes_a_beacon_message_through_bigquery(warehouse: BigQueryWarehouse) -> None:
    """The production loader path: a collect message, load_message, BigQuery tables."""
    import json as _json
    from datetime import UTC, datetime

    from shared.services.load import load_message

    warehouse.ensure_tables(list(table_specs().values()))
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    base = {
        "site_id": "s",
        "event_date": "2026-11-20",
        "event_ts": "2026-11-20T11:00:00+00:00",
        "collected_at": "2026-11-20T12:00:00+00:00",
        "source": "tracker",
        "visitor_id": "v1",
    }
    page = {**base, "event_id": str(uuid.uuid4()), "page_path": "/p/1"}
    conv = {
        **base,
        "event_id": str(uuid.uuid4()),
        "conv_type": "order",
        "order_id": "o1",
        "revenue": 39000,
        "items": [{"product_id": "p1", "price": 39000, "quantity": 1}],
        "properties": {"coupon": "X"},
    }
    message = {
        "v": 1,
        "request_id": "r1",
        "rows": [
            {"table": "raw.page", "row": page},
            {"table": "raw.conv", "row": conv},
            {"table": "raw.nope", "row": page},
        ],
    }
    report = load_message(_json.dumps(message).encode(), warehouse, now=now)
    assert report.inserted == {"raw.page": 1, "raw.conv": 1, "raw.bad_rows": 1}
    assert warehouse.query("SELECT page_path FROM raw.page WHERE event_date = @d", {"d": date(2026, 11, 20)}) == [
        {"page_path": "/p/1"}
    ]
    stored = warehouse.query("SELECT order_id, revenue, JSON_VALUE(properties, '$.coupon') AS coupon FROM raw.conv")
    assert [(r["order_id"], int(r["revenue"]), r["coupon"]) for r in stored] == [("o1", 39000, "X")]
    bad = warehouse.query("SELECT reason_code FROM raw.bad_rows")
    assert bad == [{"reason_code": "invalid_row"}]


def test_append_arrow_loads_parquet_and_query_arrow_reads_columns(warehouse: BigQueryWarehouse) -> None:
    """The discovery job's bulk path: one Parquet load job in, one Arrow table out."""
    from datetime import UTC, datetime

    import pyarrow as pa

    warehouse.ensure_tables([table_specs()["refined.cluster_staging"]])
    now = datetime(2026, 11, 2, 6, 20, tzinfo=UTC)
    data = pa.table(
        {
            "customer_id": pa.array([f"c{i}" for i in range(300)], pa.string()),
            "site_id": pa.array(["shop"] * 300, pa.string()),
            "cluster_id": pa.array([i % 4 + 1 for i in range(300)], pa.int64()),
            "distance": pa.array([i / 10 for i in range(300)], pa.float64()),
            "run_id": pa.array(["run-1"] * 300, pa.string()),
            "computed_at": pa.array([now] * 300, pa.timestamp("us", tz="UTC")),
        }
    )
    assert warehouse.append_arrow("refined.cluster_staging", data) == 300
    read = warehouse.query_arrow(
        "select cluster_id, count(*) as n, sum(distance) as d from refined.cluster_staging "
        "where run_id = @run group by cluster_id order by cluster_id",
        {"run": "run-1"},
    )
    assert isinstance(read, pa.Table)
    assert read.column("cluster_id").to_pylist() == [1, 2, 3, 4]
    assert read.column("n").to_pylist() == [75, 75, 75, 75]
    assert sum(read.column("d").to_pylist()) == pytest.approx(sum(i / 10 for i in range(300)))

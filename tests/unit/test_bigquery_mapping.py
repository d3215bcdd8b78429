# mypy: disable-error-code="no-untyped-call"
# (the google.api_core exception constructors the tests build are untyped)
"""The BigQuery adapter's pure mapping code, without any server.

These are the contract tests for what bqemulator cannot show (see
tests/integration/test_bigquery_warehouse.py): the table resource sent to BigQuery carries
requirePartitionFilter and partition expiry, every row goes out with its id as insertId, and an
insertErrors response maps to RowErrors indexed into the caller's rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, cast

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery

from shared.adapters.bigquery_warehouse import (
    MAX_ROWS_PER_REQUEST,
    BigQueryWarehouse,
    TableNotFoundError,
    chunk_by_size,
    declared_parameter_types,
    insert_row,
    is_transient,
    qualify_tables,
    query_parameter,
    row_errors,
    scalar_type,
    schema_field,
    table_resource,
)
from shared.ports import RowError, TransientError
from shared.schema import Field, table_spec, table_specs
from shared.sql import SqlError

# -- tables ----------------------------------------------------------------------------------------


def test_schema_field_keeps_nested_repeated_records_and_descriptions() -> None:
    items = schema_field(table_spec("raw.conv").field("items"))
    assert (items.field_type, items.mode) == ("RECORD", "REPEATED")
    assert items.description == "Ordered items."
    assert [(f.name, f.field_type, f.mode) for f in items.fields] == [
        ("product_id", "STRING", "NULLABLE"),
        ("product_name", "STRING", "NULLABLE"),
        ("category", "STRING", "NULLABLE"),
        ("price", "NUMERIC", "NULLABLE"),
        ("quantity", "INT64", "NULLABLE"),
    ]
    assert schema_field(table_spec("raw.page").field("event_id")).mode == "REQUIRED"


@pytest.mark.parametrize("name", sorted(table_specs()))
def test_table_resource_carries_partitioning_clustering_and_filter(name: str) -> None:
    spec = table_spec(name)
    resource = table_resource(spec, "proj-1", "dev_").to_api_repr()
    assert resource["tableReference"] == {
        "projectId": "proj-1",
        "datasetId": f"dev_{spec.dataset}",
        "tableId": spec.table,
    }
    assert [f["name"] for f in resource["schema"]["fields"]] == list(spec.column_names)
    assert resource["description"] == spec.description
    if spec.partition_field is None:  # a snapshot table (refined.profiles): no partitions to filter
        assert "timePartitioning" not in resource and not spec.require_partition_filter
        return
    partitioning = resource["timePartitioning"]
    assert (partitioning["type"], partitioning["field"]) == ("DAY", spec.partition_field)
    days = spec.partition_expiration_days
    assert partitioning.get("expirationMs") == (str(days * 86_400_000) if days else None)
    assert resource["requirePartitionFilter"] is spec.require_partition_filter
    assert resource["clustering"] == {"fields": list(spec.clustering)}


def test_bad_rows_partitions_expire_and_events_require_a_partition_filter() -> None:
    bad_rows = table_resource(table_spec("raw.bad_rows"), "p").to_api_repr()
    assert bad_rows["timePartitioning"]["expirationMs"] == str(400 * 86_400_000)
    assert bad_rows["requirePartitionFilter"] is False
    page = table_resource(table_spec("raw.page"), "p").to_api_repr()
    assert page["requirePartitionFilter"] is True


# -- insert rows -----------------------------------------------------------------------------------


def test_insert_row_serialises_json_decimals_times_and_nested_records() -> None:
    fields = table_spec("raw.conv").fields
    row = {
        "event_id": "e1",
        "event_ts": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "event_date": date(2024, 5, 1),
        "revenue": Decimal("12.50"),
        "items": [{"product_id": "p1", "price": Decimal("1.10"), "quantity": 2}],
        "properties": {"coupon": "WELCOME", "n": [1, 2], "s": "é"},
        "not_a_column": "dropped",
    }
    out = insert_row(fields, row)
    assert out == {
        "event_id": "e1",
        "event_ts": "2024-05-01T10:00:00+00:00",
        "event_date": "2024-05-01",
        "revenue": "12.50",
        "items": [{"product_id": "p1", "price": "1.10", "quantity": 2}],
        "properties": '{"coupon": "WELCOME", "n": [1, 2], "s": "é"}',
    }
    json.dumps(out)  # what the client sends must be plain JSON


def test_insert_row_keeps_json_text_and_nulls() -> None:
    fields = (
        Field("j", "JSON"),
        Field("t", "TIME"),
        Field("b", "BYTES"),
        Field("r", "RECORD", fields=()),
    )
    row = {"j": '{"already": "text"}', "t": time(1, 2, 3), "b": b"\x00\xff", "r": None}
    assert insert_row(fields, row) == {
        "j": '{"already": "text"}',
        "t": "01:02:03",
        "b": "AP8=",
        "r": None,
    }


def test_insert_row_spells_non_finite_floats_as_bigquery_does() -> None:
    fields = (Field("a", "FLOAT64"), Field("b", "FLOAT64"), Field("c", "FLOAT64"))
    row = {"a": float("nan"), "b": float("inf"), "c": -float("inf")}
    assert insert_row(fields, row) == {"a": "NaN", "b": "Infinity", "c": "-Infinity"}
    with pytest.raises(ValueError):  # JSON has no NaN: the row is refused, not sent broken
        insert_row((Field("j", "JSON"),), {"j": {"x": float("nan")}})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (Field("items", "RECORD", "REPEATED", (Field("a", "STRING"),)), {"a": "not a list"}),
        (Field("rec", "RECORD", fields=(Field("a", "STRING"),)), ["not", "an object"]),
    ],
)
def test_insert_row_rejects_wrong_shapes(field: Field, value: Any) -> None:
    with pytest.raises(TypeError, match=field.name):
        insert_row((field,), {field.name: value})


def test_chunk_by_size_respects_row_and_byte_limits() -> None:
    assert [len(c) for c in chunk_by_size([10] * 1200)] == [500, 500, 200]
    assert chunk_by_size([4, 4, 4, 4], max_rows=10, max_bytes=8) == [[0, 1], [2, 3]]
    assert chunk_by_size([20, 1], max_rows=10, max_bytes=8) == [[0], [1]]  # oversize alone
    assert chunk_by_size([]) == []


def test_row_errors_map_request_positions_to_caller_indexes() -> None:
    response = [
        {
            "index": 1,
            "errors": [{"reason": "invalid", "location": "revenue", "message": "Cannot convert"}],
        },
        {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
        {
            "index": 2,
            "errors": [
                {"reason": "invalid", "message": "no such field: x."},
                {"reason": "invalid"},
            ],
        },
    ]
    errors, stopped = row_errors(response, [3, 7, 9])
    assert stopped == [3]
    assert errors == [
        RowError(7, "invalid: Cannot convert (at revenue)"),
        RowError(9, "invalid: no such field: x.; invalid"),
    ]


def test_row_errors_without_details_still_name_a_reason() -> None:
    assert row_errors([{"index": 0}], [5]) == ([RowError(5, "rejected by BigQuery")], [])


class FakeClient:
    """Records insert_rows_json calls and answers with scripted insertErrors or exceptions."""

    def __init__(self, answers: Sequence[Any] = ()) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answers = list(answers)

    def insert_rows_json(
        self,
        table: str,
        json_rows: Sequence[Mapping[str, Any]],
        **kwargs: Any,
    ) -> Any:
        self.calls.append({"table": table, "rows": list(json_rows), **kwargs})
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, BaseException):
            raise answer
        return answer


def fake_warehouse(client: FakeClient) -> BigQueryWarehouse:
    return BigQueryWarehouse("proj", "dev_", client=cast(bigquery.Client, client))


def page_row(event_id: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "site_id": "s", "event_date": "2024-05-01", **extra}


def test_insert_rows_sends_row_ids_as_insert_ids_and_drops_batch_duplicates() -> None:
    client = FakeClient()
    rows = [page_row("a"), page_row("b"), page_row("a", site_id="again")]
    result = fake_warehouse(client).insert_rows("raw.page", rows, ["a", "b", "a"])
    assert (result.inserted, result.skipped_duplicates, result.errors) == (2, 1, [])
    [call] = client.calls
    assert call["table"] == "proj.dev_raw.page"
    assert call["row_ids"] == ["a", "b"]
    assert [r["site_id"] for r in call["rows"]] == ["s", "s"]  # the first of the duplicates wins
    assert call["skip_invalid_rows"] is True
    assert call["timeout"] == 30.0
    assert call["retry"].timeout == 30.0  # bounded, not the client's 600 s


def test_insert_rows_chunks_large_batches() -> None:
    client = FakeClient()
    ids = [f"e{i}" for i in range(MAX_ROWS_PER_REQUEST * 2 + 1)]
    result = fake_warehouse(client).insert_rows("raw.page", [page_row(i) for i in ids], ids)
    assert [len(c["rows"]) for c in client.calls] == [500, 500, 1]
    assert [i for c in client.calls for i in c["row_ids"]] == ids
    assert result.inserted == len(ids)


def test_insert_rows_maps_insert_errors_to_caller_indexes() -> None:
    # Caller rows 0..3; row 2 repeats row 0's id, so the request holds caller rows 0, 1, 3.
    bad = {
        "index": 2,
        "errors": [{"reason": "invalid", "location": "event_ts", "message": "bad ts"}],
    }
    client = FakeClient([[bad]])
    rows = [page_row("a"), page_row("b"), page_row("a"), page_row("c", event_ts="soon")]
    result = fake_warehouse(client).insert_rows("raw.page", rows, ["a", "b", "a", "c"])
    assert result.errors == [RowError(3, "invalid: bad ts (at event_ts)")]
    assert (result.inserted, result.skipped_duplicates) == (2, 1)


def test_insert_rows_resends_rows_stopped_by_another_rows_error() -> None:
    stopped = {"index": 0, "errors": [{"reason": "stopped"}]}
    invalid = {"index": 1, "errors": [{"reason": "invalid", "message": "x"}]}
    client = FakeClient([[stopped, invalid], []])
    rows = [page_row("a"), page_row("b")]
    result = fake_warehouse(client).insert_rows("raw.page", rows, ["a", "b"])
    assert client.calls[1]["row_ids"] == ["a"]
    assert (result.inserted, result.errors) == (1, [RowError(1, "invalid: x")])


def test_insert_rows_reports_unserialisable_rows_without_sending_them() -> None:
    client = FakeClient()
    rows = [page_row("a"), page_row("b", properties=None), {"event_id": "c", "event_ts": object()}]
    table = "raw.event"
    result = fake_warehouse(client).insert_rows(table, rows, ["a", "b", "c"])
    assert client.calls[0]["row_ids"] == ["a", "b"]
    assert [e.index for e in result.errors] == [2] and result.inserted == 2


def test_insert_rows_rejects_mismatched_ids() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        fake_warehouse(FakeClient()).insert_rows("raw.page", [page_row("a")], [])


@pytest.mark.parametrize(
    "exc",
    [
        api_exceptions.ServiceUnavailable("down"),
        api_exceptions.InternalServerError("oops"),
        api_exceptions.TooManyRequests("slow down"),
        api_exceptions.Forbidden("quota", errors=[{"reason": "rateLimitExceeded"}]),
        api_exceptions.RetryError("gave up", cause=requests.exceptions.ConnectionError()),
        requests.exceptions.ConnectionError("refused"),
    ],
)
def test_outages_become_transient_errors(exc: Exception) -> None:
    assert is_transient(exc)
    with pytest.raises(TransientError, match="inserting into raw.page"):
        fake_warehouse(FakeClient([exc])).insert_rows("raw.page", [page_row("a")], ["a"])


@pytest.mark.parametrize(
    "exc",
    [
        api_exceptions.Forbidden("no", errors=[{"reason": "accessDenied"}]),
        api_exceptions.BadRequest("bad", errors=[{"reason": "invalidQuery"}]),
        api_exceptions.NotFound("gone", errors=[{"reason": "notFound"}]),
        ValueError("bug"),
    ],
)
def test_permanent_errors_are_not_transient(exc: Exception) -> None:
    assert not is_transient(exc)


def test_missing_table_is_a_clear_permanent_error() -> None:
    client = FakeClient([api_exceptions.NotFound("Not found: table")])
    with pytest.raises(TableNotFoundError, match=r"proj\.dev_raw\.page \(logical raw\.page\)"):
        fake_warehouse(client).insert_rows("raw.page", [page_row("a")], ["a"])


def test_dataset_prefix_is_validated() -> None:
    with pytest.raises(ValueError, match="dataset prefix"):
        BigQueryWarehouse("p", "dev-")


# -- query parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x", "STRING"),
        (True, "BOOL"),
        (7, "INT64"),
        (1.5, "FLOAT64"),
        (Decimal("12.345"), "NUMERIC"),
        (Decimal("0.1234567891"), "BIGNUMERIC"),
        (Decimal("1e30"), "BIGNUMERIC"),
        (datetime(2024, 5, 1, 10, tzinfo=UTC), "TIMESTAMP"),
        (datetime(2024, 5, 1, 10), "TIMESTAMP"),
        (date(2024, 5, 1), "DATE"),
        (time(10, 30), "TIME"),
        (b"\x00", "BYTES"),
    ],
)
def test_scalar_types_are_inferred_from_python_values(value: Any, expected: str) -> None:
    assert scalar_type(value) == expected
    param = query_parameter("p", value).to_api_repr()
    assert param["parameterType"]["type"] == expected


@pytest.mark.parametrize(
    ("values", "element"),
    [
        (["a", "b"], "STRING"),
        ([1, 2], "INT64"),
        ([1, 2.5], "FLOAT64"),
        ((date(2024, 1, 1),), "DATE"),
    ],
)
def test_lists_become_typed_arrays(values: Sequence[Any], element: str) -> None:
    param = query_parameter("ids", values)
    assert isinstance(param, bigquery.ArrayQueryParameter)
    assert (param.array_type, param.values) == (element, list(values))


def test_none_and_empty_lists_need_a_cast_in_the_sql() -> None:
    with pytest.raises(ValueError, match=r"write CAST\(@member AS type\)"):
        query_parameter("member", None)
    with pytest.raises(ValueError, match=r"CAST\(@ids AS ARRAY<type>\)"):
        query_parameter("ids", [])
    columns = [
        "CAST(@member AS STRING)",
        "SAFE_CAST(@ids AS ARRAY<INT64>)",
        "@plain",
        "CAST(@x AS INT64)",
        "CAST(@x AS STRING)",
    ]
    declared = declared_parameter_types(f"SELECT {', '.join(columns)}")
    assert declared == {
        "member": "STRING",
        "ids": "ARRAY<INT64>",
    }  # @x is ambiguous, @plain has none
    null = query_parameter("member", None, declared["member"])
    assert isinstance(null, bigquery.ScalarQueryParameter)
    assert (null.type_, null.value) == ("STRING", None)
    empty = query_parameter("ids", [], declared["ids"])
    assert isinstance(empty, bigquery.ArrayQueryParameter)
    assert (empty.array_type, empty.values) == ("INT64", [])


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({"a": 1}, TypeError, "no BigQuery parameter type for dict"),
        ([1, None], ValueError, "cannot hold NULL"),
        ([1, "a"], TypeError, "mixes INT64, STRING"),
    ],
)
def test_unsupported_parameter_values_fail_clearly(
    value: Any,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        query_parameter("p", value)


# -- table names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM raw.page", "SELECT * FROM `proj-1`.dev_raw.page"),
        ("SELECT * FROM `raw.page` AS p", "SELECT * FROM `proj-1.dev_raw.page` AS p"),
        ("SELECT * FROM `raw`.`page`", "SELECT * FROM `proj-1`.dev_raw.`page`"),
        ("SELECT u.email FROM raw.user AS u", "SELECT u.email FROM `proj-1`.dev_raw.user AS u"),
        ("SELECT * FROM `raw.user`", "SELECT * FROM `proj-1.dev_raw.user`"),
        ("SELECT * FROM raw.`select`", "SELECT * FROM `proj-1`.dev_raw.`select`"),
        ("SELECT * FROM `other-proj.raw.page`", "SELECT * FROM `other-proj.raw.page`"),
        (
            "SELECT * FROM `region-us`.INFORMATION_SCHEMA.JOBS",
            "SELECT * FROM `region-us`.`INFORMATION_SCHEMA.JOBS` AS JOBS",
        ),
        (
            "SELECT i.price FROM raw.conv AS c JOIN c.items AS i ON TRUE",
            "SELECT i.price FROM `proj-1`.dev_raw.conv AS c JOIN c.items AS i ON TRUE",
        ),
        (
            "WITH raw AS (SELECT 1 AS x) SELECT * FROM raw, refined.s",
            "WITH raw AS (SELECT 1 AS x) SELECT * FROM raw CROSS JOIN `proj-1`.dev_refined.s",
        ),
        (
            "MERGE refined.sessions T USING (SELECT * FROM raw.page WHERE event_date = @d) S "
            "ON FALSE WHEN NOT MATCHED THEN INSERT (a) VALUES (S.a)",
            "MERGE INTO `proj-1`.dev_refined.sessions AS T USING (SELECT * FROM "
            "`proj-1`.dev_raw.page WHERE event_date = @d) AS S ON FALSE "
            "WHEN NOT MATCHED THEN INSERT (a) VALUES (S.a)",
        ),
    ],
)
def test_logical_dataset_names_are_qualified(sql: str, expected: str) -> None:
    assert qualify_tables(sql, "proj-1", "dev_") == expected


def test_without_prefix_only_the_project_is_added() -> None:
    assert qualify_tables("SELECT * FROM raw.user", "p", "") == "SELECT * FROM `p`.raw.user"


def test_qualify_tables_refuses_what_it_cannot_parse() -> None:
    with pytest.raises(SqlError, match="expected one statement"):
        qualify_tables("SELECT 1; SELECT 2", "p", "")
    with pytest.raises(SqlError, match="not valid BigQuery SQL"):
        qualify_tables("SELECT FROM WHERE (", "p", "")

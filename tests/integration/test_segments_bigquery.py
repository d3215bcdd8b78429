"""Compiled segments and the membership MERGEs through BigQueryWarehouse (the real client) on bqemulator.

The same planted profiles and segments as the DuckDB tests must give the same members: this is the
check that the parameters the compiler makes (dates, timestamps, arrays, numbers) are typed as
BigQuery wants them and that the SQL is BigQuery's, not only sqlglot's idea of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.schema import table_spec
from shared.services.segments import Evaluation, evaluate_segment
from shared.tam.compiler import compile_segment
from shared.tam.rules import parse_segment
from tests.builders import CASES, SEGMENT_TABLES, TODAY, leaf, planted_profiles, segment_doc
from tests.builders import SEGMENTS_NOW as NOW

PROJECT = "cdp-local"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryWarehouse]:
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu"), PROJECT)
    try:
        client = bigquery_client(server, PROJECT)
        prefix = f"t{uuid.uuid4().hex[:8]}_"
        warehouse = BigQueryWarehouse(PROJECT, prefix, client=client, retry_deadline=10, request_timeout=30)
        warehouse.ensure_tables([table_spec(name) for name in SEGMENT_TABLES])
        rows = planted_profiles()
        result = warehouse.insert_rows("refined.profiles", rows, [r["customer_id"] for r in rows])
        assert result.inserted == len(rows) and not result.errors
        yield warehouse
    finally:
        server.stop()


def members(warehouse: BigQueryWarehouse, doc: dict[str, Any]) -> set[str]:
    compiled = compile_segment(parse_segment("t", doc), TODAY)
    return {r["customer_id"] for r in warehouse.query(compiled.members_sql(), compiled.params)}


@pytest.mark.parametrize(("segmentlet", "op", "value", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_operator_on_bigquery(
    warehouse: BigQueryWarehouse, segmentlet: str, op: str, value: Any, expected: set[str]
) -> None:
    assert members(warehouse, segment_doc(leaf(segmentlet, op, value))) == expected


def test_membership_history_on_bigquery(warehouse: BigQueryWarehouse) -> None:
    segment = parse_segment("bq", segment_doc(leaf("sex", "eq", "F")))
    assert evaluate_segment(segment, warehouse, NOW) == Evaluation(4, 4, 0)
    assert evaluate_segment(segment, warehouse, NOW) == Evaluation(4, 4, 0)  # same day: nothing changes
    narrower = parse_segment("bq", segment_doc({"all": [leaf("sex", "eq", "F"), leaf("age", "lt", 50)]}))
    assert evaluate_segment(narrower, warehouse, NOW + timedelta(days=1)) == Evaluation(3, 0, 1)  # c07 leaves
    rows = warehouse.query(
        "SELECT customer_id FROM audiences.segment_members WHERE segment_id = @s ORDER BY customer_id", {"s": "bq"}
    )
    assert [r["customer_id"] for r in rows] == ["c01", "c03", "c09"]

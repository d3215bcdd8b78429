"""The refine SQL through BigQueryWarehouse and the real client against bqemulator: on the planted
history of tests/unit/test_refine.py every refined table equals what DuckDB computes.

One emulator for the module (scripts/install-bqemu; a missing one fails with that hint). The
emulator does not dedupe insertIds, which lets this test store an exact duplicate event in a raw
table, as BigQuery's best-effort dedupe sometimes does, and see refinement drop it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from devstack.processes import Server
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.schema import table_specs
from shared.services import refine as refinement
from tests.builders import ALICE, FIRST_DAY, LAST_DAY, new_warehouse, planted, refined_tables
from tests.builders import REFINE_NOW as NOW

PROJECT = "cdp-local"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu-refine"), PROJECT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def warehouse(emulator: Server) -> Iterator[BigQueryWarehouse]:
    client = bigquery_client(emulator, PROJECT)
    prefix = f"r{uuid.uuid4().hex[:8]}_"
    yield BigQueryWarehouse(PROJECT, prefix, client=client, retry_deadline=20, request_timeout=60)
    for dataset in {spec.dataset for spec in table_specs().values()}:
        client.delete_dataset(f"{PROJECT}.{prefix}{dataset}", delete_contents=True, not_found_ok=True)


def comparable(value: Any) -> Any:
    """One form for what the two engines return: UTC ISO timestamps, normalised decimals."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def table_rows(warehouse: Any, table: str) -> list[tuple[tuple[str, Any], ...]]:
    return sorted(
        (
            tuple(sorted((k, comparable(v)) for k, v in row.items()))
            for row in warehouse.query(f"select * from {table}")
        ),
        key=repr,
    )


def test_bigquery_refines_like_duckdb(warehouse: BigQueryWarehouse) -> None:
    history = planted()
    warehouse.ensure_tables(list(table_specs().values()))
    for table, rows in history.rows.items():
        copy = [rows[0]] if table == "raw.page" else []  # a duplicate BigQuery let through
        result = warehouse.insert_rows(table, rows + copy, [r["event_id"] for r in rows] + ["again"] * len(copy))
        assert not result.errors, result.errors
    # Two ranges, so the second continues a session from the first (the carried-session branch); the
    # first skips identities and profiles, which the second rebuilds whole anyway.
    refinement.refine_range(warehouse, FIRST_DAY, date(2026, 5, 3))
    report = refinement.refine(warehouse, None, date(2026, 5, 4), LAST_DAY, NOW)

    duckdb = new_warehouse(history)
    expected = refinement.refine(duckdb, None, FIRST_DAY, LAST_DAY, NOW)
    assert report.rows == expected.rows
    for table in refined_tables():
        assert table_rows(warehouse, table) == table_rows(duckdb, table), table
    [alice] = warehouse.query("select rfm, pn_odr, rvn from refined.profiles where customer_id = @c", {"c": ALICE})
    assert alice == {"rfm": "Hibernating", "pn_odr": ["양말", "에코백", "울 코트", "린넨 셔츠"], "rvn": Decimal(150000)}

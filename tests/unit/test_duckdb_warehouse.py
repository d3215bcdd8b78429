"""DuckDB adapter: insert ids skip rows already stored, whether or not the table is keyed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_spec


@pytest.mark.parametrize("keyed", [True, False], ids=["primary key", "unkeyed"])
def test_insert_ids_skip_stored_rows(keyed: bool) -> None:
    spec = replace(table_spec("refined.profiles"), enforce_row_id=keyed)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([spec])
    rows = [{"customer_id": f"c{n}", "site_id": "shop", "computed_at": "2026-05-01T00:00:00+00:00"} for n in range(3)]
    first = warehouse.insert_rows("refined.profiles", rows, [r["customer_id"] for r in rows])
    again = warehouse.insert_rows("refined.profiles", rows[1:] + rows[1:2], ["c1", "c2", "c1"])
    assert (first.inserted, first.skipped_duplicates, first.errors) == (3, 0, [])
    assert (again.inserted, again.skipped_duplicates, again.errors) == (0, 3, [])
    stored = warehouse.query("select customer_id from refined.profiles order by customer_id")
    assert [r["customer_id"] for r in stored] == ["c0", "c1", "c2"]

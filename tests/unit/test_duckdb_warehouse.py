"""DuckDB adapter: insert ids skip rows already stored, whether or not the table is keyed; a newer
schema adds its columns to a table that exists."""

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


@pytest.mark.parametrize("keyed", [True, False], ids=["primary key", "unkeyed"])
def test_a_newer_schema_adds_its_nullable_columns_and_keeps_the_rows(keyed: bool) -> None:
    spec = replace(table_spec("refined.identities"), enforce_row_id=keyed)
    older = replace(spec, fields=tuple(f for f in spec.fields if f.name != "profiled_customer_id"))
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([older])
    row = {"identity_id": "s|visitor:v1", "site_id": "s", "node": "visitor:v1", "id_type": "visitor",
           "id_value": "v1", "customer_id": "c_1"}  # fmt: skip
    assert warehouse.insert_rows("refined.identities", [row], [row["identity_id"]]).inserted == 1
    warehouse.ensure_tables([spec])
    [stored] = warehouse.query("select * from refined.identities")
    assert stored == row | {"profiled_customer_id": None}


def test_a_newer_schema_with_a_required_column_names_it() -> None:
    spec = table_spec("refined.identities")
    older = replace(spec, fields=tuple(f for f in spec.fields if f.name != "customer_id"))
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([older])
    with pytest.raises(ValueError, match="refined.identities exists without the REQUIRED column 'customer_id'"):
        warehouse.ensure_tables([spec])

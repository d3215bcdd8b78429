"""Every sql/refine file: one BigQuery statement inside the subset both engines run, and it runs on
DuckDB (transpiled by sqlglot). tests/integration/test_refine_bigquery.py runs them on bqemulator."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.services import refine as refinement
from shared.sql import SQL_DIR, load_sql, parameter_names, to_duckdb
from tests.builders import new_warehouse

FILES = sorted(path.stem for path in (SQL_DIR / "refine").glob("*.sql"))
DAY = date(2026, 5, 1)
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
# Every value the service passes, by parameter name.
PARAMS: dict[str, Any] = refinement.range_params(DAY, DAY) | {
    "max_members_per_key": 3,
    "round_number": 1,
    "run_date": DAY,
    "period_start": DAY,
    "now": NOW,
    "list_limit": 20,
    "every_node": False,
}


def tree(name: str) -> exp.Expr:
    [statement] = sqlglot.parse(load_sql(f"refine/{name}"), read="bigquery")
    assert statement is not None
    return statement


def test_the_service_runs_every_file() -> None:
    named = set(refinement.PARTITIONED) | {f"{table}_delete" for table in refinement.PARTITIONED}
    named |= {"identity_edges", "identity_guard", "identity_seed", "identity_propagate", "identity_changes"}
    named |= {"identities", "rfm", "profiles", "row_counts", "profile_queue_range"}
    named |= {
        "profile_queue_identities",
        "profile_scope",
        "profile_refresh",
        "profile_done",
        "profile_queue_clear",
        "profile_queue_size",
        "profile_swap_out",
        "profile_swap_in",
    }
    named |= {"profile_staging_clear", "identity_settle", "identities_gone", "identities_new"}
    named |= {"identity_edges_settle", "order_days"}
    assert named == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_one_portable_statement(name: str) -> None:
    sql = load_sql(f"refine/{name}")
    statement = tree(name)
    assert to_duckdb(sql)
    assert parameter_names(sql) <= set(PARAMS), "a parameter the service does not pass"
    for unnest in statement.find_all(exp.Unnest):
        if isinstance(unnest.parent, exp.In):
            continue  # `x in unnest(@list)` reads no columns
        assert unnest.args.get("alias"), f"UNNEST without an alias: {unnest.sql('bigquery')}"
    for struct in statement.find_all(exp.Struct):
        assert all(isinstance(e, exp.PropertyEQ | exp.Alias) for e in struct.expressions), "STRUCT needs AS names"
    for aggregate in statement.find_all(exp.ArrayAgg):
        assert not aggregate.find(exp.Limit), "ARRAY_AGG(... LIMIT n) does not transpile: use QUALIFY"
    ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        assert "*" not in table.name, f"wildcard table {table.sql('bigquery')}"
        assert table.db in ("raw", "refined", "privacy") or (not table.db and table.name in ctes), table.sql("bigquery")
    assert not re.search(r"\bnet\.", sql, re.IGNORECASE), "NET.* is missing from bqemulator"
    assert not re.search(r"\{|\}|%s|%\(", sql), "values go in as @parameters, never by formatting"


@pytest.mark.parametrize("name", FILES)
def test_style_lowercase_keywords_and_no_parameters_in_comments(name: str) -> None:
    sql = load_sql(f"refine/{name}")
    code = re.sub(r"--[^\n]*|r?'(?:[^'\\]|\\.)*'", "", sql)  # without comments and string literals
    assert not re.findall(r"\b\w*[A-Z]\w*\b", code), "dbt style: lower-case SQL"
    comments = "\n".join(line.split("--", 1)[1] for line in sql.splitlines() if "--" in line)
    assert "@" not in comments, "bqemulator substitutes parameters inside comments too"
    assert sql.startswith("-- "), "each file opens with what it writes and why"


@pytest.fixture(scope="module")
def empty() -> DuckDBWarehouse:
    return new_warehouse()


@pytest.mark.parametrize("name", FILES)
def test_runs_on_duckdb(name: str, empty: DuckDBWarehouse) -> None:
    sql = load_sql(f"refine/{name}")
    empty.query(sql, {key: PARAMS[key] for key in parameter_names(sql)})

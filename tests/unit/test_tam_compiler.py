"""The rules compiler, operator by operator, on DuckDB against planted profiles (exact member sets).

tests/data/segments/profiles.json plants nine customers; c08 was last seen in 2015 and so is
outside every period used here, c06 belongs to another site, c05 has NULL in most columns.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.segmentlets import BY_CODE, OPERATORS
from shared.sql import load_sql, parameter_names, to_duckdb
from shared.tam.compiler import _POSITIVE, compile_segment, window
from shared.tam.rules import VOCABULARIES, parse_segment
from tests.builders import (
    CASES,
    IN_SCOPE,
    TODAY,
    leaf,
    planted_warehouse,
    segment_doc,
)
from tests.builders import SEGMENTS_NOW as NOW


@pytest.fixture(scope="module")
def warehouse() -> DuckDBWarehouse:
    return planted_warehouse()


def members(warehouse: DuckDBWarehouse, doc: dict[str, Any], today: date = TODAY) -> set[str]:
    compiled = compile_segment(parse_segment("t", doc), today)
    rows = warehouse.query(compiled.members_sql(), compiled.params)
    count = warehouse.query(compiled.count_sql(), compiled.params)[0]["size"]
    assert count == len(rows)
    return {r["customer_id"] for r in rows}


@pytest.mark.parametrize(("segmentlet", "op", "value", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_operator_selects_exact_members(
    warehouse: DuckDBWarehouse, segmentlet: str, op: str, value: Any, expected: set[str]
) -> None:
    assert members(warehouse, segment_doc(leaf(segmentlet, op, value))) == expected


def test_every_catalogue_operator_is_covered_by_a_case() -> None:
    covered = {(BY_CODE[s].type, op) for s, op, _, _ in CASES}
    wanted = {(kind, op) for kind, ops in OPERATORS.items() for op in ops}
    assert wanted - covered == set()
    negatives = {"ne", "not_in", "not_contains", "not_exists"}
    assert {k for k in wanted if k[1] not in negatives} == set(_POSITIVE)


def test_rfm_and_cluster_templates(warehouse: DuckDBWarehouse) -> None:
    assert members(warehouse, segment_doc(leaf("rfm", "eq", "at risk"), "rfm")) == {"c05", "c07"}
    assert members(warehouse, segment_doc(leaf("rfm", "in", ["Champions", "Loyal"]), "rfm")) == {"c01", "c04"}
    assert members(warehouse, segment_doc(leaf("cluster_id", "eq", 1), "kmeans")) == {"c01", "c03"}


def test_groups_and_not(warehouse: DuckDBWarehouse) -> None:
    either = {"any": [leaf("sex", "eq", "M"), leaf("age", "gt", 60)]}
    assert members(warehouse, segment_doc(either)) == {"c02", "c05", "c06"}
    # NOT of a condition is its negative operator: unknown values are included.
    assert members(warehouse, segment_doc({"not": leaf("sex", "eq", "F")})) == {"c02", "c04", "c05", "c06"}
    seoul_mobile_no_buy = {
        "all": [leaf("region", "eq", "Seoul"), leaf("device", "eq", "mobile"), {"not": leaf("odr_ltv", "gt", 0)}]
    }
    assert members(warehouse, segment_doc(seoul_mobile_no_buy)) == {"c03", "c09"}
    nested = {"all": [{"any": [leaf("sex", "eq", "F"), leaf("sex", "eq", "M")]}, {"not": {"any": [either]}}]}
    assert members(warehouse, segment_doc(nested)) == {"c01", "c03", "c07", "c09"}


def test_period_scope_site_and_no_rules(warehouse: DuckDBWarehouse) -> None:
    last_30 = segment_doc(None, "all_users", period={"last_days": 30})
    assert members(warehouse, last_30) == {"c01", "c03", "c04", "c06", "c09"}
    december = segment_doc(None, "all_users", period={"from": "2025-12-01", "to": "2025-12-31"})
    assert members(warehouse, december) == {"c01", "c02", "c04", "c05", "c07"}
    everyone = segment_doc(None, "all_users", period={"last_days": 3650})
    assert members(warehouse, everyone) == IN_SCOPE
    assert members(warehouse, {**everyone, "site_id": "other-shop"}) == {"c06"}


def test_window_is_local_midnight_to_midnight() -> None:
    seoul = parse_segment("t", segment_doc(None, "all_users", period={"last_days": 1}))
    assert window(seoul, TODAY) == (datetime(2026, 3, 9, 15, tzinfo=UTC), datetime(2026, 3, 10, 15, tzinfo=UTC))
    utc = parse_segment(
        "t", segment_doc(None, "all_users", period={"last_days": 7}, schedule={"cron": "0 7 * * *", "timezone": "UTC"})
    )
    assert window(utc, TODAY) == (datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))


def test_params_are_deterministic_and_values_never_in_the_sql() -> None:
    doc = segment_doc(
        {"all": [leaf("region", "eq", "Seoul"), leaf("age", "between", [20, 30]), leaf("ad", "contains_any", ["x"])]}
    )
    first = compile_segment(parse_segment("t", doc), TODAY)
    assert first == compile_segment(parse_segment("t", doc), TODAY)
    assert first.params == {
        "window_start": datetime(2016, 3, 12, 15, tzinfo=UTC),
        "window_end": datetime(2026, 3, 10, 15, tzinfo=UTC),
        "p0": "Seoul",
        "p1": 20,
        "p2": 30,
        "p3": ["x"],
    }
    assert "Seoul" not in first.where and "20" not in first.where and "30" not in first.where
    assert parameter_names(first.members_sql()) == set(first.params)
    assert first.columns == ("region", "age", "ad")


def test_compiled_sql_reads_only_catalogue_columns() -> None:
    """Every segmentlet with every operator: one statement over refined.profiles, its own column only."""
    scope = {"customer_id", "site_id", "first_seen", "last_seen", "elem"}
    for code, s in BY_CODE.items():
        template = {"rfm": "rfm", "cluster_id": "kmeans"}.get(code, "behaviour")
        for op in s.operators:
            doc = segment_doc(leaf(code, op, _sample_value(code, s.type, op)), template)
            compiled = compile_segment(parse_segment("t", doc), TODAY)
            tree = sqlglot.parse_one(compiled.members_sql(), read="bigquery")
            assert {c.name for c in tree.find_all(exp.Column)} <= scope | {s.column}, (code, op)
            assert {f"{t.db}.{t.name}" for t in tree.find_all(exp.Table)} == {"refined.profiles"}
            assert parameter_names(compiled.members_sql()) == set(compiled.params)
            to_duckdb(compiled.members_sql())


def _sample_value(code: str, kind: str, op: str) -> Any:
    if op in ("exists", "not_exists"):
        return None
    if op == "between":
        return [1, 2]
    scalar: Any = VOCABULARIES[code][0] if code in VOCABULARIES else {"number": 1, "boolean": True}.get(kind, "x")
    return [scalar] if op in ("in", "not_in", "contains_any", "contains_all") else scalar


def test_segment_sql_files_parse_and_run_on_duckdb() -> None:
    warehouse = planted_warehouse()
    for name in ("merge_members", "membership_counts", "profiles_freshness"):
        sql = load_sql(f"segments/{name}")
        params = {"segment_id": "s", "run_date": TODAY, "computed_at": NOW}
        warehouse.query(sql, {k: v for k, v in params.items() if k in parameter_names(sql)})
    compiled = compile_segment(parse_segment("s", segment_doc(leaf("sex", "eq", "F"))), TODAY)
    merge = compiled.history_merge_sql()
    params = {**compiled.params, "segment_id": "s", "run_date": TODAY, "run_day": TODAY.isoformat()}
    assert parameter_names(merge) == set(params)
    warehouse.query(merge, params)
    rows = warehouse.query("SELECT customer_id FROM audiences.segment_member_history ORDER BY customer_id")
    assert [r["customer_id"] for r in rows] == ["c01", "c03", "c07", "c09"]

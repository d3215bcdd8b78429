"""SQL written once in BigQuery Standard SQL, run on BigQuery as is and on DuckDB via sqlglot."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    import pyarrow as pa

    from shared.ports import Warehouse

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


class SqlError(ValueError):
    """A statement could not be parsed or transpiled; the message names the statement."""


@lru_cache(maxsize=512)
def load_sql(name: str) -> str:
    """The text of sql/<name>.sql, e.g. load_sql("refine/sessions")."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise SqlError(f"no SQL file {path.relative_to(SQL_DIR.parent)}")
    return path.read_text()


def parameter_names(sql: str) -> set[str]:
    """The named @parameters a BigQuery statement uses."""
    return {p.name for p in parse_statement(sql).find_all(exp.Parameter)}


@lru_cache(maxsize=512)
def statement(name: str) -> tuple[str, frozenset[str]]:
    """sql/<name>.sql and the parameters it uses, parsed once (walking the syntax tree on every call
    would cost more than a small query)."""
    sql = load_sql(name)
    return sql, frozenset(parameter_names(sql))


def run_statement(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run sql/<name>.sql with the values of `params` it names (callers may pass a superset)."""
    sql, names = statement(name)
    return warehouse.query(sql, {key: value for key, value in params.items() if key in names})


def run_statement_arrow(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> pa.Table:
    """run_statement, the rows as one Arrow table."""
    sql, names = statement(name)
    return warehouse.query_arrow(sql, {key: value for key, value in params.items() if key in names})


@lru_cache(maxsize=512)
def to_duckdb(sql: str) -> str:
    """Transpile one BigQuery statement to DuckDB, turning @name parameters into $name."""

    def placeholders(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Parameter):
            return exp.Placeholder(this=node.name)
        return node

    try:
        return parse_statement(sql).transform(placeholders).sql(dialect="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise SqlError(f"cannot transpile to DuckDB: {exc}\n{sql[:500]}") from exc


@lru_cache(maxsize=512)
def parse_statement(sql: str) -> exp.Expr:
    """One BigQuery statement's syntax tree, cached: callers must copy it before changing it."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise SqlError(f"not valid BigQuery SQL: {exc}\n{sql[:500]}") from exc
    if len(statements) != 1:
        raise SqlError(f"expected one statement, found {len(statements)}")
    return statements[0]

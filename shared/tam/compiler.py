"""Rules → one parameterized BigQuery statement over `refined.profiles`.

The SQL text is assembled only from fixed fragments, catalogue column names and generated
parameter names (`@p0`, `@p1`… in rule order, plus `@window_start`, `@window_end`, `@site_id`);
every value a marketer typed travels as a query parameter. The same text runs on BigQuery and,
through shared.sql.to_duckdb, on DuckDB.

NULL semantics are explicit: every condition is TRUE or FALSE, never unknown. A positive operator
(eq, in, contains, gt, between, matches…) is FALSE on a missing value; a negative one (ne, not_in,
not_contains, not_exists) is exactly the NOT of its positive, so it is TRUE on a missing value, and
`not: {…}` inverts a condition the same way. `exists` is how a rule demands a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any

import sqlglot
from sqlglot import exp

from shared.sql import load_sql
from shared.tam.rules import Condition, Group, Not, Rule, Segment

PROFILES = "refined.profiles"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_RULE_PARAM = re.compile(r"p\d+")

# Positive forms by (segmentlet type, operator); {c} is the column, {p} and {q} parameters.
# Negative operators are the NOT of their positive (see the module docstring).
_POSITIVE: dict[tuple[str, str], str] = {
    **{(t, "eq"): "COALESCE({c} = @{p}, FALSE)" for t in ("category", "number", "boolean")},
    **{(t, "exists"): "{c} IS NOT NULL" for t in ("category", "number", "boolean")},
    ("category", "in"): "COALESCE({c} IN UNNEST(@{p}), FALSE)",
    ("number", "gt"): "COALESCE({c} > @{p}, FALSE)",
    ("number", "gte"): "COALESCE({c} >= @{p}, FALSE)",
    ("number", "lt"): "COALESCE({c} < @{p}, FALSE)",
    ("number", "lte"): "COALESCE({c} <= @{p}, FALSE)",
    ("number", "between"): "COALESCE({c} BETWEEN @{p} AND @{q}, FALSE)",
    **{(t, "contains"): "COALESCE(@{p} IN UNNEST({c}), FALSE)" for t in ("list", "text_list")},
    **{
        (t, "contains_any"): "EXISTS(SELECT 1 FROM UNNEST({c}) AS elem WHERE elem IN UNNEST(@{p}))"
        for t in ("list", "text_list")
    },
    # Values are de-duplicated by validation, so counting distinct matches against them is exact.
    **{
        (t, "contains_all"): (
            "(SELECT COUNT(DISTINCT elem) FROM UNNEST({c}) AS elem WHERE elem IN UNNEST(@{p})) = ARRAY_LENGTH(@{p})"
        )
        for t in ("list", "text_list")
    },
    **{(t, "exists"): "COALESCE(ARRAY_LENGTH({c}) > 0, FALSE)" for t in ("list", "text_list")},
    # A case-insensitive substring of any element; STRPOS, not LIKE, so % and _ are plain text.
    ("text_list", "matches"): "EXISTS(SELECT 1 FROM UNNEST({c}) AS elem WHERE STRPOS(LOWER(elem), LOWER(@{p})) > 0)",
}
_NEGATIVE = {"ne": "eq", "not_in": "in", "not_contains": "contains", "not_exists": "exists"}


@dataclass(frozen=True)
class CompiledSegment:
    """The WHERE of a segment over refined.profiles and its parameters."""

    where: str
    params: dict[str, Any]
    columns: tuple[str, ...]  # profile columns the rules read, in rule order

    def members_sql(self) -> str:
        return f"SELECT customer_id, site_id FROM {PROFILES} WHERE {self.where}"

    def count_sql(self) -> str:
        return f"SELECT COUNT(*) AS size FROM {PROFILES} WHERE {self.where}"

    def sample_sql(self, limit: int) -> str:
        """A few members with the columns the rules read (no contact keys)."""
        if not 1 <= int(limit) <= 100:
            raise ValueError("sample limit must be between 1 and 100")
        wanted = ["customer_id", "site_id", "last_seen", *self.columns]
        columns = ", ".join(dict.fromkeys(wanted))
        return f"SELECT {columns} FROM {PROFILES} WHERE {self.where} ORDER BY customer_id LIMIT {int(limit)}"

    def history_merge_sql(self) -> str:
        """sql/segments/merge_history.sql with this segment as its source's WHERE."""
        tree = _history_template().copy()
        for select in tree.find_all(exp.Select):
            source = select.args.get("from_") or select.args.get("from")
            table = source.this if source is not None else None
            if isinstance(table, exp.Table) and f"{table.db}.{table.name}" == PROFILES:
                select.where(sqlglot.parse_one(self.where, read="bigquery"), append=False, copy=False)
                return tree.sql(dialect="bigquery", comments=False)
        raise AssertionError("sql/segments/merge_history.sql has no source over refined.profiles")


@cache
def segment_sql(name: str) -> str:
    """sql/segments/<name>.sql as one line of BigQuery without its comments.

    The comments document the file; sqlglot moves them to the end of a rewritten statement, and
    bqemulator then silently skips a MERGE, so the statement we send carries none.
    """
    return sqlglot.parse_one(load_sql(f"segments/{name}"), read="bigquery").sql(dialect="bigquery", comments=False)


@cache
def _history_template() -> exp.Expr:
    return sqlglot.parse_one(load_sql("segments/merge_history"), read="bigquery")


def window(segment: Segment, today: date) -> tuple[datetime, datetime]:
    """The period as [start, end) instants: midnight to midnight in the segment's time zone."""
    first, last = segment.period.days(today)
    tz = segment.schedule.tz
    return datetime.combine(first, time(), tz), datetime.combine(last + timedelta(days=1), time(), tz)


def compile_segment(segment: Segment, today: date) -> CompiledSegment:
    """The segment's WHERE for a run on `today` (a day in the segment's time zone).

    Scope: customers whose activity overlaps the period (last seen on or after its first day and
    first seen before the day after its last), of one site when the segment names one.
    """
    start, end = window(segment, today)
    params: dict[str, Any] = {"window_start": start, "window_end": end}
    parts = ["last_seen >= @window_start", "first_seen < @window_end"]
    if segment.site_id is not None:
        params["site_id"] = segment.site_id
        parts.append("site_id = @site_id")
    columns: list[str] = []
    if segment.rules is not None:
        parts.append(_rule_sql(segment.rules, params, columns))
    return CompiledSegment(" AND ".join(parts), params, tuple(dict.fromkeys(columns)))


def _rule_sql(rule: Rule, params: dict[str, Any], columns: list[str]) -> str:
    if isinstance(rule, Condition):
        return _condition_sql(rule, params, columns)
    if isinstance(rule, Not):
        return f"NOT ({_rule_sql(rule.child, params, columns)})"
    assert isinstance(rule, Group) and rule.kind in ("all", "any") and rule.children
    joiner = " AND " if rule.kind == "all" else " OR "
    return "(" + joiner.join(_rule_sql(child, params, columns) for child in rule.children) + ")"


def _condition_sql(condition: Condition, params: dict[str, Any], columns: list[str]) -> str:
    column = condition.segmentlet.column
    if not _IDENTIFIER.fullmatch(column):  # the catalogue is code, but it is the one thing spliced in
        raise AssertionError(f"catalogue column {column!r} is not a plain identifier")
    columns.append(column)
    kind = condition.segmentlet.type
    positive = _NEGATIVE.get(condition.op, condition.op)
    template = _POSITIVE.get((kind, positive))
    if template is None:
        raise AssertionError(f"no SQL for {kind} {condition.op}; validation should have refused it")
    names = {"p": "", "q": ""}
    value = condition.value
    if condition.op == "between":
        names["p"], names["q"] = _param(params, value[0]), _param(params, value[1])
    elif value is not None:
        names["p"] = _param(params, list(value) if isinstance(value, tuple) else value)
    sql = template.format(c=column, **names)
    return f"NOT ({sql})" if condition.op in _NEGATIVE else sql


def _param(params: dict[str, Any], value: Any) -> str:
    """The next of p0, p1, … : names depend only on rule order, so the same rules give the same SQL."""
    name = f"p{sum(1 for key in params if _RULE_PARAM.fullmatch(key))}"
    params[name] = value
    return name

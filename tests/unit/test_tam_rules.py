"""Segment document validation: every rejection names its field path; injection attempts go nowhere."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from shared.tam.compiler import compile_segment
from shared.tam.rules import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    InvalidSegment,
    Period,
    Schedule,
    definition_hash,
    parse_segment,
    to_document,
    user_fields,
)
from tests.builders import TODAY, planted_warehouse


def doc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Seoul women",
        "template": "behaviour",
        "rules": {"all": [{"segmentlet": "region", "op": "eq", "value": "Seoul"}]},
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def problems(document: Any, segment_id: str = "s1") -> list[str]:
    with pytest.raises(InvalidSegment) as caught:
        parse_segment(segment_id, document)
    return [str(p) for p in caught.value.problems]


def rules(*conditions: Any) -> dict[str, Any]:
    return {"all": list(conditions)}


def test_a_valid_document_gets_template_defaults() -> None:
    segment = parse_segment("s1", doc())
    assert segment.period == Period(last_days=90)
    assert segment.schedule == Schedule("0 7 * * *", "Asia/Seoul")
    assert segment.enabled is True and segment.site_id is None
    assert segment.definition["schedule"] == {"cron": "0 7 * * *", "timezone": "Asia/Seoul"}


def test_value_type_errors_name_the_path() -> None:
    bad = rules(
        {"segmentlet": "region", "op": "eq", "value": "Seoul"},
        {"segmentlet": "sex", "op": "eq", "value": "F"},
        {"segmentlet": "age", "op": "gte", "value": "abc"},
    )
    assert problems(doc(rules=bad)) == ['rules.all[2].value: expected a number for age, got "abc"']


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"segmentlet": "agee", "op": "eq", "value": 1}, 'rules.segmentlet: unknown segmentlet "agee"'),
        ({"op": "eq", "value": 1}, "rules.segmentlet: is required"),
        ({"segmentlet": "age", "op": "contains", "value": 1}, 'rules.op: operator "contains" is not allowed for age'),
        ({"segmentlet": "age", "value": 1}, "rules.op: is required for age"),
        ({"segmentlet": "age", "op": "gt"}, "rules.value: is required for gt"),
        ({"segmentlet": "age", "op": "gt", "value": True}, "rules.value: expected a number for age, got true"),
        ({"segmentlet": "age", "op": "gt", "value": float("nan")}, "rules.value: expected a finite number for age"),
        ({"segmentlet": "age", "op": "between", "value": [40, 20]}, "rules.value: low 40 is greater than high 20"),
        ({"segmentlet": "age", "op": "between", "value": [1]}, "rules.value: between takes [low, high] for age"),
        ({"segmentlet": "age", "op": "between", "value": [1, "x"]}, "rules.value[1]: expected a number for age"),
        ({"segmentlet": "sex", "op": "in", "value": []}, "rules.value: in takes a non-empty list for sex"),
        ({"segmentlet": "sex", "op": "in", "value": "F"}, 'rules.value: in takes a non-empty list for sex, got "F"'),
        ({"segmentlet": "sex", "op": "in", "value": ["F", "X"]}, 'rules.value[1]: "X" is not a known sex'),
        ({"segmentlet": "ad", "op": "contains_any", "value": []}, "rules.value: contains_any takes a non-empty list"),
        ({"segmentlet": "ad", "op": "matches", "value": "x"}, 'rules.op: operator "matches" is not allowed for ad'),
        ({"segmentlet": "kw_inner", "op": "matches", "value": ""}, "rules.value: expected a non-empty text"),
        ({"segmentlet": "kw_inner", "op": "matches", "value": "x" * 101}, "rules.value: must be at most 100"),
        ({"segmentlet": "is_member", "op": "eq", "value": "yes"}, "rules.value: expected true or false for is_member"),
        ({"segmentlet": "age", "op": "exists", "value": 3}, "rules.value: exists takes no value"),
        ({"segmentlet": "region", "op": "eq", "value": "a\x00b"}, "rules.value: must be at most 200 characters"),
        ({"segmentlet": "age", "op": "eq", "value": 1, "sql": "1=1"}, 'rules: unexpected key "sql"'),
        ({"all": []}, "rules.all: is empty"),
        ({"all": {"segmentlet": "age"}}, "rules.all: expected a list of conditions, got an object"),
        ({"any": [], "not": {}}, "rules: a group has exactly one key (any); unexpected not"),
        ({"not": [{"segmentlet": "age", "op": "exists"}]}, "rules.not: expected a condition or a group"),
        ([{"segmentlet": "age", "op": "exists"}], "rules: expected a condition or a group (all, any, not), got a list"),
        ("age > 3", 'rules: expected a condition or a group (all, any, not), got "age > 3"'),
        (
            {"segmentlet": "rfm", "op": "eq", "value": "Lost"},
            "rules.segmentlet: rfm is not offered by template behaviour",
        ),
    ],
)
def test_rule_errors(rule: Any, message: str) -> None:
    found = problems(doc(rules=rule))
    assert any(p.startswith(message) for p in found), found


def test_vocabulary_values_are_checked() -> None:
    rfm = doc(template="rfm", rules={"segmentlet": "rfm", "op": "eq", "value": "At Risk!"})
    assert problems(rfm) == [
        'rules.value: "At Risk!" is not a known rfm; one of Champions, Loyal, Potential loyalist, New, Promising, '
        "Need attention, About to sleep, At risk, Cannot lose them, Hibernating, Lost"
    ]


def test_nested_paths() -> None:
    nested = {"any": [{"not": {"all": [{"segmentlet": "age", "op": "gte", "value": 1}, {"segmentlet": "x"}]}}]}
    assert problems(doc(rules=nested)) == ['rules.any[0].not.all[1].segmentlet: unknown segmentlet "x"']


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"name": "", "template": "nope", "period": {"last_days": 0}, "schedule": {"cron": "x"}})
    assert found == [
        'name: expected a non-empty text, got ""',
        'template: unknown template "nope"; one of all_users, behaviour, kmeans, rfm',
        "period.last_days: must be between 1 and 3650, got 0",
        "schedule.cron: 'x' has 1 fields; use five: minute hour day-of-month month day-of-week",
    ]


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ({"last_days": 0}, "period.last_days: must be between 1 and 3650, got 0"),
        ({"last_days": -5}, "period.last_days: must be between 1 and 3650, got -5"),
        ({"last_days": 3651}, "period.last_days: must be between 1 and 3650, got 3651"),
        ({"last_days": "30"}, 'period.last_days: expected a whole number of days, got "30"'),
        ({"last_days": 2.5}, "period.last_days: expected a whole number of days, got 2.5"),
        ({"from": "2026-03-01", "to": "2026-02-01"}, "period: from 2026-03-01 is after to 2026-02-01"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, 'period.from: expected a date like 2026-01-31, got "2026-02-30"'),
        ({"from": "2000-01-01", "to": "2026-01-01"}, "period: spans more than 3650 days"),
        ({"from": "2026-01-01"}, "period: expected either last_days, or both from and to"),
        ({"last_days": 3, "from": "2026-01-01", "to": "2026-01-02"}, "period: expected either last_days"),
        ("30d", 'period: expected {last_days: N} or {from: DATE, to: DATE}, got "30d"'),
    ],
)
def test_impossible_periods(period: Any, message: str) -> None:
    found = problems(doc(period=period))
    assert len(found) == 1 and found[0].startswith(message), found


def test_dates_from_yaml_firestore_or_text() -> None:
    for start, end in ((date(2026, 1, 1), date(2026, 1, 31)), ("2026-01-01", "2026-01-31")):
        assert parse_segment("s1", doc(period={"from": start, "to": end})).period == Period(
            start=date(2026, 1, 1), end=date(2026, 1, 31)
        )
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_segment("s1", doc(period={"from": stamp, "to": stamp})).period.days(TODAY) == (stamp.date(),) * 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": {"cron": "0 7 * * * *"}}, "schedule.cron: '0 7 * * * *' has 6 fields"),
        ({"schedule": {"cron": "61 7 * * *"}}, "schedule.cron: '61 7 * * *' has a value out of range"),
        ({"schedule": {"cron": "@daily"}}, "schedule.cron: '@daily' has 1 fields"),
        ({"schedule": {"cron": "0 7 * * *", "timezone": "Mars/Base"}}, "schedule.timezone: unknown time zone 'Mars"),
        ({"schedule": {"cron": "0 7 * * *", "timezone": "../../etc/passwd"}}, "schedule.timezone: unknown time zone"),
        ({"schedule": {"cron": "0 7 * * *", "every": 1}}, "schedule.every: unknown field"),
        ({"enabled": "yes"}, 'enabled: expected true or false, got "yes"'),
        ({"site_id": "a b"}, 'site_id: "a b" is not a site id'),
        ({"template": None}, "template: is required"),
        ({"name": None}, "name: is required"),
        ({"rules": None}, "rules: template behaviour needs at least one condition"),
        ({"rule": {}}, "rule: unknown field"),
        ({"id": "other"}, 'id: "other" differs from the document id "s1"'),
    ],
)
def test_document_errors(fields: dict[str, Any], message: str) -> None:
    found = (
        problems(doc(**fields))
        if "rules" not in fields or fields["rules"] is not None
        else problems({k: v for k, v in doc().items() if k != "rules"})
    )
    assert any(p.startswith(message) for p in found), found


def test_schedule_shorthand_and_other_zone() -> None:
    assert parse_segment("s1", doc(schedule="30 6 * * 1")).schedule == Schedule("30 6 * * 1", "Asia/Seoul")
    assert parse_segment("s1", doc(schedule={"cron": "0 0 1 * *", "timezone": "UTC"})).schedule.timezone == "UTC"


def test_limits_on_depth_and_size() -> None:
    deep: dict[str, Any] = {"segmentlet": "age", "op": "exists"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"not": deep}
    assert any("nest deeper than" in p for p in problems(doc(rules=deep)))
    many = rules(*({"segmentlet": "age", "op": "gte", "value": i} for i in range(MAX_CONDITIONS + 1)))
    assert problems(doc(rules=many)) == [
        f"rules: has more than {MAX_CONDITIONS} conditions; at most {MAX_CONDITIONS} (checking stopped there)"
    ]


def test_templates_demand_their_segmentlet_and_all_users_allows_no_rules() -> None:
    kmeans = doc(template="kmeans", rules={"segmentlet": "age", "op": "gte", "value": 20})
    assert problems(kmeans) == ["rules: template kmeans needs a condition on cluster_id"]
    assert parse_segment("s1", {"name": "all", "template": "all_users"}).rules is None
    assert problems({"name": "all", "template": "all_users", "rules": {"any": []}}) == [
        "rules.any: is empty; give at least one condition"
    ]


def test_bad_ids_and_non_documents() -> None:
    assert problems(doc(), segment_id="a/b") == [
        'id: "a/b" is not a valid segment id (letters, digits, - and _, up to 63)'
    ]
    assert problems(["x"]) == ["a segment must be an object, got a list"]


# --- injection --------------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE x; --",
    "x' OR '1'='1",
    '") OR TRUE --',
    "서울'; DELETE FROM refined.profiles WHERE '1'='1",
    "@p0",
    "${p0}",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_in_values_is_only_ever_a_parameter(value: str) -> None:
    warehouse = planted_warehouse()
    checks = [
        {"segmentlet": "region", "op": "eq", "value": value},
        {"segmentlet": "kw_inner", "op": "contains", "value": value},
        {"segmentlet": "kw_inner", "op": "matches", "value": value},
        {"segmentlet": "pn", "op": "contains_any", "value": [value, "x"]},
    ]
    segment = parse_segment("s1", doc(rules={"any": checks}, period={"last_days": 3650}))
    compiled = compile_segment(segment, TODAY)
    assert "'" not in compiled.members_sql()  # no string literal at all: values are parameters
    assert [compiled.params[p] for p in ("p0", "p1", "p2")] == [value] * 3
    rows = warehouse.query(compiled.members_sql(), compiled.params)
    # Only c09, whose keyword literally is the DROP string, matches anything.
    assert {r["customer_id"] for r in rows} == ({"c09"} if value == INJECTIONS[0] else set())
    assert warehouse.query("SELECT COUNT(*) AS n FROM refined.profiles")[0]["n"] == 9


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"segmentlet": "age; drop", "op": "eq", "value": 1}, 'rules.segmentlet: unknown segmentlet "age; drop"'),
        ({"segmentlet": "age) OR (1=1", "op": "eq", "value": 1}, "rules.segmentlet: unknown segmentlet"),
        ({"segmentlet": "age", "op": "eq) OR (1=1", "value": 1}, 'rules.op: operator "eq) OR (1=1" is not allowed'),
        ({"segmentlet": "age", "op": "gte; DROP TABLE x", "value": 1}, "rules.op: operator"),
        ({"segmentlet": {"code": "age"}, "op": "eq", "value": 1}, "rules.segmentlet: unknown segmentlet an object"),
        ({"segmentlet": "age", "op": ["eq"], "value": 1}, "rules.op: operator a list is not allowed"),
        (
            {"segmentlet": "age", "op": "eq", "value": {"$gt": 1}},
            "rules.value: expected a number for age, got an object",
        ),
        ({"segmentlet": "age", "op": "eq", "value": [1]}, "rules.value: expected a number for age, got a list"),
        ({"segmentlet": "region", "op": "eq", "value": ["Seoul"]}, "rules.value: expected a non-empty text for region"),
        ({"segmentlet": "region", "op": "in", "value": [["서울"]]}, "rules.value[0]: expected a non-empty text"),
        ({"segmentlet": "ad", "op": "contains", "value": {"sql": "1"}}, "rules.value: expected a non-empty text"),
        ({"segmentlet": "age", "op": "between", "value": [{"x": 1}, 2]}, "rules.value[0]: expected a number for age"),
    ],
)
def test_sql_in_names_operators_and_structures_is_rejected(rule: Any, message: str) -> None:
    found = problems(doc(rules=rule))
    assert any(p.startswith(message) for p in found), found


def test_unknown_top_level_fields_are_rejected() -> None:
    assert problems(doc(sql="SELECT 1")) == [
        "sql: unknown field; expected one of "
        + ", ".join(("id", "name", "description", "template", "site_id", "period", "rules", "schedule", "enabled"))
    ]


# --- document helpers -------------------------------------------------------------------------


def test_definition_hash_ignores_results_and_cosmetics() -> None:
    base = parse_segment("s1", doc())
    with_results = parse_segment("s1", {**doc(), "status": {"state": "ok"}, "size": 3})
    forgiving_case = parse_segment(
        "s1", doc(rules={"all": [{"segmentlet": "region", "op": "eq", "value": "Seoul"}]}, period={"last_days": 90})
    )
    assert base.definition_hash == with_results.definition_hash == forgiving_case.definition_hash
    assert parse_segment("s1", doc(enabled=False)).definition_hash != base.definition_hash
    assert definition_hash({"a": 1}) == definition_hash({"a": 1})


def test_to_document_and_user_fields() -> None:
    assert to_document({"period": {"from": date(2026, 1, 2)}, "v": (1, 2)}) == {
        "period": {"from": "2026-01-02"},
        "v": [1, 2],
    }
    assert user_fields({"name": "x", "status": {}, "size": 1, "computed_at": None}) == {"name": "x"}

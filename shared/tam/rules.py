"""Segment documents: the model behind Firestore `segments/{id}` and its validation.

Marketers edit these documents by hand (console, YAML), so validation is the product's safety net:
it accepts only catalogue segmentlets, the operators their type allows and values of the right
shape, and reports every problem with the field path that holds it
(`rules.all[2].value: expected a number for age, got "abc"`). What it returns is a typed `Segment`;
the compiler never sees the raw document.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.cron import cron_error
from shared.segmentlets import BY_CODE, OPERATORS, Segmentlet
from shared.tam.templates import DEFAULT_SCHEDULE, DEFAULT_TIMEZONE, TEMPLATES, Template

MAX_DEPTH = 5  # groups inside groups
MAX_CONDITIONS = 50
MAX_LIST_VALUES = 500
MAX_TEXT = 200
MAX_PERIOD_DAYS = 3650

# Fields the marketer writes; everything else on the document is ours.
USER_FIELDS = ("id", "name", "description", "template", "site_id", "period", "rules", "schedule", "enabled")
# Fields build_segments and validate_config write back. A change to only these is not an edit.
OUTPUT_FIELDS = ("status", "size", "entered", "left", "computed_at", "freshness", "computed_hash")

# Vocabularies known for sure (shared/beacons.py, shared/enrich/, docs/segmentlets.md): a value
# outside them is a typo that would silently match nobody, so it is rejected; case is forgiven.
MEDIUMS = ("direct", "internal", "search", "social", "email", "paid", "referral")
RFM_GROUPS = (
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Cannot lose them",
    "Hibernating",
    "Lost",
)
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "sex": ("M", "F", "U"),
    "device": ("desktop", "mobile", "tablet", "other"),
    "ref_media_fst": MEDIUMS,
    "ref_media_lst": MEDIUMS,
    "rfm": RFM_GROUPS,
}

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TZ = re.compile(r"[A-Za-z]+(?:/[A-Za-z0-9_+-]+){0,2}|UTC")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCALAR_VALUED = {"eq", "ne", "gt", "gte", "lt", "lte", "contains", "not_contains", "matches"}
_LIST_VALUED = {"in", "not_in", "contains_any", "contains_all"}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidSegment(ValueError):
    """The document cannot be compiled; `problems` name each field path and what is wrong."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Period:
    """Either the last `last_days` days up to the run day, or fixed dates (both inclusive)."""

    last_days: int | None = None
    start: date | None = None
    end: date | None = None

    def days(self, today: date) -> tuple[date, date]:
        """First and last day of the period for a run on `today` (in the segment's time zone)."""
        if self.last_days is not None:
            return today - timedelta(days=self.last_days - 1), today
        assert self.start is not None and self.end is not None
        return self.start, self.end


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Condition:
    segmentlet: Segmentlet
    op: str
    value: Any  # normalized: str, bool, int/float, or a tuple of them; None for exists/not_exists
    path: str


@dataclass(frozen=True)
class Group:
    kind: str  # "all" or "any"
    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    child: Rule


Rule = Condition | Group | Not


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    template: Template
    period: Period
    rules: Rule | None  # None: everyone in the period (templates that allow it)
    schedule: Schedule
    enabled: bool
    site_id: str | None = None
    description: str = ""
    definition: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def definition_hash(self) -> str:
        """Identifies what the marketer asked for (defaults resolved): changes exactly on an edit."""
        return definition_hash(self.definition)

    def conditions(self) -> list[Condition]:
        return list(_walk(self.rules)) if self.rules is not None else []


def _walk(rule: Rule) -> Any:
    if isinstance(rule, Condition):
        yield rule
    elif isinstance(rule, Not):
        yield from _walk(rule.child)
    else:
        for child in rule.children:
            yield from _walk(child)


def user_fields(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The document without what we write back: equal before and after a status write."""
    return {k: v for k, v in (doc or {}).items() if k not in OUTPUT_FIELDS}


def definition_hash(definition: Mapping[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_document(value: Any) -> Any:
    """YAML/JSON data as Firestore stores it: dates as ISO strings (Firestore has no date type)."""
    if isinstance(value, Mapping):
        return {str(k): to_document(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_document(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def parse_segment(segment_id: str, doc: Any) -> Segment:
    """Validate a segment document; raise InvalidSegment listing every problem found."""
    problems: list[Problem] = []
    segment = _Parser(problems).segment(segment_id, doc)
    if problems or segment is None:
        raise InvalidSegment(problems or [Problem("", "invalid segment")])
    return segment


def describe(value: Any) -> str:
    """A value as an error message quotes it: short, JSON-like, never a Python repr."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "nothing"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + '..."'


class _Parser:
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        self.conditions = 0

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- the document -------------------------------------------------------------------------

    def segment(self, segment_id: str, doc: Any) -> Segment | None:
        if not _ID.fullmatch(segment_id or ""):
            self.fail("id", f"{describe(segment_id)} is not a valid segment id (letters, digits, - and _, up to 63)")
        if not isinstance(doc, Mapping):
            self.fail("", f"a segment must be an object, got {describe(doc)}")
            return None
        for key in doc:
            if key not in USER_FIELDS and key not in OUTPUT_FIELDS:
                self.fail(str(key), f"unknown field; expected one of {', '.join(USER_FIELDS)}")
        if "id" in doc and doc["id"] != segment_id:
            self.fail("id", f"{describe(doc['id'])} differs from the document id {describe(segment_id)}")
        name = self.text(doc, "name", required=True)
        description = self.text(doc, "description", required=False, limit=2000) or ""
        site_id = self.text(doc, "site_id", required=False)
        if site_id is not None and not _SITE.fullmatch(site_id):
            self.fail("site_id", f"{describe(site_id)} is not a site id")
        template = self.template(doc.get("template"))
        period = self.period(doc.get("period", template.default_period if template else None))
        schedule = self.schedule(doc.get("schedule", DEFAULT_SCHEDULE))
        enabled = doc.get("enabled", True)
        if not isinstance(enabled, bool):
            self.fail("enabled", f"expected true or false, got {describe(enabled)}")
        rules = self.rules(doc.get("rules"), template)
        if self.problems or template is None or period is None or schedule is None or name is None:
            return None
        definition = {
            "name": name,
            "description": description,
            "template": template.id,
            "site_id": site_id,
            "period": to_document(doc.get("period", template.default_period)),
            "rules": _rule_document(rules),
            "schedule": {"cron": schedule.cron, "timezone": schedule.timezone},
            "enabled": enabled,
        }
        return Segment(
            segment_id, name, template, period, rules, schedule, bool(enabled), site_id, description, definition
        )

    def text(self, doc: Mapping[str, Any], key: str, required: bool, limit: int = MAX_TEXT) -> str | None:
        value = doc.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty text, got {describe(value)}")
            return None
        if len(value) > limit or _CONTROL.search(value):
            self.fail(key, f"must be at most {limit} characters without control characters")
            return None
        return value

    def template(self, value: Any) -> Template | None:
        if value is None:
            self.fail("template", f"is required; one of {', '.join(TEMPLATES)}")
            return None
        if not isinstance(value, str) or value not in TEMPLATES:
            self.fail("template", f"unknown template {describe(value)}; one of {', '.join(TEMPLATES)}")
            return None
        return TEMPLATES[value]

    def period(self, value: Any) -> Period | None:
        if value is None:
            return None  # the template was wrong: already reported
        if not isinstance(value, Mapping):
            self.fail("period", f"expected {{last_days: N}} or {{from: DATE, to: DATE}}, got {describe(value)}")
            return None
        keys = set(value)
        if keys == {"last_days"}:
            days = value["last_days"]
            if not isinstance(days, int) or isinstance(days, bool):
                self.fail("period.last_days", f"expected a whole number of days, got {describe(days)}")
                return None
            if not 1 <= days <= MAX_PERIOD_DAYS:
                self.fail("period.last_days", f"must be between 1 and {MAX_PERIOD_DAYS}, got {days}")
                return None
            return Period(last_days=days)
        if keys == {"from", "to"}:
            start, end = self.day("period.from", value["from"]), self.day("period.to", value["to"])
            if start is None or end is None:
                return None
            if start > end:
                self.fail("period", f"from {start.isoformat()} is after to {end.isoformat()}")
                return None
            if (end - start).days + 1 > MAX_PERIOD_DAYS:
                self.fail("period", f"spans more than {MAX_PERIOD_DAYS} days")
                return None
            return Period(start=start, end=end)
        self.fail("period", "expected either last_days, or both from and to")
        return None

    def day(self, path: str, value: Any) -> date | None:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                pass
            else:
                if 2000 <= parsed.year <= 2100:
                    return parsed
        self.fail(path, f"expected a date like 2026-01-31, got {describe(value)}")
        return None

    def schedule(self, value: Any) -> Schedule | None:
        if isinstance(value, str):
            value = {"cron": value}
        if not isinstance(value, Mapping):
            self.fail("schedule", f"expected {{cron, timezone}}, got {describe(value)}")
            return None
        for key in value:
            if key not in ("cron", "timezone"):
                self.fail(f"schedule.{key}", "unknown field; expected cron and timezone")
        cron, tz = value.get("cron"), value.get("timezone", DEFAULT_TIMEZONE)
        cron_problem = cron_error(cron)  # the unix-cron Cloud Scheduler accepts, as sync_schedules checks it
        cron_ok = cron_problem is None
        if cron_problem is not None:
            self.fail("schedule.cron", cron_problem)
        tz_ok = isinstance(tz, str) and _TZ.fullmatch(tz) is not None and _zone_exists(tz)
        if not tz_ok:
            self.fail("schedule.timezone", f"unknown time zone {describe(tz)}; e.g. Asia/Seoul")
        return Schedule(str(cron), str(tz)) if cron_ok and tz_ok else None

    # -- rules ----------------------------------------------------------------------------------

    def rules(self, value: Any, template: Template | None) -> Rule | None:
        if value is None:
            if template is not None and template.rules_required:
                self.fail("rules", f"template {template.id} needs at least one condition")
            return None
        rule = self.rule("rules", value, template, depth=0)
        if self.conditions > MAX_CONDITIONS:
            self.fail("rules", f"has {self.conditions} conditions; at most {MAX_CONDITIONS}")
        if rule is not None and template is not None:
            used = {c.segmentlet.code for c in _walk(rule)}
            for code in template.required:
                if code not in used:
                    self.fail("rules", f"template {template.id} needs a condition on {code}")
        return rule

    def rule(self, path: str, value: Any, template: Template | None, depth: int) -> Rule | None:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected a condition or a group (all, any, not), got {describe(value)}")
            return None
        groups = [k for k in ("all", "any", "not") if k in value]
        if groups:
            extra = [k for k in value if k != groups[0]]
            if extra:
                self.fail(path, f"a group has exactly one key ({groups[0]}); unexpected {', '.join(map(str, extra))}")
                return None
            kind = groups[0]
            if depth >= MAX_DEPTH:
                self.fail(path, f"rules nest deeper than {MAX_DEPTH} levels")
                return None
            if kind == "not":
                child = self.rule(f"{path}.not", value["not"], template, depth + 1)
                return Not(child) if child is not None else None
            items = value[kind]
            if not isinstance(items, list):
                self.fail(f"{path}.{kind}", f"expected a list of conditions, got {describe(items)}")
                return None
            if not items:
                self.fail(f"{path}.{kind}", "is empty; give at least one condition")
                return None
            children = [self.rule(f"{path}.{kind}[{i}]", item, template, depth + 1) for i, item in enumerate(items)]
            if any(c is None for c in children):
                return None
            return Group(kind, tuple(c for c in children if c is not None))
        return self.condition(path, value, template)

    def condition(self, path: str, value: Mapping[str, Any], template: Template | None) -> Condition | None:
        self.conditions += 1
        for key in value:
            if key not in ("segmentlet", "op", "value"):
                self.fail(f"{path}", f"unexpected key {describe(key)}; a condition has segmentlet, op and value")
                return None
        code, op = value.get("segmentlet"), value.get("op")
        if not isinstance(code, str) or code not in BY_CODE:
            hint = "is required" if code is None else f"unknown segmentlet {describe(code)}"
            self.fail(f"{path}.segmentlet", hint)
            return None
        segmentlet = BY_CODE[code]
        if template is not None and code not in template.segmentlets:
            self.fail(f"{path}.segmentlet", f"{code} is not offered by template {template.id}")
            return None
        if not isinstance(op, str) or op not in OPERATORS[segmentlet.type]:
            allowed = ", ".join(OPERATORS[segmentlet.type])
            what = "is required" if op is None else f"operator {describe(op)} is not allowed"
            self.fail(f"{path}.op", f"{what} for {code} ({segmentlet.type}); use one of {allowed}")
            return None
        normalized = self.value(f"{path}.value", segmentlet, op, value.get("value"), "value" in value)
        if normalized is _INVALID:
            return None
        return Condition(segmentlet, op, normalized, path)

    def value(self, path: str, s: Segmentlet, op: str, value: Any, given: bool) -> Any:
        if op in ("exists", "not_exists"):
            if given and value is not None:
                self.fail(path, f"{op} takes no value")
                return _INVALID
            return None
        if not given or value is None:
            self.fail(path, f"is required for {op}")
            return _INVALID
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.fail(path, f"between takes [low, high] for {s.code}, got {describe(value)}")
                return _INVALID
            low, high = (self.scalar(f"{path}[{i}]", s, v) for i, v in enumerate(value))
            if low is _INVALID or high is _INVALID:
                return _INVALID
            if low > high:
                self.fail(path, f"low {low} is greater than high {high}")
                return _INVALID
            return (low, high)
        if op in _LIST_VALUED:
            if not isinstance(value, list) or not value:
                self.fail(path, f"{op} takes a non-empty list for {s.code}, got {describe(value)}")
                return _INVALID
            if len(value) > MAX_LIST_VALUES:
                self.fail(path, f"has {len(value)} values; at most {MAX_LIST_VALUES}")
                return _INVALID
            items = [self.scalar(f"{path}[{i}]", s, v) for i, v in enumerate(value)]
            if any(i is _INVALID for i in items):
                return _INVALID
            return tuple(dict.fromkeys(items))  # duplicates change nothing but contains_all's count
        return self.scalar(path, s, value, matches=op == "matches")

    def scalar(self, path: str, s: Segmentlet, value: Any, matches: bool = False) -> Any:
        if s.type == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                self.fail(path, f"expected a number for {s.code}, got {describe(value)}")
                return _INVALID
            return value
        if s.type == "boolean":
            if not isinstance(value, bool):
                self.fail(path, f"expected true or false for {s.code}, got {describe(value)}")
                return _INVALID
            return value
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"expected a non-empty text for {s.code}, got {describe(value)}")
            return _INVALID
        if len(value) > (100 if matches else MAX_TEXT) or _CONTROL.search(value):
            limit = 100 if matches else MAX_TEXT
            self.fail(path, f"must be at most {limit} characters without control characters")
            return _INVALID
        vocabulary = VOCABULARIES.get(s.code)
        if vocabulary is not None:
            for known in vocabulary:
                if known.casefold() == value.strip().casefold():
                    return known
            self.fail(path, f"{describe(value)} is not a known {s.code}; one of {', '.join(vocabulary)}")
            return _INVALID
        return value


_INVALID: Any = object()


def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _rule_document(rule: Rule | None) -> Any:
    """A validated rule back as a document: normalized values, so the hash ignores cosmetic edits."""
    if rule is None:
        return None
    if isinstance(rule, Condition):
        value = list(rule.value) if isinstance(rule.value, tuple) else rule.value
        out: dict[str, Any] = {"segmentlet": rule.segmentlet.code, "op": rule.op}
        if value is not None:
            out["value"] = value
        return out
    if isinstance(rule, Not):
        return {"not": _rule_document(rule.child)}
    return {rule.kind: [_rule_document(c) for c in rule.children]}

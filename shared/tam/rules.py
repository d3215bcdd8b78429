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
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.cron import MIN_INTERVAL_MINUTES, check_schedule
from shared.segmentlets import BY_CODE, OPERATORS, Segmentlet
from shared.tam.templates import DEFAULT_SCHEDULE, DEFAULT_TIMEZONE, TEMPLATES, Template

MAX_DEPTH = 5  # groups inside groups
MAX_CONDITIONS = 50
MAX_LIST_VALUES = 500
MAX_TEXT = 200
MAX_PERIOD_DAYS = 3650
MAX_ERRORS = 20  # problems listed; the rest are counted (a status must stay far below Firestore's 1 MiB)
INT64 = (-(2**63), 2**63 - 1)  # whole numbers BigQuery takes as parameters

# Fields the marketer writes; everything else on the document is ours.
USER_FIELDS = ("id", "name", "description", "template", "site_id", "period", "rules", "schedule", "enabled")
# Fields build_segments and validate_config write back. A change to only these is not an edit.
OUTPUT_FIELDS = ("status", "size", "entered", "left", "computed_at", "freshness", "computed_hash")

# Vocabularies known for sure (shared/beacons.py, shared/enrich/, docs/segmentlets.md): a value
# outside them is a typo that would silently match nobody, so it is rejected; case is forgiven.
MEDIUMS = ("direct", "internal", "search", "social", "email", "paid", "referral", "ai_assistant")
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
_SURROGATE = re.compile(r"[\ud800-\udfff]")
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


def parse_segment(
    segment_id: str,
    doc: Any,
    *,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    now: datetime | None = None,
) -> Segment:
    """Validate a segment document; raise InvalidSegment listing the problems found.

    The schedule gets the check sync_schedules applies (shared/cron.py), with the same minimum interval
    (ScheduleSettings.min_interval_minutes) and fires searched from `now` (the current time when None).
    At most MAX_ERRORS problems are listed, then one that counts the rest.
    """
    problems: list[Problem] = []
    segment = _Parser(problems, min_interval_minutes, now).segment(segment_id, doc)
    if problems or segment is None:
        raise InvalidSegment(_capped(problems or [Problem("", "invalid segment")]))
    return segment


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_ERRORS:
        return problems
    rest = len(problems) - MAX_ERRORS
    return [*problems[:MAX_ERRORS], Problem("", f"… and {rest} more problems (the first {MAX_ERRORS} are listed)")]


def describe(value: Any) -> str:
    """A value as an error message quotes it: short, JSON-like, never a Python repr, always storable
    (lone surrogates escaped, long texts and numbers cut short)."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, int) and not isinstance(value, bool) and not -(10**30) < value < 10**30:
        return f"a {_digit_count(abs(value))}-digit number"
    if isinstance(value, str) and len(value) > 60:
        value = value[:60]
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = text if len(text) <= 60 else text[:57] + '..."'
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _digit_count(number: int) -> int:
    """How many decimal digits a non-negative int has, however long (str() refuses more than 4300)."""
    count = max(1, int((number.bit_length() - 1) * math.log10(2)))  # a lower bound, within one
    while number >= 10**count:
        count += 1
    return count


def field_path(key: Any) -> str:
    """A document key as a field path in a message: cut short, lone surrogates escaped."""
    text = str(key)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unicode_problem(value: str) -> str | None:
    """Why a text cannot be stored (Firestore, BigQuery and JSON take only valid UTF-8); None if it can."""
    found = _SURROGATE.search(value)
    if found is None:
        return None
    return f"must be valid Unicode text (a lone surrogate at character {found.start() + 1})"


class _Parser:
    def __init__(self, problems: list[Problem], min_interval_minutes: int, now: datetime | None):
        self.problems = problems
        self.conditions = 0
        self.stopped = False  # past MAX_CONDITIONS: the rest of the rules is not checked
        self.min_interval_minutes = min_interval_minutes
        self.now = now

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
                self.fail(field_path(key), f"unknown field; expected one of {', '.join(USER_FIELDS)}")
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
        unicode_problem = _unicode_problem(value)
        if unicode_problem is not None:
            self.fail(key, unicode_problem)
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
                self.fail("period.last_days", f"must be between 1 and {MAX_PERIOD_DAYS}, got {describe(days)}")
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
        # The check sync_schedules applies (shared/cron.py): the same schedules refused, the same messages.
        checked = check_schedule(value, DEFAULT_TIMEZONE, self.min_interval_minutes, self.now)
        for path, message in checked.problems:
            self.fail(path, message)
        if checked.cron is None or checked.timezone is None:
            return None
        return Schedule(checked.cron, checked.timezone)

    # -- rules ----------------------------------------------------------------------------------

    def rules(self, value: Any, template: Template | None) -> Rule | None:
        if value is None:
            if template is not None and template.rules_required:
                self.fail("rules", f"template {template.id} needs at least one condition")
            return None
        rule = self.rule("rules", value, template, depth=0)
        if rule is not None and template is not None:
            used = {c.segmentlet.code for c in _walk(rule)}
            for code in template.required:
                if code not in used:
                    self.fail("rules", f"template {template.id} needs a condition on {code}")
        return rule

    def rule(self, path: str, value: Any, template: Template | None, depth: int) -> Rule | None:
        if self.stopped:
            return None
        if not isinstance(value, Mapping):
            self.fail(path, f"expected a condition or a group (all, any, not), got {describe(value)}")
            return None
        groups = [k for k in ("all", "any", "not") if k in value]
        if groups:
            extra = [k for k in value if k != groups[0]]
            if extra:
                unexpected = ", ".join(field_path(k) for k in extra[:5])
                self.fail(path, f"a group has exactly one key ({groups[0]}); unexpected {unexpected}")
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
        if self.conditions > MAX_CONDITIONS:  # stop here: a huge document must not yield a huge verdict
            self.stopped = True
            message = f"has more than {MAX_CONDITIONS} conditions; at most {MAX_CONDITIONS} (checking stopped there)"
            self.problems.insert(0, Problem("rules", message))
            return None
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
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(path, f"expected a number for {s.code}, got {describe(value)}")
                return _INVALID
            if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
                self.fail(
                    path,
                    f"{describe(value)} is outside the whole numbers BigQuery takes ({INT64[0]} to {INT64[1]})",
                )
                return _INVALID
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(path, f"expected a finite number for {s.code}, got {describe(value)}")
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
        unicode_problem = _unicode_problem(value)
        if unicode_problem is not None:
            self.fail(path, unicode_problem)
            return _INVALID
        # One form for one text: data arrives composed (NFC), so a decomposed 서울 would match nobody.
        value = unicodedata.normalize("NFC", value)
        limit = 100 if matches else MAX_TEXT
        if len(value) > limit or _CONTROL.search(value):
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

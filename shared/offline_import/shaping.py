"""Records to rows: each record becomes a protocol event (`identify` or `conv`) and goes through
the collector's own `beacons.validate_event` and `beacons.event_rows`, so an imported row obeys
the rules a tracked one does. Event ids hash the normalised content: a re-import adds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from shared import beacons
from shared.beacons import Context, Invalid, Limits, Rejection
from shared.offline_import import consents
from shared.offline_import.mapping import ITEM_FIELDS, Plan, header_key
from shared.offline_import.people import region_name, resolve_names
from shared.offline_import.sources import Line, Source

_T = TypeVar("_T")

# Values of the `type` column: everything else is rejected rather than guessed.
CONV_TYPES = dict.fromkeys(["order", "sale", "purchase", "주문", "판매", "구매"], "order") | dict.fromkeys(
    ["refund", "return", "cancel", "반품", "환불", "취소"], "refund"
)
DEFAULT_TIMEZONE = "Asia/Seoul"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cdp:offline-import")
# Envelope columns left out of the content hash: they describe this run, not the record.
_RUN_COLUMNS = frozenset({"event_id", "event_date", "event_ts", "client_ts", "collected_at", "request_id"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ImportJob:
    """What to import and how; `as_of` dates customer records that have no joined_at."""

    kind: str
    site_id: str
    source: Source
    plan: Plan
    as_of: datetime
    tz: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    chunk_size: int = 2000

    @property
    def request_id(self) -> str:
        return f"{self.source.path.name}#{self.source.sha256[:12]}"


def records(source: Source, plan: Plan) -> Iterator[list[Line]]:
    """The file's records in a fixed order: a line each, or an order's lines grouped by order id.

    Grouping reads the whole file first, since an export need not keep an order's lines together;
    records come in the order of their first line, which keeps the resume point meaningful.
    """
    if not plan.line_items:
        yield from ([line] for line in source.lines())
        return
    order_column, type_column = plan.fields["order_id"], plan.fields.get("type")
    groups: dict[tuple[str, str], list[Line]] = {}
    ordered: list[list[Line]] = []
    for line in source.lines():
        order_id = _text(line.values.get(order_column)) if line.values else None
        if line.values is None or order_id is None:
            ordered.append([line])
            continue
        key = (order_id, header_key(str(line.values.get(type_column) or "")) if type_column else "")
        if key not in groups:
            groups[key] = []
            ordered.append(groups[key])
        groups[key].append(line)
    yield from ordered


@dataclass(frozen=True)
class Dropped:
    """An invalid optional field left out of a kept record: its name and the problem, labelled by line."""

    name: str
    rejection: Rejection


@dataclass(frozen=True)
class Shaped:
    """A valid row, the invalid optional fields that were dropped to keep it, and the consent and
    subscription ledger rows the record's columns give (table, row)."""

    table: str
    row: dict[str, Any]
    dropped: list[Dropped] = field(default_factory=list)
    ledger: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _Draft:
    """A record as a protocol event, plus what is needed to name its id and its errors."""

    event: dict[str, Any]
    key: str  # member_id or order_id
    ts_from_file: bool
    aliases: Mapping[str, str]  # protocol field -> the field the user mapped (ts -> ordered_at)
    item_lines: list[int] = field(default_factory=list)  # the line of each item, for line-item files
    required: frozenset[str] = frozenset()  # props that identify the record: never dropped
    columns: dict[str, Any] = field(default_factory=dict)  # row columns the protocol has no props for
    dropped: list[Dropped] = field(default_factory=list)
    ledger: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


# An order's own props: without them there is no order (the key, its type and its money).
_ORDER_REQUIRED = frozenset({"conv_type", "order_id", "revenue", "currency", "channel", "items"})
# Name and region values are checked here, since the protocol has no such props: plain text within
# the protocol's property length.
_TEXT_COLUMNS = {"full_name": "name", "given_name": "given_name", "family_name": "family_name", "region": "region"}


class Shaper:
    """Turns records into validated rows through the collector's validation, or raises Invalid.

    Only a record's key (member_id; an order's id, time, link to a customer and money) can reject
    it: an invalid optional field is dropped, reported as `Dropped`, and the record validated again.
    """

    def __init__(self, job: ImportJob, ctx: Context, limits: Limits):
        self.job, self.ctx, self.limits = job, ctx, limits

    def shape(self, group: list[Line]) -> Shaped:
        first = group[0]
        if first.error is not None:
            raise Invalid(first.error.reason, first.error.field, first.error.detail)
        draft = self._customer(first) if self.job.kind == "customers" else self._order(group)
        for _ in range(len(draft.event["props"]) + 2):  # each pass drops a field or ends
            try:
                valid = beacons.validate_event(draft.event, 0, self.ctx, self.limits)
                table, row = beacons.event_rows(valid, 0, self.ctx)
            except Invalid as exc:
                self._drop(exc.rejection, first.number, draft)
            else:
                row.update(draft.columns)
                row["event_id"] = self._event_id(draft.key, row, draft.ts_from_file)
                return Shaped(table, row, draft.dropped, draft.ledger)
        raise AssertionError("unreachable: every pass drops a field or returns")  # pragma: no cover

    def _drop(self, rejection: Rejection, n: int, draft: _Draft) -> None:
        """Leave out the optional field the rejection names, or raise it when it names the record's key."""
        props: dict[str, Any] = draft.event["props"]
        name: str | None = None
        if rejection.field == "events[0].ts" and self.job.kind == "customers" and draft.ts_from_file:
            draft.event["ts"], draft.ts_from_file = _ms(self.job.as_of), False  # dated as the export
            name = "ts"
        elif rejection.field.startswith("events[0].props."):
            path = rejection.field.removeprefix("events[0].props.")
            owners = [
                k
                for k in props
                if path == k or path.startswith((f"{k}.", f"{k}[")) or (len(k) > beacons.MAX_NAME and path == k[:20])
            ]
            name = max(owners, key=len, default=None)
            if name is not None and name not in draft.required:
                del props[name]
            else:
                name = None
        label = self._relabel(rejection, n, draft)
        if name is None:
            raise label
        draft.dropped.append(_dropped(draft.aliases.get(name, name), label.rejection))

    def _split(self, line: Line) -> tuple[dict[str, Any], dict[str, Any]]:
        """Mapped field values and the other columns' values, blanks dropped and text trimmed."""
        mapped: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        by_column, ignored = self.job.plan.by_column, self.job.plan.ignored
        for column, value in (line.values or {}).items():
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                continue
            target = by_column.get(column)
            if target is not None:
                mapped[target] = value
            elif column not in ignored:
                extra[column] = value
        return mapped, extra

    def _customer(self, line: Line) -> _Draft:
        n = line.number
        values, traits = self._split(line)
        member_id = _text(values.get("member_id"))
        if member_id is None:
            raise Invalid("missing_field", f"line {n}: member_id", f"line {n}: member_id is required")
        dropped: list[Dropped] = []
        birth_year = values.get("birth_year")
        if birth_year is None and "birth_date" in values:
            birth_year = _optional(dropped, "birth_date", _year_of, values["birth_date"], f"line {n}: birth_date")
        joined = values.get("joined_at")
        when = None
        if joined is not None:
            when = _optional(dropped, "joined_at", parse_time, joined, self.job.tz, f"line {n}: joined_at")
        props = {
            **traits,
            "sex": values.get("sex"),
            "birth_year": birth_year,
            "email": values.get("email"),
            "phone": values.get("phone"),
        }
        event = {
            "event_id": _PLACEHOLDER_ID,
            "type": "identify",
            "ts": _ms(when or self.job.as_of),
            "member_id": member_id,
            "props": {k: v for k, v in props.items() if v is not None},
        }
        aliases = {"ts": "joined_at"} | ({"birth_year": "birth_date"} if "birth_year" not in values else {})
        columns = self._people(values, n, dropped)
        ledger = self._consents(values, member_id, when, n, dropped)
        return _Draft(event, member_id, when is not None, aliases, columns=columns, dropped=dropped, ledger=ledger)

    def _consents(
        self, values: Mapping[str, Any], member_id: str, joined: datetime | None, n: int, dropped: list[Dropped]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Consent and subscription columns (shared/offline_import/consents.py), dated by consent_at,
        else the join date, else the export."""
        if not any(name in values for name in consents.FIELDS if name != "consent_at"):
            return []
        when = None
        if "consent_at" in values:
            when = _optional(
                dropped, "consent_at", parse_time, values["consent_at"], self.job.tz, f"line {n}: consent_at"
            )
        rows, problems = consents.ledger_rows(
            values, self.job.site_id, member_id, when or joined or self.job.as_of, self.ctx.collected_at,
            self.job.request_id, n,
        )  # fmt: skip
        dropped.extend(_dropped(name, rejection) for name, rejection in problems)
        return rows

    def _people(self, values: Mapping[str, Any], n: int, dropped: list[Dropped]) -> dict[str, Any]:
        """Name and region columns: names split by `resolve_names`, Korean regions named as geo names them."""
        text = {f: str(values[f]) for f in ("name", "given_name", "family_name", "region") if f in values}
        full, family, given = resolve_names(text.get("name"), text.get("given_name"), text.get("family_name"))
        region = region_name(text["region"]) if "region" in text else None
        columns = {"full_name": full, "given_name": given, "family_name": family, "region": region}
        for column, value in list(columns.items()):
            if value is not None and len(value) > beacons.MAX_PROP_STRING:
                label = f"line {n}: {_TEXT_COLUMNS[column]}"
                detail = f"{label} is {len(value)} characters; at most {beacons.MAX_PROP_STRING}"
                dropped.append(_dropped(_TEXT_COLUMNS[column], Rejection("string_too_long", label, detail)))
                columns[column] = None
        return {k: v for k, v in columns.items() if v is not None}

    def _order(self, group: list[Line]) -> _Draft:
        n = group[0].number
        split = [self._split(line) for line in group]
        values: dict[str, Any] = {}
        for mapped, _ in split:  # order-level fields: the first non-blank value among the lines
            for name, value in mapped.items():
                values.setdefault(name, value)
        order_id = _text(values.get("order_id"))
        if order_id is None:
            raise Invalid("missing_field", f"line {n}: order_id", f"line {n}: order_id is required")
        if values.get("ordered_at") is None:
            raise Invalid("missing_field", f"line {n}: ordered_at", f"line {n}: ordered_at is required")
        when = parse_time(values["ordered_at"], self.job.tz, f"line {n}: ordered_at")
        member_id = _text(values.get("member_id"))
        # Contact keys normalised by the collector's own rules, so identity resolution can match them.
        # They link the order to a customer: an invalid one is dropped only when another link remains.
        dropped: list[Dropped] = []
        email = _optional(dropped, "email", beacons.parse_email, values.get("email"), f"line {n}: email")
        phone = _optional(dropped, "phone", beacons.parse_phone, values.get("phone"), f"line {n}: phone")
        if not (member_id or email or phone):
            if dropped:  # the only link is invalid: that is the record's key
                problem = dropped[0].rejection
                raise Invalid(problem.reason, problem.field, problem.detail.removesuffix(_DROPPED))
            raise Invalid(
                "missing_field",
                f"line {n}: member_id",
                f"line {n}: an order needs member_id, email or phone to be linked to a customer",
            )
        conv_type = _conv_type(values.get("type"), f"line {n}: type")
        items, item_lines = self._items(group, split, values.get("items"), n)
        revenue = _number(values["revenue"]) if "revenue" in values else _derive_revenue(items, item_lines)
        if isinstance(revenue, int | float) and (revenue < 0 or conv_type == "refund"):
            conv_type, revenue = "refund", -abs(revenue)  # refunds are stored negative: SUM(revenue) nets out
        props = {
            **split[0][1],
            "conv_type": conv_type,
            "order_id": order_id,
            "revenue": revenue,
            "currency": values.get("currency"),
            "channel": "offline",
            "store_id": values.get("store_id"),
            "items": items,
            "email": email,
            "phone": phone,
        }
        event = {
            "event_id": _PLACEHOLDER_ID,
            "type": "conv",
            "ts": _ms(when),
            "member_id": member_id,
            "props": {k: v for k, v in props.items() if v is not None},
        }
        return _Draft(event, order_id, True, {"ts": "ordered_at"}, item_lines, _ORDER_REQUIRED, dropped=dropped)

    def _items(
        self, group: list[Line], split: list[tuple[dict[str, Any], dict[str, Any]]], column: Any, n: int
    ) -> tuple[Any, list[int]]:
        if self.job.plan.line_items:
            items: list[dict[str, Any]] = []
            lines: list[int] = []
            for line, (mapped, _) in zip(group, split, strict=True):
                item = {
                    f: _number(mapped[f]) if f in ("price", "quantity") else mapped[f]
                    for f in ITEM_FIELDS
                    if f in mapped
                }
                if item:
                    items.append(item)
                    lines.append(line.number)
            return items or None, lines
        if isinstance(column, str):
            try:
                column = json.loads(column)
            except ValueError:
                raise Invalid("wrong_type", f"line {n}: items", f"line {n}: items must be a JSON array") from None
        return column, [n] * len(column) if isinstance(column, list) else []

    def _relabel(self, rejection: Rejection, n: int, draft: _Draft) -> Invalid:
        """Name the file position and field instead of the protocol path (events[0].props.x)."""
        match = re.fullmatch(r"events\[0\](?:\.props)?\.?(.*)", rejection.field, re.DOTALL)
        name = match.group(1) if match else rejection.field
        name = draft.aliases.get(name, name)
        item = re.fullmatch(r"items\[(\d+)\]\.?(.*)", name, re.DOTALL)
        if item and self.job.plan.line_items and int(item.group(1)) < len(draft.item_lines):
            n, name = draft.item_lines[int(item.group(1))], item.group(2) or "items"
        label = f"line {n}: {name}" if name else f"line {n}"
        return Invalid(rejection.reason, label, rejection.detail.replace(rejection.field, label))

    def _event_id(self, key: str, row: Mapping[str, Any], ts_from_file: bool) -> str:
        """uuid5 of site, kind, natural key and the normalised content: same record, same id.

        The time is part of the content only when it came from the file: a defaulted time (the
        file's mtime) changes when the file is copied, which must not make old records look new.
        """
        content = {k: v for k, v in row.items() if v is not None and k not in _RUN_COLUMNS}
        if ts_from_file:
            content["event_ts"] = row["event_ts"]
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False, default=str).encode())
        name = "\x1f".join((self.ctx.site_id, self.job.kind, key, digest.hexdigest()))
        return str(uuid.uuid5(_ID_NAMESPACE, name))


_PLACEHOLDER_ID = str(uuid.UUID(int=0))  # the real id hashes the validated row, known only afterwards
_DROPPED = "; the field was dropped and the record kept"


def _dropped(name: str, rejection: Rejection) -> Dropped:
    return Dropped(name, dataclasses.replace(rejection, detail=rejection.detail + _DROPPED))


def _optional(dropped: list[Dropped], name: str, parse: Callable[..., _T], *args: Any) -> _T | None:
    """`parse(*args)`, or None with the problem noted when the value is invalid."""
    try:
        return parse(*args)
    except Invalid as exc:
        dropped.append(_dropped(name, exc.rejection))
        return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()  # numeric ids from NDJSON (member_id: 12) are ids, not numbers
    return text or None


def _number(value: Any) -> Any:
    """A number from '12,000', '₩12,000' or '12000원'; anything else is returned for validation to reject."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        try:
            number = float(re.sub(r"[,\s₩원]", "", value))
        except ValueError:
            return value
    return int(number) if number.is_integer() else number


def _derive_revenue(items: Any, lines: list[int]) -> float | int | None:
    """Σ price × quantity (quantity 1 when absent) when the file has no revenue column."""
    if not isinstance(items, list) or not items:
        return None
    total: float | int = 0
    for index, item in enumerate(items):
        price = _number(item.get("price")) if isinstance(item, dict) else None
        quantity = _number(item.get("quantity") or 1) if isinstance(item, dict) else None
        if not (_is_number(price) and _is_number(quantity)) or price is None or quantity is None:
            label = f"line {lines[index]}: price" if index < len(lines) else "items"
            raise Invalid(
                "missing_field" if price is None else "wrong_type",
                label,
                f"{label}: revenue is absent, so every item needs a numeric price and quantity",
            )
        total += price * quantity
    return total


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _conv_type(value: Any, label: str) -> str:
    if value is None:
        return "order"
    conv_type = CONV_TYPES.get(header_key(str(value)))
    if conv_type is None:
        raise Invalid(
            "invalid_value",
            label,
            f"{label} {str(value)[:40]!r} is neither an order nor a refund (known: {', '.join(CONV_TYPES)})",
        )
    return conv_type


def _year_of(value: Any, label: str) -> int:
    match = re.match(r"\s*(\d{4})(?:[-./년\s]|\d{4}\b|$)", str(value))
    if not match:
        raise Invalid("invalid_value", label, f"{label} {str(value)[:40]!r} is not a date like 1990-05-03")
    return int(match.group(1))


def parse_time(value: Any, tz: tzinfo, label: str) -> datetime:
    """A point in time from the spellings exports use; naive times are in `tz` (Korea by default).

    ISO 8601, `2024/3/1 9:05`, `2024.03.01`, `20240301`, `20240301093000`, or epoch seconds or
    milliseconds (numbers, or 10/13-digit strings).
    """
    text = str(value).strip()
    try:
        if _is_number(value) or (text.isdigit() and len(text) in (10, 13)):
            number = float(text)
            return _EPOCH + timedelta(milliseconds=number if abs(number) >= 1e11 else number * 1000)
        if text.isdigit() and len(text) in (8, 12, 14):
            parsed = datetime.strptime(text, {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}[len(text)])
        else:
            match = re.fullmatch(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})\.?(?:[ T]+(\d{1,2})(:.*)?)?", text)
            if not match:
                raise ValueError(text)
            year, month, day, hour, rest = match.groups()
            iso = f"{year}-{int(month):02d}-{int(day):02d}" + (f"T{int(hour):02d}{rest or ':00'}" if hour else "")
            parsed = datetime.fromisoformat(iso.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise Invalid(
            "invalid_timestamp", label, f"{label} {text[:40]!r} is not a date/time (use ISO 8601 like 2024-03-01 14:30)"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)


def _ms(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(milliseconds=1)

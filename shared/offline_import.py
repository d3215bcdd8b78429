"""Offline import: CRM customers and POS orders from CSV or NDJSON files into the raw tables.

Each record becomes a protocol event (`identify` or `conv`) and goes through the collector's own
`beacons.validate_event` and `beacons.event_rows`, so an imported row obeys the rules a tracked one
does; a record that fails becomes a bad row and the import goes on. Event ids hash the normalised
content, so an unchanged re-import inserts nothing, and a state file per (file, mapping) lets an
interrupted import resume where it stopped. Usage and decisions: docs/import.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import sys
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tqdm import tqdm

from shared import beacons
from shared.beacons import Context, Invalid, Limits, Rejection
from shared.config import ConfigError, Settings, Site
from shared.ports import InsertResult, TransientError, Warehouse

KINDS = ("customers", "orders")
TABLES = {"customers": "raw.user", "orders": "raw.conv"}
BAD_ROWS = "raw.bad_rows"
IGNORE = "-"  # mapping target that drops a column (e.g. a resident registration number)
ITEM_FIELDS = ("product_id", "product_name", "category", "price", "quantity")
FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("member_id", "sex", "birth_year", "birth_date", "email", "phone", "joined_at"),
    "orders": (
        "order_id",
        "ordered_at",
        "type",
        "member_id",
        "email",
        "phone",
        "store_id",
        "revenue",
        "currency",
        "items",
        *ITEM_FIELDS,
    ),
}
# Headers recognised without a mapping, compared after `_header_key` (case, spaces, _-.() ignored).
_SYNONYM_TEXT = {
    "member_id": "member_id member_no customer_id customer_no user_id 회원ID 회원아이디 회원번호 고객ID 고객번호 "
    "아이디",
    "sex": "sex gender 성별",
    "birth_year": "birth_year year_of_birth 생년 출생연도 출생년도",
    "birth_date": "birth_date birthday date_of_birth dob 생년월일 생일",
    "email": "email e-mail email_address mail 이메일 이메일주소 메일",
    "phone": "phone mobile phone_number mobile_phone cell_phone tel 휴대폰 휴대폰번호 휴대전화 휴대전화번호 핸드폰 "
    "전화번호 연락처",
    "joined_at": "joined_at join_date signup_date signed_up_at registered_at created_at 가입일 가입일시 가입일자 "
    "등록일",
    "order_id": "order_id order_no order_number receipt_no transaction_id 주문번호 주문ID 영수증번호 거래번호",
    "ordered_at": "ordered_at order_date order_time order_datetime purchased_at transaction_date 주문일시 주문일자 "
    "주문일 구매일시 결제일시 거래일시",
    "type": "type order_type transaction_type 구분 주문구분 주문유형 거래구분 거래유형",
    "store_id": "store_id store_code store shop_id branch_code 매장코드 매장ID 매장번호 지점코드",
    "revenue": "revenue amount total order_total total_amount paid_amount payment_amount 결제금액 주문금액 총결제금액 "
    "실결제금액 매출액",
    "currency": "currency 통화",
    "items": "items line_items 상품목록",
    "product_id": "product_id product_code sku item_id 상품코드 상품번호 상품ID 품번",
    "product_name": "product_name item_name product 상품명 품명",
    "category": "category product_category 카테고리 분류 상품분류",
    "price": "price unit_price 단가 판매가 가격",
    "quantity": "quantity qty 수량",
}
SYNONYMS: dict[str, tuple[str, ...]] = {target: tuple(text.split()) for target, text in _SYNONYM_TEXT.items()}
# Values of the `type` column: everything else is rejected rather than guessed.
CONV_TYPES = dict.fromkeys(["order", "sale", "purchase", "주문", "판매", "구매"], "order") | dict.fromkeys(
    ["refund", "return", "cancel", "반품", "환불", "취소"], "refund"
)
DEFAULT_TIMEZONE = "Asia/Seoul"
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".local" / "import-state"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cdp:offline-import")
# Envelope columns left out of the content hash: they describe this run, not the record.
_RUN_COLUMNS = frozenset({"event_id", "event_date", "event_ts", "client_ts", "collected_at", "request_id"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnusableFile(Exception):
    """The file as a whole cannot be imported (exit 2); raised before anything is written."""


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class Line:
    """One record as read: where it starts, its values by column, and what it was, for bad rows."""

    number: int
    values: dict[str, Any] | None
    raw: str | dict[str, Any]  # the NDJSON line's text, or the CSV row by header
    error: Rejection | None = None

    @property
    def payload(self) -> str:
        """Serialised only for rejected lines: most lines never need it."""
        return self.raw if isinstance(self.raw, str) else json.dumps(self.raw, ensure_ascii=False)


@dataclass(frozen=True)
class Source:
    """A decoded input file; the sha256 of its bytes names its resume state."""

    path: Path
    sha256: str
    format: str
    encoding: str
    text: str
    columns: tuple[str, ...]
    mtime: datetime
    delimiter: str = ","

    @property
    def data_lines(self) -> int:
        """Physical lines after the header: the progress bar's total."""
        lines = self.text.count("\n") + (0 if self.text.endswith("\n") else 1)
        return max(lines - (1 if self.format == "csv" else 0), 0)

    def lines(self) -> Iterator[Line]:
        return self._csv_lines() if self.format == "csv" else self._ndjson_lines()

    def _csv_lines(self) -> Iterator[Line]:
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
        end, header_seen = 0, False
        try:
            for row in reader:
                start, end = end + 1, reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                named = dict(zip(self.columns, row, strict=False))
                extra = row[len(self.columns) :]
                if any(cell.strip() for cell in extra):
                    detail = f"line {start} has {len(row)} fields; the header has {len(self.columns)}"
                    rejection = Rejection("malformed_line", f"line {start}", detail)
                    yield Line(start, None, {**named, "": extra}, rejection)
                    continue
                yield Line(start, {c: v for c, v in named.items() if c}, named)
        except csv.Error as exc:
            raise UnusableFile(f"{self.path.name} is not readable CSV after line {end}: {exc}") from exc

    def _ndjson_lines(self) -> Iterator[Line]:
        for number, text in enumerate(self.text.split("\n"), 1):
            text = text.rstrip("\r")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError:
                yield Line(
                    number, None, text, Rejection("malformed_json", f"line {number}", f"line {number} is not JSON")
                )
                continue
            if not isinstance(value, dict):
                detail = f"line {number} is not a JSON object"
                yield Line(number, None, text, Rejection("not_an_object", f"line {number}", detail))
                continue
            yield Line(number, value, text)


def read_source(path: Path, fmt: str | None = None, encoding: str | None = None) -> Source:
    """Read and decode a file, find its columns; UnusableFile when that is impossible."""
    try:
        data = path.read_bytes()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        raise UnusableFile(f"cannot read {path}: {exc.strerror}") from exc
    fmt = fmt or _format_of(path)
    text, used = _decode(data, path, encoding)
    if not unicodedata.is_normalized("NFC", text):  # Hangul from macOS exports arrives decomposed
        text = unicodedata.normalize("NFC", text)
    digest = hashlib.sha256(data).hexdigest()
    if fmt == "csv":
        first = next((line for line in text.splitlines() if line.strip()), "")
        delimiter = max(",\t;|", key=first.count) if first else ","
        header = next(csv.reader([first], delimiter=delimiter), [])
        columns = tuple(c.strip() for c in header)
        duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
        if duplicates:
            raise UnusableFile(f"{path.name}: column {', '.join(duplicates)} appears more than once in the header")
        source = Source(path, digest, fmt, used, text, columns, mtime, delimiter)
    else:
        seen: dict[str, None] = {}
        source = Source(path, digest, fmt, used, text, (), mtime)
        for line in source.lines():
            seen.update(dict.fromkeys(line.values or {}))
        source = Source(path, digest, fmt, used, text, tuple(seen), mtime)
    if not any(source.columns):
        raise UnusableFile(f"{path.name} has no {'header' if fmt == 'csv' else 'JSON object lines'}")
    return source


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise UnusableFile(f"cannot tell the format of {path.name} from its extension; pass --format csv or ndjson")


def _decode(data: bytes, path: Path, encoding: str | None) -> tuple[str, str]:
    """UTF-8 (BOM or not) first, then CP949, the superset of EUC-KR that Korean Excel writes."""
    for name in [encoding] if encoding else ["utf-8-sig", "cp949"]:
        try:
            return data.decode(name).removeprefix("\ufeff"), name
        except LookupError as exc:
            raise UnusableFile(f"unknown encoding {name!r}") from exc
        except UnicodeDecodeError as exc:
            failure = exc
    raise UnusableFile(
        f"{path.name} is not {encoding or 'UTF-8 or CP949/EUC-KR'} (byte {failure.start}); pass --encoding"
    )


# ---------------------------------------------------------------- mapping


@dataclass(frozen=True)
class Plan:
    """Which file column feeds which field; unmapped columns become traits / order properties."""

    kind: str
    by_column: Mapping[str, str]
    ignored: frozenset[str] = frozenset()

    @cached_property
    def fields(self) -> dict[str, str]:
        return {target: column for column, target in self.by_column.items()}

    @cached_property
    def line_items(self) -> bool:
        """One item per line, lines grouped by order id (rather than an `items` JSON column)."""
        return self.kind == "orders" and any(f in self.fields for f in ITEM_FIELDS)

    def fingerprint(self) -> str:
        text = json.dumps([self.kind, sorted(self.by_column.items()), sorted(self.ignored)], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        return ", ".join(f"{column}→{target}" for column, target in self.by_column.items())


def _header_key(name: str) -> str:
    return re.sub(r"[\s_\-.()/]", "", unicodedata.normalize("NFC", name)).lower()


_SYNONYM_INDEX = {_header_key(name): target for target, names in SYNONYMS.items() for name in names}


def plan_columns(kind: str, columns: Sequence[str], overrides: Mapping[str, str | None] | None = None) -> Plan:
    """Resolve the mapping: explicit overrides first, then the built-in synonyms; check requirements."""
    allowed = FIELDS[kind]
    explicit: dict[str, str] = {}
    for source_column, target in (overrides or {}).items():
        target = target or IGNORE
        if target != IGNORE and target not in allowed:
            raise UnusableFile(
                f"unknown field {target!r} in the mapping for {source_column!r}; {kind} fields are "
                f"{', '.join(allowed)} (or {IGNORE!r} to drop the column)"
            )
        column = _find_column(source_column, columns)
        if column is None:
            raise UnusableFile(
                f"the mapping names column {source_column!r}, which the file does not have; "
                f"columns found: {', '.join(columns)}"
            )
        explicit[column] = target
    by_column: dict[str, str] = {}
    for column, target in explicit.items():
        if target != IGNORE and target in by_column.values():
            others = [c for c, t in by_column.items() if t == target]
            raise UnusableFile(f"columns {others[0]!r} and {column!r} are both mapped to {target}")
        if target != IGNORE:
            by_column[column] = target
    for column in columns:
        target = _SYNONYM_INDEX.get(_header_key(column))
        if column and column not in explicit and target in allowed and target not in by_column.values():
            by_column[column] = target
    plan = Plan(
        kind,
        {c: by_column[c] for c in columns if c in by_column},
        frozenset(c for c, t in explicit.items() if t == IGNORE),
    )
    _check_required(plan, columns)
    return plan


def _find_column(name: str, columns: Sequence[str]) -> str | None:
    if name in columns:
        return name
    return next((c for c in columns if _header_key(c) == _header_key(name)), None)


def _check_required(plan: Plan, columns: Sequence[str]) -> None:
    have = plan.fields
    needs: list[tuple[str, ...]] = (
        [("member_id",)]
        if plan.kind == "customers"
        else [("order_id",), ("ordered_at",), ("member_id", "email", "phone"), ("revenue", "items", "price")]
    )
    missing = [" or ".join(group) for group in needs if not any(f in have for f in group)]
    if missing:
        hints = "; ".join(f"{g} (e.g. {', '.join(SYNONYMS[g.split(' or ')[0]][:4])})" for g in missing)
        raise UnusableFile(
            f"missing required columns: {hints}. Columns found: {', '.join(columns)}. "
            "Map one with --map 'COLUMN=FIELD' or --mapping FILE."
        )
    if plan.line_items and "items" in have:
        raise UnusableFile(
            "map either an items JSON column or per-line item columns (product_id, price, ...), not both"
        )


def load_mapping(path: Path) -> dict[str, str | None]:
    """A mapping file: a JSON object of source column → field (or "-" / null to drop the column)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnusableFile(f"cannot read mapping {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UnusableFile(f"mapping {path.name} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str | None) for v in data.values()):
        raise UnusableFile(f"mapping {path.name} must be a JSON object of column name → field name")
    return data


def parse_map_args(items: Sequence[str]) -> dict[str, str | None]:
    """`--map 'Source Column=field'` pairs; the last '=' splits, as field names never contain one."""
    out: dict[str, str | None] = {}
    for item in items:
        column, sep, target = item.rpartition("=")
        if not sep or not column.strip():
            raise UnusableFile(f"--map {item!r} is not COLUMN=FIELD")
        out[column.strip()] = target.strip() or None
    return out


# ---------------------------------------------------------------- shaping


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
        key = (order_id, _header_key(str(line.values.get(type_column) or "")) if type_column else "")
        if key not in groups:
            groups[key] = []
            ordered.append(groups[key])
        groups[key].append(line)
    yield from ordered


@dataclass(frozen=True)
class _Draft:
    """A record as a protocol event, plus what is needed to name its id and its errors."""

    event: dict[str, Any]
    key: str  # member_id or order_id
    ts_from_file: bool
    aliases: Mapping[str, str]  # protocol field -> the field the user mapped (ts -> ordered_at)
    item_lines: list[int] = field(default_factory=list)  # the line of each item, for line-item files


class Shaper:
    """Turns records into (table, row) through the collector's validation, or raises Invalid."""

    def __init__(self, job: ImportJob, ctx: Context, limits: Limits):
        self.job, self.ctx, self.limits = job, ctx, limits

    def shape(self, group: list[Line]) -> tuple[str, dict[str, Any]]:
        first = group[0]
        if first.error is not None:
            raise Invalid(first.error.reason, first.error.field, first.error.detail)
        draft = self._customer(first) if self.job.kind == "customers" else self._order(group)
        try:
            valid = beacons.validate_event(draft.event, 0, self.ctx, self.limits)
            table, row = beacons.event_rows(valid, 0, self.ctx)
        except Invalid as exc:
            raise self._relabel(exc.rejection, first.number, draft) from None
        row["event_id"] = self._event_id(draft.key, row, draft.ts_from_file)
        return table, row

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
        birth_year = values.get("birth_year")
        if birth_year is None and "birth_date" in values:
            birth_year = _year_of(values["birth_date"], f"line {n}: birth_date")
        joined = values.get("joined_at")
        when = parse_time(joined, self.job.tz, f"line {n}: joined_at") if joined is not None else self.job.as_of
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
            "ts": _ms(when),
            "member_id": member_id,
            "props": {k: v for k, v in props.items() if v is not None},
        }
        aliases = {"ts": "joined_at"} | ({"birth_year": "birth_date"} if "birth_year" not in values else {})
        return _Draft(event, member_id, joined is not None, aliases)

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
        email = beacons.parse_email(values.get("email"), f"line {n}: email")
        phone = beacons.parse_phone(values.get("phone"), f"line {n}: phone")
        if not (member_id or email or phone):
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
        return _Draft(event, order_id, True, {"ts": "ordered_at"}, item_lines)

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
    conv_type = CONV_TYPES.get(_header_key(str(value)))
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


# ---------------------------------------------------------------- running


@dataclass
class ImportReport:
    """What one run did. `valid` counts rows that passed validation; `inserted` those new to the warehouse."""

    kind: str
    file: str
    dry_run: bool = False
    lines: int = 0
    records: int = 0
    valid: Counter[str] = field(default_factory=Counter)
    inserted: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    resumed_records: int = 0
    resumed_line: int | None = None
    already_imported: int | None = None


class ImportState:
    """The resume point of one (file content, kind, site, mapping), as a small JSON file."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def for_job(cls, state_dir: Path, job: ImportJob) -> ImportState:
        key = hashlib.sha256(f"{job.kind}\x1f{job.site_id}\x1f{job.plan.fingerprint()}".encode()).hexdigest()[:12]
        return cls(state_dir / f"{job.source.sha256}-{key}.json")

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash leaves the old state or the new one


def _no_progress(lines: int) -> None:
    pass


def run_import(
    job: ImportJob,
    warehouse: Warehouse | None,
    clock: Callable[[], datetime],
    *,
    state: ImportState | None = None,
    restart: bool = False,
    progress: Callable[[int], None] = _no_progress,
) -> ImportReport:
    """Import the job's file in chunks; with no warehouse, validate only (dry run).

    After each chunk is committed the state records how many records are done, so a re-run after
    a crash skips them; rows of an interrupted chunk may be sent twice, which their ids make harmless.
    """
    now = clock()
    report = ImportReport(job.kind, job.source.path.name, dry_run=warehouse is None)
    saved = None if state is None or restart else state.load()
    if saved and saved.get("complete"):
        report.already_imported = int(saved.get("lines", 0))
        return report
    skip = int(saved.get("records_done", 0)) if saved else 0
    done_lines = int(saved.get("lines", 0)) if saved else 0
    ctx = Context(job.site_id, collected_at=now, source="import", request_id=job.request_id)
    shaper = Shaper(job, ctx, Limits(max_events=job.chunk_size, max_age=None))
    chunk = _Chunk(warehouse, report, job, now)
    checkpoint: dict[str, Any] = {
        "file": str(job.source.path),
        "sha256": job.source.sha256,
        "kind": job.kind,
        "site_id": job.site_id,
        "mapping": dict(job.plan.by_column),
    }
    index = -1
    for index, group in enumerate(records(job.source, job.plan)):
        if index < skip:
            report.resumed_records += 1
            report.resumed_line = group[0].number
            progress(len(group))
            continue
        report.records += 1
        report.lines += len(group)
        try:
            table, row = shaper.shape(group)
        except Invalid as exc:
            chunk.reject(exc.rejection, group)
        else:
            report.valid[table] += 1
            chunk.add(table, row)
        if chunk.size >= job.chunk_size:
            chunk.flush()
            if state is not None:
                state.save(
                    {
                        **checkpoint,
                        "records_done": index + 1,
                        "last_line": group[0].number,
                        "lines": done_lines + report.lines,
                        "complete": False,
                        "updated_at": clock().isoformat(),
                    }
                )
        progress(len(group))
    chunk.flush()
    if state is not None:
        state.save(
            {
                **checkpoint,
                "records_done": index + 1,
                "lines": done_lines + report.lines,
                "complete": True,
                "updated_at": clock().isoformat(),
            }
        )
    return report


class _Chunk:
    """Rows and bad rows waiting for one insert_many call."""

    def __init__(self, warehouse: Warehouse | None, report: ImportReport, job: ImportJob, now: datetime):
        self.warehouse, self.report, self.job, self.now = warehouse, report, job, now
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.bad: list[dict[str, Any]] = []

    @property
    def size(self) -> int:
        return sum(map(len, self.rows.values())) + len(self.bad)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def reject(self, rejection: Rejection, group: list[Line]) -> None:
        payload = group[0].payload if len(group) == 1 else "[" + ",".join(line.payload for line in group) + "]"
        self.report.rejected[rejection.reason] += 1
        self.bad.append(
            beacons.bad_row(
                rejection,
                payload,
                stage="import",
                failed_at=self.now,
                source="import",
                site_id=self.job.site_id,
                request_id=self.job.request_id,
            )
        )

    def flush(self) -> None:
        if self.warehouse is not None and self.size:
            batches = {t: (rows, [r["event_id"] for r in rows]) for t, rows in self.rows.items()}
            if self.bad:
                batches[BAD_ROWS] = (self.bad, [b["bad_row_id"] for b in self.bad])
            results = self.warehouse.insert_many(batches)
            self._count(results)
            refused = []
            for table, rows in self.rows.items():
                for error in results[table].errors:  # the warehouse refused the content: keep it as a bad row
                    self.report.valid[table] -= 1
                    self.report.rejected["warehouse_rejected"] += 1
                    refused.append(
                        beacons.bad_row(
                            Rejection("warehouse_rejected", table, error.reason),
                            rows[error.index],
                            stage="import",
                            failed_at=self.now,
                            source="import",
                            site_id=self.job.site_id,
                            request_id=self.job.request_id,
                        )
                    )
            if refused:
                self._count(
                    {BAD_ROWS: self.warehouse.insert_rows(BAD_ROWS, refused, [b["bad_row_id"] for b in refused])}
                )
        self.rows, self.bad = {}, []

    def _count(self, results: Mapping[str, InsertResult]) -> None:
        for table, result in results.items():
            self.report.inserted[table] += result.inserted
            if table != BAD_ROWS:
                self.report.duplicates += result.skipped_duplicates


def format_summary(report: ImportReport) -> str:
    """The human summary the CLI prints."""
    if report.already_imported is not None:
        return (
            f"{report.file}: already imported ({report.already_imported} rows), nothing to do "
            "(--restart imports it again)"
        )
    unit = "customers" if report.kind == "customers" else "orders"
    out = [f"{report.file}: {report.lines} rows read → {report.records} {unit}"]
    if report.resumed_records:
        out.append(
            f"  resumed: {report.resumed_records} {unit} up to line {report.resumed_line} were committed "
            "by an earlier run"
        )
    table = TABLES[report.kind]
    if report.dry_run:
        out.append(f"  dry run, nothing written: {report.valid[table]} valid")
    else:
        out.append(f"  accepted: {table} {report.inserted[table]} new, {report.duplicates} already present")
    reasons = ", ".join(f"{reason} {n}" for reason, n in report.rejected.most_common())
    rejected = sum(report.rejected.values())
    where = "" if report.dry_run or not rejected else f" → {BAD_ROWS}"
    out.append(f"  rejected: {rejected}{f' ({reasons})' if reasons else ''}{where}")
    return "\n".join(out)


# ---------------------------------------------------------------- command line


def check_site(site_id: str, sites: Mapping[str, Site], allow_unknown: bool) -> None:
    """Imported rows must belong to a site the platform knows, as tracked ones do; a typo would orphan them."""
    if site_id in sites or allow_unknown:
        return
    known = ", ".join(sorted(sites)) or "none"
    raise UnusableFile(
        f"site {site_id!r} is not configured (CDP_SITES has: {known}); configure it in CDP_SITES "
        "or pass --allow-unknown-site"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/import",
        description="Import CRM customers or POS/offline orders into the raw tables.",
        epilog="Column mapping, ids, resuming and exit codes: docs/import.md",
    )
    parser.add_argument("kind", choices=KINDS, help="customers (→ raw.user) or orders (→ raw.conv)")
    parser.add_argument("file", type=Path, metavar="FILE", help="CSV or NDJSON export")
    parser.add_argument("--site", required=True, help="site id the records belong to (must be in CDP_SITES)")
    parser.add_argument("--allow-unknown-site", action="store_true", help="accept a site not in CDP_SITES")
    parser.add_argument("--mapping", type=Path, metavar="FILE", help='JSON file {"source column": "field" | "-"}')
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help="map one column (repeatable; FIELD '-' drops the column); overrides --mapping",
    )
    parser.add_argument("--format", choices=("csv", "ndjson"), help="default: from the file extension")
    parser.add_argument("--encoding", metavar="NAME", help="default: UTF-8 (BOM tolerated), else CP949/EUC-KR")
    parser.add_argument(
        "--timezone", default=DEFAULT_TIMEZONE, metavar="ZONE", help="zone of times without an offset (%(default)s)"
    )
    parser.add_argument(
        "--as-of", metavar="TIME", help="time of customer records without joined_at (default: the file's mtime)"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    parser.add_argument("--restart", action="store_true", help="ignore the saved resume state")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR", help="resume state (.local/import-state)"
    )
    parser.add_argument("--chunk-size", type=int, default=2000, metavar="N", help="rows per insert (%(default)s)")
    parser.add_argument("--progress", action="store_true", help="show the progress bar even when not a TTY")
    return parser


def _settings() -> Settings:
    env = dict(os.environ)
    if not env.get("CDP_PROJECT") and not env.get("GOOGLE_CLOUD_PROJECT"):
        env["CDP_PROJECT"] = "cdp-local"  # runs out of the box against the local DuckDB file
    return Settings.from_env(env)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: 0 when the file was processed (rejected rows included), 2 when it is unusable, 1 on outage.

    130 when interrupted; like an outage, a re-run resumes after the last committed chunk.
    """
    args = _parser().parse_args(argv)
    base = Path(os.environ.get("CDP_IMPORT_CWD", "."))  # scripts/import runs from the repo; paths are the caller's
    try:
        if args.chunk_size < 1:
            raise UnusableFile("--chunk-size must be at least 1")
        settings = _settings()
        check_site(args.site, settings.sites, args.allow_unknown_site)
        try:
            tz = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise UnusableFile(f"unknown --timezone {args.timezone!r}") from exc
        source = read_source(base / args.file, args.format, args.encoding)
        overrides = {**(load_mapping(base / args.mapping) if args.mapping else {}), **parse_map_args(args.map)}
        plan = plan_columns(args.kind, source.columns, overrides)
        as_of = parse_time(args.as_of, tz, "--as-of") if args.as_of else source.mtime
    except (UnusableFile, ConfigError) as exc:
        print(f"import: {exc}", file=sys.stderr)
        return 2
    except Invalid as exc:
        print(f"import: {exc.rejection.detail}", file=sys.stderr)
        return 2
    job = ImportJob(args.kind, args.site, source, plan, as_of, tz, args.chunk_size)
    print(
        f"import: {args.kind} from {source.path.name} ({source.format}, {source.encoding}) for site {args.site}; "
        f"columns {plan.describe()}",
        file=sys.stderr,
    )
    state = None if args.dry_run else ImportState.for_job(base / args.state_dir, job)
    warehouse = None
    if not args.dry_run:
        from shared.bootstrap import build_warehouse

        warehouse = build_warehouse(settings)
    show = args.progress or sys.stderr.isatty()
    with tqdm(total=source.data_lines, unit="row", file=sys.stderr, disable=not show, desc=source.path.name) as bar:
        try:
            report = run_import(
                job, warehouse, lambda: datetime.now(UTC), state=state, restart=args.restart, progress=bar.update
            )
        except TransientError as exc:
            print(
                f"\nimport: the warehouse is unavailable ({exc}); committed chunks are kept, run the same "
                "command again to resume",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print(
                "\nimport: interrupted; committed chunks are kept, run the same command again to resume",
                file=sys.stderr,
            )
            return 130
        finally:
            close = getattr(warehouse, "close", None)
            if callable(close):
                close()
    print(format_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

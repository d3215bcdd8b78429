"""Which file column feeds which protocol field: built-in Korean and English header synonyms,
explicit `COLUMN=FIELD` overrides and mapping files, and the columns each kind requires.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from shared.offline_import.consents import FIELDS as CONSENT_COLUMNS
from shared.offline_import.sources import UnusableFile

KINDS = ("customers", "orders")
TABLES = {"customers": "raw.user", "orders": "raw.conv"}
IGNORE = "-"  # mapping target that drops a column (e.g. a resident registration number)
ITEM_FIELDS = ("product_id", "product_name", "category", "price", "quantity")
FIELDS: dict[str, tuple[str, ...]] = {
    "customers": (
        "member_id",
        "sex",
        "birth_year",
        "birth_date",
        "email",
        "phone",
        "joined_at",
        "name",
        "given_name",
        "family_name",
        "region",
        *CONSENT_COLUMNS,
    ),
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
    "name": "name full_name fullname customer_name member_name 이름 성명 성함 고객명 회원명 고객이름 회원이름",
    "given_name": "given_name first_name firstname forename",
    "family_name": "family_name last_name lastname surname 성 성씨",
    "region": "region province state 지역 시도 거주지역 지역명",
    "joined_at": "joined_at join_date signup_date signed_up_at registered_at created_at 가입일 가입일시 가입일자 "
    "등록일",
    "marketing_consent": "marketing_consent marketing_opt_in marketing_agree 마케팅수신동의 마케팅동의 "
    "광고성정보수신동의 광고수신동의 마케팅수신여부 광고성정보수신여부",
    "night_marketing_consent": "night_marketing_consent night_marketing 야간광고수신동의 야간수신동의 "
    "야간마케팅수신동의",
    "ad_user_data_consent": "ad_user_data_consent ad_consent 광고플랫폼제공동의 맞춤광고정보제공동의",
    "ad_personalization_consent": "ad_personalization_consent personalized_ads_consent 맞춤형광고동의",
    "email_opt_in": "email_opt_in email_consent email_subscribed 이메일수신동의 이메일수신여부 메일수신동의 "
    "메일수신여부",
    "sms_opt_in": "sms_opt_in sms_consent sms_subscribed 문자수신동의 sms수신동의 sms수신여부 문자수신여부",
    "alimtalk_opt_in": "alimtalk_opt_in 알림톡수신동의 알림톡수신여부 카카오톡수신동의",
    "consent_at": "consent_at consented_at opt_in_at 동의일시 동의일 수신동의일 수신동의일시 마케팅동의일",
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


def header_key(name: str) -> str:
    return re.sub(r"[\s_\-.()/]", "", unicodedata.normalize("NFC", name)).lower()


_SYNONYM_INDEX = {header_key(name): target for target, names in SYNONYMS.items() for name in names}


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
        target = _SYNONYM_INDEX.get(header_key(column))
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
    return next((c for c in columns if header_key(c) == header_key(name)), None)


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

"""Consent and subscription columns of CRM customer files into the ledgers (shared/offline_import/consents.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.offline_import.consents import flag
from shared.offline_import.runner import format_summary
from shared.schema import table_specs
from tests.unit.test_offline_import import run, write

CRM = (
    "회원번호,이메일,휴대폰,가입일,마케팅 수신동의,야간광고수신동의,이메일 수신여부,SMS 수신여부,동의일시\n"
    "M1,kim@example.com,010-1234-5678,2025-01-02,Y,N,동의,수신거부,2025-03-04 10:00\n"
    "M2,lee@example.com,,2025-02-01,N,,Y,Y,\n"  # no phone: the SMS column is dropped; dated by its join date
    "M3,,010-2222-3333,,maybe,,,1,\n"  # unreadable marketing value: dropped; no join date: the export's time
)


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    w = DuckDBWarehouse(":memory:")
    w.ensure_tables(list(table_specs().values()))
    return w


def test_consent_and_subscription_columns_become_ledger_rows(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write(tmp_path, "crm.csv", CRM)
    report = run(path, "customers", warehouse)
    consents = warehouse.query(
        "select subject_value, purpose, granted, effective_at, source, request_id from raw.consent "
        "order by subject_value, purpose"
    )
    seoul_10 = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)  # 10:00 in Seoul
    assert [(r["subject_value"], r["purpose"], r["granted"], r["effective_at"]) for r in consents] == [
        ("M1", "marketing", True, seoul_10),
        ("M1", "night_marketing", False, seoul_10),
        ("M2", "marketing", False, datetime(2025, 1, 31, 15, 0, tzinfo=UTC)),  # joined 2025-02-01 in Seoul
    ]
    assert {r["source"] for r in consents} == {"import"} and all(
        r["request_id"].startswith("crm.csv#") for r in consents
    )
    subs = warehouse.query(
        "select channel, address, subscribed, member_id from raw.subscription order by member_id, channel"
    )
    assert [tuple(r.values()) for r in subs] == [
        ("email", "kim@example.com", True, "M1"),
        ("sms", "+821012345678", False, "M1"),
        ("email", "lee@example.com", True, "M2"),
        ("sms", "+821022223333", True, "M3"),
    ]
    assert report.dropped == {"sms_opt_in": 1, "marketing_consent": 1}
    problems = warehouse.query("select reason_code, field from raw.bad_rows order by field")
    assert [(p["reason_code"], p["field"]) for p in problems] == [
        ("missing_field", "line 3: sms_opt_in"),
        ("invalid_value", "line 4: marketing_consent"),
    ]
    summary = format_summary(report)
    assert "consent and subscription columns: raw.consent 3 new, raw.subscription 4 new" in summary
    assert "accepted: raw.user 3 new" in summary  # every customer kept


def test_reimporting_the_file_adds_no_ledger_row(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write(tmp_path, "crm.csv", CRM)
    run(path, "customers", warehouse)
    again = run(path, "customers", warehouse, restart=True)
    assert again.inserted["raw.consent"] == 0 and again.inserted["raw.subscription"] == 0
    assert warehouse.query("select count(distinct consent_event_id) as n, count(*) as rows from raw.consent") == [
        {"n": 3, "rows": 3}
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Y", True), ("y", True), ("동의", True), ("수신", True), ("1", True), ("O", True), ("N", False),
     ("미동의", False), ("수신거부", False), ("수신 거부", False), ("0", False), ("X", False)],
)  # fmt: skip
def test_yes_and_no_in_crm_spellings(text: str, expected: bool) -> None:
    assert flag(text, "line 2: marketing_consent") is expected

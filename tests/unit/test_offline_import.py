"""The offline importer against an in-memory DuckDB: mapping, validation, ids, bad rows, resume."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.beacons import Invalid
from shared.config import Site
from shared.offline_import.mapping import parse_map_args, plan_columns
from shared.offline_import.runner import ImportReport, check_site, format_summary, run_import
from shared.offline_import.shaping import ImportJob, parse_time
from shared.offline_import.sources import UnusableFile, read_source
from shared.offline_import.state import ImportState
from shared.ports import InsertResult, TransientError
from shared.schema import TableSpec, table_specs

DATA = Path(__file__).resolve().parents[1] / "data" / "import"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    w = DuckDBWarehouse(":memory:")
    w.ensure_tables(list(table_specs().values()))
    return w


def job(path: Path, kind: str, overrides: Mapping[str, str | None] | None = None, **kw: Any) -> ImportJob:
    source = read_source(path)
    return ImportJob(kind, "demo-shop", source, plan_columns(kind, source.columns, overrides), AS_OF, SEOUL, **kw)


def run(path: Path, kind: str, warehouse: Any, **kw: Any) -> ImportReport:
    state = kw.pop("state", None)
    restart = kw.pop("restart", False)
    return run_import(job(path, kind, **kw), warehouse, lambda: NOW, state=state, restart=restart)


def rows(w: DuckDBWarehouse, sql: str) -> list[dict[str, Any]]:
    return w.query(sql)


def count(w: DuckDBWarehouse, table: str) -> int:
    return int(w.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------- customers


def test_korean_cp949_crm_export_maps_by_its_headers(warehouse: DuckDBWarehouse) -> None:
    source = read_source(DATA / "customers_kr.csv")
    assert (source.format, source.encoding) == ("csv", "cp949")
    plan = plan_columns("customers", source.columns)
    assert dict(plan.by_column) == {
        "회원번호": "member_id",
        "이름": "name",
        "성별": "sex",
        "생년월일": "birth_date",
        "이메일": "email",
        "휴대폰번호": "phone",
        "가입일": "joined_at",
    }
    report = run(DATA / "customers_kr.csv", "customers", warehouse)
    assert (report.lines, report.records, report.inserted["raw.user"]) == (12, 12, 11)
    assert report.rejected == {"missing_field": 1}  # only the record without a member id
    assert report.dropped == {"email": 1, "birth_date": 1, "joined_at": 1} and report.kept_with_dropped == 3
    (kim,) = rows(warehouse, "SELECT * FROM raw.user WHERE member_id = 'M0001'")
    assert (kim["sex"], kim["birth_year"], kim["email"], kim["phone"]) == (
        "M",
        1985,
        "minsu.kim@example.com",
        "+821012345678",
    )
    assert json.loads(kim["traits"]) == {"등급": "골드"}
    assert (kim["full_name"], kim["family_name"], kim["given_name"]) == ("김민수", "김", "민수")
    assert kim["event_ts"] == datetime(2021, 3, 2, 1, 15, tzinfo=UTC)  # 10:15 in Seoul
    assert (kim["source"], kim["site_id"], kim["collected_at"]) == ("import", "demo-shop", NOW)
    assert kim["request_id"] == f"customers_kr.csv#{source.sha256[:12]}"
    contacts = rows(
        warehouse,
        "SELECT member_id, sex, email, phone FROM raw.user WHERE member_id IN "
        "('M0002', 'M0003', 'M0011') ORDER BY member_id",
    )
    assert contacts == [
        {"member_id": "M0002", "sex": "F", "email": "seoyeon.lee@example.com", "phone": "+821023456789"},
        {"member_id": "M0003", "sex": "M", "email": "jihoon@example.co.kr", "phone": "+821034567890"},
        {"member_id": "M0011", "sex": "F", "email": "jimin.han@example.com", "phone": "+8223456789"},
    ]


def test_failed_records_become_bad_rows_naming_line_and_field(warehouse: DuckDBWarehouse) -> None:
    run(DATA / "customers_kr.csv", "customers", warehouse)
    bad = rows(warehouse, "SELECT * FROM raw.bad_rows ORDER BY field")
    assert [(b["reason_code"], b["field"]) for b in bad] == [
        ("invalid_value", "line 10: birth_date"),
        ("timestamp_in_future", "line 13: joined_at"),
        ("invalid_value", "line 7: email"),
        ("missing_field", "line 9: member_id"),
    ]
    email = bad[2]
    assert (email["stage"], email["source"], email["site_id"]) == ("import", "import", "demo-shop")
    assert email["reason_detail"] == "line 7: email is not an email address; the field was dropped and the record kept"
    assert json.loads(email["payload"])["이메일"] == "doyoon.kang@example"
    (kept,) = rows(warehouse, "SELECT event_id, email, phone FROM raw.user WHERE member_id = 'M0006'")
    assert (email["event_id"], email["event_type"]) == (kept["event_id"], "identify")
    assert (kept["email"], kept["phone"]) == (None, "+821056789012")  # the record is kept without the e-mail
    assert bad[3]["event_id"] is None  # a rejected record names no row


def test_reimport_adds_nothing_and_a_changed_record_adds_one_row(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    run(DATA / "customers_kr.csv", "customers", warehouse)
    again = run(DATA / "customers_kr.csv", "customers", warehouse)
    assert again.inserted == {"raw.user": 0, "raw.bad_rows": 0} and again.duplicates == 11
    changed = (DATA / "customers_kr.csv").read_bytes().replace(b"minsu.kim@example.com", b"minsu@example.com")
    (tmp_path / "customers_v2.csv").write_bytes(changed)
    third = run(tmp_path / "customers_v2.csv", "customers", warehouse)
    assert third.inserted["raw.user"] == 1 and third.duplicates == 10
    history = rows(warehouse, "SELECT email FROM raw.user WHERE member_id = 'M0001' ORDER BY collected_at, email")
    assert [h["email"] for h in history] == ["minsu.kim@example.com", "minsu@example.com"]
    assert count(warehouse, "raw.bad_rows") == 4


def test_records_without_joined_at_are_dated_as_of_the_export_and_keep_their_id(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    path = write(tmp_path, "crm.csv", "Member ID,E-Mail,Grade\nC1,a@b.co,gold\nC2,c@d.co,\n")
    first = run_import(job(path, "customers"), warehouse, lambda: NOW)
    later = ImportJob(
        "customers",
        "demo-shop",
        read_source(path),
        job(path, "customers").plan,
        datetime(2026, 11, 15, tzinfo=UTC),
        SEOUL,
    )
    second = run_import(later, warehouse, lambda: NOW)  # e.g. the file was copied: a new mtime
    assert first.inserted["raw.user"] == 2 and second.inserted["raw.user"] == 0
    assert rows(warehouse, "SELECT event_ts, traits FROM raw.user ORDER BY member_id") == [
        {"event_ts": AS_OF, "traits": '{"Grade": "gold"}'},
        {"event_ts": AS_OF, "traits": None},
    ]


# ---------------------------------------------------------------- orders


def test_order_lines_group_into_orders_with_derived_revenue(warehouse: DuckDBWarehouse) -> None:
    report = run(DATA / "orders.csv", "orders", warehouse)
    assert (report.lines, report.records, report.inserted["raw.conv"]) == (20, 14, 10)
    orders = rows(
        warehouse,
        "SELECT order_id, conv_type, CAST(revenue AS INT64) AS revenue, member_id, store_id, "
        "channel, ARRAY_LENGTH(items) AS n FROM raw.conv ORDER BY order_id, conv_type",
    )
    assert [(o["order_id"], o["conv_type"], o["revenue"], o["n"]) for o in orders] == [
        ("O-1001", "order", 129000, 2),  # 39000 + 2 x 45000, no revenue column value
        ("O-1001", "refund", -45000, 1),  # 구분 = 반품
        ("O-1002", "order", 15000, 1),  # 결제금액 "15,000" given
        ("O-1003", "order", 96000, 3),  # its lines are not adjacent in the file
        ("O-1004", "order", 45000, 1),
        ("O-1005", "order", 69000, 2),
        ("O-1008", "order", 218000, 2),
        ("O-1009", "order", 78000, 1),
        ("O-1010", "order", 89000, 1),
        ("O-1013", "order", 20000, 1),
    ]
    assert {o["channel"] for o in orders} == {"offline"}
    assert (orders[0]["member_id"], orders[0]["store_id"]) == ("M0001", "GN01")
    (o1003,) = rows(warehouse, "SELECT items, properties FROM raw.conv WHERE order_id = 'O-1003'")
    assert [i["product_id"] for i in o1003["items"]] == ["P100", "P400", "P500"]
    assert o1003["items"][1]["product_name"] == "가죽 벨트" and o1003["items"][1]["quantity"] == 1
    assert json.loads(o1003["properties"]) == {"결제수단": "카드"}
    (phone_only,) = rows(warehouse, "SELECT member_id, properties FROM raw.conv WHERE order_id = 'O-1002'")
    assert phone_only["member_id"] is None  # linked by its normalised phone instead
    assert json.loads(phone_only["properties"]) == {"결제수단": "현금", "phone": "+821023456789"}


def test_order_rejections_name_the_line_of_the_culprit(warehouse: DuckDBWarehouse) -> None:
    report = run(DATA / "orders.csv", "orders", warehouse)
    assert report.rejected == {"invalid_timestamp": 1, "missing_field": 1, "invalid_value": 1, "wrong_type": 1}
    bad = {b["field"]: b for b in rows(warehouse, "SELECT * FROM raw.bad_rows")}
    assert {f: b["reason_code"] for f, b in bad.items()} == {
        "line 11: ordered_at": "invalid_timestamp",  # 2024-13-45 25:00
        "line 13: member_id": "missing_field",  # no member id, email or phone
        "line 18: type": "invalid_value",  # 교환 (exchange) is neither order nor refund
        "line 20: price": "wrong_type",  # "abc": the order's revenue cannot be derived
    }
    grouped = json.loads(bad["line 20: price"]["payload"])
    assert [line["상품코드"] for line in grouped] == ["P200", "P400"]  # the whole order is kept


def test_refunds_are_stored_negative_whether_typed_or_signed(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pos.csv",
        "order_id,ordered_at,member_id,type,amount\n"
        "R1,2024-05-01 10:00,m1,refund,5000\n"
        "R2,2024-05-01 11:00,m1,,-7000\n"
        "R3,2024-05-01 12:00,m1,cancel,-3000\n"
        "R4,2024-05-01 13:00,m1,sale,9000\n",
    )
    report = run(path, "orders", warehouse)
    assert report.inserted["raw.conv"] == 4
    got = rows(warehouse, "SELECT order_id, conv_type, CAST(revenue AS INT64) AS r FROM raw.conv ORDER BY order_id")
    assert [(g["order_id"], g["conv_type"], g["r"]) for g in got] == [
        ("R1", "refund", -5000),
        ("R2", "refund", -7000),
        ("R3", "refund", -3000),
        ("R4", "order", 9000),
    ]


def test_ndjson_orders_with_items_json_and_contact_keys(warehouse: DuckDBWarehouse) -> None:
    report = run(DATA / "orders.ndjson", "orders", warehouse)
    assert (report.lines, report.inserted["raw.conv"]) == (6, 4)
    assert report.rejected == {"wrong_type": 1, "malformed_json": 1}
    got = {g["order_id"]: g for g in rows(warehouse, "SELECT * FROM raw.conv")}
    assert (got["N-1"]["currency"], got["N-1"]["revenue"], json.loads(got["N-1"]["properties"])) == (
        "KRW",
        58000,
        {"payment": "card"},
    )
    assert got["N-1"]["event_ts"] == datetime(2024, 4, 1, 0, 0, tzinfo=UTC)
    assert (got["N-2"]["conv_type"], got["N-2"]["revenue"]) == ("refund", -12000)
    assert json.loads(got["N-2"]["properties"]) == {"email": "minsu.kim@example.com"}
    assert (got["3"]["member_id"], got["3"]["revenue"]) == ("12", 3000)  # numeric ids; revenue = 3 x 1000
    assert got["N-6"]["items"][0]["product_id"] == "P9"  # items given as a JSON string
    bad = {b["field"]: b for b in rows(warehouse, "SELECT * FROM raw.bad_rows")}
    assert set(bad) == {"line 4: revenue", "line 5"}
    assert bad["line 5"]["payload"] == "this line is not JSON"


# ---------------------------------------------------------------- mapping


def test_mapping_overrides_synonyms_and_drops_columns(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write(tmp_path, "crm.csv", "CUST#,Email,Mobile,RRN,Tier\nX1,x@y.co,010-1111-2222,900101-1234567,A\n")
    overrides = {"cust#": "member_id", "RRN": "-", "Mobile": None}
    plan = job(path, "customers", overrides).plan
    assert dict(plan.by_column) == {"CUST#": "member_id", "Email": "email"}
    run(path, "customers", warehouse, overrides=overrides)
    (user,) = rows(warehouse, "SELECT member_id, phone, traits FROM raw.user")
    assert user == {"member_id": "X1", "phone": None, "traits": '{"Tier": "A"}'}  # RRN and Mobile dropped


def test_mapping_errors_name_the_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "crm.csv", "id,mail\n1,a@b.co\n")
    with pytest.raises(UnusableFile, match="unknown field 'memberid'.*member_id, sex"):
        plan_columns("customers", ("id", "mail"), {"id": "memberid"})
    with pytest.raises(UnusableFile, match="names column 'cust', which the file does not have; columns found: id"):
        plan_columns("customers", ("id", "mail"), {"cust": "member_id"})
    with pytest.raises(UnusableFile, match="missing required columns: member_id .*Columns found: id, mail"):
        plan_columns("customers", read_source(path).columns)
    assert parse_map_args(["Order No.=order_id", "a=b=", "x=-"]) == {"Order No.": "order_id", "a=b": None, "x": "-"}


def test_a_file_missing_required_columns_is_unusable(tmp_path: Path) -> None:
    path = write(tmp_path, "pos.csv", "주문번호,회원번호,결제금액\nO1,M1,1000\n")
    with pytest.raises(UnusableFile) as caught:
        plan_columns("orders", read_source(path).columns)
    message = str(caught.value)
    assert "missing required columns: ordered_at (e.g. ordered_at" in message
    assert "Columns found: 주문번호, 회원번호, 결제금액" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01 10:15:00", datetime(2024, 3, 1, 1, 15, tzinfo=UTC)),
        ("2024/3/1 9:05", datetime(2024, 3, 1, 0, 5, tzinfo=UTC)),
        ("2024.03.01", datetime(2024, 2, 29, 15, 0, tzinfo=UTC)),
        ("20240301", datetime(2024, 2, 29, 15, 0, tzinfo=UTC)),
        ("20240301101500", datetime(2024, 3, 1, 1, 15, tzinfo=UTC)),
        ("2024-03-01T10:15:00Z", datetime(2024, 3, 1, 10, 15, tzinfo=UTC)),
        ("2024-03-01T10:15:00+00:00", datetime(2024, 3, 1, 10, 15, tzinfo=UTC)),
        ("1709255700", datetime(2024, 3, 1, 1, 15, tzinfo=UTC)),
        (1709255700000, datetime(2024, 3, 1, 1, 15, tzinfo=UTC)),
    ],
)
def test_times_in_export_spellings(text: Any, expected: datetime) -> None:
    assert parse_time(text, SEOUL, "t") == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "01/03/2024", "2024-02-30 10:00"])
def test_unreadable_times_are_rejected(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_time(text, SEOUL, "line 3: ordered_at")
    assert caught.value.rejection.reason == "invalid_timestamp"


def test_site_must_be_configured_unless_allowed() -> None:
    sites = {"demo-shop": Site("demo-shop")}
    check_site("demo-shop", sites, allow_unknown=False)
    check_site("other", sites, allow_unknown=True)
    with pytest.raises(UnusableFile, match="'other' is not configured .*demo-shop.*--allow-unknown-site"):
        check_site("other", sites, allow_unknown=False)


# ---------------------------------------------------------------- chunks, resume, dry run

Batches = Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str]]]


class CrashingWarehouse:
    """Commits the nth insert_many and then dies, like a process killed before saving its state."""

    def __init__(self, inner: DuckDBWarehouse, crash_on_call: int):
        self.inner, self.crash_on_call, self.calls = inner, crash_on_call, 0

    def insert_many(self, batches: Batches) -> dict[str, InsertResult]:
        self.calls += 1
        result = self.inner.insert_many(batches)
        if self.calls == self.crash_on_call:
            raise TransientError("killed after commit")
        return result

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> InsertResult:
        return self.inner.insert_rows(table, rows, row_ids)

    def ensure_tables(self, specs: Sequence[TableSpec]) -> None:
        self.inner.ensure_tables(specs)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.inner.query(sql, params)


def orders_file(tmp_path: Path, orders: int) -> Path:
    lines = ["order_id,ordered_at,member_id,product_id,price,quantity"]
    for i in range(orders):  # two lines per order, and every 10th order has a bad time
        when = "not a time" if i % 10 == 9 else f"2024-05-{1 + i % 28:02d} 12:00"
        lines += [f"A{i},{when},m{i % 7},p1,1000,1", f"A{i},{when},m{i % 7},p2,500,2"]
    return write(tmp_path, "orders.csv", "\n".join(lines) + "\n")


def test_resume_after_a_crash_imports_each_order_once(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = orders_file(tmp_path, 50)
    the_job = job(path, "orders", chunk_size=10)
    state = ImportState.for_job(tmp_path / "state", the_job)
    with pytest.raises(TransientError):
        run_import(the_job, CrashingWarehouse(warehouse, crash_on_call=3), lambda: NOW, state=state)
    assert count(warehouse, "raw.conv") + count(warehouse, "raw.bad_rows") == 30  # three chunks committed
    assert (state.load() or {})["records_done"] == 20  # ...but only two recorded

    resumed = run_import(the_job, warehouse, lambda: NOW, state=state)
    assert (resumed.resumed_records, resumed.resumed_line, resumed.records) == (20, 40, 30)
    assert resumed.inserted["raw.conv"] + resumed.inserted["raw.bad_rows"] == 20 and resumed.duplicates == 9
    assert count(warehouse, "raw.conv") == 45 and count(warehouse, "raw.bad_rows") == 5
    assert rows(warehouse, "SELECT COUNT(DISTINCT order_id) AS n, CAST(SUM(revenue) AS INT64) AS r FROM raw.conv") == [
        {"n": 45, "r": 45 * 2000}
    ]
    assert "resumed: 20 orders up to line 40" in format_summary(resumed)

    done = run_import(the_job, warehouse, lambda: NOW, state=state)
    assert done.already_imported == 100
    assert format_summary(done).endswith("already imported (100 rows), nothing to do (--restart imports it again)")
    restarted = run_import(the_job, warehouse, lambda: NOW, state=state, restart=True)
    assert restarted.inserted["raw.conv"] == 0 and restarted.duplicates == 45


def test_dry_run_validates_everything_and_writes_nothing(warehouse: DuckDBWarehouse) -> None:
    report = run(DATA / "orders.csv", "orders", None)
    assert report.valid["raw.conv"] == 10 and sum(report.rejected.values()) == 4
    assert "dry run, nothing written: 10 valid" in format_summary(report)
    assert count(warehouse, "raw.conv") == 0


# ---------------------------------------------------------------- invalid optional fields, names, regions

NAMES = ["김민수", "이서연", "남궁민수", "제갈공명", "선우재덕", "황보관", "독고영재", "사공일", "서문탁", "이산"]
REGIONS = ["서울", "경기도", "부산광역시", "제주특별자치도", "강원"]


def bad_email(i: int) -> bool:
    return i % 5 == 1


def bad_birth(i: int) -> bool:
    return i % 7 == 3


def crm_export(tmp_path: Path, n: int = 2000) -> Path:
    """A Korean CRM export in CP949 where a share of the e-mails and birth dates are malformed."""
    lines = ["회원번호,이름,휴대폰,이메일,성별,생년월일,가입일,지역"]
    for i in range(n):
        email = "bad-email" if bad_email(i) else f"user{i}@example.com"
        birth = "abcd" if bad_birth(i) else f"{1960 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        phone = f"010-{1000 + i % 9000:04d}-{i:04d}"
        sex = "남" if i % 2 else "여"
        lines.append(f"K{i:05d},{NAMES[i % 10]},{phone},{email},{sex},{birth},2021-03-02 10:15,{REGIONS[i % 5]}")
    return write(tmp_path, "crm_2000.csv", "\n".join(lines) + "\n", "cp949")


def test_a_record_with_an_invalid_optional_field_is_kept_without_that_field(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    path = crm_export(tmp_path)
    assert read_source(path).encoding == "cp949"
    report = run(path, "customers", warehouse)
    emails, births = sum(map(bad_email, range(2000))), sum(map(bad_birth, range(2000)))
    both = sum(1 for i in range(2000) if bad_email(i) and bad_birth(i))
    assert report.inserted["raw.user"] == 2000 and not report.rejected  # every customer is kept
    assert report.dropped == {"email": emails, "birth_date": births}
    assert report.kept_with_dropped == emails + births - both
    assert (
        f"  kept with dropped fields: {emails + births - both} customers (email {emails}, birth_date {births}) "
        "→ raw.bad_rows" in format_summary(report).splitlines()
    )
    assert format_summary(report).splitlines()[-1] == "  rejected: 0"

    (k1,) = rows(warehouse, "SELECT * FROM raw.user WHERE member_id = 'K00001'")  # bad e-mail: phone kept
    assert (k1["email"], k1["phone"], k1["birth_year"], k1["sex"]) == (None, "+821010010001", 1961, "M")
    (k3,) = rows(warehouse, "SELECT * FROM raw.user WHERE member_id = 'K00003'")  # bad birth date
    assert (k3["email"], k3["birth_year"]) == ("user3@example.com", None)

    bad = rows(warehouse, "SELECT * FROM raw.bad_rows ORDER BY failed_at, field")
    assert len(bad) == emails + births
    by_field = {b["field"]: b for b in bad}
    assert (by_field["line 3: email"]["reason_code"], by_field["line 3: email"]["stage"]) == ("invalid_value", "import")
    assert json.loads(by_field["line 3: email"]["payload"])["이메일"] == "bad-email"
    assert by_field["line 5: birth_date"]["reason_code"] == "invalid_value"
    assert "dropped" in by_field["line 5: birth_date"]["reason_detail"]
    # each problem names the row that was kept without the field
    linked = rows(warehouse, "SELECT COUNT(*) AS n FROM raw.bad_rows b JOIN raw.user u ON b.event_id = u.event_id")
    assert linked == [{"n": emails + births}]

    again = run(path, "customers", warehouse)  # idempotent: same ids for rows and problems
    assert again.inserted == {"raw.user": 0, "raw.bad_rows": 0} and again.duplicates == 2000


def test_an_interrupted_import_with_dropped_fields_resumes_to_the_same_result(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    path = crm_export(tmp_path, 300)
    clean = DuckDBWarehouse(":memory:")
    clean.ensure_tables(list(table_specs().values()))
    run(path, "customers", clean)
    the_job = job(path, "customers", chunk_size=50)
    state = ImportState.for_job(tmp_path / "state", the_job)
    with pytest.raises(TransientError):
        run_import(the_job, CrashingWarehouse(warehouse, crash_on_call=3), lambda: NOW, state=state)
    run_import(the_job, warehouse, lambda: NOW, state=state)
    for sql in ("SELECT event_id FROM raw.user", "SELECT bad_row_id, event_id, field FROM raw.bad_rows"):
        assert sorted(map(str, rows(warehouse, f"SELECT DISTINCT * FROM ({sql})"))) == sorted(
            map(str, rows(clean, sql))
        )
    assert count(clean, "raw.user") == 300


def test_only_a_missing_or_invalid_key_rejects_a_record(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "crm.csv",
        "member_id,email,phone,sex,birth_year,joined_at,grade\n"
        ",a@b.co,010-1111-2222,M,1990,2024-01-01,gold\n"  # no key: rejected
        f"{'x' * 300},c@d.co,,,,,\n"  # a key too long for the protocol: rejected
        "C3,nope,12,X,1850,2099-01-01,silver\n",  # every optional field invalid: kept with its key
    )
    report = run(path, "customers", warehouse)
    assert report.rejected == {"missing_field": 1, "string_too_long": 1}
    assert report.inserted["raw.user"] == 1 and report.kept_with_dropped == 1
    assert report.dropped == {"email": 1, "phone": 1, "sex": 1, "birth_year": 1, "joined_at": 1}
    (c3,) = rows(warehouse, "SELECT * FROM raw.user")
    assert (c3["member_id"], c3["email"], c3["phone"], c3["sex"], c3["birth_year"]) == ("C3", None, None, None, None)
    assert c3["event_ts"] == AS_OF  # the invalid joined_at is dropped: dated as the export
    assert json.loads(c3["traits"]) == {"grade": "silver"}
    fields = {b["field"]: b["reason_code"] for b in rows(warehouse, "SELECT * FROM raw.bad_rows")}
    assert fields == {
        "line 2: member_id": "missing_field",
        "line 3: member_id": "string_too_long",
        "line 4: email": "invalid_value",
        "line 4: phone": "invalid_value",
        "line 4: sex": "invalid_value",
        "line 4: birth_year": "invalid_value",
        "line 4: joined_at": "timestamp_in_future",
    }


def test_an_order_keeps_its_optional_fields_apart_from_its_keys(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pos.csv",
        "order_id,ordered_at,member_id,email,store_id,amount,note\n"
        f"P1,2024-05-01 10:00,m1,not-an-email,{'S' * 2000},5000,ok\n"  # kept: member_id links it
        "P2,2024-05-01 11:00,,not-an-email,S1,7000,\n"  # its only link is invalid: rejected
        f"P3,2024-05-01 12:00,m3,,S1,3000,{'n' * 2000}\n",  # an overlong extra column: dropped
    )
    report = run(path, "orders", warehouse)
    assert report.inserted["raw.conv"] == 2 and report.rejected == {"invalid_value": 1}
    assert report.dropped == {"email": 1, "store_id": 1, "note": 1} and report.kept_with_dropped == 2
    got = {o["order_id"]: o for o in rows(warehouse, "SELECT * FROM raw.conv")}
    assert (got["P1"]["store_id"], json.loads(got["P1"]["properties"])) == (None, {"note": "ok"})
    assert got["P3"]["properties"] is None and got["P3"]["revenue"] == 3000
    bad = {b["field"]: b["reason_code"] for b in rows(warehouse, "SELECT * FROM raw.bad_rows")}
    assert bad == {
        "line 2: email": "invalid_value",
        "line 2: store_id": "string_too_long",
        "line 3: email": "invalid_value",
        "line 4: note": "string_too_long",
    }


def test_names_and_region_are_mapped_to_columns(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = crm_export(tmp_path, 10)
    plan = plan_columns("customers", read_source(path).columns)
    assert (plan.fields["name"], plan.fields["region"]) == ("이름", "지역")
    run(path, "customers", warehouse)
    got = rows(
        warehouse, "SELECT member_id, full_name, family_name, given_name, region, traits FROM raw.user ORDER BY 1"
    )
    assert [(g["full_name"], g["family_name"], g["given_name"], g["region"]) for g in got] == [
        ("김민수", "김", "민수", "Seoul"),
        ("이서연", "이", "서연", "Gyeonggi"),
        ("남궁민수", "남궁", "민수", "Busan"),
        ("제갈공명", "제갈", "공명", "Jeju"),
        ("선우재덕", "선우", "재덕", "Gangwon"),
        ("황보관", "황보", "관", "Seoul"),
        ("독고영재", "독고", "영재", "Gyeonggi"),
        ("사공일", "사공", "일", "Busan"),
        ("서문탁", "서문", "탁", "Jeju"),
        ("이산", "이", "산", "Gangwon"),
    ]
    assert {g["traits"] for g in got} == {None}  # 이름 and 지역 are columns now, not traits


@pytest.mark.parametrize(
    ("header", "line", "expected"),
    [
        ("id,first_name,last_name", "1,Gil-dong,Hong", (None, "Hong", "Gil-dong")),
        ("id,Given Name,Family Name,Full Name", "1,Gil-dong,Hong,Gil-dong Hong", ("Gil-dong Hong", "Hong", "Gil-dong")),
        ("id,name", "1,Gil-dong Hong", ("Gil-dong Hong", None, None)),  # Latin order is ambiguous: not split
        ("id,성명", "1,홍 길동", ("홍 길동", "홍", "길동")),
        ("id,성,이름", "1,홍,길동", (None, "홍", "길동")),  # with a 성 column, 이름 is the given name
        ("id,성,이름", "1,홍,홍길동", (None, "홍", "길동")),  # ...or the full name starting with it
        ("id,고객명", "1,John", ("John", None, None)),
        ("id,이름", "1,洪吉童", ("洪吉童", None, None)),
    ],
)
def test_names_split_only_when_the_split_is_certain(
    warehouse: DuckDBWarehouse, tmp_path: Path, header: str, line: str, expected: tuple[str | None, ...]
) -> None:
    path = write(tmp_path, "crm.csv", f"{header}\n{line}\n")
    run(path, "customers", warehouse, overrides={"id": "member_id"})
    (got,) = rows(warehouse, "SELECT full_name, family_name, given_name, traits FROM raw.user")
    assert (got["full_name"], got["family_name"], got["given_name"]) == expected
    assert got["traits"] is None

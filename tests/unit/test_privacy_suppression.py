"""The suppression list's contract: the salted hash in Python and in SQL (both engines' spelling of
the same statement) agree, the list grows idempotently, and writers find what it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.config import LOCAL_PRIVACY_SALT, ConfigError, Settings
from shared.privacy.subjects import Identifier
from shared.privacy.suppression import (
    WarehouseSuppressions,
    id_hash,
    row_identifiers,
    screen_rows,
    suppress,
)
from shared.schema import table_spec
from shared.sql import load_sql, to_duckdb
from tests.builders import new_warehouse

SALT = "s3cret"
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)


def test_the_hash_is_sha256_of_salt_site_type_and_value() -> None:
    # printf '%s' 's3cretshop|email|kim@example.com' | sha256sum
    assert id_hash(SALT, "shop", "email", "kim@example.com") == (
        "e8c4c3bf2685e9417871421fcaf56e41e2c987fcbc009773b13b1800338c6f13"
    )
    assert (
        id_hash(SALT, "shop", "member", "김민수") == "e63bfca153cbaf9c0f31f821e399c89d96b0298b88a6e39844da53e57d527644"
    )
    assert id_hash(SALT, "other-shop", "email", "kim@example.com") != id_hash(SALT, "shop", "email", "kim@example.com")
    with pytest.raises(ValueError, match="id_type"):
        id_hash(SALT, "shop", "customer", "c_1")


@pytest.mark.parametrize(
    ("id_type", "value"),
    [("email", "kim@example.com"), ("phone", "+821012345678"), ("member", "김민수"), ("visitor", "v-0f3e|x")],
)
def test_the_sql_expression_gives_the_same_hex_on_duckdb(id_type: str, value: str) -> None:
    sql = load_sql("privacy/id_hash")
    assert "sha256" in sql.lower() and "LOWER(HEX(UNHEX(SHA256(" in to_duckdb(sql).upper()
    warehouse = new_warehouse()
    params = {"privacy_salt": SALT, "site_id": "shop", "id_type": id_type, "id_value": value}
    [row] = warehouse.query(sql, params)
    assert row["id_hash"] == id_hash(SALT, "shop", id_type, value)


def test_suppressing_twice_adds_nothing_and_the_list_answers_per_site() -> None:
    warehouse = new_warehouse()
    kim, phone = Identifier("email", "kim@example.com"), Identifier("phone", "+821012345678")
    assert suppress(warehouse, SALT, "shop", {kim: "req-1", phone: "req-1"}, NOW) == 2
    assert suppress(warehouse, SALT, "shop", {kim: "req-2"}, NOW) == 1
    rows = warehouse.query("select * from privacy.suppressions order by id_type")
    assert [(r["site_id"], r["id_type"], r["request_id"], r["reason"]) for r in rows] == [
        ("shop", "email", "req-1", "erasure"),
        ("shop", "phone", "req-1", "erasure"),
    ]
    assert rows[0]["id_hash"] == id_hash(SALT, "shop", "email", "kim@example.com")
    assert rows[0]["suppression_id"] == f"shop|{rows[0]['id_hash']}"
    screen = WarehouseSuppressions(warehouse, SALT)
    other = Identifier("email", "lee@example.com")
    assert screen.suppressed("shop", {kim, other}) == {kim}
    assert screen.suppressed("other-shop", {kim}) == set()
    assert WarehouseSuppressions(warehouse, "another salt").suppressed("shop", {kim}) == set()
    assert SALT not in repr(screen)


def test_a_row_names_the_identifiers_its_table_declares() -> None:
    conv = {
        "visitor_id": "v1",
        "member_id": " m1 ",
        "properties": '{"email": "Kim@Example.com", "phone": "010-1234-5678"}',
    }
    assert row_identifiers(table_spec("raw.conv"), conv) == {
        Identifier("visitor", "v1"),
        Identifier("member", "m1"),
        Identifier("email", "kim@example.com"),
        Identifier("phone", "+821012345678"),
    }
    push = {"channel": "webpush", "address": "https://push.example/abc", "visitor_id": "v2", "member_id": None}
    assert row_identifiers(table_spec("raw.subscription"), push) == {Identifier("visitor", "v2")}
    sms = {"channel": "sms", "address": "+821099998888"}
    assert row_identifiers(table_spec("raw.subscription"), sms) == {Identifier("phone", "+821099998888")}
    consent = {"subject_type": "member", "subject_value": "m9", "visitor_id": None}
    assert row_identifiers(table_spec("raw.consent"), consent) == {Identifier("member", "m9")}


def test_screening_a_chunk_finds_the_rows_of_erased_people() -> None:
    warehouse = new_warehouse()
    suppress(warehouse, SALT, "shop", {Identifier("member", "m1"): "req-1"}, NOW)
    rows: list[dict[str, Any]] = [
        {"member_id": "m2", "email": "lee@example.com"},
        {"member_id": "m1", "email": "new@example.com"},
        {"member_id": None, "email": None},
    ]
    screen = WarehouseSuppressions(warehouse, SALT)
    assert screen_rows(screen, "shop", table_spec("raw.user"), rows) == [1]
    assert screen_rows(screen, "other-shop", table_spec("raw.user"), rows) == []


def test_the_salt_is_a_secret_with_a_local_default_only() -> None:
    local = Settings.from_env({"CDP_PROJECT": "p"})
    assert local.privacy.require_salt() == LOCAL_PRIVACY_SALT
    bigquery = Settings.from_env({"CDP_PROJECT": "p", "CDP_WAREHOUSE": "bigquery"})
    with pytest.raises(ConfigError, match="CDP_PRIVACY_SALT"):
        bigquery.privacy.require_salt()
    configured = Settings.from_env({"CDP_PROJECT": "p", "CDP_WAREHOUSE": "bigquery", "CDP_PRIVACY_SALT": "pepper"})
    assert configured.privacy.require_salt() == "pepper"
    assert "pepper" not in repr(configured)

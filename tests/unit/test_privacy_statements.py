"""The statements generated from the declarations: their text for BigQuery (partition-aware deletes,
the streaming-buffer guard, the filter tables requiring one get), values only as parameters, the
DuckDB spelling, and the parsing of requests with field-path errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
import sqlglot

from shared.adapters.bigquery_warehouse import qualify_tables
from shared.privacy.statements import Dml, Keys, Owners, plan, sweep_sql, text_pattern
from shared.privacy.subjects import Identifier, RequestError, parse_request
from shared.schema import table_spec
from shared.services.privacy import subject_tables
from shared.sql import parameter_names, to_duckdb

KIM = Keys(
    "shop",
    frozenset(
        {
            Identifier("member", "m1"),
            Identifier("visitor", "v1"),
            Identifier("email", "kim@example.com"),
            Identifier("phone", "+821012345678"),
        }
    ),
    frozenset({"c_1"}),
)


def test_every_declared_table_gets_portable_statements_with_values_only_as_parameters() -> None:
    for spec in subject_tables():
        p = plan(spec, KIM)
        assert p is not None, spec.name
        delete, delete_params = p.delete_sql([date(2026, 5, 1)])
        for sql, params in ((p.find_sql(), p.params), (delete, delete_params), (p.export_sql(), p.params)):
            assert parameter_names(sql) == set(params), (spec.name, sql)
            assert to_duckdb(sql)
            for value in ("m1", "v1", "kim@example.com", "+821012345678", "c_1"):
                assert value not in sql, f"{spec.name}: a value in the SQL text"
            [tree] = sqlglot.parse(sql, read="bigquery")
            assert tree is not None


def test_a_batch_with_nothing_a_table_could_match_skips_it() -> None:
    only_customer = Keys("shop", frozenset(), frozenset({"c_1"}))
    assert plan(table_spec("raw.page"), only_customer) is None
    assert plan(table_spec("audiences.segment_members"), only_customer) is not None


def test_bigquery_deletes_only_the_partitions_that_hold_the_rows_and_only_settled_rows() -> None:
    settled = datetime(2026, 5, 10, 10, 30, tzinfo=UTC)
    p = plan(table_spec("raw.user"), KIM, Dml(settled_before=settled))
    assert p is not None
    sql, params = p.delete_sql([date(2026, 5, 3), date(2026, 5, 1)])
    qualified = qualify_tables(sql, "acme", "cdp_")
    assert qualified.startswith("DELETE FROM `acme`.cdp_raw.user WHERE collected_at < @settled_before")
    assert "event_date BETWEEN @partition_first AND @partition_last" in qualified
    assert "event_date IN UNNEST(@partitions)" in qualified
    assert params["partitions"] == [date(2026, 5, 1), date(2026, 5, 3)]
    assert (params["partition_first"], params["partition_last"]) == (date(2026, 5, 1), date(2026, 5, 3))
    assert params["settled_before"] == settled and params["site_id"] == "shop"
    assert params["members"] == ["m1"] and params["emails"] == ["kim@example.com"]
    assert "site_id = @site_id" in qualified
    # finding and verifying read every partition: a table requiring a filter gets one that keeps all
    found = qualify_tables(p.find_sql(), "acme", "cdp_")
    assert "WHERE event_date >= CAST('1900-01-01' AS DATE) AND site_id = @site_id" in found
    assert "event_date AS partition_value" in found and found.endswith("GROUP BY 1, 2, 3, 4, 5")


def test_tables_not_streamed_or_not_partitioned_get_plain_deletes() -> None:
    settled = Dml(settled_before=datetime(2026, 5, 10, tzinfo=UTC))
    profiles = plan(table_spec("refined.profiles"), KIM, settled)
    assert profiles is not None
    sql, params = profiles.delete_sql()
    assert "settled_before" not in params and "partition" not in sql
    events = plan(table_spec("refined.events"), KIM, settled)
    assert events is not None
    sql, params = events.delete_sql([date(2026, 5, 1)])
    assert "event_date in unnest(@partitions)" in sql and "settled_before" not in sql  # written by our SQL
    ledger = plan(table_spec("raw.consent"), KIM, settled)
    assert ledger is not None
    sql, _ = ledger.delete_sql()
    assert sql.startswith("delete from raw.consent\nwhere recorded_at < @settled_before") and "1900" not in sql


def test_typed_and_json_keys_compare_the_right_values() -> None:
    subscription = plan(table_spec("raw.subscription"), KIM)
    assert subscription is not None
    assert "(channel in ('email') and address in (select v from unnest(@emails) as v))" in subscription.where
    assert "(channel in ('alimtalk', 'sms') and address in (select v from unnest(@phones) as v))" in subscription.where
    conv = plan(table_spec("raw.conv"), KIM)
    assert conv is not None
    assert "json_value(properties, '$.email') in (select v from unnest(@emails) as v)" in conv.where
    bad_rows = plan(table_spec("raw.bad_rows"), KIM)
    assert bad_rows is not None
    assert bad_rows.where.startswith("(site_id = @site_id or site_id is null)")
    assert "regexp_contains(payload, @text_pattern)" in bad_rows.where


def test_found_rows_are_attributed_to_the_requests_they_are_about() -> None:
    lee = Keys("shop", frozenset({Identifier("member", "m2")}), frozenset({"c_2"}))
    owners = Owners({"req-kim": KIM, "req-lee": lee})
    spec = table_spec("raw.subscription")
    p = plan(spec, KIM.union(lee))
    assert p is not None
    # k0/k1: channel, address; k2: member_id; k3: visitor_id
    assert owners.of(p, {"k0": "sms", "k1": "+821012345678", "k2": None, "k3": None}) == {"req-kim"}
    assert owners.of(p, {"k0": "webpush", "k1": "+821012345678", "k2": "m2", "k3": None}) == {"req-lee"}
    assert owners.of(p, {"k0": "sms", "k1": "+821012345678", "k2": "m2", "k3": None}) == {"req-kim", "req-lee"}
    nodes = plan(table_spec("refined.identity_edges"), KIM.union(lee))
    assert nodes is not None
    assert owners.of(nodes, {"k0": "member:m2", "k1": "visitor:v9"}) == {"req-lee"}
    assert owners.of(nodes, {"k0": "member:m3", "k1": "email:kim@example.com"}) == {"req-kim"}
    bad = plan(table_spec("raw.bad_rows"), KIM.union(lee))
    assert bad is not None
    assert owners.of(bad, {"k0": '{"tel": "010-1234-5678"}'}) == {"req-kim"}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"email": "KIM@example.com"}', True),
        ("call 010 1234 5678 please", True),
        ("+82-10-1234-5678", True),
        ('{"member_id":"m1"}', True),
        ('{"member_id":"m12"}', False),
        ("0101234567899", False),
        ("xkim@example.com", False),
    ],
)
def test_the_text_pattern_finds_identifiers_as_whole_tokens(text: str, found: bool) -> None:
    pattern = text_pattern(KIM.identifiers)
    assert pattern is not None
    assert bool(re.search(pattern, text)) is found


def test_a_request_is_parsed_and_normalised() -> None:
    request = parse_request(
        "r1", {"type": "erase", "email": [" Kim@Example.com "], "phone": "010-1234-5678", "site_id": "shop"}
    )
    assert request.identifiers == (Identifier("email", "kim@example.com"), Identifier("phone", "+821012345678"))
    assert request.site_id == "shop" and request.kind == "erase"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"type": "delete", "email": "a@b.co"}, "type", "must be one of export, erase"),
        ({"type": "erase"}, "identifiers", "at least one of email, phone, member_id, visitor_id"),
        ({"type": "erase", "email": "not-an-address"}, "email", "is not an e-mail address"),
        ({"type": "export", "phone": ["010-1234-5678", "12"]}, "phone[1]", "is not a phone number"),
        ({"type": "export", "member_id": 12}, "member_id", "must be a string or a list of strings"),
        ({"type": "export", "visitor_id": ["  "]}, "visitor_id[0]", "is not a visitor id"),
        ({"type": "export", "visitor_id": "v1", "site_id": ""}, "site_id", "non-empty string"),
    ],
)
def test_a_bad_request_names_its_field(data: dict[str, object], field: str, reason: str) -> None:
    with pytest.raises(RequestError) as error:
        parse_request("r1", data)
    assert error.value.field == field and reason in error.value.reason


def test_declarations_that_do_not_fit_their_table_are_refused() -> None:
    from dataclasses import replace

    from shared.schema import SubjectKey, _check_subject

    page = table_spec("raw.page")
    with pytest.raises(ValueError, match="scalar STRING"):
        _check_subject(replace(page, subject_keys=(SubjectKey("event_ts", "visitor"),)))
    with pytest.raises(KeyError, match="no column"):
        _check_subject(replace(page, subject_keys=(SubjectKey("nickname", "member"),)))
    with pytest.raises(ValueError, match="json_path"):
        _check_subject(replace(table_spec("raw.conv"), subject_keys=(SubjectKey("properties", "email"),)))


def test_the_sweep_hashes_each_declared_identifier_of_streamed_tables_only() -> None:
    since = datetime(2026, 5, 10, 9, tzinfo=UTC)
    settled = Dml(settled_before=datetime(2026, 5, 10, 10, 30, tzinfo=UTC))
    swept = {s.name: sweep_sql(s, since, "pepper", settled) for s in subject_tables()}
    assert {name for name, statement in swept.items() if statement} == {
        "raw.page",
        "raw.land",
        "raw.user",
        "raw.conv",
        "raw.event",
        "raw.consent",
        "raw.subscription",
        "audiences.deliveries",  # deliver streams a fallback's row, with the address it goes to
    }
    sql, params = swept["raw.user"] or ("", {})
    assert parameter_names(sql) == set(params) and to_duckdb(sql) and "pepper" not in sql
    assert params["partition_since"] == date(2026, 5, 9) and params["settled_before"] == settled.settled_before
    qualified = qualify_tables(sql, "acme", "cdp_")
    assert (
        "collected_at >= @arrived_since AND event_date >= @partition_since AND collected_at < @settled_before"
        in qualified
    )
    assert (
        "TO_HEX(SHA256(CONCAT(@privacy_salt, site_id, '|email|', email))) "
        "IN (SELECT id_hash FROM `acme`.cdp_privacy.suppressions)" in qualified
    )
    consent, _ = swept["raw.consent"] or ("", {})
    assert (
        "(subject_type in ('email') and to_hex(sha256(concat(@privacy_salt, site_id, '|email|', subject_value)))"
        in consent
    )

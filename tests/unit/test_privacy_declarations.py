"""Every table that holds personal data declares its subject keys (sql/schema/*/tables.json), so
erasure and export, which are driven by those declarations, can never forget a table."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from shared.schema import SCHEMA_DIR, Field, SubjectKey, TableSpec, table_specs

# Column names that hold, or point at, a person: their ids, contact keys, names, network address
# hashes, identity nodes, and free text that may contain any of those.
PERSONAL = re.compile(
    r"(visitor_ids?|member_id|(profiled_)?customer_id|email|phone|ip_hash|(full|family|given|first|last)_name"
    r"|address|payload|node|node_[ab]|subject_value|id_value|id_hash|.+_(email|phone))"
)


def personal_columns(spec: TableSpec) -> list[str]:
    return [f.name for f in spec.fields if PERSONAL.fullmatch(f.name)]


def undeclared(spec: TableSpec) -> bool:
    """A table with personal columns that neither declares subject keys nor says why it keeps rows."""
    return bool(personal_columns(spec)) and not spec.subject_keys and not spec.retained_after_erasure


def indexed_tables() -> set[str]:
    """Every table of every sql/schema/<dataset>/tables.json, read here from the files themselves."""
    names = set()
    for index in SCHEMA_DIR.glob("*/tables.json"):
        names |= {f"{t['dataset']}.{t['table']}" for t in json.loads(index.read_text())["tables"]}
    return names


def test_the_specs_are_every_table_of_the_schema_files() -> None:
    assert indexed_tables() == set(table_specs())
    assert {"raw.page", "refined.identities", "audiences.segment_members", "privacy.suppressions"} <= indexed_tables()


@pytest.mark.parametrize("name", sorted(indexed_tables()))
def test_a_table_with_personal_columns_declares_its_subject_keys(name: str) -> None:
    spec = table_specs()[name]
    assert not undeclared(spec), (
        f"{name} has personal columns {personal_columns(spec)} but no subject_keys in its tables.json entry "
        "(or retained_after_erasure saying why its rows stay): docs/privacy.md"
    )


def test_the_check_catches_a_new_table_that_forgot() -> None:
    forgot = TableSpec("raw", "newsletter", (Field("row_id", "STRING"), Field("contact_email", "STRING")), "row_id")
    assert personal_columns(forgot) == ["contact_email"] and undeclared(forgot)
    declared = replace(forgot, subject_keys=(SubjectKey("contact_email", "email"),))
    assert not undeclared(declared)
    anonymous = TableSpec("refined", "daily", (Field("day", "DATE"), Field("page_views", "INT64")), "day")
    assert not undeclared(anonymous)


def test_the_declarations_reach_every_shape() -> None:
    specs = table_specs()
    assert [(k.column, k.type) for k in specs["raw.user"].subject_keys] == [
        ("visitor_id", "visitor"),
        ("member_id", "member"),
        ("email", "email"),
        ("phone", "phone"),
    ]
    conv = {(k.column, k.json_path): k.type for k in specs["raw.conv"].subject_keys}
    assert conv[("properties", "$.email")] == "email" and conv[("properties", "$.phone")] == "phone"
    [address, *_] = specs["raw.subscription"].subject_keys
    assert address.type_column == "channel" and address.identifier_types() == ("email", "phone")
    [subject, _] = specs["raw.consent"].subject_keys
    assert subject.identifier_types() == ("visitor", "member", "email", "phone")
    assert {k.type for k in specs["refined.identities"].subject_keys} == {"node", "customer"}
    assert [k.type for k in specs["raw.bad_rows"].subject_keys] == ["text"]
    assert specs["raw.page"].arrival_column == "collected_at"
    assert specs["privacy.suppressions"].retained_after_erasure


def test_the_suppression_table_is_the_contract_the_gate_reads() -> None:
    spec = table_specs()["privacy.suppressions"]
    columns = {f.name: (f.type, f.mode) for f in spec.fields}
    assert columns == {
        "suppression_id": ("STRING", "REQUIRED"),
        "site_id": ("STRING", "REQUIRED"),
        "id_type": ("STRING", "REQUIRED"),
        "id_hash": ("STRING", "REQUIRED"),
        "suppressed_at": ("TIMESTAMP", "REQUIRED"),
        "request_id": ("STRING", "NULLABLE"),
        "reason": ("STRING", "NULLABLE"),
    }
    assert spec.row_id == "suppression_id"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({"column": "email"}, "exactly one of type and type_column"),
        ({"column": "email", "type": "mail"}, "type must be one of"),
        ({"column": "properties", "type": "text", "json_path": "$.id"}, "json_path must"),
        ({"column": "properties", "type": "email", "json_path": "email"}, "json_path must"),
        ({"column": "address", "type_column": "channel", "types": {"sms": "mobile"}}, "types maps"),
    ],
)
def test_a_malformed_key_is_refused_with_its_table(key: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        SubjectKey.from_json("raw.newsletter", key)
    assert "raw.newsletter" in str(error.value)

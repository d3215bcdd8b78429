"""validate_config for campaigns, message templates and the messaging policy: the verdict on the
document with the field path, one round, cross-document checks, re-checks and the audit row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.schema import table_spec
from shared.services.messaging_config import handle_messaging_write
from shared.tam.events import DocumentChange
from tests.builders import leaf, new_warehouse, segment_doc
from tests.fakes import FakeDocumentStore

NOW = datetime(2026, 11, 2, 3, tzinfo=UTC)
BOTH = frozenset({"email", "sms"})
TEMPLATE = {
    "name": "Win-back",
    "sms": {"text": "{{ given_name or '고객' }}님, 새 혜택을 확인하세요"},
    "email": {"subject": "{{ given_name or '고객' }}님, 새 혜택", "text": "{{ given_name }}님, 새 혜택이 있어요"},
}
CAMPAIGN = {
    "name": "Win-back 60 days",
    "segment_id": "inactive-60",
    "kind": "informational",
    "channels": ["sms", "email"],
    "template_id": "winback",
    "enabled": True,
}


@pytest.fixture
def world() -> tuple[Any, FakeDocumentStore]:
    warehouse = new_warehouse()
    warehouse.ensure_tables([table_spec("audit.config_changes")])
    docs = FakeDocumentStore()
    docs.set("segments", "inactive-60", segment_doc({"all": [leaf("rvn_ltv", "gte", 0)]}))
    docs.set("message_templates", "winback", dict(TEMPLATE))
    return warehouse, docs


def write(world: tuple[Any, FakeDocumentStore], collection: str, doc_id: str, doc: dict[str, Any] | None,
          available: frozenset[str] = BOTH) -> str:  # fmt: skip
    warehouse, docs = world
    old = docs.get(collection, doc_id)
    if doc is None:
        docs.delete(collection, doc_id)
    else:
        docs.set(collection, doc_id, doc)
    change = DocumentChange(collection, doc_id, old, docs.get(collection, doc_id))
    return handle_messaging_write(change, warehouse, docs, available, NOW, event_id=f"e-{collection}-{doc_id}")


def status(world: tuple[Any, FakeDocumentStore], collection: str, doc_id: str) -> dict[str, Any]:
    doc = world[1].get(collection, doc_id)
    assert doc is not None
    result: dict[str, Any] = doc["status"]
    return result


def test_a_good_campaign_is_ok_with_what_it_will_do_and_the_loop_ends(world: tuple[Any, FakeDocumentStore]) -> None:
    assert write(world, "campaigns", "winback", dict(CAMPAIGN)) == "ok"
    got = status(world, "campaigns", "winback")
    assert got["state"] == "ok" and got["error"] is None
    assert got["message"] == "OK: informational campaign to segment inactive-60 by sms then email, template winback"
    # Our own status write fires the trigger again: that event changes only our fields.
    current = world[1].get("campaigns", "winback")
    change = DocumentChange("campaigns", "winback", {**CAMPAIGN}, current)
    assert handle_messaging_write(change, world[0], world[1], BOTH, NOW) == "skipped: only results changed"
    audited = world[0].query("select collection, document_id from audit.config_changes order by recorded_at")
    assert audited == [{"collection": "campaigns", "document_id": "winback"}]


@pytest.mark.parametrize(
    ("change", "available", "path"),
    [
        ({"segment_id": "nope"}, BOTH, "segment_id"),
        ({"template_id": "nope"}, BOTH, "template_id"),
        ({"channels": ["sms", "fax"]}, BOTH, "channels[1]"),
        ({}, frozenset({"email"}), "channels[0]"),  # no SMS sender configured on this deployment
        ({"kind": "advertising"}, BOTH, "kind"),  # advertising needs the policy's sender and 080 number
    ],
)
def test_a_bad_campaign_gets_the_field_path(
    world: tuple[Any, FakeDocumentStore], change: dict[str, Any], available: frozenset[str], path: str
) -> None:
    assert write(world, "campaigns", "winback", {**CAMPAIGN, **change}, available) == "error"
    got = status(world, "campaigns", "winback")
    assert got["state"] == "error" and got["error"].split(":")[0] == path, got["error"]


def test_a_template_edit_rechecks_its_campaigns(world: tuple[Any, FakeDocumentStore]) -> None:
    write(world, "campaigns", "winback", dict(CAMPAIGN))
    broken = {"name": "Win-back", "email": TEMPLATE["email"]}  # the SMS part is gone
    assert write(world, "message_templates", "winback", broken) == "ok"
    assert status(world, "message_templates", "winback")["message"].startswith("OK: email")
    campaign = status(world, "campaigns", "winback")
    assert campaign["state"] == "error" and "sms" in campaign["error"], campaign
    assert write(world, "message_templates", "winback", {**TEMPLATE, "sms": {"text": "{{ shoe_size }}"}}) == "error"
    assert status(world, "message_templates", "winback")["error"].startswith("sms.text")


def test_the_policy_is_checked_and_rechecks_every_campaign(world: tuple[Any, FakeDocumentStore]) -> None:
    advertising = {**CAMPAIGN, "kind": "advertising"}
    assert write(world, "campaigns", "winback", advertising) == "error"  # no sender yet
    policy = {
        "sender": {"name": "홍길동상회", "contact": "02-1234-5678"},
        "opt_out": {"number": "080-123-4567", "label": "무료수신거부", "mailto": "unsubscribe@shop.example"},
    }
    assert write(world, "messaging", "policy", policy) == "ok"
    assert status(world, "messaging", "policy")["message"] == (
        "OK: at most 2 advertising messages per 7 days; sender set"
    )
    assert status(world, "campaigns", "winback")["state"] == "ok"  # re-checked under the new policy
    assert write(world, "messaging", "policy", {"frequency_caps": {"advertising": {"max": -1, "days": 7}}}) == "error"
    assert status(world, "messaging", "policy")["error"].startswith("frequency_caps.advertising")
    assert write(world, "messaging", "other", {"x": 1}) == "ignored: not a messaging document"

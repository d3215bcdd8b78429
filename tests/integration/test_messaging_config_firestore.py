"""Campaigns and message templates through the real trigger path: the Firestore emulator's
`--functions_emulator` delivers `document.v1.written` events to validate_config under
functions-framework (devstack/config_trigger.py); the verdict lands on the document, the SMS
channel counts only once a Twilio account is configured, and a template's edit reaches its campaign."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.config_trigger import running_config_trigger
from shared.adapters.firestore_store import FirestoreStore
from tests.conftest import wait_for

pytestmark = pytest.mark.emulator
TEMPLATE = {
    "name": "Notice",
    "email": {"subject": "{{ given_name }}님, 안내", "text": "{{ given_name }}님, 안내드립니다"},
}
CAMPAIGN = {"segment_id": "members", "kind": "informational", "channels": ["email"], "template_id": "notice"}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FirestoreStore]:
    env = {
        "CDP_WAREHOUSE": "duckdb",
        "CDP_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "CDP_EMAIL_FROM": "Shop <news@shop.example>",  # e-mail has a sender here; SMS has none
    }
    with running_config_trigger(tmp_path / "logs", "cdp-messaging", env) as trigger:
        for name, value in trigger.env.items():
            monkeypatch.setenv(name, value)
        yield FirestoreStore(trigger.project)


def status_of(store: FirestoreStore, collection: str, doc_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (store.get(collection, doc_id) or {}).get("status") or {}
    return found


def test_campaign_and_template_are_checked_on_write(store: FirestoreStore) -> None:
    store.set("segments", "members", {"name": "Members", "template": "all_users"})
    store.set("message_templates", "notice", TEMPLATE)
    assert wait_for(lambda: status_of(store, "message_templates", "notice"), timeout=30)["state"] == "ok"
    store.set("campaigns", "c1", CAMPAIGN)
    status = wait_for(lambda: status_of(store, "campaigns", "c1"), timeout=30)
    assert status["state"] == "ok", status
    assert status["message"] == (
        "OK: informational campaign to segment members by email, template notice; disabled: nothing is sent"
    )

    # SMS has no sender on this deployment: the chain's second channel is refused at its path.
    store.set("campaigns", "c1", {"channels": ["email", "sms"]}, merge=True)
    status = wait_for(lambda: status_of(store, "campaigns", "c1").get("state") == "error" and status_of(
        store, "campaigns", "c1"), timeout=30)  # fmt: skip
    assert status["error"].startswith("channels[1]"), status

    # Back to e-mail only, then the template loses its e-mail part: the campaign is re-checked.
    store.set("campaigns", "c1", {"channels": ["email"]}, merge=True)
    wait_for(lambda: status_of(store, "campaigns", "c1").get("state") == "ok", timeout=30)
    store.set("message_templates", "notice", {"name": "Notice", "sms": {"text": "안내드립니다"}})
    status = wait_for(lambda: status_of(store, "campaigns", "c1").get("state") == "error" and status_of(
        store, "campaigns", "c1"), timeout=30)  # fmt: skip
    assert "email" in status["error"], status

"""Destinations and publications through the real trigger path: a Firestore emulator started with
`--functions_emulator` delivers `document.v1.written` CloudEvents to validate_config under
functions-framework (devstack/config_trigger.py), which writes each verdict back; that write fires
the trigger again and must end there. The token secret comes from a folder (CDP_SECRETS_DIR), as
the local stack keeps it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.config_trigger import ConfigTrigger, outcomes, running_config_trigger
from tests.conftest import wait_for

firestore_store = pytest.importorskip("shared.adapters.firestore_store", reason="the Firestore adapter is not there")

pytestmark = pytest.mark.emulator
META = {"type": "facebook_custom_audience", "ad_account_id": "act_1234567890", "access_token_secret": "meta-token"}
VIP = {"segment_id": "vip", "destination_id": "meta", "audience_id": "23850000000000001", "keys": ["EMAIL"]}


@pytest.fixture
def triggered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, ConfigTrigger]]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "meta-token").write_text("EAA-local-token\n", encoding="utf-8")
    env = {
        "CDP_WAREHOUSE": "duckdb",
        "CDP_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "CDP_SECRETS_DIR": str(secrets),
    }
    with running_config_trigger(tmp_path / "logs", "cdp-config", env) as trigger:
        for name, value in trigger.env.items():
            monkeypatch.setenv(name, value)
        yield firestore_store.FirestoreStore(trigger.project), trigger


def status_of(store: Any, collection: str, doc_id: str) -> dict[str, Any]:
    """The document's status; {} until validate_config wrote one."""
    found: dict[str, Any] = (store.get(collection, doc_id) or {}).get("status") or {}
    return found


SKIPPED = "skipped: only results changed"


def settled(trigger: ConfigTrigger) -> list[str]:
    """The function's outcomes once no new one came for 1.5 s: a write that fired the trigger again
    and again (a loop) would keep adding."""
    seen = outcomes(trigger.function)
    while True:
        time.sleep(1.5)
        now = outcomes(trigger.function)
        if len(now) == len(seen):
            return now
        assert len(now) < 20, f"validate_config keeps firing itself: {now}"
        seen = now


def checked(found: list[str]) -> list[str]:
    """The verdicts among outcomes, once each status write was seen as only a result change: at least
    one per verdict, and a copy the emulator delivers again (its events come at least once)."""
    verdicts = sorted(o for o in found if o != SKIPPED)
    assert len(verdicts) <= found.count(SKIPPED) <= 2 * len(verdicts), found
    return verdicts


def test_a_publication_is_checked_once_and_a_broken_destination_reaches_it(
    triggered: tuple[Any, ConfigTrigger],
) -> None:
    store, trigger = triggered
    store.set("segments", "vip", {"name": "VIP", "template": "all_users"})
    store.set("destinations", "meta", META)
    wait_for(lambda: status_of(store, "destinations", "meta"), timeout=30)
    store.set("publications", "p1", VIP)

    status = wait_for(lambda: status_of(store, "publications", "p1"), timeout=30)
    assert status["state"] == "ok" and status["message"].startswith("OK: segment vip into audience 2385")
    wait_for(lambda: len(outcomes(trigger.function)) >= 4, timeout=30)
    first = settled(trigger)
    # The destination's and the publication's writes, and our status write on each: then nothing.
    assert checked(first) == ["ok", "ok"], first

    # The token's secret is renamed to one that does not exist: the destination and its publication say so.
    store.set("destinations", "meta", {"access_token_secret": "meta-token-2"}, merge=True)
    missing = 'no secret "meta-token-2" with an enabled version that this deployment can see'
    wait_for(lambda: status_of(store, "publications", "p1").get("state") == "error", timeout=30)
    assert status_of(store, "destinations", "meta")["error"].startswith(f"access_token_secret: {missing}")
    assert status_of(store, "publications", "p1")["error"].startswith(
        f'destination_id: destination "meta" is not usable: access_token_secret: {missing}'
    )
    wait_for(lambda: len(outcomes(trigger.function)) >= len(first) + 3, timeout=30)
    # The destination's edit, its status write, and the publication's status write: then nothing.
    assert checked(settled(trigger)[len(first) :]) == ["error"]

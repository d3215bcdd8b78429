"""Segments through the real Firestore emulator and the FirestoreStore adapter.

The first tests use the session emulators (apply, publish, build, the loop guard on real reads).
The last one is the trigger itself: a Firestore emulator started with `--functions_emulator`
delivers `document.v1.written` CloudEvents (base64 protobuf, as Eventarc's protobuf) to
validate_config running under functions-framework, which writes the status back; that write fires
the trigger again and must end there.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.segments import Context, main
from devstack.config_trigger import outcomes as logged_outcomes
from devstack.config_trigger import running_config_trigger
from devstack.emulators import Emulators
from devstack.processes import Server
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_spec
from shared.services import segments as service
from shared.tam.events import DocumentChange
from tests.builders import SEGMENTS_NOW as NOW
from tests.builders import planted_profiles, planted_warehouse
from tests.conftest import wait_for

firestore_store = pytest.importorskip("shared.adapters.firestore_store", reason="the Firestore adapter is not there")

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted((ROOT / "examples" / "segments").glob("*.yaml"))


@pytest.fixture
def store(emulators: Emulators) -> Any:
    emulators.reset_firestore()
    return firestore_store.FirestoreStore(emulators.project)


def test_apply_publish_and_build_through_firestore(store: Any, tmp_path: Path) -> None:
    for example in EXAMPLES:
        shutil.copy(example, tmp_path / example.name)
    warehouse = planted_warehouse()
    out = io.StringIO()
    ctx = Context(out, lambda: store, lambda: warehouse, lambda: NOW, tmp_path)
    names = [e.name for e in EXAMPLES]
    assert main(["apply", *names], ctx) == 0 and out.getvalue().count("created   ") == 5
    out.truncate(0)
    assert main(["apply", *names], ctx) == 0 and out.getvalue().count("unchanged ") == 5
    assert service.publish_catalogue(store)["written"] == 0  # apply published it; a second time writes nothing
    assert store.get("segmentlets", "kw_inner")["name_ko"] == "내부 검색어"

    report = service.build_segments(warehouse, store, NOW)
    assert sorted(report.built) == [e.stem for e in EXAMPLES] and not report.failed
    sizes = {seg_id: (doc["size"], doc["entered"], doc["left"]) for seg_id, doc in store.list("segments")}
    assert sizes == {
        "dormant-members": (3, 3, 0),  # c02, c05, c07
        "rfm-at-risk": (1, 1, 0),  # c07 (c05 has no phone)
        "seoul-mobile-no-purchase": (2, 2, 0),  # c03, c09 viewed products, never ordered
        "shirt-searchers": (1, 1, 0),  # c01
        "vip-lifetime-revenue": (1, 1, 0),  # c04
    }
    dormant = store.get("segments", "dormant-members")
    assert dormant["computed_at"] == NOW and dormant["status"]["state"] == "ok"
    assert service.build_segments(warehouse, store, NOW).built == {}  # same run time: nothing is due


def test_status_write_does_not_retrigger_validation(store: Any) -> None:
    warehouse = planted_warehouse()
    definition = {"name": "women", "template": "all_users", "rules": {"segmentlet": "sex", "op": "eq", "value": "F"}}
    store.set("segments", "women", definition)
    created = DocumentChange("segments", "women", None, store.get("segments", "women"))
    assert service.handle_segment_write(created, warehouse, store, NOW) == "ok"
    after = store.get("segments", "women")
    assert after["status"]["estimate"] == 3  # c01, c03, c09 active in the last 30 days
    assert (
        service.handle_segment_write(DocumentChange("segments", "women", created.new, after), warehouse, store, NOW)
        == "skipped: only results changed"
    )
    # sync_schedules' part of the status survives our status writes.
    store.set("segments", "women", {"status": {**after["status"], "schedule": {"state": "ok"}}}, merge=True)
    edited = {**definition, "rules": {"segmentlet": "age", "op": "gte", "value": "x"}}
    store.set("segments", "women", {**store.get("segments", "women"), **edited})
    change = DocumentChange("segments", "women", after, store.get("segments", "women"))
    assert service.handle_segment_write(change, warehouse, store, NOW) == "error"
    status = store.get("segments", "women")["status"]
    assert status["message"] == 'rules.value: expected a number for age, got "x"'
    assert status["schedule"] == {"state": "ok"}


# --- the trigger, end to end ---------------------------------------------------------------------


@pytest.fixture
def triggered(emulators: Emulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Server]]:
    """validate_config under functions-framework, fed by its own Firestore emulator's trigger
    (devstack/config_trigger.py, as the local stack runs it)."""
    duckdb_path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(duckdb_path)
    warehouse.ensure_tables([table_spec("refined.profiles")])
    rows = planted_profiles()
    warehouse.insert_rows("refined.profiles", rows, [r["customer_id"] for r in rows])
    warehouse.close()
    env = {"CDP_WAREHOUSE": "duckdb", "CDP_DUCKDB_PATH": str(duckdb_path)}
    with running_config_trigger(tmp_path, emulators.project, env) as trigger:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", trigger.firestore.host_port)
        yield firestore_store.FirestoreStore(emulators.project), trigger.function


def outcomes(function: Server) -> list[str]:
    return logged_outcomes(function, "segment config checked")


def test_the_firestore_trigger_validates_once_and_stops(triggered: tuple[Any, Server]) -> None:
    store, function = triggered
    store.set(
        "segments",
        "women",
        {
            "name": "women",
            "template": "all_users",
            "period": {"last_days": 3650},
            "rules": {"segmentlet": "sex", "op": "eq", "value": "F"},
        },
    )
    status = wait_for(lambda: (store.get("segments", "women") or {}).get("status"), timeout=30)
    assert status["state"] == "ok" and status["estimate"] == 4  # c01, c03, c07, c09
    wait_for(lambda: len(outcomes(function)) >= 2, timeout=30)
    time.sleep(1.5)  # room for a loop to show itself
    assert outcomes(function) == ["ok", "skipped: only results changed"]
    assert store.get("segments", "women")["status"]["at"] == status["at"]

    store.set("segments", "women", {"rules": {"segmentlet": "sex", "op": "eq", "value": "X"}}, merge=True)
    wait_for(lambda: store.get("segments", "women")["status"]["state"] == "error", timeout=30)
    wait_for(lambda: len(outcomes(function)) >= 4, timeout=30)
    time.sleep(1.5)
    assert outcomes(function) == ["ok", "skipped: only results changed", "error", "skipped: only results changed"]
    assert store.get("segments", "women")["status"]["message"] == 'rules.value: "X" is not a known sex; one of M, F, U'

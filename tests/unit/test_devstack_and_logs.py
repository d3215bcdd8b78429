"""The local stack's failure messages, its synthetic shop, and the JSON log shape Cloud Logging parses."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from devstack import emulators
from devstack.processes import StackError, free_port, start_server, wait_http
from devstack.storefront import Storefront
from shared.logs import JsonFormatter


def test_a_missing_emulator_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "platform").mkdir()
    monkeypatch.setenv("CLOUDSDK_ROOT", str(tmp_path))
    with pytest.raises(StackError, match="Pub/Sub emulator is not installed.*google-cloud-cli-pubsub-emulator"):
        emulators.start_pubsub(tmp_path / "logs")
    with pytest.raises(StackError, match="Firestore emulator is not installed.*firestore-emulator"):
        emulators.start_firestore(tmp_path / "logs")


def test_missing_java_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="java was not found.*openjdk-17"):
        emulators.start_pubsub(tmp_path / "logs")


def test_a_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    server = start_server("dies", ["python3", "-c", "import sys; print('boom'); sys.exit(3)"], free_port(), tmp_path)
    with pytest.raises(StackError, match=r"(?s)dies exited with code 3.*boom"):
        wait_http(server, timeout=10)


def test_log_records_are_one_json_object_with_severity_and_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "cdp", "levelname": "WARNING", "msg": "beacon rejected %s", "args": ("x",), "reason": "wrong_type"}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["severity"] == "WARNING" and entry["message"] == "beacon rejected x"
    assert entry["reason"] == "wrong_type" and entry["logger"] == "cdp" and "T" in entry["time"]


def test_the_storefront_has_vips_the_vip_example_segment_finds() -> None:
    """examples/segments/vip-lifetime-revenue.yaml asks for 1,000,000 won of lifetime revenue: the
    default demo's shop must have such customers, as a real shop's top few percent do."""
    revenue: Counter[str] = Counter()
    members: set[str] = set()
    for beacon in Storefront(seed=7, visitors=2000, days=60).beacons():
        for event in beacon.events:
            if event.get("member_id"):
                members.add(event["member_id"])
            if event["type"] == "conv" and event["props"].get("conv_type") == "order":
                revenue[event["visitor_id"]] += event["props"]["revenue"]
    vips = [visitor for visitor, total in revenue.items() if total >= 1_000_000]
    assert 0.01 * len(members) <= len(vips) <= 0.1 * len(members)

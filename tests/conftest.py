"""Session fixtures: the emulators and the local ingestion pipeline, each started once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.emulators import Emulators, running_emulators
from devstack.pipeline import LocalPipeline, running_pipeline
from shared.adapters.duckdb_warehouse import DuckDBWarehouse

TEST_SITES = {"test-shop": ["https://shop.example"], "open-shop": ["*"], "demo-shop": ["*"]}


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    with running_emulators(tmp_path_factory.mktemp("emulators")) as emu:
        emu.export()
        yield emu


@pytest.fixture(scope="session")
def pipeline(emulators: Emulators, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    with running_pipeline(tmp_path_factory.mktemp("pipeline"), TEST_SITES, emulators) as running:
        yield running


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll until predicate returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value {value!r}")


def warehouse_rows(path: Path, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return DuckDBWarehouse(path).query(sql, params)

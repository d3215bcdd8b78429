"""scripts/report: a page from a warehouse file into a folder, said to be from the warehouse alone when
no Firestore emulator answers; a missing file refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import report as cli
from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import get_settings
from shared.schema import table_specs


def _forget() -> None:
    for accessor in (bootstrap.settings, bootstrap.warehouse, bootstrap.documents):
        accessor.cache_clear()
    get_settings.cache_clear()


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    profile = {"customer_id": "c1", "site_id": "shop", "computed_at": "2026-05-10T00:00:00+00:00"}
    assert not warehouse.insert_rows("refined.profiles", [profile], ["c1"]).errors
    warehouse.close()
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("CDP_PROJECT", "cdp-test")
    monkeypatch.setenv("CDP_DUCKDB_PATH", str(path))  # the command sets it; this puts it back afterwards
    _forget()
    yield path
    bootstrap.warehouse().close()
    _forget()


def test_a_page_from_the_warehouse_alone(local: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli.main(["--warehouse", str(local), "--out", str(out), "--days", "7"]) == 0
    printed = capsys.readouterr().out
    assert "built from the warehouse alone" in printed
    [page] = out.glob("report-*.html")
    assert f"report: {page} (" in printed and (out / "latest.html").read_bytes() == page.read_bytes()
    html = page.read_text()
    assert "Built from the warehouse alone" in html and 'data-k="funnel.audiences.profiles" data-v="1"' in html
    assert "Flows over 7 days" in html


def test_a_missing_warehouse_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--warehouse", str(tmp_path / "none.duckdb"), "--out", str(tmp_path)]) == 2
    assert "no warehouse at" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["", "nonsense", "127.0.0.1:notaport", "127.0.0.1:1"])
def test_no_emulator_is_taken_for_one(host: str) -> None:
    assert not cli.emulator_running({"FIRESTORE_EMULATOR_HOST": host})

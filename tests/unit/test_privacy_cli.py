"""scripts/privacy on a local DuckDB file: the receipt printed, exit codes, a clear error naming the
options when no identifier is given, and an export folder."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from cli import privacy as cli
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_specs
from shared.services import refine as refinement
from tests.builders import History

NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    h = History()
    h.visit("05-01 10:00", "kim-v1", "/")
    h.add("raw.user", "05-01 10:01", "kim-v1", "kim-m", email="kim@example.com")
    h.visit("05-01 11:00", "lee-v1", "/")
    h.load(warehouse)
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 1), NOW)
    warehouse.close()
    for name in ("CDP_WAREHOUSE", "CDP_PRIVACY_SALT", "FIRESTORE_EMULATOR_HOST", "CDP_SITES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CDP_DUCKDB_PATH", str(path))
    monkeypatch.setenv("CDP_PRIVACY_CWD", str(tmp_path))
    return path


def test_erase_prints_the_receipt_and_leaves_nothing(local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["erase", "--email", "KIM@example.com", "--site", "shop"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("erase cli-") and ": done" in out.splitlines()[0]
    assert "raw.page" in out and "0 left" in out and "documents: not checked" in out
    assert "suppressed identifiers: 3; audience removals requested: 1" in out
    warehouse = DuckDBWarehouse(local)
    assert warehouse.query("select visitor_id from raw.page") == [{"visitor_id": "lee-v1"}]
    warehouse.close()


def test_export_writes_the_folder_and_json_receipt(local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", "--visitor-id", "kim-v1", "--out", "exports", "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["status"] == "done" and receipt["sites"] == ["shop"]
    manifest = Path(receipt["export"]["location"])
    assert manifest.parent.parent == local.parent / "exports"
    tables = {f["table"] for f in json.loads(manifest.read_text())["files"]}
    assert {"raw.page", "raw.user", "refined.profiles"} <= tables


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["erase"], "--email --phone --member-id --visitor-id: a privacy request needs at least one of"),
        (["erase", "--phone", "12"], "--phone: '12' is not a phone number"),
    ],
)
def test_a_bad_request_exits_2_naming_the_option(
    local: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bigquery_without_the_salt_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDP_WAREHOUSE", "bigquery")
    monkeypatch.delenv("CDP_PRIVACY_SALT", raising=False)
    monkeypatch.setattr(cli.bootstrap, "build_warehouse", lambda settings: FakeWarehouseClosed())
    assert cli.main(["erase", "--member-id", "m1"]) == 2
    assert "CDP_PRIVACY_SALT" in capsys.readouterr().err


class FakeWarehouseClosed:
    closed = False

    def close(self) -> None:
        self.closed = True

"""`scripts/import` end to end: a subprocess, the real settings and a DuckDB file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import warehouse_rows

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "import"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CDP_") and k != "GOOGLE_CLOUD_PROJECT"}
    out.update(CDP_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"), CDP_SITES='{"demo-shop": {"origins": ["*"]}}')
    return out  # no CDP_PROJECT: the importer defaults to cdp-local


def cli(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / "import"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_customers_then_orders_then_a_repeat(env: dict[str, str], tmp_path: Path) -> None:
    shutil.copy(DATA / "customers_kr.csv", tmp_path / "crm.csv")
    state = ["--state-dir", "state"]  # relative, like the file: both resolve against the caller's directory
    customers = cli(env, "customers", "crm.csv", "--site", "demo-shop", *state, cwd=tmp_path)
    assert customers.returncode == 0, customers.stderr
    assert customers.stdout.splitlines() == [
        "crm.csv: 12 rows read → 12 customers",
        "  accepted: raw.user 11 new, 0 already present",
        "  kept with dropped fields: 3 customers (email 1, birth_date 1, joined_at 1) → raw.bad_rows",
        "  rejected: 1 (missing_field 1) → raw.bad_rows",
    ]
    assert "회원번호→member_id" in customers.stderr and "(csv, cp949)" in customers.stderr
    assert len(list((tmp_path / "state").glob("*.json"))) == 1

    orders = cli(env, "orders", str(DATA / "orders.csv"), "--site", "demo-shop", "--state-dir", str(tmp_path / "state"))
    assert orders.returncode == 0, orders.stderr
    assert "  accepted: raw.conv 10 new, 0 already present" in orders.stdout

    again = cli(env, "customers", "crm.csv", "--site", "demo-shop", *state, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.strip() == "crm.csv: already imported (12 rows), nothing to do (--restart imports it again)"

    db = tmp_path / "warehouse.duckdb"
    counts = warehouse_rows(
        db,
        "SELECT (SELECT COUNT(*) FROM raw.user) AS users, (SELECT COUNT(*) FROM raw.conv) "
        "AS orders, (SELECT COUNT(*) FROM raw.bad_rows WHERE stage = 'import') AS bad",
    )
    assert counts == [{"users": 11, "orders": 10, "bad": 8}]
    names = warehouse_rows(db, "SELECT family_name, given_name FROM raw.user WHERE member_id = 'M0001'")
    assert names == [{"family_name": "김", "given_name": "민수"}]


def test_unusable_input_exits_2_before_writing(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "pos.csv").write_text("order_id,member_id,amount\nO1,m1,1000\n", encoding="utf-8")
    missing = cli(env, "orders", str(tmp_path / "pos.csv"), "--site", "demo-shop")
    assert missing.returncode == 2
    assert "missing required columns: ordered_at" in missing.stderr
    assert "Columns found: order_id, member_id, amount" in missing.stderr
    unknown = cli(env, "customers", str(DATA / "customers_kr.csv"), "--site", "nope")
    assert unknown.returncode == 2 and "'nope' is not configured" in unknown.stderr
    assert not (tmp_path / "warehouse.duckdb").exists()  # nothing was written, not even an empty warehouse

"""DuckDB adapter: insert ids skip rows already stored, whether or not the table is keyed; a newer
schema adds its columns to a table that exists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_spec, table_specs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("keyed", [True, False], ids=["primary key", "unkeyed"])
def test_insert_ids_skip_stored_rows(keyed: bool) -> None:
    spec = replace(table_spec("refined.profiles"), enforce_row_id=keyed)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([spec])
    rows = [{"customer_id": f"c{n}", "site_id": "shop", "computed_at": "2026-05-01T00:00:00+00:00"} for n in range(3)]
    first = warehouse.insert_rows("refined.profiles", rows, [r["customer_id"] for r in rows])
    again = warehouse.insert_rows("refined.profiles", rows[1:] + rows[1:2], ["c1", "c2", "c1"])
    assert (first.inserted, first.skipped_duplicates, first.errors) == (3, 0, [])
    assert (again.inserted, again.skipped_duplicates, again.errors) == (0, 3, [])
    stored = warehouse.query("select customer_id from refined.profiles order by customer_id")
    assert [r["customer_id"] for r in stored] == ["c0", "c1", "c2"]


@pytest.mark.parametrize("keyed", [True, False], ids=["primary key", "unkeyed"])
def test_a_newer_schema_adds_its_nullable_columns_and_keeps_the_rows(keyed: bool) -> None:
    spec = replace(table_spec("refined.identities"), enforce_row_id=keyed)
    older = replace(spec, fields=tuple(f for f in spec.fields if f.name != "profiled_customer_id"))
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([older])
    row = {"identity_id": "s|visitor:v1", "site_id": "s", "node": "visitor:v1", "id_type": "visitor",
           "id_value": "v1", "customer_id": "c_1"}  # fmt: skip
    assert warehouse.insert_rows("refined.identities", [row], [row["identity_id"]]).inserted == 1
    warehouse.ensure_tables([spec])
    [stored] = warehouse.query("select * from refined.identities")
    assert stored == row | {"profiled_customer_id": None}


def test_a_newer_schema_with_a_required_column_names_it() -> None:
    spec = table_spec("refined.identities")
    older = replace(spec, fields=tuple(f for f in spec.fields if f.name != "customer_id"))
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([older])
    with pytest.raises(ValueError, match="refined.identities exists without the REQUIRED column 'customer_id'"):
        warehouse.ensure_tables([spec])


# -- append-only raw tables ------------------------------------------------------------------------


def page_rows(n: int, prefix: str = "e") -> list[dict[str, Any]]:
    return [
        {"event_id": f"{prefix}{i}", "site_id": "s", "event_date": "2026-11-20",
         "event_ts": "2026-11-20T11:59:00+00:00", "collected_at": "2026-11-20T12:00:00+00:00", "source": "tracker",
         "visitor_id": f"v{i}"}
        for i in range(n)
    ]  # fmt: skip


def counts(warehouse: DuckDBWarehouse, table: str = "raw.page") -> tuple[int, int]:
    [row] = warehouse.query(f"select count(*) as n, count(distinct event_id) as ids from {table}")
    return int(row["n"]), int(row["ids"])


def test_raw_tables_are_append_only_with_best_effort_ids(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    first = DuckDBWarehouse(path)
    first.ensure_tables(list(table_specs().values()))
    rows = page_rows(3)
    assert first.insert_rows("raw.page", rows, [r["event_id"] for r in rows]).inserted == 3
    again = first.insert_rows("raw.page", rows, [r["event_id"] for r in rows])  # a redelivery to the same loader
    assert (again.inserted, again.skipped_duplicates) == (0, 3)
    first.close()
    other = DuckDBWarehouse(path)  # another process (a restarted loader) does not know those ids
    assert other.insert_rows("raw.page", rows[:1], [rows[0]["event_id"]]).inserted == 1
    assert counts(other) == (4, 3)
    keys = other.query(
        "select count(*) as n from duckdb_constraints() where table_name = 'page' and constraint_type = 'PRIMARY KEY'"
    )
    assert keys == [{"n": 0}]  # unkeyed, as BigQuery's streaming tables
    other.close()


def test_ids_are_remembered_only_once_committed(tmp_path: Path) -> None:
    """A batch that fails as a whole is rolled back and retried row by row: the rows written in the
    rolled-back attempt must not count as already stored."""
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    warehouse.ensure_tables(list(table_specs().values()))
    rows = page_rows(2)
    bad = {**page_rows(1, "c")[0], "conv_type": "order", "revenue": "not a number"}
    results = warehouse.insert_many({"raw.page": (rows, ["e0", "e1"]), "raw.conv": ([bad], ["c0"])})
    assert results["raw.page"].inserted == 2 and len(results["raw.conv"].errors) == 1
    assert counts(warehouse) == (2, 2)
    assert warehouse.insert_rows("raw.page", rows, ["e0", "e1"]).skipped_duplicates == 2  # now committed
    warehouse.close()


def test_a_raw_table_made_keyed_by_an_older_version_still_deduplicates(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    older = replace(table_spec("raw.page"), append_only=False, enforce_row_id=True)
    made = DuckDBWarehouse(path, specs={"raw.page": older})
    made.ensure_tables([older])
    rows = page_rows(2)
    made.insert_rows("raw.page", rows, ["e0", "e1"])
    made.close()
    now = DuckDBWarehouse(path)  # today's spec says append-only; the stored table still has its key
    result = now.insert_rows("raw.page", page_rows(3), ["e0", "e1", "e2"])
    assert (result.inserted, result.skipped_duplicates, result.errors) == (1, 2, [])
    assert counts(now) == (3, 3)
    now.close()


def test_concurrent_callers_share_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The group commit: a writer waits briefly for callers it expects, so pushes that arrive
    together are written by one transaction with one statement per table."""
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", linger=0.5)
    warehouse.ensure_tables(list(table_specs().values()))
    batches: list[int] = []
    write = DuckDBWarehouse._write
    monkeypatch.setattr(DuckDBWarehouse, "_write", lambda self, batch: (batches.append(len(batch)), write(self, batch)))
    ready = threading.Barrier(4)

    def insert(n: int) -> int:
        rows = page_rows(2, f"t{n}-")
        ready.wait()
        return warehouse.insert_rows("raw.page", rows, [r["event_id"] for r in rows]).inserted

    warehouse._expect = 4  # as after a burst of four pushes
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(insert, range(4))) == [2, 2, 2, 2]
    assert batches == [4] and counts(warehouse) == (8, 8)
    warehouse.close()


# -- sharing the file between processes ------------------------------------------------------------

HOLDER = """
import sys, time
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
w = DuckDBWarehouse(sys.argv[1], idle_release=3600)
started = time.monotonic()
print(w.query("select count(*) as n from raw.page")[0]["n"], round(time.monotonic() - started, 1), flush=True)
"""


def test_a_busy_holder_hands_the_file_to_a_waiting_process(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    holder = DuckDBWarehouse(path, idle_release=3600)  # never idle: only the handover can free the file
    holder.ensure_tables([table_spec("raw.page")])
    holder.insert_rows("raw.page", page_rows(3), ["e0", "e1", "e2"])
    other = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while other.poll() is None and time.monotonic() < deadline:
            holder.query("select 1 as one")  # the holder keeps working; at a call it sees the waiter
            time.sleep(0.05)
        assert other.poll() == 0, "the waiting process never got the file"
        assert other.stdout is not None and other.stdout.read().split()[0] == "3"
        assert holder.insert_rows("raw.page", page_rows(1, "x"), ["x0"]).inserted == 1  # and takes it back
    finally:
        if other.poll() is None:
            os.killpg(other.pid, signal.SIGKILL)
        holder.close()


def test_an_idle_holder_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    holder = DuckDBWarehouse(path, idle_release=0.2)
    holder.ensure_tables([table_spec("raw.page")])
    holder.insert_rows("raw.page", page_rows(2), ["e0", "e1"])
    deadline = time.monotonic() + 30
    while holder._conn is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder._conn is None
    with duckdb.connect(str(path), read_only=True) as conn:  # a tool outside our lock can open it now
        assert conn.execute("select count(*) from raw.page").fetchone() == (2,)


# -- the write-behind buffer of append-only tables (shared/adapters/duckdb_buffer.py) ----------------


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".buffer")


def test_buffered_rows_are_journaled_then_moved_before_any_read(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    result = warehouse.insert_rows("raw.page", page_rows(3), ["e0", "e1", "e2"])
    assert (result.inserted, result.errors) == (3, [])
    assert journal(path).stat().st_size > 0  # durable in the journal: the acknowledgement
    with warehouse.connection(drain=False) as conn:  # not yet in the table
        assert conn.execute("select count(*) from raw.page").fetchone() == (0,)
    assert counts(warehouse) == (3, 3)  # a read moves them first
    assert journal(path).stat().st_size == 0
    warehouse.close()


def test_a_killed_holders_journal_is_recovered_by_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(path).ensure_tables(list(table_specs().values()))
    script = (
        "import os, sys\n"
        "from shared.adapters.duckdb_warehouse import DuckDBWarehouse\n"
        "from tests.unit.test_duckdb_warehouse import page_rows\n"
        "w = DuckDBWarehouse(sys.argv[1])\n"
        "rows = page_rows(4, 'k')\n"
        "assert w.insert_rows('raw.page', rows, [r['event_id'] for r in rows]).inserted == 4\n"
        "os._exit(0)  # no release, no exit handlers: as if killed\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, check=True, timeout=120)
    size = journal(path).stat().st_size
    assert size > 0
    with open(journal(path), "ab") as torn:  # a write cut short after the last acknowledged one
        torn.write(b"\x05\x00\xff\xff\x00\x00raw.p")
    with duckdb.connect(str(path), read_only=True) as conn:  # the file itself has none of them yet
        assert conn.execute("select count(*) from raw.page").fetchone() == (0,)
    reader = DuckDBWarehouse(path)
    stored = reader.query("select event_id from raw.page order by event_id")
    assert [r["event_id"] for r in stored] == ["k0", "k1", "k2", "k3"]
    assert journal(path).stat().st_size == 0
    reader.close()


def test_rows_that_might_not_cast_are_inserted_at_once_not_buffered(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    naive = [dict(row, event_ts="2026-11-20 11:59:00") for row in page_rows(2)]  # no offset: DuckDB's call
    assert warehouse.insert_rows("raw.page", naive, ["e0", "e1"]).inserted == 2
    assert not journal(path).exists() or journal(path).stat().st_size == 0
    assert counts(warehouse) == (2, 2)
    warehouse.close()


def test_a_full_buffer_is_moved_by_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    assert warehouse._buffer is not None
    warehouse._buffer.max_rows = 5
    warehouse.insert_rows("raw.page", page_rows(3, "a"), ["a0", "a1", "a2"])
    assert warehouse._buffer.rows == 3
    warehouse.insert_rows("raw.page", page_rows(3, "b"), ["b0", "b1", "b2"])
    assert warehouse._buffer.rows == 0 and journal(path).stat().st_size == 0
    with warehouse.connection(drain=False) as conn:
        assert conn.execute("select count(*) from raw.page").fetchone() == (6,)
    warehouse.close()


def test_buffered_rows_a_table_refuses_are_quarantined_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows are checked before they are buffered; should DuckDB refuse one anyway when moving the
    buffer, the others are stored and the refused one is kept, with the reason, beside the journal."""
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.ensure_tables(list(table_specs().values()))
    monkeypatch.setattr("shared.adapters.duckdb_warehouse.castable", lambda spec, staged: True)
    good = {**page_rows(1, "c")[0], "conv_type": "order", "revenue": "12.5"}
    bad = {**page_rows(1, "d")[0], "conv_type": "order", "revenue": "12,5"}  # DuckDB refuses the comma
    assert warehouse.insert_rows("raw.conv", [good, bad], ["c0", "d0"]).inserted == 2
    with caplog.at_level("ERROR"):
        stored = warehouse.query("select event_id, revenue from raw.conv")
    assert [(r["event_id"], float(r["revenue"])) for r in stored] == [("c0", 12.5)]
    [line] = (path.with_name(path.name + ".buffer.rejected.ndjson")).read_text().splitlines()
    kept = json.loads(line)
    assert (kept["table"], kept["row"]["event_id"], kept["row"]["revenue"]) == ("raw.conv", "d0", "12,5")
    assert "Conversion" in kept["reason"] and "refused" in caplog.text
    warehouse.close()

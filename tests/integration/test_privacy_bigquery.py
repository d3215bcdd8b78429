"""Privacy statements through BigQueryWarehouse and the real client against bqemulator: the salted
hash in BigQuery's own SQL, and a batched erasure and export (MERGEs over parallel arrays,
partition-aware deletes, JSON and regular-expression keys) on the BigQuery dialect."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from devstack.processes import Server
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.adapters.folder_blobs import FolderBlobs
from shared.privacy.removals import RemovalQueue
from shared.privacy.subjects import build_request, identifier
from shared.privacy.suppression import WarehouseSuppressions, id_hash, suppress
from shared.schema import table_specs
from shared.services import privacy
from shared.services import refine as refinement
from shared.sql import load_sql
from tests.builders import History

PROJECT = "cdp-local"
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)
SALT = "bq-salt"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu-privacy"), PROJECT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def warehouse(emulator: Server) -> Iterator[BigQueryWarehouse]:
    client = bigquery_client(emulator, PROJECT)
    prefix = f"p{uuid.uuid4().hex[:8]}_"
    warehouse = BigQueryWarehouse(PROJECT, prefix, client=client, retry_deadline=20, request_timeout=60)
    warehouse.ensure_tables(list(table_specs().values()))
    h = History()
    h.visit("05-01 10:00", "kim-v1", "/")
    h.add("raw.user", "05-01 10:01", "kim-v1", "kim-m", email="kim@example.com", phone="+821012345678")
    h.order("05-02 10:03", "o-kim", 50000, ["코트"], visitor_id="kim-v2", properties={"email": "kim@example.com"})
    h.visit("05-01 11:00", "lee-v1", "/")
    for table, rows in h.rows.items():
        assert not warehouse.insert_rows(table, rows, [r["event_id"] for r in rows]).errors
    bad = {"bad_row_id": "b1", "event_date": "2026-05-01", "failed_at": "2026-05-01T10:00:00+00:00"}
    bad |= {"stage": "collect", "reason_code": "wrong_type", "site_id": "shop", "payload": '{"tel":"010-1234-5678"}'}
    assert not warehouse.insert_rows("raw.bad_rows", [bad], ["b1"]).errors
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 2), NOW)
    yield warehouse
    for dataset in {spec.dataset for spec in table_specs().values()}:
        client.delete_dataset(f"{PROJECT}.{prefix}{dataset}", delete_contents=True, not_found_ok=True)


def test_bigquery_hashes_like_python(warehouse: BigQueryWarehouse) -> None:
    params = {"privacy_salt": SALT, "site_id": "shop", "id_type": "email", "id_value": "kim@example.com"}
    [row] = warehouse.query(load_sql("privacy/id_hash"), params)
    assert row["id_hash"] == id_hash(SALT, "shop", "email", "kim@example.com")


def test_bigquery_exports_then_erases_a_batch(warehouse: BigQueryWarehouse, tmp_path: Path) -> None:
    kim = [identifier("email", "kim@example.com")]
    [exported] = privacy.export(
        warehouse, [build_request("x-kim", "export", kim, "shop")], blobs=FolderBlobs(tmp_path), now=NOW
    )
    assert exported.tables["raw.page"].found == 1 and exported.tables["raw.conv"].found == 1
    assert exported.tables["raw.bad_rows"].found == 1

    requests = [
        build_request("e-kim", "erase", kim, "shop"),
        build_request("e-none", "erase", [identifier("member", "x")]),
    ]
    kim_receipt, nobody = privacy.erase(warehouse, requests, salt=SALT, now=NOW, removals=RemovalQueue(warehouse))

    assert kim_receipt.status == nobody.status == "done", kim_receipt.summary()
    assert kim_receipt.tables["raw.conv"].erased == 1 and kim_receipt.tables["raw.bad_rows"].erased == 1
    assert kim_receipt.tables["refined.identities"].erased >= 4
    assert warehouse.query("select visitor_id from raw.page where event_date >= '2026-01-01'") == [
        {"visitor_id": "lee-v1"}
    ]
    screen = WarehouseSuppressions(warehouse, SALT)
    assert screen.suppressed("shop", set(kim)) == set(kim)
    assert warehouse.query("select request_id from privacy.audience_removals") == [{"request_id": "e-kim"}]
    [suppressed] = warehouse.query(
        "select count(*) as n, countif(id_type is null or request_id is null) as bad from privacy.suppressions"
    )
    assert suppressed == {"n": 5 + 1, "bad": 0}  # kim's five identifiers and the unknown member x


def test_bigquery_sweeps_a_late_row_of_an_erased_person(warehouse: BigQueryWarehouse) -> None:
    suppress(warehouse, SALT, "shop", {identifier("visitor", "kim-v1"): "e-kim"}, NOW)  # adds nothing if erased
    late = History()
    late.count = 100
    late.add("raw.page", "05-10 10:00", "kim-v1", page_path="/late")
    late.add("raw.page", "05-10 10:00", "park-v1", page_path="/late")
    for table, rows in late.rows.items():
        assert not warehouse.insert_rows(table, rows, [r["event_id"] for r in rows]).errors
    swept = privacy.sweep(warehouse, SALT, datetime(2026, 5, 10, 9, tzinfo=UTC))
    assert "raw.page" in swept and "raw.consent" in swept
    rows = warehouse.query("select visitor_id from raw.page where event_date = '2026-05-10'")
    assert rows == [{"visitor_id": "park-v1"}]

"""An erased person does not come back: a late beacon from their cookie and a re-import of the CRM file
that held them are refined and imported without them, while everyone else's rows go through."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.folder_blobs import FolderBlobs
from shared.offline_import.mapping import plan_columns
from shared.offline_import.runner import format_summary, run_import
from shared.offline_import.shaping import ImportJob
from shared.offline_import.sources import read_source
from shared.privacy.removals import RemovalQueue
from shared.privacy.subjects import build_request, identifier
from shared.privacy.suppression import WarehouseSuppressions
from shared.services import privacy
from shared.services import refine as refinement
from tests.builders import History, new_warehouse
from tests.fakes import FakeDocumentStore

SITE = "shop"
SALT = "test-salt"
NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)
REFINED = (
    "refined.events",
    "refined.sessions",
    "refined.identities",
    "refined.identity_edges",
    "refined.node_days",
    "refined.profiles",
)


def mentions(warehouse: DuckDBWarehouse, table: str, text: str) -> int:
    rows = warehouse.query(f"select * from {table}")  # test-only SQL over a fixed table name
    return sum(1 for row in rows if text in json.dumps(row, default=str, ensure_ascii=False).lower())


def erased_alice() -> DuckDBWarehouse:
    h = History()
    h.visit("05-01 10:00", "alice-v1", "/")
    h.add("raw.user", "05-01 10:01", "alice-v1", "alice-m", email="alice@example.com", phone="+821011112222")
    h.visit("05-01 11:00", "bob-v1", "/")
    warehouse = new_warehouse(h)
    settings = refinement.RefineSettings(privacy_salt=SALT)
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 1), NOW, settings)
    request = build_request("req-alice", "erase", [identifier("email", "alice@example.com")], SITE)
    [receipt] = privacy.erase(warehouse, [request], salt=SALT, now=NOW, removals=RemovalQueue(warehouse))
    assert receipt.status == "done"
    return warehouse


def test_a_late_beacon_from_an_erased_cookie_refines_to_no_one() -> None:
    warehouse = erased_alice()
    late = History()
    late.count = 100  # event ids go on after the first history's
    late.visit("05-03 09:00", "alice-v1", "/sale")
    late.add("raw.user", "05-03 09:01", "alice-v1", "alice-m", email="alice@example.com")
    late.visit("05-03 09:30", "carol-v1", "/")
    late.load(warehouse)
    settings = refinement.RefineSettings(privacy_salt=SALT)
    refinement.refine(warehouse, None, date(2026, 5, 1), date(2026, 5, 3), NOW, settings)

    assert {t: mentions(warehouse, t, "alice") for t in REFINED} == dict.fromkeys(REFINED, 0)
    assert mentions(warehouse, "refined.events", "carol-v1") == 2 and mentions(warehouse, "refined.profiles", "bob-v1")
    [anonymous] = warehouse.query(
        "select count(*) as n from refined.events where event_date = '2026-05-03' and visitor_id is null"
    )
    assert anonymous["n"] == 3, "the erased cookie's page views count, as anonymous ones"
    # with another salt the hashes do not match: the erased identifiers are refined again
    other = refinement.RefineSettings(privacy_salt="another salt")
    refinement.refine(warehouse, None, date(2026, 5, 3), date(2026, 5, 3), NOW, other)
    assert mentions(warehouse, "refined.identities", "alice") > 0


def test_a_reimport_skips_the_records_of_erased_people(tmp_path: Path) -> None:
    warehouse = erased_alice()
    path = tmp_path / "crm.csv"
    path.write_text(
        "member_id,name,email,phone,joined_at\n"
        "alice-m,Alice Kim,ALICE@example.com,,2026-01-02\n"
        "dave-m,Dave Park,dave@example.com,010-5555-6666,2026-01-03\n"
        "alice-new,Alice Kim,,010-1111-2222,2026-01-04\n"
    )
    source = read_source(path)
    job = ImportJob(
        "customers",
        SITE,
        source,
        plan_columns("customers", source.columns, {}),
        NOW,
        ZoneInfo("Asia/Seoul"),
    )
    screen = WarehouseSuppressions(warehouse, SALT)

    report = run_import(job, warehouse, lambda: NOW, screen=screen)

    assert report.suppressed == 2 and report.inserted["raw.user"] == 1
    assert "skipped: 2 customers of people erased by a privacy request" in format_summary(report)
    members = warehouse.query("select member_id from raw.user where source = 'import'")
    assert members == [{"member_id": "dave-m"}]
    assert mentions(warehouse, "raw.bad_rows", "alice") == 0


def test_each_run_sweeps_late_rows_of_erased_people_from_the_raw_tables(tmp_path: Path) -> None:
    warehouse = erased_alice()
    late = History()
    late.count = 100
    late.visit("05-10 10:00", "alice-v1", "/sale")  # arrives two hours before the run
    late.add("raw.user", "05-10 10:01", "carol-v1", "carol-m", email="alice@example.com")
    late.visit("05-10 10:30", "carol-v1", "/")
    late.add("raw.page", "05-09 08:00", "alice-v1", collected="05-10 09:30", page_path="/old")  # a queued batch
    late.load(warehouse)
    ports = privacy.PrivacyPorts(warehouse, RemovalQueue(warehouse), FolderBlobs(tmp_path), SALT, sites=(SITE,))

    run = privacy.process_requests(FakeDocumentStore(), ports, NOW)

    assert {"raw.page", "raw.land", "raw.user", "raw.conv", "raw.consent", "raw.subscription"} <= set(run.swept)
    assert "raw.bad_rows" not in run.swept, "free text cannot be hashed: left to the next erasure"
    assert mentions(warehouse, "raw.page", "alice") == 0 and mentions(warehouse, "raw.land", "alice") == 0
    assert mentions(warehouse, "raw.user", "alice@example.com") == 0, "a new member using the erased e-mail"
    assert mentions(warehouse, "raw.page", "carol-v1") == 1 and mentions(warehouse, "raw.page", "bob-v1") == 1

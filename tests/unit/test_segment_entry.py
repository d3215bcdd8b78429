"""When each member entered a segment: `audiences.segment_members.entered_at`, set by the build that
added the member and kept by the builds that confirm them, reset by a return after leaving (even on
the same day, where the day-granular history keeps one spell); and a warehouse file from before the
column gets it added, its old members left without an entry time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_spec
from shared.services import segments as service
from shared.tam.rules import parse_segment
from tests.builders import SEGMENTS_NOW as NOW
from tests.builders import planted_profiles, planted_warehouse
from tests.unit.test_segments_service import SEOUL_MOBILE_NO_BUY, history, set_profile, store


def entered(warehouse: DuckDBWarehouse, segment_id: str) -> dict[str, object]:
    rows = warehouse.query(
        "SELECT customer_id, entered_at FROM audiences.segment_members WHERE segment_id = @s", {"s": segment_id}
    )
    return {r["customer_id"]: r["entered_at"] for r in rows}


def test_a_member_keeps_the_entry_time_of_the_build_that_added_them() -> None:
    warehouse, documents = planted_warehouse(), store()
    documents.set("segments", "s", SEOUL_MOBILE_NO_BUY)
    service.build_segments(warehouse, documents, NOW)
    assert entered(warehouse, "s") == {"c03": NOW, "c09": NOW}

    segment = parse_segment("s", SEOUL_MOBILE_NO_BUY)
    later = NOW + timedelta(hours=2, minutes=7)  # the same Seoul day: a time, not a day
    set_profile(warehouse, "c01", odr_ltv=0)  # enters
    service.evaluate_segment(segment, warehouse, later)
    assert entered(warehouse, "s") == {"c01": later, "c03": NOW, "c09": NOW}

    set_profile(warehouse, "c09", odr_ltv=3)  # leaves at the third build ...
    third = later + timedelta(minutes=30)
    service.evaluate_segment(segment, warehouse, third)
    assert "c09" not in entered(warehouse, "s")
    set_profile(warehouse, "c09", odr_ltv=0)  # ... and is back at the fourth, the same day
    fourth = third + timedelta(minutes=30)
    service.evaluate_segment(segment, warehouse, fourth)
    assert entered(warehouse, "s") == {"c01": later, "c03": NOW, "c09": fourth}
    # the history counts days: one spell, never closed, for the same return
    assert [h for h in history(warehouse, "s") if h[0] == "c09"] == [("c09", "2026-03-10", None)]


def test_an_older_warehouse_file_gets_the_column_and_its_members_no_entry_time(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:  # segment_members as it was declared before entered_at
        conn.execute("CREATE SCHEMA audiences")
        conn.execute(
            "CREATE TABLE audiences.segment_members (membership_id VARCHAR PRIMARY KEY, segment_id VARCHAR NOT NULL, "
            "customer_id VARCHAR NOT NULL, site_id VARCHAR NOT NULL, computed_at TIMESTAMPTZ NOT NULL)"
        )
        conn.execute("INSERT INTO audiences.segment_members VALUES ('s/c03', 's', 'c03', 'shop', ?)", [NOW])
    warehouse = DuckDBWarehouse(str(path))
    try:
        tables = ("refined.profiles", "audiences.segment_members", "audiences.segment_member_history")
        warehouse.ensure_tables([table_spec(name) for name in tables])
        rows = planted_profiles()
        assert not warehouse.insert_rows("refined.profiles", rows, [r["customer_id"] for r in rows]).errors
        assert entered(warehouse, "s") == {"c03": None}
        # c03 is a member already (no history row: its spell opens now), c09 enters now
        service.evaluate_segment(parse_segment("s", SEOUL_MOBILE_NO_BUY), warehouse, NOW + timedelta(hours=1))
        assert entered(warehouse, "s") == {"c03": None, "c09": NOW + timedelta(hours=1)}
    finally:
        warehouse.close()

"""Incremental identity and profiles: a run resolves again only the components whose edges changed
and rebuilds only the customers its changes touched, and the result must equal a resolution and a
rebuild from scratch over the same refined tables. The oracles below empty the labels (so every
component is resolved anew) and the profiles (and forget which customer each node was counted in,
so build_profiles rebuilds everyone); the tests compare the incremental tables with theirs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.ports import Warehouse
from shared.schema import table_specs
from shared.services import refine as refinement
from tests.builders import (
    FIRST_DAY,
    LAST_DAY,
    SITE,
    History,
    customer_id,
    customers_of,
    dump,
    new_warehouse,
    planted,
    refined_tables,
)
from tests.builders import REFINE_NOW as NOW

SETTINGS = refinement.RefineSettings(period_days=4)  # short, so the period slides over the planted days


def noon(day: date) -> datetime:
    """12:00 UTC, 21:00 in Seoul: profiles as of `day`."""
    return datetime.combine(day, time(12), UTC)


def history() -> History:
    """The planted history, plus a fourth member on the family PC two days after the other three:
    the PC becomes a shared key then, and the family customer splits in a later run."""
    h = planted()
    h.add("raw.page", "05-08 10:00", "vF", "f4", page_path="/my")
    return h


def rebuilt(
    warehouse: DuckDBWarehouse, run_date: date, now: datetime, settings: refinement.RefineSettings = SETTINGS
) -> list[Any]:
    """The profiles a rebuild of everyone gives from the same refined tables (the warehouse is left
    as that rebuild leaves it, which is what the incremental run should have left)."""
    warehouse.query("delete from refined.profiles where true")
    warehouse.query("update refined.identities set profiled_customer_id = null where true")
    refinement.build_profiles(warehouse, run_date, now, settings)
    return dump(warehouse, "refined.profiles")


def assert_equals_rebuild(
    warehouse: DuckDBWarehouse, run_date: date, now: datetime, settings: refinement.RefineSettings = SETTINGS
) -> list[Any]:
    incremental = dump(warehouse, "refined.profiles")
    expected = rebuilt(warehouse, run_date, now, settings)
    assert len(incremental) == len(expected)
    for got, want in zip(incremental, expected, strict=True):
        assert dict(got) == dict(want)
    return incremental


def assert_identities_equal_fresh(warehouse: DuckDBWarehouse, settings: refinement.RefineSettings = SETTINGS) -> None:
    incremental = dump(warehouse, "refined.identities")
    # From scratch: no labels, and every stored customer_id wrong until identities.sql rewrites it.
    warehouse.query("delete from refined.identity_labels where true")
    warehouse.query("update refined.identities set customer_id = 'stale' where true")
    refinement.resolve_identities(warehouse, settings, every_node=True)
    assert dump(warehouse, "refined.identities") == incremental


def column(warehouse: Warehouse, name: str, cid: str) -> Any:
    [row] = warehouse.query(f"select {name} from refined.profiles where customer_id = @c", {"c": cid})
    return row[name]


def test_daily_runs_with_a_sliding_period_equal_a_rebuild_every_day() -> None:
    warehouse = new_warehouse(history())
    refinement.refine(warehouse, None, FIRST_DAY, date(2026, 4, 30), noon(date(2026, 4, 30)), SETTINGS)
    rebuilt_counts = []
    day = date(2026, 5, 1)
    while day <= LAST_DAY:
        report = refinement.refine(warehouse, None, day, day, noon(day), SETTINGS)
        rebuilt_counts.append(report.profiles_rebuilt)
        assert_identities_equal_fresh(warehouse)
        assert_equals_rebuild(warehouse, day, noon(day))
        day += timedelta(days=1)
    # The period (05-07..05-10) moved every day: Alice's first order (05-01) has left it.
    alice = customer_id(SITE, "member:m-alice")
    assert (column(warehouse, "odr_ltv", alice), column(warehouse, "odr", alice)) == (3, 2)
    assert column(warehouse, "rvn", alice) == 100000  # 120000 + 30000 - 50000 refunded on 05-09
    # Bob, untouched since February, only aged: one day of recency per run.
    assert column(warehouse, "recency_days", customer_id(SITE, "visitor:vB")) == (LAST_DAY - date(2026, 2, 1)).days
    # The fourth member made the family PC a shared key: f2 and f3 are their own customers now.
    for member in ("f1", "f2", "f3", "f4"):
        assert column(warehouse, "member_id", customer_id(SITE, f"member:{member}")) == member
    # 05-02 had no events and the day leaving the period then (04-28) had none: nobody was rebuilt,
    # everyone only aged. 05-01 rebuilt Alice alone; 05-05, the shared tablet's day, eight customers.
    assert rebuilt_counts[:5] == [1, 0, 1, 2, 8], rebuilt_counts


def test_a_one_day_run_rebuilds_only_the_customers_it_touched() -> None:
    warehouse = new_warehouse(history())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW, SETTINGS)
    late = History()
    late.count = 9000  # event ids apart from the planted ones
    late.visit("05-10 11:00", "vNew", "/", medium="direct")
    late.add("raw.page", "05-10 11:05", "vA2", "m-alice", page_path="/products/p9")
    late.load(warehouse)
    report = refinement.refine(warehouse, None, LAST_DAY, LAST_DAY, NOW, SETTINGS)
    # The customers active on the refined day: the new visitor and Alice, nobody else.
    active = warehouse.query(
        "select count(distinct i.customer_id) as n from refined.node_days as d "
        "join refined.identities as i using (site_id, node) where d.event_date = @d",
        {"d": LAST_DAY},
    )
    assert report.profiles_rebuilt == active[0]["n"] == 2
    assert column(warehouse, "page_views", customer_id(SITE, "visitor:vNew")) == 1
    assert_equals_rebuild(warehouse, LAST_DAY, NOW)


def test_deleting_an_edge_rebuilds_both_customers_and_drops_a_node_left_alone() -> None:
    h = history()
    # k1 and k2 both log in on vK1 (two members: under the cap, merged), and k2 also on vK2.
    for when, visitor, member in [
        ("05-09 10:00", "vK1", "k1"),
        ("05-09 11:00", "vK1", "k2"),
        ("05-09 12:00", "vK2", "k2"),
    ]:
        h.add("raw.page", when, visitor, member, page_path="/my")
    warehouse = new_warehouse(h)
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW, SETTINGS)
    k1, k2 = customer_id(SITE, "member:k1"), customer_id(SITE, "member:k2")
    assert set(customers_of(warehouse, "member:k2", "visitor:vK2").values()) == {k1}
    alice = customer_id(SITE, "member:m-alice")
    assert column(warehouse, "visitor_ids", alice) == ["vA1", "vA2"]
    # The phone node has no activity, so it leaves identities with its only edge.
    warehouse.query("delete from refined.identity_edges where node_b = 'phone:+821011112222'")
    warehouse.query("delete from refined.identity_edges where node_b = 'visitor:vA1'")
    # Both ends of this one keep another edge: only their neighbours changed, and the family splits.
    warehouse.query("delete from refined.identity_edges where node_a = 'member:k2' and node_b = 'visitor:vK1'")
    report = refinement.refine(warehouse, None, LAST_DAY, LAST_DAY, NOW, SETTINGS, every_node=True)  # a repair
    assert customers_of(warehouse, "member:k1", "visitor:vK1", "member:k2", "visitor:vK2") == {
        "member:k1": k1,
        "visitor:vK1": k1,
        "member:k2": k2,
        "visitor:vK2": k2,
    }
    assert report.profiles_rebuilt >= 2
    nodes = {r["node"] for r in warehouse.query("select node from refined.identities where site_id = @s", {"s": SITE})}
    assert "phone:+821011112222" not in nodes and {"visitor:vA1", "email:alice@example.com"} <= nodes
    assert column(warehouse, "visitor_ids", alice) == ["vA2"]
    assert column(warehouse, "visitor_ids", customer_id(SITE, "visitor:vA1")) == ["vA1"]
    assert_identities_equal_fresh(warehouse)
    assert_equals_rebuild(warehouse, LAST_DAY, NOW)


# "profile_swap_in": the queued customers' old rows are deleted and the new ones not yet inserted.
@pytest.mark.parametrize("step", ["profiles", "profile_swap_in"])
def test_a_failed_profile_build_is_redone_by_the_next_run(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    warehouse = new_warehouse(history())
    refinement.refine(warehouse, None, FIRST_DAY, date(2026, 5, 7), noon(date(2026, 5, 7)), SETTINGS)
    real_run = refinement._run

    def failing(w: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if name == step:
            raise RuntimeError("warehouse went away")
        return real_run(w, name, params)

    monkeypatch.setattr(refinement, "_run", failing)
    with pytest.raises(RuntimeError, match="went away"):
        refinement.refine(warehouse, None, date(2026, 5, 8), date(2026, 5, 8), noon(date(2026, 5, 8)), SETTINGS)
    monkeypatch.setattr(refinement, "_run", real_run)
    [queued] = warehouse.query("select count(*) as n from refined.profile_queue")
    assert queued["n"] > 0  # kept for the next run
    # The next day's run also rebuilds the customers of 05-08, which the failed run had queued.
    refinement.refine(warehouse, None, date(2026, 5, 9), date(2026, 5, 9), noon(date(2026, 5, 9)), SETTINGS)
    assert column(warehouse, "odr_ltv", customer_id(SITE, "member:m-alice")) == 3
    assert_equals_rebuild(warehouse, date(2026, 5, 9), noon(date(2026, 5, 9)))
    [queued] = warehouse.query("select count(*) as n from refined.profile_queue")
    assert queued["n"] == 0


def test_a_run_resolves_again_only_the_components_whose_edges_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = new_warehouse(history())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW, SETTINGS)
    labels = {r["node"]: r["label"] for r in warehouse.query("select node, label from refined.identity_labels")}
    late = History()
    late.count = 9000
    late.add("raw.page", "05-10 11:00", "vA3", "m-alice", page_path="/")  # Alice logs in on a third device
    late.load(warehouse)
    real_run = refinement._run
    reset: list[str] = []

    def watching(w: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = real_run(w, name, params)
        if name == "identity_seed":
            reset.extend(r["node"] for r in w.query("select node from refined.identity_labels where active"))
        return out

    monkeypatch.setattr(refinement, "_run", watching)
    refinement.refine(warehouse, None, LAST_DAY, LAST_DAY, NOW, SETTINGS)
    monkeypatch.setattr(refinement, "_run", real_run)
    alice = ["member:m-alice", "visitor:vA1", "visitor:vA2", "email:alice@example.com", "phone:+821011112222"]
    assert sorted(reset) == sorted([*alice, "visitor:vA3"])  # Alice's component and the new device only
    after = {r["node"]: r["label"] for r in warehouse.query("select node, label from refined.identity_labels")}
    assert after == labels | {"visitor:vA3": "1member:m-alice"}
    [active] = warehouse.query("select count(*) as n from refined.identity_labels where active or changed_round != 0")
    assert active["n"] == 0  # settled
    assert_identities_equal_fresh(warehouse)


@pytest.mark.parametrize(
    ("step", "round_number"), [("identity_propagate", 2), ("identities", None), ("identity_settle", None)]
)
def test_a_resolution_that_failed_half_way_is_finished_by_the_next_run(
    monkeypatch: pytest.MonkeyPatch, step: str, round_number: int | None
) -> None:
    warehouse = new_warehouse(history())
    real_run = refinement._run

    def failing(w: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if name == step and params.get("round_number") == round_number:
            raise RuntimeError("connection lost")
        return real_run(w, name, params)

    monkeypatch.setattr(refinement, "_run", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW, SETTINGS)
    monkeypatch.setattr(refinement, "_run", real_run)
    refinement.refine(warehouse, None, LAST_DAY, LAST_DAY, NOW, SETTINGS)
    assert_identities_equal_fresh(warehouse)
    assert_equals_rebuild(warehouse, LAST_DAY, NOW)


def test_a_lower_cap_splits_a_family_on_the_next_run_without_new_edges() -> None:
    warehouse = new_warehouse(planted())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW, SETTINGS)
    family = ["visitor:vF", "member:f1", "member:f2", "member:f3"]
    assert set(customers_of(warehouse, *family).values()) == {customer_id(SITE, "member:f1")}  # 3: at the cap
    # The same history under a cap of 2: no edge is new, but the guard turns the PC's edges off.
    strict = dataclasses.replace(SETTINGS, max_members_per_key=2)
    refinement.refine(warehouse, None, LAST_DAY, LAST_DAY, NOW, strict)
    assert customers_of(warehouse, *family) == {node: customer_id(SITE, node) for node in family}
    assert column(warehouse, "member_id", customer_id(SITE, "member:f2")) == "f2"
    assert_identities_equal_fresh(warehouse, strict)
    assert_equals_rebuild(warehouse, LAST_DAY, NOW, strict)


def test_a_node_whose_only_day_is_refined_away_leaves_identities_and_profiles() -> None:
    h = history()
    h.visit("05-09 15:00", "vGone", "/", medium="direct")
    warehouse = new_warehouse(h)
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW, SETTINGS)
    gone = customer_id(SITE, "visitor:vGone")
    assert customers_of(warehouse, "visitor:vGone") == {"visitor:vGone": gone}
    # Its raw events are deleted (e.g. an erasure request) and the day is refined again.
    for table in ("raw.land", "raw.page"):
        warehouse.query(f"delete from {table} where visitor_id = 'vGone'")
    report = refinement.refine(warehouse, None, date(2026, 5, 9), date(2026, 5, 9), NOW, SETTINGS)
    assert customers_of(warehouse, "visitor:vGone") == {}
    assert warehouse.query("select customer_id from refined.profiles where customer_id = @c", {"c": gone}) == []
    assert report.profiles_rebuilt >= 1
    assert_identities_equal_fresh(warehouse)
    assert_equals_rebuild(warehouse, LAST_DAY, NOW)


def test_raw_rows_delivered_twice_refine_as_once(tmp_path: Path) -> None:
    """Raw tables are append-only (insert ids are best effort, as on BigQuery): a message loaded
    again by another process repeats its rows there, and refinement still yields every row once."""
    once = new_warehouse(planted())
    refinement.refine(once, None, FIRST_DAY, LAST_DAY, NOW)
    path = tmp_path / "twice.duckdb"
    for _ in range(2):  # two loader processes: neither knows the other's ids
        loader = DuckDBWarehouse(path)
        loader.ensure_tables(list(table_specs().values()))
        planted().load(loader)
        loader.close()
    twice = DuckDBWarehouse(path)
    [raw] = twice.query("select count(*) as n, count(distinct event_id) as ids from raw.page")
    assert raw["n"] == 2 * raw["ids"] > 0
    refinement.refine(twice, None, FIRST_DAY, LAST_DAY, NOW)
    for table in refined_tables():
        assert dump(twice, table) == dump(once, table), table
    twice.close()


def test_a_corrected_order_replaces_the_copy_already_refined_on_another_day() -> None:
    """POS corrections arrive after their orders' days were refined: the one of o3 on its own day,
    the one of o2 re-dated two days later. A run over the corrections' days rewrites the day that
    held o2's copy too, queues Alice, and leaves every table as one run over everything would."""
    warehouse = new_warehouse(planted())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW)
    alice = customer_id(SITE, "member:m-alice")
    assert column(warehouse, "rvn", alice) == 150000  # 50000 - 50000 refunded + 120000 + 30000
    corrections = History()
    corrections.count = 9000  # event ids apart from the planted ones
    corrections.order("05-10 09:00", "o2", 100000, ["울 코트"], member_id="m-alice", source="import",
                      collected="05-10 10:00")  # fmt: skip
    corrections.order("05-09 12:00", "o3", 35000, ["양말"], source="import", properties={"email": "alice@example.com"},
                      collected="05-10 10:00")  # fmt: skip
    corrections.load(warehouse)
    report = refinement.refine(warehouse, None, date(2026, 5, 9), LAST_DAY, NOW)
    assert report.profiles_rebuilt >= 1
    orders = warehouse.query("select order_id, event_date, revenue from refined.events where event_name = 'order'")
    assert sorted((r["order_id"], str(r["event_date"]), r["revenue"]) for r in orders) == [
        ("o1", "2026-05-01", 50000),
        ("o2", "2026-05-10", 100000),  # not on 05-08 any more
        ("o3", "2026-05-09", 35000),
        ("o9", "2026-05-06", 40000),
    ]
    assert (column(warehouse, "rvn", alice), column(warehouse, "odr", alice)) == (135000, 3)
    everything = planted()
    everything.rows["raw.conv"] += corrections.rows["raw.conv"]
    at_once = new_warehouse(everything)
    refinement.refine(at_once, None, FIRST_DAY, LAST_DAY, NOW)
    for name in refined_tables():
        assert dump(warehouse, name) == dump(at_once, name), name

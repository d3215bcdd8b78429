"""Refinement known answers on a small hand-built history (DuckDB): dedupe, sessions, journeys,
identity with its guardrails, and every column of profiles.

The `planted` history (tests/builders.py) is also what tests/integration/test_refine_bigquery.py runs
through the BigQuery emulator; its builder (`History`) serves the other refine tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.ports import Warehouse
from shared.schema import table_specs
from shared.services import refine as refinement
from tests.builders import (
    ALICE,
    FIRST_DAY,
    LAST_DAY,
    SITE,
    at,
    customer_id,
    customers_of,
    dump,
    new_warehouse,
    planted,
    refined_tables,
)
from tests.builders import REFINE_NOW as NOW


def rows(warehouse: Warehouse, sql: str, **params: Any) -> list[dict[str, Any]]:
    return warehouse.query(sql, params)


def profile(warehouse: Warehouse, cid: str) -> dict[str, Any]:
    [found] = rows(warehouse, "select * from refined.profiles where customer_id = @c", c=cid)
    return found


@pytest.fixture(scope="module")
def refined() -> Iterator[DuckDBWarehouse]:
    """The planted history refined in one run over its whole range."""
    warehouse = new_warehouse(planted())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW)
    yield warehouse


# -- events ----------------------------------------------------------------------------------------


def test_events_are_deduplicated_and_carry_clean_ids(refined: DuckDBWarehouse) -> None:
    orders = rows(refined, "select order_id, event_date, source from refined.events where event_name = 'order'")
    assert sorted((r["order_id"], str(r["event_date"]), r["source"]) for r in orders) == [
        ("o1", "2026-05-01", "tracker"),
        ("o2", "2026-05-08", "import"),  # the POS copy, collected later, replaces the tracker's
        ("o3", "2026-05-09", "import"),
        ("o9", "2026-05-06", "tracker"),  # the copy collected last wins, across midnight
    ]
    blocked = rows(
        refined,
        "select visitor_id, member_id, email, phone, node from refined.events "
        "where event_ts between @a and @b order by event_ts",
        a=at("05-06 10:00"),
        b=at("05-06 10:10"),
    )
    assert blocked == [
        {"visitor_id": None, "member_id": "m-dora", "email": None, "phone": None, "node": "member:m-dora"},
        {"visitor_id": "vN", "member_id": None, "email": None, "phone": None, "node": "visitor:vN"},
        {"visitor_id": None, "member_id": None, "email": None, "phone": None, "node": None},
    ]
    raw_total = sum(len(v) for v in planted().rows.values())
    [total] = rows(refined, "select count(*) as n from refined.events")
    assert total["n"] == raw_total - 2  # the tracker copy of o2 and the first try of o9


# -- sessions and journeys -------------------------------------------------------------------------


def test_sessions_split_on_inactivity_and_new_inflow_only(refined: DuckDBWarehouse) -> None:
    found = rows(refined, "select * from refined.sessions where visitor_id = 'vT' order by started_at")
    summary = [
        (
            str(s["session_date"]),
            s["started_at"].strftime("%m-%d %H:%M"),
            s["ended_at"].strftime("%m-%d %H:%M"),
            s["duration_seconds"],
            s["events"],
            s["page_views"],
            s["unique_pages"],
            s["landing_page"],
            s["exit_page"],
            s["inflow_medium"],
            s["inflow_source"],
            s["inflow_campaign"],
            s["inflow_keyword"],
            s["is_bounce"],
        )
        for s in found
    ]
    assert summary == [
        ("2026-05-03", "05-03 10:00", "05-03 10:50", 3000, 10, 5, 4, "/", "/search", "search", "naver", None, "셔츠",
         False),
        ("2026-05-03", "05-03 11:21", "05-03 11:21", 0, 2, 1, 1, "/products/p3", "/products/p3", "direct", None, None,
         None, True),
        ("2026-05-03", "05-03 11:25", "05-03 11:25", 0, 2, 1, 1, "/", "/", "email", "newsletter", "may_news", None,
         True),
        ("2026-05-03", "05-03 23:50", "05-04 00:10", 1200, 4, 2, 2, "/", "/cart", "direct", None, None, None, False),
    ]  # fmt: skip
    assert {s["device_type"] for s in found} == {"mobile"} and {s["node"] for s in found} == {"visitor:vT"}
    night = rows(refined, "select * from refined.sessions where visitor_id = 'vT2' order by started_at")
    assert [(str(s["session_date"]), s["page_views"], s["inflow_campaign"], s["exit_page"]) for s in night] == [
        ("2026-05-04", 2, "night_sale", "/sale"),
        ("2026-05-05", 1, "insta_may", "/"),
    ]
    alice = rows(refined, "select member_id, node, inflow_medium from refined.sessions where visitor_id = 'vA2'")
    assert sorted(r["inflow_medium"] for r in alice) == ["paid", "social"]  # a new campaign, a new session
    assert {(r["member_id"], r["node"]) for r in alice} == {("m-alice", "member:m-alice")}


def test_journeys_are_the_ordered_moves_of_a_session(refined: DuckDBWarehouse) -> None:
    steps = rows(
        refined,
        "select j.* from refined.journeys as j join refined.sessions as s using (session_id) "
        "where s.visitor_id = 'vT' and s.started_at = @t order by j.step",
        t=at("05-03 10:00"),
    )
    assert [(s["step"], s["previous_page"], s["page_path"], s["next_page"], s["seconds_to_next"], s["medium"])
            for s in steps] == [
        (1, None, "/", "/products/p1", 600, "search"),
        (2, "/", "/products/p1", "/products/p2", 1740, "internal"),
        (3, "/products/p1", "/products/p2", "/", 360, "internal"),
        (4, "/products/p2", "/", "/search", 300, "direct"),
        (5, "/", "/search", None, None, "search"),
    ]  # fmt: skip
    assert [s["step_id"] for s in steps] == [f"{steps[0]['session_id']}:{n}" for n in range(1, 6)]


def test_day_by_day_runs_build_the_same_tables_as_one_run(refined: DuckDBWarehouse) -> None:
    daily = new_warehouse(planted())
    # Run boundaries cut Tom's sessions across midnight (05-03/04, 05-04/05) and Carol's order copies
    # (05-05/06).
    for start, end in [(FIRST_DAY, date(2026, 5, 3)), (date(2026, 5, 4), date(2026, 5, 4)),
                       (date(2026, 5, 5), date(2026, 5, 5)), (date(2026, 5, 6), LAST_DAY)]:  # fmt: skip
        refinement.refine(daily, None, start, end, NOW)
    for name in refined_tables():
        assert dump(daily, name) == dump(refined, name), name


# -- identity --------------------------------------------------------------------------------------


def test_identity_merges_devices_and_contact_keys(refined: DuckDBWarehouse) -> None:
    nodes = ["member:m-alice", "visitor:vA1", "visitor:vA2", "email:alice@example.com", "phone:+821011112222"]
    assert customers_of(refined, *nodes) == dict.fromkeys(nodes, ALICE)
    other = customers_of(refined, "member:m-alice", site="other")
    assert other == {"member:m-alice": customer_id("other", "member:m-alice")} and ALICE not in other.values()
    edges = rows(
        refined,
        "select * from refined.identity_edges where site_id = @s and @n in (node_a, node_b)",
        s=SITE,
        n=nodes[0],
    )
    assert sorted((e["node_a"], e["node_b"], e["source"], e["used"], e["first_seen"]) for e in edges) == [
        ("email:alice@example.com", "member:m-alice", "identify", True, at("05-01 10:10")),
        ("member:m-alice", "phone:+821011112222", "identify", True, at("05-01 10:10")),
        ("member:m-alice", "visitor:vA1", "identify", True, at("05-01 10:10")),
        ("member:m-alice", "visitor:vA1", "login", True, at("05-01 10:12")),
        ("member:m-alice", "visitor:vA2", "login", True, at("05-08 20:00")),
    ]
    [login] = [e for e in edges if e["node_b"] == "visitor:vA2"]
    # 20:10, not the tracker's order at 20:15: the POS copy of o2 (no visitor) replaced it
    assert (login["last_seen"], login["edge_id"]) == (at("05-08 20:10"), "shop|member:m-alice|visitor:vA2|login")


def test_a_shared_device_does_not_merge_its_members(refined: DuckDBWarehouse) -> None:
    tablet = ["visitor:vS", "member:s1", "member:s2", "member:s3", "member:s4", "visitor:vS1"]
    found = customers_of(refined, *tablet)
    assert len(set(found.values())) == 5 and found["member:s1"] == found["visitor:vS1"]
    ignored = rows(refined, "select ignored_reason from refined.identity_edges where not used")
    assert [r["ignored_reason"] for r in ignored] == ["shared_key: visitor:vS links 4 members (cap 3)"] * 4
    family = customers_of(refined, "visitor:vF", "member:f1", "member:f2", "member:f3")
    assert set(family.values()) == {customer_id(SITE, "member:f1")}  # three members: at the cap, merged
    assert profile(refined, customer_id(SITE, "member:f1"))["member_id"] == "f3"  # the latest seen


def test_blocked_values_identify_and_link_no_one(refined: DuckDBWarehouse) -> None:
    [known] = rows(
        refined,
        "select countif(id_value in unnest(@bad)) as blocked, countif(node = 'member:m-dora') as dora "
        "from refined.identities",
        bad=["undefined", "null", "0000", "000-0000-0000"],
    )
    assert known == {"blocked": 0, "dora": 1}
    dora = profile(refined, customer_id(SITE, "member:m-dora"))
    assert (dora["visitor_ids"], dora["page_views"]) == ([], 1)


def test_deleting_an_edge_and_rerunning_splits_the_customer() -> None:
    warehouse = new_warehouse(planted())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW)
    warehouse.query("delete from refined.identity_edges where node_b = 'visitor:vA1'")
    # a later day: the evidence is not re-read; edges deleted by hand need a repair run
    refinement.refine(warehouse, None, LAST_DAY, LAST_DAY, NOW, every_node=True)
    mobile = customer_id(SITE, "visitor:vA1")
    assert customers_of(warehouse, "member:m-alice", "visitor:vA1", "visitor:vA2") == {
        "member:m-alice": ALICE,
        "visitor:vA1": mobile,
        "visitor:vA2": ALICE,
    }
    alice, before_login = profile(warehouse, ALICE), profile(warehouse, mobile)
    assert (alice["visitor_ids"], alice["page_views"], alice["sessions"]) == (["vA2"], 4, 2)
    assert (before_login["visitor_ids"], before_login["page_views"], before_login["sessions"]) == (["vA1"], 2, 1)
    assert (before_login["member_id"], before_login["pn"], before_login["kw_outer"]) == (None, ["린넨 셔츠"], [
        "linen shirt"])  # fmt: skip


# -- profiles --------------------------------------------------------------------------------------


def test_every_column_of_a_profile(refined: DuckDBWarehouse) -> None:
    alice = profile(refined, ALICE)
    # the list limit, then the count of list inputs: 11 values and 2 visitor ids, then their digest
    assert alice.pop("lists_key").startswith("20:13:")
    assert alice == {
        "customer_id": ALICE,
        "site_id": SITE,
        "member_id": "m-alice",
        "visitor_ids": ["vA1", "vA2"],
        "email": "alice@example.com",
        "phone": "+821011112222",
        "birth_year": 1990,
        "sex": "F",
        "age": 36,
        # Three page views on each device: the tie goes to the most recent (desktop, 05-08).
        "device": "desktop",
        "os": "Windows",
        "br": "Chrome",
        "region": "Busan",
        "ref_media_fst": "search",
        "ref_media_lst": "social",
        "ad": ["google"],
        "cc": ["insta_may", "spring_sale"],
        "kw_inner": ["코트"],
        "kw_outer": ["linen shirt"],
        "pn_odr": ["양말", "에코백", "울 코트", "린넨 셔츠"],
        "pn": ["울 코트", "린넨 셔츠"],
        "rvn": Decimal("150000"),  # 50000 + 120000 + 30000 - 50000 refunded
        "odr": 3,
        "avg_rvn": Decimal("50000"),
        "rvn_ltv": Decimal("150000"),
        "odr_ltv": 3,
        "avg_rvn_ltv": Decimal("50000"),
        "rfm": "Hibernating",
        "cluster_id": None,
        "recency_days": 1,
        "sessions": 3,
        "page_views": 6,
        "is_member": True,
        "has_email": True,
        "has_phone": True,
        "rfm_cell": "222",
        "r_score": 2,
        "f_score": 2,
        "m_score": 2,
        "first_seen": at("05-01 10:00"),
        "last_seen": at("05-09 12:00"),
        "period_start": date(2026, 2, 10),
        "period_end": date(2026, 5, 10),
        "computed_at": NOW,
    }
    assert set(alice) | {"lists_key"} == {f.name for f in table_specs()["refined.profiles"].fields}


def test_a_profile_outside_the_period_keeps_only_lifetime_values(refined: DuckDBWarehouse) -> None:
    bob = profile(refined, customer_id(SITE, "visitor:vB"))
    assert bob.pop("lists_key") == "20:1:" + str(bob_digest())  # only the visitor id: the lists are empty
    assert {k: v for k, v in bob.items() if v not in (None, [], 0, False)} == {
        "customer_id": customer_id(SITE, "visitor:vB"),
        "site_id": SITE,
        "visitor_ids": ["vB"],
        "ref_media_fst": "direct",
        "ref_media_lst": "direct",  # every arrival was direct
        "recency_days": 98,
        "first_seen": at("02-01 09:00"),
        "last_seen": at("02-01 09:01"),
        "period_start": date(2026, 2, 10),
        "period_end": date(2026, 5, 10),
        "computed_at": NOW,
    }
    assert (bob["rvn"], bob["odr"], bob["avg_rvn"], bob["sessions"], bob["rfm"]) == (0, 0, None, 0, None)


def bob_digest() -> int:
    """The lists_key digest of one input, computed as profile_lists.sql does."""
    return int(hashlib.md5(b"visitor_ids|vB|").hexdigest()[:15], 16)


def test_rfm_scores_only_customers_who_ordered_in_the_period(refined: DuckDBWarehouse) -> None:
    scored = rows(refined, "select customer_id, rfm_cell, rfm_group, recency_days, frequency from refined.rfm")
    assert sorted((r["customer_id"], r["rfm_cell"], r["rfm_group"], r["recency_days"], r["frequency"])
                  for r in scored) == sorted([
        (ALICE, "222", "Hibernating", 1, 3),
        (customer_id(SITE, "visitor:vC"), "111", "Lost", 4, 1),  # o9's copy of 05-06 won
    ])  # fmt: skip
    [unscored] = rows(refined, "select count(*) as n from refined.profiles where rfm is null")
    [everyone] = rows(refined, "select count(*) as n from refined.profiles")
    assert unscored["n"] == everyone["n"] - 2


def test_a_rerun_keeps_cluster_ids_and_changes_nothing() -> None:
    warehouse = new_warehouse(planted())
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW)
    warehouse.query("update refined.profiles set cluster_id = 7 where customer_id = @c", {"c": ALICE})
    before = {name: dump(warehouse, name) for name in refined_tables()}
    refinement.refine(warehouse, None, FIRST_DAY, LAST_DAY, NOW)
    refinement.refine(warehouse, None, date(2026, 5, 3), date(2026, 5, 6), NOW)  # an overlapping rerun
    report = refinement.refine(warehouse, None, FIRST_DAY, FIRST_DAY, NOW)  # an old day: profiles stay current
    assert report.as_of == LAST_DAY
    assert {name: dump(warehouse, name) for name in refined_tables()} == before
    assert profile(warehouse, ALICE)["cluster_id"] == 7

"""RFM on a planted grid: 25 customers whose recency and frequency/monetary quintiles cover every
(R, FM) pair once, so each named group is checked against docs/segmentlets.md."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from shared.services import refine as refinement
from tests.builders import REFINE_NOW as NOW
from tests.builders import SITE, History, customer_id, new_warehouse

RUN_DATE = NOW.date()
# Rows: R score 1..5; columns: FM score 1..5 (the mapping table of docs/segmentlets.md).
GROUPS = [
    ["Lost", "Lost", "At risk", "At risk", "Cannot lose them"],
    ["Hibernating", "Hibernating", "At risk", "At risk", "Cannot lose them"],
    ["About to sleep", "Need attention", "Need attention", "Loyal", "Loyal"],
    ["Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Champions"],
    ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
]


def grid() -> History:
    """Customer g<i>: last order 30 - i days before the run, (i % 5) + 1 orders of 10,000 each."""
    h = History()
    for i in range(25):
        day = RUN_DATE - timedelta(days=30 - i)
        for n in range(i % 5 + 1):
            h.order(f"{day.isoformat()} 10:0{n}", f"o{i}-{n}", 10000, ["셔츠"], member_id=f"g{i:02d}")
    outside = RUN_DATE - timedelta(days=100)
    h.order(f"{outside.isoformat()} 10:00", "old", 99000, ["코트"], member_id="old")  # before the period
    h.order(f"{RUN_DATE.isoformat()} 09:00", "o0-0", -10000, ["셔츠"], member_id="refunded")  # a refund only
    h.order(f"{RUN_DATE.isoformat()} 09:00", "x1", 5000, ["양말"], member_id="g00", site="other")
    return h


def test_scores_cells_and_groups_cover_the_mapping() -> None:
    warehouse = new_warehouse(grid())
    refinement.refine(warehouse, None, RUN_DATE - timedelta(days=100), RUN_DATE, NOW)
    found = {r["customer_id"]: r for r in warehouse.query("select * from refined.rfm where site_id = 'shop'")}
    assert len(found) == 25
    for i in range(25):
        r_score, fm_score = i // 5 + 1, i % 5 + 1
        row = found[customer_id(SITE, f"member:g{i:02d}")]
        assert (row["r_score"], row["f_score"], row["m_score"]) == (r_score, fm_score, fm_score), i
        assert row["rfm_cell"] == f"{r_score}{fm_score}{fm_score}"
        assert row["rfm_group"] == GROUPS[r_score - 1][fm_score - 1], row["rfm_cell"]
        assert (row["recency_days"], row["frequency"], row["monetary"]) == (30 - i, fm_score, Decimal(10000 * fm_score))
        assert (row["period_start"], row["period_end"]) == (RUN_DATE - timedelta(days=89), RUN_DATE)
    [other] = warehouse.query("select rfm_cell, rfm_group from refined.rfm where site_id = 'other'")
    assert other == {"rfm_cell": "111", "rfm_group": "Lost"}  # scored within its own site

    profiles = {r["customer_id"]: r for r in warehouse.query("select * from refined.profiles")}
    champion = profiles[customer_id(SITE, "member:g24")]
    assert (champion["rfm"], champion["rfm_cell"], champion["r_score"]) == ("Champions", "555", 5)
    for member in ("old", "refunded"):  # no order in the period: no scores
        unscored = profiles[customer_id(SITE, f"member:{member}")]
        assert [unscored[k] for k in ("rfm", "rfm_cell", "r_score", "f_score", "m_score")] == [None] * 5
    assert profiles[customer_id(SITE, "member:old")]["odr_ltv"] == 1
    assert profiles[customer_id(SITE, "member:refunded")]["rvn"] == Decimal(-10000)


def test_period_start_follows_the_setting() -> None:
    warehouse = new_warehouse(grid())
    settings = refinement.RefineSettings(period_days=10)
    refinement.refine(warehouse, None, RUN_DATE - timedelta(days=100), RUN_DATE, NOW, settings)
    [window] = warehouse.query(
        "select min(recency_days) as low, max(recency_days) as high, count(*) as n from refined.rfm"
    )
    assert window == {"low": 0, "high": 9, "n": 5}  # g21..g24 ordered in the last ten days, and the other site
    assert {r["period_start"] for r in warehouse.query("select period_start from refined.profiles")} == {
        date(2026, 5, 1)
    }

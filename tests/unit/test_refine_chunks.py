"""Refinement is chunk-invariant: one generated raw history refined day by day, in chunks of a few
days and in one run over everything builds the same refined tables (hypothesis, DuckDB).

The histories are small but dense in what makes chunking matter: copies of an order (same order id)
days apart and collected in any order, exact duplicates of a raw row (same event_id), sessions
across midnight, refunds of the orders.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from shared.services import refine as refinement
from tests.builders import History, dump, new_warehouse, refined_tables

START = date(2026, 5, 1)
DAYS = 10
END = START + timedelta(days=DAYS - 1)
NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)  # 21:00 in Seoul: profiles as of END
VISITORS = ("v1", "v2", "v3")
MEMBERS = (None, "m1", "m2")
ORDER_IDS = ("o1", "o2", "o3")


def stamp(day: int, minute: int) -> str:
    return (datetime.combine(START, datetime.min.time(), UTC) + timedelta(days=day, minutes=minute)).isoformat()


# A minute of the day, biased to the last and first half hour: sessions and copies across midnight.
minutes = st.one_of(st.integers(0, 30), st.integers(1410, 1439), st.integers(0, 1439))
visits = st.tuples(st.sampled_from(VISITORS), st.sampled_from(MEMBERS), st.integers(0, DAYS - 1), minutes)
orders = st.tuples(
    st.sampled_from(ORDER_IDS),
    st.sampled_from(VISITORS + (None,)),  # None: an imported order known by its member only
    st.sampled_from(MEMBERS),
    st.integers(0, DAYS - 1),
    minutes,
    st.sampled_from((10000, 25000, -10000)),  # a negative revenue is a refund
    st.integers(0, 6 * 24 * 60),  # collected up to six days later: a correction sent again
    st.booleans(),  # stored twice (an exact duplicate the loader let through)
)


def history(visit_rows: list[tuple[Any, ...]], order_rows: list[tuple[Any, ...]]) -> tuple[History, list[str]]:
    """The raw rows, and the event ids of the orders stored twice."""
    h, twice = History(), []
    for visitor, member, day, minute in visit_rows:
        h.visit(stamp(day, minute), visitor, "/", member)
    for order_id, visitor, member, day, minute, revenue, delay, stored_twice in order_rows:
        if visitor is None and member is None:
            member = "m3"
        collected = stamp(day, minute + 1 + delay)
        source = "tracker" if visitor else "import"
        kw = {"visitor_id": visitor, "member_id": member, "source": source, "collected": collected}
        event_id = h.order(stamp(day, minute), order_id, revenue, ["셔츠"], **kw)
        if stored_twice:
            twice.append(event_id)
    return h, twice


def refined(h: History, twice: list[str], chunk_days: int | None) -> dict[str, Any]:
    """The refined tables after a backfill in chunks of chunk_days (None: one run over everything)."""
    warehouse = new_warehouse(h)
    # raw tables are append-only: an exact duplicate the loader let through stays
    warehouse.query("insert into raw.conv select * from raw.conv where event_id in unnest(@ids)", {"ids": twice})
    if chunk_days is None:
        refinement.refine(warehouse, None, START, END, NOW)
    else:
        refinement.backfill(warehouse, None, START, END, NOW, chunk_days=chunk_days)
    return {name: dump(warehouse, name) for name in refined_tables()}


# No shrinking: each example refines three warehouses (about 8 s), and a shrink would take minutes.
@settings(
    max_examples=8,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(visits, min_size=1, max_size=6), st.lists(orders, min_size=1, max_size=6))
# Two copies of an order three days apart (the second a correction collected later), and a session
# across midnight.
@example(
    visit_rows=[("v1", None, 2, 1430), ("v1", None, 3, 5)],
    order_rows=[("o1", "v1", None, 2, 1435, 10000, 5, False), ("o1", None, "m1", 5, 600, 25000, 60, True)],
)
def test_any_chunking_builds_the_same_tables(
    visit_rows: list[tuple[Any, ...]], order_rows: list[tuple[Any, ...]]
) -> None:
    h, twice = history(visit_rows, order_rows)
    whole = refined(h, twice, None)
    for chunk_days in (1, 3):
        chunked = refined(h, twice, chunk_days)
        for name in whole:
            assert chunked[name] == whole[name], f"{name}, chunks of {chunk_days} days"

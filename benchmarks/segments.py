"""Segment builds: 20 typical segments over the profiles, membership history and all (DuckDB).

`build_20_segments_seconds(warehouse)` is what `scripts/bench refine` calls on the profiles it
refined; `scripts/bench segments [--customers N]` runs it alone on generated profiles.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.ports import Warehouse
from shared.schema import table_spec
from shared.services.segments import as_datetime, evaluate_segment
from shared.tam.rules import RFM_GROUPS, Segment, parse_segment


def _rule(segmentlet: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"segmentlet": segmentlet, "op": op, **({"value": value} if value is not None else {})}


# What marketers build most: demographics, inflow, keywords, value bands, RFM groups, clusters.
RULES: list[tuple[str, Any]] = [
    ("behaviour", {"all": [_rule("is_member", "eq", True), _rule("recency_days", "gte", 60)]}),
    (
        "behaviour",
        {"all": [_rule("region", "eq", "Seoul"), _rule("device", "eq", "mobile"), {"not": _rule("odr_ltv", "gt", 0)}]},
    ),
    ("behaviour", _rule("rvn_ltv", "gte", 1_000_000)),
    ("rfm", _rule("rfm", "in", ["At risk", "Cannot lose them"])),
    ("behaviour", {"any": [_rule("kw_inner", "matches", "셔츠"), _rule("kw_outer", "matches", "셔츠")]}),
    ("behaviour", {"all": [_rule("sex", "eq", "F"), _rule("age", "between", [25, 34])]}),
    ("behaviour", _rule("ref_media_lst", "in", ["paid", "social"])),
    ("behaviour", _rule("cc", "contains_any", ["spring_sale", "vip_event"])),
    ("behaviour", _rule("ad", "exists")),
    ("behaviour", {"all": [_rule("odr", "gte", 2), _rule("avg_rvn", "gte", 50_000)]}),
    ("behaviour", _rule("pn", "contains", "린넨 셔츠")),
    ("behaviour", {"all": [_rule("sessions", "gte", 3), _rule("odr", "eq", 0)]}),
    ("behaviour", _rule("os", "not_in", ["iOS", "Android"])),
    ("behaviour", {"not": {"any": [_rule("has_email", "eq", True), _rule("has_phone", "eq", True)]}}),
    ("rfm", _rule("rfm", "eq", "Champions")),
    ("rfm", {"all": [_rule("rfm", "in", ["Loyal", "Potential loyalist"]), _rule("age", "lt", 40)]}),
    ("kmeans", _rule("cluster_id", "eq", 1)),
    ("kmeans", {"all": [_rule("cluster_id", "between", [2, 3]), _rule("sex", "ne", "M")]}),
    ("all_users", None),
    ("behaviour", {"all": [_rule("pn_odr", "matches", "coat"), _rule("recency_days", "lte", 30)]}),
]


def bench_segments() -> list[Segment]:
    segments = []
    for number, (template, rules) in enumerate(RULES, 1):
        doc: dict[str, Any] = {"name": f"bench {number}", "template": template, "period": {"last_days": 365}}
        if rules is not None:
            doc["rules"] = rules
        segments.append(parse_segment(f"bench-{number:02d}", doc))
    return segments


def build_20_segments_seconds(warehouse: Warehouse, run_at: datetime | None = None) -> float:
    """Wall time of building the 20 segments once (history MERGE, members MERGE, counts each).

    The run time defaults to the newest profile's last_seen, so the periods cover the data however
    long ago it was generated.
    """
    warehouse.ensure_tables([table_spec("audiences.segment_members"), table_spec("audiences.segment_member_history")])
    if run_at is None:
        rows = warehouse.query("SELECT MAX(last_seen) AS last_seen FROM refined.profiles")
        run_at = (as_datetime(rows[0]["last_seen"]) if rows else None) or datetime.now(UTC)
    segments = bench_segments()
    started = time.perf_counter()
    for segment in segments:
        evaluate_segment(segment, warehouse, run_at)
    return time.perf_counter() - started


def generated_profiles(customers: int, seed: int = 7) -> list[dict[str, Any]]:
    """Plausible profiles: enough spread that every benchmark segment selects someone."""
    rng = random.Random(seed)
    end = datetime(2026, 3, 10, tzinfo=UTC)
    words = ["셔츠", "린넨 셔츠", "청바지", "coat", "bag", "sneakers", "원피스", "니트"]
    rows = []
    for i in range(customers):
        last = end - timedelta(days=rng.randint(0, 400), minutes=rng.randint(0, 1440))
        orders = rng.choice([0, 0, 0, 1, 2, 3, 5, 8])
        revenue = orders * rng.randint(10_000, 300_000)
        rows.append(
            {
                "customer_id": f"c{i:07d}",
                "site_id": "bench-shop",
                "sex": rng.choice(["M", "F", "U", None]),
                "age": rng.choice([None, *range(18, 70)]),
                "device": rng.choice(["mobile", "desktop", "tablet"]),
                "os": rng.choice(["iOS", "Android", "Windows", "macOS"]),
                "region": rng.choice(["Seoul", "Gyeonggi", "Busan", "Incheon", None]),
                "ref_media_lst": rng.choice(["search", "paid", "social", "email", "referral"]),
                "ad": rng.sample(["google", "facebook", "naver"], rng.randint(0, 2)),
                "cc": rng.sample(["spring_sale", "vip_event", "newsletter"], rng.randint(0, 2)),
                "kw_inner": rng.sample(words, rng.randint(0, 3)),
                "kw_outer": rng.sample(words, rng.randint(0, 2)),
                "pn": rng.sample(words, rng.randint(0, 4)),
                "pn_odr": rng.sample(words, min(orders, 3)),
                "odr": orders,
                "rvn": str(revenue),
                "avg_rvn": str(revenue // orders) if orders else None,
                "odr_ltv": orders * 2,
                "rvn_ltv": str(revenue * 2),
                "rfm": rng.choice(RFM_GROUPS),
                "cluster_id": rng.randint(0, 4),
                "recency_days": (end - last).days,
                "sessions": rng.randint(1, 20),
                "is_member": rng.random() < 0.6,
                "has_email": rng.random() < 0.5,
                "has_phone": rng.random() < 0.5,
                "first_seen": (last - timedelta(days=rng.randint(0, 700))).isoformat(),
                "last_seen": last.isoformat(),
                "computed_at": end.isoformat(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=100_000, help="generated profiles (default 100000)")
    args = parser.parse_args(argv)
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([table_spec("refined.profiles")])
    rows = generated_profiles(args.customers)
    for start in range(0, len(rows), 20_000):
        chunk = rows[start : start + 20_000]
        warehouse.insert_rows("refined.profiles", chunk, [r["customer_id"] for r in chunk])
    first = build_20_segments_seconds(warehouse)
    again = build_20_segments_seconds(warehouse)
    print(f"profiles: {args.customers:,}")
    print(f"20 segments, first build: {first:.2f} s")
    print(f"20 segments, same-day re-run: {again:.2f} s")


if __name__ == "__main__":
    main()

"""Generated customer profiles with planted clusters, for discovery tests and `scripts/bench discover`.

Each planted segment is an archetype a shop would recognise (VIP buyers, mobile browsers who do
not buy, dormant one-time visitors, occasional older buyers, new app-like tablet users, search-led
bargain hunters); customers are drawn around it with realistic spread (log-normal money and
counts), so a good clustering recovers the archetypes and a poor one mixes them. Vectorised with
NumPy and returned as Arrow: a million profiles in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Archetype:
    name: str
    weight: float
    recency: float  # typical days since last visit
    orders: float  # typical orders in the period (0: none)
    order_value: float  # typical KRW per order
    sessions: float
    pages_per_session: float
    age: float
    device: tuple[str, float]  # the dominant device and its share
    region: tuple[str, float]
    medium: tuple[str, float]
    member: float  # share of members
    products: float  # typical distinct products viewed
    searches: float


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("vip", 0.10, 4, 9, 120_000, 28, 9, 46, ("desktop", 0.85), ("Seoul", 0.8), ("direct", 0.7), 0.98, 40, 6),
    Archetype("browsers", 0.30, 9, 0, 0, 9, 11, 27, ("mobile", 0.9), ("Gyeonggi", 0.7), ("social", 0.75), 0.2, 25, 3),
    Archetype("dormant", 0.30, 210, 0, 0, 1, 2, 36, ("mobile", 0.8), ("Busan", 0.7), ("paid", 0.8), 0.05, 1, 0),
    Archetype(
        "occasional", 0.2, 45, 1.5, 45e3, 4, 5, 57, ("tablet", 0.75), ("Incheon", 0.7), ("search", 0.75), 0.7, 8, 2
    ),
    Archetype("bargain", 0.1, 20, 3, 15e3, 12, 6, 33, ("mobile", 0.85), ("Daegu", 0.75), ("email", 0.8), 0.9, 15, 12),
)
OTHER_DEVICES = ("desktop", "mobile", "tablet")
OTHER_REGIONS = ("Seoul", "Gyeonggi", "Busan", "Incheon", "Daegu", "Gwangju", "Daejeon")
OTHER_MEDIUMS = ("direct", "search", "social", "email", "paid", "referral")


def _pick(rng: np.random.Generator, main: np.ndarray, share: np.ndarray, others: tuple[str, ...]) -> np.ndarray:
    """The dominant value with its share, else a uniformly drawn other value."""
    n = main.shape[0]
    alternative = np.asarray(others, dtype=object)[rng.integers(0, len(others), n)]
    return np.where(rng.random(n) < share, main, alternative)


def _lognormal(rng: np.random.Generator, typical: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(typical * rng.lognormal(0.0, sigma, typical.shape[0]))


def _list_column(rng: np.random.Generator, counts: np.ndarray, prefix: str) -> pa.ListArray:
    """A list<string> column with the given lengths, values from a small pool (zero-copy offsets)."""
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    pool = pa.array([f"{prefix}{i}" for i in range(200)], pa.string())
    values = pool.take(pa.array(rng.integers(0, 200, int(offsets[-1]))))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def synthetic_profiles(
    n: int,
    seed: int = 7,
    archetypes: tuple[Archetype, ...] = ARCHETYPES,
    site_id: str = "bench-shop",
    as_of: date = date(2026, 11, 1),
) -> tuple[pa.Table, np.ndarray]:
    """n profiles (columns of refined.profiles) and the planted archetype index of each."""
    rng = np.random.default_rng(seed)
    weights = np.asarray([a.weight for a in archetypes])
    truth = rng.choice(len(archetypes), size=n, p=weights / weights.sum())

    def field(name: str) -> np.ndarray:
        return np.asarray([getattr(a, name) for a in archetypes], dtype=np.float64)[truth]

    def pair(name: str) -> tuple[np.ndarray, np.ndarray]:
        values = [getattr(a, name) for a in archetypes]
        main = np.asarray([v[0] for v in values], dtype=object)[truth]
        share = np.asarray([v[1] for v in values])[truth]
        return main, share

    recency = np.minimum(np.round(_lognormal(rng, field("recency") + 0.5, 0.45)), 3650).astype(np.int64)
    typical_orders = field("orders")
    orders = np.where(typical_orders > 0, rng.poisson(np.maximum(typical_orders, 0.1)), 0)
    orders = np.where((typical_orders > 0) & (orders == 0), 1, orders)
    order_value = _lognormal(rng, np.maximum(field("order_value"), 1.0), 0.35)
    revenue = np.round(orders * order_value, 0)
    sessions = np.maximum(1, np.round(_lognormal(rng, field("sessions"), 0.4))).astype(np.int64)
    page_views = np.maximum(sessions, np.round(sessions * _lognormal(rng, field("pages_per_session"), 0.3)))
    ltv_factor = 1.0 + rng.gamma(2.0, 0.5, n)
    age = np.round(rng.normal(field("age"), 5.0)).clip(15, 90).astype(np.int64)
    age_known = rng.random(n) < 0.85
    members = rng.random(n) < field("member")
    sex = np.where(rng.random(n) < 0.5, "F", "M").astype(object)
    sex[~members & (rng.random(n) < 0.5)] = None
    device = _pick(rng, *pair("device"), OTHER_DEVICES)
    region = _pick(rng, *pair("region"), OTHER_REGIONS)
    medium = _pick(rng, *pair("medium"), OTHER_MEDIUMS)
    first_medium = _pick(rng, medium, np.full(n, 0.6), OTHER_MEDIUMS)
    products = np.round(_lognormal(rng, field("products") + 0.3, 0.4)).astype(np.int64)
    searches = np.where(field("searches") > 0, rng.poisson(field("searches")), 0).astype(np.int64)
    tenure = recency + np.round(_lognormal(rng, np.full(n, 200.0), 0.6)).astype(np.int64)
    end = datetime.combine(as_of, datetime.min.time(), UTC)
    last_seen = pa.array(end - recency.astype("timedelta64[D]").astype(timedelta), pa.timestamp("us", tz="UTC"))
    first_seen = pa.array(end - tenure.astype("timedelta64[D]").astype(timedelta), pa.timestamp("us", tz="UTC"))
    ids = pa.array(np.char.add("c", np.char.zfill(np.arange(n).astype(str), 8)).astype(object), pa.string())
    money = pa.decimal128(38, 9)
    table = pa.table(
        {
            "customer_id": ids,
            "site_id": pa.array([site_id] * n, pa.string()),
            "sex": pa.array(sex, pa.string()),
            "age": pa.array(np.where(age_known, age, 0), pa.int64(), mask=~age_known),
            "device": pa.array(device, pa.string()),
            "os": pa.array(np.where(device == "desktop", "Windows", "Android").astype(object), pa.string()),
            "br": pa.array(np.where(device == "desktop", "Chrome", "Samsung Internet").astype(object), pa.string()),
            "region": pa.array(region, pa.string()),
            "ref_media_fst": pa.array(first_medium, pa.string()),
            "ref_media_lst": pa.array(medium, pa.string()),
            "pn": _list_column(rng, products, "product-"),
            "kw_inner": _list_column(rng, searches, "keyword-"),
            "rvn": pa.array(revenue, pa.float64()).cast(money),
            "odr": pa.array(orders, pa.int64()),
            "avg_rvn": pa.array(np.where(orders > 0, revenue / np.maximum(orders, 1), 0.0), pa.float64()).cast(money),
            "rvn_ltv": pa.array(np.round(revenue * ltv_factor), pa.float64()).cast(money),
            "odr_ltv": pa.array(np.round(orders * ltv_factor).astype(np.int64), pa.int64()),
            "avg_rvn_ltv": pa.array(np.where(orders > 0, revenue / np.maximum(orders, 1), 0.0), pa.float64()).cast(
                money
            ),
            "recency_days": pa.array(recency, pa.int64()),
            "sessions": pa.array(sessions, pa.int64()),
            "page_views": pa.array(page_views.astype(np.int64), pa.int64()),
            "is_member": pa.array(members, pa.bool_()),
            "has_email": pa.array(members & (rng.random(n) < 0.9), pa.bool_()),
            "has_phone": pa.array(members & (rng.random(n) < 0.7), pa.bool_()),
            "first_seen": first_seen,
            "last_seen": last_seen,
            "period_start": pa.array([as_of - timedelta(days=89)] * n, pa.date32()),
            "period_end": pa.array([as_of] * n, pa.date32()),
            "computed_at": pa.array([end] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    return table, truth

"""Builders and planted data shared by several test modules, so that tests never import each other.

Refinement: a readable raw-row `History` and the `planted` one (Alice, Bob, Carol, Tom, a shared
tablet, a family PC, blocked values) with the helpers that compare refined tables. Segments: the
planted profiles of tests/data/segments/profiles.json and the operator cases with their exact
members. Events: Firestore trigger payloads and `jobs` messages as the functions receive them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent
from google.events.cloud.firestore import ArrayValue, Document, DocumentEventData, MapValue, Value

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.ports import Warehouse
from shared.schema import table_spec, table_specs

# ---------------------------------------------------------------- refinement: a hand-built history

SITE = "shop"
REFINE_NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)  # 21:00 in Seoul: profiles as of 2026-05-10
FIRST_DAY = date(2026, 2, 1)
LAST_DAY = date(2026, 5, 10)
CLIENTS: dict[str, tuple[str, str, str, str]] = {  # visitor -> device_type, os, browser, region
    "vA1": ("mobile", "iOS", "Mobile Safari", "Seoul"),
    "vA2": ("desktop", "Windows", "Chrome", "Busan"),
    "vB": ("desktop", "macOS", "Safari", "Daegu"),
    "vT": ("mobile", "Android", "Chrome Mobile", "Seoul"),
    "vS": ("tablet", "iPadOS", "Mobile Safari", "Incheon"),
}


def at(text: str) -> datetime:
    """'05-03 10:00' (2026, UTC) or a full ISO timestamp."""
    if len(text) == 11:
        text = f"2026-{text}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class History:
    """Raw rows as the collector or the importer writes them, with readable defaults."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.count = 0

    def add(
        self,
        table: str,
        when: str,
        visitor: str | None = None,
        member: str | None = None,
        site: str = SITE,
        source: str = "tracker",
        collected: str | None = None,
        event_id: str | None = None,
        **fields: Any,
    ) -> str:
        self.count += 1
        ts = at(when)
        device, os, browser, region = CLIENTS.get(visitor or "", ("desktop", "Linux", "Firefox", "Seoul"))
        row: dict[str, Any] = {
            "event_id": event_id or f"{table.split('.')[1]}-{self.count:04d}",
            "site_id": site,
            "event_date": ts.date().isoformat(),
            "event_ts": ts.isoformat(),
            "collected_at": (at(collected) if collected else ts + timedelta(seconds=1)).isoformat(),
            "visitor_id": visitor,
            "member_id": member,
            "source": source,
            "is_bot": False,
        }
        if source != "import":
            row |= {"device_type": device, "os": os, "browser": browser, "region": region}
        self.rows[table].append(row | fields)
        return str(row["event_id"])

    def visit(self, when: str, visitor: str, path: str, member: str | None = None, **arrival: Any) -> None:
        """A page view and its land event; `arrival` (medium=..., ...) makes the land an entry."""
        land: dict[str, Any] = {"is_entry": False, "medium": "internal"}
        if arrival:
            land = {"is_entry": True, "medium": arrival.pop("medium")}
            names = {"source": "source_name", "campaign": "utm_campaign", "keyword": "search_keyword"}
            land |= {names.get(k, k): v for k, v in arrival.items()}
        self.add("raw.land", when, visitor, member, page_path=path, **land)
        self.add("raw.page", when, visitor, member, page_path=path)

    def order(self, when: str, order_id: str, revenue: int, items: list[str], **kw: Any) -> str:
        conv_type = "refund" if revenue < 0 else "order"
        names = [{"product_name": name} for name in items]
        return self.add("raw.conv", when, conv_type=conv_type, order_id=order_id, revenue=revenue, items=names, **kw)

    def load(self, warehouse: Warehouse) -> None:
        batches = {t: (rows, [r["event_id"] for r in rows]) for t, rows in self.rows.items()}
        results = warehouse.insert_many(batches)
        assert all(not r.errors for r in results.values()), results


def new_warehouse(history: History | None = None) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    if history is not None:
        history.load(warehouse)
    return warehouse


def planted() -> History:
    """Alice (two devices, CRM contact keys, a POS order), Bob (long ago), Carol (an order sent
    twice across midnight), Tom (session rules), a shared tablet, a family PC, blocked values."""
    h = History()
    # Alice: mobile on 05-01, then desktop logged in on 05-08; three orders, one refund.
    h.visit("05-01 10:00", "vA1", "/", medium="search", source="naver", keyword=" Linen Shirt ")
    h.visit("05-01 10:05", "vA1", "/products/p1")
    h.add("raw.event", "05-01 10:05", "vA1", event_name="product_view", product_name="린넨 셔츠")
    h.add("raw.event", "05-01 10:06", "vA1", event_name="search", search_keyword="코트")
    h.add("raw.user", "05-01 10:10", "vA1", "m-alice", email="alice@example.com", phone="+821011112222", sex="F",
          birth_year=1990)  # fmt: skip
    h.order("05-01 10:12", "o1", 50000, ["린넨 셔츠"], visitor_id="vA1", member_id="m-alice")
    h.visit("05-01 10:20", "vA1", "/cart", member="m-alice")
    h.visit("05-08 20:00", "vA2", "/", "m-alice", medium="paid", source="google", campaign="spring_sale",
            click_id_type="gclid")  # fmt: skip
    h.visit("05-08 20:02", "vA2", "/products/p3", "m-alice")
    h.add("raw.event", "05-08 20:02", "vA2", "m-alice", event_name="product_view", product_name="울 코트")
    h.visit("05-08 20:10", "vA2", "/", "m-alice", medium="social", source="instagram", campaign="insta_may")
    h.order("05-08 20:15", "o2", 120000, ["울 코트", "에코백"], visitor_id="vA2", member_id="m-alice")
    # The same order again from the POS import, collected later: it replaces the tracker's copy.
    h.order("05-08 20:15", "o2", 120000, ["울 코트", "에코백"], member_id="m-alice", source="import",
            collected="05-09 01:00")  # fmt: skip
    h.order("05-09 09:00", "o1", -50000, ["린넨 셔츠"], member_id="m-alice", source="import")
    # A POS order known only by Alice's email: it reaches her through the CRM link.
    h.order("05-09 12:00", "o3", 30000, ["양말"], source="import", properties={"email": "alice@example.com"})

    # Bob: one visit in February, before the 90-day period.
    h.visit("02-01 09:00", "vB", "/", medium="direct")
    h.visit("02-01 09:01", "vB", "/about")

    # Carol: an order whose retry crossed midnight (collected later, other day): the later copy wins.
    h.visit("05-05 23:59", "vC", "/checkout", medium="direct")
    h.order("05-05 23:59", "o9", 40000, ["가디건"], visitor_id="vC", collected="05-06 00:00")
    h.order("05-06 00:00", "o9", 40000, ["가디건"], visitor_id="vC", collected="05-06 00:01")

    # Tom: the session rules (30 minutes, new campaign, direct does not split, midnight).
    h.visit("05-03 10:00", "vT", "/", medium="search", source="naver", keyword="셔츠")
    h.visit("05-03 10:10", "vT", "/products/p1")
    h.visit("05-03 10:39", "vT", "/products/p2")  # 29 minutes: same session
    h.visit("05-03 10:45", "vT", "/", medium="direct")  # a direct arrival never splits
    h.visit("05-03 10:50", "vT", "/search", medium="search", source="naver", keyword="셔츠")  # same inflow
    h.visit("05-03 11:21", "vT", "/products/p3")  # 31 minutes: new session
    h.visit("05-03 11:25", "vT", "/", medium="email", source="newsletter", campaign="may_news")  # new inflow
    h.visit("05-03 23:50", "vT", "/", medium="direct")  # a session across midnight
    h.visit("05-04 00:10", "vT", "/cart")
    # Across midnight, a campaign arrival continues its session; another campaign starts a new one.
    h.visit("05-04 23:55", "vT2", "/", medium="paid", source="google", campaign="night_sale")
    h.visit("05-05 00:05", "vT2", "/sale", medium="paid", source="google", campaign="night_sale")
    h.visit("05-05 00:10", "vT2", "/", medium="social", source="instagram", campaign="insta_may")

    # A shared tablet: four members log in on it; s1 also has a phone of her own.
    h.add("raw.page", "05-05 09:00", "vS", page_path="/")
    for n in range(1, 5):
        h.add("raw.page", f"05-05 1{n}:00", "vS", f"s{n}", page_path="/my")
    h.add("raw.page", "05-06 09:00", "vS1", "s1", page_path="/")
    # A family PC: three members, at the cap, are merged.
    for n in range(1, 4):
        h.add("raw.page", f"05-06 1{n}:00", "vF", f"f{n}", page_path="/my")

    # Blocked values never identify or link anyone.
    h.add("raw.page", "05-06 10:00", "undefined", "m-dora", page_path="/")
    h.add("raw.user", "05-06 10:05", "vN", "null", email="null", phone="000-0000-0000")
    h.add("raw.page", "05-06 10:10", "0000", page_path="/")

    # Another site with a member id equal to Alice's: another customer.
    h.add("raw.page", "05-07 10:00", "vA1", "m-alice", site="other", page_path="/")
    return h


def customer_id(site: str, node: str) -> str:
    rank = {"member": "1", "visitor": "2", "email": "3", "phone": "4"}[node.split(":")[0]]
    return "c_" + hashlib.md5(f"{site}|{rank}{node}".encode()).hexdigest()[:20]


ALICE = customer_id(SITE, "member:m-alice")


def customers_of(warehouse: Warehouse, *nodes: str, site: str = SITE) -> dict[str, str]:
    found = warehouse.query(
        "select node, customer_id from refined.identities where site_id = @s and node in unnest(@n)",
        {"s": site, "n": list(nodes)},
    )
    return {r["node"]: r["customer_id"] for r in found}


def refined_tables() -> list[str]:
    return sorted(name for name, spec in table_specs().items() if spec.dataset == "refined")


def dump(warehouse: Warehouse, table: str) -> list[tuple[tuple[str, str], ...]]:
    """A table's rows, comparable across runs and engines."""
    return sorted(tuple(sorted((k, repr(v)) for k, v in r.items())) for r in warehouse.query(f"select * from {table}"))


# ---------------------------------------------------------------- segments: planted profiles

SEGMENTS_DATA = Path(__file__).resolve().parent / "data" / "segments"
SEGMENTS_NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 15:00 in Seoul
TODAY = date(2026, 3, 10)
IN_SCOPE = {"c01", "c02", "c03", "c04", "c05", "c06", "c07", "c09"}
SEGMENT_TABLES = (
    "refined.profiles",
    "audiences.segment_members",
    "audiences.segment_member_history",
    "audit.config_changes",  # validate_config records each edit
)


def planted_profiles() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((SEGMENTS_DATA / "profiles.json").read_text())
    return rows


def planted_warehouse(rows: list[dict[str, Any]] | None = None) -> DuckDBWarehouse:
    """An in-memory warehouse with the segment tables and the planted profiles."""
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([table_spec(name) for name in SEGMENT_TABLES])
    rows = planted_profiles() if rows is None else rows
    result = warehouse.insert_rows("refined.profiles", rows, [r["customer_id"] for r in rows])
    assert result.inserted == len(rows) and not result.errors
    return warehouse


def segment_doc(rules: Any, template: str = "behaviour", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "t", "template": template, "period": {"last_days": 3650}, **fields}
    if rules is not None:
        doc["rules"] = rules
    return doc


def leaf(segmentlet: str, op: str, value: Any = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"segmentlet": segmentlet, "op": op}
    if value is not None:
        rule["value"] = value
    return rule


CASES: list[tuple[str, str, Any, set[str]]] = [
    # category
    ("sex", "eq", "F", {"c01", "c03", "c07", "c09"}),
    ("sex", "eq", "f", {"c01", "c03", "c07", "c09"}),  # known vocabularies forgive case
    ("sex", "ne", "F", {"c02", "c04", "c05", "c06"}),  # c05's sex is NULL: not known to be F
    ("sex", "in", ["M", "U"], {"c02", "c04", "c06"}),
    ("sex", "not_in", ["M", "U"], {"c01", "c03", "c05", "c07", "c09"}),
    ("sex", "exists", None, IN_SCOPE - {"c05"}),
    ("sex", "not_exists", None, {"c05"}),
    ("region", "eq", "Seoul", {"c01", "c03", "c06", "c07", "c09"}),
    ("device", "in", ["tablet", "desktop"], {"c02", "c04", "c07"}),
    ("ref_media_lst", "eq", "paid", {"c01", "c07"}),
    # number
    ("age", "eq", 34, {"c01"}),
    ("age", "ne", 34, IN_SCOPE - {"c01"}),  # c04's age is NULL
    ("age", "gt", 45, {"c05", "c07"}),
    ("age", "gte", 45, {"c02", "c05", "c07"}),
    ("age", "lt", 28, {"c06"}),
    ("age", "lte", 28, {"c03", "c06"}),
    ("age", "between", [28, 45], {"c01", "c02", "c03", "c09"}),
    ("age", "exists", None, IN_SCOPE - {"c04"}),
    ("age", "not_exists", None, {"c04"}),
    ("rvn_ltv", "gte", 800000, {"c04", "c07"}),
    ("avg_rvn_ltv", "between", [70000.5, 200000], {"c01", "c04", "c07"}),
    ("recency_days", "gte", 60, {"c02", "c05", "c07"}),
    # list (NULL and empty arrays behave alike)
    ("ad", "contains", "facebook", {"c01", "c03"}),
    ("ad", "not_contains", "facebook", IN_SCOPE - {"c01", "c03"}),
    ("ad", "contains_any", ["naver", "google"], {"c01", "c07"}),
    ("cc", "contains_all", ["spring_sale", "vip_event"], {"c07"}),
    ("cc", "contains_all", ["spring_sale", "spring_sale"], {"c01", "c07"}),
    ("ad", "exists", None, {"c01", "c03", "c07"}),
    ("ad", "not_exists", None, IN_SCOPE - {"c01", "c03", "c07"}),
    # text_list
    ("kw_inner", "contains", "셔츠", {"c01"}),
    ("kw_inner", "matches", "셔츠", {"c01"}),
    ("kw_inner", "matches", "shirt", {"c06"}),
    ("kw_outer", "matches", "shirts", {"c03"}),
    ("pn", "matches", "SHIRT", {"c03", "c09"}),
    ("pn", "matches", "%", {"c09"}),  # no LIKE: % and _ are plain characters
    ("pn", "matches", "_", {"c09"}),
    ("pn_odr", "contains_any", ["Coat", "셔츠"], {"c04", "c06", "c07"}),
    ("pn_odr", "not_contains", "Coat", IN_SCOPE - {"c04", "c07"}),
    ("kw_inner", "contains_all", ["셔츠", "린넨 셔츠"], {"c01"}),
    ("kw_inner", "exists", None, {"c01", "c02", "c04", "c06", "c09"}),
    ("kw_inner", "not_exists", None, {"c03", "c05", "c07"}),
    # boolean
    ("is_member", "eq", True, {"c01", "c02", "c04", "c05", "c07"}),
    ("is_member", "eq", False, {"c03", "c06", "c09"}),
    ("has_email", "exists", None, IN_SCOPE - {"c09"}),
    ("has_phone", "not_exists", None, {"c05", "c09"}),
]


# ---------------------------------------------------------------- events as the functions get them

SEGMENT_DOCUMENT = "projects/p/databases/(default)/documents/segments/s1"


def proto_value(value: Any) -> Value:
    """A Python value as the Firestore protobuf Value (what Eventarc sends)."""
    if value is None:
        return Value(null_value=0)
    if isinstance(value, bool):
        return Value(boolean_value=value)
    if isinstance(value, int):
        return Value(integer_value=value)
    if isinstance(value, float):
        return Value(double_value=value)
    if isinstance(value, str):
        return Value(string_value=value)
    if isinstance(value, datetime):
        return Value(timestamp_value=value)
    if isinstance(value, dict):
        return Value(map_value=MapValue(fields={k: proto_value(v) for k, v in value.items()}))
    if isinstance(value, list):
        return Value(array_value=ArrayValue(values=[proto_value(v) for v in value]))
    raise TypeError(type(value))


def firestore_event_headers(
    segment_id: str = "s1", content_type: str = "application/protobuf", project: str = "p"
) -> dict[str, str]:
    """The CloudEvent headers of an Eventarc Firestore `written` event in binary content mode, as
    Eventarc delivers a change to segments/{segment_id} (the body: proto_event, or JSON)."""
    return {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/(default)",
        "ce-id": "e1",
        "ce-subject": f"documents/segments/{segment_id}",
        "Content-Type": content_type,
    }


def proto_event(old: dict[str, Any] | None, new: dict[str, Any] | None, name: str = SEGMENT_DOCUMENT) -> bytes:
    """A serialized DocumentEventData for a write from `old` to `new` (None: absent)."""
    data = DocumentEventData()
    if old is not None:
        data.old_value = Document(name=name, fields={k: proto_value(v) for k, v in old.items()})
    if new is not None:
        data.value = Document(name=name, fields={k: proto_value(v) for k, v in new.items()})
    return bytes(DocumentEventData.serialize(data))


def jobs_event(body: dict[str, Any], message_id: str = "7") -> CloudEvent:
    """The CloudEvent a job function gets from its push subscription on `jobs` (attribute job=...)."""
    message = {
        "data": base64.b64encode(json.dumps(body).encode()).decode(),
        "attributes": {"job": str(body.get("job"))},
        "messageId": message_id,
    }
    attributes = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"}
    return CloudEvent(attributes, {"message": message})


# ---------------------------------------------------------------- consent: identities

SALT = "test-salt"  # the privacy salt suppressions are hashed with


def link(warehouse: Warehouse, customer: str, *nodes: str, site: str = SITE) -> None:
    """refined.identities rows resolving each node ("email:a@b.c") to the customer."""
    rows = [
        {
            "identity_id": f"{site}|{node}",
            "site_id": site,
            "node": node,
            "id_type": node.split(":", 1)[0],
            "id_value": node.split(":", 1)[1],
            "customer_id": customer,
        }
        for node in nodes
    ]
    result = warehouse.insert_rows("refined.identities", rows, [r["identity_id"] for r in rows])
    assert not result.errors, result

"""Ingestion through real parts: HTTP into functions-framework, the Pub/Sub emulator's push
subscription into the CloudEvent loader, rows into the DuckDB file. The test sites leave analytics
refused by default (CDP_SITES without analytics_default), so events that should keep their visitor
say they have consent, as the tracker's do."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests
from functions_framework import create_app

from devstack.pipeline import BEACON_TOPIC, DEAD_LETTER_TOPIC, LocalPipeline, delete_subscription
from tests.conftest import wait_for, warehouse_rows

pytestmark = pytest.mark.emulator

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


def now_ms() -> int:
    return int(time.time() * 1000)


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "ts": now_ms() - 500,
        "visitor_id": "v-int",
        "url": "https://shop.example/products/7",
        "title": "Product 7",
        "consent": {"analytics": True, "ads": True},
        **fields,
    }


def send(pipeline: LocalPipeline, body: Any, **headers: str) -> requests.Response:
    hdrs = {
        "Content-Type": "text/plain",
        "Origin": "https://shop.example",
        "User-Agent": IPHONE,
        "X-Client-Geo-Location": "KR,KR26,Busan",
        **headers,
    }
    data = body if isinstance(body, bytes) else json.dumps(body)
    return requests.post(pipeline.collect_url + "/e", data=data, headers=hdrs, timeout=10)


def test_every_entry_point_resolves_to_the_signature_its_trigger_needs() -> None:
    # An alias or a renamed export silently turns a CloudEvent function into an HTTP one.
    import main
    from tests.functions.test_entry_points import SIGNATURES as expected  # one list of every entry point

    assert set(main.__all__) == set(expected)
    for name, signature in expected.items():
        assert getattr(main, name).__name__ == name
        from functions_framework import _function_registry

        create_app(name, "main.py")
        assert _function_registry.get_func_signature_type(name, None) == signature


def test_a_batch_lands_in_every_raw_table_once(pipeline: LocalPipeline) -> None:
    events = [
        event("page", sent="x"),
        event("land", referrer="https://m.search.naver.com/search.naver?query=%EC%85%94%EC%B8%A0"),
        event("identify", member_id="m-int", props={"sex": "M", "birth_year": 1985, "email": "Kim@Example.com"}),
        event(
            "event",
            member_id="m-int",
            props={"name": "product_view", "product_id": "p7", "product_name": "셔츠", "price": 29000},
        ),
        event(
            "conv",
            member_id="m-int",
            props={
                "conv_type": "order",
                "order_id": "o-int",
                "revenue": 58000,
                "items": [{"product_id": "p7", "price": 29000, "quantity": 2}],
            },
        ),
    ]
    for e in events:
        e.pop("sent", None)
    body = {"site_id": "test-shop", "sent_at": now_ms(), "events": events}
    response = send(pipeline, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 5}
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    # The tracker's retry after a lost answer resends the same events: nothing may double.
    assert send(pipeline, body).status_code == 200

    ids = [e["event_id"] for e in events]
    sql = (
        "SELECT 'page' AS t, event_id FROM raw.page UNION ALL SELECT 'land', event_id FROM raw.land "
        "UNION ALL SELECT 'user', event_id FROM raw.user UNION ALL SELECT 'event', event_id FROM raw.event "
        "UNION ALL SELECT 'conv', event_id FROM raw.conv"
    )

    def loaded() -> list[dict[str, Any]]:
        rows = [r for r in warehouse_rows(pipeline.duckdb_path, sql) if r["event_id"] in ids]
        return rows if len(rows) >= 5 else []

    rows = wait_for(loaded)
    time.sleep(1.0)  # give the redelivered copy time to (not) land
    rows = [r for r in warehouse_rows(pipeline.duckdb_path, sql) if r["event_id"] in ids]
    assert sorted(r["t"] for r in rows) == ["conv", "event", "land", "page", "user"]

    (land,) = warehouse_rows(pipeline.duckdb_path, "SELECT * FROM raw.land WHERE event_id = @id", {"id": ids[1]})
    assert (land["medium"], land["source_name"], land["search_keyword"]) == ("search", "naver", "셔츠")
    assert (land["device_type"], land["os"], land["region"]) == ("mobile", "iOS", "Busan")
    (user,) = warehouse_rows(pipeline.duckdb_path, "SELECT * FROM raw.user WHERE event_id = @id", {"id": ids[2]})
    assert (user["member_id"], user["sex"], user["birth_year"], user["email"]) == (
        "m-int",
        "M",
        1985,
        "kim@example.com",
    )
    (conv,) = warehouse_rows(
        pipeline.duckdb_path,
        "SELECT revenue, items[OFFSET(0)].quantity AS q FROM raw.conv WHERE event_id = @id",
        {"id": ids[4]},
    )
    assert (conv["revenue"], conv["q"]) == (58000, 2)


def test_rejections_answer_4xx_and_reach_bad_rows(pipeline: LocalPipeline) -> None:
    marker = uuid.uuid4().hex
    malformed = send(pipeline, f'{{"site_id": "test-shop", "{marker}"'.encode())
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
    wrong_origin = send(pipeline, {"site_id": "test-shop", "events": [event("page")]}, Origin="https://evil.example")
    assert wrong_origin.status_code == 403 and wrong_origin.json()["error"] == "origin_not_allowed"
    partial = send(
        pipeline, {"site_id": "test-shop", "events": [event("page"), event("page", ts="soon", marker=marker)]}
    )
    assert partial.status_code == 422
    assert partial.json()["rejected"] == [
        {
            "index": 1,
            "reason": "wrong_type",
            "field": "events[1].ts",
            "detail": "events[1].ts must be milliseconds since epoch, got string",
        }
    ]

    def bad_rows() -> list[dict[str, Any]]:
        rows = warehouse_rows(
            pipeline.duckdb_path, "SELECT reason_code FROM raw.bad_rows WHERE STRPOS(payload, @m) > 0", {"m": marker}
        )
        return rows if len(rows) >= 2 else []

    assert sorted(r["reason_code"] for r in wait_for(bad_rows)) == ["malformed_json", "wrong_type"]


def test_tracker_script_and_pixel_are_served(pipeline: LocalPipeline) -> None:
    script = requests.get(pipeline.collect_url + "/tracker.js", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert "cdp" in script.text and script.headers["ETag"]
    cached = requests.get(
        pipeline.collect_url + "/tracker.js", headers={"If-None-Match": script.headers["ETag"]}, timeout=10
    )
    assert cached.status_code == 304
    marker = uuid.uuid4().hex
    pixel = requests.get(
        pipeline.collect_url + "/p.gif",
        params={
            "site_id": "test-shop",
            "url": f"https://shop.example/{marker}",
            "visitor_id": "v-pixel",
            "consent": "analytics",
        },
        timeout=10,
    )
    assert pixel.status_code == 200 and pixel.content.startswith(b"GIF89a")
    rows = wait_for(
        lambda: warehouse_rows(
            pipeline.duckdb_path, "SELECT source, visitor_id FROM raw.page WHERE page_path = @p", {"p": f"/{marker}"}
        )
    )
    assert rows == [{"source": "pixel", "visitor_id": "v-pixel"}]


def test_a_dead_lettered_message_becomes_a_bad_row(pipeline: LocalPipeline) -> None:
    """The local stack wires the dead-letter topic to load_dead_letters as Terraform does: the
    emulator moves a message there after the loader's 5 failed attempts (checked by hand: it applies
    dead-letter policies), and what arrives there is stored whole, with its attributes."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(pipeline.emulators.project, DEAD_LETTER_TOPIC)
    marker = f"dead-{uuid.uuid4()}"
    publisher.publish(topic, json.dumps({"marker": marker}).encode(), site_id="test-shop").result(timeout=30)

    def stored() -> list[dict[str, Any]]:
        return [
            r
            for r in warehouse_rows(
                pipeline.duckdb_path, "SELECT reason_code, site_id, payload FROM raw.bad_rows WHERE stage = 'load'"
            )
            if marker in (r["payload"] or "")
        ]

    [row] = wait_for(stored)
    assert (row["reason_code"], row["site_id"]) == ("dead_lettered", "test-shop")


def test_a_message_collect_did_not_sign_is_kept_as_a_bad_row_and_loads_nothing(pipeline: LocalPipeline) -> None:
    """Anyone allowed to publish to the beacons topic could write rows the loader trusts; collect
    signs its messages and the loader refuses the rest (the local stack sets CDP_BUS_KEY)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    event_id = str(uuid.uuid4())
    at = "2026-05-01T00:00:00+00:00"
    row = {"event_id": event_id, "site_id": "test-shop", "event_date": at[:10], "event_ts": at, "collected_at": at,
           "source": "tracker"}  # fmt: skip
    forged = json.dumps({"v": 2, "request_id": "forged", "rows": [{"table": "raw.page", "row": row}]}).encode()
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(pipeline.emulators.project, "beacons")
    publisher.publish(topic, forged, site_id="test-shop", sig="0" * 64).result(timeout=30)

    def refused() -> list[dict[str, Any]]:
        sql = "SELECT reason_code, payload FROM raw.bad_rows WHERE reason_code = 'unsigned_message'"
        return [r for r in warehouse_rows(pipeline.duckdb_path, sql) if event_id in r["payload"]]

    [bad] = wait_for(refused)
    assert json.loads(bad["payload"])["rows"][0]["row"]["event_id"] == event_id
    assert (
        warehouse_rows(pipeline.duckdb_path, "SELECT event_id FROM raw.page WHERE event_id = @id", {"id": event_id})
        == []
    )


def test_consent_at_the_door_decisions_reach_the_ledger_and_a_refusing_visitor_leaves_nothing_identifying(
    pipeline: LocalPipeline,
) -> None:
    """Through real collect, Pub/Sub and the loader: decisions land in raw.consent; the traffic of a
    visitor who withdrew reaches raw tables, bad rows and the bus itself without an identifier (a
    pull subscription on the beacons topic sees the message as Pub/Sub keeps it, and as a dead
    letter would)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    marker = uuid.uuid4().hex
    visitor, member, other = f"v-{marker[:8]}", f"M-{marker[8:14]}", f"v-{marker[14:22]}"
    subscriber = pubsub_v1.SubscriberClient()
    peek = f"peek-{marker[:12]}"
    path = subscriber.subscription_path(pipeline.emulators.project, peek)
    subscriber.create_subscription(name=path, topic=subscriber.topic_path(pipeline.emulators.project, BEACON_TOPIC))
    try:
        grant = event(
            "consent",
            visitor_id=other,
            consent={"analytics": True, "ads": False},
            props={
                "purposes": {"analytics": True, "marketing": True, "night_marketing": False},
                "version": "v3",
                "consent_mode": {"analytics_storage": "granted", "ad_storage": "denied"},
            },
        )
        withdrawal = event(
            "consent", visitor_id=visitor, member_id=member, consent={"analytics": False},
            props={"purposes": {"analytics": False}},
        )  # fmt: skip
        decisions = send(pipeline, {"site_id": "test-shop", "events": [grant, withdrawal]})
        assert decisions.status_code == 200 and decisions.json() == {"accepted": 2}

        refused = {"analytics": False}
        page = event("page", visitor_id=visitor, member_id=member, consent=refused,
                     url=f"https://shop.example/{marker}?gclid=CLICK-{marker}")  # fmt: skip
        custom = event("event", visitor_id=visitor, member_id=member, consent=refused,
                       props={"name": "newsletter", "contact": "jimin@example.com", "tag": marker})  # fmt: skip
        rejected = event("identify", visitor_id=visitor, member_id=member, consent=refused,
                         props={"email": "jimin@example.com", "phone": "010-9876-5432", "birth_year": 1800,
                                "tag": marker})  # fmt: skip
        traffic = send(pipeline, {"site_id": "test-shop", "events": [page, custom, rejected]})
        assert traffic.status_code == 422 and traffic.json()["accepted"] == 2

        def ledger() -> list[dict[str, Any]]:
            sql = "SELECT * FROM raw.consent WHERE subject_value IN (@v, @m, @o)"
            rows = warehouse_rows(pipeline.duckdb_path, sql, {"v": visitor, "m": member, "o": other})
            return rows if len(rows) >= 5 else []

        rows = wait_for(ledger)
        assert sorted((r["subject_type"], r["subject_value"], r["purpose"], r["granted"]) for r in rows) == sorted(
            [
                ("member", member, "analytics", False),
                ("visitor", other, "analytics", True),
                ("visitor", other, "marketing", True),
                ("visitor", other, "night_marketing", False),
                ("visitor", visitor, "analytics", False),
            ]
        )
        granted = next(r for r in rows if r["subject_value"] == other)
        assert (granted["source"], granted["wording_version"]) == ("tracker", "v3") and granted["ip_hash"]
        assert json.loads(granted["consent_mode"]) == {"analytics_storage": "granted", "ad_storage": "denied"}

        stored_page = wait_for(
            lambda: warehouse_rows(
                pipeline.duckdb_path, "SELECT * FROM raw.page WHERE event_id = @id", {"id": page["event_id"]}
            )  # fmt: skip
        )[0]
        assert (stored_page["visitor_id"], stored_page["member_id"], stored_page["ip_hash"]) == (None, None, None)
        assert stored_page["page_url"] == f"https://shop.example/{marker}?gclid=redacted"
        stored_event = wait_for(
            lambda: warehouse_rows(
                pipeline.duckdb_path, "SELECT * FROM raw.event WHERE event_id = @id", {"id": custom["event_id"]}
            )  # fmt: skip
        )[0]
        assert json.loads(stored_event["properties"]) == {"tag": marker}
        bad = wait_for(
            lambda: warehouse_rows(
                pipeline.duckdb_path,
                "SELECT payload FROM raw.bad_rows WHERE event_id = @id",
                {"id": rejected["event_id"]},
            )  # fmt: skip
        )[0]
        assert json.loads(bad["payload"])["member_id"] == "redacted"

        # The traffic's message as Pub/Sub holds it for 7 days (and a dead letter would keep it).
        def traffic_message() -> bytes | None:
            answer = subscriber.pull(subscription=path, max_messages=10, timeout=10)
            found = [m.message.data for m in answer.received_messages if marker.encode() in m.message.data]
            return next((d for d in found if page["event_id"].encode() in d), None)

        message = wait_for(traffic_message)
        for secret in (visitor, member, "jimin@example.com", "9876", f"CLICK-{marker}"):
            assert secret.encode() not in message
        assert json.loads(message)["context"]["ip_hash"] is None
    finally:
        delete_subscription(pipeline.emulators.project, peek)

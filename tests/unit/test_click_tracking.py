"""Click tracking end to end on real parts: deliver renders a template's link() as a signed click
link, collect's `GET /c` redirects with UTM parameters and publishes the click, the loader writes
it to raw.event and the delivery ledger (DuckDB), and refinement carries it into refined.events.
Refusals send nobody anywhere and publish nothing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.config import Site
from shared.messaging import clicks
from shared.messaging.clicks import ClickLinks
from shared.ports import Warehouse
from shared.privacy.removals import RemovalQueue
from shared.privacy.subjects import build_request, identifier
from shared.services import privacy
from shared.services import refine as refinement
from shared.services.collect import CollectorConfig, HttpRequest, HttpResponse, handle_request
from shared.services.deliver import deliver_batch
from shared.services.load import load_message
from shared.signing import SIGNATURE_ATTRIBUTE
from tests.builders import SALT
from tests.fakes import FakeBus
from tests.messaging_world import CAMPAIGN, NOON, SITE, Person, World

KEY = "test-click-key"
BUS_KEY = "test-bus-key"
COLLECT = "https://c.shop.example"
CLICKED_AT = NOON + timedelta(hours=2)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
PREVIEW_BOT = "facebookexternalhit/1.1 Facebot Twitterbot/1.0"  # iMessage's link preview
KAKAO_SCRAP = "Mozilla/5.0 (compatible; kakaotalk-scrap/1.0; +https://devtalk.kakao.com/t/scrap/33984)"
CONFIG = CollectorConfig(
    sites={SITE: Site(SITE)}, topic="beacons", ip_salt="salt", bus_key=BUS_KEY, click_key=KEY
)  # fmt: skip
TEMPLATE = {
    "name": "Win-back",
    "sms": {"text": "{{ given_name or '고객' }}님, 새 혜택: {{ link('https://shop.example/b?from=sms') }}"},
    "email": {
        "subject": "{{ given_name or '고객' }}님, 새 혜택이 도착했어요",
        "html": "<p><a href=\"{{ link('https://shop.example/b') }}\">보기</a></p>",
        "text": "새 혜택: {{ link('https://shop.example/b') }}",
    },
}


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Minji (SMS first) and Jun (no phone: e-mail) were sent the win-back message with click links."""
    world = World(tmp_path)
    world.documents.set("message_templates", "winback", TEMPLATE)
    world.person("minji", given="민지")
    world.person("jun", phone=None)
    world.plan()
    for data in world.batches():
        deliver_batch(world.ports(clicks=ClickLinks(COLLECT, KEY)), data, NOON)
    return world


def link_in(text: str) -> str:
    [link] = [word for word in text.split() if word.startswith(COLLECT)]
    return link


def sms_link(world: World) -> str:
    [message] = world.sms.accepted
    return link_in(message.text)


def click(
    link: str, at: datetime = CLICKED_AT, bus: FakeBus | None = None, *, method: str = "GET", agent: str = IPHONE
) -> tuple[HttpResponse, FakeBus]:
    """The link followed through collect's service, as functions/collect hands it a request."""
    bus = bus if bus is not None else FakeBus()
    parts = urlsplit(link)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    headers = {"user-agent": agent, "x-forwarded-for": "203.0.113.9", "x-client-geo-location": "KR,KR11,Seoul"}
    return handle_request(HttpRequest(method, parts.path, headers, b"", query, "10.0.0.1"), CONFIG, bus, at), bus


def load(warehouse: Warehouse, bus: FakeBus, at: datetime = CLICKED_AT) -> None:
    for _, data, attributes in bus.published:
        report = load_message(data, warehouse, now=at, attributes=attributes, bus_key=BUS_KEY)
        assert report.bad_rows == 0, report


def both_click(world: World) -> None:
    """Minji follows her SMS's link and Jun his e-mail's, and the loader stores both clicks."""
    [email] = world.email.accepted
    for link in (sms_link(world), link_in(email.text)):
        _, bus = click(link)
        load(world.warehouse, bus)


def raw_clicks(warehouse: Warehouse) -> list[dict[str, Any]]:
    return warehouse.query("select * from raw.event where source = 'click' order by collected_at")


def ledger_clicks(world: World, person: Person) -> list[dict[str, Any]]:
    rows = world.rows("audiences.delivery_events")
    return [r for r in rows if r["event"] == "clicked" and r["customer_id"] == person.customer_id]


# -- rendering ----------------------------------------------------------------------------------------


def test_each_message_carries_its_own_click_link_for_each_destination(world: World) -> None:
    minji, jun = world.people["minji"], world.people["jun"]
    [sms] = world.sms.accepted
    [email] = world.email.accepted
    assert sms.to == minji.phone and email.to == jun.email
    assert sms.text.startswith("(광고) 홍길동상회 02-1234-5678\n민지님, 새 혜택: https://c.shop.example/c?t=")
    opened = clicks.open_click(urlsplit(sms_link(world)).query.removeprefix("t="), KEY, CLICKED_AT)
    delivery = world.delivery(minji, "sms")
    assert (opened.site_id, opened.campaign_id, opened.run_id, opened.customer_id, opened.channel, opened.url) == (
        SITE, CAMPAIGN, "run-1", minji.customer_id, "sms", "https://shop.example/b?from=sms",
    )  # fmt: skip
    assert opened.delivery_id == delivery["delivery_id"]
    assert opened.expires_at == datetime(2026, 9, 2, tzinfo=UTC)  # 90 days, to the next UTC midnight
    # the e-mail's text and HTML parts carry the same link, Jun's own
    text_link = link_in(email.text)
    assert email.html is not None and f'href="{text_link}"' in email.html
    assert clicks.open_click(urlsplit(text_link).query[2:], KEY, CLICKED_AT).customer_id == jun.customer_id


def test_without_click_links_a_message_links_to_the_destination_with_utm_parameters(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.documents.set("message_templates", "winback", TEMPLATE)
    world.person("minji", given="민지")
    world.plan()
    for data in world.batches():
        deliver_batch(world.ports(), data, NOON)
    [sms] = world.sms.accepted
    assert sms.text.endswith(
        "민지님, 새 혜택: https://shop.example/b?from=sms&utm_source=sms&utm_medium=sms&utm_campaign=winback-sms"
        "&utm_content=run-1\n무료수신거부 080-123-4567"
    )


def test_a_click_link_too_long_for_the_sms_fails_that_render_and_falls_back(tmp_path: Path) -> None:
    world = World(tmp_path)
    # fits with the sample link at save (1,300 + 206 and the form), not with this deployment's longer address
    sms = {"text": "a" * 1300 + " {{ link('https://shop.example/b') }}"}
    world.documents.set("message_templates", "winback", {**TEMPLATE, "sms": sms})
    world.person("minji")
    world.plan()
    for data in world.batches():
        deliver_batch(world.ports(clicks=ClickLinks("https://c.shop.example/" + "x" * 300, KEY)), data, NOON)
    assert world.sms.accepted == []
    assert world.events(world.people["minji"]) == [("sms", "skipped", "message_too_long"), ("email", "sent", None)]


# -- collect --------------------------------------------------------------------------------------------


def test_a_click_redirects_with_utm_parameters_and_publishes_the_click(world: World) -> None:
    response, bus = click(sms_link(world))
    assert response.status == 302 and response.body == b""
    assert response.headers == {
        "Location": "https://shop.example/b?from=sms&utm_source=sms&utm_medium=sms&utm_campaign=winback-sms"
        "&utm_content=run-1",
        "Cache-Control": "no-store",
    }
    [(topic, data, attributes)] = bus.published
    assert topic == "beacons"
    assert attributes["site_id"] == SITE and attributes["rows"] == "2" and SIGNATURE_ATTRIBUTE in attributes
    [event] = bus.rows("raw.event")
    [ledger] = bus.rows(clicks.LEDGER_TABLE)
    assert event["event_id"] == ledger["event_id"]
    assert (
        ledger["event"] == "clicked"
        and ledger["delivery_id"] == world.delivery(world.people["minji"], "sms")["delivery_id"]
    )
    context = json.loads(data)["context"]
    assert (context["source"], context["region"], context["ip_hash"]) == ("click", "Seoul", None)


@pytest.mark.parametrize(
    ("alter", "status", "error"),
    [
        (lambda link: link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"), 403, "forged_link"),
        (lambda link: link.split("?")[0] + "?t=" + clicks.sign(_foreign(), "another-key"), 403, "forged_link"),
        (lambda link: link[:60], 400, "malformed_link"),
        (lambda link: link.split("?")[0], 400, "malformed_link"),
        (lambda link: link.split("?")[0] + "?t=https://evil.example/", 400, "malformed_link"),
        (lambda link: link + "&u=https://evil.example/", 302, None),  # only the token says where
    ],
)
def test_only_a_token_of_ours_redirects(world: World, alter: Any, status: int, error: str | None) -> None:
    response, bus = click(alter(sms_link(world)))
    assert response.status == status
    if error is None:
        assert response.headers["Location"].startswith("https://shop.example/b?from=sms&")
        return
    assert "Location" not in response.headers and bus.published == []
    assert json.loads(response.body)["error"] == error


def _foreign() -> clicks.Click:
    """A click link to elsewhere, as someone without our key would sign it."""
    return clicks.Click(SITE, CAMPAIGN, "run-1", "c_minji", "sms", "https://evil.example/", CLICKED_AT + timedelta(1))


def test_an_expired_link_is_gone_and_sends_nobody_anywhere(world: World) -> None:
    response, bus = click(sms_link(world), at=datetime(2026, 9, 2, tzinfo=UTC))
    assert response.status == 410 and bus.published == []
    assert json.loads(response.body) == {"error": "expired_link", "detail": "the link expired on 2026-09-02"}


def test_a_head_request_is_answered_and_records_nothing(world: World) -> None:
    response, bus = click(sms_link(world), method="HEAD")
    assert response.status == 302 and response.headers["Location"].startswith("https://shop.example/b")
    assert bus.published == []
    posted, _ = click(sms_link(world), method="POST")
    assert posted.status == 405


def test_without_a_click_key_collect_serves_no_click_links(world: World) -> None:
    request = HttpRequest("GET", "/c", {}, b"", {"t": urlsplit(sms_link(world)).query[2:]})
    bus = FakeBus()
    response = handle_request(request, CollectorConfig({}, "beacons", "salt"), bus, CLICKED_AT)
    assert response.status == 404 and bus.published == []


def test_a_click_while_the_bus_is_down_still_reaches_the_page(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="shared.services.collect")
    response, bus = click(sms_link(world), bus=FakeBus(fail=True))
    assert response.status == 302 and response.headers["Location"].startswith("https://shop.example/b")
    assert [r.message for r in caplog.records] == ["click not recorded"]


# -- the warehouse ----------------------------------------------------------------------------------------


def test_a_click_lands_in_raw_events_and_the_delivery_ledger_once(world: World) -> None:
    minji = world.people["minji"]
    _, bus = click(sms_link(world))
    load(world.warehouse, bus)
    load(world.warehouse, bus)  # Pub/Sub delivered the message again
    _, again = click(sms_link(world), at=CLICKED_AT + timedelta(seconds=20))  # a double click
    load(world.warehouse, again)
    [event] = raw_clicks(world.warehouse)
    properties = json.loads(event["properties"])
    assert properties == {
        "delivery_id": world.delivery(minji, "sms")["delivery_id"],
        "campaign_id": CAMPAIGN,
        "run_id": "run-1",
        "customer_id": minji.customer_id,
        "channel": "sms",
    }
    assert (event["event_name"], event["site_id"], event["page_url"], event["page_host"]) == (
        "message_clicked", SITE, "https://shop.example/b?from=sms", "shop.example",
    )  # fmt: skip
    assert (event["device_type"], event["os"], event["region"], event["is_bot"]) == ("mobile", "iOS", "Seoul", False)
    assert (event["visitor_id"], event["member_id"], event["ip_hash"]) == (None, None, None)
    assert event["event_ts"] == event["collected_at"] == CLICKED_AT
    [row] = ledger_clicks(world, minji)
    assert (row["event_id"], row["delivery_id"], row["channel"], row["code"]) == (
        event["event_id"], properties["delivery_id"], "sms", None,
    )  # fmt: skip
    assert world.events(minji) == [("sms", "sent", None), ("sms", "clicked", None)]


def test_clicks_minutes_apart_or_on_other_links_are_each_recorded(world: World) -> None:
    minji = world.people["minji"]
    link = sms_link(world)
    for at in (CLICKED_AT, CLICKED_AT + timedelta(minutes=3)):
        _, bus = click(link, at=at)
        load(world.warehouse, bus, at)
    assert len(raw_clicks(world.warehouse)) == 2
    assert len({r["event_id"] for r in ledger_clicks(world, minji)}) == 2


@pytest.mark.parametrize("agent", [PREVIEW_BOT, KAKAO_SCRAP], ids=["imessage-preview", "kakaotalk-scrap"])
def test_a_bots_click_is_an_event_but_not_a_click_of_the_delivery(world: World, agent: str) -> None:
    _, bus = click(sms_link(world), agent=agent)
    assert bus.published[0][2]["rows"] == "1"
    load(world.warehouse, bus)
    [event] = raw_clicks(world.warehouse)
    assert event["is_bot"] is True
    assert ledger_clicks(world, world.people["minji"]) == []


def test_the_loader_takes_no_other_ledger_row_from_a_message(world: World) -> None:
    _, bus = click(sms_link(world))
    message = json.loads(bus.published[0][1])
    message["rows"][0]["row"] = {**message["rows"][0]["row"], "event": "sent", "event_id": "forged-sent"}
    report = load_message(json.dumps(message).encode(), world.warehouse, now=CLICKED_AT)
    assert report.bad_rows == 1
    [bad] = world.warehouse.query("select reason_code, field from raw.bad_rows")
    assert (bad["reason_code"], bad["field"]) == ("invalid_row", "rows[0]")
    assert [r for r in world.rows("audiences.delivery_events") if r["event_id"] == "forged-sent"] == []


def test_clicked_customers_are_a_segment_away_and_clicks_reach_refined_events(world: World) -> None:
    minji, jun = world.people["minji"], world.people["jun"]
    both_click(world)
    _, bus = click(sms_link(world), at=CLICKED_AT + timedelta(minutes=5))  # Minji again, later
    load(world.warehouse, bus)
    clicked = world.warehouse.query(
        """
        select e.customer_id, count(distinct e.event_id) as clicks
        from audiences.delivery_events as e
        inner join audiences.deliveries as d on d.delivery_id = e.delivery_id
        where e.event = 'clicked' and d.campaign_id = @campaign and d.kind = 'advertising'
        group by e.customer_id order by e.customer_id
        """,
        {"campaign": CAMPAIGN},
    )
    assert [(r["customer_id"], r["clicks"]) for r in clicked] == [(jun.customer_id, 1), (minji.customer_id, 2)]
    day = CLICKED_AT.date()
    refinement.refine(world.warehouse, None, day, day, CLICKED_AT + timedelta(hours=1))
    refined = world.warehouse.query(
        "select event_type, event_name, source, page_path from refined.events where source = 'click' order by page_path"
    )
    assert [(r["event_type"], r["event_name"], r["source"], r["page_path"]) for r in refined] == [
        ("event", "message_clicked", "click", "/b"),
        ("event", "message_clicked", "click", "/b"),
        ("event", "message_clicked", "click", "/b"),
    ]


def test_erasing_a_person_erases_their_clicks_and_no_one_elses(world: World) -> None:
    minji, jun = world.people["minji"], world.people["jun"]
    both_click(world)
    request = build_request("req-minji", "erase", [identifier("member", minji.member)], SITE)
    [receipt] = privacy.erase(
        world.warehouse, [request], salt=SALT, now=CLICKED_AT, removals=RemovalQueue(world.warehouse)
    )
    assert receipt.tables["raw.event"].erased == 1
    [left] = raw_clicks(world.warehouse)
    assert json.loads(left["properties"])["customer_id"] == jun.customer_id
    assert ledger_clicks(world, minji) == [] and len(ledger_clicks(world, jun)) == 1

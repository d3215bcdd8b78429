"""Unsubscribing through a message's own preference link is an `unsubscribed` event of its delivery:
real deliveries planned and sent through the fakes on DuckDB, the link taken from the e-mail that
arrived, the one-click and the page's save as the preferences function calls them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.consent.ledger import Proof
from shared.consent.vocabulary import Channel
from shared.messaging import adform
from shared.messaging.ledger import EVENTS, funnel
from shared.ports import InsertResult
from shared.preferences.links import Link, open_link
from shared.schema import table_specs
from shared.services.deliver import deliver_batch
from shared.services.preferences import one_click_unsubscribe, save_choices
from tests.messaging_world import CAMPAIGN, NOON, SITE, Person, World

KEY = "test-preference-key"  # World.links()
SENT = NOON + timedelta(minutes=1)
LATER = NOON + timedelta(hours=3)
PROOF = Proof(wording_version="preferences-v1-ko", page_url="https://prefs.shop.example/", request_id="r1")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def sent(world: World) -> None:
    for data in world.batches():
        deliver_batch(world.ports(), data, SENT)


def mailed_link(world: World, person: Person) -> Link:
    """The link of the one-click URL in the List-Unsubscribe header of the e-mail the person got."""
    [mail] = [m for m in world.email.accepted if m.to == person.email]
    url = mail.headers["List-Unsubscribe"].split(",")[0].strip("<> ")
    assert url.startswith("https://prefs.shop.example/unsubscribe?t=")
    return open_link(parse_qs(urlsplit(url).query)["t"][0], KEY, LATER)


def unsubscribed(world: World) -> list[dict[str, Any]]:
    rows = [r for r in world.rows(EVENTS) if r["event"] == "unsubscribed"]
    return list({r["event_id"]: r for r in rows}.values())


def test_one_click_from_an_e_mail_is_its_deliverys_event_once(world: World) -> None:
    ann = world.person("ann", phone=None)
    world.person("bob", phone=None)
    world.plan()
    sent(world)
    link = mailed_link(world, ann)
    delivery = world.delivery(ann, "email")
    assert link.delivery_id == delivery["delivery_id"]

    one_click_unsubscribe(world.warehouse, link, LATER, "r1")
    one_click_unsubscribe(world.warehouse, link, LATER + timedelta(seconds=5), "r2")  # the button pressed again

    assert world.events(ann) == [("email", "sent", None), ("email", "unsubscribed", "one_click_unsubscribe")]
    [event] = unsubscribed(world)
    assert {k: event[k] for k in ("delivery_id", "campaign_id", "run_id", "site_id", "customer_id", "channel")} == {
        "delivery_id": delivery["delivery_id"], "campaign_id": CAMPAIGN, "run_id": "run-1", "site_id": SITE,
        "customer_id": ann.customer_id, "channel": "email",
    }  # fmt: skip
    assert funnel(world.warehouse, CAMPAIGN, "run-1").events == {("email", "sent"): 2, ("email", "unsubscribed"): 1}
    opted = {(r["address"], r["source"]) for r in world.rows("raw.subscription") if not r["subscribed"]}
    assert opted == {(ann.email, "one_click_unsubscribe")}


def test_a_save_switching_the_messages_channel_off_is_its_event(world: World) -> None:
    ann = world.person("ann", phone=None)
    world.plan()
    sent(world)
    link = mailed_link(world, ann)

    save_choices(world.warehouse, link, {"email"}, {"marketing", "night_marketing"}, LATER, PROOF)
    assert unsubscribed(world) == []  # consents changed, the address still subscribed
    save_choices(world.warehouse, link, set(), {"marketing"}, LATER + timedelta(minutes=1), PROOF)
    assert world.events(ann)[-1] == ("email", "unsubscribed", "preference_centre")
    save_choices(world.warehouse, link, {"email"}, set(), LATER + timedelta(minutes=2), PROOF)  # back on
    save_choices(world.warehouse, link, set(), set(), LATER + timedelta(minutes=3), PROOF)  # and off again
    assert [(e["channel"], e["code"]) for e in unsubscribed(world)] == [("email", "preference_centre")]


def test_only_the_deliverys_own_channel_counts(world: World) -> None:
    """An SMS's link covers the number's SMS and AlimTalk: switching AlimTalk off is not leaving SMS."""
    ann = world.person("ann")
    world.plan()
    delivery = world.delivery(ann, "sms")
    assert ann.phone is not None
    page, _ = adform.preference_urls(
        "https://prefs.shop.example/", SITE, "sms", ann.phone, KEY, NOON, delivery_id=delivery["delivery_id"]
    )
    link = open_link(parse_qs(urlsplit(page).query)["t"][0], KEY, LATER)
    assert link.channel is Channel.SMS and link.delivery_id == delivery["delivery_id"]

    save_choices(world.warehouse, link, {"sms", "alimtalk"}, {"marketing"}, LATER, PROOF)  # AlimTalk on
    save_choices(world.warehouse, link, {"sms"}, {"marketing"}, LATER + timedelta(minutes=1), PROOF)  # and off
    assert unsubscribed(world) == []
    save_choices(world.warehouse, link, set(), {"marketing"}, LATER + timedelta(minutes=2), PROOF)  # SMS off
    assert [(e["delivery_id"], e["channel"], e["code"]) for e in unsubscribed(world)] == [
        (delivery["delivery_id"], "sms", "preference_centre")
    ]


def test_a_link_of_no_real_delivery_records_the_unsubscribe_and_no_event(world: World) -> None:
    ann = world.person("ann", phone=None)
    world.plan()
    sent(world)
    real = mailed_link(world, ann)
    preview = Link(real.site_id, real.channel, real.address, real.expires_at, "0" * 32)  # sealed by a preview
    other_site = Link("elsewhere", real.channel, real.address, real.expires_at, real.delivery_id)

    one_click_unsubscribe(world.warehouse, preview, LATER, "r1")
    one_click_unsubscribe(world.warehouse, other_site, LATER, "r2")

    assert unsubscribed(world) == []
    opted = [(r["site_id"], r["address"]) for r in world.rows("raw.subscription") if not r["subscribed"]]
    assert sorted(opted) == [("elsewhere", ann.email), (SITE, ann.email)]


class EventsDown(DuckDBWarehouse):
    """The ledgers write; the delivery events table refuses (an outage of one table's stream)."""

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> InsertResult:
        if table == EVENTS and any(r["event"] == "unsubscribed" for r in rows):
            raise ConnectionError("delivery_events: 503 backend error")
        return super().insert_rows(table, rows, row_ids)


def test_an_event_that_cannot_be_written_never_fails_the_unsubscribe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warehouse = EventsDown(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    world = World(tmp_path, warehouse=warehouse)
    ann = world.person("ann", phone=None)
    world.plan()
    sent(world)
    link = mailed_link(world, ann)

    one_click_unsubscribe(world.warehouse, link, LATER, "r1")

    assert unsubscribed(world) == [] and world.events(ann) == [("email", "sent", None)]
    [opted] = [r for r in world.rows("raw.subscription") if not r["subscribed"]]
    assert (opted["address"], opted["source"]) == (ann.email, "one_click_unsubscribe")
    [logged] = [r for r in caplog.records if r.getMessage() == "unsubscribed event not recorded"]
    assert logged.__dict__["delivery_id"] == link.delivery_id and logged.exc_info is not None

"""A web push campaign end to end on DuckDB: subscriptions captured by collect and loaded into
raw.subscription, planned through the consent gate, delivered by deliver with the real WebPush
adapter to the fake push service, which decrypts each push: what the browser shows is what the
template rendered, with the advertising form. A subscription the push service says is gone (410)
is unsubscribed in the ledger with source push_gone and the person falls back to e-mail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.fakes.push_service import FakeSubscription, PushServiceFake, running_push_service
from shared.adapters.folder_blobs import FolderBlobs
from shared.adapters.web_push import WebPush, public_key_of
from shared.beacons import Limits
from shared.config import Site
from shared.messaging.adform import PUSH_OPT_OUT
from shared.messaging.campaigns import parse_policy, validate_campaign
from shared.services.collect import CollectorConfig, HttpRequest, handle_request
from shared.services.deliver import deliver_batch
from shared.services.load import load_message
from shared.services.send_messages import plan_run
from tests.builders import SALT
from tests.fakes import FakeBus, FakeSecrets
from tests.messaging_world import NOON, SITE, Person, World

LATER = NOON + timedelta(minutes=1)
ORIGIN = "https://shop.example"
PUSH_CAMPAIGN = "spring-push"
TEMPLATE = {
    "name": "Spring sale",
    "webpush": {
        "title": "{{ given_name or '고객' }}님, 봄 세일",
        "body": "오늘부터 봄 신상품 20% 할인",
        "url": "{{ link('https://shop.example/spring') }}",
        "icon": "https://shop.example/icon-192.png",
    },
    "email": {"subject": "봄 세일", "text": "{{ given_name }}님, 봄 세일: https://shop.example/spring"},
}


@pytest.fixture(scope="module")
def vapid() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def fake() -> Iterator[PushServiceFake]:
    with running_push_service() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.documents.set("message_templates", "spring", TEMPLATE)
    world.documents.set(
        "campaigns", PUSH_CAMPAIGN,
        {"name": "Spring", "segment_id": "winback", "kind": "advertising", "channels": ["webpush", "email"],
         "template_id": "spring", "enabled": True},
    )  # fmt: skip
    return world


def capture(world: World, member: str, sub: FakeSubscription, subscribed: bool = True) -> None:
    """What the tracker posts for a subscription, through collect and the loader into DuckDB."""
    config = CollectorConfig({SITE: Site(SITE, (ORIGIN,))}, "beacons", "salt", Limits(), allow_local_push=True)
    props: dict[str, Any] = {"subscribed": subscribed, "endpoint": sub.endpoint}
    if subscribed:
        props["keys"] = {"p256dh": sub.p256dh, "auth": sub.auth}
    event = {
        "event_id": str(uuid.uuid4()), "type": "push", "ts": int((NOON - timedelta(days=1)).timestamp() * 1000),
        "visitor_id": f"v-{member}", "member_id": member, "consent": {"analytics": True}, "props": props,
    }  # fmt: skip
    body = json.dumps({"site_id": SITE, "events": [event]}).encode()
    bus = FakeBus()
    request = HttpRequest("POST", "/e", {"content-type": "text/plain", "origin": ORIGIN}, body, {}, "10.0.0.1")
    answer = handle_request(request, config, bus, NOON - timedelta(days=1))
    assert answer.status == 200, answer.body
    for _, data, _ in bus.published:
        load_message(data, world.warehouse, now=NOON - timedelta(days=1))


def channel(fake: PushServiceFake, vapid: ec.EllipticCurvePrivateKey) -> WebPush:
    pem = vapid.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()  # fmt: skip
    return WebPush(
        FakeSecrets({"vapid-private-key": pem}), subject="mailto:push@shop.example", public_key=public_key_of(vapid),
        allow_local=True, ca_file=fake.ca_file, clock=lambda: LATER,
    )  # fmt: skip


def delivery(world: World, person: Person, channel: str) -> dict[str, Any]:
    rows = world.rows("audiences.deliveries")
    (row,) = [
        r
        for r in rows
        if (r["campaign_id"], r["customer_id"], r["channel"]) == (PUSH_CAMPAIGN, person.customer_id, channel)
    ]
    return row


def plan(world: World) -> None:
    world.commit()
    policy = parse_policy(world.documents.get("messaging", "policy"))
    campaign, template = validate_campaign(
        PUSH_CAMPAIGN, world.documents.get("campaigns", PUSH_CAMPAIGN),
        segment_exists=lambda _: True, template_doc=lambda t: world.documents.get("message_templates", t),
        policy=policy, available_channels={"webpush", "email"}, now=NOON,
    )  # fmt: skip
    plan_run(
        world.warehouse, world.documents, world.bus, campaign, template, policy, NOON, "run-1",
        salt=SALT, links=world.links(), outbox=FolderBlobs(world.tmp / "outbox"),
    )  # fmt: skip


def test_a_push_campaign_shows_the_rendered_notification_and_a_gone_subscription_falls_back(
    world: World, fake: PushServiceFake, vapid: ec.EllipticCurvePrivateKey
) -> None:
    ann, bo, cy = world.person("ann", given="안나"), world.person("bo"), world.person("cy")
    key = public_key_of(vapid)
    ann_browser, bo_browser, cy_browser = (fake.subscribe(application_server_key=key) for _ in range(3))
    capture(world, ann.member, ann_browser)
    capture(world, bo.member, bo_browser)
    capture(world, cy.member, cy_browser)
    capture(world, cy.member, cy_browser, subscribed=False)  # cy unsubscribed on the site
    fake.unsubscribe(bo_browser)  # bo's browser ended the subscription since (permission revoked)
    plan(world)

    for data in world.batches():
        deliver_batch(world.ports(channels={"webpush": channel(fake, vapid), "email": world.email}), data, LATER)

    # ann's browser decrypted exactly what the template rendered, with the Network Act's form
    (shown,) = fake.shown(ann_browser)
    assert shown == {
        "title": "(광고) 안나님, 봄 세일",
        "body": "오늘부터 봄 신상품 20% 할인\n홍길동상회 02-1234-5678\n" + PUSH_OPT_OUT,
        "url": "https://shop.example/spring?utm_source=webpush&utm_medium=push&utm_campaign=spring-push&utm_content=run-1",
        "icon": "https://shop.example/icon-192.png",
        "tag": delivery(world, ann, "webpush")["delivery_id"],
        "actions": [{"action": "unsubscribe", "title": "수신거부"}],
    }
    (received,) = fake.received(ann_browser)
    assert received.headers["topic"] == shown["tag"] and received.headers["urgency"] == "normal"
    assert received.ttl == 8 * 3600 + 59 * 60  # advertising at 12:01 in Seoul expires at 21:00
    assert delivery(world, ann, "webpush")["address"] == ann_browser.endpoint

    # bo: 410 from the push service -> opted_out, the endpoint unsubscribed as push_gone, e-mail instead
    assert fake.received(bo_browser) == [] and fake.shown(bo_browser) == []
    gone = [r for r in world.rows("raw.subscription") if r["address"] == bo_browser.endpoint and not r["subscribed"]]
    assert [(r["source"], r["reason"]) for r in gone] == [("push_gone", "webpush 410")]
    assert ("webpush", "opted_out", "410") in world.events(bo)
    assert sorted(m.to for m in world.email.accepted) == sorted([bo.email or "", cy.email or ""])
    # cy unsubscribed on the site: never pushed, planned on e-mail
    assert fake.received(cy_browser) == []
    assert delivery(world, cy, "webpush")["reason"] == "unsubscribed"
    assert ("webpush", "sent", "201") in world.events(ann)

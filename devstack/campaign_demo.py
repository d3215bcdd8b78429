"""The demo's campaigns stage: the example campaigns sent through the real path to local fakes.

examples/campaigns/ goes to the Firestore emulator as a marketer would write it: the seed's win-back
SMS to dormant members (advertising, falling back to e-mail) and the VIP grade notice by e-mail
(informational), under the example `messaging/policy`. The send_messages service plans each run in
the warehouse and publishes its batches to the Pub/Sub emulator's `sends` topic; a push
subscription delivers them to the `deliver` function (its own process, built by the composition
root from the same settings a deployment reads), which sends through the real smtplib to an SMTP
sink and through the real twilio client to the fake Twilio API. The fake reports `sent` and
`delivered` to the `twilio_status` function (another process), signed as Twilio signs; one
recipient then taps the tracked link in their SMS (collect's click route: a 302 to the shop with UTM
parameters, the click recorded through the loader), one answers STOP, and one marks their e-mail as
spam (a mailbox provider's complaint report forwarded to `email_feedback`). The funnel printed is
read back from the ledger, beside what the fakes received, so a message sent twice or lost would
show.

The demo can run at any hour: the example's quiet hours and send windows (the shop's own choices)
are lifted for it, and said so; the law's night rule is not (an advertising message between 21:00
and 08:00 in Seoul without night consent is held until 08:00, and shows in the funnel as held).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.fakes.feedback_loop import arf, forward
from devstack.fakes.nhn_alimtalk import FakeTemplate, NhnAlimTalkFake, running_nhn_alimtalk
from devstack.fakes.push_service import PushServiceFake, running_push_service
from devstack.fakes.smtp_sink import SmtpSink, running_smtp_sink
from devstack.fakes.twilio_api import TwilioApiFake, running_twilio_api
from devstack.pipeline import REPO, LocalPipeline, delete_subscription, push_subscription, serve_function
from devstack.processes import free_port
from devstack.storefront import ORIGIN
from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.smtp_email import delivery_id_of
from shared.adapters.web_push import public_key_of
from shared.config import Settings
from shared.messaging import files, ledger
from shared.messaging.campaigns import CAMPAIGNS, POLICY
from shared.ports import DocumentStore
from shared.services.consent import eligible_audience
from shared.services.send_job import SendJob, run_send_job
from shared.services.triggers import trigger_latency

EXAMPLES = REPO / "examples" / "campaigns"
ACCOUNT_SID = "AC" + "d" * 32
SERVICE_SID = "MG" + "d" * 32
AUTH_TOKEN = "demo-twilio-auth-token"
SENDER = "데모상점 <news@demo-shop.example>"
RUN = "demo-campaigns"
SETTLE_TIMEOUT = 180.0
QUIET_SECONDS = 2.0  # nothing new at the fakes for this long: the sends and their reports are done
NHN_APP_KEY = "demo-nhn-app-key"
NHN_SECRET_KEY = "demo-nhn-secret-key"
NHN_SENDER_KEY = "demo0sender0key0for0the0fake0kakao0channel"
NHN_SIGNATURE = "demo-nhn-webhook-signature"
FEEDBACK_TOKEN = "demo-email-feedback-token"  # email_feedback's check of the forwarder
ALIMTALK_CODE = "GRADE_NOTICE"
ALIMTALK_CONTENT = "#{고객명}님, 회원 등급이 #{등급}(으)로 유지되었습니다. 혜택은 마이페이지에서 확인하세요."
ALIMTALK_CAMPAIGN = "vip-grade-alimtalk"
PUSH_CAMPAIGN = "vip-push-notice"
PUSH_SUBSCRIBERS = 3  # VIP members whose browsers subscribe to web push before the campaign
VAPID_SUBJECT = "mailto:push@demo-shop.example"
ORDER_CAMPAIGN = "order-confirmation"  # triggered by an order beacon (issue 18's trigger latency)
BROWSER = "Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile"
TRIGGER_TARGET = 300.0  # seconds from the beacon to its planned delivery row, locally


@dataclass
class Outcome:
    campaign_id: str
    name: str
    run_id: str
    funnel: ledger.Funnel


@dataclass
class Stage:
    lines: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    ok: bool = True


def configure(documents: DocumentStore) -> list[str]:
    """The examples into Firestore (policy, templates, then campaigns), quiet hours and send windows
    lifted (module docstring); the campaign ids."""
    campaign_ids = []
    for path in files.expand([EXAMPLES]):
        found = files.read(path)
        doc = dict(found.doc)
        doc.pop("id", None)
        if found.collection == POLICY[0]:
            doc.pop("quiet_hours", None)
        elif found.collection == CAMPAIGNS:
            doc.pop("send_window", None)
            doc.pop("schedule", None)  # run here once, not every Tuesday
            doc["enabled"], doc["dry_run"] = True, False
            campaign_ids.append(found.doc_id)
        documents.set(found.collection, found.doc_id, doc)
    configure_order(documents)  # triggered: the tick plans it, not a run by name
    return [*campaign_ids, configure_alimtalk(documents), configure_push(documents)]


def configure_order(documents: DocumentStore) -> None:
    """An order confirmation by e-mail, triggered by each order beacon (informational, no segment)."""
    name = "{{ given_name or '고객' }}"
    template = {
        "name": "주문 접수 안내",
        "email": {
            "subject": f"{name}님, 주문이 접수되었습니다",
            "html": f"<p>{name}님, 주문이 접수되었습니다. 배송이 시작되면 다시 알려 드릴게요.</p>",
            "text": f"{name}님, 주문이 접수되었습니다. 배송이 시작되면 다시 알려 드릴게요.",
        },
    }
    documents.set("message_templates", ORDER_CAMPAIGN, template)
    campaign = {
        "name": "주문 접수 안내 (이메일, 주문 즉시)",
        "kind": "informational",
        "channels": ["email"],
        "template_id": ORDER_CAMPAIGN,
        "trigger": {"when": "event", "event_type": "conv", "event_name": "order", "expire_minutes": 60},
        "enabled": True,
    }
    documents.set(CAMPAIGNS, ORDER_CAMPAIGN, campaign)


def configure_alimtalk(documents: DocumentStore) -> str:
    """An informational AlimTalk campaign with its SMS fallback: the approved template as the
    registry mirrors it, a message template with an `alimtalk` and an `sms` part, the campaign."""
    documents.set(
        "alimtalk_templates", ALIMTALK_CODE, {"status": "APR", "name": "등급 안내", "content": ALIMTALK_CONTENT}
    )
    text = "{{ given_name or '고객' }}님, 회원 등급이 VIP로 유지되었습니다. 혜택은 마이페이지에서 확인하세요."
    template = {
        "name": "VIP 등급 안내 (알림톡, 문자)",
        "alimtalk": {
            "template_code": ALIMTALK_CODE,
            "parameters": {"고객명": "{{ given_name or '고객' }}", "등급": "VIP"},
        },
        "sms": {"text": text},
    }
    documents.set("message_templates", ALIMTALK_CAMPAIGN, template)
    campaign = {
        "name": "VIP 등급 안내 (알림톡, 안 되면 문자)",
        "segment_id": "vip-lifetime-revenue",
        "kind": "informational",
        "channels": ["alimtalk", "sms"],
        "template_id": ALIMTALK_CAMPAIGN,
        "enabled": True,
    }
    documents.set(CAMPAIGNS, ALIMTALK_CAMPAIGN, campaign)
    return ALIMTALK_CAMPAIGN


@dataclass(frozen=True)
class Fakes:
    smtp: SmtpSink
    twilio: TwilioApiFake
    kakao: NhnAlimTalkFake
    push: PushServiceFake
    vapid_public_key: str
    feedback_url: str = ""  # email_feedback, where the relay forwards complaint reports

    def activity(self) -> tuple[int, ...]:
        """What the fakes have seen so far: unchanged for a while means everything settled."""
        return (
            len(self.smtp.messages),
            len(self.twilio.messages),
            len(self.twilio.webhooks),
            len(self.kakao.messages),
            len(self.kakao.webhooks),
            len(self.push.received()),
        )


def configure_push(documents: DocumentStore) -> str:
    """An informational web push campaign to the VIP segment, e-mail for those without a browser
    subscription."""
    template = {
        "name": "VIP 등급 안내 (웹 푸시, 이메일)",
        "webpush": {
            "title": "{{ given_name or '고객' }}님, VIP 등급이 유지되었습니다",
            "body": "마이페이지에서 VIP 혜택을 확인하세요.",
            "url": "{{ link('https://demo-shop.example/mypage') }}",
        },
        "email": {
            "subject": "{{ given_name or '고객' }}님, VIP 등급이 유지되었습니다",
            "html": "<p>{{ given_name or '고객' }}님, VIP 등급이 유지되었습니다.</p>",
            "text": "{{ given_name or '고객' }}님, VIP 등급이 유지되었습니다.",
        },
    }
    documents.set("message_templates", PUSH_CAMPAIGN, template)
    campaign = {
        "name": "VIP 등급 안내 (웹 푸시, 안 되면 이메일)",
        "segment_id": "vip-lifetime-revenue",
        "kind": "informational",
        "channels": ["webpush", "email"],
        "template_id": PUSH_CAMPAIGN,
        "enabled": True,
    }
    documents.set(CAMPAIGNS, PUSH_CAMPAIGN, campaign)
    return PUSH_CAMPAIGN


def channel_env(pipeline: LocalPipeline, out: Path, fakes: Fakes, status_url: str) -> dict[str, str]:
    """The settings a deployment's `messaging` variable and secrets give, pointed at the fakes."""
    return {
        **pipeline.env,
        "CDP_EMAIL_FROM": SENDER,
        "CDP_SMTP_HOST": fakes.smtp.hostname,
        "CDP_SMTP_PORT": str(fakes.smtp.port),
        "CDP_SMTP_SECURITY": "none",
        "CDP_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "CDP_TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "CDP_TWILIO_API_URL": fakes.twilio.url,
        "CDP_TWILIO_STATUS_URL": status_url,
        "CDP_TWILIO_AUTH_TOKEN": AUTH_TOKEN,  # the webhook's check
        "CDP_SECRET_TWILIO_AUTH_TOKEN": AUTH_TOKEN,  # the sender's, through the local SecretStore
        "CDP_NHN_ALIMTALK_APP_KEY": NHN_APP_KEY,
        "CDP_NHN_ALIMTALK_SENDER_KEY": NHN_SENDER_KEY,
        "CDP_NHN_ALIMTALK_API_URL": fakes.kakao.url,
        "CDP_SECRET_ALIMTALK_API_KEY": NHN_SECRET_KEY,
        "CDP_NHN_WEBHOOK_SIGNATURE": NHN_SIGNATURE,  # nhn_status's check
        "CDP_EMAIL_FEEDBACK_TOKEN": FEEDBACK_TOKEN,  # email_feedback's check
        "CDP_VAPID_PUBLIC_KEY": fakes.vapid_public_key,
        "CDP_VAPID_SUBJECT": VAPID_SUBJECT,
        "CDP_SECRET_VAPID_PRIVATE_KEY": (out / "vapid.pem").read_text(encoding="ascii"),
        "CDP_WEBPUSH_ALLOW_LOCAL": "true",  # the fake push service listens on 127.0.0.1
        "CDP_WEBPUSH_CA_FILE": fakes.push.ca_file,
        "CDP_PUBLISH_OUTBOX_DIR": str(out / "outbox"),
        "CDP_CLICK_URL": pipeline.collect_url,  # link() becomes collect's signed click route
    }


@contextmanager
def _fakes(pipeline: LocalPipeline, out: Path) -> Iterator[tuple[dict[str, str], Fakes]]:
    """The SMTP sink, the fake Twilio and NHN APIs, twilio_status, nhn_status, email_feedback and
    deliver, and the sends subscription."""
    status_port, nhn_port, feedback_port = free_port(), free_port(), free_port()
    status_url, nhn_url = f"http://127.0.0.1:{status_port}/", f"http://127.0.0.1:{nhn_port}/"
    with ExitStack() as stack:
        smtp = stack.enter_context(running_smtp_sink(maildir=out / "mail"))
        twilio = stack.enter_context(
            running_twilio_api(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, auto_deliver=True, inbound_url=status_url)
        )
        template = FakeTemplate(ALIMTALK_CODE, "TSC03", ALIMTALK_CONTENT)
        kakao = stack.enter_context(
            running_nhn_alimtalk(
                NHN_APP_KEY, NHN_SECRET_KEY, NHN_SENDER_KEY, [template],
                webhook_url=nhn_url, signature=NHN_SIGNATURE, auto_deliver=True,
            )
        )  # fmt: skip
        push = stack.enter_context(running_push_service(ca_file=str(out / "push-ca.pem")))
        fakes = Fakes(smtp, twilio, kakao, push, _vapid_keys(out), f"http://127.0.0.1:{feedback_port}/")
        env = channel_env(pipeline, out, fakes, status_url)
        for target, port in (
            ("twilio_status", status_port),
            ("nhn_status", nhn_port),
            ("email_feedback", feedback_port),
        ):
            stack.callback(serve_function(target, out / "logs", env, port=port).stop)
        deliver = serve_function("deliver", out / "logs", env)
        stack.callback(deliver.stop)
        push_subscription(pipeline.emulators.project, ledger.TOPIC, "sends-deliver", deliver.url + "/")
        stack.callback(delete_subscription, pipeline.emulators.project, "sends-deliver")
        yield env, fakes


def run(pipeline: LocalPipeline, documents: DocumentStore, out: Path, now: datetime, site_id: str, salt: str) -> Stage:
    """Plan and send both example campaigns; the stage's report lines and whether everything agrees."""
    stage = Stage()
    campaign_ids = configure(documents)
    with _fakes(pipeline, out) as (env, fakes):
        twilio = fakes.twilio
        settings = Settings.from_env(env)
        warehouse = DuckDBWarehouse(pipeline.duckdb_path)
        try:
            subscribed = _subscribe(pipeline, warehouse, site_id, fakes)
            not_on_kakao = _not_on_kakao(warehouse, site_id, salt, now, fakes.kakao)
            ports = bootstrap.build_send_ports(settings, warehouse, documents, bootstrap.build_bus(settings))
            started = datetime.now(UTC)  # after the subscriptions above: a run sees what exists when it runs
            report = run_send_job(ports, SendJob(started, tuple(campaign_ids)), RUN, started)
        finally:
            warehouse.close()  # deliver and the webhooks take the file in turn now
        planned = {c: r.run_id for c, r in report.runs.items() if r.plan is not None}
        for campaign_id, result in sorted(report.runs.items()):
            if result.plan is None:
                stage.ok = False
                stage.lines.append(f"  {campaign_id}: STOPPED: {result.error}")
        expected = any(r.plan.batches for r in report.runs.values() if r.plan is not None)
        settled = _settle(fakes, expected)
        click = _click(pipeline, twilio)
        stop_number = _reply_stop(twilio)
        complaint = _complain(fakes)
        order = _order(pipeline, documents, settings, site_id, salt)
        if order.run_id is not None:
            planned[ORDER_CAMPAIGN] = order.run_id
            settled &= _settle(fakes, expected=True)
        warehouse = DuckDBWarehouse(pipeline.duckdb_path)
        try:
            deadline = time.monotonic() + 20  # another process's last rows may still be on their way to the file
            while True:
                stage.outcomes = [
                    Outcome(c, str((documents.get(CAMPAIGNS, c) or {}).get("name", c)), run_id,
                            ledger.funnel(warehouse, c, run_id))
                    for c, run_id in sorted(planned.items())
                ]  # fmt: skip
                if _sent_and_received(stage.outcomes, fakes)[2] or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            stage.lines += _report(stage.outcomes)
            stage.ok &= settled and _agree(stage, fakes)
            if not_on_kakao is not None:
                stage.ok &= _fell_back(stage, warehouse, not_on_kakao)
            stage.ok &= _pushed(stage, fakes, subscribed)
            stage.ok &= _triggered(stage, warehouse, order)
            if click is not None:
                stage.ok &= _clicked(stage, warehouse, click)
            if stop_number is not None:
                stage.ok &= _stopped(stage, warehouse, site_id, stop_number, salt)
            if complaint is not None:
                stage.ok &= _complained(stage, warehouse, site_id, complaint, salt)
        finally:
            warehouse.close()
    return stage


@dataclass(frozen=True)
class Order:
    event_id: str | None = None  # the order beacon's
    run_id: str | None = None  # the triggered run the tick planned for it
    problem: str | None = None
    skipped: str | None = None  # nobody to order: nothing to measure


def _order(pipeline: LocalPipeline, documents: DocumentStore, settings: Settings, site_id: str, salt: str) -> Order:
    """A VIP member orders on the site (a conv beacon through collect); once it is loaded, the
    five-minute tick plans the triggered order confirmation (trigger latency: docs/campaigns.md)."""
    warehouse = DuckDBWarehouse(pipeline.duckdb_path)
    try:
        answers = eligible_audience(
            warehouse, site_id, None, "email", datetime.now(UTC), salt, segment_id="vip-lifetime-revenue"
        )
        reached = [a.customer_id for a in answers if a.eligible]
        rows = warehouse.query(
            "SELECT member_id FROM refined.profiles WHERE site_id = @site AND member_id IS NOT NULL "
            "AND customer_id IN UNNEST(SPLIT(@ids, ',')) ORDER BY member_id LIMIT 1",
            {"site": site_id, "ids": ",".join(reached)},
        )
        if not rows:
            return Order(skipped="no VIP member with an e-mail the gate reaches (a small demo)")
        event_id = str(uuid.uuid4())
        props = {"conv_type": "order", "order_id": f"demo-{event_id[:8]}", "revenue": 59000, "currency": "KRW"}
        event = {
            "event_id": event_id, "type": "conv", "ts": int(time.time() * 1000), "visitor_id": uuid.uuid4().hex,
            "member_id": rows[0]["member_id"], "url": f"{ORIGIN}/order/complete", "consent": {"analytics": True},
            "props": props,
        }  # fmt: skip
        _post(pipeline, {"site_id": site_id, "events": [event]})
        deadline = time.monotonic() + 60
        query = "SELECT COUNT(*) AS n FROM raw.conv WHERE event_id = @id"
        while not int(warehouse.query(query, {"id": event_id})[0]["n"]):
            if time.monotonic() > deadline:
                return Order(event_id, problem="the order beacon was not loaded within 60 s")
            time.sleep(0.5)
        ports = bootstrap.build_send_ports(settings, warehouse, documents, bootstrap.build_bus(settings))
        tick_at = datetime.now(UTC)
        tick = run_send_job(ports, SendJob(tick_at, tick=True), f"{RUN}-tick", tick_at)
        result = tick.runs.get(ORDER_CAMPAIGN)
        planned = result.triggered if result is not None else None
        if planned is None or planned.run_id is None:
            why = (result.error or f"state {result.state}") if result is not None else "no run"
            return Order(event_id, problem=f"the tick planned nothing for it ({why})")
        return Order(event_id, planned.run_id)
    finally:
        warehouse.close()


def _triggered(stage: Stage, warehouse: DuckDBWarehouse, order: Order) -> bool:
    """The order confirmation was planned for the order's customer within the target, and sent."""
    if order.skipped is not None:
        stage.lines.append(f"  no order trigger measured: {order.skipped}")
        return True
    if order.problem is not None or order.event_id is None:
        stage.lines.append(f"  an order beacon did NOT trigger the order confirmation: {order.problem}")
        return False
    found = trigger_latency(warehouse, ORDER_CAMPAIGN, order.event_id)
    latency = found.latency if found is not None else None
    sent = sum(
        n for o in stage.outcomes if o.campaign_id == ORDER_CAMPAIGN for (_, event), n in o.funnel.events.items()
        if event == "sent"
    )  # fmt: skip
    seconds = latency.total_seconds() if latency is not None else None
    shown = f"{seconds:.1f} s" if seconds is not None else "never"
    stage.lines.append(
        f"  a VIP's order beacon triggered the order confirmation: planned {shown} after collect accepted it "
        f"(target {TRIGGER_TARGET:.0f} s), e-mails sent {sent}"
    )
    return seconds is not None and seconds <= TRIGGER_TARGET and sent == 1


def _post(pipeline: LocalPipeline, batch: dict[str, Any]) -> None:
    """A tracker batch to collect, from the site's origin as a browser sends it."""
    request = urllib.request.Request(
        pipeline.collect_url + "/e", data=json.dumps(batch).encode(), method="POST",
        headers={"Content-Type": "application/json", "Origin": ORIGIN, "User-Agent": BROWSER},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def _vapid_keys(out: Path) -> str:
    """A VAPID key pair for the demo, as `openssl ecparam` makes one (docs/channels.md): the private
    key where the local SecretStore reads it, the public key returned (the applicationServerKey)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (out / "vapid.pem").write_bytes(pem)
    return public_key_of(key)


def _subscribe(pipeline: LocalPipeline, warehouse: DuckDBWarehouse, site_id: str, fakes: Fakes) -> list[str]:
    """A few VIP members' browsers subscribe (the push service makes each subscription, the tracker
    posts it through collect as `subscribe()` does); wait until the loader stored them. The endpoints."""
    rows = warehouse.query(
        "SELECT p.member_id FROM audiences.segment_members AS m JOIN refined.profiles AS p "
        "ON p.customer_id = m.customer_id AND p.site_id = m.site_id "
        "WHERE m.segment_id = 'vip-lifetime-revenue' AND m.site_id = @site AND p.member_id IS NOT NULL "
        "ORDER BY p.member_id DESC LIMIT @n",
        {"site": site_id, "n": PUSH_SUBSCRIBERS},
    )
    endpoints = []
    events = []
    for row in rows:
        subscription = fakes.push.subscribe(fakes.vapid_public_key).as_json()
        endpoints.append(str(subscription["endpoint"]))
        props = {"subscribed": True, "endpoint": subscription["endpoint"], "keys": subscription["keys"]}
        events.append(
            {
                "event_id": str(uuid.uuid4()), "type": "push", "ts": int(time.time() * 1000),
                "visitor_id": uuid.uuid4().hex, "member_id": row["member_id"], "url": f"{ORIGIN}/mypage",
                "consent": {"analytics": True}, "props": {**props, "version": "push-v1"},
            }
        )  # fmt: skip
    if not events:
        return []
    _post(pipeline, {"site_id": site_id, "events": events})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        query = "SELECT COUNT(*) AS n FROM raw.subscription WHERE channel = 'webpush' AND site_id = @site"
        stored = warehouse.query(query, {"site": site_id})[0]["n"]
        if int(stored) >= len(events):
            break
        time.sleep(0.5)
    return endpoints


def _pushed(stage: Stage, fakes: Fakes, endpoints: list[str]) -> bool:
    """Every subscribed browser shows the notification, decrypted by the push service as a browser
    decrypts it; the ledger's web push sends are what the push service received."""
    if not endpoints:
        stage.lines.append("  no VIP member to subscribe to web push (a small demo)")
        return True
    shown = [n for endpoint in endpoints for n in fakes.push.shown(endpoint.rsplit("/", 1)[1])]
    sent = sum(
        n for outcome in stage.outcomes for (channel, event), n in outcome.funnel.events.items()
        if channel == "webpush" and event == "sent"
    )  # fmt: skip
    received = len(fakes.push.received())
    titles = sorted({str(n.get("title")) for n in shown})
    stage.lines.append(
        f"  {len(endpoints)} VIP browsers subscribed through collect; the push service received {received}, "
        f"decrypted and showed {len(shown)}: {titles[0] if titles else '-'}"
    )
    return sent == received == len(shown) == len(endpoints) > 0


def _not_on_kakao(
    warehouse: DuckDBWarehouse, site_id: str, salt: str, now: datetime, kakao: NhnAlimTalkFake
) -> str | None:
    """One VIP member the gate lets receive AlimTalk and SMS is made a number KakaoTalk does not know
    (NHN's result 3019): the AlimTalk is accepted, fails later, and the campaign falls back to SMS."""
    texts = {
        a.customer_id: a.address
        for a in eligible_audience(warehouse, site_id, None, "sms", now, salt, segment_id="vip-lifetime-revenue")
        if a.eligible
    }  # someone the SMS may reach too, or the fallback would rightly be skipped (no_subscription)
    answers = eligible_audience(warehouse, site_id, None, "alimtalk", now, salt, segment_id="vip-lifetime-revenue")
    number = next((a.address for a in answers if a.eligible and a.address and texts.get(a.customer_id)), None)
    if number is None:
        return None
    kakao.outcomes["0" + number[3:] if number.startswith("+82") else number] = "3019"
    return number


def _settle(fakes: Fakes, expected: bool) -> bool:
    """Wait until the fakes have seen nothing new for QUIET_SECONDS (deliver's batches, the fallback
    after a Kakao result, the status callbacks) and every callback was answered; until they saw
    something, when batches were `expected`."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen, since = fakes.activity(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = fakes.activity()
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_SECONDS and (any(seen) or not expected):
            answered = [w.answered for w in fakes.twilio.webhooks] + [w.answered for w in fakes.kakao.webhooks]
            return all(status == 200 for status in answered)
    return False


def _fell_back(stage: Stage, warehouse: DuckDBWarehouse, number: str) -> bool:
    """The person KakaoTalk does not know got the SMS instead, decided and sent as its own delivery."""
    rows = warehouse.query(
        "SELECT d.channel, e.event, e.code FROM audiences.deliveries AS d "
        "JOIN audiences.delivery_events AS e ON e.delivery_id = d.delivery_id "
        "WHERE d.campaign_id = @campaign AND d.address = @number ORDER BY e.at, d.channel",
        {"campaign": ALIMTALK_CAMPAIGN, "number": number},
    )
    steps = list(dict.fromkeys((str(r["channel"]), str(r["event"]), r["code"]) for r in rows))
    ok = ("alimtalk", "failed", "3019") in steps and ("sms", "sent", None) in steps
    shown = ", ".join(f"{c} {e}" + (f" ({code})" if code and e == "failed" else "") for c, e, code in steps)
    shown = ", ".join(dict.fromkeys(shown.split(", ")))  # a sent event per attempt reads once
    stage.lines.append(f"  one VIP is not a KakaoTalk user: {shown}" + ("" if ok else " (NO SMS FALLBACK)"))
    return ok


@dataclass(frozen=True)
class Click:
    status: int
    location: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the demo reads the 302 itself


def _click(pipeline: LocalPipeline, twilio: TwilioApiFake) -> Click | None:
    """The first SMS recipient taps the tracked link in their message: collect answers 302 to the
    shop's page with UTM parameters and records the click (through the loader, as any beacon)."""
    bodies = sorted(m.body for m in twilio.messages.values())
    found = next(
        (m.group(0) for b in bodies if (m := re.search(re.escape(pipeline.collect_url) + r"/c\?t=\S+", b))), None
    )
    if found is None:
        return None
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        answer = opener.open(urllib.request.Request(found, headers={"User-Agent": BROWSER}))
        status, location = answer.status, answer.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        status, location = exc.code, exc.headers.get("Location", "")
    return Click(status, location)


def _clicked(stage: Stage, warehouse: DuckDBWarehouse, click: Click) -> bool:
    """The click's `clicked` row reached the ledger (the loader writes it from collect's message)."""
    deadline = time.monotonic() + 30
    count = 0
    while time.monotonic() < deadline:
        count = int(
            warehouse.query(
                "SELECT COUNT(DISTINCT delivery_id) AS n FROM audiences.delivery_events WHERE event = 'clicked'"
            )[0]["n"]
        )
        if count:
            break
        time.sleep(0.5)
    stage.lines.append(
        f"  one recipient tapped the link in their SMS: {click.status} to {click.location}; clicked deliveries: {count}"
    )
    return click.status == 302 and count == 1


def _reply_stop(twilio: TwilioApiFake) -> str | None:
    """The first SMS recipient answers STOP, as a person would from their phone."""
    numbers = sorted({m.to for m in twilio.messages.values()})
    if not numbers:
        return None
    answered = twilio.inbound(numbers[0], "STOP")
    return numbers[0] if answered.answered == 200 else ""


@dataclass(frozen=True)
class Complaint:
    delivery_id: str
    status: int  # email_feedback's answer to the forwarded report


def _complain(fakes: Fakes) -> Complaint | None:
    """The recipient of the first e-mail (by Message-ID) marks it as spam: their mailbox provider's
    feedback loop mails a complaint report with the recipient redacted, and the relay's inbound
    webhook forwards it to email_feedback."""
    ours = sorted(
        (delivery_id, received.data)
        for received in fakes.smtp.messages
        if (delivery_id := delivery_id_of(str(message_from_bytes(received.data).get("Message-ID", "")))) is not None
    )
    if not ours:
        return None
    delivery_id, data = ours[0]
    return Complaint(delivery_id, forward(fakes.feedback_url, FEEDBACK_TOKEN, arf(data, redact=True)))


def _complained(stage: Stage, warehouse: DuckDBWarehouse, site_id: str, complaint: Complaint, salt: str) -> bool:
    """The complaint reached the ledgers: a `complained` event, and the gate refuses that address's
    e-mail from now on, informational ones too."""
    events = warehouse.query(
        "SELECT event FROM audiences.delivery_events"
        " WHERE delivery_id = @id AND event IN ('complained', 'unsubscribed')",
        {"id": complaint.delivery_id},
    )
    kinds = sorted({str(r["event"]) for r in events})
    rows = warehouse.query(
        "SELECT customer_id FROM audiences.deliveries WHERE delivery_id = @id", {"id": complaint.delivery_id}
    )
    ids = sorted({str(r["customer_id"]) for r in rows})
    answers = eligible_audience(warehouse, site_id, None, "email", datetime.now(UTC), salt, customer_ids=ids)
    refused = bool(answers) and all(not a.eligible for a in answers)
    reason = answers[0].reason.value if answers else "no such customer"
    stage.lines.append(
        f"  one recipient marked their e-mail as spam: the feedback loop's report (recipient redacted) reached "
        f"email_feedback ({complaint.status}), which recorded {', '.join(kinds) or 'nothing'}; the gate now answers "
        f"{reason} for e-mail to that address"
    )
    return complaint.status == 200 and kinds == ["complained", "unsubscribed"] and refused


def _report(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for outcome in outcomes:
        funnel = outcome.funnel
        lines.append(f"  {outcome.name} ({outcome.campaign_id})")
        lines.append(f"    audience {funnel.audience:,}")
        channels = list(dict.fromkeys(channel for channel, _, _, _ in funnel.planned))
        for channel in channels:
            rows = {key: n for key, n in funnel.planned.items() if key[0] == channel}
            reasons: dict[str, int] = {}
            for (_, _, _, reason), n in rows.items():
                reasons[reason] = reasons.get(reason, 0) + n
            fallback = any(fb for (_, fb, _, _) in rows)
            eligible = reasons.pop("eligible", 0)
            others = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items(), key=lambda i: (-i[1], i[0])))
            label = f"{channel}{' (fallback)' if fallback else ''}"
            lines.append(
                f"    {label:<16} planned {sum(rows.values()):>5,} -> eligible {eligible:>5,}"
                + (f"; {others}" if others else "")
            )
            counts = {event: n for (c, event), n in funnel.events.items() if c == channel}
            failed = counts.get("failed", 0) + counts.get("bounced", 0)
            # SMTP reports no delivery: a message the relay accepted is as far as e-mail can tell.
            delivered = f"delivered {counts.get('delivered', 0):>5,}" if channel != "email" else "(relay accepted)"
            codes = {code: n for (c, code), n in funnel.failures.items() if c == channel}
            why = ", ".join(code if len(codes) == 1 else f"{code} {n:,}" for code, n in codes.items())
            lines.append(
                f"    {'':<16} sent {counts.get('sent', 0):>5,}   {delivered}   failed {failed:>3,}"
                + (f" ({why})" if why else "")
                + f"   clicked {counts.get('clicked', 0):>3,}   unsubscribed {counts.get('unsubscribed', 0):>3,}"
                + (f"   complained {counts['complained']:,}" if counts.get("complained") else "")
            )
    return lines


def _sent_and_received(outcomes: list[Outcome], fakes: Fakes) -> tuple[dict[str, int], dict[str, int], bool]:
    """What the ledger says was sent and delivered, what the fakes received, and whether they agree."""
    ledger_counts = {"email": 0, "sms": 0, "alimtalk": 0, "sms delivered": 0}
    for outcome in outcomes:
        for (channel, event), n in outcome.funnel.events.items():
            if event == "sent" and channel in ledger_counts:
                ledger_counts[channel] += n
            if event == "delivered" and channel == "sms":
                ledger_counts["sms delivered"] += n
    received = {
        "email": len(fakes.smtp.messages),
        "sms": len(fakes.twilio.created()),
        "alimtalk": len(fakes.kakao.messages),
        "sms delivered": len(fakes.twilio.messages),  # the fake delivers each one
    }
    twice = [k for k, found in fakes.kakao.by_grouping_key().items() if len(found) > 1]
    return ledger_counts, received, ledger_counts == received and not twice


def _agree(stage: Stage, fakes: Fakes) -> bool:
    """What the ledger says was sent is what the fakes received: once each, nothing lost."""
    sent, received, agree = _sent_and_received(stage.outcomes, fakes)
    stage.lines.append(
        f"  the fakes received {received['email']:,} e-mails, {received['sms']:,} SMS and {received['alimtalk']:,} "
        f"AlimTalks; the ledger says sent {sent['email']:,}, {sent['sms']:,} and {sent['alimtalk']:,}, SMS delivered "
        f"{sent['sms delivered']:,}: " + ("each once, none lost" if agree else "DISAGREE")
    )
    return agree


def _stopped(stage: Stage, warehouse: DuckDBWarehouse, site_id: str, number: str, salt: str) -> bool:
    """The STOP reply reached the consent ledger: the gate now refuses SMS to that number."""
    if not number:
        stage.lines.append("  a STOP reply was REFUSED by twilio_status")
        return False
    rows = warehouse.query(
        "SELECT customer_id FROM refined.identities WHERE site_id = @site AND id_type = 'phone' AND id_value = @number",
        {"site": site_id, "number": number},
    )
    ids = sorted({str(r["customer_id"]) for r in rows})
    answers = eligible_audience(warehouse, site_id, None, "sms", datetime.now(UTC), salt, customer_ids=ids)
    refused = bool(answers) and all(not a.eligible for a in answers)
    reason = answers[0].reason.value if answers else "no such customer"
    stage.lines.append(f"  one recipient replied STOP: the gate now answers {reason} for SMS to that number")
    return refused


def report(stage: Stage) -> str:
    head = "Campaigns (examples/campaigns through send_messages and deliver to the fakes, reports by the webhooks)"
    note = "  (the example's quiet hours and send windows are lifted for the demo; the night rule is not)"
    return "\n".join([head, note, *stage.lines])

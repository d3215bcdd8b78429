"""The Twilio webhook: its signature check against the public URL, and what each report means.

Requests are signed by the Twilio fake's own HMAC (devstack/fakes/twilio_api.signature, written
independently of the SDK's RequestValidator the handler uses) over the URL Twilio would call: the
adapter's StatusCallback. The handler runs in a Flask request context with the real settings object
and a DuckDB warehouse holding one planned and sent SMS to Minji (tests/messaging_world.py); what it
records is read back from the delivery and consent ledgers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import flask
import pytest

from devstack.fakes.twilio_api import signature
from functions.twilio_status import main as handler
from functions.twilio_status.main import twilio_status
from shared import bootstrap
from shared.adapters.twilio_sms import TwilioSms
from shared.config import Settings
from shared.consent.vocabulary import Channel, SubscriptionSource
from shared.messaging.ledger import funnel
from shared.ports.channels import Message, OptedOut, Rejected
from shared.services.deliver import deliver_batch
from shared.services.delivery_events import (
    DeliveryEvent,
    OptOutSignal,
    Report,
    ReportError,
    refusal_report,
    twilio_report,
)
from tests.fakes import FakeSecrets
from tests.messaging_world import CAMPAIGN, NOON, SITE, World

PUBLIC_URL = "https://cdp-twilio-status-7xq2.a.run.app/"
TOKEN = "twilio-auth-token-9d"
SID = "SM" + "3e" * 16
MINJI = "+821012345678"
NOW = datetime(2026, 5, 11, 2, 0, tzinfo=UTC)

Post = Callable[..., flask.Response]


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Minji was sent the win-back SMS (planned at NOON, delivered through the fake channel)."""
    world = World(tmp_path)
    world.person("minji", phone=MINJI, email=None)
    world.plan()
    for data in world.batches():
        deliver_batch(world.ports(), data, NOON)
    assert world.sms.sent_to() == [MINJI]
    return world


@pytest.fixture
def sent(world: World) -> str:
    """The delivery id of Minji's SMS."""
    return str(world.delivery(world.people["minji"], "sms")["delivery_id"])


@pytest.fixture
def post(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, world: World) -> Post:
    """POST to the handler as Cloud Run hands it a request: the host it sees is not the public one."""
    settings = Settings.from_env(
        {"CDP_PROJECT": "cdp-test", "CDP_TWILIO_STATUS_URL": PUBLIC_URL, "CDP_TWILIO_AUTH_TOKEN": TOKEN}
    )
    monkeypatch.setattr(bootstrap, "settings", lambda: settings)
    monkeypatch.setattr(bootstrap, "warehouse", lambda: world.warehouse)
    monkeypatch.setattr(handler, "_now", lambda: NOON + timedelta(hours=1))  # the world's time
    caplog.set_level(logging.INFO, logger="functions.twilio_status.main")
    app = flask.Flask(__name__)

    def send(query: str, form: Mapping[str, str], headers: Mapping[str, str], method: str = "POST") -> flask.Response:
        path = "/" + (f"?{query}" if query else "")
        with app.test_request_context(
            path, method=method, data=dict(form), headers=dict(headers), base_url="http://10.8.0.3:8080"
        ):
            return twilio_status(flask.request)

    return send


def callback_url(delivery_id: str) -> str:
    """The URL Twilio calls: what the adapter sends as StatusCallback."""
    return TwilioSms("AC" + "0" * 32, "MG" + "0" * 32, PUBLIC_URL, FakeSecrets()).status_callback(delivery_id)


def status(value: str, **more: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": SID,
        "MessageStatus": value,
        "MessagingServiceSid": "MG" + "0" * 32,
        "SmsSid": SID,
        "SmsStatus": value,
        "To": MINJI,
        **more,
    }


def signed(url: str, form: Mapping[str, str], token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": signature(token, url, form)}


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.getMessage() == message]


# --- the signature ---------------------------------------------------------------------------------


def test_a_correctly_signed_status_callback_is_recorded_once(post: Post, world: World, sent: str) -> None:
    url = callback_url(sent)
    form = status("delivered")

    answer = post(url.split("?", 1)[1], form, signed(url, form))
    again = post(url.split("?", 1)[1], form, signed(url, form))  # Twilio retries a callback freely

    assert answer.status_code == again.status_code == 200
    assert answer.content_type.startswith("text/xml") and answer.get_data(as_text=True).endswith(
        "<Response></Response>"
    )
    assert world.events() == [("sms", "sent", None), ("sms", "delivered", None)]
    rows = [r for r in world.rows("audiences.delivery_events") if r["event"] == "delivered"]
    assert len({r["event_id"] for r in rows}) == 1 and {r["provider_id"] for r in rows} == {SID}


def test_a_failure_is_recorded_with_twilios_code(post: Post, world: World, sent: str) -> None:
    url = callback_url(sent)
    form = status("undelivered", ErrorCode="30008")

    assert post(url.split("?", 1)[1], form, signed(url, form)).status_code == 200

    assert world.events() == [("sms", "sent", None), ("sms", "failed", "30008")]
    assert funnel(world.warehouse, CAMPAIGN, "run-1").failures == {("sms", "30008"): 1}  # the funnel says why


def test_a_report_about_no_delivery_of_ours_records_nothing(
    post: Post, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    url = callback_url("run 7/cust 42&x=1")  # also: an id that needs escaping is read back whole
    form = status("failed", ErrorCode="30008")

    assert post(url.split("?", 1)[1], form, signed(url, form)).status_code == 200

    assert world.events() == [("sms", "sent", None)]
    [recorded] = logged(caplog, "twilio report recorded")
    assert (recorded["events"], recorded["unmatched"]) == (0, 1)


def test_error_21610_unsubscribes_the_number_on_the_deliverys_site(post: Post, world: World, sent: str) -> None:
    url = callback_url(sent)
    form = status("undelivered", ErrorCode="21610")

    assert post(url.split("?", 1)[1], form, signed(url, form)).status_code == 200

    [row] = [r for r in world.rows("raw.subscription") if r["source"] == "provider_opt_out"]
    assert (row["site_id"], row["channel"], row["address"], row["subscribed"]) == (SITE, "sms", MINJI, False)
    assert world.events() == [
        ("sms", "sent", None),
        ("sms", "failed", "21610"),
        ("sms", "unsubscribed", "twilio 21610"),
    ]


@pytest.mark.parametrize(
    "forgery",
    [
        "signed over the URL this process sees",
        "signed over another delivery's URL",
        "a parameter changed after signing",
        "a parameter added after signing",
        "signed with another token",
        "no signature",
        "an empty signature",
    ],
)
def test_a_wrongly_signed_request_is_403_and_nothing_is_recorded(
    post: Post, caplog: pytest.LogCaptureFixture, world: World, sent: str, forgery: str
) -> None:
    url = callback_url(sent)
    form = status("undelivered", ErrorCode="21610")
    query = url.split("?", 1)[1]
    headers = {
        "signed over the URL this process sees": signed("http://10.8.0.3:8080/?" + query, form),
        "signed over another delivery's URL": signed(callback_url("0" * 32), form),
        "a parameter changed after signing": signed(url, status("delivered")),
        "a parameter added after signing": signed(url, {k: v for k, v in form.items() if k != "ErrorCode"}),
        "signed with another token": signed(url, form, token="not-the-token"),
        "no signature": {},
        "an empty signature": {"X-Twilio-Signature": ""},
    }[forgery]

    answer = post(query, form, headers)

    assert answer.status_code == 403
    assert "X-Twilio-Signature does not match" in answer.get_data(as_text=True)
    assert world.events() == [("sms", "sent", None)] and logged(caplog, "twilio report recorded") == []
    assert [r for r in world.rows("raw.subscription") if r["source"] == "provider_opt_out"] == []
    [refused] = logged(caplog, "twilio webhook refused")
    missing = forgery in ("no signature", "an empty signature")
    assert refused["reason"] == ("missing signature" if missing else "bad signature")


def test_a_signed_report_we_cannot_read_is_400_with_the_parameter(post: Post, world: World, sent: str) -> None:
    url = callback_url(sent)
    form = status("delivered", MessageSid="SM-not-a-sid")

    answer = post(url.split("?", 1)[1], form, signed(url, form))

    assert answer.status_code == 400
    assert answer.get_data(as_text=True).startswith("bad request: MessageSid:")
    assert world.events() == [("sms", "sent", None)]


def test_only_post_and_only_when_configured(post: Post, monkeypatch: pytest.MonkeyPatch) -> None:
    assert post("", {}, {}, method="GET").status_code == 405
    monkeypatch.setattr(bootstrap, "settings", lambda: Settings.from_env({"CDP_PROJECT": "cdp-test"}))
    form = status("delivered")
    unconfigured = post("d=d-1", form, signed(PUBLIC_URL + "?d=d-1", form))
    assert unconfigured.status_code == 503  # Twilio retries: the reports wait for the configuration
    # A URL but no token yet in Secret Manager (none bound at deploy): also 503, nothing read.
    from shared.ports.secrets import SecretMissing

    def no_token() -> str:
        raise SecretMissing("secret twilio-auth-token: not found")

    configured = Settings.from_env({"CDP_PROJECT": "cdp-test", "CDP_TWILIO_STATUS_URL": PUBLIC_URL})
    monkeypatch.setattr(bootstrap, "settings", lambda: configured)
    monkeypatch.setattr(bootstrap, "twilio_webhook_token", lambda: no_token)
    assert post("d=d-1", form, signed(PUBLIC_URL + "?d=d-1", form)).status_code == 503


def test_an_inbound_stop_unsubscribes_the_number_on_the_sites_that_messaged_it(
    post: Post, caplog: pytest.LogCaptureFixture, world: World
) -> None:
    def inbound(number: str) -> dict[str, str]:
        return {
            "AccountSid": "AC" + "0" * 32,
            "Body": "Stop",
            "From": number,
            "MessageSid": SID,
            "NumMedia": "0",
            "SmsStatus": "received",
            "To": "+15005550006",
        }

    stranger = "+14155550123"  # no site ever messaged this number: nothing to unsubscribe it from
    assert post("", inbound(MINJI), signed(PUBLIC_URL, inbound(MINJI))).status_code == 200
    assert post("", inbound(stranger), signed(PUBLIC_URL, inbound(stranger))).status_code == 200

    rows = [r for r in world.rows("raw.subscription") if r["source"] == "sms_stop"]
    assert [(r["site_id"], r["address"], r["subscribed"], r["reason"]) for r in rows] == [
        (SITE, MINJI, False, "sms STOP")
    ]
    recorded = logged(caplog, "twilio report recorded")
    assert [(r["opt_outs"], r["unmatched"]) for r in recorded] == [(1, 0), (0, 1)]
    assert world.events() == [("sms", "sent", None), ("sms", "unsubscribed", "sms STOP")]  # on her last SMS
    assert MINJI not in caplog.text and stranger not in caplog.text


# --- what a report means ---------------------------------------------------------------------------


def test_each_twilio_status_becomes_its_event_or_none() -> None:
    kinds = {s: twilio_report(status(s), "d-1", NOW).events for s in ("queued", "accepted", "sending", "scheduled")}
    assert kinds == dict.fromkeys(kinds, ())
    assert twilio_report(status("sent"), "d-1", NOW) == Report(
        (DeliveryEvent("d-1", "sms", "sent", NOW, SID, "sent", None),)
    )
    assert twilio_report(status("read"), "d-1", NOW).events[0].kind == "delivered"
    [undelivered] = twilio_report(status("undelivered", ErrorCode="30003"), "d-1", NOW).events
    assert (undelivered.kind, undelivered.code) == ("undelivered", "30003")
    assert twilio_report(status("delivered"), None, NOW).events[0].delivery_id is None


def test_error_21610_on_a_message_is_a_provider_opt_out_of_the_recipient() -> None:
    report = twilio_report(status("failed", ErrorCode="21610"), "d-9", NOW)

    assert report.events == (DeliveryEvent("d-9", "sms", "failed", NOW, SID, "failed", "21610"),)
    assert report.opt_outs == (
        OptOutSignal(Channel.SMS, MINJI, SubscriptionSource.PROVIDER_OPT_OUT, "twilio 21610", NOW, "d-9", SID),
    )


@pytest.mark.parametrize(
    ("body", "opt_out_type", "expected"),
    [
        ("STOP", None, "sms STOP"),
        ("  unsubscribe ", None, "sms UNSUBSCRIBE"),
        ("quit", None, "sms QUIT"),
        ("그만", "STOP", "sms 그만"),  # a custom keyword under Advanced Opt-Out
        ("START", None, None),  # no consent: a grant needs its proof
        ("stop sending me coupons please", None, None),  # Twilio matches whole-body keywords only
        ("HELP", "HELP", None),
    ],
)
def test_inbound_keywords(body: str, opt_out_type: str | None, expected: str | None) -> None:
    params = {"MessageSid": SID, "SmsStatus": "received", "Body": body, "From": MINJI, "To": "+15005550006"}
    if opt_out_type:
        params["OptOutType"] = opt_out_type

    report = twilio_report(params, None, NOW)

    assert report.events == ()
    assert [(s.source, s.reason, s.address) for s in report.opt_outs] == (
        [(SubscriptionSource.SMS_STOP, expected, MINJI)] if expected else []
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"MessageStatus": "delivered"}, "MessageSid"),
        ({"MessageSid": SID, "MessageStatus": "exploded"}, "MessageStatus"),
        ({"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "21610; DROP"}, "ErrorCode"),
        ({"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "21610", "To": "010-1234"}, "To"),
        ({"MessageSid": SID, "SmsStatus": "received", "Body": "STOP", "From": "anonymous"}, "From"),
    ],
)
def test_unreadable_reports_name_the_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(ReportError) as bad:
        twilio_report(params, "d-1", NOW)

    assert bad.value.field == field


def test_refusals_at_send_time() -> None:
    email = Message("d-2", "email", "gone@example.com", "text", subject="s")
    sms = Message("d-3", "sms", MINJI, "text")

    bounced = refusal_report(email, Rejected("550", code="550 5.1.1"), NOW)
    policy = refusal_report(email, Rejected("554", code="554 5.7.1"), NOW)
    opted_out = refusal_report(sms, OptedOut("21610", code="21610"), NOW)
    invalid = refusal_report(sms, Rejected("21211", code="21211"), NOW)

    assert bounced.events[0].kind == "bounced"
    assert bounced.opt_outs == (
        OptOutSignal(Channel.EMAIL, "gone@example.com", SubscriptionSource.BOUNCE, "550 5.1.1", NOW, "d-2"),
    )
    assert (policy.events[0].kind, policy.opt_outs) == ("failed", ())  # our message refused, not the address
    assert [(s.source, s.address) for s in opted_out.opt_outs] == [(SubscriptionSource.PROVIDER_OPT_OUT, MINJI)]
    assert (invalid.events[0].kind, invalid.events[0].code, invalid.opt_outs) == ("failed", "21211", ())

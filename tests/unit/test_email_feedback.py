"""Complaints: the service on DuckDB (a shop's e-mail campaign sent through deliver, a complaint about
it recorded in the delivery and consent ledgers, the gate's answer after, the complaint rate's
alarm) and the `email_feedback` handler in a Flask request context (credentials, the forms relays
post, the answers). Reports are ARF messages built with the standard library (tests/feedback_reports.py)
around the Message-ID SmtpEmail writes for the delivery."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import flask
import pytest

from functions.email_feedback import main as handler
from functions.email_feedback.main import email_feedback
from shared import bootstrap
from shared.adapters.smtp_email import SmtpEmail
from shared.config import Settings
from shared.consent.vocabulary import Reason
from shared.messaging import ledger
from shared.messaging.feedback import Feedback, parse_feedback
from shared.messaging.ledger import Delivery, Event, event_row
from shared.ports.secrets import CachedSecret
from shared.services import complaints, consent
from shared.services.complaints import ComplaintRecorded, record_complaint
from shared.services.deliver import deliver_batch
from tests.builders import SALT
from tests.fakes import FakeSecrets
from tests.feedback_reports import arf, original_email
from tests.messaging_world import CAMPAIGN, NOON, SITE, World

NOW = NOON + timedelta(days=1)  # the report arrives the day after the send
TOKEN = "feedback-token-4f1c"
MINJI = "minji@example.com"
SENDER = SmtpEmail("127.0.0.1", 25, "새봄마켓 <news@shop.example>", security="none")

Post = Callable[..., flask.Response]


@pytest.fixture
def world(tmp_path: Path) -> World:
    """Minji (and Jisoo) were sent the win-back e-mail at NOON through deliver."""
    world = World(tmp_path)
    world.edit("campaigns", CAMPAIGN, channels=["email"])
    world.person("minji", email=MINJI, phone=None)
    world.person("jisoo", email="jisoo@example.com", phone=None)
    world.plan()
    for data in world.batches():
        deliver_batch(world.ports(), data, NOON)
    assert sorted(world.email.sent_to()) == ["jisoo@example.com", MINJI]
    return world


@pytest.fixture
def sent(world: World) -> str:
    """The delivery id of Minji's e-mail."""
    return str(world.delivery(world.people["minji"], "email")["delivery_id"])


def report(delivery_id: str, **options: Any) -> bytes:
    return arf(original_email(SENDER.message_id(delivery_id)), **options)


def complaint(delivery_id: str, **options: Any) -> Feedback:
    return parse_feedback(report(delivery_id, **options))


def gate(world: World, name: str, at: datetime = NOW) -> Reason:
    [answer] = consent.eligible_audience(
        world.warehouse, SITE, "marketing", "email", at, SALT, customer_ids=[world.people[name].customer_id]
    )
    return answer.reason


def opt_outs(world: World) -> list[tuple[Any, ...]]:
    rows = world.rows("raw.subscription")
    return sorted(
        (r["site_id"], r["channel"], r["address"], r["subscribed"], r["reason"], r["request_id"], r["effective_at"])
        for r in rows
        if r["source"] == "complaint"
    )


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.getMessage() == message]


# --- the service -----------------------------------------------------------------------------------


def test_a_complaint_unsubscribes_the_address_on_the_deliverys_site(world: World, sent: str) -> None:
    assert gate(world, "minji") == Reason.ELIGIBLE

    outcome = record_complaint(world.warehouse, complaint(sent, redact=True), NOW)

    assert outcome == ComplaintRecorded(recorded=True, rate=0.5)  # 1 of the site's 2 e-mails this week
    minji = world.people["minji"]
    assert world.events(minji) == [("email", "sent", None), ("email", "complained", "abuse"),
                                   ("email", "unsubscribed", "arf abuse")]  # fmt: skip
    [complained] = [r for r in world.rows("audiences.delivery_events") if r["event"] == "complained"]
    assert (complained["delivery_id"], complained["provider_id"]) == (sent, SENDER.message_id(sent))
    assert opt_outs(world) == [(SITE, "email", MINJI, False, "arf abuse", sent, NOW)]
    assert gate(world, "minji") == Reason.UNSUBSCRIBED  # no more marketing e-mail on this site
    assert gate(world, "jisoo") == Reason.ELIGIBLE


def test_a_report_received_twice_is_recorded_once(world: World, sent: str) -> None:
    first = record_complaint(world.warehouse, complaint(sent), NOW)
    again = record_complaint(world.warehouse, complaint(sent, feedback_type="fraud"), NOW + timedelta(hours=2))

    assert (first.recorded, again) == (True, ComplaintRecorded(duplicate=True))
    events = [r["event"] for r in world.rows("audiences.delivery_events")]
    assert (events.count("complained"), events.count("unsubscribed")) == (1, 1)
    assert len(opt_outs(world)) == 1


def test_a_retry_after_the_events_failed_writes_the_opt_out_again_with_its_first_time(
    world: World, sent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(warehouse: object, rows: object) -> None:
        raise ledger.LedgerError("audiences.delivery_events refused 2 of 2 rows: backend error")

    monkeypatch.setattr("shared.services.deliver.record_events", down)
    with pytest.raises(ledger.LedgerError):
        record_complaint(world.warehouse, complaint(sent), NOW)  # the opt-out was written, not the events
    assert len(opt_outs(world)) == 1
    monkeypatch.undo()

    outcome = record_complaint(world.warehouse, complaint(sent), NOW + timedelta(minutes=10))

    assert outcome.recorded
    assert opt_outs(world) == [(SITE, "email", MINJI, False, "arf abuse", sent, NOW)]  # the same row, once
    [complained] = [r for r in world.rows("audiences.delivery_events") if r["event"] == "complained"]
    assert complained["at"] == NOW


@pytest.mark.parametrize(
    "message_id",
    [
        "<CAF3x9Yh2bQ=abc@mail.gmail.com>",  # another sender's
        SENDER.message_id("0" * 32),  # our form, no such delivery
    ],
)
def test_a_complaint_about_no_delivery_of_ours_records_nothing(
    world: World, message_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = (world.rows("audiences.delivery_events"), world.rows("raw.subscription"))

    outcome = record_complaint(world.warehouse, parse_feedback(arf(original_email(message_id))), NOW)

    assert outcome == ComplaintRecorded(unmatched=True)
    assert (world.rows("audiences.delivery_events"), world.rows("raw.subscription")) == before
    assert logged(caplog, "complaint about no delivery of ours")[0]["message_id"] == message_id


def test_a_complaint_naming_an_sms_delivery_is_not_read_as_an_e_mail(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.person("minji", email=None, phone="+821012345678")
    world.plan()
    sms = str(world.delivery(world.people["minji"], "sms")["delivery_id"])

    assert record_complaint(world.warehouse, complaint(sms), NOW) == ComplaintRecorded(unmatched=True)
    assert world.rows("raw.subscription") == [r for r in world.rows("raw.subscription") if r["source"] != "complaint"]


def test_a_report_that_is_no_complaint_is_refused_by_the_service(world: World, sent: str) -> None:
    with pytest.raises(ValueError, match="a not-spam report is no complaint"):
        record_complaint(world.warehouse, complaint(sent, feedback_type="not-spam"), NOW)


def plant_sent(world: World, count: int, at: datetime, site: str = SITE) -> None:
    """`count` other e-mails of the site recorded sent at `at` (only their events: the rate's input)."""
    rows = [
        event_row(Delivery(f"{i:032x}", "other", "run-0", site, f"c_{i}", "email"), Event.SENT, at)
        for i in range(1, count + 1)
    ]
    ledger.record_events(world.warehouse, rows)


@pytest.mark.parametrize(
    ("others", "logs"),
    [
        (998, True),  # 1 complaint of 1,000 e-mails: 0.1 %, the alarm
        (997, False),  # 1 of 999: above 0.1 %, but fewer e-mails than the minimum
        (1998, False),  # 1 of 2,000: 0.05 %
    ],
)
def test_the_complaint_rate_alarm(
    world: World, sent: str, caplog: pytest.LogCaptureFixture, others: int, logs: bool
) -> None:
    plant_sent(world, others, NOON - timedelta(days=3))
    plant_sent(world, 5000, NOON - timedelta(days=8))  # before the week: not counted
    plant_sent(world, 5000, NOON, site="other-shop")  # another site's
    caplog.set_level(logging.INFO)

    outcome = record_complaint(world.warehouse, complaint(sent), NOW)

    assert outcome.rate == pytest.approx(1 / (others + 2))
    alarms = logged(caplog, "email complaint rate high")
    if not logs:
        assert alarms == []
        return
    [alarm] = alarms
    assert alarm["levelno"] == logging.ERROR
    assert (alarm["site_id"], alarm["complaints"], alarm["sent"], alarm["rate"]) == (SITE, 1, 1000, 0.001)


def test_the_rate_counts_each_delivery_once_and_only_e_mail(world: World, sent: str) -> None:
    record_complaint(world.warehouse, complaint(sent), NOW)
    copies = [r for r in world.rows("audiences.delivery_events") if r["event"] in ("sent", "complained")]
    ledger.record_events(world.warehouse, copies)  # a redelivered batch writes its rows again
    sms = event_row(Delivery("f" * 32, CAMPAIGN, "run-1", SITE, "c_x", "sms"), Event.SENT, NOON)
    ledger.record_events(world.warehouse, [sms])

    rate = complaints.complaint_rate(world.warehouse, SITE, NOW)

    assert (rate.complaints, rate.sent, rate.rate) == (1, 2, 0.5)
    assert complaints.complaint_rate(world.warehouse, SITE, NOW + timedelta(days=8)).rate is None  # nothing sent


# --- the handler -----------------------------------------------------------------------------------


@pytest.fixture
def post(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, world: World) -> Post:
    """POST to the handler with the token configured as CDP_EMAIL_FEEDBACK_TOKEN."""
    settings = Settings.from_env({"CDP_PROJECT": "cdp-test", "CDP_EMAIL_FEEDBACK_TOKEN": TOKEN})
    monkeypatch.setattr(bootstrap, "settings", lambda: settings)
    monkeypatch.setattr(bootstrap, "warehouse", lambda: world.warehouse)
    monkeypatch.setattr(handler, "_now", lambda: NOW)
    caplog.set_level(logging.INFO, logger="functions.email_feedback.main")
    app = flask.Flask(__name__)

    def send(
        data: bytes | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "message/rfc822",
        method: str = "POST",
        **options: Any,
    ) -> flask.Response:
        with app.test_request_context(
            "/", method=method, data=data, headers=dict(headers or {}), content_type=content_type, **options
        ):
            answer = email_feedback(flask.request)
            assert isinstance(answer, flask.Response)
            return answer

    return send


def basic(password: str, user: str = "fbl") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_complaint_posted_with_basic_credentials_is_recorded(
    post: Post, world: World, sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    answer = post(report(sent), basic(TOKEN))

    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "ok: complaint recorded\n")
    assert opt_outs(world) == [(SITE, "email", MINJI, False, "arf abuse", sent, NOW)]
    [recorded] = logged(caplog, "email feedback recorded")
    assert (recorded["feedback_type"], recorded["recorded"], recorded["rate"]) == ("abuse", True, 0.5)
    assert MINJI not in caplog.text  # the report's recipient is never logged

    again = post(report(sent), bearer(TOKEN), content_type="application/octet-stream")
    assert (again.status_code, again.get_data(as_text=True)) == (200, "ok: complaint seen before\n")
    assert len(opt_outs(world)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("guess"),
        bearer("guess"),
        bearer(TOKEN + "x"),
        basic(""),
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Bearer"},
        {"X-Feedback-Token": TOKEN},
    ],
)
def test_a_request_without_the_token_is_403_and_nothing_is_read(
    post: Post, world: World, sent: str, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    answer = post(report(sent), headers)

    assert answer.status_code == 403 and "forbidden" in answer.get_data(as_text=True)
    assert opt_outs(world) == [] and logged(caplog, "email feedback recorded") == []
    [refused] = logged(caplog, "email feedback refused")
    assert refused["reason"] in ("missing token", "bad token")


def test_only_post(post: Post) -> None:
    answer = post(method="GET", headers=bearer(TOKEN))
    assert answer.status_code == 405 and "POST" in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"email": "REPORT", "to": "fbl@shop.example", "charsets": "{}"}, "multipart/form-data"),  # SendGrid raw
        ({"body-mime": "REPORT", "recipient": "fbl@shop.example"}, "multipart/form-data"),  # Mailgun, with files
        ({"body-mime": "REPORT", "recipient": "fbl@shop.example"}, "application/x-www-form-urlencoded"),  # Mailgun
        ({"RawEmail": "REPORT", "MessageID": "9f2e"}, "application/json"),  # Postmark
    ],
)
def test_the_forms_relays_post(post: Post, world: World, sent: str, body: dict[str, str], content_type: str) -> None:
    raw = report(sent).decode("utf-8")
    filled = {k: raw if v == "REPORT" else v for k, v in body.items()}
    data: Any = json.dumps(filled) if content_type == "application/json" else filled

    answer = post(data, bearer(TOKEN), content_type=content_type)

    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "ok: complaint recorded\n")
    assert opt_outs(world) == [(SITE, "email", MINJI, False, "arf abuse", sent, NOW)]


def test_the_raw_message_as_an_uploaded_file(post: Post, world: World, sent: str) -> None:
    import io

    upload = {"email": (io.BytesIO(report(sent)), "message.eml", "message/rfc822")}

    answer = post(upload, bearer(TOKEN), content_type="multipart/form-data")

    assert answer.status_code == 200 and len(opt_outs(world)) == 1


def test_a_report_that_is_no_complaint_or_not_ours_is_acknowledged(post: Post, world: World, sent: str) -> None:
    not_spam = post(report(sent, feedback_type="not-spam"), bearer(TOKEN))
    others = post(arf(original_email("<CAF3x9Yh2bQ=abc@mail.gmail.com>")), bearer(TOKEN))

    assert (not_spam.status_code, not_spam.get_data(as_text=True)) == (
        200,
        "ok: not-spam is not a complaint, nothing recorded\n",
    )
    assert (others.status_code, others.get_data(as_text=True)) == (200, "ok: complaint about no message of ours\n")
    assert opt_outs(world) == [] and "complained" not in {r["event"] for r in world.rows("audiences.delivery_events")}


@pytest.mark.parametrize(
    ("data", "content_type", "field"),
    [
        (b"Subject: hello\r\n\r\nnot a report", "message/rfc822", "body"),
        ({"to": "fbl@shop.example", "text": "no raw message"}, "multipart/form-data", "form"),
        (json.dumps({"TextBody": "parsed only"}), "application/json", "RawEmail"),
        (b"<html></html>", "text/html", "Content-Type"),
    ],
)
def test_an_unreadable_request_is_400_with_the_field(
    post: Post, world: World, caplog: pytest.LogCaptureFixture, data: Any, content_type: str, field: str
) -> None:
    answer = post(data, bearer(TOKEN), content_type=content_type)

    assert answer.status_code == 400 and answer.get_data(as_text=True).startswith(f"bad request: {field}: ")
    assert logged(caplog, "email feedback unreadable")[0]["field"] == field
    assert opt_outs(world) == []


def test_a_missing_original_message_id_is_400_naming_it(post: Post, sent: str) -> None:
    raw = report(sent).replace(f"Message-ID: {SENDER.message_id(sent)}\r\n".encode(), b"")

    answer = post(raw, bearer(TOKEN))

    assert answer.status_code == 400 and answer.get_data(as_text=True).startswith("bad request: original.Message-ID")


def test_a_body_over_the_limit_is_413(post: Post, sent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "MAX_BODY", 1000)
    raw = report(sent)
    assert len(raw) > 1000

    assert post(raw, bearer(TOKEN)).status_code == 413
    form = post({"email": raw.decode()}, bearer(TOKEN), content_type="multipart/form-data")
    assert form.status_code == 413


def test_without_a_configured_token_the_answer_is_503(
    post: Post, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, world: World, sent: str
) -> None:
    settings = Settings.from_env({"CDP_PROJECT": "cdp-test"})  # no local override: Secret Manager
    monkeypatch.setattr(bootstrap, "settings", lambda: settings)
    secrets = FakeSecrets()
    monkeypatch.setattr(bootstrap, "email_feedback_token", lambda: CachedSecret(secrets, "email-feedback-token").get)

    answer = post(report(sent), bearer(TOKEN))

    assert answer.status_code == 503 and logged(caplog, "email feedback not configured")
    assert opt_outs(world) == []
    secrets.values["email-feedback-token"] = TOKEN  # the secret gets its version: the next try is read
    assert post(report(sent), bearer(TOKEN)).status_code == 200
    assert secrets.asked == [("get", "email-feedback-token")] * 2
    assert len(opt_outs(world)) == 1


def test_the_token_is_read_from_the_secret_named_email_feedback_token(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = FakeSecrets(values={"email-feedback-token": "from-secret-manager"})
    monkeypatch.setattr(bootstrap, "secrets", lambda: secrets)
    bootstrap.email_feedback_token.cache_clear()
    try:
        read = bootstrap.email_feedback_token()
        assert (read(), read()) == ("from-secret-manager", "from-secret-manager")
        assert secrets.asked == [("get", "email-feedback-token")]  # cached
    finally:
        bootstrap.email_feedback_token.cache_clear()

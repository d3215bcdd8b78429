"""Each entry point as Cloud Functions serves it: the real app from functions-framework over main.py.

Unit tests call the handlers directly; this is what they cannot see: that `main.py` exports the
name, that the framework finds the decorator by that name (and so the signature type whatever the
deployment's flag says), and that a request as the trigger delivers it (a Pub/Sub push body, an
Eventarc CloudEvent, plain HTTP) gets through. Ports are fakes and an in-memory DuckDB.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from functions_framework import create_app

import main
from shared import bootstrap, serving
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import Settings
from shared.preferences.links import seal
from shared.schema import table_spec
from shared.services.deliver import DeliverPorts
from shared.services.send_job import SendPorts
from tests.builders import firestore_event_headers, new_warehouse, proto_event
from tests.fakes import FakeBus, FakeDocumentStore, FakeSecrets

HTTP, CLOUD_EVENT = "http", "cloudevent"
SIGNATURES = {
    "build_report": CLOUD_EVENT,
    "build_segments": CLOUD_EVENT,
    "collect": HTTP,
    "deliver": CLOUD_EVENT,
    "discover": CLOUD_EVENT,
    "email_feedback": HTTP,
    "load_dead_letters": CLOUD_EVENT,
    "load_events": CLOUD_EVENT,
    "nhn_status": HTTP,
    "preferences": HTTP,
    "privacy_requests": CLOUD_EVENT,
    "publish_audiences": CLOUD_EVENT,
    "refine": CLOUD_EVENT,
    "send_messages": CLOUD_EVENT,
    "sync_schedules": CLOUD_EVENT,
    "twilio_status": HTTP,
    "validate_config": CLOUD_EVENT,
}
# A message for another job: the `jobs` topic reaches every job function (the emulator ignores filters).
OTHER_JOB = {
    "refine": "discover",
    "discover": "refine",
    "build_segments": "sync_schedules",
    "sync_schedules": "refine",
    "privacy_requests": "refine",
    "publish_audiences": "build_segments",
    "send_messages": "publish_audiences",
    "build_report": "refine",
}
ENV = {
    "CDP_PROJECT": "cdp-test",
    "CDP_SITES": json.dumps({"test-shop": {"origins": ["https://shop.example"]}}),
    "CDP_IP_SALT": "entry-point-salt",
    "CDP_TWILIO_STATUS_URL": "https://hooks.shop.example/twilio-status",
    "CDP_TWILIO_AUTH_TOKEN": "entry-point-twilio-token",
    "CDP_NHN_WEBHOOK_SIGNATURE": "entry-point-nhn-signature",
    "CDP_EMAIL_FEEDBACK_TOKEN": "entry-point-feedback-token",
}


@dataclass
class Ports:
    """The fakes behind bootstrap, and which accessors a request asked for."""

    warehouse: DuckDBWarehouse
    bus: FakeBus = field(default_factory=FakeBus)
    documents: FakeDocumentStore = field(default_factory=FakeDocumentStore)
    secrets: FakeSecrets = field(default_factory=FakeSecrets)
    asked: list[str] = field(default_factory=list)

    def bad_rows(self) -> list[dict[str, Any]]:
        return self.warehouse.query("select reason_code, site_id from raw.bad_rows")


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> Ports:
    ports = Ports(new_warehouse())
    settings = Settings.from_env(ENV)
    built = {
        "settings": settings,
        "collector_config": bootstrap.build_collector_config(settings),
        "warehouse": ports.warehouse,
        "bus": ports.bus,
        "documents": ports.documents,
        "secrets": ports.secrets,
    }

    def accessor(name: str, value: object) -> Callable[[], object]:
        def get() -> object:
            ports.asked.append(name)
            return value

        return get

    for name, value in built.items():
        monkeypatch.setattr(bootstrap, name, accessor(name, value))
    send = SendPorts(ports.warehouse, ports.documents, ports.bus, None, "salt", frozenset({"email", "sms"}))
    monkeypatch.setattr(bootstrap, "send_ports", accessor("send_ports", send))
    deliver = DeliverPorts(ports.warehouse, ports.documents, {}, "salt")
    monkeypatch.setattr(bootstrap, "deliver_ports", accessor("deliver_ports", deliver))
    monkeypatch.setattr(bootstrap, "job_scheduler", lambda: pytest.fail("no request here reaches Cloud Scheduler"))
    monkeypatch.setattr(serving, "settle_heap", lambda: None)  # would freeze the test runner's heap
    # create_app writes the type it resolved here; monkeypatch puts the variable back afterwards.
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", HTTP)
    return ports


def app_client(name: str) -> FlaskClient:
    """The app of one entry point, given the framework's default flag: only the decorator can make it an event."""
    app = create_app(target=name, source="main.py", signature_type=HTTP)
    return app.test_client()


def resolved_signature() -> str:
    """The signature type create_app settled on (it writes it to the environment for the process)."""
    return os.environ["FUNCTION_SIGNATURE_TYPE"]


def push(data: bytes, **attributes: str) -> dict[str, Any]:
    """A Pub/Sub push request body, as our push subscriptions (infra/pubsub.tf) deliver messages."""
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes,
        "messageId": "4242",
        "publishTime": "2026-05-10T12:00:00Z",
    }
    return {"message": message, "subscription": "projects/cdp-test/subscriptions/test"}


def test_every_export_of_main_has_its_test() -> None:
    assert sorted(main.__all__) == sorted(SIGNATURES)
    assert {
        "collect",
        "deliver",
        "email_feedback",
        "load_events",
        "load_dead_letters",
        "nhn_status",
        "preferences",
        "twilio_status",
        "validate_config",
        *OTHER_JOB,
    } == set(SIGNATURES)


def test_collect_is_http_and_serves_the_tracker(ports: Ports) -> None:
    client = app_client("collect")
    assert resolved_signature() == SIGNATURES["collect"]
    tracker = client.get("/tracker.js")
    assert tracker.status_code == 200 and "javascript" in tracker.content_type and tracker.data
    preflight = client.options(
        "/e", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    )
    assert 200 <= preflight.status_code < 300
    assert ports.bus.published == []


@pytest.mark.parametrize("name", sorted(OTHER_JOB))
def test_a_job_function_acknowledges_another_jobs_message_and_does_nothing(ports: Ports, name: str) -> None:
    client = app_client(name)
    assert resolved_signature() == SIGNATURES[name]
    assert client.get("/").status_code == 405  # a CloudEvent function takes POSTs only
    other = OTHER_JOB[name]
    answer = client.post("/", json=push(json.dumps({"job": other}).encode(), job=other))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert ports.asked == [] and ports.documents.docs == {} and ports.bus.published == []


def test_load_events_stores_a_message_that_is_no_beacon_message_as_a_bad_row(ports: Ports) -> None:
    client = app_client("load_events")
    assert resolved_signature() == SIGNATURES["load_events"]
    answer = client.post("/", json=push(b"not a beacon message"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert ports.bad_rows() == [{"reason_code": "undecodable_message", "site_id": None}]


def test_load_events_reads_the_delivery_attempt_the_framework_drops(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """functions-framework leaves `deliveryAttempt` out of the CloudEvent it makes of a push: the
    handler reads it from the push body, so on the last attempt a message that keeps hitting a bug
    becomes a bad row instead of being retried until Pub/Sub gives up."""
    from shared.services import load

    def bug(data: bytes, warehouse: object, now: object) -> None:
        raise RuntimeError("a bug the message keeps hitting")

    monkeypatch.setattr(load, "_load", bug)
    client = app_client("load_events")
    body = push(b'{"rows": []}', site_id="test-shop")
    assert client.post("/", json=body | {"deliveryAttempt": 4}).status_code == 500  # Pub/Sub retries it
    assert ports.bad_rows() == []
    assert client.post("/", json=body | {"deliveryAttempt": 5}).status_code == 200  # the last attempt
    assert ports.bad_rows() == [{"reason_code": "load_failed", "site_id": None}]


def test_load_dead_letters_stores_the_message_as_a_bad_row(ports: Ports) -> None:
    client = app_client("load_dead_letters")
    assert resolved_signature() == SIGNATURES["load_dead_letters"]
    answer = client.post("/", json=push(b'{"rows": []}', site_id="test-shop"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert ports.bad_rows() == [{"reason_code": "dead_lettered", "site_id": "test-shop"}]


def test_validate_config_acknowledges_a_deleted_segment_and_audits_it(ports: Ports) -> None:
    ports.warehouse.ensure_tables([table_spec("audit.config_changes")])
    client = app_client("validate_config")
    assert resolved_signature() == SIGNATURES["validate_config"]
    headers = firestore_event_headers(project="cdp-test")  # binary content mode: the change as protobuf
    answer = client.post("/", data=proto_event({"name": "gone"}, None), headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert ports.asked == ["warehouse", "documents", "settings"]  # decoded, and handed to the service
    assert ports.documents.docs == {} and ports.bad_rows() == []
    [change] = ports.warehouse.query(
        "select collection, document_id, action, after_hash, event_id from audit.config_changes"
    )
    assert change["collection"] == "segments" and change["action"] == "deleted" and change["after_hash"] is None
    assert change["event_id"] == headers["ce-id"]


def test_validate_config_checks_a_publication_against_its_segment_and_destination(ports: Ports) -> None:
    ports.warehouse.ensure_tables([table_spec("audit.config_changes")])
    publication = {"segment_id": "vip", "destination_id": "meta", "audience_id": "23850000000000001"}
    destination = {"type": "facebook_custom_audience", "ad_account_id": "act_1", "access_token_secret": "meta-token"}
    ports.documents.docs = {
        "segments": {"vip": {"template": "all_users"}},
        "destinations": {"meta": destination},
        "publications": {"p1": dict(publication), "p2": {**publication, "segment_id": "gone"}},
    }
    ports.secrets.values["meta-token"] = "EAA-token"
    client = app_client("validate_config")
    for doc_id in ("p1", "p2"):
        name = f"projects/cdp-test/databases/(default)/documents/publications/{doc_id}"
        headers = {**firestore_event_headers(project="cdp-test"), "ce-subject": f"documents/publications/{doc_id}"}
        body = proto_event(None, ports.documents.docs["publications"][doc_id], name=name)
        answer = client.post("/", data=body, headers={**headers, "ce-id": f"e-{doc_id}"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert ports.asked[:3] == ["warehouse", "documents", "secrets"]  # the publishing ports, then the schedule config
    statuses = {k: v["status"] for k, v in ports.documents.docs["publications"].items()}
    assert statuses["p1"]["state"] == "ok" and statuses["p1"]["error"] is None
    assert statuses["p2"]["error"] == 'segment_id: no segment "gone": segments/gone does not exist'
    assert ports.secrets.asked == [("exists", "meta-token")] * 2  # looked for, never read
    audited = ports.warehouse.query("select collection, document_id, action, event_id from audit.config_changes")
    assert sorted(tuple(r.values()) for r in audited) == [
        ("publications", "p1", "created", "e-p1"),
        ("publications", "p2", "created", "e-p2"),
    ]


def test_preferences_serves_the_page_and_one_click_unsubscribe(ports: Ports) -> None:
    ports.warehouse.ensure_tables([table_spec(n) for n in ("raw.consent", "raw.subscription", "refined.identities")])
    client = app_client("preferences")
    assert resolved_signature() == SIGNATURES["preferences"]
    key = bootstrap.settings().preferences.require_key()
    token = seal("test-shop", "email", "a@b.co", key, datetime.now(UTC))
    forged = client.get("/", query_string={"t": token[:-4] + "AAAA", "lang": "en"})
    assert forged.status_code == 403 and "cannot be verified" in forged.get_data(as_text=True)
    assert (
        forged.headers["Referrer-Policy"] == "no-referrer"
        and "default-src 'none'" in forged.headers["Content-Security-Policy"]
    )
    page = client.get("/", query_string={"t": token}, headers={"Accept-Language": "ko-KR"})
    assert page.status_code == 200 and 'id="purpose-marketing">' in page.get_data(as_text=True)
    saved = client.post("/", data={"t": token, "lang": "ko", "purpose": "marketing", "channel": "email"})
    assert saved.status_code == 303 and "saved=1" in saved.headers["Location"]
    again = client.get("/" + saved.headers["Location"])
    assert 'id="purpose-marketing" checked' in again.get_data(as_text=True) and 'id="saved"' in again.get_data(
        as_text=True
    )
    assert client.get("/unsubscribe", query_string={"t": token}).status_code == 200  # a GET changes nothing
    assert client.post("/unsubscribe", query_string={"t": token}, data={}).status_code == 400
    done = client.post("/unsubscribe", query_string={"t": token}, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and done.get_data(as_text=True) == "unsubscribed\n"
    rows = ports.warehouse.query("select subscribed, source from raw.subscription order by effective_at, subscribed")
    assert [(r["subscribed"], r["source"]) for r in rows] == [
        (True, "preference_centre"),
        (False, "one_click_unsubscribe"),
    ]
    # a link naming a delivery the ledger does not hold (sealed by a preview): unsubscribed, no event
    previewed = seal("test-shop", "email", "c@d.co", key, datetime.now(UTC), delivery_id="0" * 32)
    done = client.post("/unsubscribe", query_string={"t": previewed}, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and done.get_data(as_text=True) == "unsubscribed\n"
    assert ports.warehouse.query("select address from raw.subscription where address = 'c@d.co'") == [
        {"address": "c@d.co"}
    ]
    assert ports.warehouse.query("select count(*) as n from audiences.delivery_events") == [{"n": 0}]
    assert client.get("/elsewhere").status_code == 404


def test_twilio_status_takes_a_signed_status_callback_and_refuses_a_forged_one(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    from devstack.fakes.twilio_api import signature

    caplog.set_level(logging.INFO, logger="functions.twilio_status.main")
    client = app_client("twilio_status")
    assert resolved_signature() == SIGNATURES["twilio_status"]
    delivery = "4" * 32  # no delivery of ours: read, counted, nothing recorded
    url = ENV["CDP_TWILIO_STATUS_URL"] + f"?d={delivery}"
    form = {"MessageSid": "SM" + "ab" * 16, "MessageStatus": "delivered", "To": "+821012345678"}
    signed = signature(ENV["CDP_TWILIO_AUTH_TOKEN"], url, form)
    forged = client.post("/?d=" + "5" * 32, data=form, headers={"X-Twilio-Signature": signed})
    assert forged.status_code == 403 and "twilio report recorded" not in caplog.text
    answer = client.post(f"/?d={delivery}", data=form, headers={"X-Twilio-Signature": signed})
    assert answer.status_code == 200 and answer.get_data(as_text=True).endswith("<Response></Response>")
    [recorded] = [r for r in caplog.records if r.getMessage() == "twilio report recorded"]
    assert (recorded.__dict__["events"], recorded.__dict__["unmatched"]) == (0, 1)
    assert client.get("/").status_code == 405
    assert ports.asked == ["settings", "settings", "warehouse"] and ports.bus.published == []


def test_nhn_status_takes_a_webhook_with_its_signature_once_and_refuses_a_forged_one(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="functions.nhn_status.main")
    client = app_client("nhn_status")
    assert resolved_signature() == SIGNATURES["nhn_status"]
    hook = {"requestId": "20260603120000abc", "recipientSeq": 1, "resultCode": "1000",
            "recipientGroupingKey": "6" * 32, "kakaoMessageType": "ALIMTALK_NORMAL"}  # fmt: skip
    body = {"hooksId": "h-1", "event": "MESSAGE_RESULT_UPDATE", "hooks": [hook]}
    forged = client.post("/", json=body, headers={"X-Toast-Webhook-Signature": "guess"})
    assert forged.status_code == 403 and "nhn webhook recorded" not in caplog.text
    signed = {"X-Toast-Webhook-Signature": ENV["CDP_NHN_WEBHOOK_SIGNATURE"]}
    assert client.post("/", json=body, headers=signed).status_code == 200
    assert client.post("/", json=body, headers=signed).status_code == 200
    first, second = [r.__dict__ for r in caplog.records if r.getMessage() == "nhn webhook recorded"]
    assert (first["unmatched"], first["duplicate"], second["duplicate"]) == (1, False, True)
    assert client.post("/", data=b"{", headers=signed).status_code == 400
    assert client.get("/").status_code == 405
    assert ports.bus.published == []


def test_email_feedback_takes_a_complaint_with_its_token_and_refuses_a_forged_one(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.feedback_reports import arf, original_email

    caplog.set_level(logging.INFO, logger="functions.email_feedback.main")
    client = app_client("email_feedback")
    assert resolved_signature() == SIGNATURES["email_feedback"]
    report = arf(original_email(f"<cdp.{'7' * 32}@shop.example>"))  # no delivery of ours: read, counted
    raw = {"Content-Type": "message/rfc822"}
    forged = client.post("/", data=report, headers={**raw, "Authorization": "Bearer guess"})
    assert forged.status_code == 403 and "email feedback recorded" not in caplog.text
    token = {"Authorization": f"Bearer {ENV['CDP_EMAIL_FEEDBACK_TOKEN']}"}
    answer = client.post("/", data={"email": report.decode()}, headers=token)  # SendGrid's form
    assert answer.status_code == 200 and answer.get_data(as_text=True) == "ok: complaint about no message of ours\n"
    [recorded] = [r.__dict__ for r in caplog.records if r.getMessage() == "email feedback recorded"]
    assert (recorded["unmatched"], recorded["recorded"]) == (True, False)
    assert client.post("/", data=b"not a report", headers={**raw, **token}).status_code == 400
    assert client.get("/", headers=token).status_code == 405
    assert ports.asked == ["settings", "settings", "warehouse", "settings"]  # the GET reads nothing
    assert ports.bus.published == [] and ports.warehouse.query("select * from raw.subscription") == []


def test_send_messages_runs_the_tick_and_records_a_missing_campaign(ports: Ports) -> None:
    client = app_client("send_messages")
    assert resolved_signature() == SIGNATURES["send_messages"]
    body = {"job": "send_messages", "campaign_id": "no-such-campaign", "tick": True}
    answer = client.post("/", json=push(json.dumps(body).encode(), job="send_messages"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert ports.asked == ["send_ports"] and ports.bus.published == []  # nothing held, nothing due
    refused = client.post("/", json=push(b'{"job": "send_messages"}', job="send_messages"))
    assert refused.status_code == 200 and ports.asked == ["send_ports"]  # no campaign, no tick: logged


def test_build_report_writes_the_page_and_points_reports_latest_at_it(
    ports: Ports, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from shared.adapters.folder_blobs import FolderBlobs
    from shared.services.report import ReportPorts

    report = ReportPorts(ports.warehouse, ports.documents, FolderBlobs(tmp_path), "salt")
    monkeypatch.setattr(bootstrap, "report_ports", lambda: report)
    client = app_client("build_report")
    assert resolved_signature() == SIGNATURES["build_report"]
    answer = client.post("/", json=push(b'{"job": "build_report"}', job="build_report"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    latest = ports.documents.get("reports", "latest")
    assert latest is not None and latest["run_id"] == "build_report-4242"
    page = Path(latest["location"])
    assert page.parent == tmp_path and page.read_bytes() == (tmp_path / "latest.html").read_bytes()
    assert page.read_text().startswith("<!doctype html>") and latest["bytes"] == page.stat().st_size
    assert ports.documents.get("runs", "build_report-4242")["status"] == "succeeded"  # type: ignore[index]


def test_deliver_acknowledges_a_message_that_is_no_batch_and_sends_nothing(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="functions.deliver.main")
    client = app_client("deliver")
    assert resolved_signature() == SIGNATURES["deliver"]
    answer = client.post("/", json=push(b'{"campaign_id": "c"}'))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [refused] = [r for r in caplog.records if r.getMessage() == "sends message refused"]
    assert "run_id" in refused.__dict__["error"] and ports.asked == []
    batch = {"campaign_id": "c", "run_id": "r", "batch": "b", "delivery_ids": ["6" * 32]}
    done = client.post("/", json=push(json.dumps(batch).encode()))  # names no planned delivery
    assert done.status_code == 200, done.get_data(as_text=True)
    assert ports.asked == ["deliver_ports"] and ports.bus.published == []

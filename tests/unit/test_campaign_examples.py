"""examples/campaigns through validate_config, as Firestore's trigger runs it: the policy, both
templates and both campaigns come out ok, on segments of examples/segments, with the sender and
the 080 opt-out the advertising form needs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shared.consent.vocabulary import Channel
from shared.messaging import files
from shared.messaging.campaigns import parse_policy
from shared.messaging.templates import MAX_LMS_BYTES, Rendered, parse_template, sample_render
from shared.schema import table_spec
from shared.services.campaign_preview import sms_size
from shared.services.messaging_config import handle_messaging_write
from shared.tam.events import DocumentChange
from shared.tam.files import load_file
from tests.builders import new_warehouse
from tests.fakes import FakeDocumentStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "campaigns"
NOW = datetime(2026, 6, 3, 3, tzinfo=UTC)


def test_every_example_is_ok_through_validate_config() -> None:
    warehouse = new_warehouse()
    warehouse.ensure_tables([table_spec("audit.config_changes")])
    documents = FakeDocumentStore()
    for path in sorted((ROOT / "examples" / "segments").glob("*.yaml")):
        segment_id, doc = load_file(path)
        documents.set("segments", segment_id, {k: v for k, v in doc.items() if k != "id"})
    found = [files.read(path) for path in files.expand([EXAMPLES])]
    assert [f.name for f in found] == [
        "messaging/policy",
        "message_templates/vip-grade-notice",
        "message_templates/winback-benefits",
        "campaigns/dormant-winback-sms",
        "campaigns/vip-grade-notice",
    ]

    for item in found:
        new = files.to_store(item, None)
        assert new is not None and "id" not in new
        documents.set(item.collection, item.doc_id, new)
        change = DocumentChange(item.collection, item.doc_id, None, documents.get(item.collection, item.doc_id))
        assert handle_messaging_write(change, warehouse, documents, {"email", "sms"}, NOW) == "ok", item.name

    for item in found:
        stored = documents.get(item.collection, item.doc_id)
        assert stored is not None
        status = stored["status"]
        assert status["state"] == "ok" and status["error"] is None, (item.name, status)
        assert files.to_store(item, stored) is None  # applied again: unchanged, the status kept
    winback = documents.get("campaigns", "dormant-winback-sms")
    assert winback is not None
    assert winback["status"]["message"] == (
        "OK: advertising campaign to segment dormant-members by sms then email, template winback-benefits"
    )


def test_the_winback_is_the_seeds_campaign_and_its_sms_fits_with_the_form() -> None:
    _, campaign = load_file(EXAMPLES / "dormant-winback-sms.yaml")
    _, segment = load_file(ROOT / "examples" / "segments" / f"{campaign['segment_id']}.yaml")
    assert campaign["kind"] == "advertising" and campaign["channels"][0] == "sms"
    assert {"segmentlet": "recency_days", "op": "gte", "value": 60} in segment["rules"]["all"]
    assert {"segmentlet": "is_member", "op": "eq", "value": True} in segment["rules"]["all"]

    policy = parse_policy(load_file(EXAMPLES / "policy.yaml")[1])
    assert policy.cap is not None and (policy.cap.max, policy.cap.days) == (2, 7)
    assert policy.form is not None and policy.form.opt_out_number == "080-123-4567"
    assert policy.quiet_hours is not None and str(policy.quiet_hours.window) == "21:00-09:00 Asia/Seoul"
    template = parse_template("winback-benefits", load_file(EXAMPLES / "templates" / "winback-benefits.yaml")[1])
    sms = sample_render(template, Channel.SMS, policy.form)
    assert isinstance(sms, Rendered)
    text = sms.text
    lines = text.splitlines()
    assert lines[0] == "(광고) 데모상점 02-1234-5678" and lines[-1] == "무료수신거부 080-123-4567"
    size, kind = sms_size(text)
    assert kind == "LMS" and size <= MAX_LMS_BYTES  # a 150-character sample link makes it an LMS


def test_the_informational_example_is_an_email_with_subject_html_and_text() -> None:
    _, campaign = load_file(EXAMPLES / "vip-grade-notice.yaml")
    assert campaign["kind"] == "informational" and campaign["channels"] == ["email"]
    template = parse_template("vip-grade-notice", load_file(EXAMPLES / "templates" / "vip-grade-notice.yaml")[1])
    assert set(template.parts[Channel.EMAIL]) == {"subject", "html", "text"}
    made = sample_render(template, Channel.EMAIL)
    assert isinstance(made, Rendered) and made.subject == "[데모상점] 길동님의 회원 등급 안내"
    assert "누적 구매 금액: 152,000원 (주문 3회)" in made.text and "(광고)" not in made.text
    assert made.html is not None and "<strong>VIP</strong>" in made.html

"""Ledger rows: the vocabulary, subject and address spelling, deterministic ids, bad input refused
whole with its field, and the recording services writing through a real DuckDB warehouse."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.consent.ledger import Proof, consent_rows, normalize_address, normalize_subject, subscription_row
from shared.consent.vocabulary import Channel, ConsentError, Purpose, SubjectType, parse
from shared.ports import InsertResult, RowError
from shared.services import consent as service
from tests.builders import SITE, new_warehouse

AT = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)


def rows(**overrides: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {
        "site_id": SITE,
        "subject_type": "email",
        "subject_value": " Alice@Example.COM ",
        "decisions": {"marketing": True, "night_marketing": False},
        "effective_at": AT,
        "recorded_at": AT + timedelta(seconds=2),
        "source": "preference_centre",
    }
    args |= overrides
    return consent_rows(**args)


def test_unknown_values_name_their_field_and_the_allowed_ones() -> None:
    with pytest.raises(ConsentError) as purpose:
        parse(Purpose, "marketting", "purposes.marketting")
    assert purpose.value.field == "purposes.marketting"
    assert "unknown purpose 'marketting'; expected one of analytics, ad_user_data" in str(purpose.value)
    with pytest.raises(ConsentError, match=r"^channel: unknown channel 'kakao'; expected one of email, sms"):
        normalize_address("kakao", "x")
    with pytest.raises(ConsentError, match="unknown subject type 'cookie'") as subject:
        normalize_subject("cookie", "x")
    assert subject.value.field == "subject_type"
    assert parse(Channel, "sms", "channel") is Channel.SMS
    assert parse(Channel, Channel.SMS, "channel") is Channel.SMS


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("email", "  Alice@Example.COM ", "alice@example.com"),
        ("phone", "010-1234-5678", "+821012345678"),
        ("phone", "+82 10 1234 5678", "+821012345678"),
        ("visitor", "v-1 ", "v-1 "),  # as collected: refined.identities keeps visitor ids unchanged
        ("member", "M-Alice", "M-Alice"),
    ],
)
def test_subjects_are_spelt_as_identity_nodes(kind: str, value: str, expected: str) -> None:
    assert normalize_subject(kind, value) == (SubjectType(kind), expected)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("email", "alice", "subject_value: is not an e-mail address"),
        ("phone", "call me", "subject_value: is not a phone number"),
        ("member", "undefined", "subject_value: 'undefined' identifies nobody"),
        ("visitor", "000", "subject_value: '000' identifies nobody"),
        ("member", "", "subject_value: must be a non-empty string"),
        ("member", 42, "subject_value: must be a non-empty string"),
        ("member", "m" * 257, "subject_value: is 257 characters; at most 256"),
    ],
)
def test_bad_subjects(kind: str, value: object, message: str) -> None:
    with pytest.raises(ConsentError, match=message):
        normalize_subject(kind, value)


def test_addresses_per_channel() -> None:
    assert normalize_address("email", "A@B.co") == (Channel.EMAIL, "a@b.co")
    assert normalize_address("alimtalk", "01012345678") == (Channel.ALIMTALK, "+821012345678")
    endpoint = "https://fcm.googleapis.com/fcm/send/abc"
    assert normalize_address("webpush", f" {endpoint} ") == (Channel.WEBPUSH, endpoint)
    with pytest.raises(ConsentError, match="address: a push endpoint must be an https URL"):
        normalize_address("webpush", "http://push.example/abc")
    with pytest.raises(ConsentError, match="address: is not a phone number"):
        normalize_address("sms", "alice@example.com")


def test_one_row_per_purpose_with_proof_and_normalised_subject() -> None:
    proof = Proof(
        "v3", "https://shop.example/join", "iphash", "req-9", "CPXxRfAPXxRfAAfKABENB", {"ad_storage": "denied"}
    )
    built = rows(proof=proof, visitor_id="v1")
    assert [(r["purpose"], r["granted"]) for r in built] == [("marketing", True), ("night_marketing", False)]
    first = built[0]
    assert first["subject_type"] == "email" and first["subject_value"] == "alice@example.com"
    assert first["effective_at"] == "2026-05-01T03:00:00.000000+00:00"
    assert first["recorded_at"] == "2026-05-01T03:00:02.000000+00:00"
    assert first["event_date"] == "2026-05-01"
    assert (first["wording_version"], first["page_url"], first["ip_hash"], first["request_id"]) == (
        "v3",
        "https://shop.example/join",
        "iphash",
        "req-9",
    )
    assert first["tcf_string"] == "CPXxRfAPXxRfAAfKABENB" and first["consent_mode"] == {"ad_storage": "denied"}
    assert first["visitor_id"] == "v1" and first["source"] == "preference_centre"
    assert len({r["consent_event_id"] for r in built}) == 2


def test_ids_hash_the_decision_not_when_it_was_stored() -> None:
    first = rows()[0]["consent_event_id"]
    assert rows(recorded_at=AT + timedelta(hours=5), subject_value="alice@example.com")[0]["consent_event_id"] == first
    assert rows(effective_at=AT.astimezone(datetime.now().astimezone().tzinfo))[0]["consent_event_id"] == first
    assert rows(source="import")[0]["consent_event_id"] != first
    assert rows(effective_at=AT + timedelta(microseconds=1))[0]["consent_event_id"] != first
    assert rows(decisions={"marketing": False})[0]["consent_event_id"] != first
    assert rows(site_id="other")[0]["consent_event_id"] != first


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"decisions": {"marketing": True, "newsletter": True}}, "purposes.newsletter", "unknown purpose"),
        ({"decisions": {"marketing": "yes"}}, "purposes.marketing", "must be true (granted) or false"),
        ({"decisions": {}}, "purposes", "at least one purpose"),
        ({"source": "crm"}, "source", "unknown consent source 'crm'"),
        ({"effective_at": datetime(2026, 5, 1)}, "effective_at", "timezone-aware"),
        ({"effective_at": AT + timedelta(days=2)}, "effective_at", "more than 1 day after it was recorded"),
        ({"site_id": ""}, "site_id", "non-empty"),
        ({"visitor_id": "null"}, "visitor_id", "identifies nobody"),
        ({"proof": Proof(consent_mode={"ad_storage": "maybe"})}, "proof.consent_mode", "'granted' or 'denied'"),
        ({"proof": Proof(page_url="https://x/" + "p" * 3000)}, "proof.page_url", "at most 2048"),
    ],
)
def test_bad_consent_input_names_the_field(overrides: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConsentError, match=re.escape(message)) as error:
        rows(**overrides)
    assert error.value.field == field


def test_subscription_rows() -> None:
    row = subscription_row(
        SITE, "webpush", "https://push.example/e1", True, AT, AT, "tracker",
        visitor_id="v1", push_keys={"p256dh": "k", "auth": "a"}, proof=Proof(wording_version="push-1"),
    )  # fmt: skip
    assert (
        row["channel"] == "webpush" and row["subscribed"] is True and row["push_keys"] == {"p256dh": "k", "auth": "a"}
    )
    assert row["visitor_id"] == "v1" and row["wording_version"] == "push-1" and row["reason"] is None
    again = subscription_row(SITE, "webpush", "https://push.example/e1", True, AT, AT + timedelta(hours=1), "tracker")
    assert again["subscription_event_id"] == row["subscription_event_id"]
    with pytest.raises(ConsentError, match="source: sms_stop can only unsubscribe"):
        subscription_row(SITE, "sms", "010-1111-2222", True, AT, AT, "sms_stop")
    with pytest.raises(ConsentError, match="push_keys: only a webpush subscription"):
        subscription_row(SITE, "email", "a@b.co", True, AT, AT, "form", push_keys={"p256dh": "k", "auth": "a"})
    with pytest.raises(ConsentError, match="push_keys: must be exactly p256dh and auth"):
        subscription_row(SITE, "webpush", "https://push.example/e1", True, AT, AT, "tracker", push_keys={"auth": "a"})
    with pytest.raises(ConsentError, match="proof: TCF strings and Consent Mode values belong to consent"):
        subscription_row(SITE, "email", "a@b.co", True, AT, AT, "form", proof=Proof(tcf_string="CP"))
    with pytest.raises(ConsentError, match="unknown subscription source 'stop'"):
        subscription_row(SITE, "sms", "010-1111-2222", False, AT, AT, "stop")


def ledger(warehouse: Any, table: str) -> list[dict[str, Any]]:
    return warehouse.query(f"select * from {table} order by 1")  # type: ignore[no-any-return]


def test_record_consent_writes_all_rows_or_none() -> None:
    warehouse = new_warehouse()
    ids = service.record_consent(
        warehouse, SITE, "phone", "010-1234-5678", {"marketing": True, "ad_user_data": False}, AT, "import",
        recorded_at=AT,
    )  # fmt: skip
    stored = ledger(warehouse, "raw.consent")
    assert sorted(r["consent_event_id"] for r in stored) == sorted(ids)
    assert {(r["subject_value"], r["purpose"], r["granted"]) for r in stored} == {
        ("+821012345678", "marketing", True),
        ("+821012345678", "ad_user_data", False),
    }
    with pytest.raises(ConsentError, match="purposes.sms"):
        service.record_consent(
            warehouse, SITE, "phone", "010-9999-0000", {"marketing": True, "sms": True}, AT, "import", recorded_at=AT
        )
    with pytest.raises(ConsentError, match="source: re-confirmation notices are recorded by record_reconfirmation"):
        service.record_consent(warehouse, SITE, "phone", "010-9999-0000", {"marketing": True}, AT, "reconfirmation",
                               recorded_at=AT)  # fmt: skip
    assert len(ledger(warehouse, "raw.consent")) == 2  # nothing of the bad calls was written


def test_a_repeated_decision_changes_no_state() -> None:
    warehouse = new_warehouse()
    for _ in range(2):
        service.record_consent(warehouse, SITE, "member", "m1", {"marketing": True}, AT, "tracker", recorded_at=AT)
    service.record_subscription(warehouse, SITE, "email", "a@b.co", True, AT, "form", recorded_at=AT)
    service.record_subscription(warehouse, SITE, "email", "A@B.co", True, AT, "form", recorded_at=AT)
    states = service.consent_states(warehouse, SITE, AT)
    assert [(s["subject_value"], s["purpose"], s["granted"]) for s in states] == [("m1", "marketing", True)]
    subscriptions = service.subscription_states(warehouse, SITE, AT)
    assert [(s["address"], s["subscribed"]) for s in subscriptions] == [("a@b.co", True)]


def test_record_opt_out_from_provider_signals() -> None:
    warehouse = new_warehouse()
    service.record_subscription(warehouse, SITE, "sms", "010-1234-5678", True, AT, "form", recorded_at=AT)
    later = AT + timedelta(days=3)
    first = service.record_opt_out(
        warehouse, SITE, "sms", "+82 10-1234-5678", "provider_opt_out", "twilio 21610", later
    )
    assert service.record_opt_out(warehouse, SITE, "sms", "01012345678", "provider_opt_out", "twilio 21610", later) == (
        first
    )  # a redelivered webhook
    endpoint = "https://push.example/e1"
    service.record_opt_out(warehouse, SITE, "webpush", endpoint, "push_gone", "410", later, request_id="push-run-1")
    states = {(s["channel"], s["address"]): s for s in service.subscription_states(warehouse, SITE, later)}
    assert states["sms", "+821012345678"]["subscribed"] is False
    assert states["sms", "+821012345678"]["reason"] == "twilio 21610"
    assert states["sms", "+821012345678"]["source"] == "provider_opt_out"
    assert states["webpush", endpoint]["subscribed"] is False and states["webpush", endpoint]["reason"] == "410"
    opt_outs = warehouse.query("select count(distinct subscription_event_id) as n from raw.subscription")
    assert opt_outs == [{"n": 3}]
    with pytest.raises(ConsentError, match="source: form is not a provider opt-out; expected one of bounce"):
        service.record_opt_out(warehouse, SITE, "email", "a@b.co", "form", None, later)
    with pytest.raises(ConsentError, match="address: is not an e-mail address"):
        service.record_opt_out(warehouse, SITE, "email", "+821012345678", "bounce", "550 5.1.1", later)


class RefusingWarehouse:
    """A warehouse refusing every row for its content, as BigQuery's insertAll refuses rows one by one."""

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str]) -> InsertResult:
        return InsertResult(errors=[RowError(0, "invalid: no such field")])


def test_a_refused_row_is_an_error_not_a_silent_loss() -> None:
    with pytest.raises(
        service.LedgerWriteError, match=r"raw.consent refused 1 of 1 rows: row 0: invalid: no such field"
    ):
        service.record_consent(RefusingWarehouse(), SITE, "member", "m1", {"marketing": True}, AT, "api",  # type: ignore[arg-type]
                               recorded_at=AT)  # fmt: skip


def test_placeholders_are_the_ones_identity_resolution_blocks() -> None:
    from shared.consent import ledger
    from shared.services import refine

    assert set(refine.BLOCKED_IDS) == ledger.PLACEHOLDER_IDS
    assert ledger.PLACEHOLDER_PATTERN == refine.BLOCKED_PATTERN


def test_the_ledger_keeps_sqlglot_out_of_collects_cold_start() -> None:
    code = "import sys, shared.consent.ledger; print('sqlglot' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert found.stdout.strip() == "False"

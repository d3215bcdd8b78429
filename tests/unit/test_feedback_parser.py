"""Reading complaint reports: ARF messages built with the standard library (tests/feedback_reports.py)
around e-mails whose Message-ID SmtpEmail wrote, and the Message-ID read back to its delivery."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from shared.adapters.smtp_email import SmtpEmail, delivery_id_of
from shared.messaging.feedback import Feedback, parse_feedback
from shared.messaging.ledger import delivery_id
from shared.services.delivery_events import ReportError
from tests.feedback_reports import arf, original_email

DELIVERY = delivery_id("winback-email", "run-1", "c_minji", "email")
OURS = SmtpEmail("127.0.0.1", 25, "새봄마켓 <news@shop.example>", security="none").message_id(DELIVERY)


def refused(raw: bytes) -> ReportError:
    with pytest.raises(ReportError) as caught:
        parse_feedback(raw)
    return caught.value


# --- the Message-ID, both ways -------------------------------------------------------------------


def test_a_message_id_of_ours_reads_back_to_its_delivery() -> None:
    assert f"<cdp.{DELIVERY}@shop.example>" == OURS
    assert delivery_id_of(OURS) == DELIVERY
    assert delivery_id_of(f"  {OURS}\r\n") == DELIVERY  # as a header may carry it
    assert delivery_id_of(f"<cdp.{DELIVERY}@news.other-sender.example>") == DELIVERY  # a sender changed since
    other = SmtpEmail("127.0.0.1", 25, "news@shop.example", security="none")
    assert delivery_id_of(other.message_id("d-0001")) == "d-0001"


@pytest.mark.parametrize(
    "message_id",
    [
        "<CAF3x9Yh2bQ=abc@mail.gmail.com>",  # another sender's
        f"<{DELIVERY}@shop.example>",  # no cdp. prefix
        f"cdp.{DELIVERY}@shop.example",  # no angle brackets
        f"<cdp.{DELIVERY}>",  # no domain
        "<cdp.a b@shop.example>",  # not a token
        f"<cdp.{DELIVERY}@shop.example><x@y>",
        "",
    ],
)
def test_any_other_message_id_names_no_delivery(message_id: str) -> None:
    assert delivery_id_of(message_id) is None


# --- reports that are read -----------------------------------------------------------------------


def test_an_abuse_report_with_the_recipient() -> None:
    feedback = parse_feedback(arf(original_email(OURS)))

    assert feedback == Feedback(
        feedback_type="abuse",
        message_id=OURS,
        arrival=datetime(2026, 6, 4, 0, 15, tzinfo=UTC),
        recipient="minji@example.com",
        user_agent="FBLReporter/2.1",
    )
    assert feedback.complaint and feedback.delivery_id == DELIVERY


def test_a_report_with_the_recipient_redacted_still_names_the_delivery() -> None:
    raw = arf(original_email(OURS), redact=True)
    assert b"minji@example.com" not in raw

    feedback = parse_feedback(raw)

    assert (feedback.recipient, feedback.message_id, feedback.delivery_id) == (None, OURS, DELIVERY)
    assert feedback.complaint


def test_a_report_carrying_only_the_original_headers() -> None:
    raw = arf(original_email(OURS), headers_only=True, arrival=None, feedback_type="Fraud")
    assert b"text/rfc822-headers" in raw and "혜택을".encode() not in raw

    feedback = parse_feedback(raw)

    assert (feedback.feedback_type, feedback.message_id, feedback.arrival) == ("fraud", OURS, None)
    assert feedback.complaint and feedback.delivery_id == DELIVERY


def test_a_report_about_another_senders_message_is_read_and_names_no_delivery() -> None:
    feedback = parse_feedback(arf(original_email("<CAF3x9Yh2bQ=abc@mail.gmail.com>")))

    assert feedback.complaint and feedback.message_id == "<CAF3x9Yh2bQ=abc@mail.gmail.com>"
    assert feedback.delivery_id is None


@pytest.mark.parametrize("kind", ["not-spam", "virus", "auth-failure", "other", "opt-out"])
def test_feedback_that_is_no_complaint_is_read_as_such(kind: str) -> None:
    feedback = parse_feedback(arf(original_email(OURS), feedback_type=kind))

    assert (feedback.feedback_type, feedback.complaint, feedback.delivery_id) == (kind, False, DELIVERY)


def test_a_not_spam_report_without_the_original_is_still_read() -> None:
    report = MIMEMultipart("report", report_type="feedback-report")
    report.attach(MIMEText("not spam"))
    report.attach(_feedback_part("Feedback-Type: not-spam\r\nUser-Agent: X/1\r\nVersion: 1\r\n"))

    feedback = parse_feedback(report.as_bytes())

    assert (feedback.feedback_type, feedback.message_id, feedback.complaint) == ("not-spam", None, False)


# --- reports that are refused, with the field at fault -------------------------------------------


def test_a_message_that_is_no_report_is_refused() -> None:
    plain = EmailMessage()
    plain["Subject"] = "Welcome to the feedback loop"
    plain.set_content("Your enrolment is confirmed.")

    error = refused(plain.as_bytes())

    assert error.field == "body" and "text/plain, not multipart/report" in str(error)
    assert refused(b"").field == "body"


def test_a_bounce_is_no_feedback_report() -> None:
    dsn = MIMEMultipart("report", report_type="delivery-status")
    dsn.attach(MIMEText("Delivery failed"))

    error = refused(dsn.as_bytes())

    assert error.field == "body" and "'delivery-status'" in str(error)


def test_a_message_forwarded_as_an_attachment_is_refused_clearly() -> None:
    forwarded = EmailMessage()
    forwarded["Subject"] = "Fwd: (광고) 새봄마켓 회원 혜택 안내"
    forwarded.set_content("spam!")
    forwarded.add_attachment(original_email(OURS), maintype="message", subtype="rfc822")
    assert forwarded.get_content_type() == "multipart/mixed"

    error = refused(forwarded.as_bytes())

    assert error.field == "body" and "a forwarded message, not an ARF report" in str(error)


def test_a_complaint_without_the_original_message_id_is_refused() -> None:
    original = original_email(OURS).replace(f"Message-ID: {OURS}\r\n".encode(), b"")
    assert b"Message-ID" not in original

    error = refused(arf(original))

    assert error.field == "original.Message-ID" and "missing" in str(error)


def test_a_complaint_without_the_original_is_refused() -> None:
    report = MIMEMultipart("report", report_type="feedback-report")
    report.attach(MIMEText("abuse"))
    report.attach(_feedback_part("Feedback-Type: abuse\r\nUser-Agent: X/1\r\nVersion: 1\r\n"))

    assert refused(report.as_bytes()).field == "original"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ((b"Feedback-Type: abuse\r\n", b""), "feedback-report.Feedback-Type", "missing"),
        ((b"Feedback-Type: abuse", b"Feedback-Type: spam report"), "feedback-report.Feedback-Type", "not a feedback"),
        ((b"Arrival-Date: Thu, 04 Jun", b"Arrival-Date: yesterday"), "feedback-report.Arrival-Date", "not an RFC"),
        ((b"Content-Type: message/feedback-report", b"Content-Type: text/plain"), "feedback-report", "second part"),
        ((b"Content-Type: message/rfc822", b"Content-Type: application/pdf"), "original", "application/pdf"),
        ((f"Message-ID: {OURS}".encode(), b"Message-ID: cdp-without-brackets"), "original.Message-ID", "not a Message"),
    ],
)
def test_an_unreadable_part_is_named(change: tuple[bytes, bytes], field: str, says: str) -> None:
    raw = arf(original_email(OURS))
    assert raw.count(change[0]) == 1
    error = refused(raw.replace(*change))

    assert error.field == field and says in str(error)


def test_a_field_given_twice_is_refused() -> None:
    raw = arf(original_email(OURS), fields="Feedback-Type: not-spam\r\n")

    error = refused(raw)

    assert error.field == "feedback-report.Feedback-Type" and "appears 2 times" in str(error)


def _feedback_part(fields: str) -> MIMEText:
    part = MIMEText(fields)
    part.replace_header("Content-Type", "message/feedback-report")
    return part

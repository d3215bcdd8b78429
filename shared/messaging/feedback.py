"""Complaint reports from mailbox providers' feedback loops: one ARF report (RFC 5965) read from raw bytes.

A provider that runs a feedback loop mails a report each time a recipient marks one of our messages
as spam: `multipart/report; report-type=feedback-report` with a human-readable first part, a
`message/feedback-report` part of header-style fields (Feedback-Type, User-Agent, Version, and
optionally Original-Rcpt-To, Arrival-Date, Reported-Domain...) and the original message or its
header block (`message/rfc822` or `text/rfc822-headers`). Providers often redact the recipient
(Yahoo, Microsoft), so a report is traced by the original's Message-ID, which SmtpEmail derives
from the delivery id (`delivery_id_of` reads it back).

Only `abuse` and `fraud` are complaints; `not-spam`, `virus`, `auth-failure`, `other` and any type
registered later are read and acknowledged, nothing recorded. User-Agent and Version, which the RFC
requires, are not needed to act on a report and some generators leave them out, so their absence is
no error. A message that is no ARF report is refused (ReportError with the field path): a bounce
(`report-type=delivery-status`), and a message forwarded as an attachment, which some providers
send instead: it says neither which feedback it is nor that the recipient asked anything, and a
person forwarding a newsletter to a friend would read the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from typing import Final

from shared.adapters.smtp_email import delivery_id_of
from shared.services.delivery_events import ReportError

COMPLAINT_TYPES: Final = frozenset({"abuse", "fraud"})
"""The Feedback-Type values that mean the recipient reported the message as spam or a fraud."""
ORIGINAL_TYPES: Final = frozenset({"message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers"})
"""What the third part may be: the original message or its header block (the global forms: RFC 6533)."""

_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_MESSAGE_ID = re.compile(r"^<[^<>\s]+>$")


@dataclass(frozen=True)
class Feedback:
    """What one report says, and what we act on."""

    feedback_type: str  # lower case: abuse, fraud, not-spam, virus, auth-failure, other, ...
    message_id: str | None  # the original's Message-ID, "<...>"; None only in a report that is no complaint
    arrival: datetime | None = None  # Arrival-Date: when the provider received the original
    recipient: str | None = None  # Original-Rcpt-To, unless the provider redacted it
    user_agent: str | None = None  # the generator of the report

    @property
    def complaint(self) -> bool:
        return self.feedback_type in COMPLAINT_TYPES

    @property
    def delivery_id(self) -> str | None:
        """Our delivery the original was, or None when the Message-ID is not one of ours."""
        return delivery_id_of(self.message_id) if self.message_id is not None else None


def parse_feedback(raw: bytes) -> Feedback:
    """One ARF report from the bytes of the message that carried it, or ReportError naming what is
    unreadable: `body`, `feedback-report`, `feedback-report.<field>`, `original`, `original.Message-ID`."""
    report = message_from_bytes(raw, policy=policy.default)
    parts = _report_parts(report)
    if len(parts) < 2 or parts[1].get_content_type() != "message/feedback-report":
        raise ReportError("feedback-report", "the second part of an ARF report must be message/feedback-report")
    fields = _header_block(parts[1])
    kind = _one(fields, "Feedback-Type", "feedback-report")
    if kind is None:
        raise ReportError("feedback-report.Feedback-Type", "missing")
    kind = kind.lower()
    if not _TYPE.match(kind):
        raise ReportError("feedback-report.Feedback-Type", f"{kind[:40]!r} is not a feedback type")
    message_id = _message_id(parts[2]) if len(parts) > 2 else None
    if message_id is None and kind in COMPLAINT_TYPES:
        if len(parts) < 3:
            raise ReportError("original", "a complaint must carry the original message or its headers (a third part)")
        raise ReportError("original.Message-ID", "missing: a complaint is traced to its message by the Message-ID")
    return Feedback(
        feedback_type=kind,
        message_id=message_id,
        arrival=_arrival(_one(fields, "Arrival-Date", "feedback-report")),
        recipient=_recipient(fields),
        user_agent=_one(fields, "User-Agent", "feedback-report"),
    )


def _report_parts(report: Message) -> list[Message]:
    """The parts of a feedback report; ReportError("body") for any other message, saying what it is."""
    content_type = report.get_content_type()
    report_type = str(report.get_param("report-type", "", header="content-type") or "").lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        payload = report.get_payload()
        assert isinstance(payload, list)  # a multipart's payload is its parts
        return [part for part in payload if isinstance(part, Message)]
    if content_type == "multipart/report":
        raise ReportError("body", f"report-type {report_type[:40] or 'missing'!r}: not a feedback report (RFC 5965)")
    if report.is_multipart() and any(p.get_content_type() in ORIGINAL_TYPES for p in report.walk()):
        raise ReportError("body", "a forwarded message, not an ARF report (RFC 5965): only feedback reports are read")
    raise ReportError("body", f"{content_type}, not multipart/report; report-type=feedback-report (RFC 5965)")


def _header_block(part: Message) -> Message:
    """The header fields a part carries: a message/* body the parser read as a message, or a text
    body (text/rfc822-headers, message/global-headers) read as one header block."""
    payload = part.get_payload()
    if isinstance(payload, list):
        if not payload:
            raise ReportError("original", "an empty message part")
        block = payload[0]
        assert isinstance(block, Message)
        return block
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)  # a non-multipart part decodes to bytes
    return BytesHeaderParser(policy=policy.default).parsebytes(body)


def _one(block: Message, name: str, path: str) -> str | None:
    """A field that may appear once, stripped; None when absent or blank."""
    values = block.get_all(name) or []
    if len(values) > 1:
        raise ReportError(f"{path}.{name}", f"appears {len(values)} times")
    try:
        value = str(values[0]).strip() if values else ""
    except Exception:  # the email package raises several types on a broken structured header
        raise ReportError(f"{path}.{name}", "unreadable") from None
    return value or None


def _message_id(part: Message) -> str | None:
    if part.get_content_type() not in ORIGINAL_TYPES:
        allowed = " or ".join(sorted(ORIGINAL_TYPES))
        raise ReportError("original", f"{part.get_content_type()}, expected {allowed}")
    value = _one(_header_block(part), "Message-ID", "original")
    if value is not None and not _MESSAGE_ID.match(value):
        raise ReportError("original.Message-ID", f"{value[:80]!r} is not a Message-ID")
    return value


def _arrival(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise ReportError("feedback-report.Arrival-Date", f"{value[:40]!r} is not an RFC 5322 date") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # "-0000": a time in UTC, zone unknown


def _recipient(block: Message) -> str | None:
    """The first Original-Rcpt-To (one per recipient may be given), without angle brackets."""
    values = block.get_all("Original-Rcpt-To") or []
    first = str(values[0]).strip().strip("<>").strip() if values else ""
    return first or None

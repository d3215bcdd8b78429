"""A mailbox provider's feedback loop, for the demo and the tests: the complaint report (ARF, RFC
5965) a provider mails back when a recipient marks one of our messages as spam, and its forwarding
to `email_feedback` as the relay's inbound-mail webhook does (HTTP Basic, the raw message as the body).

`arf(original)` wraps the bytes of a message we sent in a multipart/report: a human-readable part,
the message/feedback-report fields, and the original whole (message/rfc822) or only its header
block (text/rfc822-headers, as providers that strip bodies send it). `redact` replaces the
recipient in the original's To, as Yahoo and Microsoft do, and Original-Rcpt-To is left out then.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import requests

ARRIVAL = "Thu, 04 Jun 2026 09:15:00 +0900"
FORWARDER = "fbl"  # the HTTP Basic user name the forwarder sends (the password is the token)


def arf(
    original: bytes,
    *,
    feedback_type: str = "abuse",
    rcpt_to: str | None = "minji@example.com",
    arrival: str | None = ARRIVAL,
    headers_only: bool = False,
    redact: bool = False,
    fields: str = "",
) -> bytes:
    """The report's bytes as they reach the feedback address; `fields` adds raw feedback lines."""
    if redact:
        original = re.sub(rb"(?m)^To: [^\r\n]*", b"To: redacted@mail.example", original)
        rcpt_to = None
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "Feedback Loop <feedback@fbl.mail.example>"
    report["To"] = "fbl@shop.example"
    report["Subject"] = "Email Feedback Report for IP 203.0.113.7"
    report["Date"] = ARRIVAL
    report.attach(MIMEText("This is an email abuse report for an email message received from IP 203.0.113.7.\r\n"))
    lines = [f"Feedback-Type: {feedback_type}", "User-Agent: FBLReporter/2.1", "Version: 1"]
    lines += [f"Original-Rcpt-To: {rcpt_to}"] * (rcpt_to is not None)
    lines += [f"Arrival-Date: {arrival}"] * (arrival is not None)
    lines += ["Reported-Domain: shop.example", "Source-IP: 203.0.113.7"]
    part = MIMEBase("message", "feedback-report")
    part.set_payload("\r\n".join(lines) + "\r\n" + fields)
    report.attach(part)
    if headers_only:
        block = original.split(b"\r\n\r\n", 1)[0].decode("ascii") + "\r\n"
        report.attach(MIMEText(block, "rfc822-headers", "us-ascii"))
    else:
        report.attach(MIMEMessage(message_from_bytes(original, policy=policy.SMTP)))
    return report.as_bytes(policy=policy.SMTP)


def forward(url: str, token: str, report: bytes, timeout: float = 10.0) -> int:
    """POST a report to `email_feedback` as an inbound-mail webhook forwards it; the answer's status."""
    answer = requests.post(
        url, data=report, auth=(FORWARDER, token), headers={"Content-Type": "message/rfc822"}, timeout=timeout
    )
    return answer.status_code

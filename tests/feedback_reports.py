"""Complaint reports for the tests: `arf` is the fake feedback loop's (devstack/fakes/feedback_loop.py);
`original_email` a small message of ours for it to wrap."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage

from devstack.fakes.feedback_loop import ARRIVAL, arf

__all__ = ["ARRIVAL", "arf", "original_email"]


def original_email(message_id: str, to: str = "minji@example.com") -> bytes:
    """A small message as SmtpEmail writes one (From, To, Subject, Date, Message-ID, text)."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "새봄마켓 <news@shop.example>"
    message["To"] = to
    message["Subject"] = "(광고) 새봄마켓 회원 혜택 안내"
    message["Date"] = "Wed, 03 Jun 2026 12:00:00 +0900"
    message["Message-ID"] = message_id
    message.set_content("(광고) 혜택을 확인하세요.\n수신거부: https://prefs.shop.example/")
    return message.as_bytes()

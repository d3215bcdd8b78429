"""What a provider's report means: typed delivery events, and opt-out signals for the consent ledger.

Pure functions over what arrived, no ports: the Twilio status webhook (functions/twilio_status)
calls `twilio_report` once the request's signature is checked, and `deliver` calls `refusal_report`
when a channel refuses a send. The caller stores the events in the delivery ledger and hands each
OptOutSignal to shared.services.consent.record_opt_out (its fields are that function's arguments).

Opt-outs: an inbound STOP (Twilio's default keywords, or OptOutType=STOP under Advanced Opt-Out)
and error 21610 on a message (the person had replied STOP) unsubscribe the number; a hard bounce of
an e-mail (5.1.1 no such user, 5.1.2 no such domain, 5.1.3 bad address, 5.1.10 null MX, 5.2.1
mailbox disabled) unsubscribes the address as `bounce`, and a recipient's complaint through a
feedback loop (shared/services/complaints.py) as `complaint`. Policy refusals (5.7.x), soft
failures and SMS carrier errors (30xxx) say nothing about the person's wishes and are events only.
An inbound START is no consent: a marketing grant needs its proof (docs/consent.md), so it is not a
signal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from shared.consent.vocabulary import Channel, SubscriptionSource
from shared.ports.channels import EMAIL, SMS, Message, OptedOut, Rejected

EventKind = Literal["sent", "delivered", "undelivered", "failed", "bounced", "canceled", "complained"]

DELIVERY_PARAM: Final = "d"  # the StatusCallback query parameter carrying our delivery id
TWILIO_UNSUBSCRIBED: Final = "21610"
STOP_KEYWORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
# Twilio's MessageStatus values -> our event; None: a step on the way, no event.
TWILIO_STATUSES: Final[Mapping[str, EventKind | None]] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "partially_delivered": None,
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "canceled",
}
INBOUND_STATUSES: Final = frozenset({"receiving", "received"})
HARD_BOUNCE: Final = re.compile(r"^5[0-9]{2} 5\.(1\.(1|2|3|10)|2\.1)$")

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")


@dataclass(frozen=True)
class DeliveryEvent:
    """One step of one delivery, as a provider reported it."""

    delivery_id: str | None  # ours (the StatusCallback's `d`); None when a report lacks it
    channel: str
    kind: EventKind
    occurred_at: datetime  # when we received the report: Twilio's callbacks carry no time
    provider_id: str | None = None  # Twilio's MessageSid, an e-mail's Message-ID
    provider_status: str | None = None  # as the provider said it (MessageStatus, the SMTP reply code)
    code: str | None = None  # the provider's error code (Twilio ErrorCode, "550 5.1.1")


@dataclass(frozen=True)
class OptOutSignal:
    """An unsubscribe the provider reported: the arguments of consent.record_opt_out."""

    channel: Channel
    address: str  # E.164 for SMS, the address for e-mail
    source: SubscriptionSource
    reason: str  # the provider's code or keyword, kept as the ledger row's reason
    effective_at: datetime
    delivery_id: str | None = None
    request_id: str | None = None  # the provider's id of the report (a MessageSid)


@dataclass(frozen=True)
class Report:
    events: tuple[DeliveryEvent, ...] = ()
    opt_outs: tuple[OptOutSignal, ...] = ()


class ReportError(ValueError):
    """A signed report we cannot read: `field` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def twilio_report(params: Mapping[str, str], delivery_id: str | None, received_at: datetime) -> Report:
    """One Twilio webhook request: a message status callback, or an incoming message (SmsStatus
    received) when the Messaging Service's inbound URL points here too."""
    sid = params.get("MessageSid", "")
    if not _SID.match(sid):
        raise ReportError("MessageSid", f"{sid[:40]!r} is not a message SID")
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if status in INBOUND_STATUSES:
        return _inbound(params, sid, received_at)
    if status not in TWILIO_STATUSES:
        raise ReportError("MessageStatus", f"unknown status {status[:40]!r}")
    kind = TWILIO_STATUSES[status]
    if kind is None:
        return Report()
    code = params.get("ErrorCode") or None
    if code is not None and not code.isdigit():
        raise ReportError("ErrorCode", f"{code[:40]!r} is not a Twilio error code")
    event = DeliveryEvent(delivery_id, SMS, kind, received_at, sid, status, code)
    if code != TWILIO_UNSUBSCRIBED:
        return Report((event,))
    to = _number(params, "To")
    opt_out = OptOutSignal(
        Channel.SMS, to, SubscriptionSource.PROVIDER_OPT_OUT, f"twilio {code}", received_at, delivery_id, sid
    )
    return Report((event,), (opt_out,))


def _inbound(params: Mapping[str, str], sid: str, received_at: datetime) -> Report:
    keyword = params.get("Body", "").strip().upper()
    if params.get("OptOutType", "").upper() != "STOP" and keyword not in STOP_KEYWORDS:
        return Report()
    number = _number(params, "From")
    reason = f"sms {keyword[:20] or 'STOP'}"
    return Report(
        opt_outs=(OptOutSignal(Channel.SMS, number, SubscriptionSource.SMS_STOP, reason, received_at, None, sid),)
    )


def refusal_report(message: Message, error: Rejected, at: datetime) -> Report:
    """A send a channel refused for this recipient: the delivery failed (bounced, for a hard
    bounce), and for OptedOut or a hard bounce the address is unsubscribed (a push subscription the
    service says is gone with source push_gone)."""
    code = error.code
    if isinstance(error, OptedOut):
        event = DeliveryEvent(message.delivery_id, message.channel, "failed", at, code=code)
        gone = message.channel == Channel.WEBPUSH  # 404/410: the browser's subscription ended
        signal = OptOutSignal(
            Channel(message.channel),
            message.to,
            SubscriptionSource.PUSH_GONE if gone else SubscriptionSource.PROVIDER_OPT_OUT,
            f"{message.channel} {code}",
            at,
            message.delivery_id,
        )
        return Report((event,), (signal,))
    if message.channel == EMAIL and code is not None and HARD_BOUNCE.match(code):
        event = DeliveryEvent(message.delivery_id, EMAIL, "bounced", at, code=code)
        signal = OptOutSignal(Channel.EMAIL, message.to, SubscriptionSource.BOUNCE, code, at, message.delivery_id)
        return Report((event,), (signal,))
    return Report((DeliveryEvent(message.delivery_id, message.channel, "failed", at, code=code),))


def _number(params: Mapping[str, str], name: str) -> str:
    number = params.get(name, "")
    if not _E164.match(number):
        raise ReportError(name, f"{number[:40]!r} is not an E.164 number")
    return number

"""The MessageChannel port: one provider that delivers a rendered message to one person.

Campaigns (shared/services/send_messages.py, deliver.py) plan a delivery row per recipient and
channel before any call; `deliver` renders the message and calls `send` once per row. Providers
offer no idempotency key (Twilio's Messages create has none; SMTP has none), so after a call whose
outcome is unknown (a timeout) the caller asks `lookup` before it sends again, and a channel that
cannot look a send up answers None: the delivery is then left `unknown`, never resent blindly.

Adapters: shared/adapters/smtp_email.py (smtplib), shared/adapters/twilio_sms.py (twilio),
shared/adapters/nhn_alimtalk.py (NHN Cloud's AlimTalk API, a BatchChannel: 1,000 recipients a
request), shared/adapters/nhn_sms.py (NHN Cloud's domestic SMS/LMS, a BatchChannel),
shared/adapters/sms_router.py (Korean numbers to NHN, others to Twilio), shared/adapters/web_push.py.
Errors are typed so the policy and fallback logic never read a provider's codes: `Rejected` (this
recipient, permanently: bad address, bounce), `OptedOut` (the provider says the person opted out:
Twilio 21610, NHN's 080 list, a complaint; the caller records the opt-out), `ChannelThrottled`
(wait and resume), `ChannelUnavailable` (an outage: retry later).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, runtime_checkable

EMAIL: Final = "email"
SMS: Final = "sms"
ALIMTALK: Final = "alimtalk"
WEBPUSH: Final = "webpush"

# "absent": a lookup found that the provider holds no such message, so a resend cannot duplicate it.
SendState = Literal["accepted", "sent", "delivered", "failed", "unknown", "absent"]


@dataclass(frozen=True)
class Message:
    """A rendered message to one address. `delivery_id` is our idempotency key (campaign run,
    customer, channel): adapters pass it to the provider where it can carry one (a Message-ID, a
    StatusCallback parameter, a grouping key) so a lookup and the provider's webhooks find it."""

    delivery_id: str
    channel: str
    to: str  # an e-mail address, an E.164 phone number, or a push subscription's endpoint
    text: str
    subject: str | None = None  # e-mail; web push: the notification's title
    html: str | None = None  # e-mail
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. List-Unsubscribe, List-Unsubscribe-Post
    metadata: Mapping[str, str] = field(default_factory=dict)  # campaign and run ids, for the provider's records
    template_code: str | None = None  # AlimTalk: the approved template (`text` is its filled content)
    parameters: Mapping[str, str] = field(default_factory=dict)  # AlimTalk: each #{name}'s value; web push: url, icon
    push_keys: Mapping[str, str] | None = None  # web push: the subscription's p256dh and auth (`to` is its endpoint)


@dataclass(frozen=True)
class SendResult:
    state: SendState
    provider_id: str | None = None  # Twilio's message SID, the SMTP queue id or Message-ID
    code: str | None = None  # the provider's status or error code, as text
    detail: str | None = None


class ChannelError(RuntimeError):
    """A send the provider refused; `code` is the provider's (never a credential or the message body)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Rejected(ChannelError):
    """This recipient cannot get this message on this channel (bad address, hard bounce): try the
    next channel of the fallback chain, never this one again for this delivery."""


class OptedOut(Rejected):
    """The provider says the person opted out (Twilio 21610, a STOP reply, a complaint): record the
    opt-out through the consent service; the fallback chain goes on only where consent allows."""


class ChannelThrottled(ChannelError):
    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ChannelUnavailable(ChannelError):
    """An outage or a timeout: the outcome of this call is unknown; look it up before any resend.

    `maybe_sent` is False when the provider refused before it could have accepted anything (an SMTP
    421 greeting, a refused connection, a failed login): then a resend cannot duplicate the message."""

    def __init__(self, message: str, *, code: str | None = None, maybe_sent: bool = True) -> None:
        super().__init__(message, code=code)
        self.maybe_sent = maybe_sent


class MessageChannel(Protocol):
    name: str  # "email", "sms"

    def send(self, message: Message) -> SendResult:
        """Hand the message to the provider once; raise a ChannelError subclass on refusal."""
        ...

    def lookup(self, message: Message) -> SendResult | None:
        """What became of an earlier send of this message (by its delivery_id), or None when the
        provider cannot tell (SMTP): the caller then leaves the delivery unknown, not resent."""
        ...


@runtime_checkable
class BatchChannel(MessageChannel, Protocol):
    """A channel whose provider takes many recipients per request (NHN AlimTalk: 1,000). deliver
    claims each delivery, then hands up to `batch_size` messages to one `send_many` call."""

    batch_size: int

    def send_many(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        """One result per message, in order: what `send` would have returned or raised for it."""
        ...


def not_sent(stopped: ChannelError) -> ChannelError:
    """What each message a batching channel did not send after a throttle or an outage gets: the
    same wait for a throttle, else unavailable with nothing sent (a resend cannot duplicate it)."""
    if isinstance(stopped, ChannelThrottled):
        return ChannelThrottled(str(stopped), retry_after=stopped.retry_after, code=stopped.code)
    return ChannelUnavailable(f"not sent: {stopped}", code=stopped.code, maybe_sent=False)

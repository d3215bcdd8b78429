"""The SMS channel of a deployment with a domestic and an international provider: Korean numbers
(+82) through the domestic one (NhnSms: a registered Korean sender, LMS up to 2,000 bytes, NHN's
080 reject list), every other number through the international one (TwilioSms).

Twilio reaches Korea only as international SMS (carriers prefix [국제발신], no replies, no LMS:
../shared/notes/activation.md §6), so with both configured a Korean number never goes to Twilio.
The router is a BatchChannel: deliver hands it a pass's SMS in one `send_many`, the Korean ones go
to the domestic provider's `send_many` (1,000 a request), the others one `send` each; after a
throttle or an outage of one provider the rest of that provider's messages are not sent (the
other's still are). `lookup` asks the provider the number routes to, as `send` chose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from shared.ports.channels import (
    SMS,
    BatchChannel,
    ChannelError,
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    MessageChannel,
    SendResult,
    not_sent,
)

DOMESTIC_PREFIX: Final = "+82"
DOMESTIC_PROVIDER: Final = "nhn_sms"  # the throttles' keys (shared/messaging/campaigns.py PROVIDERS)
INTERNATIONAL_PROVIDER: Final = "twilio"


def send_each(channel: MessageChannel, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
    """`send` for each message, in order, as BatchChannel.send_many answers: after a throttle or
    an outage the rest are not sent."""
    results: list[SendResult | ChannelError] = []
    stopped: ChannelError | None = None
    for message in messages:
        if stopped is not None:
            results.append(not_sent(stopped))
            continue
        try:
            results.append(channel.send(message))
        except (ChannelThrottled, ChannelUnavailable) as exc:
            stopped = exc
            results.append(exc)
        except ChannelError as exc:
            results.append(exc)
    return results


class SmsRouter:
    name = SMS

    def __init__(self, domestic: MessageChannel, international: MessageChannel) -> None:
        self.domestic, self.international = domestic, international
        self.batch_size = domestic.batch_size if isinstance(domestic, BatchChannel) else 1000

    def route(self, to: str) -> MessageChannel:
        """The provider for a number: the domestic one for +82, else the international one."""
        return self.domestic if to.startswith(DOMESTIC_PREFIX) else self.international

    def provider_for(self, to: str) -> str:
        """The `messaging/policy` throttle a number's messages are paced under (deliver asks)."""
        return DOMESTIC_PROVIDER if to.startswith(DOMESTIC_PREFIX) else INTERNATIONAL_PROVIDER

    def send(self, message: Message) -> SendResult:
        return self.route(message.to).send(message)

    def lookup(self, message: Message) -> SendResult | None:
        return self.route(message.to).lookup(message)

    def send_many(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        """One result per message, in order, each from the provider its number routes to."""
        results: list[SendResult | ChannelError | None] = [None] * len(messages)
        for channel in (self.domestic, self.international):
            indexes = [i for i, m in enumerate(messages) if self.route(m.to) is channel]
            if not indexes:
                continue
            chosen = [messages[i] for i in indexes]
            answers = channel.send_many(chosen) if isinstance(channel, BatchChannel) else send_each(channel, chosen)
            for index, answer in zip(indexes, answers, strict=True):
                results[index] = answer
        return [r if r is not None else ChannelUnavailable("not sent", maybe_sent=False) for r in results]

"""Decoding Pub/Sub CloudEvents (Eventarc, or a push subscription converted by the framework)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PubSubMessage:
    data: bytes
    attributes: dict[str, str]
    message_id: str
    delivery_attempt: int


def decode_pubsub(event_data: Any, push_body: Any = None) -> PubSubMessage:
    """Pull the message out of a messagePublished CloudEvent's data.

    A push subscription with a dead-letter policy sends `deliveryAttempt` beside the message, but
    functions-framework leaves it out of the CloudEvent it makes of the push: pass the request's
    JSON body as `push_body` to read it from there (1 when neither has it).
    """
    payload = event_data if isinstance(event_data, dict) else {}
    message = payload.get("message") or {}
    raw = message.get("data") or ""
    push = push_body if isinstance(push_body, dict) else {}
    attempt = payload.get("deliveryAttempt") or push.get("deliveryAttempt") or message.get("deliveryAttempt")
    return PubSubMessage(
        data=base64.b64decode(raw) if raw else b"",
        attributes=dict(message.get("attributes") or {}),
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        delivery_attempt=int(attempt) if isinstance(attempt, int) and attempt > 0 else 1,
    )

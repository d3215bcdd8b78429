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


def decode_pubsub(event_data: Any) -> PubSubMessage:
    """Pull the message out of a messagePublished CloudEvent's data."""
    payload = event_data if isinstance(event_data, dict) else {}
    message = payload.get("message") or {}
    raw = message.get("data") or ""
    attempt = payload.get("deliveryAttempt") or message.get("deliveryAttempt") or 1
    return PubSubMessage(
        data=base64.b64decode(raw) if raw else b"",
        attributes=dict(message.get("attributes") or {}),
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        delivery_attempt=int(attempt),
    )

"""The EventBus port: durable message transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class EventBus(Protocol):
    """Durable message transport: Pub/Sub (the emulator locally)."""

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish and wait for the broker's acknowledgement; return the message id.

        Raises TransientError when the broker did not acknowledge in time.
        """
        ...

"""Fakes for the sending tests: a MessageChannel that records every call and refuses as scripted,
and a FakeDocumentStore safe to share between threads (the redelivery storm)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.ports.channels import (
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    OptedOut,
    Rejected,
    SendResult,
)
from tests.fakes import FakeDocumentStore

# What a scripted send does (an address's script is consumed in order; then every send is accepted):
REJECT = "reject"  # Rejected("550 5.1.1" for e-mail: a hard bounce)
OPT_OUT = "opt_out"  # OptedOut (Twilio 21610)
THROTTLE = "throttle"  # ChannelThrottled before anything is accepted
DOWN = "down"  # ChannelUnavailable(maybe_sent=False): refused before anything was accepted
TIMEOUT = "timeout"  # accepted, but the answer is lost: ChannelUnavailable(maybe_sent=True)
LOST = "lost"  # never accepted, and the caller cannot tell: ChannelUnavailable(maybe_sent=True)


@dataclass
class FakeChannel:
    """A provider in memory. `accepted` holds what it took (by delivery id, so a lookup can find it);
    `calls` every send; `can_lookup=False` answers lookups None, as SMTP must."""

    name: str
    script: dict[str, list[str]] = field(default_factory=dict)
    can_lookup: bool = True
    lookup_down: bool = False
    delay: float = 0.0  # seconds each send takes, so that concurrent deliveries overlap
    accepted: list[Message] = field(default_factory=list)
    calls: list[Message] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, message: Message) -> SendResult:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append(message)
            steps = self.script.get(message.to)
            step = steps.pop(0) if steps else None
            if step in (None, TIMEOUT):
                self.accepted.append(message)
        if step == REJECT:
            code = "550 5.1.1" if self.name == "email" else "21211"
            raise Rejected("no such recipient", code=code)
        if step == OPT_OUT:
            raise OptedOut("the recipient opted out", code="21610")
        if step == THROTTLE:
            raise ChannelThrottled("slow down", retry_after=2.0, code="429")
        if step == DOWN:
            raise ChannelUnavailable("connection refused", maybe_sent=False)
        if step in (TIMEOUT, LOST):
            raise ChannelUnavailable("read timed out", code="timeout", maybe_sent=True)
        return SendResult("accepted", provider_id=f"{self.name}-{message.delivery_id[:8]}")

    def lookup(self, message: Message) -> SendResult | None:
        with self._lock:
            self.lookups.append(message.delivery_id)
            if self.lookup_down:
                raise ChannelUnavailable("lookup timed out", maybe_sent=True)
            if not self.can_lookup:
                return None
            found = any(m.delivery_id == message.delivery_id for m in self.accepted)
        if found:
            return SendResult("sent", provider_id=f"{self.name}-{message.delivery_id[:8]}")
        return SendResult("absent")

    def sent_to(self) -> list[str]:
        """The addresses the provider accepted a message for, in order."""
        return [m.to for m in self.accepted]

    def duplicates(self) -> dict[str, int]:
        """Deliveries the provider accepted more than once (there must be none)."""
        return {d: n for d, n in Counter(m.delivery_id for m in self.accepted).items() if n > 1}


class SharedDocuments(FakeDocumentStore):
    """FakeDocumentStore behind one lock: `create` stays atomic when threads race, as Firestore's is."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            return super().get(collection, doc_id)

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        with self._lock:
            super().set(collection, doc_id, data, merge)

    def create(self, collection: str, doc_id: str, data: Mapping[str, Any]) -> bool:
        with self._lock:
            return super().create(collection, doc_id, data)

    def list(self, collection: str, where: Any = ()) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return super().list(collection, where)

    def delete(self, collection: str, doc_id: str) -> None:
        with self._lock:
            super().delete(collection, doc_id)

"""EventBus on Pub/Sub; honours PUBSUB_EMULATOR_HOST through the client library itself.

collect waits for every publish to be acknowledged before it answers, so the publish path is on
every request. The library's own batching spawns threads per batch; one long-lived sender thread
that sends whatever requests are waiting as one Publish RPC costs about half the CPU per message
and lets concurrent requests share a round trip (measured: scripts/bench ingest).

The sender calls the Publish method on the client's own gRPC channel (so credentials, endpoint and
the emulator setting stay the library's), with serialised protobufs, instead of through the
generated client: its retry, timeout and logging wrappers were most of the sender's CPU. The
sender keeps what they gave: the routing header, a deadline, and retries of the codes Pub/Sub
documents as transient, within that deadline.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.pubsub_v1 import types as pubsub_types

from shared.ports import TransientError

MAX_BATCH_MESSAGES = 500
MAX_BATCH_BYTES = 8_000_000  # under Pub/Sub's 10 MB per Publish request
_RAW_REQUEST = pubsub_types.PublishRequest.pb()
_RAW_MESSAGE = pubsub_types.PubsubMessage.pb()
_RAW_RESPONSE = pubsub_types.PublishResponse.pb()
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
# The codes the Publish method's own retry policy treats as transient (google.pubsub_v1, publisher).
RETRYABLE = frozenset(
    {
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
    }
)
FIRST_BACKOFF = 0.05  # seconds; doubled per retry, with jitter, while the deadline allows
MIN_ATTEMPT = 0.05  # seconds: no new attempt with less time than this before the deadline


class _Breaker:
    """Fail fast while Pub/Sub is known to be down.

    A publish that fails after its retries has held a request thread for the whole timeout; in an
    outage every request would, and the instance would stop answering at all. Once a publish has
    failed, or has kept meeting transient errors for `trip_after` seconds, the circuit is open:
    publishes fail at once (collect answers 503 in milliseconds and the tracker keeps its queue)
    until `cool_down` has passed; then one publish is let through as a probe, and its success
    closes the circuit again.
    """

    def __init__(self, cool_down: float, trip_after: float = 2.0) -> None:
        self.cool_down = cool_down
        self.trip_after = trip_after
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._probing = False

    def admit(self) -> bool:
        """Raise TransientError while open; True when this publish is the half-open probe."""
        if not self._open_until:  # closed: no lock on the hot path
            return False
        with self._lock:
            if not self._open_until:
                return False
            left = self._open_until - time.monotonic()
            if left > 0 or self._probing:
                raise TransientError(f"Pub/Sub is unavailable (circuit open; next try in {max(left, 0):.1f}s)")
            self._probing = True
            return True

    def trip(self) -> None:
        """Open the circuit now, from a publish still retrying (it may yet succeed and close it)."""
        if not self._open_until:
            with self._lock:
                if not self._open_until:
                    self._open_until = time.monotonic() + self.cool_down

    def is_open(self) -> bool:
        return bool(self._open_until) and time.monotonic() < self._open_until

    def record(self, ok: bool, probe: bool) -> None:
        if ok and not self._open_until:
            return
        with self._lock:
            if ok:
                self._open_until, self._probing = 0.0, False
            elif probe or not self._open_until or not self._probing:
                self._open_until, self._probing = time.monotonic() + self.cool_down, False


def _taken_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(slots=True)
class _Pending:
    """One publish waiting for its acknowledgement. `done` is a lock taken at creation and released
    by the sender: the cheapest one-shot signal between two threads (an Event builds a Condition
    and a second lock per wait)."""

    topic: str
    data: bytes
    attributes: dict[str, str]
    done: threading.Lock = field(default_factory=_taken_lock)
    message_id: str | None = None
    error: BaseException | None = None


class PubSubBus:
    """Publishes through one sender thread that batches whatever is waiting, for up to `max_latency`."""

    def __init__(self, project: str, max_latency: float = 0.002, timeout: float = 10.0, cool_down: float = 1.0):
        self.project = project
        self.timeout = timeout
        self.max_latency = max_latency
        self._breaker = _Breaker(cool_down)
        self._client = pubsub_v1.PublisherClient()
        self._rpc: Callable[..., Any] = self._client.transport.grpc_channel.unary_unary(
            PUBLISH_METHOD,
            request_serializer=_RAW_REQUEST.SerializeToString,
            response_deserializer=_RAW_RESPONSE.FromString,
        )
        self._routing: dict[str, tuple[tuple[str, str], ...]] = {}
        self._paths: dict[str, str] = {}
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            full = topic.startswith("projects/")
            path = self._paths[topic] = topic if full else str(self._client.topic_path(self.project, topic))
        return path

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        probe = self._breaker.admit()
        self._ensure_sender()
        pending = _Pending(self.topic_path(topic), data, dict(attributes))
        self._queue.put(pending)
        if not pending.done.acquire(timeout=self.timeout + 1):
            self._breaker.record(ok=False, probe=probe)
            raise TransientError(f"publish to {topic} was not acknowledged within {self.timeout:.0f}s")
        if pending.error is not None:
            self._breaker.record(ok=isinstance(pending.error, _NotOurs), probe=probe)
            raise TransientError(f"publish to {topic} failed: {pending.error}") from pending.error
        self._breaker.record(ok=True, probe=probe)
        assert pending.message_id is not None
        return pending.message_id

    def ensure_topic(self, topic: str) -> None:
        """Create the topic if missing (local stack only; Terraform owns topics in production)."""
        with contextlib.suppress(gexc.AlreadyExists):
            self._client.create_topic(name=self.topic_path(topic))

    def _ensure_sender(self) -> None:
        # Started on first use, so a forked server worker (gunicorn) gets its own thread.
        if self._sender is None or not self._sender.is_alive():
            with self._start_lock:
                if self._sender is None or not self._sender.is_alive():
                    self._sender = threading.Thread(target=self._send_forever, name="pubsub-sender", daemon=True)
                    self._sender.start()

    def _send_forever(self) -> None:
        carry: _Pending | None = None
        while True:
            first = carry or self._queue.get()
            carry = None
            if self.max_latency and self._queue.empty():
                # A publish arrived alone: give concurrent requests a moment to join its RPC. One
                # sleep, not a wait per arrival, so joining publishes do not each wake this thread.
                # Publishes that queued during the previous RPC go out at once.
                time.sleep(self.max_latency)
            batch, size = [first], len(first.data)
            while len(batch) < MAX_BATCH_MESSAGES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if size + len(item.data) > MAX_BATCH_BYTES:
                    carry = item  # the next batch's first
                    break
                batch.append(item)
                size += len(item.data)
            self._send(batch)

    def _send(self, batch: list[_Pending]) -> None:
        by_topic: dict[str, list[_Pending]] = defaultdict(list)
        for item in batch:
            by_topic[item.topic].append(item)
        for topic, items in by_topic.items():
            try:
                if self._breaker.is_open():  # queued behind the publish that opened it: fail them now
                    raise TransientError("Pub/Sub is unavailable (circuit open)")
                request = _RAW_REQUEST(
                    topic=topic, messages=[_RAW_MESSAGE(data=i.data, attributes=i.attributes) for i in items]
                )
                message_ids = self._publish(topic, request)
                for item, message_id in zip(items, message_ids, strict=True):
                    item.message_id = message_id
            except Exception as exc:  # noqa: BLE001 - every waiting caller learns of it
                for item in items:
                    item.error = exc
            finally:
                for item in items:
                    item.done.release()

    def _publish(self, topic: str, request: Any) -> list[str]:
        """One Publish RPC, retried on transient codes until `timeout` has passed since the first try."""
        metadata = self._routing.get(topic)
        if metadata is None:
            # The routing header the generated client sends: which topic, for the front end's routing.
            header = ("x-goog-request-params", "topic=" + urllib.parse.quote(topic, safe="/"))
            metadata = self._routing[topic] = (header,)
        started = time.monotonic()
        deadline = started + self.timeout
        backoff = FIRST_BACKOFF
        while True:
            try:
                response = self._rpc(request, timeout=max(0.001, deadline - time.monotonic()), metadata=metadata)
                return list(response.message_ids)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                left = deadline - time.monotonic()
                if code not in RETRYABLE or left < MIN_ATTEMPT:
                    raise _describe(exc, code) from exc
                if time.monotonic() - started > self._breaker.trip_after:
                    self._breaker.trip()  # still down: other publishes need not wait for this one
                # Jittered exponential backoff, cut short so that a last attempt still fits.
                time.sleep(min(backoff * (0.5 + random.random()), left - MIN_ATTEMPT))  # noqa: S311 - jitter
                backoff *= 2


class _NotOurs(RuntimeError):
    """Pub/Sub answered and refused the request (not found, permission, invalid): no outage."""


def _describe(exc: grpc.RpcError, code: grpc.StatusCode | None) -> Exception:
    """A readable error for the log and the caller: the status code and the server's detail."""
    detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    kind = RuntimeError if code in RETRYABLE or code is None else _NotOurs
    return kind(f"{code.name if code else 'error'}: {detail}")

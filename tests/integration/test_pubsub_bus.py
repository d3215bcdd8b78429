"""PubSubBus through the real client library against the Pub/Sub emulator.

collect answers 2xx only after `publish` returns, so these pin what that return means: the message
is stored with its attributes under the id returned, concurrent publishes share Publish RPCs
without losing or mixing anything, and an outage becomes TransientError within the timeout.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from devstack.emulators import Emulators
from devstack.processes import free_port
from shared.adapters.pubsub_bus import PubSubBus
from shared.ports import TransientError


@pytest.fixture
def topic(emulators: Emulators) -> Iterator[tuple[PubSubBus, str, str]]:
    """A fresh topic with one subscription, and a bus publishing to it."""
    bus = PubSubBus(emulators.project)
    name = f"bus-{uuid.uuid4().hex[:8]}"
    bus.ensure_topic(name)
    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(emulators.project, name)
    subscriber.create_subscription(name=subscription, topic=bus.topic_path(name))
    yield bus, name, subscription
    subscriber.delete_subscription(subscription=subscription)


def pull_all(subscription: str, expected: int, timeout: float = 30.0) -> list[Any]:
    subscriber = pubsub_v1.SubscriberClient()
    received: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(received) < expected and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=500, timeout=5)
        if response.received_messages:
            received += [m.message for m in response.received_messages]
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
    return received


class CountingRpc:
    """Wraps the bus's Publish call: counts calls and can fail the first ones with a given error."""

    def __init__(self, rpc: Callable[..., Any], failures: list[BaseException] | None = None):
        self.rpc, self.failures, self.calls = rpc, list(failures or []), 0
        self.lock = threading.Lock()

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        return self.rpc(request, **kwargs)


def unavailable_error() -> grpc.RpcError:
    """A real UNAVAILABLE from gRPC: a call to a port nobody listens on."""
    channel = grpc.insecure_channel(f"127.0.0.1:{free_port()}")
    call = channel.unary_unary("/google.pubsub.v1.Publisher/Publish")
    try:
        call(b"", timeout=2)
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNAVAILABLE
        return exc
    finally:
        channel.close()
    raise AssertionError("a call to a closed port succeeded")


def test_published_message_is_stored_with_its_attributes_under_the_returned_id(
    topic: tuple[PubSubBus, str, str],
) -> None:
    bus, name, subscription = topic
    data = '{"v":2,"events":[{"title":"신발 상세"}]}'.encode()
    message_id = bus.publish(name, data, {"site_id": "test-shop", "rows": "1"})
    [message] = pull_all(subscription, 1)
    assert message.message_id == message_id
    assert message.data == data
    assert dict(message.attributes) == {"site_id": "test-shop", "rows": "1"}


def test_concurrent_publishes_share_rpcs_and_each_caller_gets_its_own_id(topic: tuple[PubSubBus, str, str]) -> None:
    bus, name, subscription = topic
    counting = CountingRpc(bus._rpc)
    bus._rpc = counting
    ids: dict[int, str] = {}

    def publish(n: int) -> None:
        ids[n] = bus.publish(name, f"message {n}".encode(), {"n": str(n)})

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = pull_all(subscription, 200)
    assert len(received) == 200
    # Each caller's id names its own message: ids and payloads were not mixed up within a batch.
    assert {m.message_id: m.data for m in received} == {ids[n]: f"message {n}".encode() for n in range(200)}
    assert all(m.attributes["n"] == m.data.decode().split()[1] for m in received)
    assert counting.calls < 200  # waiting publishes went out together


def test_a_transient_failure_is_retried_and_the_message_is_stored_once(topic: tuple[PubSubBus, str, str]) -> None:
    bus, name, subscription = topic
    counting = CountingRpc(bus._rpc, [unavailable_error(), unavailable_error()])
    bus._rpc = counting
    message_id = bus.publish(name, b"after two failures", {})
    assert counting.calls == 3
    [message] = pull_all(subscription, 1)
    assert (message.message_id, message.data) == (message_id, b"after two failures")


def test_a_missing_topic_fails_at_once_with_the_reason(emulators: Emulators) -> None:
    bus = PubSubBus(emulators.project, timeout=10)
    counting = CountingRpc(bus._rpc)
    bus._rpc = counting
    started = time.monotonic()
    with pytest.raises(TransientError, match="NOT_FOUND"):
        bus.publish(f"no-such-topic-{uuid.uuid4().hex[:8]}", b"x", {})
    assert counting.calls == 1  # NOT_FOUND is not transient: no retry
    assert time.monotonic() - started < 5


def test_an_unreachable_pubsub_is_retried_until_the_timeout_then_fails(
    emulators: Emulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    bus = PubSubBus(emulators.project, timeout=1.5)
    counting = CountingRpc(bus._rpc)
    bus._rpc = counting
    started = time.monotonic()
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        bus.publish("beacons", b"x", {})
    elapsed = time.monotonic() - started
    assert counting.calls >= 2  # retried, with backoff
    assert 1.3 <= elapsed < 3  # retried for about the whole timeout (1.5 s), and not much longer


def test_in_an_outage_publishes_fail_fast_until_a_probe_succeeds(topic: tuple[PubSubBus, str, str]) -> None:
    """After one publish failed for its whole timeout, the circuit opens: the next ones fail at once
    without an RPC (collect answers 503 in milliseconds), until the cool-down lets one probe through;
    its success closes the circuit."""
    bus, name, subscription = topic
    bus.timeout, bus._breaker.cool_down = 0.5, 0.6
    outage = [unavailable_error() for _ in range(30)]  # more than one publish's retries use
    counting = CountingRpc(bus._rpc, outage)
    bus._rpc = counting
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        bus.publish(name, b"first", {})
    calls = counting.calls
    for n in range(50):
        with pytest.raises(TransientError, match="circuit open"):
            bus.publish(name, f"refused {n}".encode(), {})
    assert counting.calls == calls  # no RPC while open

    counting.failures = []  # Pub/Sub is back
    time.sleep(0.7)  # the cool-down has passed: the next publish is the probe
    probe_id = bus.publish(name, b"probe", {})
    assert bus.publish(name, b"after", {})  # closed again: publishes flow
    assert {m.data for m in pull_all(subscription, 2)} == {b"probe", b"after"}
    assert probe_id


def test_a_failed_probe_reopens_the_circuit(topic: tuple[PubSubBus, str, str]) -> None:
    bus, name, _ = topic
    bus.timeout, bus._breaker.cool_down = 0.3, 0.4
    counting = CountingRpc(bus._rpc, [unavailable_error() for _ in range(60)])
    bus._rpc = counting
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        bus.publish(name, b"first", {})
    time.sleep(0.5)
    with pytest.raises(TransientError, match="UNAVAILABLE"):  # the probe, still down
        bus.publish(name, b"probe", {})
    calls = counting.calls
    with pytest.raises(TransientError, match="circuit open"):
        bus.publish(name, b"refused", {})
    assert counting.calls == calls

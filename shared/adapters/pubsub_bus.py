"""EventBus on Pub/Sub; honours PUBSUB_EMULATOR_HOST through the client library itself."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent import futures

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from shared.ports import TransientError


class PubSubBus:
    """Publishes with a short batching window so concurrent requests share one round trip."""

    def __init__(self, project: str, max_latency: float = 0.01, timeout: float = 10.0):
        self.project = project
        self.timeout = timeout
        self._client = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_bytes=9_000_000, max_latency=max_latency)
        )

    def topic_path(self, topic: str) -> str:
        return topic if topic.startswith("projects/") else self._client.topic_path(self.project, topic)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        try:
            future = self._client.publish(self.topic_path(topic), data, **dict(attributes))
            return str(future.result(timeout=self.timeout))
        except (gexc.GoogleAPICallError, gexc.RetryError, futures.TimeoutError) as exc:
            raise TransientError(f"publish to {topic} failed: {exc}") from exc

    def ensure_topic(self, topic: str) -> None:
        """Create the topic if missing (local stack only; Terraform owns topics in production)."""
        with contextlib.suppress(gexc.AlreadyExists):
            self._client.create_topic(name=self.topic_path(topic))

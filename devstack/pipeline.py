"""The ingestion pipeline running locally: emulators, collect and load_events as real HTTP servers.

collect publishes to the Pub/Sub emulator; a push subscription delivers to load_events, which the
framework serves as a CloudEvent function; the loader writes the DuckDB file. Everything binds a
free port and stops by process group on exit, error or Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from devstack.emulators import Emulators, running_emulators
from devstack.processes import Server, free_port, start_server, wait_http
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_specs

REPO = Path(__file__).resolve().parents[1]
BEACON_TOPIC = "beacons"
DEAD_LETTER_TOPIC = "beacons-dead-letter"


def serve_function(target: str, log_dir: Path, env: Mapping[str, str], port: int | None = None) -> Server:
    """Run one entry point of main.py under functions-framework on a free port, or on `port` when
    its URL must be known before it starts (through devstack/serve.py: a stalled client cannot hold
    the server's threads)."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "devstack.serve",
        f"--target={target}",
        "--source=main.py",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    server = start_server(target, argv, port, log_dir, env=env, cwd=REPO)
    wait_http(server, "/healthz" if target == "collect" else "/", timeout=60)
    return server


def push_subscription(project: str, topic: str, name: str, endpoint: str, max_attempts: int | None = 5) -> None:
    """Create the topic and a push subscription to a local endpoint (what Terraform declares in prod);
    after `max_attempts` failed pushes a message goes to the dead-letter topic (None: a consumer of
    the dead-letter topic itself, with nowhere further to go)."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    for path in (topic_path, publisher.topic_path(project, DEAD_LETTER_TOPIC)):
        with suppress(gexc.AlreadyExists):
            publisher.create_topic(name=path)
    request = {
        "name": subscriber.subscription_path(project, name),
        "topic": topic_path,
        "push_config": {"push_endpoint": endpoint},
        "ack_deadline_seconds": 60,
        "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 10}},
    }
    if max_attempts is not None:
        request["dead_letter_policy"] = {
            "dead_letter_topic": publisher.topic_path(project, DEAD_LETTER_TOPIC),
            "max_delivery_attempts": max_attempts,
        }
    with suppress(gexc.AlreadyExists):
        subscriber.create_subscription(request=request)
    subscriber.close()


def delete_subscription(project: str, name: str) -> None:
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    subscriber = pubsub_v1.SubscriberClient()
    try:
        subscriber.delete_subscription(subscription=subscriber.subscription_path(project, name))
    except gexc.NotFound:
        pass
    finally:
        subscriber.close()


@dataclass
class LocalPipeline:
    emulators: Emulators
    collect: Server
    loader: Server
    dead_letters: Server
    duckdb_path: Path
    env: dict[str, str]

    @property
    def collect_url(self) -> str:
        return self.collect.url

    def stop(self) -> None:
        self.collect.stop()
        self.loader.stop()
        self.dead_letters.stop()


def pipeline_env(emulators: Emulators, duckdb_path: Path, sites: Mapping[str, list[str]]) -> dict[str, str]:
    return {
        **emulators.env,
        "CDP_WAREHOUSE": "duckdb",
        "CDP_DUCKDB_PATH": str(duckdb_path),
        "CDP_BEACON_TOPIC": BEACON_TOPIC,
        "CDP_SITES": json.dumps({site: {"origins": origins} for site, origins in sites.items()}),
        "CDP_IP_SALT": "local-only-salt",
        "CDP_BUS_KEY": "local-only-bus-key",  # collect signs, the loader checks (shared/signing.py)
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def running_pipeline(
    work_dir: Path,
    sites: Mapping[str, list[str]],
    emulators: Emulators | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LocalPipeline]:
    """Start (or reuse) the emulators, then the loader and the collector wired through Pub/Sub."""
    log_dir = work_dir / "logs"
    duckdb_path = work_dir / "warehouse.duckdb"
    with ExitStack() as stack:
        if emulators is None:
            emulators = stack.enter_context(running_emulators(log_dir))
        env = {**pipeline_env(emulators, duckdb_path, sites), **(extra_env or {})}
        # What Terraform does in production: the tables exist before the first beacon.
        DuckDBWarehouse(duckdb_path).ensure_tables(list(table_specs().values()))
        # The loader only appends small batches: one DuckDB thread costs it less CPU (docs/architecture.md).
        loader = serve_function("load_events", log_dir, {**env, "CDP_DUCKDB_THREADS": "1"})
        stack.callback(loader.stop)
        # As in production: a message the loader failed max_attempts times goes to the dead-letter
        # topic, whose subscriber stores it whole as a bad row (the emulator applies the policy).
        dead_letters = serve_function("load_dead_letters", log_dir, env)
        stack.callback(dead_letters.stop)
        emulators.export()
        stamp = int(time.time() * 1000)
        for topic, name, server, attempts in (
            (BEACON_TOPIC, f"load-events-{stamp}", loader, 5),
            (DEAD_LETTER_TOPIC, f"load-dead-letters-{stamp}", dead_letters, None),
        ):
            push_subscription(emulators.project, topic, name, server.url + "/", attempts)
            stack.callback(delete_subscription, emulators.project, name)
        collect = serve_function("collect", log_dir, env)
        stack.callback(collect.stop)
        yield LocalPipeline(emulators, collect, loader, dead_letters, duckdb_path, env)

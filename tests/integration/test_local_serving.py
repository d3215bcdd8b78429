"""Local serving (devstack/serve.py): clients that send half a request and stall cannot hold every
thread of a local function server, as they could under `python -m functions_framework`."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.pipeline import serve_function
from devstack.processes import Server

THREADS = 2
HALF_HEADERS = b"POST /e HTTP/1.1\r\nHost: shop.exa"
HALF_BODY = b"POST /e HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 100\r\n\r\n{"
READ_TIMEOUT = 1.0


@pytest.fixture
def collect(tmp_path: Path) -> Iterator[Server]:
    env = {
        "THREADS": str(THREADS),
        "CDP_LOCAL_READ_TIMEOUT": str(READ_TIMEOUT),
        "CDP_SITES": json.dumps({"shop": {"origins": ["https://shop.example"]}}),
        "CDP_IP_SALT": "test-salt",
        "CDP_BUS_KEY": "test-bus-key",
        "CDP_BEACON_TOPIC": "beacons",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",  # never reached: only /healthz is asked
        "GOOGLE_CLOUD_PROJECT": "local-test",
    }
    server = serve_function("collect", tmp_path / "logs", env)
    try:
        yield server
    finally:
        server.stop()


def test_stalled_clients_do_not_hold_the_threads(collect: Server) -> None:
    stalled = []
    for n in range(THREADS * 3):  # three times as many half-sent requests as the server has threads
        sock = socket.create_connection(("127.0.0.1", collect.port), timeout=30)
        # half the headers, or the headers and half the body
        sock.sendall(HALF_HEADERS if n % 2 else HALF_BODY)
        stalled.append(sock)
    try:
        time.sleep(0.3)  # every thread is now reading a body that never comes
        started = time.monotonic()
        with urllib.request.urlopen(f"{collect.url}/healthz", timeout=30) as answer:
            assert answer.status == 200
        waited = time.monotonic() - started
        # Each stalled read gives up after READ_TIMEOUT; the queue drains in THREADS-sized waves.
        assert waited < READ_TIMEOUT * 3 + 3, waited
        for n, sock in enumerate(stalled):  # the server answered 408 or closed every stalled connection
            sock.settimeout(10)
            try:
                answer = sock.recv(1024)
            except ConnectionResetError:
                answer = b""  # closed with input unread: a reset, as good as an end
            assert answer.startswith(b"HTTP/1.1 408 ") if n % 2 == 0 else answer == b"", answer
    finally:
        for sock in stalled:
            sock.close()

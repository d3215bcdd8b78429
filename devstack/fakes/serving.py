"""What the HTTP fakes share: a threaded server on 127.0.0.1 that hands each request to the fake's
`handle()`, and the wait for SIGTERM of a fake run as its own process."""

from __future__ import annotations

import json
import signal
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol, TypeVar


class _Startable(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


F = TypeVar("F", bound=_Startable)


@dataclass(frozen=True)
class Answer:
    """What a fake answers: a dict is sent as JSON, a str as plain text."""

    status: int
    body: dict[str, Any] | str
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpServing:
    """Serving for a fake provider: subclasses implement `handle` (under their own lock: requests
    arrive on several threads)."""

    label = "the fake"  # for "... is not running"
    tls: ssl.SSLContext | None = None  # set: served over https (a push service's endpoints are https only)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.label} is not running")
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (port 0: one the OS picks) in a daemon thread; return the base URL."""
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        if self.tls is not None:  # the handshake happens in the request's thread, not the accepting one
            self._server.socket = self.tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' session expects
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.fake.handle(self.command, self.path, dict(self.headers.items()), body)
        if isinstance(answer.body, str):
            data, content_type = answer.body.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(answer.body).encode(), "application/json; charset=utf-8"
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a fake told to answer late)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: HttpServing


@contextmanager
def running(fake: F) -> Iterator[F]:
    """The fake, started, and stopped on exit (the running_* helpers of each fake)."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT: the main loop of a fake run as a process."""
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stopped.wait()

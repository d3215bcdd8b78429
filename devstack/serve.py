"""Serve one entry point of main.py locally as functions-framework does, minus its slow-client trap.

`python -m functions_framework` runs gunicorn's threaded worker with no read timeout: a thread
reads a request until it is complete, so a handful of clients that send half a request and stall
hold every thread, and the demo, the tests and a developer's browser wait behind them. On Cloud
Run the front end buffers each request before an instance sees it, so production has no such
exposure; locally this launcher gives each accepted socket a kernel receive timeout
(`SO_RCVTIMEO`), so a read that waits longer fails and the thread goes back to the pool, and
reads each request's body before the function sees it, as that front end does, answering a body
that stalls with 408. The timeout is between two reads, like nginx's `client_body_timeout`, not
for a whole request.

Usage: python -m devstack.serve --target=collect [--source=main.py] --host=127.0.0.1 --port=8080
Environment: THREADS and WORKERS as functions-framework reads them; CDP_LOCAL_READ_TIMEOUT
(seconds, default 5).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import functions_framework
from functions_framework._http import create_server
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

DEFAULT_READ_TIMEOUT = 5.0
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_timeout() -> float:
    value = os.environ.get("CDP_LOCAL_READ_TIMEOUT", "")
    try:
        seconds = float(value) if value else DEFAULT_READ_TIMEOUT
    except ValueError as exc:
        raise SystemExit(f"CDP_LOCAL_READ_TIMEOUT must be a number of seconds, got {value!r}") from exc
    if not seconds > 0:
        raise SystemExit(f"CDP_LOCAL_READ_TIMEOUT must be above 0, got {value!r}")
    return seconds


class ReadTimeoutWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's threaded worker whose sockets give up a read after `CDP_LOCAL_READ_TIMEOUT`.

    A blocking `recv` on a socket with SO_RCVTIMEO fails with EAGAIN when the time passes; the
    worker treats that as any socket error: it closes the connection and frees the thread.
    Python's `setblocking(True)`, which the worker calls before each request, leaves the option be.
    """

    def enqueue_req(self, conn: Any) -> None:
        seconds = read_timeout()
        whole, fraction = int(seconds), int((seconds % 1) * 1_000_000)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, fraction))
        super().enqueue_req(conn)


def buffered_bodies(app: WSGIApp) -> WSGIApp:
    """Read the whole body before the function runs; a client that stalls gets 408, not a 500
    from inside the function."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            body = environ["wsgi.input"].read()
        except OSError:
            start_response("408 Request Timeout", [("Content-Type", "text/plain"), ("Connection", "close")])
            return [b"the request body stopped arriving\n"]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return app(environ, start_response)

    return serve


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="the entry point's function name in the source")
    parser.add_argument("--source", default="main.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    read_timeout()  # refuse a bad setting before serving
    app = functions_framework.create_app(args.target, args.source)  # type: ignore[no-untyped-call]
    app.wsgi_app = buffered_bodies(app.wsgi_app)
    # functions-framework's own gunicorn settings (threads, no worker timeout, ...), our worker.
    server = create_server(app, False, worker_class=f"{__name__}.ReadTimeoutWorker")  # type: ignore[no-untyped-call]
    server.run(args.host, args.port)


if __name__ == "__main__":
    main()

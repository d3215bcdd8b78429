"""Start local servers on free ports, wait until they answer, and stop them by process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A local server could not be started; the message says what to install or look at."""


def free_port() -> int:
    """A port the OS just handed out; servers bind it immediately after, so a clash is unlikely."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A child process in its own process group, so stopping it also stops what it spawned."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def start_server(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    """Launch argv in a new session (its own process group) with output to log_dir/name.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Server(name, process, port, log_path, dict(env or {}))


def wait_http(server: Server, path: str = "/", timeout: float = 60.0) -> None:
    """Poll until the server answers any HTTP status on path; fail with its log tail if it dies."""
    deadline = time.monotonic() + timeout
    url = server.url + path
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StackError(
                f"{server.name} exited with code {server.process.returncode} before it was ready; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered: an error status still means it is up
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.05)
    server.stop()
    raise StackError(f"{server.name} did not answer on {url} within {timeout:.0f}s; log {server.log_path}")

"""A real SMTP server (aiosmtpd) that keeps what arrives: the e-mail channel's fake provider.

It speaks SMTP as a relay does (EHLO, optional STARTTLS and AUTH, MAIL, RCPT, DATA) and records each
accepted message with its envelope, whether it came over TLS and who logged in, so a test parses the
MIME that really went over the wire. Replies can be scripted per stage (`reject("rcpt", "550 5.1.1
...")`), as a relay answers an unknown user, a full queue or a policy refusal; a scripted 421 also
closes the connection, as RFC 5321 says a server does.

Run it in-process (`running_smtp_sink()`, tests) or as a process (`python -m devstack.fakes.smtp_sink
--port N --maildir DIR`, the demo), which writes each message to DIR as <n>.eml with its envelope in
<n>.json.

aiosmtpd's Controller probes readiness by connecting to its port, so port 0 cannot work: a free port
is picked first (local-stack notes, §4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from devstack.fakes.serving import running, wait_for_signal
from devstack.processes import free_port

Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class Received:
    """One accepted message as the sink got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # the message as transmitted, dot-unstuffed, CRLF line ends
    tls: bool
    login: str | None


@dataclass
class _Scripted:
    stage: Stage
    reply: str | None  # None: answer as usual, after the delay
    address: str | None  # for "rcpt": only this recipient (None: any)
    delay: float = 0.0


@dataclass
class SmtpSink:
    """State and scripted replies; the aiosmtpd handler calls the handle_* hooks."""

    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None  # offers STARTTLS when set
    maildir: Path | None = None
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0  # connections that said EHLO or HELO
    _scripted: list[_Scripted] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    # --- what tests set and read -----------------------------------------------------------------

    def reject(self, stage: Stage, reply: str, *, address: str | None = None, times: int = 1) -> None:
        """Answer the next `times` commands of this stage with `reply` (e.g. "550 5.1.1 user unknown")."""
        with self._lock:
            self._scripted.extend(_Scripted(stage, reply, address) for _ in range(times))

    def stall(self, stage: Stage, seconds: float) -> None:
        """Answer the next command of this stage as usual, but only after `seconds`: a slow relay
        (for "data": the message is queued first, so it is kept though the client may give up)."""
        with self._lock:
            self._scripted.append(_Scripted(stage, None, None, seconds))

    @property
    def hostname(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the SMTP sink is not running")
        return int(self._controller.port)

    def start(self, port: int | None = None) -> int:
        """Serve on 127.0.0.1 in aiosmtpd's thread; returns the port."""
        kwargs: dict[str, Any] = {}
        if self.tls_context is not None:
            kwargs |= {"tls_context": self.tls_context, "require_starttls": True}
        if self.username is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_required": True}
        self._controller = Controller(self, hostname=self.hostname, port=port or free_port(), **kwargs)
        self._controller.start()
        return self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- aiosmtpd hooks --------------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        # handled=False: aiosmtpd answers a failure with 535 itself
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self._lock:
            self.sessions += 1
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = await self._take("mail", address, server)
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = await self._take("rcpt", address, server)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scripted = self._next("data", None)
        if scripted is not None and scripted.reply is not None:
            return self._refuse(scripted.reply, server)
        content = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        received = Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), content, session.ssl is not None, login)
        with self._lock:
            self.messages.append(received)
            number = len(self.messages)
        if self.maildir is not None:
            self._write(number, received)
        if scripted is not None:  # queued, but the answer comes late (or never reaches the client)
            await asyncio.sleep(scripted.delay)
        return f"250 2.0.0 Ok: queued as SINK{number:06d}"

    async def _take(self, stage: Stage, address: str | None, server: SMTP) -> str | None:
        """The scripted reply for this command, if one is due (after its delay)."""
        scripted = self._next(stage, address)
        if scripted is None:
            return None
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        return None if scripted.reply is None else self._refuse(scripted.reply, server)

    def _next(self, stage: Stage, address: str | None) -> _Scripted | None:
        with self._lock:
            for i, scripted in enumerate(self._scripted):
                if scripted.stage == stage and (scripted.address is None or scripted.address == address):
                    return self._scripted.pop(i)
        return None

    def _refuse(self, reply: str, server: SMTP) -> str:
        if reply.startswith("421"):
            # A 421 ends the session: the reply is written first, then the connection closes.
            transport = server.transport
            if transport is not None:
                asyncio.get_running_loop().call_soon(transport.close)
        return reply

    def _write(self, number: int, received: Received) -> None:
        assert self.maildir is not None
        self.maildir.mkdir(parents=True, exist_ok=True)
        (self.maildir / f"{number:06d}.eml").write_bytes(received.data)
        envelope = {"mail_from": received.mail_from, "rcpt_tos": list(received.rcpt_tos), "tls": received.tls}
        (self.maildir / f"{number:06d}.json").write_text(json.dumps(envelope) + "\n")


def running_smtp_sink(**options: Any) -> AbstractContextManager[SmtpSink]:
    """A started sink (options as SmtpSink takes them), stopped on exit."""
    return running(SmtpSink(**options))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; prints host:port once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--maildir", type=Path, default=None, help="write each message here as <n>.eml")
    args = parser.parse_args(argv)
    sink = SmtpSink(maildir=args.maildir)
    port = sink.start(args.port or None)
    print(f"{sink.hostname}:{port}", flush=True)
    wait_for_signal()
    sink.stop()


if __name__ == "__main__":
    main()

"""The e-mail channel: one MIME message per delivery, handed to an SMTP relay with smtplib.

The message is built with the standard library (`EmailMessage`, `policy.SMTP`): a text part and,
when the template has one, an HTML alternative whose CSS is inlined (css_inline; remote stylesheets
are never fetched, @media rules stay in a <style> block). Its `Message-ID` is derived from the
delivery id, so a resend of a delivery carries the same id and mail logs and receivers can tell.
The headers the message brings (List-Unsubscribe, List-Unsubscribe-Post) are written verbatim:
the email package would turn a long one-click URL into an RFC 2047 encoded-word, which no mail
client reads as a URL. With a DKIM key configured, the exact bytes sent are signed (dkimpy,
relaxed/relaxed) over From, To, Subject, Date, Message-ID and both List-Unsubscribe headers, which
RFC 8058 requires to be signed.

One SMTP connection is kept and reused across sends (STARTTLS or implicit TLS, then AUTH with the
password read from the SecretStore at each login, so a rotation needs no redeploy); a connection the
server dropped while idle is reopened once, before anything is sent. Replies become the port's
errors: a 421 or any failure before DATA was accepted is ChannelUnavailable with maybe_sent=False;
other 4xx are ChannelThrottled; 5xx for the recipient or the content are Rejected (the code keeps the
enhanced status, e.g. "550 5.1.1", so a hard bounce can be told from a policy refusal); a timeout or
a dropped connection during DATA is ChannelUnavailable with maybe_sent=True. Nothing at send time is
OptedOut: complaints arrive later through feedback loops (functions/email_feedback, which finds the
delivery again by its Message-ID: delivery_id_of). SMTP cannot look a send up: lookup() is None.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Final, Literal

import css_inline
import dkim  # type: ignore[import-untyped]

from shared.ports.channels import (
    EMAIL,
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    Rejected,
    SendResult,
)
from shared.ports.secrets import SecretStore

Security = Literal["starttls", "ssl", "none"]

# Signed whenever present; a listed header that is absent is signed as absent, so nobody can add it.
SIGNED_HEADERS: Final = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)
# Headers the channel writes itself; a message may not bring its own.
_OWN: Final = frozenset(
    h.lower()
    for h in (*SIGNED_HEADERS, "Cc", "Bcc", "Sender", "Return-Path", "Content-Transfer-Encoding", "DKIM-Signature")
    if not h.startswith("List-")
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ":"
_MSGID_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_OUR_MSGID = re.compile(rf"^<cdp\.({_MSGID_TOKEN.pattern[1:-1]})@[A-Za-z0-9.-]+>$")  # message_id's form
_ENHANCED = re.compile(r"^([245]\.[0-9]{1,3}\.[0-9]{1,3})\b")
_MAX_LINE: Final = 998  # RFC 5322 2.1.1, without CRLF
_FOLD_AT: Final = 78

_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class Dkim:
    """Who signs: d= and s= of the signature, and the Secret Manager secret holding the PEM key."""

    domain: str
    selector: str
    key_secret: str = "dkim-private-key"


class SmtpEmail:
    name = EMAIL

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        secrets: SecretStore | None = None,
        username: str | None = None,
        password_secret: str = "smtp-password",
        security: Security = "starttls",
        reply_to: str | None = None,
        dkim_key: Dkim | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        throttle_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`sender` is the From header ("Shop <news@shop.example>"); its address is also the
        envelope sender. `secrets` is needed when there is a username (the password) or a DKIM key."""
        if (username or dkim_key) and secrets is None:
            raise ValueError("a SecretStore is needed to read the SMTP password or the DKIM key")
        self._host, self._port, self._security = host, port, security
        self._secrets, self._username, self._password_secret = secrets, username, password_secret
        self._sender = _mailbox(sender, "sender")
        self._envelope_from = parseaddr(self._sender)[1]
        self._domain = self._envelope_from.rpartition("@")[2]
        self._reply_to = _mailbox(reply_to, "reply_to") if reply_to else None
        self._dkim, self._dkim_pem = dkim_key, b""
        self._timeout = timeout
        self._tls = tls_context or ssl.create_default_context()
        self._throttle_seconds = throttle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._smtp: smtplib.SMTP | None = None

    # --- the port -------------------------------------------------------------------------------

    def send(self, message: Message) -> SendResult:
        recipient = _recipient(message.to)
        raw = self.render(message)
        with self._lock:
            reply = self._transaction(recipient, raw)
        return SendResult("sent", provider_id=self.message_id(message.delivery_id), code="250", detail=reply)

    def lookup(self, message: Message) -> SendResult | None:
        """SMTP has no way to ask a relay about an earlier message."""
        return None

    def close(self) -> None:
        with self._lock:
            self._drop(quit_first=True)

    # --- the message ----------------------------------------------------------------------------

    def message_id(self, delivery_id: str) -> str:
        """`<cdp.{delivery id}@{sender domain}>`; an id that is not a safe token is hashed."""
        token = (
            delivery_id if _MSGID_TOKEN.match(delivery_id) else hashlib.sha256(delivery_id.encode()).hexdigest()[:40]
        )
        return f"<cdp.{token}@{self._domain}>"

    def render(self, message: Message) -> bytes:
        """The bytes that go over the wire after DATA: headers, the MIME body and, with a key, the
        DKIM-Signature on top. Raises Rejected for an address no relay could take."""
        if message.channel != EMAIL:
            raise ValueError(f"SmtpEmail sends e-mail, not {message.channel}")
        if not message.subject:
            raise ValueError(f"delivery {message.delivery_id}: an e-mail needs a subject")
        recipient = _recipient(message.to)
        email = EmailMessage(policy=policy.SMTP)
        email["From"] = self._sender
        email["To"] = recipient
        if self._reply_to:
            email["Reply-To"] = self._reply_to
        email["Subject"] = message.subject
        email["Date"] = format_datetime(self._clock())
        email["Message-ID"] = self.message_id(message.delivery_id)
        email.set_content(message.text)
        if message.html:
            email.add_alternative(_INLINER.inline(message.html), subtype="html")
        raw = _verbatim(message.headers) + email.as_bytes()
        if self._dkim is None:
            return raw
        signature = dkim.sign(
            raw,
            self._dkim.selector.encode(),
            self._dkim.domain.encode(),
            self._dkim_key(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h.encode() for h in SIGNED_HEADERS],
        )
        return bytes(signature) + raw

    def _dkim_key(self) -> bytes:
        if not self._dkim_pem:
            assert self._dkim is not None and self._secrets is not None
            self._dkim_pem = self._secrets.get(self._dkim.key_secret).encode()
        return self._dkim_pem

    # --- SMTP -----------------------------------------------------------------------------------

    def _transaction(self, recipient: str, raw: bytes) -> str:
        smtp = self._mail()
        self._check("RCPT", *self._command(smtp.rcpt, recipient))
        answer: bytes | str
        try:
            code, answer = smtp.data(raw)  # the reply after the content is returned, not raised
        except smtplib.SMTPDataError as exc:  # DATA itself refused: the content was never sent
            code, answer = exc.smtp_code, exc.smtp_error
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise ChannelUnavailable(f"SMTP connection lost during DATA: {exc}", maybe_sent=True) from None
        self._check("DATA", code, answer)
        return f"{code} {_text(answer)}"

    def _mail(self) -> smtplib.SMTP:
        """MAIL FROM on the kept connection; one the relay closed while idle (dropped, or a 421
        timeout) is replaced once by a new one, nothing having been sent on it."""
        reused = self._smtp is not None
        smtp = self._session()
        try:
            code, reply = smtp.mail(self._envelope_from)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            if reused:
                return self._mail()
            raise ChannelUnavailable(f"SMTP connection lost before MAIL: {exc}", maybe_sent=False) from None
        if reused and code == 421:
            self._drop()
            return self._mail()
        self._check("MAIL", code, reply)
        return smtp

    def _command(self, call: Callable[[str], tuple[int, bytes]], argument: str) -> tuple[int, bytes]:
        """A command before DATA: losing the connection here means nothing was sent."""
        try:
            return call(argument)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise ChannelUnavailable(f"SMTP connection lost: {exc}", maybe_sent=False) from None

    def _check(self, stage: str, code: int, reply: bytes | str) -> None:
        if 200 <= code < 300:
            return
        text = _text(reply)
        enhanced = _ENHANCED.match(text)
        reference = f"{code} {enhanced.group(1)}" if enhanced else str(code)
        detail = f"SMTP {stage} refused: {code} {text}"
        if code == 421:  # the relay is closing the session
            self._drop()
            raise ChannelUnavailable(detail, code=reference, maybe_sent=False)
        self._reset()
        if 400 <= code < 500:
            raise ChannelThrottled(detail, retry_after=self._throttle_seconds, code=reference)
        if stage == "MAIL":  # our sender is refused: every message would be
            raise ChannelUnavailable(detail, code=reference, maybe_sent=False)
        raise Rejected(detail, code=reference)

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        try:
            smtp = self._connect()
        except smtplib.SMTPResponseException as exc:  # a 421/554 greeting, a refused EHLO, STARTTLS or AUTH
            raise ChannelUnavailable(
                f"SMTP session refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                code=str(exc.smtp_code),
                maybe_sent=False,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failed, no STARTTLS or AUTH
            raise ChannelUnavailable(f"SMTP session failed: {exc}", maybe_sent=False) from None
        self._smtp = smtp
        return smtp

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self._security == "ssl":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=self._tls)
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            smtp.ehlo()
            if self._security == "starttls":
                smtp.starttls(context=self._tls)  # SMTPNotSupportedError when not offered: never plaintext
                smtp.ehlo()
            if self._username:
                assert self._secrets is not None
                smtp.login(self._username, self._secrets.get(self._password_secret))
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _reset(self) -> None:
        """After a refusal, RSET so the kept connection starts the next message clean."""
        if self._smtp is None:
            return
        try:
            code, _ = self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            code = -1
        if code != 250:
            self._drop()

    def _drop(self, quit_first: bool = False) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if quit_first:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()


def delivery_id_of(message_id: str) -> str | None:
    """The delivery a Message-ID of ours names (SmtpEmail.message_id read back), for a complaint
    report that carries the original message; None for anyone else's. The domain is not compared:
    a sender changed since the send still names our delivery. A hashed id comes back as its hash,
    which names no delivery; the ledger's ids (32 hex digits, ledger.delivery_id) are never hashed."""
    found = _OUR_MSGID.match(message_id.strip())
    return found.group(1) if found else None


def _mailbox(value: str, field: str) -> str:
    """A From/Reply-To value as given ("Name <addr>"), after checking the address in it."""
    name, address = parseaddr(value)
    try:
        if not address or "\r" in value or "\n" in value:
            raise Rejected("no address")
        _recipient(address, field)
    except Rejected:
        raise ValueError(f"{field}: {value!r} is not a mailbox") from None
    return value


def _recipient(address: str, field: str = "to") -> str:
    """The address as it goes into To and RCPT: one ASCII addr-spec (an IDN domain in its xn-- form).
    Anything else is Rejected here, before a connection is opened."""
    try:
        parsed = Address(addr_spec=address.strip())
        domain = parsed.domain.encode("idna").decode("ascii")
        local = parsed.username
        local.encode("ascii")
    except Exception:  # the email package raises several types (HeaderParseError, defects, IndexError)
        local = domain = ""
    if not local or not domain or any(c.isspace() for c in local):
        raise Rejected(f"{field}: {address[:120]!r} is not an e-mail address a relay accepts", code="invalid_address")
    return f"{local}@{domain}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _verbatim(headers: Mapping[str, str]) -> bytes:
    """The message's own headers, byte for byte: ASCII, folded only at spaces already in the value
    (unfolding gives the value back), never encoded."""
    lines: list[bytes] = []
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or name.lower() in _OWN:
            raise ValueError(f"header {name!r} cannot be set by a message")
        if "\r" in value or "\n" in value or not value.isascii() or not value.isprintable():
            raise ValueError(f"header {name}: the value must be printable ASCII on one line")
        lines.append(_fold(f"{name}: {value}").encode("ascii"))
    return b"".join(lines)


def _fold(line: str) -> str:
    """Break before spaces so lines stay near 78 characters, never before the value's first word
    (a parser would keep the space) and never inside a word (a long URL stays whole, up to 998)."""
    out: list[str] = []
    start = line.index(":") + 2
    while len(line) > _FOLD_AT:
        cut = line.rfind(" ", start, _FOLD_AT)
        if cut == -1:
            cut = line.find(" ", start)
        if cut == -1:
            break
        out.append(line[:cut])
        line, start = line[cut:], 1
    out.append(line)
    if any(len(part) > _MAX_LINE for part in out):
        raise ValueError(f"header {out[0].split(':', 1)[0]}: a word longer than {_MAX_LINE} characters")
    return "\r\n".join(out) + "\r\n"

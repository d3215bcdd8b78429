"""SmtpEmail through smtplib to a real SMTP server (aiosmtpd) on a free port.

Each test parses the MIME the sink received: both parts, the inlined CSS, the headers as a mail
client reads them, and the DKIM signature checked by dkimpy against the test key's public half. The
sink answers as relays do (550 user unknown, 421 closing, 451 rate limit, 554 policy, a slow DATA)
and the adapter's errors and `maybe_sent` are asserted for each.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from devstack.fakes.smtp_sink import SmtpSink, running_smtp_sink
from devstack.processes import free_port
from shared.adapters.smtp_email import Dkim, SmtpEmail
from shared.ports.channels import ChannelThrottled, ChannelUnavailable, Message, Rejected
from tests.conftest import wait_for
from tests.fakes import FakeSecrets

SENDER = "새봄마켓 <news@shop.example>"
NOW = datetime(2026, 5, 11, 1, 30, tzinfo=UTC)
ONE_CLICK = (
    "<https://prefs.shop.example/unsubscribe?t=v1.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-AbCdEfGhIjKlMnOpQrStUvWxYz"
    "0123456789_AbCdEfGhIjKlMnOp>, <mailto:unsubscribe@shop.example?subject=unsubscribe%20d-1>"
)
HEADERS = {"List-Unsubscribe": ONE_CLICK, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
HTML = """<html><head><style>
p.lead { color: #1a4d8f; font-size: 16px }
@media (max-width: 600px) { p.lead { font-size: 14px } }
</style></head><body><p class="lead">지난 60일 동안 뵙지 못했어요.</p><p>혜택을 확인하세요.</p></body></html>"""


def message(delivery_id: str = "d-0001", to: str = "minji@example.com", **changes: Any) -> Message:
    fields: dict[str, Any] = {
        "delivery_id": delivery_id,
        "channel": "email",
        "to": to,
        "subject": "(광고) 새봄마켓 회원 혜택 안내",
        "text": "(광고) 지난 60일 동안 뵙지 못했어요.\n혜택을 확인하세요.\n수신거부: https://prefs.shop.example/",
        "html": HTML,
        "headers": HEADERS,
    }
    return Message(**(fields | changes))


def received(sink: SmtpSink, index: int = -1) -> EmailMessage:
    parsed = message_from_bytes(sink.messages[index].data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def channel(sink: SmtpSink, **options: Any) -> SmtpEmail:
    defaults: dict[str, Any] = {"security": "none", "reply_to": "help@shop.example", "clock": lambda: NOW}
    return SmtpEmail(sink.hostname, sink.port, SENDER, **(defaults | options))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with running_smtp_sink() as running:
        yield running


@pytest.fixture
def email(sink: SmtpSink) -> Iterator[SmtpEmail]:
    adapter = channel(sink)
    yield adapter
    adapter.close()


# --- what arrives ----------------------------------------------------------------------------------


def test_the_message_arrives_as_text_and_html_alternatives_with_the_css_inlined(
    sink: SmtpSink, email: SmtpEmail
) -> None:
    result = email.send(message())

    assert (result.state, result.code) == ("sent", "250")
    assert result.provider_id == "<cdp.d-0001@shop.example>"
    assert result.detail == "250 2.0.0 Ok: queued as SINK000001"
    [got] = sink.messages
    assert (got.mail_from, got.rcpt_tos, got.tls, got.login) == (
        "news@shop.example",
        ("minji@example.com",),
        False,
        None,
    )
    mail = received(sink)
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    assert text.get_content() == message().text.replace("\n", "\r\n") + "\r\n"  # MIME's canonical line ends
    page = html.get_content()
    assert '<p class="lead" style="color: #1a4d8f;font-size: 16px;">지난 60일 동안 뵙지 못했어요.</p>' in page
    assert "p.lead { color" not in page  # the rule went into the element
    assert "@media (max-width: 600px)" in page  # kept: inline styles cannot express it


def test_headers_as_a_mail_client_reads_them(sink: SmtpSink, email: SmtpEmail) -> None:
    email.send(message())

    mail = received(sink)
    assert mail["From"] == SENDER and mail["From"].addresses[0].addr_spec == "news@shop.example"
    assert mail["To"] == "minji@example.com"
    assert mail["Reply-To"] == "help@shop.example"
    assert mail["Subject"] == "(광고) 새봄마켓 회원 혜택 안내"
    assert parsedate_to_datetime(mail["Date"]) == NOW
    assert mail["Message-ID"] == "<cdp.d-0001@shop.example>"
    assert mail["List-Unsubscribe"] == ONE_CLICK  # unfolded, it is the value given
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw = sink.messages[0].data
    # Byte for byte, folded only at the space between the two URIs; never an RFC 2047 encoded-word.
    assert (
        b"\r\nList-Unsubscribe: " + ONE_CLICK.replace(", <mailto", ",\r\n <mailto").encode() + b"\r\n" in b"\r\n" + raw
    )
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_a_resend_of_a_delivery_carries_the_same_message_id(sink: SmtpSink, email: SmtpEmail) -> None:
    email.send(message("d-0002"))
    email.send(message("d-0002"))
    email.send(message("d-0003"))
    email.send(message("run 7/customer 42/email"))  # not a token: hashed, still stable

    ids = [received(sink, i)["Message-ID"] for i in range(4)]
    assert ids[0] == ids[1] == "<cdp.d-0002@shop.example>"
    assert ids[2] == "<cdp.d-0003@shop.example>"
    assert re.fullmatch(r"<cdp\.[0-9a-f]{40}@shop\.example>", ids[3])
    assert ids[3] == email.message_id("run 7/customer 42/email")
    assert sink.sessions == 1  # one connection kept for all four


# --- DKIM ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key() -> tuple[str, bytes]:
    """A test RSA key: its PEM, and the TXT record publishing its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns(record: bytes) -> Any:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"mail2026._domainkey.shop.example." else None

    return lookup


def test_dkim_signature_verifies_and_signs_both_list_unsubscribe_headers(
    sink: SmtpSink, dkim_key: tuple[str, bytes]
) -> None:
    pem, record = dkim_key
    secrets = FakeSecrets(values={"dkim-private-key": pem})
    email = channel(sink, secrets=secrets, dkim_key=Dkim("shop.example", "mail2026"))

    email.send(message())
    email.send(message("d-0005"))

    raw = sink.messages[0].data
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=dns(record)) is True
    mail = received(sink, 0)
    tags = dict(
        part.strip().split("=", 1) for part in re.sub(r"\s+", "", str(mail["DKIM-Signature"])).split(";") if part
    )
    assert (tags["d"], tags["s"], tags["c"], tags["a"]) == ("shop.example", "mail2026", "relaxed/relaxed", "rsa-sha256")
    signed = set(tags["h"].lower().split(":"))
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} <= signed
    # A relay or an attacker changing the one-click URL breaks the signature.
    tampered = raw.replace(b"unsubscribe?t=v1.", b"unsubscribe?t=v2.")
    assert tampered != raw and dkim.verify(tampered, dnsfunc=dns(record)) is False
    assert dkim.verify(sink.messages[1].data, dnsfunc=dns(record)) is True
    assert secrets.asked == [("get", "dkim-private-key")]  # read once, kept for the instance


# --- refusals --------------------------------------------------------------------------------------


def test_550_user_unknown_is_rejected_and_the_connection_goes_on(sink: SmtpSink, email: SmtpEmail) -> None:
    sink.reject("rcpt", "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown")

    with pytest.raises(Rejected) as refused:
        email.send(message(to="gone@example.com"))

    assert refused.value.code == "550 5.1.1"
    assert "User unknown" in str(refused.value)
    assert sink.messages == []
    email.send(message("d-0006"))  # after RSET, on the same connection
    assert [m.rcpt_tos for m in sink.messages] == [("minji@example.com",)]
    assert sink.sessions == 1


def test_553_and_a_policy_refusal_after_data_are_rejected(sink: SmtpSink, email: SmtpEmail) -> None:
    sink.reject("rcpt", "553 5.1.3 Bad recipient address syntax")
    sink.reject("data", "554 5.7.1 Message rejected as spam")

    with pytest.raises(Rejected) as syntax:
        email.send(message())
    with pytest.raises(Rejected) as policy_refusal:
        email.send(message())

    assert (syntax.value.code, policy_refusal.value.code) == ("553 5.1.3", "554 5.7.1")
    assert sink.messages == []


def test_421_is_unavailable_nothing_sent_and_the_next_send_reconnects(sink: SmtpSink, email: SmtpEmail) -> None:
    sink.reject("mail", "421 4.7.0 shop.example: too many connections, try again later")

    with pytest.raises(ChannelUnavailable) as closing:
        email.send(message())

    assert closing.value.code == "421 4.7.0" and closing.value.maybe_sent is False
    assert sink.messages == []
    email.send(message())
    assert len(sink.messages) == 1 and sink.sessions == 2


def test_a_4xx_rate_limit_is_throttled(sink: SmtpSink) -> None:
    email = channel(sink, throttle_seconds=90.0)
    sink.reject("rcpt", "451 4.7.1 Rate limit exceeded, try again in a while")

    with pytest.raises(ChannelThrottled) as slow:
        email.send(message())

    assert (slow.value.code, slow.value.retry_after) == ("451 4.7.1", 90.0)
    assert sink.messages == []


def test_a_timeout_during_data_may_have_sent_the_message(sink: SmtpSink) -> None:
    email = channel(sink, timeout=0.5)
    sink.stall("data", 1.5)

    with pytest.raises(ChannelUnavailable) as unknown:
        email.send(message())

    assert unknown.value.maybe_sent is True
    # The relay took it after all: exactly why the caller may not resend blindly.
    wait_for(lambda: sink.messages, timeout=5)
    assert len(sink.messages) == 1
    assert email.lookup(message()) is None  # and SMTP cannot tell


def test_an_idle_connection_the_relay_dropped_is_reopened_before_anything_is_sent(sink: SmtpSink) -> None:
    email = channel(sink)
    email.send(message("d-0010"))
    port = sink.port
    sink.stop()
    sink.start(port)  # the kept connection is now dead

    email.send(message("d-0011"))

    assert [received(sink, i)["Message-ID"] for i in range(2)] == [
        "<cdp.d-0010@shop.example>",
        "<cdp.d-0011@shop.example>",
    ]
    assert sink.sessions == 2


def test_nothing_listening_is_unavailable_and_not_sent() -> None:
    email = SmtpEmail("127.0.0.1", free_port(), SENDER, security="none", timeout=2.0)

    with pytest.raises(ChannelUnavailable) as down:
        email.send(message())

    assert down.value.maybe_sent is False


@pytest.mark.parametrize(
    "address",
    ["not an address", "minji@", "a@b@example.com", "김민지@example.com", "a@example.com, b@example.com", ""],
)
def test_an_address_no_relay_takes_is_rejected_before_connecting(
    sink: SmtpSink, email: SmtpEmail, address: str
) -> None:
    with pytest.raises(Rejected) as bad:
        email.send(message(to=address))

    assert bad.value.code == "invalid_address"
    assert sink.sessions == 0 and sink.messages == []


def test_an_idn_domain_goes_out_in_its_ascii_form(sink: SmtpSink, email: SmtpEmail) -> None:
    email.send(message(to="minji@새봄.한국"))

    ascii_form = "minji@" + "새봄.한국".encode("idna").decode()
    assert ascii_form.startswith("minji@xn--") and ascii_form.endswith(".xn--3e0b707e")
    assert sink.messages[0].rcpt_tos == (ascii_form,)
    assert received(sink)["To"] == ascii_form


def test_a_header_the_channel_owns_or_a_line_break_is_refused(sink: SmtpSink, email: SmtpEmail) -> None:
    with pytest.raises(ValueError, match="cannot be set by a message"):
        email.send(message(headers={"Bcc": "someone@example.com"}))
    with pytest.raises(ValueError, match="printable ASCII on one line"):
        email.send(message(headers={"List-Unsubscribe": "<https://x.example/>\r\nBcc: someone@example.com"}))
    assert sink.messages == []


# --- STARTTLS and AUTH -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client's that trusts it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    return server, client


def test_starttls_then_login_with_the_password_from_the_secret_store(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server, client = tls
    secrets = FakeSecrets(values={"smtp-password": "relay-pass-7"})
    with running_smtp_sink(username="cdp-mailer", password="relay-pass-7", tls_context=server) as sink:
        email = SmtpEmail(
            sink.hostname,
            sink.port,
            SENDER,
            secrets=secrets,
            username="cdp-mailer",
            tls_context=client,
            clock=lambda: NOW,
        )
        email.send(message())
        email.close()

    [got] = sink.messages
    assert (got.tls, got.login) == (True, "cdp-mailer")
    assert secrets.asked == [("get", "smtp-password")]


def test_a_wrong_password_is_unavailable_and_nothing_is_sent(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client = tls
    secrets = FakeSecrets(values={"smtp-password": "rotated-away"})
    with running_smtp_sink(username="cdp-mailer", password="relay-pass-7", tls_context=server) as sink:
        email = SmtpEmail(sink.hostname, sink.port, SENDER, secrets=secrets, username="cdp-mailer", tls_context=client)
        with pytest.raises(ChannelUnavailable) as refused:
            email.send(message())

    assert refused.value.code == "535" and refused.value.maybe_sent is False
    assert sink.messages == []


def test_starttls_required_but_not_offered_never_falls_back_to_plaintext(sink: SmtpSink) -> None:
    email = SmtpEmail(sink.hostname, sink.port, SENDER, security="starttls")

    with pytest.raises(ChannelUnavailable) as plain:
        email.send(message())

    assert plain.value.maybe_sent is False
    assert "STARTTLS" in str(plain.value)
    assert sink.messages == []

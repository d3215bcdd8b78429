"""A fake of Twilio's Messages API and of the webhooks Twilio sends: a real HTTP server on a free port.

It serves what shared/adapters/twilio_sms.py calls through the real `twilio` client, under
`/2010-04-01/Accounts/<AccountSid>/`:

- POST Messages.json (To, Body, MessagingServiceSid or From, StatusCallback) -> 201 and the Message
  resource (status `accepted` with a Messaging Service, `queued` with a From number);
- GET Messages/<Sid>.json -> the resource, or 404 with code 20404;
- GET Messages.json?To=&PageSize=&Page= -> a page `{"messages": [...], "next_page_uri", ...}`,
  newest first.

Requests need HTTP Basic auth with the account SID and auth token (else 401, code 20003). Errors have
the REST API's shape, `{"code", "message", "more_info", "status"}`, with Twilio's codes: 21211 (not a
valid phone number), 21614 (not a mobile number), 21610 (the recipient replied STOP), 21602 (no
body), 21705 and 21701 (a Messaging Service SID of the wrong form, or not this account's), 20429
(too many requests, with Retry-After), 20003, 20404, 20500 and 20503. Message texts are
the fake's own unless noted.

Webhooks: `set_status(sid, "delivered")` moves a message on and POSTs its StatusCallback, and
`inbound(from_, "STOP")` POSTs an incoming message to the configured inbound URL (and opts the number
out, as Twilio's default opt-out handling does). Each request is signed as Twilio signs them:
X-Twilio-Signature = base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted
by name)), computed here independently of the SDK's RequestValidator.

Run it in-process (`running_twilio_api()`, tests) or as a process (`python -m devstack.fakes.twilio_api
--port N --account-sid AC... --auth-token T --messaging-service-sid MG... [--auto-deliver]`, the
demo), where `GET /_fake/messages` reports each message's status and `--auto-deliver` sends the `sent`
and `delivered` callbacks for every new message.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

from devstack.fakes.serving import Answer, HttpServing, running, wait_for_signal

API_VERSION: Final = "2010-04-01"
OPT_OUT_KEYWORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS: Final = frozenset({"START", "YES", "UNSTOP"})
FINAL_STATUSES: Final = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages(?:/(SM[0-9a-f]{32}))?\.json$")

# Posts a webhook: (url, form body, headers) -> the HTTP status the receiver answered.
Poster = Callable[[str, bytes, Mapping[str, str]], int]


@dataclass(frozen=True)
class TwilioFailure:
    """One error answer, as the REST API sends it."""

    http_status: int
    code: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.http_status,
        }


def invalid_number(to: str) -> TwilioFailure:
    return TwilioFailure(400, 21211, f"The 'To' number {to} is not a valid phone number.")


def not_mobile(to: str) -> TwilioFailure:
    return TwilioFailure(400, 21614, f"'To' number {to} is not a valid mobile number")


def unsubscribed(to: str) -> TwilioFailure:
    return TwilioFailure(400, 21610, "Attempt to send to unsubscribed recipient")


TOO_MANY_REQUESTS: Final = TwilioFailure(429, 20429, "Too Many Requests", headers={"Retry-After": "2"})
SERVICE_UNAVAILABLE: Final = TwilioFailure(503, 20503, "Service Unavailable")
INTERNAL_ERROR: Final = TwilioFailure(500, 20500, "Internal Server Error")
AUTHENTICATE: Final = TwilioFailure(401, 20003, "Authenticate")


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature of a form POST to `url` (query string included) with these parameters."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def post_form(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    """Twilio's side of a webhook: a form POST; the receiver's status (any answer counts)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    body: str
    messaging_service_sid: str | None
    from_: str | None
    status: str
    status_callback: str | None
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    error_code: int | None = None
    direction: str = "outbound-api"

    def resource(self) -> dict[str, Any]:
        """The Message resource's JSON, field for field as the API returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        segments = 1 if len(self.body) <= (160 if self.body.isascii() else 70) else -(-len(self.body) // 67)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_sent) if self.date_sent else None,
            "date_updated": format_datetime(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "tags": None,
            "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass
class Recorded:
    """One request as the fake received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0

    def field(self, name: str) -> str | None:
        values = self.form.get(name) or self.query.get(name)
        return values[-1] if values else None


@dataclass(frozen=True)
class Webhook:
    """A webhook the fake sent, and what the receiver answered."""

    url: str
    params: dict[str, str]
    signature: str
    answered: int


class TwilioApiFake(HttpServing):
    """State, failure injection, webhooks and the request logic; the HTTP server calls handle()."""

    label = "the fake Twilio API"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str,
        *,
        sender: str = "+15005550006",
        inbound_url: str | None = None,
        post: Poster = post_form,
        auto_deliver: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messaging_service_sid = messaging_service_sid
        self.sender = sender  # the number the Messaging Service's pool sends from
        self.inbound_url = inbound_url  # the Messaging Service's incoming-message webhook
        self.post = post
        self.auto_deliver = auto_deliver
        self.clock = clock
        self.requests: list[Recorded] = []
        self.messages: dict[str, FakeMessage] = {}
        self.opted_out: set[str] = set()
        self.webhooks: list[Webhook] = []
        self._failures: list[TwilioFailure] = []
        self._delays: list[float] = []
        self._serial = itertools.count(1)
        self._lock = threading.Lock()

    # --- what tests set and read -----------------------------------------------------------------

    def fail_next(self, failure: TwilioFailure, times: int = 1) -> None:
        """Answer the next `times` API requests with this error."""
        with self._lock:
            self._failures.extend([failure] * times)

    def delay_next(self, seconds: float) -> None:
        """Answer the next API request only after `seconds`, having done what it asked: a create
        whose answer never reaches a client that timed out still creates the message."""
        with self._lock:
            self._delays.append(seconds)

    def created(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> Webhook | None:
        """Move a message to `status` (sent, delivered, undelivered, failed...) and POST its status
        callback, if it has one; returns the webhook sent."""
        with self._lock:
            message = self.messages[sid]
            now = self.clock()
            message.status, message.error_code, message.date_updated = status, error_code, now
            if status in {"sent", "delivered", "undelivered"} and message.date_sent is None:
                message.date_sent = now
            if message.from_ is None and status != "failed":
                message.from_ = self.sender
            url = message.status_callback
            params = {
                "AccountSid": message.account_sid,
                "ApiVersion": API_VERSION,
                "From": message.from_ or "",
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": message.to,
            }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        if status in {"delivered", "undelivered"}:
            params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
        return self._webhook(url, params) if url else None

    def inbound(self, from_: str, body: str, *, opt_out_type: str | None = None) -> Webhook:
        """A person's reply to the Messaging Service, POSTed to `inbound_url`. A STOP keyword opts
        the number out (later sends answer 21610); START opts it back in."""
        if self.inbound_url is None:
            raise RuntimeError("no inbound_url configured")
        keyword = body.strip().upper()
        with self._lock:
            if keyword in OPT_OUT_KEYWORDS:
                self.opted_out.add(from_)
            elif keyword in OPT_IN_KEYWORDS:
                self.opted_out.discard(from_)
        sid = self._sid("SM")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "MessageSid": sid,
            "MessagingServiceSid": self.messaging_service_sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": self.sender,
        }
        if opt_out_type:
            params["OptOutType"] = opt_out_type  # Advanced Opt-Out: STOP, START or HELP
        return self._webhook(self.inbound_url, params)

    def _webhook(self, url: str, params: dict[str, str]) -> Webhook:
        signed = signature(self.auth_token, url, params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signed,
            "User-Agent": "TwilioProxy/1.1",
        }
        answered = self.post(url, urlencode(params).encode(), headers)
        sent = Webhook(url, params, signed, answered)
        with self._lock:
            self.webhooks.append(sent)
        return sent

    def _sid(self, prefix: str) -> str:
        return prefix + hashlib.md5(f"{prefix}{next(self._serial)}{secrets.token_hex(4)}".encode()).hexdigest()

    # --- serving ---------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        lowered = {name.lower(): value for name, value in headers.items()}
        query = parse_qs(parts.query, keep_blank_values=True)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body else {}
        if parts.path == "/_fake/messages":
            with self._lock:
                return Answer(200, {"messages": [m.resource() for m in self.messages.values()]})
        record = Recorded(method, parts.path, query, form, lowered)
        with self._lock:
            self.requests.append(record)
            answer = self._answer(method, parts.path, {k: v[-1] for k, v in {**query, **form}.items()}, lowered)
        record.status = answer.status
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
        if delay:
            time.sleep(delay)
        if self.auto_deliver and answer.status == 201 and isinstance(answer.body, dict):
            threading.Thread(target=self._deliver_later, args=(answer.body["sid"],), daemon=True).start()
        return answer

    def _deliver_later(self, sid: str) -> None:
        for status in ("sent", "delivered"):
            self.set_status(sid, status)

    # --- Messages semantics (under the lock) -----------------------------------------------------

    def _answer(self, method: str, path: str, params: dict[str, str], headers: Mapping[str, str]) -> Answer:
        match = _ACCOUNT_PATH.match(path)
        if match is None:
            return _failed(TwilioFailure(404, 20404, f"The requested resource {path} was not found"))
        account, sid = match.groups()
        if not self._authorised(account, headers.get("authorization", "")):
            return _failed(AUTHENTICATE)
        if self._failures:
            return _failed(self._failures.pop(0))
        if sid is not None:
            found = self.messages.get(sid)
            if method != "GET" or found is None:
                return _failed(TwilioFailure(404, 20404, f"The requested resource {path} was not found"))
            return Answer(200, found.resource())
        if method == "POST":
            return self._create(account, params)
        if method == "GET":
            return Answer(200, self._page(path, params))
        return _failed(TwilioFailure(405, 20004, "Method not allowed"))

    def _authorised(self, account: str, authorization: str) -> bool:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except ValueError:
            return False
        return (
            account == self.account_sid
            and hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
        )

    def _create(self, account: str, params: Mapping[str, str]) -> Answer:
        to, body = params.get("To", ""), params.get("Body", "")
        service, from_ = params.get("MessagingServiceSid"), params.get("From")
        if not to:
            return _failed(TwilioFailure(400, 21604, "A 'To' phone number is required."))
        if not _E164.match(to):
            return _failed(invalid_number(to))
        if service is None and from_ is None:
            return _failed(TwilioFailure(400, 21603, "A 'From' phone number is required."))
        if service is not None and not re.fullmatch(r"MG[0-9a-f]{32}", service):
            return _failed(TwilioFailure(400, 21705, f"The Messaging Service Sid {service} is invalid."))
        if service is not None and service != self.messaging_service_sid:
            return _failed(TwilioFailure(400, 21701, f"The Messaging Service {service} does not exist."))
        if not body:
            return _failed(TwilioFailure(400, 21602, "Message body is required."))
        if len(body) > 1600:
            return _failed(TwilioFailure(400, 21617, "The concatenated message body exceeds the 1600 character limit."))
        if to in self.opted_out:
            return _failed(unsubscribed(to))
        now = self.clock()
        sid = self._sid("SM")
        message = FakeMessage(
            sid,
            account,
            to,
            body,
            service,
            from_,
            "accepted" if service else "queued",
            params.get("StatusCallback"),
            now,
            now,
        )
        self.messages[sid] = message
        return Answer(201, message.resource())

    def _page(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """A page of the list, newest first, filtered by To and From as the API filters."""
        size = max(1, min(1000, int(params.get("PageSize") or 50)))
        page = max(0, int(params.get("Page") or 0))
        found = [
            m
            for m in reversed(self.messages.values())
            if (not params.get("To") or m.to == params["To"]) and (not params.get("From") or m.from_ == params["From"])
        ]
        rows = found[page * size : (page + 1) * size]
        base = {k: v for k, v in params.items() if k in ("To", "From")}

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**base, 'PageSize': size, 'Page': number})}"

        more = (page + 1) * size < len(found)
        return {
            "messages": [m.resource() for m in rows],
            "end": page * size + len(rows) - 1 if rows else 0,
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": page * size,
            "uri": page_uri(page),
        }


def _failed(failure: TwilioFailure) -> Answer:
    return Answer(failure.http_status, failure.body(), failure.headers)


def running_twilio_api(
    account_sid: str, auth_token: str, messaging_service_sid: str, **options: Any
) -> AbstractContextManager[TwilioApiFake]:
    """A started fake (options as TwilioApiFake takes them), stopped on exit."""
    return running(TwilioApiFake(account_sid, auth_token, messaging_service_sid, **options))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; prints the base URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--messaging-service-sid", required=True)
    parser.add_argument("--inbound-url", default=None)
    parser.add_argument(
        "--auto-deliver", action="store_true", help="send sent and delivered callbacks for each message"
    )
    args = parser.parse_args(argv)
    fake = TwilioApiFake(
        args.account_sid,
        args.auth_token,
        args.messaging_service_sid,
        inbound_url=args.inbound_url,
        auto_deliver=args.auto_deliver,
    )
    print(fake.start(args.port), flush=True)
    wait_for_signal()
    fake.stop()


if __name__ == "__main__":
    main()

"""The SMS channel: Twilio's Messages API through the real `twilio` client, from a Messaging Service.

Each message is created from the Messaging Service (Twilio picks the sender from its pool) with the
rendered body and a StatusCallback of `<status URL>?d=<delivery id>`: Twilio signs the whole URL it
calls, so the delivery id the webhook reads is covered by X-Twilio-Signature (functions/twilio_status).
The client's REST domain can be pointed elsewhere (`api_url`, the local fake) by setting
`client.api.base_url`; `edge` and `region` only rewrite *.twilio.com host names. The auth token is
read from the SecretStore when the client is made, and again after Twilio refuses it (a rotation).

Twilio's errors become the port's: 21610 (the person replied STOP) OptedOut; 429 or 20429
ChannelThrottled with Retry-After; 401/20003 and a Messaging Service that is not ours (21701, 21705)
ChannelUnavailable with maybe_sent=False (every send would fail; nothing was created); 5xx, a read
timeout or a dropped connection ChannelUnavailable with maybe_sent=True; any other 4xx (21211 not a
valid number, 21614 not a mobile number, 21408 region not enabled, ...) Rejected. A number that is
not E.164 is Rejected before any call.

Messages create takes no idempotency key, so `lookup` finds an earlier send without one. With the
message SID (the caller kept it from `send`), it fetches the message. Without it (the create timed
out), it lists the newest messages to that number, at most `lookup_depth`, and looks at those from
our Messaging Service created within `lookup_window`: one with the same body is the send ("found");
none at all, in a listing that ended before `lookup_depth`, is "absent" (a resend cannot duplicate);
anything else (messages from us with other bodies, or a full page) is None, unknown. The Message
resource does not echo the StatusCallback, so the delivery id cannot be matched directly, and a
match on the body alone could be another delivery of the same text to the same person inside the
window: then the delivery counts as sent, never as sent twice. Look up only after the client's
timeout has passed: a create still in flight at Twilio is not listed yet.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException  # type: ignore[import-untyped]
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.ports.channels import (
    SMS,
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    OptedOut,
    Rejected,
    SendResult,
    SendState,
)
from shared.ports.secrets import SecretStore

E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
UNSUBSCRIBED: Final = 21610
TOO_MANY_REQUESTS: Final = 20429
NOT_OURS: Final = frozenset({20003, 20404, 21701, 21705})  # credentials, account or Messaging Service
STATES: Final[Mapping[str, SendState]] = {
    "queued": "accepted",
    "accepted": "accepted",
    "scheduled": "accepted",
    "sending": "accepted",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}

# The client logs each request's URL and query (a phone number when listing) at INFO: kept out.
_HTTP_LOG = logging.getLogger(__name__ + ".http")
_HTTP_LOG.setLevel(logging.WARNING)


class _Http(TwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """The SDK's HTTP client, remembering each thread's last response headers (Retry-After), which
    TwilioRestException does not carry."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_HTTP_LOG)
        self._last = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._last.headers = {}
        response = super().request(*args, **kwargs)
        self._last.headers = dict(response.headers or {})
        return response

    def last_headers(self) -> Mapping[str, str]:
        return getattr(self._last, "headers", {})


class TwilioSms:
    name = SMS

    def __init__(
        self,
        account_sid: str,
        messaging_service_sid: str,
        status_url: str,
        secrets: SecretStore,
        *,
        auth_token_secret: str = "twilio-auth-token",
        api_url: str | None = None,
        timeout: float = 10.0,
        lookup_window: timedelta = timedelta(hours=24),
        lookup_depth: int = 50,
        throttle_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`status_url` is the status webhook's public URL (CDP_TWILIO_STATUS_URL), `api_url` the
        REST domain (None: Twilio's own)."""
        self._account_sid = account_sid
        self._service = messaging_service_sid
        self._status_url = status_url
        self._secrets, self._token_secret = secrets, auth_token_secret
        self._api_url = api_url.rstrip("/") if api_url else None
        self._timeout = timeout
        self._window, self._depth = lookup_window, lookup_depth
        self._throttle_seconds = throttle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._rest: Any = None
        self._http: _Http | None = None

    # --- the port -------------------------------------------------------------------------------

    def send(self, message: Message) -> SendResult:
        if message.channel != SMS:
            raise ValueError(f"TwilioSms sends SMS, not {message.channel}")
        if not E164.match(message.to):
            raise Rejected(f"to: {message.to[:40]!r} is not an E.164 phone number", code="invalid_number")
        if not message.text:
            raise ValueError(f"delivery {message.delivery_id}: an SMS needs a body")
        created = self._call(
            lambda client: client.messages.create(
                to=message.to,
                messaging_service_sid=self._service,
                body=message.text,
                status_callback=self.status_callback(message.delivery_id),
            )
        )
        return SendResult("accepted", provider_id=created.sid, code=created.status)

    def lookup(self, message: Message, provider_id: str | None = None) -> SendResult | None:
        """What became of an earlier send: by its SID when known, else by listing (module doc)."""
        if provider_id:
            try:
                found = self._call(lambda client: client.messages(provider_id).fetch())
            except ChannelUnavailable as gone:
                if gone.code == "20404":  # no such message in this account
                    return SendResult("absent", provider_id=provider_id, code="20404")
                raise
            return _result(found)
        if not E164.match(message.to):
            return SendResult("absent", code="invalid_number")  # send() refuses it before any call
        listed = self._call(
            lambda client: client.messages.list(to=message.to, limit=self._depth, page_size=self._depth)
        )
        since = self._clock() - self._window
        ours = [
            m
            for m in listed
            if m.messaging_service_sid == self._service
            and str(m.direction or "").startswith("outbound")
            and (m.date_created is None or m.date_created >= since)
        ]
        same = [m for m in ours if m.body == message.text]
        if same:
            return _result(same[-1])  # the oldest match: the first attempt
        if not ours and len(listed) < self._depth:
            return SendResult("absent")
        return None

    # --- helpers --------------------------------------------------------------------------------

    def status_callback(self, delivery_id: str) -> str:
        """The StatusCallback URL: the webhook's public URL with the delivery id as `d`."""
        joiner = "&" if "?" in self._status_url else "?"
        return f"{self._status_url}{joiner}{urlencode({'d': delivery_id})}"

    def _client(self) -> Any:
        with self._lock:
            if self._rest is None:
                http = _Http(self._timeout)
                client = Client(self._account_sid, self._secrets.get(self._token_secret), http_client=http)
                if self._api_url:
                    client.api.base_url = self._api_url
                self._rest, self._http = client, http
            return self._rest

    def _call(self, call: Callable[[Any], Any]) -> Any:
        client = self._client()
        try:
            return call(client)
        except TwilioRestException as exc:
            raise self._refusal(exc) from None
        except requests.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            before = isinstance(exc, requests.ConnectTimeout) or isinstance(
                reason, NewConnectionError | ConnectTimeoutError
            )
            raise ChannelUnavailable(f"Twilio unreachable: {type(exc).__name__}", maybe_sent=not before) from None
        except (requests.RequestException, TwilioException) as exc:  # a read timeout, a page that failed
            raise ChannelUnavailable(f"Twilio did not answer: {type(exc).__name__}", maybe_sent=True) from None

    def _refusal(self, exc: TwilioRestException) -> Exception:
        code = int(exc.code) if exc.code is not None else exc.status
        detail = f"Twilio refused ({exc.status}, {code}): {exc.msg}"
        if code == UNSUBSCRIBED:
            return OptedOut(detail, code=str(code))
        if exc.status == 429 or code == TOO_MANY_REQUESTS:
            return ChannelThrottled(detail, retry_after=self._retry_after(), code=str(code))
        if exc.status in (401, 403) or code in NOT_OURS:
            if exc.status in (401, 403):
                with self._lock:
                    self._rest = None  # read the token again next time: it may have been rotated
            return ChannelUnavailable(detail, code=str(code), maybe_sent=False)
        if exc.status >= 500:
            return ChannelUnavailable(detail, code=str(code), maybe_sent=True)
        return Rejected(detail, code=str(code))

    def _retry_after(self) -> float:
        value = self._http.last_headers().get("Retry-After", "") if self._http else ""
        try:
            return max(float(value), 0.0)
        except ValueError:
            return self._throttle_seconds


def _result(message: Any) -> SendResult:
    code = str(message.error_code) if message.error_code else message.status
    return SendResult(STATES.get(str(message.status), "unknown"), provider_id=message.sid, code=code)

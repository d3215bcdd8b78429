"""Domestic SMS/LMS: NHN Cloud's SMS API v3.0 for Korean mobile numbers, the type chosen by size in EUC-KR.

Korean carriers take EUC-KR only and count bytes. A text of at most 90 bytes goes as an SMS (`POST
/sms/v3.0/appKeys/{appKey}/sender/sms`); up to 2,000 bytes as an LMS (`/sender/mms` without
attachments) with a title of at most 40 bytes: the message's subject, else the deployment's title
(CDP_NHN_SMS_LMS_TITLE), else the text's first line, cut at a character. NHN itself takes up to 255
characters as an SMS and cuts what the phone shows at 90 bytes, so that choice is never left to it.
Refused before any call: a longer text (`message_too_long`, and deliver tries the next channel), a
character EUC-KR lacks (`not_euc_kr`), a number that is not a Korean mobile (`invalid_number`).

An advertisement, a text starting with "(광고)" (the Network Act's form, shared/messaging/adform.py,
puts it on every advertising message), goes to `/sender/ad-sms` or `/sender/ad-mms` instead, and its
LMS title starts with the mark too. NHN checks the mark and the free 080 opt-out line at the end
(-6003 without them) and refuses the numbers on its 080 reject list (-6001: the person called the
080 number; OptedOut, so deliver records the opt-out).

`sendNo` is the sender number registered in NHN's console (CDP_NHN_SMS_SENDER_NUMBER), the secret
key (`X-Secret-Key`) is read from the SecretStore at each request (Secret Manager
`nhn-sms-secret-key`). A send takes one body and title for up to 1,000 recipients (per-recipient
values only through templates registered with NHN), so a batch goes as one request per distinct text
and 1,000 recipients: a text everyone shares in few requests, a personal one (a name, a delivery's
own link) in a request each. Each recipient carries our delivery id as `recipientGroupingKey`; the
campaign id is the `senderGroupingKey`.

| answer | raised | maybe_sent |
|---|---|---|
| a recipient's `resultCode` 0 | SendResult accepted, provider id `<requestId>/<recipientSeq>` | — |
| a recipient's -6001 (on the 080 reject list) | OptedOut | — |
| a recipient's other code (-2019 invalid number, ...) | Rejected | — |
| HTTP 429 | ChannelThrottled (Retry-After, else throttle_seconds); the rest not sent | — |
| NOT_SENT: the app key, project or IP; the sender number (-2312, -2313); HTTP 401/403 | ChannelUnavailable | False |
| -9999, -2021 (NHN's system errors), HTTP 5xx, a read timeout, a dropped connection | ChannelUnavailable | True |
| a refused connection, a connect timeout | ChannelUnavailable | False |
| another request-level code (-2015 too long, -2023 characters, -6003 no opt-out line, ...) | Rejected for each | — |

The API takes no idempotency key. After an answer that may hide an accepted send, deliver's next
attempt calls `lookup`, which lists the SMS and the LMS sent under the delivery's grouping key in the
lookup window (NHN lists at most a month at once): the first found gives the state (1000
delivered; a failed status or another result code failed; else accepted), none at all "absent".

NHN learns whether a carrier delivered a message after accepting it. `request_results` lists the
messages of one send request (`GET /sender/sms?requestId=`, else `/sender/mms`: a request went to
one endpoint) with each recipient's state read as `lookup` reads it, for the messaging tick's
polling (shared/services/sms_results.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.adapters.nhn_cloud import (
    NhnChannel,
    as_int,
    nhn_date,
    per_recipient,
    recipient_number,
    send_grouped,
    sender_grouping_key,
)
from shared.messaging import MessageReason
from shared.messaging.adform import AD_MARK
from shared.messaging.alimtalk import provider_id
from shared.messaging.templates import MAX_LMS_BYTES, SMS_BYTES
from shared.ports.channels import (
    SMS,
    ChannelError,
    ChannelUnavailable,
    Message,
    OptedOut,
    Rejected,
    SendResult,
    SendState,
)
from shared.ports.secrets import SecretStore

API_URL: Final = "https://sms.api.nhncloudservice.com"
VERSION: Final = "v3.0"
MAX_RECIPIENTS: Final = 1000
MAX_PAGE: Final = 1000  # NHN's largest pageSize
TITLE_BYTES: Final = 40
ON_REJECT_LIST: Final = -6001
NOT_SENT: Final = frozenset(
    {
        -1000,
        -1001,
        -1002,
        -1003,
        -1004,
        -1007,
        -1008,
        -2312,
        -2313,
        -6000,
        -6004,
        -2047,
        -2052,
        -2053,
        -9995,
        -9996,
        -9998,
    }  # fmt: skip
)
"""Every send fails until someone acts (app key, project, allowed IPs, the sender number, the 080
service for advertising, a sending limit reached, the API itself): nothing was sent."""
PROVIDER_ERRORS: Final = frozenset({-9999, -2021})  # NHN's system errors: the outcome is unknown
FAILED_STATUSES: Final = frozenset({"0", "4", "5", "6"})  # failed, canceled, duplicate, refused as an ad at night
DELIVERED: Final = "1000"


@dataclass(frozen=True)
class Form:
    """What one request sends: the endpoint (`sms`, `mms`, `ad-sms`, `ad-mms`), its title (LMS), its body."""

    path: str
    title: str | None
    body: str

    @property
    def kind(self) -> str:
        return "LMS" if self.title is not None else "SMS"


def euc_kr_size(text: str) -> int | None:
    """The text's size in EUC-KR, or None when it has a character EUC-KR lacks."""
    try:
        return len(text.encode("euc_kr"))
    except UnicodeEncodeError:
        return None


def cut(text: str, limit: int) -> str:
    """The longest start of `text` within `limit` bytes in EUC-KR, never half a character."""
    size = 0
    for index, char in enumerate(text):
        size += len(char.encode("euc_kr", "replace"))
        if size > limit:
            return text[:index].rstrip()
    return text


def form(message: Message, lms_title: str | None = None) -> Form | Rejected:
    """The request a message goes in, or why NHN cannot send it (module docstring)."""
    if message.channel != SMS:
        raise ValueError(f"NhnSms sends SMS, not {message.channel}")
    if not message.text:
        raise ValueError(f"delivery {message.delivery_id}: an SMS needs a body")
    if recipient_number(message.to) is None:
        return Rejected(f"to: {message.to[:40]!r} is not a Korean mobile number", code="invalid_number")
    size = euc_kr_size(message.text)
    if size is None:
        return Rejected("the text has characters Korean carriers cannot send (EUC-KR)", code="not_euc_kr")
    if size > MAX_LMS_BYTES:
        detail = f"the text is {size:,} bytes in EUC-KR; an LMS holds at most {MAX_LMS_BYTES:,}"
        return Rejected(detail, code=MessageReason.MESSAGE_TOO_LONG.value)
    advertising = message.text.lstrip().startswith(AD_MARK)
    prefix = "ad-" if advertising else ""
    if size <= SMS_BYTES:
        return Form(f"{prefix}sms", None, message.text)
    lines = (line.strip() for line in message.text.splitlines())
    title = next((t.strip() for t in (message.subject, lms_title, *lines) if t and t.strip()), "")
    if advertising and not title.startswith(AD_MARK):
        title = f"{AD_MARK} {title}"
    if euc_kr_size(title) is None:
        return Rejected("the title has characters Korean carriers cannot send (EUC-KR)", code="not_euc_kr")
    return Form(f"{prefix}mms", cut(title, TITLE_BYTES), message.text)


class NhnSms(NhnChannel):
    name = SMS
    batch_size = MAX_RECIPIENTS

    def __init__(
        self,
        app_key: str,
        sender_number: str,
        secrets: SecretStore,
        *,
        secret_key_secret: str = "nhn-sms-secret-key",
        api_url: str = API_URL,
        lms_title: str | None = None,
        timeout: float = 10.0,
        lookup_window: timedelta = timedelta(days=7),
        throttle_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`app_key` names the SMS app in URLs, `sender_number` the number registered with NHN (digits
        only); the secret key is read from `secrets` under `secret_key_secret` for each request."""
        base = f"{api_url.rstrip('/')}/sms/{VERSION}/appKeys/{app_key}"
        super().__init__(base, secrets, secret_key_secret, timeout=timeout, throttle_seconds=throttle_seconds,
                         lookup_window=lookup_window, clock=clock)  # fmt: skip
        self._sender = sender_number
        self._lms_title = lms_title

    # --- the port -------------------------------------------------------------------------------

    def send_many(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        """One result per message, in order; a request per text and 1,000 recipients. After a
        throttle or an outage the rest are not sent: each gets an error that says so."""
        return send_grouped(messages, lambda m: form(m, self._lms_title), self._send_request, MAX_RECIPIENTS)

    def lookup(self, message: Message) -> SendResult | None:
        """The delivery by its grouping key among the SMS and LMS of the lookup window: the first
        NHN holds (a repeat would be a duplicate, never sent by us), or "absent"."""
        if recipient_number(message.to) is None:
            return SendResult("absent", code="invalid_number")  # send() refuses it before any call
        now = self._clock()
        params = {
            "recipientGroupingKey": message.delivery_id,
            "startRequestDate": nhn_date(now - self._window, seconds=True),
            "endRequestDate": nhn_date(now + timedelta(minutes=1), seconds=True),
            "pageSize": 100,
        }
        found: list[Mapping[str, Any]] = []
        for kind in ("sms", "mms"):  # advertisements are listed with the others of their type
            listed, _ = _data(self._http.get(f"{self._base}/sender/{kind}", params))
            found += [
                m for m in listed if isinstance(m, Mapping) and m.get("recipientGroupingKey") == message.delivery_id
            ]
        if not found:
            return SendResult("absent")
        first = min(found, key=lambda m: (str(m.get("requestDate") or ""), str(m.get("requestId") or "")))
        return _state(first)

    # --- results, for the polling safety net ----------------------------------------------------

    def request_results(self, request_id: str, page_size: int = MAX_PAGE) -> dict[str, SendResult]:
        """Each recipient of one send request by its grouping key (our delivery id), in the state
        `lookup` reads: delivered, failed with NHN's code, or accepted while the carrier has not
        answered. The SMS list first, the LMS list only when the request is not an SMS one; a
        request NHN does not know gives nothing."""
        for kind in ("sms", "mms"):
            url = f"{self._base}/sender/{kind}"
            listed = [m for page in self._http.pages(url, {"requestId": request_id}, _data, page_size) for m in page]
            if listed:
                return {str(m["recipientGroupingKey"]): _state(m) for m in listed if m.get("recipientGroupingKey")}
        return {}

    # --- HTTP -----------------------------------------------------------------------------------

    def _send_request(self, sent: Form, chunk: Sequence[Message]) -> list[SendResult | ChannelError]:
        body: dict[str, Any] = {
            "body": sent.body,
            "sendNo": self._sender,
            "recipientList": [
                {"recipientNo": recipient_number(m.to), "recipientGroupingKey": m.delivery_id} for m in chunk
            ],
        }
        if sent.title is not None:
            body["title"] = sent.title
        campaign = sender_grouping_key(chunk)
        if campaign:
            body["senderGroupingKey"] = campaign
        parsed = self._http.post(f"{self._base}/sender/{sent.path}", body)
        if isinstance(parsed, ChannelError):
            return [parsed] * len(chunk)
        header = parsed["header"]
        data = (parsed.get("body") or {}).get("data") or {}
        results = data.get("sendResultList")
        if header.get("isSuccessful") is True:
            if isinstance(results, list) and results:
                return per_recipient(str(data.get("requestId") or ""), results, chunk, _refused)
            return [ChannelUnavailable("NHN accepted the request without results", maybe_sent=True)] * len(chunk)
        code = as_int(header.get("resultCode"))
        return [_request_error(code, str(header.get("resultMessage") or ""))] * len(chunk)


# --- answers ---------------------------------------------------------------------------------------


def _refused(code: int, text: str) -> ChannelError:
    """A recipient NHN refused: on the 080 reject list, the person opted out; else this number."""
    detail = f"NHN refused the recipient ({code}): {text[:200]}"
    return OptedOut(detail, code=str(code)) if code == ON_REJECT_LIST else Rejected(detail, code=str(code))


def _request_error(code: int, text: str) -> ChannelError:
    detail = f"NHN refused the request ({code}): {text[:200]}"
    if code == ON_REJECT_LIST:
        return OptedOut(detail, code=str(code))
    if code in NOT_SENT:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=False)
    if code in PROVIDER_ERRORS:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=True)
    return Rejected(detail, code=str(code))


def _data(answer: Mapping[str, Any]) -> tuple[Sequence[Any], int]:
    """A list query's messages and total count (`body.data`, `body.totalCount`)."""
    body = answer.get("body") or {}
    return body.get("data") or [], as_int(body.get("totalCount"))


def _state(listed: Mapping[str, Any]) -> SendResult:
    """A listed message's state: 1000 delivered; a failed status or another result code failed."""
    result = str(listed.get("resultCode") or "")
    status = str(listed.get("msgStatus") or "")
    state: SendState
    if result == DELIVERED:
        state = "delivered"
    elif status in FAILED_STATUSES or (result and status == "3"):
        state = "failed"
    else:
        state = "accepted"
    seq = as_int(listed.get("recipientSeq") or listed.get("mtPr"))
    code = result or (f"msgStatus {status}" if status else None)
    return SendResult(state, provider_id=provider_id(str(listed.get("requestId") or ""), seq), code=code)

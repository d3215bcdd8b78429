"""The AlimTalk channel: NHN Cloud's KakaoTalk Bizmessage AlimTalk API v2.3, up to 1,000 recipients a request.

`POST /alimtalk/v2.3/appkeys/{appKey}/messages` sends an approved template (`templateCode`) from our
KakaoTalk channel (`senderKey`) to a list of recipients, each with its `#{name}` values
(`templateParameter`) and our delivery id as `recipientGroupingKey`, which every later query and
webhook echoes. The secret key (header `X-Secret-Key`) is read from the SecretStore at each request
(Secret Manager `alimtalk-api-key`), so a rotation needs no redeploy. NHN's own SMS resend is switched
off per recipient (`isResend: false`): a failed AlimTalk falls back along our chain instead, where
the policy is decided again for SMS (its consent, subscription, hours and caps).

The answer says whether each recipient was accepted (`resultCode` 0, then `<requestId>/<recipientSeq>`
names the message) or refused (a negative code: -4019 invalid number, -3004 parameter error, ...):
Rejected with that code, and deliver tries the next channel. Whether it arrived comes later, as a
delivery result (shared/messaging/alimtalk.py: 1000 delivered; 3018, 3019, 3020 fall back).
Request-level answers become the port's errors:

| answer | raised | maybe_sent |
|---|---|---|
| HTTP 429 | ChannelThrottled (Retry-After, else throttle_seconds) | — |
| -1000/-1001/-4004/-4005 (app key, secret key), -1006/-1027/-2017 (sender), HTTP 401/403 | ChannelUnavailable | False |
| -1005 (the idempotency key was used within 10 minutes) | ChannelUnavailable | True: look up first |
| -9999, -7000, HTTP 5xx, a read timeout, a connection dropped mid-request | ChannelUnavailable | True |
| a refused connection, a connect timeout | ChannelUnavailable | False |
| any other code for the whole request (-3003 no such template, -3005 not approved, ...) | Rejected | — |

Each request carries `X-NC-API-IDEMPOTENCY-KEY`, a digest of its delivery ids: the same recipients
sent again within 10 minutes are refused (-1005) instead of sent twice. A duplicate answer does not
return the first request's result, so after it, and after a timeout, `lookup` asks for the delivery
by its grouping key before anything is resent: found, its state; none in the window, "absent".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from shared.messaging.alimtalk import AlimTalkResult
from shared.ports.channels import (
    ALIMTALK,
    ChannelError,
    ChannelUnavailable,
    Message,
    Rejected,
    SendResult,
)
from shared.ports.secrets import SecretStore

API_URL: Final = "https://kakaotalk-bizmessage.api.nhncloudservice.com"
VERSION: Final = "v2.3"
MAX_RECIPIENTS: Final = 1000
MAX_PAGE: Final = 1000
DUPLICATE_KEY: Final = -1005
NOT_OURS: Final = frozenset({-1000, -1001, -4004, -4005, -1006, -1027, -2017})
"""The app key, secret key or sender profile is wrong, absent or blocked: every send would fail."""
PROVIDER_ERRORS: Final = frozenset({-9999, -7000})  # a system error, Kakao's API failed: outcome unknown


def idempotency_key(delivery_ids: Sequence[str]) -> str:
    """The same recipients, the same key: NHN refuses a repeat within 10 minutes (-1005)."""
    return hashlib.sha256("\x1f".join(sorted(delivery_ids)).encode()).hexdigest()[:40]


class NhnAlimTalk(NhnChannel):
    name = ALIMTALK
    batch_size = MAX_RECIPIENTS

    def __init__(
        self,
        app_key: str,
        sender_key: str,
        secrets: SecretStore,
        *,
        secret_key_secret: str = "alimtalk-api-key",
        api_url: str = API_URL,
        timeout: float = 10.0,
        lookup_window: timedelta = timedelta(days=7),
        throttle_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`app_key` names the AlimTalk app in URLs, `sender_key` our KakaoTalk channel; the secret
        key is read from `secrets` under `secret_key_secret` for each request."""
        base = f"{api_url.rstrip('/')}/alimtalk/{VERSION}/appkeys/{app_key}"
        super().__init__(base, secrets, secret_key_secret, timeout=timeout, throttle_seconds=throttle_seconds,
                         lookup_window=lookup_window, clock=clock)  # fmt: skip
        self._sender_key = sender_key

    # --- the port -------------------------------------------------------------------------------

    def send_many(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        """One result per message, in order; a request per template and 1,000 recipients. After a
        throttle or an outage the rest are not sent: each gets an error that says so."""
        return send_grouped(messages, _template_code, self._send_request, MAX_RECIPIENTS)

    def lookup(self, message: Message) -> SendResult | None:
        """The delivery by its grouping key in the lookup window: the first message NHN holds for it
        (a repeat would be a duplicate, never sent by us), or "absent"."""
        now = self._clock()
        params = {
            "recipientGroupingKey": message.delivery_id,
            "startRequestDate": nhn_date(now - self._window),
            "endRequestDate": nhn_date(now + timedelta(minutes=1)),
            "pageSize": 100,
        }
        body = self._http.get(self._base + "/messages", params)
        listed = (body.get("messageSearchResultResponse") or {}).get("messages") or []
        ours = [m for m in listed if m.get("recipientGroupingKey") == message.delivery_id]
        if not ours:
            return SendResult("absent")
        first = min(ours, key=lambda m: (str(m.get("requestDate") or ""), str(m.get("requestId"))))
        return _state(first)

    # --- results, for the polling safety net ----------------------------------------------------

    def request_results(self, request_id: str) -> list[AlimTalkResult]:
        """Every recipient of one request with its delivery result (pages of 1,000)."""
        found: list[AlimTalkResult] = []
        for page in self._pages({"requestId": request_id}):
            found.extend(_listed_result(m) for m in page)
        return found

    def _pages(self, params: Mapping[str, Any]) -> Iterator[list[Mapping[str, Any]]]:
        number = 1
        while True:
            body = self._http.get(self._base + "/messages", {**params, "pageNum": number, "pageSize": MAX_PAGE})
            response = body.get("messageSearchResultResponse") or {}
            page = response.get("messages") or []
            yield page
            if len(page) < MAX_PAGE or number * MAX_PAGE >= int(response.get("totalCount") or 0):
                return
            number += 1

    # --- HTTP -----------------------------------------------------------------------------------

    def _send_request(self, code: str, chunk: Sequence[Message]) -> list[SendResult | ChannelError]:
        body: dict[str, Any] = {
            "senderKey": self._sender_key,
            "templateCode": code,
            "recipientList": [
                {
                    "recipientNo": recipient_number(m.to),
                    "templateParameter": dict(m.parameters),
                    "resendParameter": {"isResend": False},
                    "recipientGroupingKey": m.delivery_id,
                }
                for m in chunk
            ],
        }
        campaign = sender_grouping_key(chunk)
        if campaign:
            body["senderGroupingKey"] = campaign
        key = {"X-NC-API-IDEMPOTENCY-KEY": idempotency_key([m.delivery_id for m in chunk])}
        parsed = self._http.post(self._base + "/messages", body, key)
        if isinstance(parsed, ChannelError):
            return [parsed] * len(chunk)
        header = parsed["header"]
        message = parsed.get("message") or {}
        sent = message.get("sendResults")
        if isinstance(sent, list) and sent:
            return per_recipient(str(message.get("requestId") or ""), sent, chunk)
        code_ = as_int(header.get("resultCode"))
        if header.get("isSuccessful") is True:
            return [ChannelUnavailable("NHN accepted the request without results", maybe_sent=True)] * len(chunk)
        return [_request_error(code_, str(header.get("resultMessage") or ""))] * len(chunk)


# --- answers ---------------------------------------------------------------------------------------


def _template_code(message: Message) -> str | ChannelError:
    """The request a message goes in (its template's), or why it is refused before any call."""
    if message.channel != ALIMTALK:
        raise ValueError(f"NhnAlimTalk sends AlimTalk, not {message.channel}")
    if not message.template_code:
        raise ValueError(f"delivery {message.delivery_id}: an AlimTalk needs its template code")
    if recipient_number(message.to) is None:
        return Rejected(f"to: {message.to[:40]!r} is not a Korean mobile number", code="invalid_number")
    return message.template_code


def _request_error(code: int, text: str) -> ChannelError:
    detail = f"NHN refused the request ({code}): {text[:200]}"
    if code == DUPLICATE_KEY:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=True)
    if code in NOT_OURS:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=False)
    if code in PROVIDER_ERRORS:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=True)
    return Rejected(detail, code=str(code))


def _state(listed: Mapping[str, Any]) -> SendResult:
    result = _listed_result(listed)
    kind = result.event
    if kind == "delivered":
        state: Any = "delivered"
    elif kind in ("failed", "canceled"):
        state = "failed"
    else:
        state = "accepted"
    code = result.result_code or listed.get("messageStatus")
    return SendResult(state, provider_id=result.provider_id, code=str(code) if code else None)


def _listed_result(listed: Mapping[str, Any]) -> AlimTalkResult:
    code = listed.get("resultCode")
    return AlimTalkResult(
        delivery_id=listed.get("recipientGroupingKey") or None,
        request_id=str(listed.get("requestId") or ""),
        recipient_seq=as_int(listed.get("recipientSeq")),
        result_code=str(code) if code not in (None, "") else None,
        message_status=listed.get("messageStatus") or None,
    )

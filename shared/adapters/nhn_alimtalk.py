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
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.messaging.alimtalk import AlimTalkResult, provider_id
from shared.ports.channels import (
    ALIMTALK,
    ChannelError,
    ChannelThrottled,
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
SEOUL: Final = ZoneInfo("Asia/Seoul")  # NHN's dates are Korean wall times
_E164_KR: Final = re.compile(r"^\+82(1[0-9]{8,9})$")


def recipient_number(to: str) -> str | None:
    """A Korean mobile number in E.164 as NHN takes it (+821012345678 -> 01012345678), or None."""
    found = _E164_KR.match(to)
    return f"0{found.group(1)}" if found else None


def idempotency_key(delivery_ids: Sequence[str]) -> str:
    """The same recipients, the same key: NHN refuses a repeat within 10 minutes (-1005)."""
    return hashlib.sha256("\x1f".join(sorted(delivery_ids)).encode()).hexdigest()[:40]


class NhnAlimTalk:
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
        self._base = f"{api_url.rstrip('/')}/alimtalk/{VERSION}/appkeys/{app_key}"
        self._sender_key = sender_key
        self._secrets, self._secret_name = secrets, secret_key_secret
        self._timeout = timeout
        self._window = min(lookup_window, timedelta(days=30))  # NHN lists at most 30 days at once
        self._throttle_seconds = throttle_seconds
        self._clock = clock
        self._local = threading.local()  # a requests.Session per thread

    # --- the port -------------------------------------------------------------------------------

    def send(self, message: Message) -> SendResult:
        [result] = self.send_many([message])
        if isinstance(result, ChannelError):
            raise result
        return result

    def send_many(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        """One result per message, in order; a request per template and 1,000 recipients. After a
        throttle or an outage the rest are not sent: each gets an error that says so."""
        results: list[SendResult | ChannelError | None] = [None] * len(messages)
        groups: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            refused = _invalid(message)
            if refused is not None:
                results[index] = refused
            else:
                groups.setdefault(str(message.template_code), []).append(index)
        stopped: ChannelError | None = None
        for code, indexes in groups.items():
            for start in range(0, len(indexes), MAX_RECIPIENTS):
                chunk = indexes[start : start + MAX_RECIPIENTS]
                if stopped is not None:
                    for index in chunk:
                        results[index] = _not_sent(stopped)
                    continue
                answers = self._send_request(code, [messages[i] for i in chunk])
                for index, answer in zip(chunk, answers, strict=True):
                    results[index] = answer
                if any(isinstance(a, ChannelThrottled | ChannelUnavailable) for a in answers):
                    stopped = next(a for a in answers if isinstance(a, ChannelThrottled | ChannelUnavailable))
        return [r if r is not None else ChannelUnavailable("not sent", maybe_sent=False) for r in results]

    def lookup(self, message: Message) -> SendResult | None:
        """The delivery by its grouping key in the lookup window: the first message NHN holds for it
        (a repeat would be a duplicate, never sent by us), or "absent"."""
        now = self._clock()
        params = {
            "recipientGroupingKey": message.delivery_id,
            "startRequestDate": _nhn_date(now - self._window),
            "endRequestDate": _nhn_date(now + timedelta(minutes=1)),
            "pageSize": 100,
        }
        body = self._get("/messages", params)
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
            body = self._get("/messages", {**params, "pageNum": number, "pageSize": MAX_PAGE})
            response = body.get("messageSearchResultResponse") or {}
            page = response.get("messages") or []
            yield page
            if len(page) < MAX_PAGE or number * MAX_PAGE >= int(response.get("totalCount") or 0):
                return
            number += 1

    # --- HTTP -----------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json;charset=UTF-8",
            "X-Secret-Key": self._secrets.get(self._secret_name),
        }

    def _send_request(self, code: str, chunk: Sequence[Message]) -> list[SendResult | ChannelError]:
        campaigns = {m.metadata.get("campaign_id") for m in chunk}
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
        campaign = campaigns.pop() if len(campaigns) == 1 else None
        if campaign:
            body["senderGroupingKey"] = campaign[:100]
        headers = self._headers() | {"X-NC-API-IDEMPOTENCY-KEY": idempotency_key([m.delivery_id for m in chunk])}
        try:
            answer = self._session().post(self._base + "/messages", json=body, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            return [_transport_error(exc)] * len(chunk)
        refusal = self._http_refusal(answer)
        if refusal is not None:
            return [refusal] * len(chunk)
        try:
            parsed = answer.json()
            header = parsed["header"]
        except (ValueError, KeyError, TypeError):  # accepted or not: nobody can tell from this answer
            return [ChannelUnavailable("NHN answered without a result header", maybe_sent=True)] * len(chunk)
        sent = (parsed.get("message") or {}).get("sendResults")
        if isinstance(sent, list) and sent:
            return _per_recipient(parsed["message"], chunk)
        code_ = _int(header.get("resultCode"))
        if header.get("isSuccessful") is True:
            return [ChannelUnavailable("NHN accepted the request without results", maybe_sent=True)] * len(chunk)
        return [_request_error(code_, str(header.get("resultMessage") or ""))] * len(chunk)

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            answer = self._session().get(self._base + path, params=dict(params), headers=self._headers(),
                                         timeout=self._timeout)  # fmt: skip
        except requests.RequestException as exc:
            raise _transport_error(exc) from None
        refusal = self._http_refusal(answer)
        if refusal is not None:
            raise refusal
        try:
            body = answer.json()
            header = body["header"]
        except (ValueError, KeyError, TypeError):
            raise ChannelUnavailable("NHN answered a query without a result header", maybe_sent=False) from None
        if header.get("isSuccessful") is not True:
            code = _int(header.get("resultCode"))
            raise ChannelUnavailable(f"NHN refused the query ({code}): {header.get('resultMessage')}", code=str(code))
        return dict(body)

    def _http_refusal(self, answer: requests.Response) -> ChannelError | None:
        status = answer.status_code
        if status == 429:
            return ChannelThrottled("NHN: too many requests", retry_after=self._retry_after(answer), code="429")
        if status in (401, 403):
            return ChannelUnavailable(f"NHN refused our credentials ({status})", code=str(status), maybe_sent=False)
        if status >= 500:
            return ChannelUnavailable(f"NHN failed ({status})", code=str(status), maybe_sent=True)
        if status >= 400 and not answer.headers.get("Content-Type", "").startswith("application/json"):
            return ChannelUnavailable(f"NHN answered {status} (a wrong URL?)", code=str(status), maybe_sent=False)
        return None

    def _retry_after(self, answer: requests.Response) -> float:
        try:
            return max(float(answer.headers.get("Retry-After", "")), 0.0)
        except ValueError:
            return self._throttle_seconds


# --- answers ---------------------------------------------------------------------------------------


def _invalid(message: Message) -> ChannelError | None:
    if message.channel != ALIMTALK:
        raise ValueError(f"NhnAlimTalk sends AlimTalk, not {message.channel}")
    if not message.template_code:
        raise ValueError(f"delivery {message.delivery_id}: an AlimTalk needs its template code")
    if recipient_number(message.to) is None:
        return Rejected(f"to: {message.to[:40]!r} is not a Korean mobile number", code="invalid_number")
    return None


def _not_sent(stopped: ChannelError) -> ChannelError:
    """What a message after a throttled or failed request gets: the same wait, nothing sent."""
    if isinstance(stopped, ChannelThrottled):
        return ChannelThrottled(str(stopped), retry_after=stopped.retry_after, code=stopped.code)
    return ChannelUnavailable(f"not sent: {stopped}", code=stopped.code, maybe_sent=False)


def _per_recipient(body: Mapping[str, Any], chunk: Sequence[Message]) -> list[SendResult | ChannelError]:
    """Each recipient's answer, matched by grouping key (by position when one lacks it)."""
    request_id = str(body.get("requestId") or "")
    sent = body["sendResults"]
    by_key = {r.get("recipientGroupingKey"): r for r in sent if isinstance(r, Mapping)}
    answers: list[SendResult | ChannelError] = []
    for index, message in enumerate(chunk):
        found = by_key.get(message.delivery_id) or (sent[index] if index < len(sent) else None)
        if not isinstance(found, Mapping):
            answers.append(ChannelUnavailable("NHN did not answer for this recipient", maybe_sent=True))
            continue
        code = _int(found.get("resultCode"))
        if code == 0:
            seq = _int(found.get("recipientSeq"))
            answers.append(SendResult("accepted", provider_id=provider_id(request_id, seq), code="0"))
        else:
            answers.append(
                Rejected(f"NHN refused the recipient ({code}): {found.get('resultMessage')}", code=str(code))
            )
    return answers


def _request_error(code: int, text: str) -> ChannelError:
    detail = f"NHN refused the request ({code}): {text[:200]}"
    if code == DUPLICATE_KEY:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=True)
    if code in NOT_OURS:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=False)
    if code in PROVIDER_ERRORS:
        return ChannelUnavailable(detail, code=str(code), maybe_sent=True)
    return Rejected(detail, code=str(code))


def _transport_error(exc: requests.RequestException) -> ChannelUnavailable:
    """Before the request left (refused, connect timeout): nothing sent. After: unknown."""
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        before = isinstance(exc, requests.ConnectTimeout) or isinstance(
            reason, NewConnectionError | ConnectTimeoutError
        )
        return ChannelUnavailable(f"NHN unreachable: {type(exc).__name__}", maybe_sent=not before)
    return ChannelUnavailable(f"NHN did not answer: {type(exc).__name__}", maybe_sent=True)


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
        recipient_seq=_int(listed.get("recipientSeq")),
        result_code=str(code) if code not in (None, "") else None,
        message_status=listed.get("messageStatus") or None,
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _nhn_date(moment: datetime) -> str:
    return moment.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M")

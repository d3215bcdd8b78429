"""What NHN Cloud's Notification APIs share, for the AlimTalk (v2.3) and SMS (v3.0) adapters.

Both take the app key in the URL and the secret key in an `X-Secret-Key` header, answer every call
with `header{resultCode, resultMessage, isSuccessful}` (HTTP 200 for their own errors), take Korean
numbers without the country code and Korean wall times in queries. The secret key is read from the
SecretStore at each request, so a rotation needs no redeploy. HTTP-level refusals and transport
failures become the port's errors here, with `maybe_sent` saying whether a request could have been
taken: a refused connection or a connect timeout cannot have been; a read timeout, a dropped
connection or a 5xx can.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.messaging.alimtalk import provider_id
from shared.ports.channels import (
    ChannelError,
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    Rejected,
    SendResult,
    not_sent,
)
from shared.ports.secrets import SecretStore

K = TypeVar("K", bound=Hashable)
Answer = SendResult | ChannelError

SEOUL: Final = ZoneInfo("Asia/Seoul")  # NHN's dates are Korean wall times
_E164_KR: Final = re.compile(r"^\+82(1[0-9]{8,9})$")


def recipient_number(to: str) -> str | None:
    """A Korean mobile number in E.164 as NHN takes it (+821012345678 -> 01012345678), or None."""
    found = _E164_KR.match(to)
    return f"0{found.group(1)}" if found else None


def nhn_date(moment: datetime, seconds: bool = False) -> str:
    """A moment as NHN's queries take it: Seoul wall time, `yyyy-MM-dd HH:mm[:ss]`."""
    return moment.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def as_int(value: Any) -> int:
    """NHN's codes come as numbers or strings; anything else is 0."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def transport_error(exc: requests.RequestException) -> ChannelUnavailable:
    """Before the request left (refused, connect timeout): nothing sent. After: unknown."""
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        before = isinstance(exc, requests.ConnectTimeout) or isinstance(
            reason, NewConnectionError | ConnectTimeoutError
        )
        return ChannelUnavailable(f"NHN unreachable: {type(exc).__name__}", maybe_sent=not before)
    return ChannelUnavailable(f"NHN did not answer: {type(exc).__name__}", maybe_sent=True)


def send_grouped(
    messages: Sequence[Message],
    request_key: Callable[[Message], K | ChannelError],
    send: Callable[[K, Sequence[Message]], list[Answer]],
    size: int,
) -> list[Answer]:
    """One answer per message, in order. `request_key` says which request a message goes in (a
    template, a text), or refuses it before any call; each key's messages go `size` to a request.
    After a throttle or an outage the rest are not sent: each gets an error that says so."""
    results: list[Answer | None] = [None] * len(messages)
    groups: dict[K, list[int]] = {}
    for index, message in enumerate(messages):
        key = request_key(message)
        if isinstance(key, ChannelError):
            results[index] = key
        else:
            groups.setdefault(key, []).append(index)
    stopped: ChannelError | None = None
    for key, indexes in groups.items():
        for start in range(0, len(indexes), size):
            chunk = indexes[start : start + size]
            if stopped is not None:
                for index in chunk:
                    results[index] = not_sent(stopped)
                continue
            answers = send(key, [messages[i] for i in chunk])
            for index, answer in zip(chunk, answers, strict=True):
                results[index] = answer
            stopped = next((a for a in answers if isinstance(a, ChannelThrottled | ChannelUnavailable)), None)
    return [r if r is not None else ChannelUnavailable("not sent", maybe_sent=False) for r in results]


def sender_grouping_key(chunk: Sequence[Message]) -> str | None:
    """The campaign id when every message of a request has the same (NHN's `senderGroupingKey`)."""
    campaigns = {m.metadata.get("campaign_id") for m in chunk}
    campaign = campaigns.pop() if len(campaigns) == 1 else None
    return campaign[:100] if campaign else None


def rejected(code: int, text: str) -> ChannelError:
    """A recipient NHN refused: this address, for good (the next channel is tried)."""
    return Rejected(f"NHN refused the recipient ({code}): {text[:200]}", code=str(code))


def per_recipient(
    request_id: str,
    sent: Sequence[Any],
    chunk: Sequence[Message],
    refused: Callable[[int, str], ChannelError] = rejected,
) -> list[Answer]:
    """Each recipient's answer in a send's result list, matched by grouping key (by position when
    one lacks it): code 0 accepted as `<requestId>/<recipientSeq>`, another `refused(code, message)`."""
    by_key = {r.get("recipientGroupingKey"): r for r in sent if isinstance(r, Mapping)}
    answers: list[Answer] = []
    for index, message in enumerate(chunk):
        found = by_key.get(message.delivery_id) or (sent[index] if index < len(sent) else None)
        if not isinstance(found, Mapping):
            answers.append(ChannelUnavailable("NHN did not answer for this recipient", maybe_sent=True))
            continue
        code = as_int(found.get("resultCode"))
        if code == 0:
            seq = as_int(found.get("recipientSeq"))
            answers.append(SendResult("accepted", provider_id=provider_id(request_id, seq), code="0"))
        else:
            answers.append(refused(code, str(found.get("resultMessage") or "")))
    return answers


class NhnHttp:
    """Requests to one NHN Cloud API: a requests.Session per thread, the secret key read for each."""

    def __init__(self, secrets: SecretStore, secret_name: str, *, timeout: float, throttle_seconds: float) -> None:
        self._secrets, self._secret_name = secrets, secret_name
        self._timeout = timeout
        self._throttle_seconds = throttle_seconds
        self._local = threading.local()

    def post(
        self, url: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> dict[str, Any] | ChannelError:
        """The answer to a send (with its `header`), or the port's error when NHN refused it at the
        HTTP level, could not be reached or answered what nobody can read; NHN's own codes in the
        header are the caller's to read."""
        sent_headers = self._headers() | dict(headers or {})
        try:
            answer = self._session().post(url, json=body, headers=sent_headers, timeout=self._timeout)
        except requests.RequestException as exc:
            return transport_error(exc)
        refusal = self.refusal(answer)
        if refusal is not None:
            return refusal
        try:
            parsed = answer.json()
            if isinstance(parsed, dict) and isinstance(parsed["header"], Mapping):
                return parsed
        except (ValueError, KeyError, TypeError):
            pass
        # accepted or not: nobody can tell from this answer
        return ChannelUnavailable("NHN answered without a result header", maybe_sent=True)

    def get(self, url: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A query's answer, its header successful; raises the port's error otherwise (a query takes
        nothing, so none of them is maybe_sent)."""
        try:
            answer = self._session().get(url, params=dict(params), headers=self._headers(), timeout=self._timeout)
        except requests.RequestException as exc:
            raise transport_error(exc) from None
        refusal = self.refusal(answer)
        if refusal is not None:
            raise refusal
        try:
            body = answer.json()
            header = body["header"]
        except (ValueError, KeyError, TypeError):
            raise ChannelUnavailable("NHN answered a query without a result header", maybe_sent=False) from None
        if header.get("isSuccessful") is not True:
            code = as_int(header.get("resultCode"))
            raise ChannelUnavailable(f"NHN refused the query ({code}): {header.get('resultMessage')}", code=str(code))
        return dict(body)

    def pages(
        self,
        url: str,
        params: Mapping[str, Any],
        rows: Callable[[Mapping[str, Any]], tuple[Sequence[Any], int]],
        size: int,
    ) -> Iterator[list[Mapping[str, Any]]]:
        """Each page of a list query (`pageNum` from 1, `size` a page), as `rows` reads an answer's
        items and total count; a short page or the total ends it. Errors as `get` raises them."""
        number = 1
        while True:
            found, total = rows(self.get(url, {**params, "pageNum": number, "pageSize": size}))
            yield [r for r in found if isinstance(r, Mapping)]
            if len(found) < size or number * size >= total:
                return
            number += 1

    def refusal(self, answer: requests.Response) -> ChannelError | None:
        """HTTP 429, 401/403, 5xx or a 4xx that is not NHN's JSON (a wrong URL) as the port's error."""
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

    def _retry_after(self, answer: requests.Response) -> float:
        try:
            return max(float(answer.headers.get("Retry-After", "")), 0.0)
        except ValueError:
            return self._throttle_seconds


class NhnChannel:
    """What the NHN channels share: `send` is `send_many` of one message, the HTTP client on the
    API's base URL, the window lookups search (NHN lists at most a month at once)."""

    def __init__(
        self,
        base: str,
        secrets: SecretStore,
        secret_key_secret: str,
        *,
        timeout: float,
        throttle_seconds: float,
        lookup_window: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._base = base
        self._http = NhnHttp(secrets, secret_key_secret, timeout=timeout, throttle_seconds=throttle_seconds)
        self._window = min(lookup_window, timedelta(days=30))
        self._clock = clock

    def send(self, message: Message) -> SendResult:
        [result] = self.send_many([message])
        if isinstance(result, ChannelError):
            raise result
        return result

    def send_many(self, messages: Sequence[Message]) -> list[Answer]:
        raise NotImplementedError

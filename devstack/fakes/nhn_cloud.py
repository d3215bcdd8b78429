"""What the fakes of NHN Cloud's Notification APIs share (AlimTalk, SMS): NHN's answer header, the
recording of every request, injected failures and late answers, the app key and secret key checks.

Every answer carries `header{resultCode, resultMessage, isSuccessful}`, with HTTP 200 for NHN's own
errors, as NHN answers them. A subclass implements `_api` (called under the lock, after the
injected failures) and may list its messages for `GET /_fake/messages` and act after an answer
(`answered`, e.g. deliver what was accepted).
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from devstack.fakes.serving import Answer, HttpServing

SEOUL: Final = ZoneInfo("Asia/Seoul")
T = TypeVar("T")


@dataclass(frozen=True)
class NhnFailure:
    """An answer to inject: an API error (HTTP 200, header code) or an HTTP error (429, 503)."""

    http_status: int
    code: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


THROTTLED: Final = NhnFailure(429, 429, "Too Many Requests", {"Retry-After": "3"})
UNAVAILABLE: Final = NhnFailure(503, 503, "Service Unavailable")
SYSTEM_ERROR: Final = NhnFailure(200, -9999, "System error")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int = 0
    code: int | None = None


def header(code: int, message: str) -> dict[str, Any]:
    return {"resultCode": code, "resultMessage": message, "isSuccessful": code == 0}


def error(code: int, message: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, {"header": header(code, message)}, headers or {})


class NhnServing(HttpServing):
    """Recording, failure injection and the key checks of an NHN API fake."""

    def __init__(self, app_key: str, secret_key: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.app_key, self.secret_key = app_key, secret_key
        self.clock = clock
        self.requests: list[Recorded] = []
        self._failures: list[NhnFailure] = []
        self._delays: list[float] = []
        self._lock = threading.Lock()

    def fail_next(self, failure: NhnFailure, times: int = 1) -> None:
        """Answer the next `times` API requests (past the key checks) with this failure."""
        with self._lock:
            self._failures.extend([failure] * times)

    def delay_next(self, seconds: float) -> None:
        """Answer the next request only after `seconds`, having done what it asked: a send whose
        answer a client that timed out never reads still sends."""
        with self._lock:
            self._delays.append(seconds)

    def sends(self) -> list[Recorded]:
        """The send requests received (accepted or not)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        if parts.path == "/_fake/messages":
            with self._lock:
                return Answer(200, {"messages": self.listed()})
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = ...
        record = Recorded(method, parts.path, query, payload, lowered)
        with self._lock:
            self.requests.append(record)
            answer = self._answer(method, parts.path, query, lowered, payload)
            delay = self._delays.pop(0) if self._delays else 0.0
        record.status = answer.status
        if isinstance(answer.body, dict):
            record.code = answer.body.get("header", {}).get("resultCode")
        if delay:
            time.sleep(delay)
        self.answered(record)
        return answer

    def checked(self, app_key: str, headers: Mapping[str, str]) -> Answer | None:
        """The answer to a request with the wrong app key or secret key, or an injected failure;
        None to go on. NHN's table has no code for a wrong secret key: `wrong_secret` says what."""
        if app_key != self.app_key:
            return error(-1000, "Invalid appKey")
        if not hmac.compare_digest(headers.get("x-secret-key", ""), self.secret_key):
            return self.wrong_secret()
        if self._failures:
            failure = self._failures.pop(0)
            return error(failure.code, failure.message, failure.http_status, failure.headers)
        return None

    def wrong_secret(self) -> Answer:
        return error(-1001, "Invalid secretKey")

    def _answer(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload: Any
    ) -> Answer:
        raise NotImplementedError

    def listed(self) -> list[dict[str, Any]]:
        """Every message as the API lists it (under the lock), for GET /_fake/messages."""
        return []

    def answered(self, record: Recorded) -> None:
        """After an answer went out (outside the lock)."""


class Listed(Protocol):
    request_id: str
    request_date: datetime


L = TypeVar("L", bound=Listed)


def matching(
    messages: Iterable[L],
    query: Mapping[str, str],
    filters: Mapping[str, str],
    start: datetime | None,
    end: datetime | None,
    minutes: bool = False,
) -> list[L]:
    """The messages a list query asks for: its `requestId`, its request date range (compared at the
    precision NHN's dates are given in: `minutes` or seconds), each filter parameter (by `filters`,
    parameter -> attribute) equal to the message's attribute."""
    request_id = query.get("requestId")

    def at(m: L) -> datetime:
        return m.request_date.replace(second=0 if minutes else m.request_date.second, microsecond=0)

    return [
        m
        for m in messages
        if (not request_id or m.request_id == request_id)
        and (start is None or end is None or start <= at(m) <= end)
        and all(getattr(m, attr) == query[name] for name, attr in filters.items() if query.get(name))
    ]


def page(found: Sequence[T], query: Mapping[str, str]) -> tuple[Sequence[T], int, int] | None:
    """The page `pageNum`/`pageSize` (15 by default, 1,000 at most) asks for, with its number and
    size; None for values that are not numbers."""
    try:
        number = max(1, int(query.get("pageNum") or 1))
        size = min(1000, max(1, int(query.get("pageSize") or 15)))
    except ValueError:
        return None
    return found[(number - 1) * size : number * size], number, size

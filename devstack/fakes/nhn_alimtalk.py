"""A fake of NHN Cloud's AlimTalk API v2.3 and of the webhook it POSTs: a real HTTP server on a free port.

It serves what shared/adapters/nhn_alimtalk.py calls, under `/alimtalk/v2.3/appkeys/<appKey>`:

- POST /messages (senderKey, templateCode, recipientList with templateParameter and
  recipientGroupingKey) -> `{"header", "message": {"requestId", "senderGroupingKey", "sendResults"}}`,
  each recipient accepted (resultCode 0) or refused with NHN's code;
- GET /messages?requestId= | startRequestDate=&endRequestDate= [&recipientGroupingKey=...&pageNum=
  &pageSize=] -> `messageSearchResultResponse{messages, totalCount}`;
- GET /messages/<requestId>/<recipientSeq> -> `message`;
- GET /message-results?startUpdateDate=&endUpdateDate= -> the results updated in the range.

Every answer has NHN's `header{resultCode, resultMessage, isSuccessful}` (HTTP 200 for API errors,
as NHN answers them). The codes are NHN's: -1000 app key, -1001 secret key, -1005 an idempotency key
seen within 10 minutes (the request is refused, no result of the first is returned), -2017 sender,
-3002 unreadable body, -3003 no such template, -3005 template not approved, -2005 more than 1,000
recipients, -1031 every recipient refused, and per recipient -4019 (invalid number), -3004 (a
template parameter missing) and -3048 (over 1,300 characters filled), -4003 a query range over 30
days, -4103 a query without a request id or range, -1016 no such message, -9998 no such API.
`fail_next(NhnFailure(...))` injects any other answer (an HTTP 429, a 503, -9999), `delay_next`
answers late after doing the work (a send whose answer a client that timed out never reads).

Delivery: an accepted message waits (resultCode empty, messageStatus READY) until `complete(...)`
or `deliver_pending()` gives it its delivery result: 1000, or the code `outcomes[recipientNo]`
says (3019 not a KakaoTalk user, 3020 blocked, 3018 inactive), and POSTs the webhook
MESSAGE_RESULT_UPDATE to `webhook_url` with `X-Toast-Webhook-Signature: <signature>`, the static
value configured with NHN's webhook (it signs nothing: the receiver compares it).

Run it in-process (`running_nhn_alimtalk()`, tests) or as a process (`python -m
devstack.fakes.nhn_alimtalk --port N --app-key A --secret-key S --sender-key K --template
CODE=content... [--webhook-url U --signature V] [--outcome 01012345678=3019] [--auto-deliver]`, the
demo), where `GET /_fake/messages` lists every message with its result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from devstack.fakes.nhn_cloud import SEOUL, NhnServing, matching, page
from devstack.fakes.nhn_cloud import SYSTEM_ERROR as SYSTEM_ERROR
from devstack.fakes.nhn_cloud import THROTTLED as THROTTLED
from devstack.fakes.nhn_cloud import UNAVAILABLE as UNAVAILABLE
from devstack.fakes.nhn_cloud import NhnFailure as NhnFailure
from devstack.fakes.nhn_cloud import Recorded as Recorded
from devstack.fakes.nhn_cloud import error as _error
from devstack.fakes.nhn_cloud import header as _header
from devstack.fakes.serving import Answer, running, wait_for_signal
from devstack.fakes.twilio_api import Poster, post_form

VERSION: Final = "v2.3"
IDEMPOTENCY_WINDOW: Final = timedelta(minutes=10)
MAX_RECIPIENTS: Final = 1000
MAX_CONTENT: Final = 1300
DELIVERED: Final = "1000"
_PATH = re.compile(r"^/alimtalk/v2\.3/appkeys/([^/]+)/(messages|message-results)(?:/([^/]+)/([0-9]+))?$")
_NUMBER = re.compile(r"^[0-9]{8,15}$")
_VARIABLE = re.compile(r"#\{([^{}#]{1,50})\}")


@dataclass(frozen=True)
class FakeTemplate:
    code: str
    status: str  # TSC03 approved; TSC01, TSC02 requested, under review; TSC04 rejected
    content: str


@dataclass
class KakaoMessage:
    request_id: str
    seq: int
    recipient_no: str
    template_code: str
    content: str
    parameters: dict[str, str]
    grouping_key: str | None
    sender_grouping_key: str | None
    request_date: datetime
    update_date: datetime
    result_code: str = ""
    message_status: str = "READY"
    receive_date: datetime | None = None
    resend: bool = False

    def listed(self) -> dict[str, Any]:
        """The message as the list and single queries return it."""
        return {
            "requestId": self.request_id,
            "recipientSeq": self.seq,
            "plusFriendId": "@shop",
            "senderKey": "",
            "templateCode": self.template_code,
            "recipientNo": self.recipient_no,
            "content": self.content,
            "requestDate": _date(self.request_date),
            "createDate": _date(self.request_date),
            "receiveDate": _date(self.receive_date) if self.receive_date else None,
            "resendStatus": "RSC01",
            "resendStatusName": "No target of resending",
            "messageStatus": self.message_status,
            "resultCode": self.result_code,
            "resultCodeName": _RESULT_NAMES.get(self.result_code, ""),
            "createUser": "",
            "senderGroupingKey": self.sender_grouping_key,
            "recipientGroupingKey": self.grouping_key,
        }


_RESULT_NAMES: Final = {
    "1000": "Success",
    "3018": "Unable to send message (inactive user or SIM mismatch)",
    "3019": "Not a KakaoTalk user",
    "3020": "Recipient blocked AlimTalk",
}


@dataclass(frozen=True)
class Webhook:
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    answered: int


def _date(moment: datetime) -> str:
    return moment.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M:%S")


def _parse_date(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", "%Y-%m-%d %H:%M").replace(tzinfo=SEOUL)
    except ValueError:
        return None


class NhnAlimTalkFake(NhnServing):
    label = "the fake NHN AlimTalk API"

    def __init__(
        self,
        app_key: str,
        secret_key: str,
        sender_key: str,
        templates: Sequence[FakeTemplate] = (),
        *,
        webhook_url: str | None = None,
        signature: str = "",
        post: Poster = post_form,  # a POST of the JSON body: the same as Twilio's form POST
        auto_deliver: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(app_key, secret_key, clock)
        self.sender_key = sender_key
        self.templates = {t.code: t for t in templates}
        self.webhook_url, self.signature, self.post = webhook_url, signature, post
        self.auto_deliver = auto_deliver
        self.outcomes: dict[str, str] = {}  # recipientNo -> its delivery result code (default 1000)
        self.messages: dict[tuple[str, int], KakaoMessage] = {}
        self.webhooks: list[Webhook] = []
        self._keys: dict[str, datetime] = {}
        self._serial = itertools.count(1)

    # --- what tests set and read -----------------------------------------------------------------

    def by_grouping_key(self) -> dict[str, list[KakaoMessage]]:
        """The accepted messages of each recipientGroupingKey (more than one: a duplicate)."""
        found: dict[str, list[KakaoMessage]] = {}
        with self._lock:
            for message in self.messages.values():
                found.setdefault(str(message.grouping_key), []).append(message)
        return found

    def complete(self, keys: Sequence[tuple[str, int]] | None = None, code: str | None = None) -> Webhook | None:
        """Give messages (all pending when `keys` is None) their delivery result: `code`, else the
        recipient's outcome, else 1000; POST one webhook with a hook for each (when configured)."""
        now = self.clock()
        with self._lock:
            chosen = [
                m for k, m in self.messages.items() if (k in keys if keys is not None else m.message_status == "READY")
            ]
            for message in chosen:
                result = code or self.outcomes.get(message.recipient_no, DELIVERED)
                message.result_code = result
                message.message_status = "COMPLETED" if result == DELIVERED else "FAILED"
                message.update_date = now
                message.receive_date = now if result == DELIVERED else None
        if not chosen or self.webhook_url is None:
            return None
        return self.send_webhook([self.hook(m) for m in chosen])

    def deliver_pending(self) -> Webhook | None:
        return self.complete(None)

    def hook(self, message: KakaoMessage) -> dict[str, Any]:
        """A MESSAGE_RESULT_UPDATE hook for one message, as NHN sends it."""
        return {
            "kakaoMessageType": "ALIMTALK_NORMAL",
            "requestId": message.request_id,
            "recipientSeq": message.seq,
            "requestDate": _date(message.request_date),
            "createDate": _date(message.request_date),
            "receiveDate": _date(message.receive_date) if message.receive_date else None,
            "recipientNo": message.recipient_no,
            "resultCode": message.result_code,
            "senderGroupingKey": message.sender_grouping_key,
            "recipientGroupingKey": message.grouping_key,
            "_links": {
                "self": {
                    "href": f"/alimtalk/{VERSION}/appkeys/{self.app_key}/messages/{message.request_id}/{message.seq}"
                }
            },  # fmt: skip
            "hookId": f"hook-{message.request_id}-{message.seq}-{secrets.token_hex(3)}",
        }

    def send_webhook(self, hooks: list[dict[str, Any]], *, signature: str | None = None) -> Webhook:
        """POST a MESSAGE_RESULT_UPDATE webhook with these hooks (another `signature` to forge one)."""
        if self.webhook_url is None:
            raise RuntimeError("no webhook_url configured")
        body = {
            "hooksId": f"{self.clock():%Y%m%d%H%M%S}{secrets.token_hex(8)}",
            "webhookConfigId": "webhook-config-1",
            "productName": "KakaoTalk Bizmessage",
            "appKey": self.app_key,
            "event": "MESSAGE_RESULT_UPDATE",
            "hooks": hooks,
        }
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "X-Toast-Webhook-Signature": self.signature if signature is None else signature,
        }
        answered = self.post(self.webhook_url, json.dumps(body, ensure_ascii=False).encode(), headers)
        sent = Webhook(self.webhook_url, body, headers, answered)
        with self._lock:
            self.webhooks.append(sent)
        return sent

    # --- serving ---------------------------------------------------------------------------------

    def listed(self) -> list[dict[str, Any]]:
        return [m.listed() for m in self.messages.values()]

    def answered(self, record: Recorded) -> None:
        if self.auto_deliver and record.method == "POST" and record.code in (0, -1031):
            threading.Thread(target=self._deliver_later, daemon=True).start()

    def _deliver_later(self) -> None:
        time.sleep(0.05)
        self.deliver_pending()

    # --- the API (under the lock) ----------------------------------------------------------------

    def _answer(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload: Any
    ) -> Answer:
        found = _PATH.match(path)
        if found is None:
            return _error(-9998, "API does not exist", 404)
        app_key, resource, request_id, seq = found.groups()
        refused = self.checked(app_key, headers)
        if refused is not None:
            return refused
        if resource == "messages" and method == "POST" and request_id is None:
            return self._send(headers, payload)
        if method != "GET":
            return _error(-9998, "API does not exist", 405)
        if resource == "message-results":
            return self._results(query)
        if request_id is not None:
            message = self.messages.get((request_id, int(seq)))
            if message is None:
                return _error(-1016, "Message not found")
            return Answer(200, {"header": _header(0, "SUCCESS"), "message": message.listed()})
        return self._list(query)

    def _send(self, headers: Mapping[str, str], payload: Any) -> Answer:
        if not headers.get("content-type", "").startswith("application/json"):
            return _error(-9996, "Content-Type is not application/json")
        now = self.clock()
        key = headers.get("x-nc-api-idempotency-key")
        if key:
            seen = self._keys.get(key)
            if seen is not None and now - seen < IDEMPOTENCY_WINDOW:
                return _error(-1005, "Duplicate request (X-NC-API-IDEMPOTENCY-KEY)")
            self._keys[key] = now
        if not isinstance(payload, dict):
            return _error(-3002, "Required request body is missing or unreadable")
        if payload.get("senderKey") != self.sender_key:
            return _error(-2017, "No outgoing profile found")
        template = self.templates.get(str(payload.get("templateCode")))
        if template is None:
            return _error(-3003, "Template does not exist")
        if template.status != "TSC03":
            return _error(-3005, "Template status error (not approved)")
        recipients = payload.get("recipientList")
        if not isinstance(recipients, list) or not recipients:
            return _error(-2001, "recipientList is empty")
        if len(recipients) > MAX_RECIPIENTS:
            return _error(-2005, f"recipientList holds at most {MAX_RECIPIENTS} recipients")
        request_id = f"{now.astimezone(SEOUL):%Y%m%d%H%M%S}{next(self._serial):04d}{secrets.token_hex(4)}"
        sender_group = payload.get("senderGroupingKey")
        results = []
        for seq, recipient in enumerate(recipients, start=1):
            code, text = self._accept(request_id, seq, template, recipient, sender_group, now)
            results.append(
                {
                    "recipientSeq": seq,
                    "recipientNo": recipient.get("recipientNo") if isinstance(recipient, dict) else None,
                    "resultCode": code,
                    "resultMessage": text,
                    "recipientGroupingKey": recipient.get("recipientGroupingKey")
                    if isinstance(recipient, dict)
                    else None,
                }
            )
        header = _header(0, "SUCCESS") if any(r["resultCode"] == 0 for r in results) else _header(-1031, "All failed")
        message = {"requestId": request_id, "senderGroupingKey": sender_group, "sendResults": results}
        return Answer(200, {"header": header, "message": message})

    def _accept(
        self, request_id: str, seq: int, template: FakeTemplate, recipient: Any, sender_group: Any, now: datetime
    ) -> tuple[int, str]:
        if not isinstance(recipient, dict):
            return -3002, "unreadable recipient"
        number = recipient.get("recipientNo")
        if not isinstance(number, str) or not _NUMBER.match(number):
            return -4019, "Invalid recipient number"
        grouping = recipient.get("recipientGroupingKey")
        if grouping is not None and (not isinstance(grouping, str) or len(grouping) > 100):
            return -2000, "recipientGroupingKey is too long"
        values = recipient.get("templateParameter") or {}
        if not isinstance(values, dict):
            return -3004, "Template parameter error"
        missing = [name for name in _VARIABLE.findall(template.content) if name not in values]
        if missing:
            return -3004, f"Template parameter error: no value for #{{{missing[0]}}}"
        content = _VARIABLE.sub(lambda m: str(values[m.group(1)]), template.content)
        if len(content) > MAX_CONTENT:
            return -3048, "Template parameter cannot exceed 1,300 characters"
        self.messages[(request_id, seq)] = KakaoMessage(
            request_id, seq, number, template.code, content, {str(k): str(v) for k, v in values.items()},
            grouping, sender_group if isinstance(sender_group, str) else None, now, now,
            resend=bool((recipient.get("resendParameter") or {}).get("isResend", True)),
        )  # fmt: skip
        return 0, "SUCCESS"

    def _list(self, query: Mapping[str, str]) -> Answer:
        request_id = query.get("requestId")
        start, end = _parse_date(query.get("startRequestDate")), _parse_date(query.get("endRequestDate"))
        if not request_id and (start is None or end is None):
            return _error(-4103, "Invalid request ID or request start date/request end date")
        if start is not None and end is not None and end - start > timedelta(days=30):
            return _error(-4003, "The search range exceeds one month")
        filters = {
            "recipientNo": "recipient_no",
            "recipientGroupingKey": "grouping_key",
            "senderGroupingKey": "sender_grouping_key",
            "templateCode": "template_code",
            "messageStatus": "message_status",
        }
        found = matching(self.messages.values(), query, filters, start, end, minutes=True)
        return self._page(found, query, lambda rows, total: {"messageSearchResultResponse": {
            "messages": rows, "totalCount": total}})  # fmt: skip

    def _results(self, query: Mapping[str, str]) -> Answer:
        start, end = _parse_date(query.get("startUpdateDate")), _parse_date(query.get("endUpdateDate"))
        if start is None or end is None:
            return _error(-4000, "startUpdateDate and endUpdateDate are required (yyyy-MM-dd HH:mm)")
        found = [
            m
            for m in self.messages.values()
            if m.result_code and start <= m.update_date.replace(second=0, microsecond=0) <= end
        ]
        return self._page(found, query, lambda rows, total: {"messages": rows})

    def _page(
        self,
        found: list[KakaoMessage],
        query: Mapping[str, str],
        shape: Callable[[list[dict[str, Any]], int], dict[str, Any]],
    ) -> Answer:
        chosen = page(found, query)
        if chosen is None:
            return _error(-4000, "Invalid parameter")
        rows = [m.listed() for m in chosen[0]]
        return Answer(200, {"header": _header(0, "SUCCESS"), **shape(rows, len(found))})


def running_nhn_alimtalk(
    app_key: str, secret_key: str, sender_key: str, templates: Sequence[FakeTemplate] = (), **options: Any
) -> AbstractContextManager[NhnAlimTalkFake]:
    """A started fake (options as NhnAlimTalkFake takes them), stopped on exit."""
    return running(NhnAlimTalkFake(app_key, secret_key, sender_key, templates, **options))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; prints the base URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--sender-key", required=True)
    parser.add_argument("--template", action="append", default=[], help="CODE=content (approved); repeatable")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--signature", default="")
    parser.add_argument("--outcome", action="append", default=[], help="RECIPIENT_NO=CODE (e.g. 3019); repeatable")
    parser.add_argument("--auto-deliver", action="store_true", help="give each message its result and POST the hook")
    args = parser.parse_args(argv)
    templates = [FakeTemplate(code, "TSC03", content) for code, _, content in (t.partition("=") for t in args.template)]
    fake = NhnAlimTalkFake(
        args.app_key, args.secret_key, args.sender_key, templates,
        webhook_url=args.webhook_url, signature=args.signature, auto_deliver=args.auto_deliver,
    )  # fmt: skip
    fake.outcomes.update(dict(o.split("=", 1) for o in args.outcome))
    print(fake.start(args.port), flush=True)
    wait_for_signal()
    fake.stop()


if __name__ == "__main__":
    main()

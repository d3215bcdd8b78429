"""A fake of NHN Cloud's SMS API v3.0: a real HTTP server on a free port, recording every request.

It serves what shared/adapters/nhn_sms.py calls, under `/sms/v3.0/appKeys/<appKey>`:

- POST /sender/sms, /sender/mms (an LMS: no attachments), /sender/ad-sms, /sender/ad-mms with `body`,
  `title` (LMS), `sendNo`, `senderGroupingKey` and `recipientList[]{recipientNo,
  recipientGroupingKey}` -> `{"header", "body": {"data": {"requestId", "statusCode",
  "senderGroupingKey", "sendResultList": [{recipientNo, resultCode, resultMessage, recipientSeq,
  recipientGroupingKey}]}}}`;
- GET /sender/sms, /sender/mms with `requestId`, or `startRequestDate` and `endRequestDate`
  (`yyyy-MM-dd HH:mm:ss`, a month at most), filtered by `recipientGroupingKey`, `recipientNo`,
  `senderGroupingKey`, `msgStatus`, paged by `pageNum`/`pageSize` -> `body{pageNum, pageSize,
  totalCount, data[]}` (advertisements listed with the others of their type, `adYn` Y);
- GET /sender/sms/<requestId>?recipientSeq=, /sender/mms/<requestId>?recipientSeq= -> `body.data`;
- GET /message-results?startUpdateDate=&endUpdateDate= (a day at most) -> the results updated then.

Limits as NHN applies them: an SMS body over 255 characters, an LMS title over 120 or body over
4,000 is refused (-2015), a character EUC-KR lacks too (-2023), a missing title or body (-2014);
within those NHN sends, and the phone shows the first 90 bytes of an SMS, 40 of a title and 2,000 of
an LMS body in EUC-KR: each message keeps what was `shown` and whether it was `cut`. Other codes are
NHN's: -1000 app key, -2312 sender number not registered, -2313 blocked, -2001 no recipient, -2016
over 1,000, -6003 an advertisement without "(광고)" at the start or the free 080 opt-out line at
the end, -9996 not JSON, -9997 unreadable, -2011 a query without a request id or range, -4000 a
range over a month (or, for results, a day), -2012 a single query without its recipientSeq, -9998
no such API; per recipient -2019 (invalid number) and -6001 (an advertisement to a number on the 080
reject list, `block(number)`). NHN's code table has none for a wrong `X-Secret-Key`: the fake answers
HTTP 401 with -1001 in the header. `fail_next(NhnFailure(...))` injects any other answer (429 with
Retry-After, 503, -9999), `delay_next` answers late after doing the work.

Delivery: an accepted message is processing (msgStatus 2, no result code) until `complete(...)` or
`deliver_pending()` gives it its result: 1000 (msgStatus 3), or the code `outcomes[recipientNo]`
says (msgStatus 0: 3001 no subscriber, 2003 phone off, ...); `auto_deliver` does it after each send.

Run it in-process (`running_nhn_sms()`, tests) or as a process (`python -m devstack.fakes.nhn_sms
--port N --app-key A --secret-key S --sender-number 0212345678 [--block 01012345678] [--outcome
01012345678=3001] [--auto-deliver]`, the demo), where `GET /_fake/messages` lists every message.
"""

from __future__ import annotations

import argparse
import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from devstack.fakes.nhn_cloud import SEOUL, NhnServing, Recorded, error, header, matching, page
from devstack.fakes.serving import Answer, running, wait_for_signal

VERSION: Final = "v3.0"
MAX_RECIPIENTS: Final = 1000
SMS_CHARS, TITLE_CHARS, LMS_CHARS = 255, 120, 4000  # what NHN takes
SMS_BYTES, TITLE_BYTES, LMS_BYTES = 90, 40, 2000  # what a phone shows, in EUC-KR
DELIVERED: Final = "1000"
AD_MARK: Final = "(광고)"
_PATH = re.compile(r"^/sms/v3\.0/appKeys/([^/]+)/(?:sender/(sms|mms|ad-sms|ad-mms)(?:/([^/]+))?|(message-results))$")
_NUMBER = re.compile(r"^01[0-9]{8,9}$")
_OPT_OUT_LINE = re.compile(r"(무료수신거부|무료거부)\s*080-?[0-9]{3,4}-?[0-9]{4}\s*$")
_STATUS_NAMES: Final = {"0": "실패", "1": "요청", "2": "처리 중", "3": "성공"}
_RESULT_NAMES: Final = {"1000": "성공", "2003": "단말기 전원 꺼짐", "3001": "가입자 없음", "3006": "착신 거절"}


@dataclass
class SmsMessage:
    request_id: str
    seq: int
    kind: str  # SMS or LMS
    advertising: bool
    recipient_no: str
    sender_no: str
    title: str | None
    body: str
    shown_title: str | None
    shown_body: str
    grouping_key: str | None
    sender_grouping_key: str | None
    request_date: datetime
    update_date: datetime
    msg_status: str = "2"
    result_code: str = ""
    result_date: datetime | None = None

    @property
    def cut(self) -> bool:
        """Whether the phone shows less than was sent (NHN sent it anyway)."""
        return self.shown_body != self.body or self.shown_title != self.title

    def listed(self) -> dict[str, Any]:
        """The message as the list and single queries return it."""
        found = {
            "requestId": self.request_id,
            "requestDate": _date(self.request_date),
            "resultDate": _date(self.result_date) if self.result_date else None,
            "templateId": None,
            "body": self.body,
            "sendNo": self.sender_no,
            "countryCode": "82",
            "recipientNo": self.recipient_no,
            "msgStatus": self.msg_status,
            "msgStatusName": _STATUS_NAMES.get(self.msg_status, ""),
            "resultCode": self.result_code or None,
            "resultCodeName": _RESULT_NAMES.get(self.result_code, "실패" if self.result_code else None),
            "telecomCode": 10001,
            "telecomCodeName": "SKT",
            "recipientSeq": self.seq,
            "sendType": "0" if self.kind == "SMS" else "1",
            "messageType": self.kind,
            "messageCount": 1,
            "userId": None,
            "adYn": "Y" if self.advertising else "N",
            "resultMessage": "",
            "senderGroupingKey": self.sender_grouping_key,
            "recipientGroupingKey": self.grouping_key,
        }
        if self.kind == "LMS":
            found["title"] = self.title
        return found


def _date(moment: datetime) -> str:
    return f"{moment.astimezone(SEOUL):%Y-%m-%d %H:%M:%S}.0"


def _parse_date(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", "%Y-%m-%d %H:%M:%S").replace(tzinfo=SEOUL)
    except ValueError:
        return None


def _shown(text: str, limit: int) -> str:
    """What a phone shows of `text`: its first `limit` bytes in EUC-KR, whole characters only."""
    size = 0
    for index, char in enumerate(text):
        size += len(char.encode("euc_kr"))
        if size > limit:
            return text[:index]
    return text


def _euc_kr(text: str) -> bool:
    try:
        text.encode("euc_kr")
    except UnicodeEncodeError:
        return False
    return True


class NhnSmsFake(NhnServing):
    label = "the fake NHN SMS API"

    def __init__(
        self,
        app_key: str,
        secret_key: str,
        sender_numbers: Sequence[str],
        *,
        auto_deliver: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`sender_numbers` are the numbers registered in the console (sendNo must be one)."""
        super().__init__(app_key, secret_key, clock)
        self.sender_numbers = set(sender_numbers)
        self.blocked_senders: set[str] = set()  # registered, then blocked (-2313)
        self.rejected: set[str] = set()  # numbers on the 080 reject list: advertisements refused (-6001)
        self.outcomes: dict[str, str] = {}  # recipientNo -> its result code (default 1000)
        self.auto_deliver = auto_deliver
        self.messages: dict[tuple[str, int], SmsMessage] = {}
        self._serial = itertools.count(1)

    # --- what tests set and read -----------------------------------------------------------------

    def block(self, number: str) -> None:
        """Put a number on the 080 reject list, as when its owner calls the free 080 number."""
        with self._lock:
            self.rejected.add(number)

    def by_grouping_key(self) -> dict[str, list[SmsMessage]]:
        """The accepted messages of each recipientGroupingKey (more than one: a duplicate)."""
        found: dict[str, list[SmsMessage]] = {}
        with self._lock:
            for message in self.messages.values():
                found.setdefault(str(message.grouping_key), []).append(message)
        return found

    def complete(self, keys: Sequence[tuple[str, int]] | None = None, code: str | None = None) -> int:
        """Give messages (all processing when `keys` is None) their result: `code`, else the
        recipient's outcome, else 1000; returns how many."""
        now = self.clock()
        with self._lock:
            chosen = [m for k, m in self.messages.items() if (k in keys if keys is not None else m.msg_status == "2")]
            for message in chosen:
                result = code or self.outcomes.get(message.recipient_no, DELIVERED)
                message.result_code, message.msg_status = result, "3" if result == DELIVERED else "0"
                message.update_date = message.result_date = now
        return len(chosen)

    def deliver_pending(self) -> int:
        return self.complete(None)

    # --- serving ---------------------------------------------------------------------------------

    def listed(self) -> list[dict[str, Any]]:
        return [m.listed() | {"cut": m.cut} for m in self.messages.values()]

    def answered(self, record: Recorded) -> None:
        if self.auto_deliver and record.method == "POST" and record.code == 0:
            threading.Thread(target=self._deliver_later, daemon=True).start()

    def _deliver_later(self) -> None:
        time.sleep(0.05)
        self.deliver_pending()

    def wrong_secret(self) -> Answer:
        return error(-1001, "Invalid secretKey", 401)

    # --- the API (under the lock) ----------------------------------------------------------------

    def _answer(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload: Any
    ) -> Answer:
        found = _PATH.match(path)
        if found is None:
            return error(-9998, "Not exist API", 404)
        app_key, kind, request_id, results = found.groups()
        refused = self.checked(app_key, headers)
        if refused is not None:
            return refused
        if method == "POST" and kind is not None and request_id is None:
            return self._send(kind, headers, payload)
        if method != "GET" or (kind is not None and kind.startswith("ad-")):
            return error(-9998, "Not exist API", 405)
        if results:
            return self._results(query)
        message_type = "SMS" if kind == "sms" else "LMS"
        if request_id is not None:
            return self._single(message_type, request_id, query)
        return self._list(message_type, query)

    def _send(self, kind: str, headers: Mapping[str, str], payload: Any) -> Answer:
        if not headers.get("content-type", "").startswith("application/json"):
            return error(-9996, "Only application/json Content-type is supported.")
        if not isinstance(payload, dict):
            return error(-9997, "Invalid API parameters.")
        sender = payload.get("sendNo")
        if sender not in self.sender_numbers:
            return error(-2312, "Not regist sendno.")
        if sender in self.blocked_senders:
            return error(-2313, "This sendno is blocked.")
        lms = kind.endswith("mms")
        body, title = payload.get("body"), payload.get("title") if lms else None
        if not isinstance(body, str) or not body or (lms and (not isinstance(title, str) or not title)):
            return error(-2014, "Title or body is missing.")
        if len(body) > (LMS_CHARS if lms else SMS_CHARS) or (title is not None and len(title) > TITLE_CHARS):
            return error(-2015, "Title or Body exceed maximum byte.")
        if not _euc_kr(body) or (title is not None and not _euc_kr(title)):
            return error(-2023, "Unacceptable characters in title and body.")
        advertising = kind.startswith("ad-")
        if advertising and not (body.lstrip().startswith(AD_MARK) and _OPT_OUT_LINE.search(body)):
            return error(-6003, "The body must contain block guide ment.")
        recipients = payload.get("recipientList")
        if not isinstance(recipients, list) or not recipients:
            return error(-2001, "RecipientList can not be null.")
        if len(recipients) > MAX_RECIPIENTS:
            return error(-2016, f"The max recipient size is {MAX_RECIPIENTS}.")
        now = self.clock()
        request_id = f"{now.astimezone(SEOUL):%Y%m%d%H%M%S}{next(self._serial):04d}{secrets.token_hex(3)}"
        sender_group = payload.get("senderGroupingKey")
        made = SmsMessage(
            request_id, 0, "LMS" if lms else "SMS", advertising, "", str(sender), title, body,
            None if title is None else _shown(title, TITLE_BYTES), _shown(body, LMS_BYTES if lms else SMS_BYTES),
            None, sender_group if isinstance(sender_group, str) else None, now, now,
        )  # fmt: skip
        answers = [self._accept(made, seq, recipient) for seq, recipient in enumerate(recipients, start=1)]
        data = {
            "requestId": request_id,
            "statusCode": "2",
            "senderGroupingKey": sender_group,
            "sendResultList": answers,
        }
        return Answer(200, {"header": header(0, "SUCCESS"), "body": {"data": data}})

    def _accept(self, made: SmsMessage, seq: int, recipient: Any) -> dict[str, Any]:
        """One recipient's answer; an accepted one is kept as its own message."""
        fields = recipient if isinstance(recipient, dict) else {}
        number, grouping = fields.get("recipientNo"), fields.get("recipientGroupingKey")
        answer = {"recipientNo": number, "recipientSeq": seq, "recipientGroupingKey": grouping}
        if not isinstance(number, str) or not _NUMBER.match(number):
            return answer | {"resultCode": -2019, "resultMessage": "RecipientNo is invalid."}
        if made.advertising and number in self.rejected:
            return answer | {"resultCode": -6001, "resultMessage": "Recipient Number is refused."}
        key = grouping if isinstance(grouping, str) and len(grouping) <= 100 else None
        self.messages[(made.request_id, seq)] = replace(made, seq=seq, recipient_no=number, grouping_key=key)
        return answer | {"resultCode": 0, "resultMessage": "SUCCESS"}

    def _list(self, message_type: str, query: Mapping[str, str]) -> Answer:
        request_id = query.get("requestId")
        start, end = _parse_date(query.get("startRequestDate")), _parse_date(query.get("endRequestDate"))
        if not request_id and (start is None or end is None):
            return error(-2011, "RequestId or start/endRequestDate or start/endCreateDate is required.")
        if start is not None and end is not None and end - start > timedelta(days=31):
            return error(-4000, "Search is possible within one month.")
        filters = {
            "recipientNo": "recipient_no",
            "recipientGroupingKey": "grouping_key",
            "senderGroupingKey": "sender_grouping_key",
            "msgStatus": "msg_status",
        }
        of_type = (m for m in self.messages.values() if m.kind == message_type)
        return self._page(matching(of_type, query, filters, start, end), query)

    def _single(self, message_type: str, request_id: str, query: Mapping[str, str]) -> Answer:
        try:
            seq = int(query.get("recipientSeq") or "")
        except ValueError:
            return error(-2012, "Search parameter is invalid.(requestId and recipientSeq).")
        message = self.messages.get((request_id, seq))
        if message is None or message.kind != message_type:
            return error(-2008, "Invalid requestId.")
        return Answer(200, {"header": header(0, "SUCCESS"), "body": {"data": message.listed()}})

    def _results(self, query: Mapping[str, str]) -> Answer:
        start, end = _parse_date(query.get("startUpdateDate")), _parse_date(query.get("endUpdateDate"))
        if start is None or end is None:
            return error(-2000, "Date format error.")
        if end - start > timedelta(days=1):
            return error(-4000, "The range of result updates is one day at most.")
        wanted = query.get("messageType")
        found = [
            m
            for m in self.messages.values()
            if m.result_code
            and start <= m.update_date.replace(microsecond=0) <= end
            and (not wanted or m.kind == wanted)
        ]
        return self._page(found, query)

    def _page(self, found: list[SmsMessage], query: Mapping[str, str]) -> Answer:
        chosen = page(found, query)
        if chosen is None:
            return error(-1005, "Service parameter is invalid.")
        rows, number, size = chosen
        body = {"pageNum": number, "pageSize": size, "totalCount": len(found), "data": [m.listed() for m in rows]}
        return Answer(200, {"header": header(0, "SUCCESS"), "body": body})


def running_nhn_sms(
    app_key: str, secret_key: str, sender_numbers: Sequence[str], **options: Any
) -> AbstractContextManager[NhnSmsFake]:
    """A started fake (options as NhnSmsFake takes them), stopped on exit."""
    return running(NhnSmsFake(app_key, secret_key, sender_numbers, **options))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; prints the base URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--app-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--sender-number", action="append", required=True, help="a registered sendNo; repeatable")
    parser.add_argument("--block", action="append", default=[], help="a number on the 080 reject list; repeatable")
    parser.add_argument("--outcome", action="append", default=[], help="RECIPIENT_NO=CODE (e.g. 3001); repeatable")
    parser.add_argument("--auto-deliver", action="store_true", help="give each accepted message its result")
    args = parser.parse_args(argv)
    fake = NhnSmsFake(args.app_key, args.secret_key, args.sender_number, auto_deliver=args.auto_deliver)
    fake.rejected.update(args.block)
    fake.outcomes.update(dict(o.split("=", 1) for o in args.outcome))
    print(fake.start(args.port), flush=True)
    wait_for_signal()
    fake.stop()


if __name__ == "__main__":
    main()

"""A fake of the Graph API's Custom Audience endpoints: a real HTTP server on a free port.

It serves what shared/adapters/facebook_audiences.py calls, under a version prefix (`/v26.0/...`):

- POST act_<id>/customaudiences (name, description, subtype, customer_file_source) -> {"id"};
- POST and DELETE <audience>/users, POST <audience>/usersreplace, with `payload` and `session` as
  form fields in the body (the query string too, as Graph reads both);
- GET <audience>?fields=... (name, approximate counts, operation_status, delivery_status).

It keeps each audience's members (the rows as sent, per schema) so a test can assert exactly who is
in, records every request, and checks what Meta checks: the token (Authorization header or
access_token) and appsecret_proof when configured, the schema's keys, the data's shape, at most
10,000 rows, and per row a SHA-256 hex digest (64 lower-case hex) or a blank for hashed keys; bad
rows are counted in num_invalid_entries and sampled, never stored. Replace sessions follow Meta's
rules as documented: batch_seq from 1 in order, the session ends only with last_batch_flag, a second
session while one is open is refused with 2650/1870147 (the stuck session), and a retried batch of
the open or just-closed session changes nothing.

Errors have Graph's shape, {"error": {"message", "type", "code", "error_subcode", "fbtrace_id",
"is_transient"}} (developers.facebook.com/docs/graph-api/guides/error-handling), with Meta's codes:
throttling 17/2446079, 613/1487742, 80003 and 80004 with a usage header; an expired token 190/463;
a restricted audience (operation_status 471) refusing member edits with 100/1713230 (Custom Audience
Users reference); a deleted audience 100/33. Message texts are the fake's own unless noted.

Run it in-process (`running_meta_graph()`, tests) or as a process (`python -m
devstack.fakes.meta_graph --port N`, the demo and benchmarks), where `GET /_fake/audiences` reports
the audiences and their sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from devstack.fakes.serving import Answer, HttpServing, running, wait_for_signal

HASHED_KEYS: Final = frozenset(
    {"EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP", "COUNTRY"}
)
UNHASHED_KEYS: Final = frozenset({"EXTERN_ID", "MADID"})
SINGLE_KEY_SCHEMAS: Final = {"EMAIL_SHA256": "EMAIL", "PHONE_SHA256": "PHONE", "MOBILE_ADVERTISER_ID": "MADID"}
MAX_ROWS: Final = 10_000
MAX_SAMPLES: Final = 10
CUSTOMER_FILE_SOURCES: Final = frozenset(
    {"USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"}
)

_HASH = re.compile(r"^[0-9a-f]{64}$")
_VERSIONED = re.compile(r"^/(v[0-9]+\.[0-9]+)/(.+)$")
_GRAPH_ID = re.compile(r"^[0-9]+$")
_ACCOUNT = re.compile(r"^act_[0-9]+$")

Schema = tuple[str, ...]
Row = tuple[str, ...]


@dataclass(frozen=True)
class GraphFailure:
    """One error answer, as Graph sends it."""

    http_status: int
    code: int | None
    subcode: int | None
    message: str
    type: str = "OAuthException"
    is_transient: bool = False
    user_title: str | None = None
    user_msg: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    plain_body: str | None = None  # answered as text/plain instead of the JSON error (a front-end 429)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        if self.user_title:
            error["error_user_title"] = self.user_title
        if self.user_msg:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = secrets.token_urlsafe(8)
        return {"error": error}


def usage_header(
    call_count: float, regain_minutes: int = 0, business_id: str = "0", kind: str = "custom_audience"
) -> str:
    """An X-Business-Use-Case-Usage value (percentages of the hourly quota; minutes until access returns)."""
    entry = {
        "type": kind,
        "call_count": call_count,
        "total_cputime": min(call_count, 100),
        "total_time": min(call_count, 100),
        "estimated_time_to_regain_access": regain_minutes,
        "ads_api_access_tier": "development_access",
    }
    return json.dumps({business_id: [entry]})


def throttled(code: int = 80003, regain_minutes: int = 1, business_id: str = "0") -> GraphFailure:
    """A rate-limit error with the usage header that comes with it (codes 17, 613, 80003, 80004)."""
    subcodes = {17: 2446079, 613: 1487742, 80003: 2446079, 80004: 2446079}
    messages = {
        17: "User request limit reached",
        613: "There have been too many calls from this ad-account. Please wait a bit and try again.",
        80003: "There have been too many calls to this ad-account (custom audience). Wait a bit and try again.",
        80004: "There have been too many calls to this ad-account (ads management). Wait a bit and try again.",
    }
    return GraphFailure(
        400,
        code,
        subcodes.get(code),
        messages.get(code, "Too many calls"),
        is_transient=True,
        headers={"X-Business-Use-Case-Usage": usage_header(100, regain_minutes, business_id)},
    )


TOKEN_EXPIRED: Final = GraphFailure(
    400, 190, 463, "Error validating access token: Session has expired on Tuesday, 01-Dec-26 09:00:00 PST."
)
POLICY_BLOCKED: Final = GraphFailure(
    400,
    100,
    1713230,
    "Invalid parameter",  # this and the user title are the Custom Audience Users reference's example
    user_title="Audience Upload Blocked",
    user_msg="Resolve the integrity restrictions on this customer-file audience in Audience Manager first.",
)
SESSION_STUCK: Final = GraphFailure(
    400, 2650, 1870147, "Failed to update the custom audience: a replace session of this audience is still open."
)
TOO_MANY_REQUESTS: Final = GraphFailure(
    429, None, None, "Too Many Requests", headers={"Retry-After": "30"}, plain_body="Too Many Requests"
)
SERVICE_UNAVAILABLE: Final = GraphFailure(500, 2, None, "Service temporarily unavailable", is_transient=True)


def audience_gone(method: str, object_id: str) -> GraphFailure:
    """Graph's answer for an id that does not exist (deleted) or the token cannot see."""
    return GraphFailure(
        400,
        100,
        33,
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation.",
        type="GraphMethodException",
    )


def invalid_parameter(detail: str) -> GraphFailure:
    return GraphFailure(400, 100, None, f"(#100) {detail}")


@dataclass
class Recorded:
    """One request as the fake received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def field(self, name: str) -> str | None:
        """A parameter from the body, else the query string (as Graph reads them)."""
        values = self.form.get(name) or self.query.get(name)
        return values[-1] if values else None


@dataclass
class ReplaceSession:
    session_id: int
    next_seq: int = 1
    rows: dict[Schema, set[Row]] = field(default_factory=dict)
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)  # batch_seq -> answer, for retries


@dataclass
class FakeAudience:
    audience_id: str
    account: str
    name: str
    description: str
    customer_file_source: str
    members: dict[Schema, set[Row]] = field(default_factory=dict)
    operation_status: int = 200
    deleted: bool = False
    session: ReplaceSession | None = None
    ended: dict[int, ReplaceSession] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(rows) for rows in self.members.values())


class MetaGraphFake(HttpServing):
    """State, failure injection and the request logic; the HTTP server calls handle()."""

    label = "the fake Graph API"

    def __init__(
        self,
        access_token: str | None = None,
        app_secret: str | None = None,
        expired_versions: Mapping[str, str] | None = None,
        record_bodies: bool = True,
    ) -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.expired_versions = dict(expired_versions or {})  # expired version -> version that answers
        self.record_bodies = record_bodies  # off for million-row benchmarks
        self.requests: list[Recorded] = []
        self.audiences: dict[str, FakeAudience] = {}
        self.usage_headers: dict[str, str] = {}  # sent with every answer (X-Business-Use-Case-Usage, ...)
        self.token_expired = False
        self._failures: list[GraphFailure] = []
        self._ids = itertools.count(23_850_000_000_000_001)
        self._lock = threading.Lock()

    # --- what tests set and read -----------------------------------------------------------------

    def fail_next(self, failure: GraphFailure, times: int = 1) -> None:
        """Answer the next `times` Graph requests with this error."""
        with self._lock:
            self._failures.extend([failure] * times)

    def expire_token(self) -> None:
        self.token_expired = True

    def flag_audience(self, audience_id: str) -> None:
        """Restrict the audience as Meta's policy review does: operation_status 471, edits refused."""
        self.audiences[audience_id].operation_status = 471

    def delete_audience(self, audience_id: str) -> None:
        self.audiences[audience_id].deleted = True

    def report_usage(self, call_count: float, regain_minutes: int = 0, account_percent: float | None = None) -> None:
        """Send these usage headers with every later answer."""
        self.usage_headers["X-Business-Use-Case-Usage"] = usage_header(call_count, regain_minutes)
        if account_percent is not None:
            self.usage_headers["X-Ad-Account-Usage"] = json.dumps(
                {
                    "acc_id_util_pct": account_percent,
                    "reset_time_duration": 120,
                    "ads_api_access_tier": "standard_access",
                }
            )

    def members(self, audience_id: str, schema: Sequence[str]) -> set[Row]:
        """The rows the audience holds under this schema, blanks as ""."""
        return set(self.audiences[audience_id].members.get(tuple(schema), set()))

    def graph_requests(self, method: str | None = None, edge: str | None = None) -> list[Recorded]:
        """Recorded Graph calls, optionally of one method and ending in one edge ("users")."""
        with self._lock:
            found = list(self.requests)
        return [
            r
            for r in found
            if (method is None or r.method == method) and (edge is None or r.path.rstrip("/").endswith("/" + edge))
        ]

    # --- serving ---------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        lowered = {name.lower(): value for name, value in headers.items()}
        query = parse_qs(parts.query, keep_blank_values=True)
        is_form = lowered.get("content-type", "").startswith("application/x-www-form-urlencoded")
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if body and is_form else {}
        if parts.path.startswith("/_fake/"):
            return self._control(parts.path)
        record = Recorded(method, parts.path, query, form, lowered, body if self.record_bodies else b"")
        params = {name: values[-1] for name, values in {**query, **form}.items()}
        with self._lock:
            self.requests.append(record)
            answer = self._answer(method, parts.path, params, lowered)
        record.status = answer.status
        return answer

    # --- Graph semantics (under the lock) --------------------------------------------------------

    def _answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        extra = dict(self.usage_headers)
        match = _VERSIONED.match(path)
        if match is None:
            return _failed(invalid_parameter(f"Unknown path {path!r}: calls need a version prefix"), extra)
        version, rest = match.groups()
        if version in self.expired_versions:
            upgraded = self.expired_versions[version]
            extra["X-Ad-Api-Version-Warning"] = f"{version} has expired; this call was answered by {upgraded}."
        refused = self._auth(params, headers)
        if refused is None and self._failures:
            refused = self._failures.pop(0)
        if refused is not None:
            return _failed(refused, extra)
        segments = rest.strip("/").split("/")
        if len(segments) == 2 and _ACCOUNT.match(segments[0]) and segments[1] == "customaudiences" and method == "POST":
            return Answer(200, self._create(segments[0], params), extra)
        if not _GRAPH_ID.match(segments[0]):
            return _failed(audience_gone(method, segments[0]), extra)
        audience = self.audiences.get(segments[0])
        if audience is None or audience.deleted:
            return _failed(audience_gone(method, segments[0]), extra)
        if len(segments) == 1 and method == "GET":
            return Answer(200, _read(audience, params.get("fields", "")), extra)
        if len(segments) == 2 and (segments[1], method) in {
            ("users", "POST"),
            ("users", "DELETE"),
            ("usersreplace", "POST"),
        }:
            outcome = self._edit(audience, segments[1], method, params)
            return _failed(outcome, extra) if isinstance(outcome, GraphFailure) else Answer(200, outcome, extra)
        return _failed(audience_gone(method, rest), extra)

    def _auth(self, params: Mapping[str, str], headers: Mapping[str, str]) -> GraphFailure | None:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        token = credential if scheme.lower() in {"bearer", "oauth"} else params.get("access_token", "")
        if not token:
            return GraphFailure(400, 104, None, "An access token is required to request this resource.")
        if self.access_token is not None and token != self.access_token:
            return GraphFailure(400, 190, None, "Invalid OAuth access token - Cannot parse access token")
        if self.token_expired:
            return TOKEN_EXPIRED
        if self.app_secret is not None:
            expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(params.get("appsecret_proof", ""), expected):
                return GraphFailure(
                    400, 100, None, "Invalid appsecret_proof provided in the API argument", type="GraphMethodException"
                )
        return None

    def _create(self, account: str, params: Mapping[str, str]) -> dict[str, Any]:
        audience_id = str(next(self._ids))
        self.audiences[audience_id] = FakeAudience(
            audience_id,
            account,
            params.get("name", ""),
            params.get("description", ""),
            params.get("customer_file_source", ""),
        )
        return {"id": audience_id}

    def _edit(
        self, audience: FakeAudience, edge: str, method: str, params: Mapping[str, str]
    ) -> dict[str, Any] | GraphFailure:
        if audience.operation_status == 471:
            return POLICY_BLOCKED
        parsed = _payload(params.get("payload"))
        if isinstance(parsed, GraphFailure):
            return parsed
        schema, data = parsed
        session = _session(params.get("session"), required=edge == "usersreplace")
        if isinstance(session, GraphFailure):
            return session
        valid, invalid, samples = _check_rows(schema, data)
        answer = {
            "audience_id": audience.audience_id,
            "session_id": str(session["session_id"] if session else secrets.randbits(62)),
            "num_received": len(data),
            "num_invalid_entries": invalid,
            "invalid_entry_samples": samples,
        }
        if edge == "usersreplace":
            assert session is not None
            return _replace(audience, schema, valid, session, answer)
        rows = audience.members.setdefault(schema, set())
        if method == "POST":
            rows.update(valid)
        else:
            rows.difference_update(valid)
        return answer

    def _control(self, path: str) -> Answer:
        if path == "/_fake/audiences":
            with self._lock:
                summary = {
                    a.audience_id: {"name": a.name, "size": a.size, "operation_status": a.operation_status}
                    for a in self.audiences.values()
                }
                return Answer(200, {"audiences": summary, "requests": len(self.requests)})
        return Answer(404, {"error": {"message": f"no control endpoint {path}"}})


def _failed(failure: GraphFailure, headers: Mapping[str, str]) -> Answer:
    body: dict[str, Any] | str = failure.plain_body if failure.plain_body is not None else failure.body()
    return Answer(failure.http_status, body, {**headers, **failure.headers})


def _read(audience: FakeAudience, fields: str) -> dict[str, Any]:
    # The fake reports exact sizes as both bounds, and calls an audience under 100 people too small.
    size = audience.size
    ready = {"code": 200, "description": "This audience is ready for use."}
    small = {"code": 300, "description": "This audience is too small to use."}
    restricted = {"code": 471, "description": "This audience is restricted: review its integrity issues."}
    values: dict[str, Any] = {
        "id": audience.audience_id,
        "account_id": audience.account.removeprefix("act_"),
        "name": audience.name,
        "description": audience.description,
        "customer_file_source": audience.customer_file_source,
        "subtype": "CUSTOM",
        "approximate_count_lower_bound": size,
        "approximate_count_upper_bound": size,
        "operation_status": restricted if audience.operation_status == 471 else {"code": 200, "description": "Normal"},
        "delivery_status": ready if size >= 100 else small,
    }
    wanted = [name for name in fields.split(",") if name] or ["id", "name"]
    return {"id": audience.audience_id} | {name: values[name] for name in wanted if name in values}


def _json_object(raw: str, name: str) -> dict[str, Any] | GraphFailure:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else invalid_parameter(f"Param {name} must be a JSON-encoded object")


def _payload(raw: str | None) -> tuple[Schema, list[list[Any]]] | GraphFailure:
    if raw is None:
        return invalid_parameter("The parameter payload is required")
    payload = _json_object(raw, "payload")
    if isinstance(payload, GraphFailure):
        return payload
    schema, data = payload.get("schema"), payload.get("data")
    if isinstance(schema, str):
        if schema not in SINGLE_KEY_SCHEMAS or not isinstance(data, list):
            return invalid_parameter(f"Invalid schema {schema!r}")
        schema, data = [SINGLE_KEY_SCHEMAS[schema]], [[value] for value in data]
    if not isinstance(schema, list) or not schema or len(set(map(str, schema))) != len(schema):
        return invalid_parameter("Param payload[schema] must be a non-empty list of distinct keys")
    unknown = [key for key in schema if key not in HASHED_KEYS | UNHASHED_KEYS]
    if unknown:
        return invalid_parameter(f"Invalid schema key {unknown[0]!r}")
    if not isinstance(data, list) or not data or any(not isinstance(r, list) or len(r) != len(schema) for r in data):
        return invalid_parameter("Data is missing or does not match schema")
    if len(data) > MAX_ROWS:
        return invalid_parameter(f"Too many entries: {len(data)} in one request, the limit is {MAX_ROWS}")
    return tuple(schema), data


def _session(raw: str | None, required: bool) -> dict[str, Any] | None | GraphFailure:
    if raw is None:
        return invalid_parameter("The parameter session is required") if required else None
    session = _json_object(raw, "session")
    if isinstance(session, GraphFailure):
        return session
    session_id, seq, last = session.get("session_id"), session.get("batch_seq"), session.get("last_batch_flag")
    if not isinstance(session_id, int) or isinstance(session_id, bool) or session_id <= 0:
        return invalid_parameter("Param session[session_id] must be a positive integer")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return invalid_parameter("Param session[batch_seq] must be an integer from 1")
    if not isinstance(last, bool):
        return invalid_parameter("Param session[last_batch_flag] must be a boolean")
    return session


def _check_rows(schema: Schema, data: list[list[Any]]) -> tuple[list[Row], int, dict[str, str]]:
    """Rows Meta would keep, the count of the others and a few of them (value -> key at fault)."""
    valid: list[Row] = []
    samples: dict[str, str] = {}
    invalid = 0
    for row in data:
        fault = _fault(schema, row)
        if fault is None:
            valid.append(tuple(row))
            continue
        invalid += 1
        key, value = fault
        if len(samples) < MAX_SAMPLES:
            samples[value[:100] or "(blank row)"] = key
    return valid, invalid, samples


def _fault(schema: Schema, row: list[Any]) -> tuple[str, str] | None:
    if all(value == "" for value in row):
        return ",".join(schema), ""
    for key, value in zip(schema, row, strict=True):
        if not isinstance(value, str):
            return key, json.dumps(value)
        if key in HASHED_KEYS and value and not _HASH.match(value):
            return key, value
    return None


def _replace(
    audience: FakeAudience, schema: Schema, rows: list[Row], session: Mapping[str, Any], answer: dict[str, Any]
) -> dict[str, Any] | GraphFailure:
    session_id, seq, last = session["session_id"], session["batch_seq"], session["last_batch_flag"]
    ended = audience.ended.get(session_id)
    if ended is not None:  # a retry after the session ended: the same answer, nothing changes
        return ended.answers.get(seq) or invalid_parameter(f"Session {session_id} has already ended")
    current = audience.session
    if current is not None and current.session_id != session_id:
        return SESSION_STUCK
    if current is None:
        if seq != 1:
            return invalid_parameter(f"Session {session_id} does not exist: a new session starts at batch_seq 1")
        current = audience.session = ReplaceSession(session_id)
    if seq < current.next_seq:  # a retried batch: already applied
        return current.answers[seq]
    if seq > current.next_seq:
        return invalid_parameter(f"batch_seq {seq} out of order: session {session_id} expects {current.next_seq}")
    current.rows.setdefault(schema, set()).update(rows)
    current.answers[seq] = answer
    current.next_seq += 1
    if last:
        audience.members = current.rows
        audience.ended[session_id] = current
        audience.session = None
    return answer


def running_meta_graph(**options: Any) -> AbstractContextManager[MetaGraphFake]:
    """A started fake (options as MetaGraphFake takes them), stopped on exit."""
    return running(MetaGraphFake(**options))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; prints the base URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-token", default=None, help="accept only this token (default: any)")
    parser.add_argument("--no-bodies", action="store_true", help="record requests without their bodies")
    args = parser.parse_args(argv)
    fake = MetaGraphFake(access_token=args.access_token, record_bodies=not args.no_bodies)
    print(fake.start(args.port), flush=True)
    wait_for_signal()
    fake.stop()


if __name__ == "__main__":
    main()

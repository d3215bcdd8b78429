"""AudienceDestination on Facebook Custom Audiences, through the facebook-business SDK.

The SDK's own session, API object, request and error classes carry every call, with three changes
of where things go on the wire (../shared/notes/activation.md §1 has what the SDK does unaided):

- Rows are sent as given, already normalised and hashed by shared/activation/customer_file.py, as
  `payload={"schema": [...], "data": [[...]]}` on the users edges; the SDK's add_users/remove_users
  are not used (they hash again, strip Hangul from names and put a removal's payload in the URL).
- A DELETE carries its parameters in the request body, never the query string: long URLs fail, and
  URLs are what proxies and request logs keep.
- The access token travels in the Authorization header instead of the `access_token` parameter the
  SDK adds to every URL, so no URL, log line or exception text ever holds it; appsecret_proof goes
  in the body (in the query only for GET, which has no body).

Each answer's rate-limit headers are read into `usage()` (a service slows down before Meta
throttles it), and an `X-Ad-Api-Version-Warning` header is logged as a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests
from facebook_business.adobjects.adaccount import AdAccount  # type: ignore[import-untyped]
from facebook_business.adobjects.customaudience import CustomAudience  # type: ignore[import-untyped]
from facebook_business.api import FacebookAdsApi, FacebookResponse  # type: ignore[import-untyped]
from facebook_business.exceptions import FacebookRequestError  # type: ignore[import-untyped]
from facebook_business.session import FacebookSession  # type: ignore[import-untyped]

from shared.ports.audiences import (
    CUSTOMER_FILE_SOURCES,
    MAX_BATCH_BYTES,
    MAX_BATCH_ROWS,
    AudienceGone,
    AudienceInfo,
    BatchResult,
    DestinationError,
    DestinationUnavailable,
    PolicyBlocked,
    Row,
    SessionStuck,
    Status,
    Throttled,
    TokenExpired,
    UploadSession,
    Usage,
    payload_bytes,
    payload_json,
)

DEFAULT_API_VERSION = "v26.0"
GRAPH_URL = "https://graph.facebook.com"
DEFAULT_BACKOFF_SECONDS = 60.0
"""Wait after a throttle that names no time (no usage header, no Retry-After)."""

# Graph error handling guide and Marketing API rate limiting: 4 app, 17 user, 613 ad account,
# 80003 custom audience, 80004 ads management.
_THROTTLE_CODES = frozenset({4, 17, 613, 80003, 80004})
_TRANSIENT_CODES = frozenset({1, 2})  # "temporary issue due to downtime"
_INFO_FIELDS = (
    "name",
    "approximate_count_lower_bound",
    "approximate_count_upper_bound",
    "operation_status",
    "delivery_status",
)
_API_VERSION = re.compile(r"^v[0-9]+\.[0-9]+$")
_GRAPH_ID = re.compile(r"^[0-9]{1,32}$")
_log = logging.getLogger(__name__)


class FacebookAudiences:
    """Custom Audiences of one ad account, with one access token (resolved by the composition root)."""

    def __init__(
        self,
        ad_account_id: str,
        access_token: str,
        *,
        app_secret: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        graph_url: str = GRAPH_URL,
        timeout: float = 60.0,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        account = ad_account_id.removeprefix("act_")
        if not _GRAPH_ID.match(account):
            raise ValueError(f"ad account id must be digits, optionally after 'act_': got {ad_account_id!r}")
        if not _API_VERSION.match(api_version):
            raise ValueError(f"Graph API version must look like 'v26.0': got {api_version!r}")
        if not access_token:
            raise ValueError("an access token is required")
        self.ad_account_id = f"act_{account}"
        self.api_version = api_version
        self.max_batch_bytes = max_batch_bytes
        self._secrets = [access_token]
        self._usage = Usage()
        self._warned: set[str] = set()
        # FacebookAdsApi.init() would do the same, but also make this API the process-wide default
        # (another destination's token could then be used) and install a crash reporter that posts
        # tracebacks to Meta; so the session and API are built here and handed to every object.
        session = FacebookSession(app_secret=app_secret, access_token=access_token, timeout=timeout)
        session.GRAPH = graph_url.rstrip("/")
        proof = session.appsecret_proof if app_secret else None
        if proof:
            self._secrets.append(proof)
        transport = _GraphTransport(access_token, proof)
        transport.verify = session.requests.verify  # the SDK's pinned CA bundle for graph.facebook.com
        session.requests = transport
        self._api = _ObservedApi(session, api_version, self._observe)

    def __repr__(self) -> str:
        return f"FacebookAudiences({self.ad_account_id!r}, api_version={self.api_version!r})"

    # --- the port --------------------------------------------------------------------------------

    def create_audience(self, name: str, description: str, customer_file_source: str) -> str:
        if customer_file_source not in CUSTOMER_FILE_SOURCES:
            raise ValueError(
                f"customer_file_source {customer_file_source!r} is not one of {sorted(CUSTOMER_FILE_SOURCES)}"
            )
        if not name.strip():
            raise ValueError("an audience needs a name")
        params = {
            "name": name,
            "description": description,
            "subtype": "CUSTOM",
            "customer_file_source": customer_file_source,
        }
        created = self._sdk(lambda: AdAccount(self.ad_account_id, api=self._api).create_custom_audience(params=params))
        return str(created["id"])

    def add(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        return self._users("POST", "users", audience_id, schema, rows, session)

    def remove(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        return self._users("DELETE", "users", audience_id, schema, rows, session)

    def replace(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession
    ) -> BatchResult:
        return self._users("POST", "usersreplace", audience_id, schema, rows, session)

    def audience_info(self, audience_id: str) -> AudienceInfo:
        _check_id(audience_id)
        audience = self._sdk(lambda: CustomAudience(audience_id, api=self._api).api_get(fields=list(_INFO_FIELDS)))
        data = audience.export_all_data()
        return AudienceInfo(
            audience_id=audience_id,
            name=str(data.get("name", "")),
            approximate_count_lower_bound=_int_or_none(data.get("approximate_count_lower_bound")),
            approximate_count_upper_bound=_int_or_none(data.get("approximate_count_upper_bound")),
            operation_status=_status(data.get("operation_status")),
            delivery_status=_status(data.get("delivery_status")),
        )

    def usage(self) -> Usage:
        return self._usage

    # --- calls -----------------------------------------------------------------------------------

    def _users(
        self,
        method: str,
        edge: str,
        audience_id: str,
        schema: Sequence[str],
        rows: Sequence[Row],
        session: UploadSession | None,
    ) -> BatchResult:
        _check_id(audience_id)
        self._check_batch(schema, rows)
        params: dict[str, Any] = {"payload": payload_json(schema, rows)}
        if session is not None:
            params["session"] = _session_param(session)
        response = self._sdk(lambda: self._api.call(method, (audience_id, edge), params=params))
        return _batch_result(audience_id, response.json())

    def _check_batch(self, schema: Sequence[str], rows: Sequence[Row]) -> None:
        """Refuse, before any request, a batch Meta would refuse or only partly take."""
        if not schema or any(not isinstance(key, str) or not key for key in schema):
            raise ValueError(f"schema must be a non-empty list of key names, got {list(schema)!r}")
        if len(set(schema)) != len(schema):
            raise ValueError(f"schema names a key twice: {list(schema)!r}")
        if not rows:
            raise ValueError("a batch needs at least one row")
        if len(rows) > MAX_BATCH_ROWS:
            raise ValueError(f"batch of {len(rows):,} rows is over Meta's {MAX_BATCH_ROWS:,} per request")
        for index, row in enumerate(rows):
            if len(row) != len(schema):
                raise ValueError(f"row {index} has {len(row)} values for a schema of {len(schema)} keys")
        size = payload_bytes(schema, rows)
        if size > self.max_batch_bytes:
            raise ValueError(f"batch payload of {size:,} bytes is over the {self.max_batch_bytes:,}-byte cap")

    def _sdk(self, call: Callable[[], Any]) -> Any:
        """Run one SDK call; turn its failures into the port's errors, with no credential in them."""
        try:
            return call()
        except FacebookRequestError as exc:
            raise self._mapped(exc) from None
        except requests.RequestException as exc:
            raise DestinationUnavailable(self._scrub(f"Graph API unreachable: {type(exc).__name__}: {exc}")) from None

    def _mapped(self, exc: Any) -> DestinationError:
        error = exc.body().get("error") if isinstance(exc.body(), dict) else None
        error = error if isinstance(error, dict) else {}
        code, subcode, status = exc.api_error_code(), exc.api_error_subcode(), exc.http_status()
        text = str(error.get("message") or exc.get_message())
        if error.get("error_user_msg"):
            text = f"{text} ({error.get('error_user_title') or 'details'}: {error['error_user_msg']})"
        message = self._scrub(f"Facebook error {code}/{subcode} (HTTP {status}): {text}")
        details: dict[str, Any] = {
            "code": code,
            "subcode": subcode,
            "http_status": status,
            "trace_id": error.get("fbtrace_id"),
        }
        if status == 429 or code in _THROTTLE_CODES:
            return Throttled(message, retry_after=self._retry_after(exc.http_headers() or {}), **details)
        if code == 190:
            return TokenExpired(message, **details)
        if code == 100 and subcode == 1713230:
            return PolicyBlocked(message, **details)
        if code == 100 and subcode == 33:
            return AudienceGone(message, **details)
        if code == 2650 and subcode == 1870147:
            return SessionStuck(message, **details)
        if code in _TRANSIENT_CODES or exc.api_transient_error() or (status or 0) >= 500:
            return DestinationUnavailable(message, **details)
        return DestinationError(message, **details)

    def _retry_after(self, headers: Mapping[str, str]) -> float:
        waits = [self._usage.regain_access_seconds]
        with contextlib.suppress(ValueError):  # Retry-After may also be an HTTP date: ignored
            waits.append(float(headers.get("Retry-After") or 0))
        return max(waits) if max(waits) > 0 else DEFAULT_BACKOFF_SECONDS

    def _observe(self, headers: Mapping[str, str]) -> None:
        usage = usage_from_headers(headers)
        if usage is not None:
            self._usage = usage
        warning = headers.get("X-Ad-Api-Version-Warning")
        if warning and warning not in self._warned:
            self._warned.add(warning)
            _log.warning(
                "Graph API version warning: %s",
                self._scrub(warning),
                extra={"api_version": self.api_version, "ad_account": self.ad_account_id},
            )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def usage_from_headers(headers: Mapping[str, str]) -> Usage | None:
    """The highest usage percentage and the longest block Meta announces; None without usage headers.

    X-Business-Use-Case-Usage: {"<id>": [{"type", "call_count", "total_cputime", "total_time",
    "estimated_time_to_regain_access" (minutes)}]}; X-Ad-Account-Usage: {"acc_id_util_pct",
    "reset_time_duration" (seconds)}; X-App-Usage: {"call_count", "total_cputime", "total_time"}.
    """
    percents: list[float] = []
    waits: list[float] = [0.0]
    business = _header_json(headers, "X-Business-Use-Case-Usage")
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    percents += _numbers(entry, ("call_count", "total_cputime", "total_time"))
                    waits += [60 * minutes for minutes in _numbers(entry, ("estimated_time_to_regain_access",))]
    account = _header_json(headers, "X-Ad-Account-Usage")
    if isinstance(account, dict):
        account_percent = _numbers(account, ("acc_id_util_pct",))
        percents += account_percent
        if account_percent and account_percent[0] >= 100:
            waits += _numbers(account, ("reset_time_duration",))
    app = _header_json(headers, "X-App-Usage")
    if isinstance(app, dict):
        percents += _numbers(app, ("call_count", "total_cputime", "total_time"))
    if not percents and max(waits) == 0:
        return None
    return Usage(highest_percent=max(percents, default=0.0), regain_access_seconds=max(waits))


def _header_json(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        _log.warning("unreadable %s header ignored", name)
        return None


def _numbers(entry: Mapping[str, Any], keys: Sequence[str]) -> list[float]:
    return [float(entry[key]) for key in keys if isinstance(entry.get(key), int | float)]


def _check_id(audience_id: str) -> None:
    if not _GRAPH_ID.match(audience_id):
        raise ValueError(f"audience id must be a Graph id (digits), got {audience_id!r}")


def _session_param(session: UploadSession) -> dict[str, Any]:
    param: dict[str, Any] = {
        "session_id": session.session_id,
        "batch_seq": session.batch_seq,
        "last_batch_flag": session.last_batch_flag,
    }
    if session.estimated_num_total is not None:
        param["estimated_num_total"] = session.estimated_num_total
    return param


def _batch_result(audience_id: str, body: Any) -> BatchResult:
    if not isinstance(body, dict):
        raise DestinationError(f"unexpected answer to a users call: {str(body)[:200]!r}")
    samples = body.get("invalid_entry_samples") or {}
    if isinstance(samples, list):
        samples = {str(sample): "" for sample in samples}
    session_id = body.get("session_id")
    return BatchResult(
        audience_id=str(body.get("audience_id") or audience_id),
        num_received=int(body.get("num_received") or 0),
        num_invalid_entries=int(body.get("num_invalid_entries") or 0),
        invalid_entry_samples={str(key): str(value) for key, value in dict(samples).items()},
        session_id=int(session_id) if session_id not in (None, "") else None,
    )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).lstrip("-").isdigit() else None


def _status(value: Any) -> Status | None:
    if hasattr(value, "export_all_data"):
        value = value.export_all_data()
    if not isinstance(value, dict) or "code" not in value:
        return None
    return Status(code=int(value["code"]), description=str(value.get("description", "")))


class _GraphTransport(requests.Session):
    """The SDK's requests session, moving credentials and DELETE parameters off the URL.

    The SDK calls `request(method, url, params=..., data=...)` with its parameters in `params` for
    GET and DELETE; here a DELETE's go to the form body, the token to the Authorization header and
    appsecret_proof beside the other parameters.
    """

    def __init__(self, access_token: str, appsecret_proof: str | None) -> None:
        super().__init__()
        self.headers["Authorization"] = f"Bearer {access_token}"
        self._proof = appsecret_proof

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        extra = {"appsecret_proof": self._proof} if self._proof else {}
        if request.method and request.method.upper() == "GET":
            request.params = {**dict(request.params or {}), **extra}
        else:
            fields = {**dict(request.params or {}), **dict(request.data or {}), **extra}
            request.params, request.data = {}, fields
        return super().prepare_request(request)


class _ObservedApi(FacebookAdsApi):  # type: ignore[misc]
    """FacebookAdsApi that shows its adapter the headers of every answer, failed ones included."""

    def __init__(self, session: Any, api_version: str, observe: Any) -> None:
        super().__init__(session, api_version=api_version)
        self._observe = observe

    def call(self, method: str, path: Any, params: Any = None, **kwargs: Any) -> FacebookResponse:
        try:
            response = super().call(method, path, params=params, **kwargs)
        except FacebookRequestError as exc:
            self._observe(exc.http_headers() or {})
            raise
        self._observe(response.headers())
        if response.status() >= 400:
            # FacebookResponse.is_success() takes any non-JSON body for a success ("Too Many Requests"
            # from a front end, an HTML 502 page): the status decides here.
            where = path if isinstance(path, str) else "/".join(map(str, path))
            raise FacebookRequestError(
                "Call was not successful",
                {"method": method, "path": where},
                response.status(),
                response.headers(),
                response.body(),
            )
        return response

"""email_feedback: complaint reports from mailbox providers' feedback loops (HTTP, public).

POST /   one report as the raw message: the body itself (message/rfc822, application/octet-stream,
         text/plain), or a form field holding it (multipart/form-data or urlencoded): `email`
         (SendGrid Inbound Parse with "POST the raw, full MIME message"), `body-mime` (a Mailgun
         route forwarding to a URL ending in "mime"); or JSON with `RawEmail` (Postmark inbound with
         raw content included)

Providers mail ARF reports to an address of ours; whatever receives that mail (the relay's inbound
webhook, or a mailbox rule that POSTs) forwards each one here with HTTP Basic credentials (any user
name) or `Authorization: Bearer <token>`. The password or token is compared in constant time with
Secret Manager `email-feedback-token` (cached 5 minutes; CDP_EMAIL_FEEDBACK_TOKEN overrides it
locally): missing or different is 403 and nothing is read; no token configured is 503, so the
sender retries. A report we cannot read is 400 with the field at fault (shared/messaging/feedback.py);
a complaint is recorded by shared/services/complaints.py (an outage raises: 500, and the sender
retries); a complaint about no delivery of ours and a report that is no complaint are 200 too.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Final

import flask
import functions_framework
from werkzeug.exceptions import RequestEntityTooLarge

from shared import bootstrap
from shared.config import ConfigError
from shared.messaging.feedback import parse_feedback
from shared.ports.secrets import SecretMissing
from shared.services.complaints import record_complaint
from shared.services.delivery_events import ReportError

log = logging.getLogger(__name__)

MAX_BODY: Final = 10 * 1024 * 1024  # a report carries one message; relays post up to 20-30 MB
RAW_TYPES: Final = frozenset({"message/rfc822", "application/octet-stream", "text/plain"})
FORM_TYPES: Final = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
FORM_FIELDS: Final = ("email", "body-mime")  # SendGrid Inbound Parse (raw), Mailgun (URL ending in "mime")
JSON_FIELD: Final = "RawEmail"  # Postmark inbound


def _now() -> datetime:
    """When a report was received; tests set it."""
    return datetime.now(UTC)


def _text(body: str, status: int) -> flask.Response:
    return flask.Response(body + "\n", status=status, content_type="text/plain; charset=utf-8")


@functions_framework.http
def email_feedback(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return _text("method not allowed: POST one feedback report", 405)
    try:
        expected = bootstrap.settings().channels.email_feedback_token or bootstrap.email_feedback_token()()
    except (ConfigError, SecretMissing) as exc:  # the forwarder retries a 5xx: reports wait for the fix
        log.error("email feedback not configured", extra={"error": str(exc)})
        return _text("the feedback endpoint is not configured", 503)
    given = _credential(request)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("email feedback refused", extra={"reason": "missing token" if not given else "bad token"})
        return _text("forbidden: Basic credentials or a Bearer token are required and must match", 403)
    if (request.content_length or 0) > MAX_BODY:
        return _text(f"payload too large: more than {MAX_BODY} bytes", 413)
    try:
        feedback = parse_feedback(_raw(request))
    except RequestEntityTooLarge:
        return _text(f"payload too large: more than {MAX_BODY} bytes", 413)
    except ReportError as exc:
        log.warning("email feedback unreadable", extra={"field": exc.field, "error": str(exc)[:200]})
        return _text(f"bad request: {exc}", 400)
    if not feedback.complaint:
        log.info("email feedback acknowledged", extra={"feedback_type": feedback.feedback_type})
        return _text(f"ok: {feedback.feedback_type} is not a complaint, nothing recorded", 200)
    outcome = record_complaint(bootstrap.warehouse(), feedback, _now())
    log.info(
        "email feedback recorded",
        extra={"feedback_type": feedback.feedback_type, "recorded": outcome.recorded, "unmatched": outcome.unmatched,
               "duplicate": outcome.duplicate, "rate": outcome.rate},
    )  # fmt: skip
    said = "about no message of ours" if outcome.unmatched else "seen before" if outcome.duplicate else "recorded"
    return _text(f"ok: complaint {said}", 200)


def _credential(request: flask.Request) -> str:
    """The Basic password or the Bearer token; empty when neither was sent."""
    auth = request.authorization
    if auth is None:
        return ""
    return (auth.password if auth.type == "basic" else auth.token if auth.type == "bearer" else None) or ""


def _raw(request: flask.Request) -> bytes:
    """The report's bytes from whichever form the forwarder posts; ReportError when there are none."""
    request.max_content_length = MAX_BODY
    request.max_form_memory_size = MAX_BODY  # a form field holds the whole message (werkzeug: 500 KB)
    kind = request.mimetype
    if kind in RAW_TYPES:
        return request.get_data()
    if kind in FORM_TYPES:
        for name in FORM_FIELDS:
            if name in request.files:
                return bytes(request.files[name].read())
            if name in request.form:
                return request.form[name].encode("utf-8")
        raise ReportError("form", f"no {' or '.join(FORM_FIELDS)} field holding the raw message")
    if kind == "application/json":
        body = request.get_json(silent=True)
        raw = body.get(JSON_FIELD) if isinstance(body, dict) else None
        if not isinstance(raw, str) or not raw:
            raise ReportError(JSON_FIELD, "no raw message (Postmark: include raw email content)")
        return raw.encode("utf-8")
    accepted = ", ".join(sorted(RAW_TYPES | FORM_TYPES | {"application/json"}))
    raise ReportError("Content-Type", f"{kind or 'missing'}: expected one of {accepted}")

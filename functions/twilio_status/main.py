"""twilio_status: Twilio's StatusCallback webhook, and its incoming-message webhook (HTTP, public).

POST /?d=DELIVERY   form parameters as Twilio sends them (MessageSid, MessageStatus, ErrorCode, To...;
                    an incoming message: Body, From, SmsStatus=received, OptOutType)

Twilio signs each request: X-Twilio-Signature is an HMAC of the URL it called and the sorted form
parameters under the account's auth token. Behind Cloud Run the URL this process sees differs from
the one Twilio called (scheme, host), so the signature is checked against the configured public URL
(CDP_TWILIO_STATUS_URL) plus the query string as received, with the auth token read from Secret
Manager (`twilio-auth-token`, cached for 5 minutes; CDP_TWILIO_AUTH_TOKEN overrides it locally).
A missing or wrong signature is 403 and
nothing is read from the request; a signed report we cannot read is 400 with the parameter at fault.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import flask
import functions_framework
from twilio.request_validator import (  # type: ignore[import-untyped]
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from shared import bootstrap
from shared.config import ConfigError
from shared.ports.secrets import SecretMissing
from shared.services.delivery_events import DELIVERY_PARAM, Report, ReportError, twilio_report
from shared.services.provider_reports import record_provider_report

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'  # no reply to an incoming SMS


def _now() -> datetime:
    """When a report was received (Twilio's callbacks carry no time); tests set it."""
    return datetime.now(UTC)


def _text(body: str, status: int) -> flask.Response:
    return flask.Response(body + "\n", status=status, content_type="text/plain; charset=utf-8")


@functions_framework.http
def twilio_status(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return _text("method not allowed: Twilio POSTs its webhooks", 405)
    try:
        channels = bootstrap.settings().channels
        public_url = channels.require_status_url()
        auth_token = channels.twilio_auth_token or bootstrap.twilio_webhook_token()()
    except (ConfigError, SecretMissing) as exc:  # Twilio retries a 5xx: the reports wait for the fix
        log.error("twilio webhook not configured", extra={"error": str(exc)})
        return _text("the webhook is not configured", 503)
    query = request.query_string.decode("utf-8", "replace")
    called = f"{public_url}?{query}" if query else public_url
    signature = request.headers.get(SIGNATURE_HEADER, "")
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if not signature or not RequestValidator(auth_token).validate(called, request.form, signature, algorithm):
        log.warning(
            "twilio webhook refused", extra={"reason": "missing signature" if not signature else "bad signature"}
        )
        return _text("forbidden: X-Twilio-Signature does not match this URL and these parameters", 403)
    try:
        report = twilio_report(request.form.to_dict(), request.args.get(DELIVERY_PARAM), _now())
    except ReportError as exc:
        log.warning("twilio report unreadable", extra={"field": exc.field, "error": str(exc)})
        return _text(f"bad request: {exc}", 400)
    _record(report)
    return flask.Response(EMPTY_TWIML, status=200, content_type="text/xml; charset=utf-8")


def _record(report: Report) -> None:
    """Events into the delivery ledger, opt-outs into the consent ledger; an outage raises, so the
    answer is 500 and Twilio retries (event and opt-out ids make a repeated report add nothing)."""
    recorded = record_provider_report(bootstrap.warehouse(), report)
    log.info(
        "twilio report recorded",
        extra={"events": recorded.events, "opt_outs": recorded.opt_outs, "unmatched": recorded.unmatched},
    )

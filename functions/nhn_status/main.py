"""nhn_status: NHN Cloud's KakaoTalk Bizmessage webhook, AlimTalk delivery results (HTTP, public).

POST /   JSON {hooksId, webhookConfigId, productName, appKey, event, hooks: [...]}

NHN does not sign the body: X-Toast-Webhook-Signature carries the value configured with the webhook
in NHN's console, the same on every request. It is compared in constant time with the value in
Secret Manager (`alimtalk-webhook-signature`, cached for 5 minutes; CDP_NHN_WEBHOOK_SIGNATURE
overrides it locally); a missing or different one is 403 and nothing is read. A request we cannot
read is 400 with the field at fault. MESSAGE_RESULT_UPDATE hooks become delivery events and the
fallbacks of AlimTalks that did not arrive (shared/services/alimtalk_results.py); other events are
acknowledged. A hooksId seen before is answered 200 without doing anything again.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import UTC, datetime

import flask
import functions_framework

from shared import bootstrap
from shared.config import ConfigError
from shared.messaging.alimtalk import parse_hook
from shared.ports.secrets import SecretMissing
from shared.services.alimtalk_results import ResultPorts, record_webhook
from shared.services.delivery_events import ReportError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Toast-Webhook-Signature"
MAX_BODY = 4 * 1024 * 1024  # a webhook of 1,000 hooks is about 500 KB


def _now() -> datetime:
    """When a webhook was received; tests set it."""
    return datetime.now(UTC)


def _text(body: str, status: int) -> flask.Response:
    return flask.Response(body + "\n", status=status, content_type="text/plain; charset=utf-8")


@functions_framework.http
def nhn_status(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return _text("method not allowed: NHN POSTs its webhooks", 405)
    try:
        channels = bootstrap.settings().channels
        expected = channels.nhn_webhook_signature or bootstrap.alimtalk_webhook_signature()()
    except (ConfigError, SecretMissing) as exc:  # NHN retries a 5xx: the results wait for the fix
        log.error("nhn webhook not configured", extra={"error": str(exc)})
        return _text("the webhook is not configured", 503)
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("nhn webhook refused", extra={"reason": "missing signature" if not given else "bad signature"})
        return _text(f"forbidden: {SIGNATURE_HEADER} does not match", 403)
    if (request.content_length or 0) > MAX_BODY:
        return _text(f"bad request: body: more than {MAX_BODY} bytes", 400)
    try:
        hooks_id, results = parse_hook(json.loads(request.get_data()))
    except ValueError as exc:  # ReportError is one, with the field; bad JSON another
        field = exc.field if isinstance(exc, ReportError) else "body"
        log.warning("nhn webhook unreadable", extra={"field": field, "error": str(exc)[:200]})
        detail = str(exc) if isinstance(exc, ReportError) else f"body: not JSON ({exc})"
        return _text(f"bad request: {detail}", 400)
    ports = ResultPorts(bootstrap.warehouse(), bootstrap.documents(), bootstrap.bus())
    outcome = record_webhook(ports, hooks_id, results, _now())  # an outage raises: 500, and NHN retries
    log.info(
        "nhn webhook recorded",
        extra={"results": len(results), "events": outcome.events, "fallbacks": outcome.fallbacks,
               "unmatched": outcome.unmatched, "duplicate": outcome.duplicate},
    )  # fmt: skip
    return _text("ok", 200)

"""preferences: the preference centre's page and the RFC 8058 one-click unsubscribe (HTTP, public).

GET  /?t=LINK             the page: the link's address, its channels and the person's consents
POST /                    the page's form: records what changed, then shows the page again (303)
POST /unsubscribe?t=LINK  `List-Unsubscribe=One-Click` from a mail client: unsubscribes the address
GET  /unsubscribe?t=LINK  the page (a GET never unsubscribes: mail scanners follow links)
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import flask
import functions_framework

from shared import bootstrap
from shared.consent.ledger import Proof
from shared.consent.vocabulary import ConsentError
from shared.enrich.ip import client_ip, hash_ip
from shared.preferences.links import LinkError, open_link
from shared.preferences.page import Language, language, render
from shared.services.preferences import current_choices, form_values, one_click_unsubscribe, save_choices

log = logging.getLogger(__name__)

WORDING_VERSION = "preferences-v1"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # the link is the credential: never send it on
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
STATUS = {"malformed": 400, "forged": 403, "expired": 410}


def _page(html: str, status: int = 200) -> flask.Response:
    return flask.Response(html, status=status, headers=HEADERS, content_type="text/html; charset=utf-8")


def _text(body: str, status: int) -> flask.Response:
    return flask.Response(body + "\n", status=status, headers=HEADERS, content_type="text/plain; charset=utf-8")


@functions_framework.http
def preferences(request: flask.Request) -> flask.Response:
    now = datetime.now(UTC)
    settings = bootstrap.settings()
    lang: Language = language(request.values.get("lang"), request.headers.get("Accept-Language"))
    one_click = request.path.rstrip("/").endswith("/unsubscribe")
    if request.path not in ("/", "/unsubscribe", "/unsubscribe/"):
        return _text("not found", 404)
    if request.method not in ("GET", "POST"):
        return _text("method not allowed", 405)
    token = request.values.get("t", "")
    try:
        link = open_link(token, settings.preferences.require_key(), now)
    except LinkError as exc:
        log.info("preference link refused", extra={"reason": exc.reason})
        if one_click and request.method == "POST":
            return _text(f"{exc.reason}: {exc}", STATUS[exc.reason])
        return _page(render(lang, error=exc.reason), STATUS[exc.reason])
    warehouse = bootstrap.warehouse()
    request_id = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0] or uuid.uuid4().hex
    if one_click and request.method == "POST":
        if request.form.get("List-Unsubscribe") != "One-Click":
            return _text("expected the form field List-Unsubscribe=One-Click (RFC 8058)", 400)
        one_click_unsubscribe(warehouse, link, now, request_id)
        log.info("one-click unsubscribe", extra={"site_id": link.site_id, "channel": link.channel.value})
        return _text("unsubscribed", 200)
    if request.method == "POST":
        ip = client_ip(request.headers.get("X-Forwarded-For"), request.remote_addr, settings.collect.trusted_proxy_hops)
        proof = Proof(
            wording_version=f"{WORDING_VERSION}-{lang}",
            page_url=request.base_url,  # without the query: the link stays out of the ledger
            ip_hash=hash_ip(ip, settings.collect.ip_salt) if settings.collect.ip_salt else None,
            request_id=request_id,
        )
        try:
            save_choices(
                warehouse, link, form_values(request.form, "channel"), form_values(request.form, "purpose"), now, proof
            )
        except ConsentError as exc:
            log.warning("preference change refused", extra={"field": exc.field, "error": str(exc)})
            return _page(render(lang, token=token, error="invalid"), 400)
        log.info("preferences saved", extra={"site_id": link.site_id, "channel": link.channel.value})
        done = flask.Response(status=303, headers=HEADERS)
        done.headers["Location"] = "?" + urlencode({"t": token, "lang": lang, "saved": "1"})
        return done
    choices = current_choices(warehouse, link, now)
    html = render(
        lang,
        token=token,
        address=link.address,
        channels=choices.channels,
        purposes=choices.purposes,
        saved=request.args.get("saved") == "1",
    )
    return _page(html)

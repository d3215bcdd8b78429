"""The baseline for `scripts/bench ingest`: a bare functions-framework HTTP function.

It reads the body, counts the batch's events and answers like collect (200 `{"accepted": n}`),
without validating, enriching or publishing: what any endpoint on the same server costs at least.
Counting means one `json.loads` of the body (~0.1 ms for the storefront's 6 KB batches), so the
baseline does the one step no beacon endpoint can skip and the ratio measures collect's own work.
"""

from __future__ import annotations

import json

import flask
import functions_framework


@functions_framework.http
def bare(request: flask.Request) -> flask.Response:
    body = request.get_data(cache=False)
    try:
        events = json.loads(body).get("events", []) if body else []
    except (ValueError, AttributeError):
        events = []
    payload = json.dumps({"accepted": len(events) if isinstance(events, list) else 0})
    return flask.Response(payload, status=200, content_type="application/json; charset=utf-8")

"""collect: the public beacon endpoint (HTTP). Thin: decode, call the service, map the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import flask
import functions_framework

from shared import bootstrap, enrich, serving
from shared.services.collect import HttpRequest, handle_request
from shared.tracker import tracker_asset, worker_asset


@cache
def _ready() -> None:
    """Once per process, before the first request is served: build what every request uses (the
    config, the user-agent parser, the Pub/Sub client), then settle the heap (shared.serving)."""
    bootstrap.collector_config()
    enrich.parse_user_agent("Mozilla/5.0")
    bootstrap.bus()
    serving.settle_heap()


@functions_framework.http
def collect(request: flask.Request) -> flask.Response:
    _ready()
    req = HttpRequest(
        method=request.method,
        path=request.path,
        headers=request.headers,  # case-insensitive lookups, no copy
        body=request.get_data(cache=False),
        query=request.args.to_dict(),
        remote_addr=request.remote_addr,
    )
    config, now = bootstrap.collector_config(), datetime.now(UTC)
    res = handle_request(req, config, bootstrap.bus(), now, tracker_asset(), worker_asset())
    return flask.Response(res.body, status=res.status, headers=res.headers)

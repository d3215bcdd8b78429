"""collect: the public beacon endpoint (HTTP). Thin: decode, call the service, map the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import flask
import functions_framework

from shared import bootstrap, enrich, serving
from shared.beacons import Limits
from shared.services.collect import CollectorConfig, HttpRequest, handle_request
from shared.tracker import tracker_asset


@cache
def _config() -> CollectorConfig:
    s = bootstrap.settings()
    limits = Limits(
        max_events=s.max_events_per_batch,
        max_age=timedelta(days=s.max_event_age_days),
        max_future=timedelta(minutes=s.max_event_future_minutes),
    )
    return CollectorConfig(s.sites, s.beacon_topic, s.require_ip_salt(), limits, s.max_body_bytes, s.region_header)


@cache
def _ready() -> None:
    """Once per process, before the first request is served: build what every request uses (the
    user-agent parser, the Pub/Sub client), then settle the heap (shared.serving)."""
    _config()
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
    res = handle_request(req, _config(), bootstrap.bus(), datetime.now(UTC), tracker_asset())
    return flask.Response(res.body, status=res.status, headers=res.headers)

"""discover: K-Means discovery segments over the profiles (CloudEvent, `jobs` topic).

A message {"job": "discover"} (optionally "engine": "sklearn" | "bigquery_ml") runs one discovery
with Firestore `discoveries/config`. Bad config or data that cannot be clustered is acknowledged:
the error is on `runs/{run}` and `discoveries/config.status`, and a retry would fail the same way.
"""

from __future__ import annotations

import logging

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, jobs
from shared.discovery.features import ConfigError, DiscoveryError
from shared.services import discover as discovery

log = logging.getLogger(__name__)


@functions_framework.cloud_event
def discover(cloud_event: CloudEvent) -> None:
    job = jobs.accept(cloud_event, discovery.JOB, discovery.job_engine)
    if job is None:
        return
    try:
        discovery.discover(bootstrap.warehouse(), bootstrap.documents(), job.run_at, job.run_id, engine=job.request)
    except (ConfigError, DiscoveryError) as exc:  # recorded on the documents; retrying cannot help
        log.warning("discover could not run", extra={"message_id": job.message_id, "reason": str(exc)})

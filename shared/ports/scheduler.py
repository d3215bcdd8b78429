"""The JobScheduler port: where scheduled jobs live (Cloud Scheduler, or the local cron runner).

A job publishes a JSON message naming the job to a topic; shared/jobs.py is that message's protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
MAX_DESCRIPTION = 500  # Cloud Scheduler's limit

# Default of JobSpec.attributes: derive them from the message (a distinct object, so {} stays {}).
_DERIVED: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job, the same wherever it runs: Cloud Scheduler or the local runner."""

    name: str  # the job id, e.g. cdp-seg-dormant (Cloud Scheduler: letters, digits, - and _)
    cron: str  # unix-cron, five fields
    time_zone: str  # IANA name the cron is read in
    topic: str  # short Pub/Sub topic name, e.g. jobs
    message: Mapping[str, Any]  # published as JSON
    description: str = ""
    # Pub/Sub attributes; by default {"job": message["job"]}, which the push subscriptions filter on.
    # A job read back from a scheduler carries what it really has, so a drift shows as a difference.
    attributes: Mapping[str, str] = field(default_factory=lambda: _DERIVED)

    def __post_init__(self) -> None:
        if not JOB_ID.match(self.name):
            raise ValueError(f"job name {self.name!r} must be 1-500 letters, digits, '-' or '_'")
        json.dumps(self.message)  # fail here, not at publish time
        if self.attributes is _DERIVED:
            derived = {"job": str(self.message["job"])} if "job" in self.message else {}
            object.__setattr__(self, "attributes", derived)

    @property
    def data(self) -> bytes:
        """The message as Terraform's jsonencode writes it (sorted keys, no spaces), so fixed and
        synced jobs publish byte-identical shapes."""
        return json.dumps(self.message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class JobScheduler(Protocol):
    """Where scheduled jobs live. Names are job ids; implementations are idempotent."""

    def list_jobs(self, prefix: str) -> list[JobSpec]:
        """Every job whose name starts with prefix (and no other)."""
        ...

    def upsert_job(self, spec: JobSpec) -> None:
        """Create the job, or replace its schedule, target and description if it exists.

        Raises JobRejected when the scheduler refuses the job itself, TransientError on outages.
        """
        ...

    def delete_job(self, name: str) -> None:
        """Delete the job if it exists."""
        ...

"""JobScheduler on Cloud Scheduler: jobs with Pub/Sub targets on the `jobs` topic, like infra/scheduler.tf's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.cloud import scheduler_v1

from shared.ports import JobRejected, JobSpec, TransientError

# Base classes throughout: the REST transport raises by HTTP status (409 Conflict, 400 BadRequest, 504
# GatewayTimeout), gRPC by status code (AlreadyExists, InvalidArgument, DeadlineExceeded: subclasses).
# Outages and throttling: the sync is retried by Pub/Sub redelivery and is idempotent.
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.Aborted,
    gexc.RetryError,
)
# Retried in place (every call here is idempotent), but bounded: the client's default keeps trying for
# 600 s, longer than the function may run.
_RETRYABLE = retries.if_exception_type(gexc.ServiceUnavailable, gexc.GatewayTimeout, gexc.InternalServerError)
# Everything upsert sets; patching exactly these leaves state (paused or not) and history alone.
_UPDATE_MASK = ["description", "schedule", "time_zone", "pubsub_target", "retry_config"]


class CloudSchedulerJobs:
    """Jobs under projects/<project>/locations/<location>, each publishing to one topic.

    Every job this adapter writes targets `topic` (the Terraform-declared jobs topic): a spec for
    another topic is a bug, refused before it reaches the API.
    """

    def __init__(self, project: str, location: str, topic: str = "jobs", client: Any = None, timeout: float = 30.0):
        self.project = project
        self.location = location
        self.topic = topic
        self.timeout = timeout
        self._client = client if client is not None else scheduler_v1.CloudSchedulerClient()
        self._retry = retries.Retry(predicate=_RETRYABLE, initial=0.2, maximum=5.0, timeout=timeout)

    @property
    def _call(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self.timeout}

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    def job_path(self, name: str) -> str:
        return f"{self.parent}/jobs/{name}"

    def list_jobs(self, prefix: str) -> list[JobSpec]:
        with _mapped("list jobs"):
            jobs = list(self._client.list_jobs(parent=self.parent, **self._call))
        specs = []
        for job in jobs:
            name = str(job.name).rsplit("/", 1)[-1]
            if name.startswith(prefix):
                specs.append(self._spec(name, job))
        return sorted(specs, key=lambda s: s.name)

    def upsert_job(self, spec: JobSpec) -> None:
        if spec.topic != self.topic:
            raise ValueError(
                f"job {spec.name} targets topic {spec.topic!r}; this scheduler publishes to {self.topic!r}"
            )
        job = self._job(spec)
        with _mapped(f"create job {spec.name}"):
            try:
                self._client.create_job(parent=self.parent, job=job, **self._call)
                return
            except gexc.Conflict as exc:  # AlreadyExists over gRPC, a bare 409 over REST
                if isinstance(exc, gexc.Aborted):
                    raise
            try:
                self._client.update_job(job=job, update_mask={"paths": _UPDATE_MASK}, **self._call)
            except gexc.NotFound:  # deleted between the two calls
                self._client.create_job(parent=self.parent, job=job, **self._call)

    def delete_job(self, name: str) -> None:
        with _mapped(f"delete job {name}"), contextlib.suppress(gexc.NotFound):
            self._client.delete_job(name=self.job_path(name), **self._call)

    def _job(self, spec: JobSpec) -> scheduler_v1.Job:
        return scheduler_v1.Job(
            name=self.job_path(spec.name),
            description=spec.description,
            schedule=spec.cron,
            time_zone=spec.time_zone,
            pubsub_target=scheduler_v1.PubsubTarget(
                topic_name=self.topic_path, data=spec.data, attributes=dict(spec.attributes)
            ),
            # As infra/scheduler.tf: covers failing to publish; the subscription retries the rest.
            retry_config=scheduler_v1.RetryConfig(
                retry_count=3,
                min_backoff_duration=timedelta(seconds=10),
                max_backoff_duration=timedelta(seconds=300),
                max_doublings=3,
            ),
        )

    def _spec(self, name: str, job: Any) -> JobSpec:
        """Read a job back as a spec. Anything that does not parse (a foreign message, another topic)
        is kept visibly different, so the sync rewrites it rather than trusting it."""
        target = job.pubsub_target  # an empty message for an HTTP or App Engine job
        topic_name = str(target.topic_name)
        topic = self.topic if topic_name == self.topic_path else topic_name
        try:
            message = json.loads(bytes(target.data) or b"null")
        except ValueError:
            message = None
        if not isinstance(message, dict):
            message = {"unreadable": bytes(target.data).decode("utf-8", "replace")}
        return JobSpec(
            name, str(job.schedule), str(job.time_zone), topic, message, str(job.description), dict(target.attributes)
        )


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Google API errors as our own: TransientError for outages, JobRejected for a refused job."""
    try:
        yield
    except gexc.BadRequest as exc:  # InvalidArgument, FailedPrecondition: the job itself is the problem
        raise JobRejected(exc.message or str(exc)) from exc
    except _TRANSIENT as exc:
        raise TransientError(f"Cloud Scheduler: {what} failed: {exc}") from exc

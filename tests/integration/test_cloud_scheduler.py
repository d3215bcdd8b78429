"""CloudSchedulerJobs through the real google-cloud-scheduler client (REST transport) against a local
recording fake of the Cloud Scheduler v1 REST API: there is no Cloud Scheduler emulator.

The fake keeps jobs in memory and implements just what the adapter uses: jobs list (paged), get,
create, patch (honouring updateMask) and delete, with the API's error shape, so the client's own
request building, JSON mapping, paging and error classes are what is tested.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import scheduler_v1

from shared.adapters.cloud_scheduler import CloudSchedulerJobs
from shared.config import ScheduleSettings as ScheduleConfig
from shared.jobs import fixed_job_spec
from shared.ports import JobRejected, JobSpec, TransientError
from shared.services.sync_schedules import sync_schedules
from tests.fakes import FakeDocumentStore

PROJECT, LOCATION = "cdp-test", "asia-northeast3"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
COLLECTION = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/jobs$")
ITEM = re.compile(r"^/v1/((projects/[^/]+/locations/[^/]+)/jobs/([^/:]+))$")
JOB_FIELDS = {"name", "description", "schedule", "timeZone", "pubsubTarget", "retryConfig", "httpTarget"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None


@dataclass
class FakeCloudScheduler:
    """State and recordings, shared with the request handler threads."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # full name -> job JSON
    requests: list[Recorded] = field(default_factory=list)
    page_size: int = 2  # small, so the client's pager must follow nextPageToken
    fail: list[int] = field(default_factory=list)  # statuses to answer the next requests with
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, body))
            if self.fail:
                status = self.fail.pop(0)
                return _error(status, "UNAVAILABLE" if status == 503 else "INTERNAL", "The service is unavailable.")
            if match := COLLECTION.match(parts.path):
                if method == "GET":
                    return self._list(match.group(1), query)
                if method == "POST" and body is not None:
                    return self._create(match.group(1), body)
            elif match := ITEM.match(parts.path):
                name = match.group(1)
                if name not in self.jobs:
                    return _error(404, "NOT_FOUND", f"Job not found: {name}")
                if method == "GET":
                    return 200, self.jobs[name]
                if method == "DELETE":
                    del self.jobs[name]
                    return 200, {}
                if method == "PATCH" and body is not None:
                    return self._patch(name, query, body)
            return _error(404, "NOT_FOUND", f"no route {method} {parts.path}")

    def _list(self, parent: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        names = sorted(n for n in self.jobs if n.startswith(parent + "/jobs/"))
        start = int(query.get("pageToken", ["0"])[0])
        page = names[start : start + self.page_size]
        answer: dict[str, Any] = {"jobs": [self.jobs[n] for n in page]}
        if start + self.page_size < len(names):
            answer["nextPageToken"] = str(start + self.page_size)
        return 200, answer

    def _create(self, parent: str, job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = job.get("name", "")
        if not re.fullmatch(re.escape(parent) + r"/jobs/[A-Za-z0-9_-]{1,500}", name):
            return _error(400, "INVALID_ARGUMENT", f"Job name {name!r} is not valid under {parent}.")
        problem = _invalid(job)
        if problem:
            return _error(400, "INVALID_ARGUMENT", problem)
        if name in self.jobs:
            return _error(409, "ALREADY_EXISTS", f"Job {name} already exists.")
        self.jobs[name] = {**{k: v for k, v in job.items() if k in JOB_FIELDS}, "state": 1, "userUpdateTime": _now()}
        return 200, self.jobs[name]

    def _patch(self, name: str, query: dict[str, list[str]], job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mask = [p for p in ",".join(query.get("updateMask", [])).split(",") if p]
        if not mask or any(p not in JOB_FIELDS - {"name"} for p in mask):
            return _error(400, "INVALID_ARGUMENT", f"bad updateMask {mask}")
        updated = dict(self.jobs[name])
        for path in mask:
            if path in job:
                updated[path] = job[path]
            else:
                updated.pop(path, None)
        problem = _invalid(updated)
        if problem:
            return _error(400, "INVALID_ARGUMENT", problem)
        self.jobs[name] = {**updated, "userUpdateTime": _now()}
        return 200, self.jobs[name]

    def of(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]


def _invalid(job: dict[str, Any]) -> str | None:
    """What the real API checks that matters here: a 5-field schedule and a topic path."""
    if len(str(job.get("schedule", "")).split()) != 5:
        return "Schedule or time zone is invalid."
    topic = job.get("pubsubTarget", {}).get("topicName", "")
    if "httpTarget" not in job and not re.fullmatch(r"projects/[^/]+/topics/[^/]+", topic):
        return "Pub/Sub topic name must be projects/*/topics/*."
    return None


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": code}}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, answer = self.server.fake.handle(self.command, self.path, json.loads(raw) if raw else None)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeCloudScheduler


@pytest.fixture
def fake() -> Iterator[tuple[FakeCloudScheduler, str]]:
    server = _Server(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free port
    server.fake = FakeCloudScheduler()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def adapter(endpoint: str, timeout: float = 10.0) -> CloudSchedulerJobs:
    client = scheduler_v1.CloudSchedulerClient(
        transport="rest",
        client_options={"api_endpoint": endpoint},
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )
    return CloudSchedulerJobs(PROJECT, LOCATION, "jobs", client=client, timeout=timeout)


def spec(name: str = "cdp-seg-vip", cron: str = "0 6 * * *", tz: str = "Asia/Seoul") -> JobSpec:
    return JobSpec(name, cron, tz, "jobs", {"job": "build_segments", "segment_id": "vip"}, "Builds segment vip.")


def test_upsert_creates_a_pubsub_job_the_way_terraform_declares_the_fixed_ones(
    fake: tuple[FakeCloudScheduler, str],
) -> None:
    server, endpoint = fake
    adapter(endpoint).upsert_job(spec())

    (create,) = server.of("POST")
    assert create.path == f"/v1/{PARENT}/jobs"
    assert create.body is not None
    body = create.body
    assert body["name"] == f"{PARENT}/jobs/cdp-seg-vip"
    assert (body["schedule"], body["timeZone"], body["description"]) == (
        "0 6 * * *",
        "Asia/Seoul",
        "Builds segment vip.",
    )
    target = body["pubsubTarget"]
    assert target["topicName"] == f"projects/{PROJECT}/topics/jobs"
    assert base64.b64decode(target["data"]) == b'{"job":"build_segments","segment_id":"vip"}'
    assert target["attributes"] == {"job": "build_segments"}
    assert body["retryConfig"] == {
        "retryCount": 3,
        "minBackoffDuration": "10s",
        "maxBackoffDuration": "300s",
        "maxDoublings": 3,
    }
    assert list(server.jobs) == [f"{PARENT}/jobs/cdp-seg-vip"]


def test_upsert_of_an_existing_job_patches_only_what_it_owns(fake: tuple[FakeCloudScheduler, str]) -> None:
    server, endpoint = fake
    jobs = adapter(endpoint)
    jobs.upsert_job(spec())
    server.jobs[f"{PARENT}/jobs/cdp-seg-vip"]["state"] = 2  # paused by an operator

    jobs.upsert_job(spec(cron="30 7 * * 1-5", tz="UTC"))

    assert [r.method for r in server.requests] == ["POST", "POST", "PATCH"]  # create, 409, patch
    patch = server.of("PATCH")[0]
    assert patch.path == f"/v1/{PARENT}/jobs/cdp-seg-vip"
    assert patch.query["updateMask"] == ["description,schedule,timeZone,pubsubTarget,retryConfig"]
    job = server.jobs[f"{PARENT}/jobs/cdp-seg-vip"]
    assert (job["schedule"], job["timeZone"], job["state"]) == ("30 7 * * 1-5", "UTC", 2)  # pause kept


def test_list_reads_jobs_back_as_equal_specs_across_pages_and_only_with_the_prefix(
    fake: tuple[FakeCloudScheduler, str],
) -> None:
    server, endpoint = fake
    jobs = adapter(endpoint)
    mine = [spec(f"cdp-seg-s{i}") for i in range(4)]
    for s in [*mine, fixed_job_spec("refine", "15 * * * *")]:
        jobs.upsert_job(s)
    server.jobs[f"{PARENT}/jobs/cdp-seg-http"] = {
        "name": f"{PARENT}/jobs/cdp-seg-http",
        "schedule": "0 1 * * *",
        "timeZone": "UTC",
        "httpTarget": {"uri": "https://example.com"},
    }
    server.requests.clear()

    listed = jobs.list_jobs("cdp-seg-s")

    assert listed == mine  # what was written reads back equal: a second sync sees nothing to do
    assert len(server.of("GET")) == 3  # six jobs, two per page
    assert [r.query.get("pageToken") for r in server.of("GET")] == [None, ["2"], ["4"]]
    assert [s.name for s in jobs.list_jobs("cdp-")] == ["cdp-refine", "cdp-seg-http", *[s.name for s in mine]]
    foreign = next(s for s in jobs.list_jobs("cdp-seg-http"))
    assert foreign.message == {"unreadable": ""} and foreign != spec("cdp-seg-http", "0 1 * * *", "UTC")


def test_a_job_with_drifted_attributes_or_topic_reads_back_different(fake: tuple[FakeCloudScheduler, str]) -> None:
    server, endpoint = fake
    jobs = adapter(endpoint)
    jobs.upsert_job(spec())
    stored = server.jobs[f"{PARENT}/jobs/cdp-seg-vip"]
    stored["pubsubTarget"]["attributes"] = {}
    assert jobs.list_jobs("cdp-seg-") != [spec()]
    stored["pubsubTarget"] = {**stored["pubsubTarget"], "attributes": {"job": "build_segments"}}
    stored["pubsubTarget"]["topicName"] = "projects/elsewhere/topics/jobs"
    (read,) = jobs.list_jobs("cdp-seg-")
    assert read.topic == "projects/elsewhere/topics/jobs" and read != spec()


def test_delete_is_idempotent(fake: tuple[FakeCloudScheduler, str]) -> None:
    server, endpoint = fake
    jobs = adapter(endpoint)
    jobs.upsert_job(spec())
    jobs.delete_job("cdp-seg-vip")
    jobs.delete_job("cdp-seg-vip")  # 404 is fine
    assert server.jobs == {}
    assert [(r.method, r.path) for r in server.of("DELETE")] == [("DELETE", f"/v1/{PARENT}/jobs/cdp-seg-vip")] * 2


def test_a_refused_job_is_job_rejected_and_an_outage_is_transient(fake: tuple[FakeCloudScheduler, str]) -> None:
    server, endpoint = fake
    jobs = adapter(endpoint, timeout=1.0)
    with pytest.raises(JobRejected, match="Schedule or time zone is invalid"):
        jobs.upsert_job(spec(cron="0 6 * * * 2025"))

    server.fail = [503]  # one blip: retried in place
    assert jobs.list_jobs("cdp-seg-") == []
    assert len(server.of("GET")) == 2

    server.fail = [503] * 100  # a real outage: bounded by the adapter's timeout, then TransientError
    with pytest.raises(TransientError, match="Cloud Scheduler: create job cdp-seg-vip failed"):
        jobs.upsert_job(spec())
    with pytest.raises(ValueError, match="targets topic 'beacons'"):
        jobs.upsert_job(JobSpec("cdp-seg-x", "0 6 * * *", "UTC", "beacons", {"job": "x"}))


def test_sync_schedules_end_to_end_through_the_real_client(fake: tuple[FakeCloudScheduler, str]) -> None:
    server, endpoint = fake
    jobs = adapter(endpoint)
    jobs.upsert_job(fixed_job_spec("refine", "15 * * * *"))  # Terraform's, never touched
    segments = {
        "vip": {"name": "VIP", "enabled": True, "schedule": {"cron": "0 6 * * *"}},
        "dormant": {"name": "Dormant", "enabled": True, "schedule": {"cron": "0 7 * * 1", "timezone": "UTC"}},
        "off": {"name": "Off", "enabled": False, "schedule": {"cron": "0 8 * * *"}},
    }
    docs = FakeDocumentStore(docs={"segments": segments, "runs": {}})
    now = datetime(2025, 3, 1, tzinfo=UTC)

    first = sync_schedules(docs, jobs, ScheduleConfig(), now, run_id="r1")
    server.requests.clear()
    second = sync_schedules(docs, jobs, ScheduleConfig(), now, run_id="r2")
    assert {r.method for r in server.requests} == {"GET"}  # nothing to change: listing only, no writes

    docs.set("segments", "vip", {"schedule": {"cron": "0 9 * * *"}}, merge=True)
    docs.delete("segments", "dormant")
    third = sync_schedules(docs, jobs, ScheduleConfig(), now, run_id="r3")

    assert first.created == ["cdp-seg-dormant", "cdp-seg-vip"]
    assert second.unchanged == ["cdp-seg-dormant", "cdp-seg-vip"]
    assert (third.updated, third.deleted) == (["cdp-seg-vip"], ["cdp-seg-dormant"])
    assert sorted(n.rsplit("/", 1)[-1] for n in server.jobs) == ["cdp-refine", "cdp-seg-vip"]
    assert server.jobs[f"{PARENT}/jobs/cdp-seg-vip"]["schedule"] == "0 9 * * *"
    assert all("cdp-refine" not in r.path for r in server.requests if r.method != "GET")
    assert [docs.docs["runs"][r]["status"] for r in ("r1", "r2", "r3")] == ["ok", "ok", "ok"]

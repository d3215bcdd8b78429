"""sync_schedules with fakes: Firestore segments in, scheduler jobs made to match, outcomes written back."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from shared.activation.customer_file import KEYS
from shared.config import ScheduleSettings as ScheduleConfig
from shared.cron import cron_error
from shared.jobs import fixed_job_spec, job_of
from shared.ports import JobRejected, JobSpec, TransientError
from shared.services.sync_schedules import segment_job_name, sync_schedules
from tests.fakes import FakeDocumentStore

NOW = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
CONFIG = ScheduleConfig()


@dataclass
class FakeJobs:
    """A JobScheduler in memory that records every call; `refuse` names jobs it rejects like a 400."""

    jobs: dict[str, JobSpec] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    down: bool = False

    def list_jobs(self, prefix: str) -> list[JobSpec]:
        if self.down:
            raise TransientError("scheduler is down")
        self.calls.append(("list", prefix))
        return [job for name, job in sorted(self.jobs.items()) if name.startswith(prefix)]

    def upsert_job(self, spec: JobSpec) -> None:
        self.calls.append(("upsert", spec.name))
        if spec.name in self.refuse:
            raise JobRejected("Schedule or time zone is invalid.")
        self.jobs[spec.name] = spec

    def delete_job(self, name: str) -> None:
        self.calls.append(("delete", name))
        self.jobs.pop(name, None)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "list"]


@dataclass
class CountingStore(FakeDocumentStore):
    sets: list[tuple[str, str]] = field(default_factory=list)

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        self.sets.append((collection, doc_id))
        self.docs.setdefault(collection, {})  # FakeDocumentStore.set(merge=False) needs the collection to exist
        super().set(collection, doc_id, data, merge)


def segment(cron: Any = "0 6 * * *", enabled: Any = True, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "Dormant members", "template": "all_users", "enabled": enabled, **extra}
    if cron is not None:
        doc["schedule"] = cron if not isinstance(cron, str) else {"cron": cron}
    return doc


def store(**segments: dict[str, Any]) -> CountingStore:
    docs = CountingStore()
    for segment_id, doc in segments.items():
        docs.set("segments", segment_id, doc)
    docs.sets.clear()
    return docs


def schedule_status(docs: FakeDocumentStore, segment_id: str) -> dict[str, Any] | None:
    status = docs.docs["segments"][segment_id].get("status") or {}
    return status.get("schedule")


def test_an_enabled_schedule_becomes_a_job_that_publishes_build_segments_for_that_segment() -> None:
    docs, jobs = store(dormant=segment("0 6 * * 1-5")), FakeJobs()

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.created == ["cdp-seg-dormant"] and report.status == "ok"
    job = jobs.jobs["cdp-seg-dormant"]
    assert (job.cron, job.time_zone, job.topic) == ("0 6 * * 1-5", "Asia/Seoul", "jobs")
    assert json.loads(job.data) == {"job": "build_segments", "segment_id": "dormant"}
    assert job.data == b'{"job":"build_segments","segment_id":"dormant"}'  # jsonencode's shape
    assert job.attributes == {"job": "build_segments"}
    assert "dormant (Dormant members)" in job.description and "segments/dormant" in job.description
    assert schedule_status(docs, "dormant") == {
        "state": "scheduled",
        "job": "cdp-seg-dormant",
        "cron": "0 6 * * 1-5",
        "timezone": "Asia/Seoul",
        "updated_at": NOW,
    }


def test_a_changed_cron_or_time_zone_updates_the_job() -> None:
    docs, jobs = store(a=segment("0 6 * * *"), b=segment("0 7 * * *")), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    docs.set("segments", "a", {"schedule": {"cron": "30 6 * * *"}}, merge=True)
    docs.set("segments", "b", {"schedule": {"cron": "0 7 * * *", "timezone": "UTC"}}, merge=True)
    jobs.calls.clear()

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.updated == ["cdp-seg-a", "cdp-seg-b"] and not report.created and not report.deleted
    assert jobs.jobs["cdp-seg-a"].cron == "30 6 * * *"
    assert jobs.jobs["cdp-seg-b"].time_zone == "UTC"
    assert schedule_status(docs, "b")["timezone"] == "UTC"  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "state"),
    [
        ({"enabled": False}, {"state": "off", "reason": "the segment is not enabled"}),
        ({"enabled": "yes"}, {"state": "off", "reason": "the segment is not enabled"}),
        ({"schedule": None}, "error"),
        ({"schedule": {"cron": "every day"}}, "error"),
    ],
    ids=["disabled", "enabled-not-a-bool", "schedule-null", "schedule-broken"],
)
def test_the_job_goes_when_its_segment_is_disabled_unscheduled_or_broken(change: dict[str, Any], state: Any) -> None:
    docs, jobs = store(keep=segment(), gone=segment()), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    docs.set("segments", "gone", change, merge=True)

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.deleted == ["cdp-seg-gone"] and report.unchanged == ["cdp-seg-keep"]
    assert sorted(jobs.jobs) == ["cdp-seg-keep"]
    entry = schedule_status(docs, "gone")
    if state == "error":
        assert entry is not None and entry["state"] == "error" and entry["error"].startswith("schedule")
    else:
        assert (entry and {k: v for k, v in entry.items() if k != "updated_at"}) == state


def test_a_deleted_segment_loses_its_job() -> None:
    docs, jobs = store(a=segment(), b=segment()), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    docs.delete("segments", "b")

    assert sync_schedules(docs, jobs, CONFIG, NOW).deleted == ["cdp-seg-b"]
    assert sorted(jobs.jobs) == ["cdp-seg-a"]


def test_defaults_are_those_of_segment_parsing_enabled_and_daily_at_seven() -> None:
    bare = {"name": "Bare", "template": "all_users"}  # neither enabled nor schedule
    docs, jobs = store(bare=bare), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    job = jobs.jobs["cdp-seg-bare"]
    assert (job.cron, job.time_zone) == ("0 7 * * *", "Asia/Seoul")

    none = ScheduleConfig(default_cron=None)  # no default: only segments that name a schedule get a job
    assert sync_schedules(docs, jobs, none, NOW).deleted == ["cdp-seg-bare"]
    assert schedule_status(docs, "bare") is None


def test_the_defaults_agree_with_segment_parsing() -> None:
    templates = pytest.importorskip("shared.tam.templates")
    assert {"cron": CONFIG.default_cron, "timezone": CONFIG.default_time_zone} == templates.DEFAULT_SCHEDULE


def test_jobs_without_our_prefix_are_never_touched() -> None:
    foreign = {
        "cdp-refine": fixed_job_spec("refine", "15 * * * *"),
        "cdp-sync-schedules": fixed_job_spec("sync_schedules", "*/10 * * * *"),
        "someone-else": JobSpec("someone-else", "0 0 * * *", "UTC", "other", {"x": 1}),
    }
    docs, jobs = store(a=segment()), FakeJobs(jobs=dict(foreign))

    sync_schedules(docs, jobs, CONFIG, NOW)
    docs.delete("segments", "a")
    sync_schedules(docs, jobs, CONFIG, NOW)

    assert jobs.jobs == foreign
    assert {name for verb, name in jobs.calls if verb == "list"} == {"cdp-seg-", "cdp-pub-", "cdp-cmp-"}
    assert all(name.startswith("cdp-seg-") for _, name in jobs.writes())


def test_a_second_run_changes_nothing_and_writes_nothing() -> None:
    docs = store(a=segment(), b=segment(enabled=False), c=segment(cron="61 * * * *"), d=segment(cron=None))
    jobs = FakeJobs()
    first = sync_schedules(docs, jobs, CONFIG, NOW, run_id="r1")
    jobs.calls.clear()
    docs.sets.clear()

    second = sync_schedules(docs, jobs, CONFIG, datetime(2025, 3, 1, 1, tzinfo=UTC), run_id="r2")

    assert first.created == ["cdp-seg-a", "cdp-seg-d"] and second.unchanged == ["cdp-seg-a", "cdp-seg-d"]
    assert not (second.created or second.updated or second.deleted)
    assert jobs.writes() == []
    assert docs.sets == [("runs", "r2")]  # only the run record; no segment was rewritten
    assert second.errors == first.errors == {"c": second.errors["c"]}


def test_the_outcome_keeps_the_rest_of_the_status_that_other_jobs_own() -> None:
    docs, jobs = store(a=segment(status={"state": "ok", "size_estimate": 1200})), FakeJobs()

    sync_schedules(docs, jobs, CONFIG, NOW)

    status = docs.docs["segments"]["a"]["status"]
    assert status["state"] == "ok" and status["size_estimate"] == 1200 and status["schedule"]["state"] == "scheduled"
    assert docs.docs["segments"]["a"]["name"] == "Dormant members"  # merge: the marketer's fields stay


def test_a_status_written_during_the_run_is_not_put_back() -> None:
    docs = store(a=segment(status={"state": "ok", "size_estimate": 1}))

    class BuildMeanwhile(FakeJobs):
        def upsert_job(self, spec: JobSpec) -> None:  # build_segments writes its status mid-sync
            docs.set("segments", "a", {"status": {"state": "ok", "size_estimate": 2}}, merge=True)
            super().upsert_job(spec)

    sync_schedules(docs, BuildMeanwhile(), CONFIG, NOW)

    assert docs.docs["segments"]["a"]["status"]["size_estimate"] == 2
    assert docs.docs["segments"]["a"]["status"]["schedule"]["state"] == "scheduled"


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "0 6 * *"}, "schedule.cron: '0 6 * *' has 4 fields; use five: minute hour day-of-month month"),
        ({"cron": "0 0 6 * * *"}, "has 6 fields"),
        ({"cron": "61 * * * *"}, "schedule.cron: '61 * * * *' has a value out of range (minute 0-59"),
        ({"cron": "0 25 * * *"}, "out of range"),
        ({"cron": "@daily"}, "has 1 fields"),
        ({"cron": "0 9 L * *"}, "schedule.cron: '0 9 L * *': the day of month field 'L' is not valid unix-cron"),
        ({"cron": "H 9 * * *"}, "the minute field 'H' is not valid"),
        ({"cron": "0 9 * * 1#2"}, "the day of week field '1#2' is not valid"),
        ({"cron": ""}, "schedule.cron: must be a cron expression such as '0 6 * * *'"),
        ({"cron": 6}, "schedule.cron: must be a cron expression"),
        ({"timezone": "UTC"}, "schedule.cron: must be a cron expression"),
        ({"cron": "0 0 30 2 *"}, "schedule.cron: '0 0 30 2 *' never fires"),
        ({"cron": "*/5 * * * *"}, "fires every 5 minutes; a schedule may fire at most once every 60 minutes"),
        ({"cron": "*/10 9 1 1 *"}, "fires every 10 minutes"),
        ({"cron": "0 6 * * *", "timezone": "Asia/Seol"}, "schedule.timezone: unknown time zone 'Asia/Seol'; use an"),
        ({"cron": "0 6 * * *", "timezone": "../etc/passwd"}, "schedule.timezone: unknown time zone"),
        ({"cron": "0 6 * * *", "time_zone": "UTC"}, "schedule.time_zone: unknown field; a schedule has cron and"),
        (["0 6 * * *"], "schedule: must be a map {cron, timezone} or a cron string"),
    ],
)
def test_a_bad_schedule_lands_on_the_segment_status_with_the_field_path(schedule: Any, message: str) -> None:
    docs, jobs = store(bad=segment(cron=schedule), good=segment()), FakeJobs()

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert message in report.errors["bad"]
    assert schedule_status(docs, "bad") == {"state": "error", "error": report.errors["bad"], "updated_at": NOW}
    assert sorted(jobs.jobs) == ["cdp-seg-good"]  # one bad segment never stops the others
    assert report.status == "partial"


def test_valid_schedules_in_their_forms() -> None:
    for cron in ("0 6 * * *", "0 9 * * MON-FRI", "0 */2 * * *", "0 8,20 1-7 jan,jul sun", "15 3 * * 0", "0 0 1 * *"):
        assert cron_error(cron, 60, NOW) is None, cron
    docs, jobs = store(s=segment(cron="0  6 * * *")), FakeJobs()  # the string shorthand, extra spaces
    docs.set("segments", "s", {"schedule": "0  6 * * *"}, merge=True)
    sync_schedules(docs, jobs, ScheduleConfig(min_interval_minutes=0, default_time_zone="UTC"), NOW)
    assert (jobs.jobs["cdp-seg-s"].cron, jobs.jobs["cdp-seg-s"].time_zone) == ("0 6 * * *", "UTC")


def test_a_job_the_scheduler_refuses_is_an_error_on_its_segment_and_its_old_version_goes() -> None:
    docs, jobs = store(a=segment("0 6 * * *"), b=segment()), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    docs.set("segments", "a", {"schedule": {"cron": "0 7 * * *"}}, merge=True)
    jobs.refuse.add("cdp-seg-a")

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.errors == {"a": "schedule: the scheduler refused the job: Schedule or time zone is invalid."}
    assert report.deleted == ["cdp-seg-a"] and sorted(jobs.jobs) == ["cdp-seg-b"]
    assert schedule_status(docs, "a")["error"] == report.errors["a"]  # type: ignore[index]


def test_the_run_is_recorded_and_an_outage_is_recorded_then_raised_for_a_retry() -> None:
    docs, jobs = store(a=segment(), b=segment(cron="bad")), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW, run_id="sync_schedules-m1")
    run = docs.docs["runs"]["sync_schedules-m1"]
    assert run["job"] == "sync_schedules" and run["status"] == "partial" and run["started_at"] == NOW
    assert run["counts"] == {"created": 1, "updated": 0, "deleted": 0, "unchanged": 0, "errors": 1}
    assert run["created"] == ["cdp-seg-a"] and set(run["errors"]) == {"b"}
    assert run["finished_at"] >= NOW and run["duration_ms"] >= 0

    jobs.down = True
    with pytest.raises(TransientError):
        sync_schedules(docs, jobs, CONFIG, NOW, run_id="sync_schedules-m2")
    failed = docs.docs["runs"]["sync_schedules-m2"]
    assert failed["status"] == "failed" and failed["error"] == "TransientError: scheduler is down"


def test_segment_ids_that_job_ids_cannot_hold_get_a_readable_hashed_name() -> None:
    assert segment_job_name("vip_2025-q1", "cdp-seg-") == "cdp-seg-vip_2025-q1"
    odd = segment_job_name("봄 세일 2025!", "cdp-seg-")
    assert re.fullmatch(r"cdp-seg-2025-[0-9a-f]{12}", odd) and odd == segment_job_name("봄 세일 2025!", "cdp-seg-")
    assert re.fullmatch(r"cdp-seg-[0-9a-f]{12}", segment_job_name("봄 세일", "cdp-seg-"))
    assert len(segment_job_name("x" * 600, "cdp-seg-")) <= 500

    docs, jobs = store(**{"봄 세일 2025!": segment()}), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    assert json.loads(jobs.jobs[odd].data)["segment_id"] == "봄 세일 2025!"


def test_two_segments_that_map_to_one_job_name_do_not_overwrite_each_other() -> None:
    taken = segment_job_name("a b", "cdp-seg-").removeprefix("cdp-seg-")
    docs, jobs = store(**{"a b": segment(), taken: segment()}), FakeJobs()

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert len(jobs.jobs) == 1 and len(report.errors) == 1
    assert "already used by segment" in next(iter(report.errors.values()))


def test_job_spec_refuses_names_cloud_scheduler_would_refuse() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        JobSpec("cdp seg", "0 6 * * *", "UTC", "jobs", {"job": "x"})
    with pytest.raises(TypeError):
        JobSpec("cdp-seg", "0 6 * * *", "UTC", "jobs", {"job": object()})


def test_config_from_env() -> None:
    config = ScheduleConfig.from_env(
        {"CDP_SCHEDULE_JOB_PREFIX": "stg-seg-", "CDP_SCHEDULER_LOCATION": "us-central1", "CDP_JOBS_TOPIC": "jobs"}
    )
    assert (config.job_prefix, config.location, config.min_interval_minutes) == ("stg-seg-", "us-central1", 60)
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match="CDP_SCHEDULE_JOB_PREFIX"):
        ScheduleConfig.from_env({"CDP_SCHEDULE_JOB_PREFIX": "bad prefix"})
    with pytest.raises(ConfigError, match="CDP_SCHEDULE_MIN_INTERVAL_MINUTES"):
        ScheduleConfig.from_env({"CDP_SCHEDULE_MIN_INTERVAL_MINUTES": "1h"})


def test_fixed_jobs_have_the_name_and_message_infra_scheduler_tf_gives_them() -> None:
    spec = fixed_job_spec("build_segments", "0 5 * * *")
    assert (spec.name, spec.data, spec.attributes) == (
        "cdp-build-segments",
        b'{"job":"build_segments"}',
        {"job": "build_segments"},
    )
    tf = (Path(__file__).parents[2] / "infra" / "scheduler.tf").read_text()
    assert 'name        = "${var.prefix}-${replace(each.key, "_", "-")}"' in tf
    assert "data       = base64encode(jsonencode(merge(try(each.value.body, {}), { job = each.key })))" in tf
    tick = fixed_job_spec("send_messages", "*/5 * * * *", body={"tick": True, "job": "not this"})
    assert tick.data == b'{"job":"send_messages","tick":true}' and tick.attributes == {"job": "send_messages"}
    assert "attributes = { job = each.key }" in tf


def test_job_of_reads_the_attribute_then_the_body() -> None:
    assert job_of(b"", {"job": "sync_schedules"}) == "sync_schedules"
    assert job_of(b'{"job":"refine"}', {}) == "refine"
    assert job_of(b"not json", {}) is None
    assert job_of(b"[1]", {}) is None


def pubsub_event(body: dict[str, Any], message_id: str = "m-1") -> CloudEvent:
    data = {
        "message": {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "attributes": {"job": body["job"]},
            "messageId": message_id,
        }
    }
    attributes = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"}
    return CloudEvent(attributes, data)


def test_the_handler_syncs_on_its_own_message_and_ignores_other_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.sync_schedules.main import sync_schedules as handler
    from shared import bootstrap

    docs, jobs = store(a=segment()), FakeJobs()
    monkeypatch.setattr(bootstrap, "documents", lambda: docs)
    monkeypatch.setattr(bootstrap, "job_scheduler", lambda: jobs, raising=False)
    monkeypatch.setattr(bootstrap, "schedule_config", lambda: CONFIG, raising=False)

    handler(pubsub_event({"job": "refine"}))
    assert jobs.calls == [] and "runs" not in docs.docs

    handler(pubsub_event({"job": "sync_schedules"}, message_id="42"))
    assert sorted(jobs.jobs) == ["cdp-seg-a"]
    assert docs.docs["runs"]["sync_schedules-42"]["status"] == "ok"


# --- publications ---------------------------------------------------------------------------------


def publication(cron: str | None = "30 9 * * *", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"segment_id": "vip", "destination_id": "meta", "audience_id": "23850000000000001", **extra}
    if cron is not None:
        doc["schedule"] = {"cron": cron}
    return doc


def publications_store(**publications: dict[str, Any]) -> CountingStore:
    docs = CountingStore()
    for publication_id, doc in publications.items():
        docs.set("publications", publication_id, doc)
    docs.sets.clear()
    return docs


def test_a_scheduled_publication_becomes_a_job_that_publishes_its_audience() -> None:
    docs, jobs = publications_store(p1=publication("30 9 * * 1-5", name="VIP to Meta")), FakeJobs()

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.created == ["cdp-pub-p1"] and report.status == "ok"
    job = jobs.jobs["cdp-pub-p1"]
    assert (job.cron, job.time_zone, job.topic) == ("30 9 * * 1-5", "Asia/Seoul", "jobs")
    assert job.data == b'{"job":"publish_audiences","publication_id":"p1"}'
    assert job.attributes == {"job": "publish_audiences"}
    assert "p1 (VIP to Meta)" in job.description and "publications/p1" in job.description
    assert docs.docs["publications"]["p1"]["status"]["schedule"] == {
        "state": "scheduled",
        "job": "cdp-pub-p1",
        "cron": "30 9 * * 1-5",
        "timezone": "Asia/Seoul",
        "updated_at": NOW,
    }
    assert sync_schedules(docs, jobs, CONFIG, NOW).unchanged == ["cdp-pub-p1"]


def test_the_publication_job_is_what_publish_audiences_takes() -> None:
    from shared.services.publish_audiences import JOB as PUBLISH_JOB
    from shared.services.publish_job import publish_job

    assert CONFIG.publication_job == PUBLISH_JOB
    docs, jobs = publications_store(p1=publication()), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    assert publish_job(jobs.jobs["cdp-pub-p1"].message, NOW).publications == ("p1",)


@pytest.mark.parametrize(
    ("change", "entry"),
    [
        ({"enabled": False}, {"state": "off", "reason": "the publication is not enabled"}),
        ({"schedule": None}, None),  # published after each build of its segment only
        (
            {"keys": ["EMAIL", "MAIL"]},
            {"state": "error", "error": 'keys[1]: unsupported key "MAIL"; one of ' + ", ".join(KEYS)},
        ),
        ({"schedule": {"cron": "*/5 * * * *"}}, "error"),
    ],
)
def test_a_disabled_unscheduled_or_invalid_publication_has_no_job(change: dict[str, Any], entry: Any) -> None:
    docs, jobs = publications_store(p1=publication()), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    assert sorted(jobs.jobs) == ["cdp-pub-p1"]
    docs.set("publications", "p1", {**docs.docs["publications"]["p1"], **change})

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert jobs.jobs == {} and report.deleted == ["cdp-pub-p1"]
    found = docs.docs["publications"]["p1"]["status"].get("schedule")
    if entry == "error":
        assert found["state"] == "error" and found["error"].startswith("schedule.cron: ")
        assert report.errors == {"publications/p1": found["error"]} and report.status == "partial"
    else:
        assert (found and {k: v for k, v in found.items() if k != "updated_at"}) == entry
        assert report.errors == ({"publications/p1": entry["error"]} if entry and "error" in entry else {})


def test_a_deleted_publication_loses_its_job_and_keeps_its_segments_job_of_the_same_id_apart() -> None:
    docs, jobs = publications_store(vip=publication()), FakeJobs()
    docs.set("segments", "vip", segment("0 6 * * *"))
    sync_schedules(docs, jobs, CONFIG, NOW)
    assert sorted(jobs.jobs) == ["cdp-pub-vip", "cdp-seg-vip"]

    docs.delete("publications", "vip")
    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.deleted == ["cdp-pub-vip"] and sorted(jobs.jobs) == ["cdp-seg-vip"]
    docs.delete("segments", "vip")
    assert sync_schedules(docs, jobs, CONFIG, NOW).deleted == ["cdp-seg-vip"] and jobs.jobs == {}


def test_the_publication_outcome_keeps_the_validation_status() -> None:
    validated: dict[str, Any] = {"state": "ok", "stage": "validate", "error": None, "errors": [], "at": NOW}
    docs, jobs = publications_store(p1={**publication(), "status": validated}), FakeJobs()
    sync_schedules(docs, jobs, CONFIG, NOW)
    status = docs.docs["publications"]["p1"]["status"]
    assert {k: v for k, v in status.items() if k != "schedule"} == validated
    assert status["schedule"]["state"] == "scheduled"


def test_the_two_job_prefixes_must_not_overlap() -> None:
    from shared.config import ConfigError

    config = ScheduleConfig.from_env(
        {"CDP_SCHEDULE_JOB_PREFIX": "stg-seg-", "CDP_SCHEDULE_PUBLICATION_JOB_PREFIX": "stg-pub-"}
    )
    assert (config.job_prefix, config.publication_job_prefix) == ("stg-seg-", "stg-pub-")
    for segments, publications in (("cdp-", "cdp-pub-"), ("cdp-pub-x", "cdp-pub-"), ("cdp-seg-", "bad prefix")):
        with pytest.raises(ConfigError, match="CDP_SCHEDULE_PUBLICATION_JOB_PREFIX"):
            ScheduleConfig.from_env(
                {"CDP_SCHEDULE_JOB_PREFIX": segments, "CDP_SCHEDULE_PUBLICATION_JOB_PREFIX": publications}
            )


# --- campaigns -----------------------------------------------------------------------------------


def campaign(cron: str | None = "0 10 * * 1", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "Win-back",
        "segment_id": "winback",
        "kind": "advertising",
        "channels": ["sms", "email"],
        "template_id": "winback",
        "enabled": True,
        **extra,
    }
    if cron is not None:
        doc["schedule"] = {"cron": cron}
    return doc


def test_a_scheduled_enabled_campaign_becomes_a_job_send_messages_takes() -> None:
    from shared.services.send_job import send_job
    from shared.services.send_messages import JOB as SEND_JOB

    docs, jobs = CountingStore(), FakeJobs()
    docs.set("campaigns", "c1", campaign())
    docs.set("campaigns", "once", campaign(None, send_at="2026-06-10T01:00:00Z"))  # the tick starts it
    docs.set("campaigns", "draft", campaign(enabled=False))

    report = sync_schedules(docs, jobs, CONFIG, NOW)

    assert report.created == ["cdp-cmp-c1"] and report.status == "ok" and sorted(jobs.jobs) == ["cdp-cmp-c1"]
    job = jobs.jobs["cdp-cmp-c1"]
    assert (job.cron, job.time_zone, job.attributes) == ("0 10 * * 1", "Asia/Seoul", {"job": SEND_JOB})
    assert send_job(job.message, NOW).campaigns == ("c1",) and "campaigns/c1" in job.description
    assert docs.docs["campaigns"]["c1"]["status"]["schedule"]["job"] == "cdp-cmp-c1"
    assert docs.docs["campaigns"]["draft"]["status"]["schedule"] == {
        "state": "off",
        "reason": "the campaign is not enabled",
        "updated_at": NOW,
    }
    assert "schedule" not in docs.docs["campaigns"]["once"].get("status", {})

    docs.set("campaigns", "c1", campaign(kind="newsletter"))  # no longer valid: its job goes
    report = sync_schedules(docs, jobs, CONFIG, NOW)
    assert report.deleted == ["cdp-cmp-c1"] and jobs.jobs == {}
    assert report.errors["campaigns/c1"].startswith("kind: ")


def test_the_three_job_prefixes_must_not_overlap() -> None:
    from shared.config import ConfigError

    assert ScheduleConfig.from_env({"CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX": "stg-cmp-"}).campaign_job_prefix == "stg-cmp-"
    with pytest.raises(ConfigError, match="CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX 'cdp-seg-x'"):
        ScheduleConfig.from_env({"CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX": "cdp-seg-x"})

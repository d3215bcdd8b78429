"""The in-process cron runner: due times in each job's zone, one fire per due time, the JobScheduler port."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from devstack.local_scheduler import LocalScheduler, next_fire, publish_to
from shared.config import ScheduleSettings as ScheduleConfig
from shared.jobs import fixed_job_spec
from shared.ports import JobSpec
from shared.services.sync_schedules import sync_schedules
from tests.fakes import FakeBus, FakeDocumentStore

T0 = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)  # 09:00 in Seoul


def job(name: str, cron: str, tz: str = "Asia/Seoul") -> JobSpec:
    return JobSpec(name, cron, tz, "jobs", {"job": "build_segments", "segment_id": name})


class Recorder:
    def __init__(self) -> None:
        self.fired: list[tuple[str, datetime]] = []

    def __call__(self, spec: JobSpec, scheduled: datetime) -> None:
        self.fired.append((spec.name, scheduled))


def clock_at(start: datetime) -> tuple[Callable[[], datetime], Callable[[timedelta], None]]:
    now = [start]

    def advance(by: timedelta) -> None:
        now[0] += by

    return lambda: now[0], advance


def test_next_fire_reads_the_cron_in_the_jobs_time_zone() -> None:
    assert next_fire(job("a", "0 6 * * *"), T0) == datetime(2025, 1, 1, 21, 0, tzinfo=UTC)  # 06:00 KST Jan 2
    assert next_fire(job("a", "0 6 * * *", "UTC"), T0) == datetime(2025, 1, 1, 6, 0, tzinfo=UTC)
    # Spring forward in New York: 02:30 does not exist on 10 March; the next fires are 03:00 EDT and 02:30 EDT.
    ny = job("ny", "30 2 * * *", "America/New_York")
    first = next_fire(ny, datetime(2024, 3, 10, 5, 0, tzinfo=UTC))  # 00:00 EST
    assert first == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)
    assert next_fire(ny, first) == datetime(2024, 3, 11, 6, 30, tzinfo=UTC)


def test_run_due_fires_due_jobs_once_and_moves_them_to_their_next_time() -> None:
    clock, advance = clock_at(T0)
    recorder = Recorder()
    runner = LocalScheduler(recorder, [job("hourly", "0 * * * *"), job("daily", "0 6 * * *")], clock=clock)

    assert runner.run_due(T0) == []
    assert runner.next_due() == datetime(2025, 1, 1, 1, 0, tzinfo=UTC)
    fired = runner.run_due(datetime(2025, 1, 1, 1, 0, tzinfo=UTC))
    assert [(s.name, t) for s, t in fired] == [("hourly", datetime(2025, 1, 1, 1, 0, tzinfo=UTC))]
    assert runner.run_due(datetime(2025, 1, 1, 1, 0, 30, tzinfo=UTC)) == []  # not twice for one time

    # Stopped for a day: each job fires once for everything it missed, as Cloud Scheduler does.
    runner.run_due(datetime(2025, 1, 2, 1, 30, tzinfo=UTC))
    assert recorder.fired[1:] == [  # in order of their scheduled times
        ("hourly", datetime(2025, 1, 1, 2, 0, tzinfo=UTC)),
        ("daily", datetime(2025, 1, 1, 21, 0, tzinfo=UTC)),
    ]
    assert runner.next_due() == datetime(2025, 1, 2, 2, 0, tzinfo=UTC)


def test_it_is_a_job_scheduler_an_unchanged_upsert_keeps_the_due_time() -> None:
    clock, advance = clock_at(T0)
    runner = LocalScheduler(Recorder(), clock=clock)
    runner.upsert_job(job("cdp-seg-a", "0 * * * *"))
    runner.upsert_job(fixed_job_spec("refine", "15 * * * *"))
    assert [s.name for s in runner.list_jobs("cdp-seg-")] == ["cdp-seg-a"]
    assert [s.name for s in runner.list_jobs("")] == ["cdp-refine", "cdp-seg-a"]

    def fired_at(hour: int, day: int = 1) -> list[str]:
        return [spec.name for spec, _ in runner.run_due(datetime(2025, 1, day, hour, 0, tzinfo=UTC))]

    advance(timedelta(minutes=50))
    runner.upsert_job(job("cdp-seg-a", "0 * * * *"))  # unchanged: still due at 01:00, not 02:00
    assert fired_at(1) == ["cdp-refine", "cdp-seg-a"]

    runner.upsert_job(job("cdp-seg-a", "0 6 * * *"))  # changed: due at its new next time (21:00 UTC)
    assert fired_at(2) == ["cdp-refine"]
    runner.delete_job("cdp-seg-a")
    runner.delete_job("cdp-seg-a")  # idempotent
    assert fired_at(0, day=3) == ["cdp-refine"]
    assert [s.name for s in runner.list_jobs("")] == ["cdp-refine"]


def test_a_bad_cron_is_refused_like_cloud_scheduler_would() -> None:
    runner = LocalScheduler(Recorder())
    with pytest.raises(ValueError):
        runner.upsert_job(job("x", "61 * * * *"))
    assert runner.list_jobs("") == []


def test_one_failing_job_does_not_stop_the_others() -> None:
    fired: list[str] = []

    def fire(spec: JobSpec, _at: datetime) -> None:
        if spec.name == "a":
            raise RuntimeError("boom")
        fired.append(spec.name)

    clock, _ = clock_at(T0)
    runner = LocalScheduler(fire, [job("a", "0 * * * *"), job("b", "0 * * * *")], clock=clock)
    assert [s.name for s, _ in runner.run_due(T0 + timedelta(hours=1))] == ["a", "b"]
    assert fired == ["b"]
    assert runner.next_due() == T0 + timedelta(hours=2)  # the failed one moved on too


def test_publish_to_sends_the_message_cloud_scheduler_would() -> None:
    bus = FakeBus()
    clock, _ = clock_at(T0)
    runner = LocalScheduler(publish_to(bus), [fixed_job_spec("refine", "15 * * * *")], clock=clock)
    runner.run_due(T0 + timedelta(minutes=15))
    assert bus.published == [("jobs", b'{"job":"refine"}', {"job": "refine"})]


def test_run_forever_fires_as_time_passes_until_stopped() -> None:
    ticks = iter(T0 + timedelta(seconds=20 * i) for i in range(10_000))
    stop = threading.Event()
    fired: list[datetime] = []

    def fire(_spec: JobSpec, at: datetime) -> None:
        fired.append(at)
        if len(fired) == 2:
            stop.set()

    runner = LocalScheduler(fire, [job("m", "*/1 * * * *", "UTC")], clock=lambda: next(ticks))
    thread = threading.Thread(target=runner.run_forever, args=(stop, 0.001), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert fired == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


def test_sync_schedules_drives_the_local_runner_like_cloud_scheduler() -> None:
    docs = FakeDocumentStore(docs={"segments": {"vip": {"name": "VIP", "enabled": True, "schedule": "0 6 * * *"}}})
    bus = FakeBus()
    clock, _ = clock_at(T0)
    runner = LocalScheduler(publish_to(bus), [fixed_job_spec("refine", "15 * * * *")], clock=clock)

    report = sync_schedules(docs, runner, ScheduleConfig(), T0)
    runner.run_due(datetime(2025, 1, 1, 21, 0, tzinfo=UTC))

    assert report.created == ["cdp-seg-vip"]
    published = {attrs["job"]: json.loads(data) for _, data, attrs in bus.published}
    assert published == {"build_segments": {"job": "build_segments", "segment_id": "vip"}, "refine": {"job": "refine"}}
    assert [s.name for s in runner.list_jobs("")] == ["cdp-refine", "cdp-seg-vip"]  # the fixed job stayed

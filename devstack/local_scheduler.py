"""An in-process stand-in for Cloud Scheduler, which has no emulator.

It is a `JobScheduler` (sync_schedules keeps its jobs in step with Firestore exactly as it does Cloud
Scheduler's) and a cron runner: `run_due(now)` fires every job whose time has come, reading each cron
in the job's own time zone, by publishing the job's message to its topic (the local Pub/Sub emulator,
so the same push subscriptions run the same functions) or by calling any callback.

Like Cloud Scheduler, a job that missed several fires (the runner was stopped, the clock jumped) fires
once, not once per missed time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.ports import EventBus, JobSpec

log = logging.getLogger(__name__)

Fire = Callable[[JobSpec, datetime], None]


def publish_to(bus: EventBus) -> Fire:
    """A fire callback that publishes the job's message as Cloud Scheduler's Pub/Sub target would."""

    def fire(spec: JobSpec, _scheduled: datetime) -> None:
        bus.publish(spec.topic, spec.data, spec.attributes)

    return fire


def next_fire(spec: JobSpec, after: datetime) -> datetime:
    """The first fire strictly after `after`, as an aware UTC datetime (the cron read in spec.time_zone)."""
    local = after.astimezone(ZoneInfo(spec.time_zone))
    fire: datetime = croniter(spec.cron, local).get_next(datetime)
    return fire.astimezone(UTC)


@dataclass
class _Entry:
    spec: JobSpec
    due: datetime


class LocalScheduler:
    """Jobs in memory, fired by run_due / run_forever. Thread-safe: a sync may upsert while it runs."""

    def __init__(
        self,
        fire: Fire,
        jobs: Iterable[JobSpec] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._fire = fire
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        for spec in jobs:
            self.upsert_job(spec)

    # --- JobScheduler ------------------------------------------------------------------------------

    def list_jobs(self, prefix: str) -> list[JobSpec]:
        with self._lock:
            return [e.spec for name, e in sorted(self._entries.items()) if name.startswith(prefix)]

    def upsert_job(self, spec: JobSpec) -> None:
        """Add or replace a job. An unchanged job keeps its due time; a changed one is due at its new
        schedule's next fire from now."""
        next_fire(spec, self._clock())  # a bad cron or zone fails here, as Cloud Scheduler would refuse it
        with self._lock:
            current = self._entries.get(spec.name)
            if current is not None and current.spec == spec:
                return
            self._entries[spec.name] = _Entry(spec, next_fire(spec, self._clock()))

    def delete_job(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    # --- Running ------------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((e.due for e in self._entries.values()), default=None)

    def run_due(self, now: datetime) -> list[tuple[JobSpec, datetime]]:
        """Fire each job due at or before now, once; return (job, scheduled time) in firing order.

        A job whose fire raises is logged and still moves on to its next time, as a Cloud Scheduler
        attempt would; the others fire regardless.
        """
        with self._lock:
            due = sorted(((e.due, name) for name, e in self._entries.items() if e.due <= now))
            batch = []
            for scheduled, name in due:
                entry = self._entries[name]
                entry.due = next_fire(entry.spec, now)
                batch.append((entry.spec, scheduled))
        for spec, scheduled in batch:  # outside the lock: a callback may upsert or delete jobs
            try:
                self._fire(spec, scheduled)
            except Exception:  # noqa: BLE001 - one failing job must not stop the others
                log.exception("local scheduler: job failed", extra={"job": spec.name, "scheduled": str(scheduled)})
        return batch

    def run_forever(self, stop: threading.Event, max_sleep: float = 1.0) -> None:
        """Fire jobs as they come due until stop is set (run it in a thread; set stop to end it)."""
        while not stop.is_set():
            now = self._clock()
            self.run_due(now)
            upcoming = self.next_due()
            wait = max_sleep if upcoming is None else (upcoming - self._clock()).total_seconds()
            stop.wait(min(max(wait, 0.01), max_sleep))

"""build_report: the report computed, rendered to one HTML file, written where people read it, and
pointed to from Firestore `reports/latest` (docs/report.md).

The page goes to the BlobStore twice: under a name of its run time (kept until the bucket's
retention deletes it) and as `latest.html`. A redelivered job message runs at its first delivery's
time (jobs.accept with run_time="published"), so it rewrites the same file instead of adding one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from shared.config import ReportSettings
from shared.ports import DocumentStore, Warehouse
from shared.ports.blobs import BlobStore
from shared.reporting import compute, render
from shared.reporting.model import Report
from shared.runs import Run, recorded

JOB: Final = "build_report"
REPORTS: Final = "reports"  # Firestore: reports/latest points at the newest page
LATEST: Final = "latest"
CONTENT_TYPE: Final = "text/html; charset=utf-8"


@dataclass(frozen=True)
class ReportPorts:
    """What a report run needs: the warehouse, the document store (None: warehouse-only page, no
    pointer), where pages go, the privacy salt the consent gate hashes suppressions with, the days
    of flows and the most customers per site the gate measures coverage on."""

    warehouse: Warehouse
    documents: DocumentStore | None
    blobs: BlobStore
    salt: str
    days: int = 30
    coverage_sample: int = ReportSettings.coverage_sample

    def with_days(self, days: int) -> ReportPorts:
        return replace(self, days=days)


@dataclass(frozen=True)
class Built:
    location: str  # where the dated page is (a path locally, gs://… on GCP)
    latest: str
    name: str
    bytes: int
    seconds: float
    report: Report


def page_name(at: datetime) -> str:
    """The dated file name of a run: one a day or more, sorted by time."""
    return f"report-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}.html"


def build_report(ports: ReportPorts, now: datetime, run_id: str | None = None) -> Built:
    """Compute, render and write the report as of `now`; record the run and the pointer."""
    run = Run(job=JOB, run_id=run_id or f"{JOB}-{now.astimezone(UTC):%Y%m%dT%H%M%S%f}", started_at=now)
    with recorded(ports.documents, run):
        started = time.perf_counter()
        report = compute.build(
            ports.warehouse,
            ports.documents,
            now,
            salt=ports.salt,
            days=ports.days,
            coverage_sample=ports.coverage_sample,
        )
        page = render.render(report).encode("utf-8")
        name = page_name(now)
        location = ports.blobs.write(name, page, CONTENT_TYPE)
        latest = ports.blobs.write("latest.html", page, CONTENT_TYPE)
        seconds = time.perf_counter() - started
        stale = [f.stage for f in report.freshness if f.stale]
        summary: dict[str, Any] = {
            "location": location,
            "latest": latest,
            "name": name,
            "generated_at": now,
            "since": report.window.since.isoformat(),
            "until": report.window.until.isoformat(),
            "bytes": len(page),
            "stale_stages": stale,
            "run_id": run.run_id,
            "seconds": round(seconds, 3),
        }
        if ports.documents is not None:
            ports.documents.set(REPORTS, LATEST, summary)
        run.details = {k: v for k, v in summary.items() if k not in ("generated_at", "run_id")}
    return Built(location, latest, name, len(page), seconds, report)

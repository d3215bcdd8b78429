"""Running an import: records shaped and written in chunks, rejects kept as bad rows, progress saved."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import beacons
from shared.beacons import Context, Invalid, Limits, Rejection
from shared.config import Site
from shared.offline_import.consents import CONSENT_TABLE, SUBSCRIPTION_TABLE
from shared.offline_import.mapping import TABLES
from shared.offline_import.shaping import ImportJob, Shaper, records
from shared.offline_import.sources import Line, UnusableFile
from shared.offline_import.state import ImportState
from shared.ports import InsertResult, Warehouse
from shared.privacy.suppression import SuppressionList, screen_rows
from shared.schema import table_spec

BAD_ROWS = "raw.bad_rows"


@dataclass
class ImportReport:
    """What one run did. `valid` counts rows that passed validation; `inserted` those new to the warehouse."""

    kind: str
    file: str
    dry_run: bool = False
    lines: int = 0
    records: int = 0
    valid: Counter[str] = field(default_factory=Counter)
    inserted: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    kept_with_dropped: int = 0  # records kept without one or more invalid optional fields
    dropped: Counter[str] = field(default_factory=Counter)  # those fields, by name
    suppressed: int = 0  # records of erased people, not written (privacy.suppressions)
    resumed_records: int = 0
    resumed_line: int | None = None
    already_imported: int | None = None


def _no_progress(lines: int) -> None:
    pass


def run_import(
    job: ImportJob,
    warehouse: Warehouse | None,
    clock: Callable[[], datetime],
    *,
    state: ImportState | None = None,
    restart: bool = False,
    progress: Callable[[int], None] = _no_progress,
    screen: SuppressionList | None = None,
) -> ImportReport:
    """Import the job's file in chunks; with no warehouse, validate only (dry run).

    After each chunk is committed the state records how many records are done, so a re-run after
    a crash skips them; rows of an interrupted chunk may be sent twice, which their ids make harmless.
    With a screen, records naming an identifier a privacy erasure suppressed are not written at
    all (not even as bad rows), so re-importing an old file does not bring an erased person back.
    """
    now = clock()
    report = ImportReport(job.kind, job.source.path.name, dry_run=warehouse is None)
    saved = None if state is None or restart else state.load()
    if saved and saved.get("complete"):
        report.already_imported = int(saved.get("lines", 0))
        return report
    skip = int(saved.get("records_done", 0)) if saved else 0
    done_lines = int(saved.get("lines", 0)) if saved else 0
    ctx = Context(job.site_id, collected_at=now, source="import", request_id=job.request_id)
    shaper = Shaper(job, ctx, Limits(max_events=job.chunk_size, max_age=None))
    chunk = _Chunk(warehouse, report, job, now, screen)
    checkpoint: dict[str, Any] = {
        "file": str(job.source.path),
        "sha256": job.source.sha256,
        "kind": job.kind,
        "site_id": job.site_id,
        "mapping": dict(job.plan.by_column),
    }
    index = -1
    for index, group in enumerate(records(job.source, job.plan)):
        if index < skip:
            report.resumed_records += 1
            report.resumed_line = group[0].number
            progress(len(group))
            continue
        report.records += 1
        report.lines += len(group)
        try:
            shaped = shaper.shape(group)
        except Invalid as exc:
            chunk.reject(exc.rejection, group)
        else:
            report.valid[shaped.table] += 1
            chunk.add(shaped.table, shaped.row)
            for table, row in shaped.ledger:  # consent and subscription columns (consents.py)
                report.valid[table] += 1
                chunk.add(table, row)
            if shaped.dropped:
                report.kept_with_dropped += 1
            for dropped in shaped.dropped:
                report.dropped[dropped.name] += 1
                chunk.problem(dropped.rejection, group, shaped.row)
        if chunk.size >= job.chunk_size:
            chunk.flush()
            if state is not None:
                state.save(
                    {
                        **checkpoint,
                        "records_done": index + 1,
                        "last_line": group[0].number,
                        "lines": done_lines + report.lines,
                        "complete": False,
                        "updated_at": clock().isoformat(),
                    }
                )
        progress(len(group))
    chunk.flush()
    if state is not None:
        state.save(
            {
                **checkpoint,
                "records_done": index + 1,
                "lines": done_lines + report.lines,
                "complete": True,
                "updated_at": clock().isoformat(),
            }
        )
    return report


class _Chunk:
    """Rows and bad rows waiting for one insert_many call."""

    def __init__(
        self,
        warehouse: Warehouse | None,
        report: ImportReport,
        job: ImportJob,
        now: datetime,
        screen: SuppressionList | None = None,
    ):
        self.warehouse, self.report, self.job, self.now, self.screen = warehouse, report, job, now, screen
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.bad: list[dict[str, Any]] = []

    @property
    def size(self) -> int:
        return sum(map(len, self.rows.values())) + len(self.bad)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def reject(self, rejection: Rejection, group: list[Line]) -> None:
        self.report.rejected[rejection.reason] += 1
        self.bad.append(self._bad_row(rejection, group))

    def problem(self, rejection: Rejection, group: list[Line], kept: Mapping[str, Any]) -> None:
        """A dropped field: a bad row that names the row kept without it (event_id, event_type)."""
        bad = self._bad_row(rejection, group)
        bad["event_id"], bad["event_type"] = kept["event_id"], "identify" if self.job.kind == "customers" else "conv"
        self.bad.append(bad)

    def _bad_row(self, rejection: Rejection, group: list[Line]) -> dict[str, Any]:
        payload = group[0].payload if len(group) == 1 else "[" + ",".join(line.payload for line in group) + "]"
        return beacons.bad_row(
            rejection,
            payload,
            stage="import",
            failed_at=self.now,
            source="import",
            site_id=self.job.site_id,
            request_id=self.job.request_id,
        )

    def _drop_suppressed(self) -> None:
        """Leave out the rows of erased people, and the bad rows naming those rows (one lookup per table)."""
        if self.screen is None:
            return
        dropped: set[str] = set()
        for table, rows in self.rows.items():
            erased = set(screen_rows(self.screen, self.job.site_id, table_spec(table), rows))
            if erased:
                dropped |= {rows[i]["event_id"] for i in erased}
                self.rows[table] = [row for i, row in enumerate(rows) if i not in erased]
                self.report.valid[table] -= len(erased)
                self.report.suppressed += len(erased)
        self.bad = [bad for bad in self.bad if bad.get("event_id") not in dropped]

    def flush(self) -> None:
        if self.warehouse is not None and self.size:
            self._drop_suppressed()
            batches = {t: (rows, [r[table_spec(t).row_id] for r in rows]) for t, rows in self.rows.items()}
            if self.bad:
                batches[BAD_ROWS] = (self.bad, [b["bad_row_id"] for b in self.bad])
            results = self.warehouse.insert_many(batches)
            self._count(results)
            refused = []
            for table, rows in self.rows.items():
                for error in results[table].errors:  # the warehouse refused the content: keep it as a bad row
                    self.report.valid[table] -= 1
                    self.report.rejected["warehouse_rejected"] += 1
                    refused.append(
                        beacons.bad_row(
                            Rejection("warehouse_rejected", table, error.reason),
                            rows[error.index],
                            stage="import",
                            failed_at=self.now,
                            source="import",
                            site_id=self.job.site_id,
                            request_id=self.job.request_id,
                        )
                    )
            if refused:
                self._count(
                    {BAD_ROWS: self.warehouse.insert_rows(BAD_ROWS, refused, [b["bad_row_id"] for b in refused])}
                )
        self.rows, self.bad = {}, []

    def _count(self, results: Mapping[str, InsertResult]) -> None:
        for table, result in results.items():
            self.report.inserted[table] += result.inserted
            if table != BAD_ROWS:
                self.report.duplicates += result.skipped_duplicates


def format_summary(report: ImportReport) -> str:
    """The human summary the CLI prints."""
    if report.already_imported is not None:
        return (
            f"{report.file}: already imported ({report.already_imported} rows), nothing to do "
            "(--restart imports it again)"
        )
    unit = "customers" if report.kind == "customers" else "orders"
    out = [f"{report.file}: {report.lines} rows read → {report.records} {unit}"]
    if report.resumed_records:
        out.append(
            f"  resumed: {report.resumed_records} {unit} up to line {report.resumed_line} were committed "
            "by an earlier run"
        )
    table = TABLES[report.kind]
    if report.dry_run:
        out.append(f"  dry run, nothing written: {report.valid[table]} valid")
    else:
        out.append(f"  accepted: {table} {report.inserted[table]} new, {report.duplicates} already present")
    ledger = [t for t in (CONSENT_TABLE, SUBSCRIPTION_TABLE) if report.valid[t] or report.inserted[t]]
    if ledger:
        counts = ", ".join(
            f"{t} {report.valid[t]} valid" if report.dry_run else f"{t} {report.inserted[t]} new" for t in ledger
        )
        out.append(f"  consent and subscription columns: {counts}")
    if report.kept_with_dropped:
        fields = ", ".join(f"{name} {n}" for name, n in report.dropped.most_common())
        where = "" if report.dry_run else f" → {BAD_ROWS}"
        out.append(f"  kept with dropped fields: {report.kept_with_dropped} {unit} ({fields}){where}")
    if report.suppressed:
        out.append(
            f"  skipped: {report.suppressed} {unit} of people erased by a privacy request (privacy.suppressions)"
        )
    reasons = ", ".join(f"{reason} {n}" for reason, n in report.rejected.most_common())
    rejected = sum(report.rejected.values())
    where = "" if report.dry_run or not rejected else f" → {BAD_ROWS}"
    out.append(f"  rejected: {rejected}{f' ({reasons})' if reasons else ''}{where}")
    return "\n".join(out)


def check_site(site_id: str, sites: Mapping[str, Site], allow_unknown: bool) -> None:
    """Imported rows must belong to a site the platform knows, as tracked ones do; a typo would orphan them."""
    if site_id in sites or allow_unknown:
        return
    known = ", ".join(sorted(sites)) or "none"
    raise UnusableFile(
        f"site {site_id!r} is not configured (CDP_SITES has: {known}); configure it in CDP_SITES "
        "or pass --allow-unknown-site"
    )

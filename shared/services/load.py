"""The load service: one bus message of shaped rows into the warehouse, without duplicates.

Rows carry their table and their id (event_id, bad_row_id), so a redelivered message inserts
nothing new. Outages raise so Pub/Sub redelivers; rows the warehouse refuses for their content
become bad rows; nothing is dropped. Rows go to the raw tables only, but for one kind: a click's
`clicked` row of audiences.delivery_events, which collect makes beside the click's raw event
(shared/messaging/clicks.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shared import beacons
from shared.beacons import Rejection
from shared.messaging.clicks import is_click_row
from shared.ports import TransientError, Warehouse
from shared.schema import TableSpec, table_specs
from shared.signing import signed_by

log = logging.getLogger(__name__)

BAD_ROWS = "raw.bad_rows"


@dataclass
class LoadReport:
    inserted: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    bad_rows: int = 0

    @property
    def total_inserted(self) -> int:
        return sum(self.inserted.values())


def load_message(
    data: bytes,
    warehouse: Warehouse,
    *,
    now: datetime,
    delivery_attempt: int = 1,
    max_attempts: int = 5,
    attributes: Mapping[str, str] | None = None,
    bus_key: str | None = None,
) -> LoadReport:
    """Insert every row of a message; bury the message as a bad row if a bug keeps failing it.

    With a `bus_key`, only a message collect signed with it is loaded (shared/signing.py); any other
    is kept whole as an `unsigned_message` bad row, so nothing is lost and nothing is trusted.
    """
    if bus_key and not signed_by(data, attributes or {}, bus_key):
        detail = "the message is not signed by collect (attribute sig): it may not come from collect"
        rejection = Rejection("unsigned_message", "message", detail)
        row = beacons.bad_row(rejection, data.decode("utf-8", "backslashreplace"), stage="load", failed_at=now)
        result = warehouse.insert_rows(BAD_ROWS, [row], [row["bad_row_id"]])
        log.warning("unsigned beacon message stored as a bad row", extra={"bad_row_id": row["bad_row_id"]})
        return LoadReport(inserted={BAD_ROWS: result.inserted}, duplicates=result.skipped_duplicates, bad_rows=1)
    try:
        return _load(data, warehouse, now)
    except TransientError:
        raise
    except Exception as exc:  # a bug or an unforeseen shape: retry, and stop retrying in time
        if delivery_attempt < max_attempts:
            raise
        log.exception("load failed on the last attempt; storing the message as a bad row")
        rejection = Rejection("load_failed", "message", f"{type(exc).__name__}: {exc}"[:1000])
        row = beacons.bad_row(rejection, data.decode("utf-8", "backslashreplace"), stage="load", failed_at=now)
        warehouse.insert_rows(BAD_ROWS, [row], [row["bad_row_id"]])
        return LoadReport(bad_rows=1)


def bury_dead_letter(data: bytes, attributes: Mapping[str, str], warehouse: Warehouse, *, now: datetime) -> None:
    """A message Pub/Sub gave up on becomes one bad row holding the whole message, for replay."""
    detail = "Pub/Sub stopped redelivering this message after its maximum delivery attempts"
    rejection = Rejection("dead_lettered", "message", detail)
    row = beacons.bad_row(
        rejection,
        data.decode("utf-8", "backslashreplace"),
        stage="load",
        failed_at=now,
        site_id=attributes.get("site_id"),
        request_id=attributes.get("request_id"),
    )
    warehouse.insert_rows(BAD_ROWS, [row], [row["bad_row_id"]])


def _completed_events(message: dict[str, Any], now: datetime, bad: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a collect message's events; an event that cannot be completed becomes a bad row."""
    events = message.get("events") or []
    if not events:
        return []
    ctx = beacons.context_from_message(message["context"])
    entries = []
    for i, event in enumerate(events):
        try:
            table, row = beacons.row_from_message(event, ctx)
        except (KeyError, ValueError, TypeError) as exc:
            rejection = Rejection("invalid_row", f"events[{i}]", f"cannot complete event: {exc}"[:500])
            bad.append(
                beacons.bad_row(
                    rejection,
                    event,
                    stage="load",
                    failed_at=now,
                    site_id=ctx.site_id,
                    request_id=message.get("request_id"),
                )
            )
            continue
        entries.append({"table": table, "row": row})
    return entries


def _loadable(spec: TableSpec, row: object) -> bool:
    """A ready row the loader writes: a raw table's, or a click's ledger row (the module docstring)."""
    return spec.dataset == "raw" or (isinstance(row, dict) and is_click_row(spec.name, row))


def _load(data: bytes, warehouse: Warehouse, now: datetime) -> LoadReport:
    report = LoadReport()
    specs = table_specs()
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    bad: list[dict[str, Any]] = []
    try:
        message = orjson.loads(data)
        entries = message["rows"]
        request_id = message.get("request_id")
        if not isinstance(entries, list):
            raise TypeError("rows is not an array")
        entries = entries + _completed_events(message, now, bad)
    except (ValueError, KeyError, TypeError) as exc:
        rejection = Rejection("undecodable_message", "message", f"not a beacon message: {exc}"[:500])
        bad.append(beacons.bad_row(rejection, data.decode("utf-8", "backslashreplace"), stage="load", failed_at=now))
        entries, request_id = [], None
    for i, entry in enumerate(entries):
        table = entry.get("table") if isinstance(entry, dict) else None
        row = entry.get("row") if isinstance(entry, dict) else None
        spec = specs.get(table) if isinstance(table, str) else None
        if spec is None or not _loadable(spec, row) or not isinstance(row, dict) or not row.get(spec.row_id):
            why = (
                f"rows[{i}] names no raw table or has no id"
                if spec is None or not _loadable(spec, row)
                else f"rows[{i}] lacks {spec.row_id}"
            )
            bad.append(
                beacons.bad_row(
                    Rejection("invalid_row", f"rows[{i}]", why),
                    entry,
                    stage="load",
                    failed_at=now,
                    request_id=request_id,
                )
            )
            continue
        by_table[spec.name].append(row)
    results = warehouse.insert_many({t: (rows, [r[specs[t].row_id] for r in rows]) for t, rows in by_table.items()})
    for table, rows in by_table.items():
        result = results[table]
        report.inserted[table] = result.inserted
        report.duplicates += result.skipped_duplicates
        for error in result.errors:
            row = rows[error.index]
            rejection = Rejection("warehouse_rejected", table, error.reason)
            bad.append(
                beacons.bad_row(
                    rejection, row, stage="load", failed_at=now, site_id=row.get("site_id"), request_id=request_id
                )
            )
    if bad:
        result = warehouse.insert_rows(BAD_ROWS, bad, [b["bad_row_id"] for b in bad])
        report.bad_rows = len(bad)
        report.inserted[BAD_ROWS] = report.inserted.get(BAD_ROWS, 0) + result.inserted
        report.duplicates += result.skipped_duplicates
    return report

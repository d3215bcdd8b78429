"""The demo's last stage: the report page built from the demo's warehouse and Firestore emulator, while
both are still up, into the demo's folder (report/)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.folder_blobs import FolderBlobs
from shared.config import LOCAL_PRIVACY_SALT
from shared.ports import DocumentStore
from shared.services import report


def run(duckdb_path: Path, documents: DocumentStore, out: Path, now: datetime, days: int) -> Path:
    """Build the page over the demo's `days` (its whole history) and return where it is. It is as of
    the moment it is built: the stages since the demo's `now` recorded their runs after it."""
    now = max(now, datetime.now(UTC))
    warehouse = DuckDBWarehouse(duckdb_path)
    try:
        ports = report.ReportPorts(warehouse, documents, FolderBlobs(out / "report"), LOCAL_PRIVACY_SALT, days=days)
        built = report.build_report(ports, now)
    finally:
        warehouse.close()
    return Path(built.location)

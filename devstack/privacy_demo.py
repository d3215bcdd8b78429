"""The demo's privacy stage: one export and one erasure requested in Firestore, run by the same
service the scheduled `privacy_requests` job runs, with their receipts.

Two members who gave an e-mail address are picked: the first asks for a copy of their data, the
second to be erased. The requests are written to `privacy_requests/` on the Firestore emulator as a
support tool would; `process_requests` exports to the demo's folder, erases through identity
resolution, suppresses, and writes each receipt back on its document. The stage then checks that
the erased customer's profile is gone and that the export's manifest is where the receipt says.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from devstack.pipeline import LocalPipeline
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.firestore_store import FirestoreStore
from shared.adapters.folder_blobs import FolderBlobs
from shared.bootstrap import build_privacy_ports
from shared.config import Settings
from shared.privacy.receipts import Receipt, TableCount
from shared.services import privacy

REQUESTS = "privacy_requests"


def receipt_of(request_id: str, doc: dict[str, Any]) -> Receipt:
    """The receipt a request's document holds, as the command line prints receipts."""
    data = doc["status"]["receipt"]
    return Receipt(
        request_id=request_id,
        kind=data["kind"],
        started_at=data["started_at"],
        status=data["status"],
        sites=list(data["sites"]),
        identifiers=dict(data["identifiers"]),
        tables={name: TableCount(**count) for name, count in data["tables"].items()},
        documents=data["documents"],
        suppressed=data["suppressed"],
        audience_removals=data["audience_removals"],
        waiting=list(data["waiting"]),
        export=data["export"],
        verified_at=data["verified_at"],
        finished_at=data["finished_at"],
        error=data["error"],
    )


def run(pipeline: LocalPipeline, site_id: str, out: Path, now: datetime) -> tuple[str, bool]:
    """Run the stage; returns the report and whether both requests completed as they should."""
    folder = out / "privacy-exports"
    settings = Settings.from_env({**pipeline.env, "CDP_PRIVACY_EXPORT_DIR": str(folder)})
    warehouse = DuckDBWarehouse(pipeline.duckdb_path)
    documents = FirestoreStore(pipeline.emulators.project)
    try:
        people = warehouse.query(
            "SELECT customer_id, member_id, email FROM refined.profiles "
            "WHERE site_id = @site AND member_id IS NOT NULL AND email IS NOT NULL ORDER BY customer_id LIMIT 2",
            {"site": site_id},
        )
        if len(people) < 2:
            return "Privacy requests: fewer than two members with an e-mail address (skipped)", True
        exported, erased = people
        documents.set(REQUESTS, "demo-export", {"type": "export", "email": exported["email"], "site_id": site_id})
        documents.set(REQUESTS, "demo-erase", {"type": "erase", "member_id": erased["member_id"], "site_id": site_id})
        ports = build_privacy_ports(settings, warehouse, FolderBlobs(folder))
        done = privacy.process_requests(documents, ports, now)
        receipts = {
            name: receipt_of(name, documents.get(REQUESTS, name) or {}) for name in ("demo-export", "demo-erase")
        }
        [left] = warehouse.query(
            "SELECT COUNT(*) AS n FROM refined.profiles WHERE customer_id = @customer",
            {"customer": erased["customer_id"]},
        )
    finally:
        warehouse.close()
    export, erase = receipts["demo-export"], receipts["demo-erase"]
    manifest = Path(str((export.export or {}).get("location", "")))
    ok = (
        done.done == 2
        and export.status == erase.status == "done"
        and int(left["n"]) == 0
        and erase.left == 0
        and manifest.is_file()
    )
    lines = [
        "Privacy requests (Firestore privacy_requests, run as the privacy_requests job runs them)",
        "  " + export.summary().replace("\n", "\n  "),
        f"  export files: {manifest.parent}",
        "  " + erase.summary().replace("\n", "\n  "),
        f"  the erased customer's profile rows left: {left['n']}",
    ]
    return "\n".join(lines), ok

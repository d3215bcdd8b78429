"""An export's files: one NDJSON file per table with rows about the subject, and a manifest.

The manifest lists each file with its table, row count and SHA-256, so whoever receives the export
can check that nothing was lost or changed on the way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from shared.ports.blobs import BlobStore

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def ndjson(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """One JSON object per line, keys sorted, UTF-8, dates and decimals as text."""
    return b"".join(
        json.dumps(row, ensure_ascii=False, sort_keys=True, default=_plain).encode() + b"\n" for row in rows
    )


def write_export(
    blobs: BlobStore,
    request_id: str,
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    documents: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    created_at: datetime,
) -> dict[str, Any]:
    """Write the files under `<request_id>/` and the manifest last; return the manifest with its location."""
    folder = _SAFE.sub("_", request_id)
    files = []
    for table, rows in sorted(tables.items()):
        if rows:
            data = ndjson(rows)
            name = f"{folder}/{table}.ndjson"
            blobs.write(name, data, "application/x-ndjson")
            files.append({"table": table, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(), "file": name})
    for collection, docs in sorted((documents or {}).items()):
        data = ndjson([{"id": doc_id, **doc} for doc_id, doc in sorted(docs.items())])
        name = f"{folder}/firestore.{collection}.ndjson"
        blobs.write(name, data, "application/x-ndjson")
        files.append(
            {"collection": collection, "rows": len(docs), "sha256": hashlib.sha256(data).hexdigest(), "file": name}
        )
    manifest: dict[str, Any] = {"request_id": request_id, "created_at": created_at.isoformat(), "files": files}
    location = blobs.write(f"{folder}/manifest.json", json.dumps(manifest, indent=1).encode(), "application/json")
    return manifest | {"location": location}


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

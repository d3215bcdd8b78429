"""The audit log: every change to a marketer's configuration document, and every privacy request.

What an auditor asks is who changed what and when, and whether a document is the one that was
approved. A row keeps the collection, the document id, the action, the changed top-level field
names and a SHA-256 of the document's canonical JSON before and after (never the values: a privacy
request names a person), so a copy of a document can be matched to the version that ran. Fields the
platform writes back (status, results) are left out by the caller, so our own status writes are
not changes. Rows are append-only (`audit.config_changes`); the same change recorded twice (a
redelivered trigger) has one id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from shared.ports import Warehouse

TABLE: Final = "audit.config_changes"


class AuditWriteError(RuntimeError):
    """The warehouse refused the audit row; recording the same change again is safe (same id)."""


def document_hash(doc: Mapping[str, Any] | None) -> str | None:
    """SHA-256 of a document's canonical JSON (sorted keys, ISO dates), whichever client read it."""
    if doc is None:
        return None

    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, (datetime, date)) else str(value)

    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    old, new = before or {}, after or {}
    return sorted(
        k for k in old.keys() | new.keys() if document_hash({k: old.get(k)}) != document_hash({k: new.get(k)})
    )


def record_change(
    warehouse: Warehouse,
    collection: str,
    document_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    entry_point: str,
    *,
    recorded_at: datetime,
    changed_at: datetime | None = None,
    event_id: str | None = None,
) -> str | None:
    """Record one change of a document's user fields; returns its id, or None when nothing changed."""
    before_hash, after_hash = document_hash(before), document_hash(after)
    if before_hash == after_hash:
        return None
    action = "created" if before is None else "deleted" if after is None else "updated"
    change_id = hashlib.sha256(
        "\x1f".join([collection, document_id, before_hash or "", after_hash or "", entry_point]).encode()
    ).hexdigest()[:32]
    row = {
        "change_id": change_id,
        "event_date": recorded_at.date().isoformat(),
        "recorded_at": recorded_at.isoformat(),
        "changed_at": changed_at.isoformat() if changed_at else None,
        "collection": collection,
        "document_id": document_id,
        "action": action,
        "before_hash": before_hash,
        "after_hash": after_hash,
        "changed_fields": changed_fields(before, after),
        "entry_point": entry_point,
        "event_id": event_id,
    }
    result = warehouse.insert_rows(TABLE, [row], [change_id])
    if result.errors:
        raise AuditWriteError(f"{TABLE} refused the change of {collection}/{document_id}: {result.errors[0].reason}")
    return change_id

"""What a publication's audience should hold, and what must change to get there.

desired = the segment's members ∩ eligible for ad_user_data (the consent gate, one call per site)
∩ at least one key. A run stages every member in audiences.publication_staging with the gate's
answer and, for the desired ones, the hashed row (shared/activation/customer_file.py) and its
row_hash; the warehouse then compares the staged rows with the ledger (what the audience holds),
so neither side is ever held whole in Python: members are read, hashed and staged in keyset pages,
and the changes are read back the same way (sql/publish/).

Removal reasons, in the order they are decided: erased (a privacy request asked for it, or the gate
found an erased identifier), left_segment, no_consent (a member the gate refuses: withdrawn or never
granted), key_changed (the customer's row changed, or no key is left: the old row goes out and the
new one, if any, comes in); replaced is the replace mode's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

import pyarrow as pa

from shared.activation.customer_file import has_any_key, hash_rows
from shared.ports import Warehouse
from shared.ports.audiences import MAX_BATCH_BYTES, MAX_BATCH_ROWS, Row, payload_bytes, row_bytes
from shared.services.consent import eligible_audience
from shared.sql import load_sql, parameter_names

PURPOSE: Final = "ad_user_data"
"""The consent an upload needs (docs/consent.md): uploading the person to an ad platform."""

REASONS: Final = ("left_segment", "no_consent", "erased", "key_changed", "replaced")
PAGE_ROWS: Final = 50_000
"""Rows per keyset page: a page of members or changes is the most a run holds in Python at once."""

STAGING: Final = "audiences.publication_staging"
_NO_KEY: Final = ""  # how a missing key is stored in REPEATED columns (BigQuery arrays hold no NULL)


@cache
def _statement(name: str) -> tuple[str, frozenset[str]]:
    sql = load_sql(f"publish/{name}")
    return sql, frozenset(parameter_names(sql))


def run(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """sql/publish/<name>.sql with the parameters it uses."""
    sql, names = _statement(name)
    return warehouse.query(sql, {key: value for key, value in params.items() if key in names})


def run_arrow(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> pa.Table:
    sql, names = _statement(name)
    return warehouse.query_arrow(sql, {key: value for key, value in params.items() if key in names})


def row_hash(keys: Sequence[str], row: Row) -> str:
    """SHA-256 hex over the keys and their values in schema order: the identity of the exact row
    sent, so a changed value or a changed schema is a different row."""
    text = "\x1f".join(f"{key}={value or ''}" for key, value in zip(keys, row, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()


def stored(row: Row) -> list[str]:
    """A row as the REPEATED `hashes` columns hold it."""
    return [_NO_KEY if value is None else value for value in row]


def sent(hashes: Sequence[str]) -> Row:
    """A stored row as the port takes it (None for a missing key)."""
    return tuple(None if value == _NO_KEY else value for value in hashes)


@dataclass(frozen=True)
class Staged:
    """What a run staged: members, how many the gate allows, and how many of those have a key."""

    members: int = 0
    eligible: int = 0
    desired: int = 0

    def __add__(self, other: Staged) -> Staged:
        return Staged(self.members + other.members, self.eligible + other.eligible, self.desired + other.desired)


def stage(
    warehouse: Warehouse,
    publication_id: str,
    segment_id: str,
    site_id: str | None,
    keys: Sequence[str],
    *,
    run_id: str,
    now: datetime,
    salt: str,
    page_rows: int = PAGE_ROWS,
) -> Staged:
    """Stage the segment's members for the publication: the gate's answer for each, and the row
    to hold for each eligible one with a key. Replaces what an earlier run staged."""
    run(warehouse, "clear_staging", {"publication_id": publication_id})
    sites = (
        [site_id]
        if site_id
        else [str(r["site_id"]) for r in run(warehouse, "segment_sites", {"segment_id": segment_id})]
    )
    total = Staged()
    for site in sites:
        total += _stage_site(warehouse, publication_id, segment_id, site, keys, run_id, now, salt, page_rows)
    return total


def _stage_site(
    warehouse: Warehouse,
    publication_id: str,
    segment_id: str,
    site_id: str,
    keys: Sequence[str],
    run_id: str,
    now: datetime,
    salt: str,
    page_rows: int,
) -> Staged:
    gate = {
        e.customer_id: (e.reason.value, e.consent_event_id)
        for e in eligible_audience(warehouse, site_id, PURPOSE, None, now, salt, segment_id=segment_id)
    }
    total = Staged()
    after = ""
    while True:
        page = run_arrow(
            warehouse,
            "members",
            {"segment_id": segment_id, "site_id": site_id, "after": after, "page_rows": page_rows},
        )
        if page.num_rows == 0:
            return total
        profiles = page.to_pylist()  # customer_id and every column PROFILE_COLUMNS names
        total += _stage_page(warehouse, publication_id, site_id, keys, profiles, gate, run_id, now)
        after = str(profiles[-1]["customer_id"])
        if page.num_rows < page_rows:
            return total


def _stage_page(
    warehouse: Warehouse,
    publication_id: str,
    site_id: str,
    keys: Sequence[str],
    profiles: list[dict[str, Any]],
    gate: Mapping[str, tuple[str, str | None]],
    run_id: str,
    now: datetime,
) -> Staged:
    # The gate answers for every member of its segment; a member built after the gate read it waits
    # for the next run (no answer is a refusal).
    answers = [gate.get(str(p["customer_id"]), ("no_consent", None)) for p in profiles]
    eligible = [i for i, (reason, _) in enumerate(answers) if reason == "eligible"]
    hashed = dict(zip(eligible, hash_rows([profiles[i] for i in eligible], keys), strict=True))
    columns: dict[str, list[Any]] = {name: [] for name in _STAGING_COLUMNS}
    desired = 0
    for index, profile in enumerate(profiles):
        customer_id = str(profile["customer_id"])
        row = hashed.get(index)
        keep = row is not None and has_any_key(row)
        desired += keep
        columns["staging_id"].append(f"{publication_id}|{customer_id}")
        columns["customer_id"].append(customer_id)
        columns["reason"].append(answers[index][0])
        columns["consent_event_id"].append(answers[index][1])
        columns["row_hash"].append(row_hash(keys, row) if keep and row is not None else None)
        columns["hashes"].append(stored(row) if keep and row is not None else [])
    count = len(profiles)
    columns |= {
        "publication_id": [publication_id] * count,
        "run_id": [run_id] * count,
        "site_id": [site_id] * count,
        "staged_at": [now] * count,
    }
    warehouse.append_arrow(
        STAGING, pa.table({name: pa.array(values, _STAGING_COLUMNS[name]) for name, values in columns.items()})
    )
    return Staged(count, len(eligible), desired)


_STAGING_COLUMNS: Final[Mapping[str, pa.DataType]] = {
    "staging_id": pa.string(),
    "publication_id": pa.string(),
    "run_id": pa.string(),
    "site_id": pa.string(),
    "customer_id": pa.string(),
    "reason": pa.string(),
    "consent_event_id": pa.string(),
    "row_hash": pa.string(),
    "hashes": pa.list_(pa.string()),
    "staged_at": pa.timestamp("us", tz="UTC"),
}


# -- reading the changes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Addition:
    """A staged row to send (an add, or a replace session's row)."""

    site_id: str
    customer_id: str
    row_hash: str
    row: Row


@dataclass(frozen=True)
class Removal:
    """A held row to take out, with the schema it was sent with and why."""

    entry_id: str
    site_id: str
    customer_id: str
    keys: tuple[str, ...]
    row: Row
    reason: str
    shared: bool = False  # another customer is to hold the same row: recorded, not sent


def additions(
    warehouse: Warehouse, publication_id: str, session_id: int | None = None, page_rows: int = PAGE_ROWS
) -> Iterator[list[Addition]]:
    """Pages of staged rows the ledger does not hold (or, with a session, that it has not sent)."""
    after_customer, after_hash = "", ""
    while True:
        params = {
            "publication_id": publication_id,
            "session_id": session_id,
            "after_customer": after_customer,
            "after_hash": after_hash,
            "page_rows": page_rows,
        }
        page = [
            Addition(str(r["site_id"]), str(r["customer_id"]), str(r["row_hash"]), sent(r["hashes"]))
            for r in run_arrow(warehouse, "pending", params).to_pylist()
        ]
        if page:
            yield page
        if len(page) < page_rows:
            return
        after_customer, after_hash = page[-1].customer_id, page[-1].row_hash


def pending_count(warehouse: Warehouse, publication_id: str, session_id: int) -> int:
    """How many staged rows the replace session has still to send."""
    rows = run(warehouse, "pending_count", {"publication_id": publication_id, "session_id": session_id})
    return int(rows[0]["pending"]) if rows else 0


def removals(warehouse: Warehouse, publication_id: str, page_rows: int = PAGE_ROWS) -> Iterator[list[Removal]]:
    """Pages of held rows to take out, grouped by schema, each with its reason."""
    after_schema, after_entry = "", ""
    while True:
        params = {
            "publication_id": publication_id,
            "after_schema": after_schema,
            "after_entry": after_entry,
            "page_rows": page_rows,
        }
        rows = run_arrow(warehouse, "removes", params).to_pylist()
        page = [
            Removal(
                str(r["entry_id"]),
                str(r["site_id"]),
                str(r["customer_id"]),
                tuple(r["keys"]),
                sent(r["hashes"]),
                str(r["reason"]),
                bool(r["shared"]),
            )
            for r in rows
        ]
        if page:
            yield page
        if len(page) < page_rows:
            return
        after_schema, after_entry = str(rows[-1]["schema_key"]), page[-1].entry_id


# -- batches ----------------------------------------------------------------------------------------


def batches(
    schema: Sequence[str], rows: Sequence[Row], max_rows: int = MAX_BATCH_ROWS, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[slice]:
    """Consecutive slices of rows, each within max_rows and a payload of max_bytes (the port's
    payload_bytes of the slice): what one request may carry."""
    empty = payload_bytes(schema, [])
    start, size = 0, empty
    for index, row in enumerate(rows):
        extra = row_bytes(row) - (1 if index == start else 0)  # the first row has no comma before it
        if index > start and (index - start >= max_rows or size + extra > max_bytes):
            yield slice(start, index)
            start, size = index, empty
            extra = row_bytes(row) - 1
        if size + extra > max_bytes:
            raise ValueError(f"one row is {extra:,} bytes, over the {max_bytes:,}-byte cap on a request")
        size += extra
    if start < len(rows):
        yield slice(start, len(rows))

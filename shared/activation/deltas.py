"""What a publication's audience should hold, and what must change to get there.

desired = the segment's members ∩ eligible for ad_user_data (the consent gate, one statement per
site) ∩ at least one key. audiences.publication_staging keeps, per publication and member, the
gate's answer and, for the desired ones, the hashed row (shared/activation/customer_file.py) and
its row_hash; the warehouse compares it with the ledger (what the audience holds), so neither side
is ever held whole in Python: the changes are read back in keyset pages (sql/publish/).

Staging is incremental, so a day's churn costs about what changed rather than a first upload. The
staged rows stay between runs, each eligible one with the fingerprint of the values it was hashed
from (a digest of the key columns, the keys and the spelling rules' version, `spelling`). A run
(1) appends the gate's answers as one Arrow table (consent.eligible_table: no object per member),
(2) lists, in one SQL pass over the segment, the eligible members whose staged row cannot be kept
(new, newly eligible, another consent row, another fingerprint) with their key values, (3) deletes
the staged rows that no longer hold (left the segment, another answer, to be hashed again) and
stages the refused members that lack a row, all set-based, then (4) reads, hashes and appends only
the listed members. What stays is exactly what restaging everyone would write; a run that stops
part-way leaves the next one to finish (nothing is sent before staging ends). The spelling's
version is a digest of customer_file.py, shared/contacts.py and phonenumbers' version, so new rules
restage everyone once (the rows that spell as before are not sent again), and DOBY adds the year
(a birth year becomes valid when its year comes). Removals are planned the same way, once a run in
SQL (publication_leaving), so a page is a cheap read and a batch is recorded by its range.

Measured (scripts/bench publish, docs/publishing.md#figures-and-limits): 1M members, a first upload
in 365 s and a day's 1 % churn in 14.3 s (0.04 of it), where restaging everyone gave 0.38. What a
delta still costs is a few passes over the segment in the warehouse: the gate, the fingerprints,
the gate's answers written and compared (about 6 s of the 14 at 1M).

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
from pathlib import Path
from time import gmtime
from typing import Any, Final

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from shared import contacts
from shared.activation import customer_file
from shared.activation.customer_file import has_any_key, hash_rows
from shared.ports import Warehouse
from shared.ports.audiences import MAX_BATCH_BYTES, MAX_BATCH_ROWS, Row, payload_bytes, row_bytes
from shared.services.consent import eligible_table
from shared.sql import run_statement, run_statement_arrow

PURPOSE: Final = "ad_user_data"
"""The consent an upload needs (docs/consent.md): uploading the person to an ad platform."""

REASONS: Final = ("left_segment", "no_consent", "erased", "key_changed", "replaced")
PAGE_ROWS: Final = 50_000
"""Rows per keyset page: a page of changes or removals is the most a run holds in Python at once."""
HASH_ROWS: Final = 10_000
"""Members hashed and staged at a time, as Python rows, from a page read as Arrow."""

STAGING: Final = "audiences.publication_staging"
GATE: Final = "audiences.publication_gate"
_NO_KEY: Final = ""  # how a missing key is stored in REPEATED columns (BigQuery arrays hold no NULL)


def run(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """sql/publish/<name>.sql with the parameters it uses."""
    return run_statement(warehouse, f"publish/{name}", params)


def run_arrow(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> pa.Table:
    return run_statement_arrow(warehouse, f"publish/{name}", params)


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


@cache
def _rules_version() -> str:
    digest = hashlib.sha256(phonenumbers.__version__.encode())
    for module in (customer_file, contacts):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def spelling(keys: Sequence[str]) -> str:
    """What besides the key values decides a hashed row: the spelling rules' version, the keys in
    schema order and, with DOBY, the year (customer_file accepts birth years up to this one)."""
    year = f"|{gmtime().tm_year}" if "DOBY" in keys else ""
    return f"{_rules_version()}|{','.join(keys)}{year}"


@dataclass(frozen=True)
class Staged:
    """What a publication has staged: members, how many the gate allows, how many of those have a
    key; and how many members this run hashed (new or changed)."""

    members: int = 0
    eligible: int = 0
    desired: int = 0
    hashed: int = 0


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
    """Bring the publication's staged rows up to date (see the module docstring): every segment
    member with the gate's answer, and the row to hold for each eligible one with a key; only the
    members whose answer or key values changed are hashed."""
    params = {
        "publication_id": publication_id,
        "run_id": run_id,
        "staged_at": now,
        "spelling": spelling(keys),
    }
    run(warehouse, "clear_gate", params)
    run(warehouse, "clear_changes", params)
    sites = (
        [site_id]
        if site_id
        else [str(r["site_id"]) for r in run(warehouse, "segment_sites", {"segment_id": segment_id})]
    )
    for site in sites:
        _ask_gate(warehouse, publication_id, segment_id, site, run_id, now, salt)
    run(warehouse, "changes", params)
    run(warehouse, "unstage", params)
    run(warehouse, "stage_refused", params)
    hashed = _hash_changes(warehouse, publication_id, keys, run_id, now, page_rows)
    run(warehouse, "clear_changes", params)
    run(warehouse, "clear_gate", params)
    [counts] = run(warehouse, "staged_counts", params)
    return Staged(int(counts["members"]), int(counts["eligible"]), int(counts["desired"]), hashed)


def _ask_gate(
    warehouse: Warehouse, publication_id: str, segment_id: str, site_id: str, run_id: str, now: datetime, salt: str
) -> None:
    """The gate's answer for every member of the segment on one site, into publication_gate."""
    answers = eligible_table(warehouse, site_id, PURPOSE, now, salt, segment_id=segment_id)
    count = answers.num_rows
    if count == 0:
        return
    customers = answers.column("customer_id").cast(pa.string())
    columns = {
        "gate_id": pc.binary_join_element_wise(f"{publication_id}|", customers, ""),
        "publication_id": pa.repeat(publication_id, count),
        "run_id": pa.repeat(run_id, count),
        "site_id": pa.repeat(site_id, count),
        "customer_id": customers,
        "reason": answers.column("reason").cast(pa.string()),
        "consent_event_id": answers.column("consent_event_id").cast(pa.string()),
    }
    warehouse.append_arrow(GATE, pa.table(columns))


def _hash_changes(
    warehouse: Warehouse, publication_id: str, keys: Sequence[str], run_id: str, now: datetime, page_rows: int
) -> int:
    """Hash the members publication_changes lists, a keyset page at a time (in slices of HASH_ROWS
    as Python rows), and stage their rows."""
    hashed, after = 0, ""
    while True:
        page = run_arrow(
            warehouse, "changed", {"publication_id": publication_id, "after": after, "page_rows": page_rows}
        )
        rows: int = page.num_rows
        for part in page.to_batches(max_chunksize=HASH_ROWS):
            profiles = part.to_pylist()  # customer_id and every column PROFILE_COLUMNS names
            _stage_rows(warehouse, publication_id, keys, profiles, run_id, now)
        hashed += rows
        if rows < page_rows:
            return hashed
        after = str(page.column("customer_id")[-1].as_py())


def _stage_rows(
    warehouse: Warehouse,
    publication_id: str,
    keys: Sequence[str],
    profiles: list[dict[str, Any]],
    run_id: str,
    now: datetime,
) -> None:
    columns: dict[str, list[Any]] = {name: [] for name in _STAGING_COLUMNS}
    for profile, row in zip(profiles, hash_rows(profiles, keys), strict=True):
        keep = has_any_key(row)
        columns["staging_id"].append(f"{publication_id}|{profile['customer_id']}")
        columns["row_hash"].append(row_hash(keys, row) if keep else None)
        columns["hashes"].append(stored(row) if keep else [])
        for name in ("site_id", "customer_id", "reason", "consent_event_id", "fingerprint"):
            columns[name].append(profile[name])
    count = len(profiles)
    columns |= {"publication_id": [publication_id] * count, "run_id": [run_id] * count, "staged_at": [now] * count}
    warehouse.append_arrow(
        STAGING, pa.table({name: pa.array(values, _STAGING_COLUMNS[name]) for name, values in columns.items()})
    )


_STAGING_COLUMNS: Final[Mapping[str, pa.DataType]] = {
    "staging_id": pa.string(),
    "publication_id": pa.string(),
    "run_id": pa.string(),
    "site_id": pa.string(),
    "customer_id": pa.string(),
    "reason": pa.string(),
    "consent_event_id": pa.string(),
    "fingerprint": pa.string(),
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
    """Pages of held rows to take out, grouped by schema, each with its reason: planned once in SQL
    (publication_leaving), so that a page is a cheap read and ledger.record_removed marks a batch
    by range; the plan is emptied once the last page has been handled."""
    run(warehouse, "clear_leaving", {"publication_id": publication_id})
    run(warehouse, "plan_removals", {"publication_id": publication_id})
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
            run(warehouse, "clear_leaving", {"publication_id": publication_id})
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

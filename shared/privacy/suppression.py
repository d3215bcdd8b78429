"""The suppression list: salted hashes of erased identifiers, so an erased person does not come back.

Contract (the consent gate, imports and refinement read it): `privacy.suppressions` holds one row
per erased identifier, `id_hash` = lowercase hex SHA-256 of salt || site_id || '|' || id_type ||
'|' || id_value, with id_type one of visitor, member, email, phone and id_value normalised as
refined.identities holds it. The salt is a secret (Secret Manager `privacy-salt`, Settings
`privacy.salt`): without it a hash cannot be tested against guessed e-mail addresses. In SQL the
same hash is `to_hex(sha256(concat(@privacy_salt, site_id, '|', id_type, '|', id_value)))`
(sql/privacy/id_hash.sql), which shared.sql transpiles for DuckDB; a test checks both give this hex.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

from shared.ports import Warehouse
from shared.privacy.subjects import Identifier, normalize
from shared.schema import IDENTIFIER_TYPES, TableSpec
from shared.sql import load_sql

TABLE: Final = "privacy.suppressions"
REASON: Final = "erasure"


def id_hash(salt: str, site_id: str, id_type: str, id_value: str) -> str:
    """The suppression hash of one identifier (id_value already normalised)."""
    if id_type not in IDENTIFIER_TYPES:
        raise ValueError(f"id_type must be one of {', '.join(IDENTIFIER_TYPES)}, got {id_type!r}")
    return hashlib.sha256(f"{salt}{site_id}|{id_type}|{id_value}".encode()).hexdigest()


def suppression_id(site_id: str, hashed: str) -> str:
    return f"{site_id}|{hashed}"


class SuppressionList(Protocol):
    """Which identifiers of a site were erased: what a writer checks before storing a person again."""

    def suppressed(self, site_id: str, identifiers: Collection[Identifier]) -> set[Identifier]:
        """The given identifiers that are on the list."""
        ...


class WarehouseSuppressions:
    """SuppressionList over privacy.suppressions: one query per call, for a whole chunk of rows."""

    def __init__(self, warehouse: Warehouse, salt: str) -> None:
        self._warehouse = warehouse
        self._salt = salt

    def __repr__(self) -> str:  # the salt never reaches a log line
        return "WarehouseSuppressions()"

    def suppressed(self, site_id: str, identifiers: Collection[Identifier]) -> set[Identifier]:
        if not identifiers:
            return set()
        by_hash = {id_hash(self._salt, site_id, i.type, i.value): i for i in identifiers}
        rows = self._warehouse.query(load_sql("privacy/suppressed"), {"site_id": site_id, "id_hashes": sorted(by_hash)})
        return {by_hash[row["id_hash"]] for row in rows}


def suppress(
    warehouse: Warehouse,
    salt: str,
    site_id: str,
    identifiers: Mapping[Identifier, str],
    suppressed_at: datetime,
) -> int:
    """Add the identifiers (each with the request that erased it) to the list; return how many.

    One MERGE per call, keyed by suppression_id, so a retried erasure adds nothing.
    """
    entries = sorted(f"{i.type}|{id_hash(salt, site_id, i.type, i.value)}|{r}" for i, r in identifiers.items())
    if entries:
        params = {"site_id": site_id, "entries": entries, "suppressed_at": suppressed_at, "reason": REASON}
        warehouse.query(load_sql("privacy/suppress"), params)
    return len(entries)


def row_identifiers(spec: TableSpec, row: Mapping[str, Any]) -> set[Identifier]:
    """The identifiers a row about to be written names, by its table's declared subject keys."""
    found: set[Identifier] = set()
    for key in spec.subject_keys:
        value = row.get(key.column)
        if key.json_path is not None:
            value = _json_member(value, key.json_path)
        if key.type_column is not None:
            kind = row.get(key.type_column)
            mapping = dict(key.types) if key.types else {t: t for t in IDENTIFIER_TYPES}
            id_type = mapping.get(kind) if isinstance(kind, str) else None
        else:
            id_type = key.type if key.type in IDENTIFIER_TYPES else None
        if id_type is not None and isinstance(value, str):
            normal = normalize(id_type, value)
            if normal is not None:
                found.add(Identifier(id_type, normal))
    return found


def screen_rows(screen: SuppressionList, site_id: str, spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indexes of the rows that name an erased identifier (one lookup for all the rows)."""
    named = [row_identifiers(spec, row) for row in rows]
    erased = screen.suppressed(site_id, set().union(*named)) if named else set()
    return [index for index, ids in enumerate(named) if ids & erased]


def _json_member(value: Any, path: str) -> Any:
    """The member at `$.a.b` of a JSON value given as a dict or as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    for part in path.split(".")[1:]:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def hashes_of(salt: str, site_id: str, identifiers: Iterable[Identifier]) -> list[str]:
    """The suppression hashes of identifiers, sorted: what a receipt keeps instead of the values."""
    return sorted(id_hash(salt, site_id, i.type, i.value) for i in identifiers)

"""Table specs read once from sql/schema: the single source of column names and types.

Both warehouse adapters create tables from these files, the loader checks rows against them and
Terraform reads the same JSON, so a column is declared in exactly one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "sql" / "schema"

# What can identify the person a row is about. The first four are the node types of
# refined.identities, what a privacy request names and identity resolution links; `customer` is a
# resolved customer id, `node` an identity node ("member:m1"), `text` free text searched for any
# identifier of the subject (a rejected payload). docs/privacy.md explains each.
IDENTIFIER_TYPES = ("visitor", "member", "email", "phone")
SUBJECT_KEY_TYPES = (*IDENTIFIER_TYPES, "customer", "node", "text")
_JSON_PATH = re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    mode: str = "NULLABLE"
    fields: tuple[Field, ...] = ()
    description: str = ""

    @property
    def repeated(self) -> bool:
        return self.mode == "REPEATED"

    @property
    def required(self) -> bool:
        return self.mode == "REQUIRED"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Field:
        return cls(
            name=data["name"],
            type=data["type"].upper(),
            mode=data.get("mode", "NULLABLE").upper(),
            fields=tuple(cls.from_json(f) for f in data.get("fields", ())),
            description=data.get("description", ""),
        )


@dataclass(frozen=True)
class SubjectKey:
    """A column that identifies the person a row is about: privacy requests find, export and erase
    rows by these (tables.json `subject_keys`), so every table holding personal data declares them.

    Three shapes: a column of one identifier `type`; a JSON column whose member at `json_path` holds
    one; or a value column whose identifier type another column names per row (`type_column`, its
    values mapped by `types`, identity when absent; values not in the map identify nobody).
    """

    column: str
    type: str | None = None
    json_path: str | None = None
    type_column: str | None = None
    types: tuple[tuple[str, str], ...] = ()  # (type_column value, identifier type) pairs

    @classmethod
    def from_json(cls, table: str, data: Mapping[str, Any]) -> SubjectKey:
        key = cls(
            column=data["column"],
            type=data.get("type"),
            json_path=data.get("json_path"),
            type_column=data.get("type_column"),
            types=tuple(sorted(dict(data.get("types", {})).items())),
        )
        where = f"{table} subject key {key.column!r}"
        if (key.type is None) == (key.type_column is None):
            raise ValueError(f"{where}: give exactly one of type and type_column")
        if key.type is not None and key.type not in SUBJECT_KEY_TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(SUBJECT_KEY_TYPES)}, got {key.type!r}")
        json_types = (*IDENTIFIER_TYPES, "customer")  # raw.event's clicks name the customer in properties
        if key.json_path is not None and (key.type not in json_types or not _JSON_PATH.fullmatch(key.json_path)):
            raise ValueError(f"{where}: json_path must look like $.email and go with an identifier or customer type")
        bad = sorted({t for _, t in key.types} - set(IDENTIFIER_TYPES))
        if bad or (key.types and key.type_column is None):
            raise ValueError(f"{where}: types maps type_column values to {', '.join(IDENTIFIER_TYPES)}")
        return key

    def identifier_types(self) -> tuple[str, ...]:
        """The identifier types this key can hold (all four for a type column without a map)."""
        if self.type_column is not None:
            mapped = {t for _, t in self.types} if self.types else set(IDENTIFIER_TYPES)
            return tuple(t for t in IDENTIFIER_TYPES if t in mapped)
        return (self.type,) if self.type in IDENTIFIER_TYPES else ()


@dataclass(frozen=True)
class TableSpec:
    dataset: str
    table: str
    fields: tuple[Field, ...]
    row_id: str
    description: str = ""
    partition_field: str | None = None
    clustering: tuple[str, ...] = ()
    require_partition_filter: bool = False
    partition_expiration_days: int | None = None
    # Whether an embedded warehouse enforces row_id as a primary key. Off for tables only our SQL
    # writes: DuckDB deletes a million keyed rows in ~90 s and unkeyed ones in milliseconds, and
    # builds and checkpoints the keys of large tables slowly.
    enforce_row_id: bool = True
    # Rows arrive only by streaming inserts (the raw tables): row ids deduplicate best effort, as
    # BigQuery's insert ids do, and readers deduplicate exactly. An embedded warehouse appends them
    # unkeyed, skipping only the ids it wrote recently.
    append_only: bool = False
    # Privacy (docs/privacy.md): the columns that identify the person a row is about; or why a
    # table with personal columns keeps its rows after an erasure; and, for streamed tables, the
    # column saying when a row arrived (BigQuery DML cannot touch rows still in the streaming buffer).
    subject_keys: tuple[SubjectKey, ...] = ()
    retained_after_erasure: str | None = None
    arrival_column: str | None = None

    @property
    def name(self) -> str:
        """Logical name, `dataset.table`, as written in SQL files and bus messages."""
        return f"{self.dataset}.{self.table}"

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@cache
def table_specs() -> dict[str, TableSpec]:
    """All tables keyed by logical name (`raw.page`), from every sql/schema/<dataset>/tables.json."""
    entries = []
    for index in sorted(SCHEMA_DIR.glob("*/tables.json")):
        entries += json.loads(index.read_text())["tables"]
    specs: dict[str, TableSpec] = {}
    for entry in entries:
        fields = json.loads((SCHEMA_DIR / entry["schema"]).read_text())
        spec = TableSpec(
            dataset=entry["dataset"],
            table=entry["table"],
            fields=tuple(Field.from_json(f) for f in fields),
            row_id=entry["row_id"],
            description=entry.get("description", ""),
            partition_field=entry.get("partition_field"),
            clustering=tuple(entry.get("clustering", ())),
            require_partition_filter=bool(entry.get("require_partition_filter", False)),
            partition_expiration_days=entry.get("partition_expiration_days"),
            enforce_row_id=bool(entry.get("enforce_row_id", not entry.get("append_only", False))),
            append_only=bool(entry.get("append_only", False)),
            subject_keys=tuple(
                SubjectKey.from_json(f"{entry['dataset']}.{entry['table']}", key)
                for key in entry.get("subject_keys", ())
            ),
            retained_after_erasure=entry.get("retained_after_erasure"),
            arrival_column=entry.get("arrival_column"),
        )
        _check_subject(spec)
        specs[spec.name] = spec
    return specs


def _check_subject(spec: TableSpec) -> None:
    """Subject keys name scalar columns of the table, of a type that can hold their values."""
    for key in spec.subject_keys:
        for name in filter(None, (key.column, key.type_column)):
            column = spec.field(name)
            if column.repeated or column.type not in ("STRING", "JSON"):
                raise ValueError(f"{spec.name}.{name}: a subject key must be a scalar STRING (or JSON) column")
        if (spec.field(key.column).type == "JSON") != (key.json_path is not None):
            raise ValueError(f"{spec.name}.{key.column}: a JSON column needs a json_path, and only it")
    if spec.arrival_column is not None and spec.field(spec.arrival_column).type != "TIMESTAMP":
        raise ValueError(f"{spec.name}.{spec.arrival_column}: the arrival column must be a TIMESTAMP")


def table_spec(name: str) -> TableSpec:
    try:
        return table_specs()[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(table_specs()))}") from None

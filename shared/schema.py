"""Table specs read once from sql/schema: the single source of column names and types.

Both warehouse adapters create tables from these files, the loader checks rows against them and
Terraform reads the same JSON, so a column is declared in exactly one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "sql" / "schema"


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
        )
        specs[spec.name] = spec
    return specs


def table_spec(name: str) -> TableSpec:
    try:
        return table_specs()[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(table_specs()))}") from None

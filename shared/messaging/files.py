"""Messaging documents kept as YAML files (examples/campaigns/, ops repositories): which document a
file is, and the documents a campaign file names, found beside it.

A folder holds the policy (`policy.yaml`: `messaging/policy`), message templates
(`templates/<id>.yaml`: `message_templates/{id}`) and campaigns (any other `*.yaml`:
`campaigns/{id}`); an id is the file's `id:` key, else its name. Files are read as segment files
are (shared/tam/files.py), so a file means the same document to scripts/campaigns and the demo.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from shared.messaging import campaigns
from shared.messaging.campaigns import CAMPAIGNS, POLICY, TEMPLATES
from shared.tam.files import load_file
from shared.tam.rules import to_document

POLICY_FILE: Final = "policy"  # policy.yaml or policy.yml
TEMPLATE_FOLDER: Final = "templates"
_SUFFIXES: Final = (".yaml", ".yml")
_PLATFORM: Final = {CAMPAIGNS: frozenset(campaigns.OUTPUT_FIELDS)}  # others: status only
_ORDER: Final = {POLICY[0]: 0, TEMPLATES: 1, CAMPAIGNS: 2}  # what a campaign's checks read comes first


@dataclass(frozen=True)
class DocumentFile:
    """One file's document and where it goes in Firestore."""

    path: Path
    collection: str  # campaigns, message_templates, or messaging (the policy)
    doc_id: str
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.collection}/{self.doc_id}"


def collection_of(path: Path) -> str:
    """The collection a file's document belongs to, by its name and folder."""
    if path.stem == POLICY_FILE:
        return POLICY[0]
    if path.parent.name == TEMPLATE_FOLDER:
        return TEMPLATES
    return CAMPAIGNS


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders as their policy, templates and campaigns; the policy first, then
    templates, then campaigns."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.glob("*") if p.suffix in _SUFFIXES)
            found += sorted(p for p in (path / TEMPLATE_FOLDER).glob("*") if p.suffix in _SUFFIXES)
        else:
            found.append(path)
    return sorted(dict.fromkeys(found), key=lambda p: _ORDER[collection_of(p)])


def read(path: Path) -> DocumentFile:
    """One file's document; UnreadableSegmentFile names the file when it holds none."""
    collection = collection_of(path)
    if collection == POLICY[0]:
        _, doc = load_file(path, "messaging policy document")
        return DocumentFile(path, collection, POLICY[1], doc)
    noun = "campaign document" if collection == CAMPAIGNS else "message template document"
    doc_id, doc = load_file(path, noun)
    return DocumentFile(path, collection, doc_id, doc)


def beside(campaign: Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The policy document and the templates (by id) in a campaign file's folder: what a campaign
    read from a file is checked and rendered with. No policy file: None (the defaults)."""
    folder = campaign.parent
    policy = next((folder / f"{POLICY_FILE}{s}" for s in _SUFFIXES if (folder / f"{POLICY_FILE}{s}").is_file()), None)
    templates: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / TEMPLATE_FOLDER).glob("*")):
        if path.suffix in _SUFFIXES:
            found = read(path)
            templates[found.doc_id] = found.doc
    return (read(policy).doc if policy is not None else None), templates


def to_store(found: DocumentFile, current: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The document to write for a file, or None when the stored one has its fields already.

    The marketer's fields are replaced whole (a field removed from the file goes away); the fields
    the platform wrote (status, last_run, ...) are kept. A file's `id` is its document's name, not
    a field."""
    ours = _PLATFORM.get(found.collection, frozenset({"status"}))
    fields = to_document({k: v for k, v in found.doc.items() if k != "id" and k not in ours})
    if current is not None and _text({k: v for k, v in current.items() if k not in ours}) == _text(fields):
        return None
    return {**{k: v for k, v in (current or {}).items() if k in ours}, **fields}


def _text(doc: Mapping[str, Any]) -> str:
    """A document's fields as comparable text, whichever client or decoder produced it."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):  # YAML keeps the offset written, Firestore gives UTC
            return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
        return str(value)

    return json.dumps(to_document(doc), sort_keys=True, ensure_ascii=False, default=plain)

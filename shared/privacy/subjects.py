"""What a privacy request names: identifiers of one person, normalised as identity resolution holds them.

A request is parsed once, at the door (the CLI, a Firestore document); every problem is a
RequestError naming the field, and nothing is written for a request that has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.contacts import normalize_email, normalize_phone
from shared.schema import IDENTIFIER_TYPES

KINDS: Final = ("export", "erase")
# Request fields by identifier type: the names a Firestore document and the CLI use.
FIELDS: Final = {"email": "email", "phone": "phone", "member": "member_id", "visitor": "visitor_id"}
MAX_ID_LENGTH: Final = 256  # longer than any id the collector or the importer accepts
MAX_IDENTIFIERS: Final = 50  # per request: one person's ids, not a list of people


class RequestError(ValueError):
    """A request that cannot be processed as written; `field` is the path of the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, order=True)
class Identifier:
    """One identifier of a person: a node of refined.identities (`type:value`)."""

    type: str
    value: str

    @property
    def node(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True)
class PrivacyRequest:
    """An export or an erasure of one person; site_id None means every site that knows them."""

    request_id: str
    kind: str
    identifiers: tuple[Identifier, ...]
    site_id: str | None = None


def normalize(id_type: str, value: str) -> str | None:
    """The spelling refined.identities holds (e-mail lowercased, phone E.164, ids trimmed), or None."""
    if id_type == "email":
        return normalize_email(value)
    if id_type == "phone":
        return normalize_phone(value)
    value = value.strip()
    return value if value and len(value) <= MAX_ID_LENGTH else None


def parse_request(request_id: str, data: Mapping[str, Any]) -> PrivacyRequest:
    """A request from its document: {"type": "erase"|"export", "site_id"?, "email"?, "phone"?,
    "member_id"?, "visitor_id"?}, each identifier a string or a list of strings."""
    kind = data.get("type")
    if kind not in KINDS:
        raise RequestError("type", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    site_id = data.get("site_id")
    if site_id is not None and (not isinstance(site_id, str) or not site_id.strip()):
        raise RequestError("site_id", "must be a non-empty string when given")
    found: list[Identifier] = []
    for id_type, name in FIELDS.items():
        raw = data.get(name)
        values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [] if raw is None else None
        if values is None:
            raise RequestError(name, f"must be a string or a list of strings, got {type(raw).__name__}")
        for index, value in enumerate(values):
            path = name if isinstance(raw, str) else f"{name}[{index}]"
            found.append(_identifier(id_type, value, path))
    return build_request(request_id, kind, found, site_id.strip() if site_id else None)


def build_request(
    request_id: str, kind: str, identifiers: Iterable[Identifier], site_id: str | None = None
) -> PrivacyRequest:
    """A request of already normalised identifiers; refuses one that names nobody."""
    unique = tuple(sorted(set(identifiers)))
    if not unique:
        raise RequestError("identifiers", f"a privacy request needs at least one of {', '.join(FIELDS.values())}")
    if len(unique) > MAX_IDENTIFIERS:
        raise RequestError("identifiers", f"at most {MAX_IDENTIFIERS} identifiers per request (one person)")
    return PrivacyRequest(request_id, kind, unique, site_id)


def identifier(id_type: str, value: str, field: str | None = None) -> Identifier:
    """One identifier given by hand (the CLI), normalised; RequestError when it cannot be."""
    return _identifier(id_type, value, field or FIELDS[id_type])


def _identifier(id_type: str, value: Any, path: str) -> Identifier:
    assert id_type in IDENTIFIER_TYPES
    if not isinstance(value, str):
        raise RequestError(path, f"must be a string, got {type(value).__name__}")
    normal = normalize(id_type, value)
    if normal is None:
        what = {"email": "an e-mail address", "phone": "a phone number"}.get(id_type, f"a {id_type} id")
        raise RequestError(path, f"{value[:80]!r} is not {what}")
    return Identifier(id_type, normal)

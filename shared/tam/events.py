"""Decoding Firestore trigger CloudEvents (`google.cloud.firestore.document.v1.written`).

Eventarc delivers the change as a protobuf `DocumentEventData` (`application/protobuf`); the
Firestore emulator sends the same message base64-encoded; tests and hand-made events use its JSON
form (`{"oldValue": {...}, "value": {...}}`, Firestore REST values). All three become one
`DocumentChange` of plain Python values, so a service compares old and new documents directly.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.events.cloud.firestore import DocumentEventData

_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_FIELD_TAGS = (b"\x0a", b"\x12", b"\x1a")
_NANOS = re.compile(r"(\.\d{6})\d+")  # Firestore keeps nanoseconds, datetime microseconds


class EventError(ValueError):
    """The event is not a Firestore document event we can read."""


@dataclass(frozen=True)
class DocumentChange:
    collection: str
    doc_id: str
    old: dict[str, Any] | None  # None: the document was created
    new: dict[str, Any] | None  # None: the document was deleted


def decode_document_event(data: Any, subject: str | None = None) -> DocumentChange:
    """A DocumentChange from a CloudEvent's data (bytes, base64 bytes, JSON text or a dict).

    `subject` (`documents/segments/abc`) names the document when the data carries no name. Anything
    malformed, however deep or large, is an EventError: a redelivery would not read any better.
    """
    try:
        return _decode(data, subject)
    except EventError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError, OverflowError) as exc:
        raise EventError(f"malformed event data: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _decode(data: Any, subject: str | None) -> DocumentChange:
    message = _as_json(data)
    old, new = message.get("oldValue"), message.get("value")
    if not isinstance(old, (Mapping, type(None))) or not isinstance(new, (Mapping, type(None))):
        raise EventError("oldValue and value must be documents")
    name = (new or {}).get("name") or (old or {}).get("name") or subject or ""
    if not isinstance(name, str):
        raise EventError("the document name is not a text")
    parts = name.split("/documents/", 1)[-1].removeprefix("documents/").split("/")
    if len(parts) < 2 or not all(parts):
        raise EventError(f"no document name in the event (subject {subject!r})")
    return DocumentChange(
        collection="/".join(parts[:-1]),
        doc_id=parts[-1],
        old=_document(old),
        new=_document(new),
    )


def _as_json(data: Any) -> dict[str, Any]:
    if isinstance(data, Mapping):
        return dict(data)
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray)):
        raise EventError(f"unexpected event data of type {type(data).__name__}")
    raw = bytes(data)
    if raw.lstrip().startswith(b"{"):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, nesting
            raise EventError(f"event data is not valid JSON: {str(exc)[:200]}") from exc
        if not isinstance(parsed, dict):
            raise EventError("event data is not a JSON object")
        return parsed
    # Protobuf DocumentEventData starts with a field tag (0x0a, 0x12 or 0x1a), which base64 never does.
    if raw[:1] not in _FIELD_TAGS and _BASE64.fullmatch(raw.strip()):
        try:
            raw = base64.b64decode(raw.strip(), validate=True)
        except binascii.Error as exc:
            raise EventError(f"event data is neither protobuf nor base64: {exc}") from exc
    try:
        event = DocumentEventData.deserialize(raw)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError hierarchy
        raise EventError(f"event data is not a DocumentEventData: {exc}") from exc
    try:  # to_json refuses values the protobuf can hold but JSON cannot, e.g. timestamps past 9999
        parsed = json.loads(DocumentEventData.to_json(event))
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own SerializeToJsonError hierarchy
        raise EventError(f"event data holds a value that cannot be read: {str(exc)[:200]}") from exc
    if not isinstance(parsed, dict):
        raise EventError("event data is not a DocumentEventData")
    return parsed


def _document(doc: Any) -> dict[str, Any] | None:
    """A Firestore REST document's fields as Python values; None for an absent document."""
    if not isinstance(doc, Mapping) or not doc.get("name"):
        return None
    fields = doc.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise EventError("a document's fields must be a map")
    return {str(k): firestore_value(v) for k, v in fields.items()}


def firestore_value(value: Any) -> Any:
    """One Firestore REST `Value` (`{"integerValue": "3"}`) as the Python value the client returns.

    A malformed value (not a map, text where a number belongs, a timestamp that is no time, nesting
    deeper than Python recurses) is an EventError naming what was wrong.
    """
    if not isinstance(value, Mapping):
        raise EventError(f"a Firestore value must be a map, got {type(value).__name__}")
    try:
        return _value(value)
    except EventError:
        raise
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError) as exc:
        raise EventError(f"malformed Firestore value {sorted(value)[:3]}: {str(exc)[:200]}") from exc


def _value(value: Mapping[str, Any]) -> Any:
    if "nullValue" in value:
        return None
    if "booleanValue" in value:
        return bool(value["booleanValue"])
    if "integerValue" in value:
        return int(value["integerValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "stringValue" in value:
        return str(value["stringValue"])
    if "timestampValue" in value:
        text = _NANOS.sub(r"\1", str(value["timestampValue"]).replace("Z", "+00:00"))
        return datetime.fromisoformat(text)
    if "mapValue" in value:
        return {k: firestore_value(v) for k, v in (value["mapValue"].get("fields") or {}).items()}
    if "arrayValue" in value:
        return [firestore_value(v) for v in value["arrayValue"].get("values") or []]
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"], validate=True)
    if "referenceValue" in value:
        return str(value["referenceValue"])
    if "geoPointValue" in value:
        return dict(value["geoPointValue"])
    raise EventError(f"unknown Firestore value {sorted(value)}")

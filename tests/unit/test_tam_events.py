"""Firestore trigger events: protobuf (Eventarc), base64 protobuf (the emulator) and JSON all decode alike."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.events.cloud.firestore import Value

from shared.tam.events import DocumentChange, EventError, decode_document_event, firestore_value
from tests.builders import SEGMENT_DOCUMENT, proto_event, proto_value

FIELDS = {
    "name": "서울 여성",
    "enabled": False,
    "size": 0,
    "blank": "",
    "ratio": 2.5,
    "nothing": None,
    "at": datetime(2026, 3, 10, 6, 0, 0, 123456, tzinfo=UTC),
    "rules": {"all": [{"segmentlet": "age", "op": "between", "value": [20, 30]}]},
}


def rest_value(value: Any) -> dict[str, Any]:
    """A Python value as a Firestore REST (JSON) Value."""
    return json.loads(Value.to_json(proto_value(value)))  # type: ignore[no-any-return]


def json_event(old: dict[str, Any] | None, new: dict[str, Any] | None, name: str = SEGMENT_DOCUMENT) -> dict[str, Any]:
    event: dict[str, Any] = {}
    if old is not None:
        event["oldValue"] = {"name": name, "fields": {k: rest_value(v) for k, v in old.items()}}
    if new is not None:
        event["value"] = {"name": name, "fields": {k: rest_value(v) for k, v in new.items()}}
    return event


def test_protobuf_base64_and_json_decode_to_the_same_change() -> None:
    old = {"name": "before"}
    raw = proto_event(old, FIELDS)
    expected = DocumentChange("segments", "s1", old, FIELDS)
    assert decode_document_event(raw) == expected
    assert decode_document_event(base64.b64encode(raw)) == expected  # the emulator's form
    assert decode_document_event(json_event(old, FIELDS)) == expected
    assert decode_document_event(json.dumps(json_event(old, FIELDS)).encode()) == expected


def test_create_and_delete() -> None:
    assert decode_document_event(proto_event(None, {"a": 1})) == DocumentChange("segments", "s1", None, {"a": 1})
    assert decode_document_event(proto_event({"a": 1}, None)) == DocumentChange("segments", "s1", {"a": 1}, None)


def test_nested_collections_and_subject_fallback() -> None:
    nested = "projects/p/databases/(default)/documents/sites/a/segments/s9"
    assert decode_document_event(proto_event(None, {}, nested)).collection == "sites/a/segments"
    assert decode_document_event({}, subject="documents/segments/s2") == DocumentChange("segments", "s2", None, None)


@pytest.mark.parametrize("data", [b"\x0a\xff\xff", b"not base64!", b"{not json", 42, b"[1]", {}])
def test_unreadable_events(data: Any) -> None:
    with pytest.raises(EventError):
        decode_document_event(data)


def test_firestore_values() -> None:
    assert firestore_value({"timestampValue": "2026-03-10T06:00:00.123456789Z"}) == datetime(
        2026, 3, 10, 6, 0, 0, 123456, tzinfo=UTC
    )
    assert firestore_value({"bytesValue": "eA=="}) == b"x"
    assert firestore_value({"mapValue": {}}) == {}
    assert firestore_value({"arrayValue": {}}) == []
    assert firestore_value({"referenceValue": "projects/p/x"}) == "projects/p/x"
    with pytest.raises(EventError):
        firestore_value({"weirdValue": 1})

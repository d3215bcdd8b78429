"""The fake Graph API refuses what Meta refuses, checked with plain HTTP (the adapter never sends
these: it refuses them first), so a test through the adapter can trust the fake's verdicts."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.fakes.meta_graph import MetaGraphFake, running_meta_graph

TOKEN = "fake-graph-token"


@pytest.fixture
def fake() -> Iterator[MetaGraphFake]:
    with running_meta_graph(access_token=TOKEN) as server:
        yield server


def call(
    fake: MetaGraphFake, method: str, path: str, fields: dict[str, Any] | None = None, token: str | None = TOKEN
) -> tuple[int, Any]:
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (fields or {}).items()}
    body = urllib.parse.urlencode(encoded).encode() if method != "GET" else None
    url = fake.url + path + ("?" + urllib.parse.urlencode(encoded) if method == "GET" and encoded else "")
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def audience(fake: MetaGraphFake) -> str:
    status, body = call(
        fake, "POST", "/v26.0/act_7/customaudiences", {"name": "a", "customer_file_source": "USER_PROVIDED_ONLY"}
    )
    assert status == 200
    return str(body["id"])


def error_of(answer: tuple[int, Any]) -> tuple[int, int | None, int | None, str]:
    status, body = answer
    error = body["error"]
    assert set(error) >= {"message", "type", "code", "fbtrace_id", "is_transient"}
    return status, error["code"], error.get("error_subcode"), error["message"]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_more_than_10000_rows_is_refused_whole(fake: MetaGraphFake) -> None:
    audience_id = audience(fake)
    payload = {"schema": ["EMAIL"], "data": [[sha(str(n))] for n in range(10_001)]}

    status, code, _, message = error_of(call(fake, "POST", f"/v26.0/{audience_id}/users", {"payload": payload}))

    assert (status, code) == (400, 100) and "10001" in message
    assert fake.members(audience_id, ["EMAIL"]) == set()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "The parameter payload is required"),
        ({"payload": "not json"}, "must be a JSON-encoded object"),
        ({"payload": {"schema": ["EMAIL", "EMAIL"], "data": [["", ""]]}}, "distinct keys"),
        ({"payload": {"schema": ["EMAIL", "PHONE"], "data": [[sha("a")]]}}, "Data is missing or does not match schema"),
        ({"payload": {"schema": ["EMAIL"], "data": []}}, "Data is missing or does not match schema"),
        ({"payload": {"schema": "EMAIL", "data": [sha("a")]}}, "Invalid schema 'EMAIL'"),
    ],
)
def test_malformed_payloads_are_refused_with_code_100(
    fake: MetaGraphFake, fields: dict[str, Any], expected: str
) -> None:
    audience_id = audience(fake)

    status, code, _, message = error_of(call(fake, "POST", f"/v26.0/{audience_id}/users", fields))

    assert (status, code) == (400, 100) and expected in message


def test_single_key_schemas_and_invalid_hashes(fake: MetaGraphFake) -> None:
    audience_id = audience(fake)
    payload = {"schema": "EMAIL_SHA256", "data": [sha("a"), sha("b").upper(), "short", ""]}

    status, body = call(fake, "POST", f"/v26.0/{audience_id}/users", {"payload": payload})

    assert status == 200
    assert (body["num_received"], body["num_invalid_entries"]) == (4, 3)
    assert body["invalid_entry_samples"] == {sha("b").upper(): "EMAIL", "short": "EMAIL", "(blank row)": "EMAIL"}
    assert fake.members(audience_id, ["EMAIL"]) == {(sha("a"),)}


def test_unhashed_keys_are_taken_as_written(fake: MetaGraphFake) -> None:
    audience_id = audience(fake)
    payload = {"schema": ["EXTERN_ID", "MADID"], "data": [["M-001", ""], ["", "6d92078a-8246-4ba4-ae5b-76104861e7dc"]]}

    status, body = call(fake, "DELETE", f"/v26.0/{audience_id}/users", {"payload": payload})

    assert (status, body["num_invalid_entries"]) == (200, 0)


def test_credentials_are_checked(fake: MetaGraphFake) -> None:
    assert error_of(call(fake, "GET", "/v26.0/1", token=None))[1] == 104
    assert error_of(call(fake, "GET", "/v26.0/1", token="someone-else"))[1] == 190
    with running_meta_graph(access_token=TOKEN, app_secret="s") as strict:
        status, code, _, message = error_of(call(strict, "GET", "/v26.0/1", {"appsecret_proof": "0" * 64}))
        assert (status, code, message) == (400, 100, "Invalid appsecret_proof provided in the API argument")


def test_unknown_objects_and_unversioned_paths(fake: MetaGraphFake) -> None:
    assert error_of(call(fake, "GET", "/v26.0/999"))[:3] == (400, 100, 33)
    assert "version prefix" in error_of(call(fake, "GET", "/999"))[3]


def test_replace_sessions_need_a_session_in_order(fake: MetaGraphFake) -> None:
    audience_id = audience(fake)
    path = f"/v26.0/{audience_id}/usersreplace"
    payload = {"schema": ["EMAIL"], "data": [[sha("a")]]}

    assert "session is required" in error_of(call(fake, "POST", path, {"payload": payload}))[3]
    late_start = {"session_id": 9, "batch_seq": 2, "last_batch_flag": False}
    assert "starts at batch_seq 1" in error_of(call(fake, "POST", path, {"payload": payload, "session": late_start}))[3]
    first = {"session_id": 9, "batch_seq": 1, "last_batch_flag": False}
    assert call(fake, "POST", path, {"payload": payload, "session": first})[0] == 200
    skipped = {"session_id": 9, "batch_seq": 3, "last_batch_flag": True}
    assert "out of order" in error_of(call(fake, "POST", path, {"payload": payload, "session": skipped}))[3]
    assert fake.audiences[audience_id].session is not None


def test_the_control_endpoint_summarises_audiences(fake: MetaGraphFake) -> None:
    audience_id = audience(fake)
    call(
        fake,
        "POST",
        f"/v26.0/{audience_id}/users",
        {"payload": {"schema": ["EMAIL"], "data": [[sha("a")], [sha("b")]]}},
    )

    with urllib.request.urlopen(fake.url + "/_fake/audiences", timeout=5) as response:
        summary = json.loads(response.read())

    assert summary == {"audiences": {audience_id: {"name": "a", "size": 2, "operation_status": 200}}, "requests": 2}

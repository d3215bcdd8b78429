"""GcsBlobs through the real google-cloud-storage client against a local recording fake of the
Cloud Storage JSON API: there is no Cloud Storage emulator here.

The fake implements what an upload really sends: a multipart POST (metadata JSON and media in one
multipart/related body) up to 8 MiB, above that a resumable session (POST for the session, then PUTs
with Content-Range, 308 until the last byte), plus the bucket GET the client makes in the
background. It checks the crc32c the client sends or verifies and answers with the API's JSON
shapes, so the client's own request building, checksums, retries and error classes are what is
tested.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from shared.adapters.gcs_blobs import CHUNK_SIZE, GcsBlobs
from shared.ports.blobs import BlobStore
from shared.ports.errors import TransientError

BUCKET = "cdp-test-exports"
UPLOAD = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
BUCKET_GET = re.compile(r"^/storage/v1/b/([^/]+)$")
CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")
MiB = 1024 * 1024


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    size: int


@dataclass
class Session:
    bucket: str
    metadata: dict[str, Any]
    data: bytearray = field(default_factory=bytearray)


@dataclass
class FakeStorage:
    """Buckets, objects and recordings, shared with the handler threads."""

    buckets: set[str] = field(default_factory=lambda: {BUCKET})
    denied: set[str] = field(default_factory=set)
    objects: dict[tuple[str, str], tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)  # statuses for the next upload requests
    fail_put: dict[int, int] = field(default_factory=dict)  # nth PUT of a session (from 1) -> status
    generation: int = 1000
    crc_checked: int = 0  # uploads whose metadata carried a crc32c, checked against the bytes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def uploads(self) -> list[Recorded]:
        """Upload requests only: the client's background bucket GET comes whenever it likes."""
        return [r for r in self.requests if r.path.startswith("/upload/")]

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, headers, len(body)))
            if match := BUCKET_GET.match(parts.path):
                if method == "GET" and match.group(1) in self.buckets:
                    return _json(200, {"kind": "storage#bucket", "name": match.group(1), "projectNumber": "42"})
                return _error(404, "The specified bucket does not exist.")
            match = UPLOAD.match(parts.path)
            if match is None:
                return _error(404, f"no route {method} {parts.path}")
            if self.fail:
                return _error(self.fail.pop(0), "We encountered an internal error. Please try again.")
            bucket = match.group(1)
            if bucket not in self.buckets:
                return _error(404, "The specified bucket does not exist.")
            if bucket in self.denied:
                message = (
                    "anonymous caller does not have storage.objects.create access to the Google Cloud Storage object."
                )
                return _error(403, message)
            kind = query.get("uploadType", [""])[0]
            if method == "POST" and kind == "multipart":
                return self._multipart(bucket, headers, body)
            if method == "POST" and kind == "resumable":
                return self._start(bucket, headers, body, url)
            if method == "PUT" and kind == "resumable" and "upload_id" in query:
                nth = sum(r.method == "PUT" for r in self.requests)
                if nth in self.fail_put:
                    return _error(self.fail_put.pop(nth), "Backend Error")
                return self._chunk(query["upload_id"][0], headers, body)
            return _error(400, f"unsupported {method} uploadType={kind}")

    def _multipart(self, bucket: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        boundary = re.search(r'boundary="?([^";]+)"?', headers.get("content-type", ""))
        if boundary is None:
            return _error(400, "multipart body without a boundary")
        delimiter = b"--" + boundary.group(1).encode()
        pieces = body.split(delimiter)
        if len(pieces) != 4 or pieces[0] != b"" or pieces[3].strip() != b"--":
            return _error(400, "a multipart upload has exactly two parts")
        (meta_head, meta), (media_head, media) = (_part(p) for p in pieces[1:3])
        if "application/json" not in meta_head.get("content-type", ""):
            return _error(400, "the first part must be the object's JSON metadata")
        metadata = json.loads(meta)
        if metadata.get("contentType", media_head.get("content-type")) != media_head.get("content-type"):
            return _error(400, "metadata and media disagree on the content type")
        return self._store(bucket, {"contentType": media_head.get("content-type"), **metadata}, media)

    def _start(self, bucket: str, headers: dict[str, str], body: bytes, url: str) -> tuple[int, dict[str, str], bytes]:
        metadata = json.loads(body) if body else {}
        if "x-upload-content-type" in headers:
            metadata.setdefault("contentType", headers["x-upload-content-type"])
        upload_id = f"session-{len(self.sessions) + 1}"
        self.sessions[upload_id] = Session(bucket, metadata)
        return 200, {"Location": f"{headers['host-url']}{url}&upload_id={upload_id}"}, b""

    def _chunk(self, upload_id: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        session = self.sessions.get(upload_id)
        if session is None:
            return _error(404, "No such upload session.")
        match = CONTENT_RANGE.match(headers.get("content-range", ""))
        if match is None:
            return _error(400, f"bad Content-Range {headers.get('content-range')!r}")
        first, last, total = match.groups()
        if first is not None:
            if int(first) != len(session.data) or int(last) - int(first) + 1 != len(body):
                return _error(400, f"chunk {first}-{last} does not follow byte {len(session.data)}")
            session.data += body
        if total != "*" and len(session.data) == int(total):
            del self.sessions[upload_id]
            return self._store(session.bucket, session.metadata, bytes(session.data))
        progress = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return 308, progress, b""

    def _store(self, bucket: str, metadata: dict[str, Any], data: bytes) -> tuple[int, dict[str, str], bytes]:
        crc = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
        if "crc32c" in metadata and metadata["crc32c"] != crc:
            return _error(400, "Provided CRC32C does not match the object's.")
        self.crc_checked += "crc32c" in metadata
        self.generation += 1
        resource = {
            "kind": "storage#object",
            "bucket": bucket,
            "name": metadata["name"],
            "generation": str(self.generation),
            "contentType": metadata.get("contentType", "application/octet-stream"),
            "size": str(len(data)),
            "crc32c": crc,
        }
        self.objects[(bucket, metadata["name"])] = (data, resource)
        return _json(200, resource)


def _part(raw: bytes) -> tuple[dict[str, str], bytes]:
    """One multipart part: its headers (lower-cased) and its bytes, CRLFs of the framing removed."""
    head, _, content = raw.removeprefix(b"\r\n").partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if line)
    return {k.lower(): v for k, v in headers.items()}, content.removesuffix(b"\r\n")


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"code": status, "message": message, "errors": [{"message": message}]}})


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the real endpoint; every answer has a length

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        headers["host-url"] = self.server.url
        status, extra, answer = self.server.fake.handle(self.command, self.path, headers, body)
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeStorage
    url: str


@pytest.fixture
def fake() -> Iterator[tuple[FakeStorage, str]]:
    server = _Server(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free port
    server.fake = FakeStorage()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.fake, server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def blobs(
    endpoint: str, bucket: str = BUCKET, prefix: str = "", timeout: float = 10.0, chunk_size: int = CHUNK_SIZE
) -> GcsBlobs:
    client = storage.Client(
        project="cdp-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )
    return GcsBlobs(bucket, prefix, client=client, timeout=timeout, chunk_size=chunk_size)


def test_a_small_file_is_one_multipart_upload_with_its_content_type(fake: tuple[FakeStorage, str]) -> None:
    server, endpoint = fake
    store: BlobStore = blobs(endpoint, prefix="/privacy/exports/")
    data = b'{"a": 1}\n{"a": 2}\n'

    location = store.write("x-kim/events.ndjson", data, "application/x-ndjson")

    assert location == f"gs://{BUCKET}/privacy/exports/x-kim/events.ndjson"
    (upload,) = server.uploads()
    assert (upload.method, upload.path, upload.query["uploadType"]) == (
        "POST",
        f"/upload/storage/v1/b/{BUCKET}/o",
        ["multipart"],
    )
    assert upload.headers["content-type"].startswith("multipart/related")
    stored, resource = server.objects[(BUCKET, "privacy/exports/x-kim/events.ndjson")]
    assert stored == data
    assert resource["contentType"] == "application/x-ndjson"
    assert server.crc_checked == 1  # the client sent the checksum with the bytes


def test_a_file_over_8_mib_goes_through_a_resumable_session(fake: tuple[FakeStorage, str]) -> None:
    server, endpoint = fake
    data = bytes(range(256)) * (9 * MiB // 256) + b"tail"

    location = blobs(endpoint).write("reports/2025-03.csv", data, "text/csv")

    assert location == f"gs://{BUCKET}/reports/2025-03.csv"
    start, put = server.uploads()
    assert (start.method, start.query["uploadType"], start.headers["x-upload-content-type"]) == (
        "POST",
        ["resumable"],
        "text/csv",
    )
    assert (put.method, put.query["upload_id"], put.size) == ("PUT", ["session-1"], len(data))
    assert put.headers["content-range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    stored, resource = server.objects[(BUCKET, "reports/2025-03.csv")]
    assert stored == data and resource["contentType"] == "text/csv" and server.sessions == {}


def test_writing_again_replaces_the_object(fake: tuple[FakeStorage, str]) -> None:
    server, endpoint = fake
    store = blobs(endpoint)
    store.write("outbox/run-1.json", b"first", "application/json")
    store.write("outbox/run-1.json", b"second", "application/json")
    assert server.objects[(BUCKET, "outbox/run-1.json")][0] == b"second"
    assert len(server.uploads()) == 2


def test_a_503_is_retried_in_place_and_an_outage_becomes_transient(fake: tuple[FakeStorage, str]) -> None:
    server, endpoint = fake
    store = blobs(endpoint, timeout=3.0)

    server.fail = [503]  # one blip: the same upload again, stored once
    assert store.write("a.json", b"{}", "application/json") == f"gs://{BUCKET}/a.json"
    assert [r.method for r in server.uploads()] == ["POST", "POST"]
    assert server.objects[(BUCKET, "a.json")][0] == b"{}"

    server.fail = [503] * 1000  # a real outage: bounded by the adapter's timeout
    started = time.monotonic()
    with pytest.raises(TransientError, match=rf"gs://{BUCKET}/b\.json: gave up after retries: .*internal error"):
        store.write("b.json", b"{}", "application/json")
    assert time.monotonic() - started < 3.0 + 2.0
    assert (BUCKET, "b.json") not in server.objects
    assert len(server.uploads()) >= 4  # the blip's two, then at least a try and a retry (1 s, 2 s apart)


def test_a_large_file_streams_in_chunks_and_a_lost_chunk_is_sent_again(
    fake: tuple[FakeStorage, str], tmp_path: Path
) -> None:
    server, endpoint = fake
    source = tmp_path / "audience.csv"
    data = b"".join(b"%064d\n" % i for i in range(150_000))  # 9.75 MB
    source.write_bytes(data)
    server.fail_put = {2: 503}  # the second chunk's first try
    store = blobs(endpoint, prefix="publish", timeout=5.0, chunk_size=4 * MiB)

    location = store.write_file("exports/vip.csv", source, "text/csv")

    assert location == f"gs://{BUCKET}/publish/exports/vip.csv"
    start, *puts = server.uploads()
    assert (start.method, start.query["uploadType"], start.headers["x-upload-content-type"]) == (
        "POST",
        ["resumable"],
        "text/csv",
    )
    assert [p.size for p in puts if p.method == "PUT"][:2] == [4 * MiB, 4 * MiB]  # never the whole file
    assert max(p.size for p in puts) == 4 * MiB and len(puts) >= 4  # 3 chunks, one of them twice
    assert server.objects[(BUCKET, "publish/exports/vip.csv")][0] == data
    assert server.sessions == {}


def test_a_small_file_from_disk_is_one_multipart_upload(fake: tuple[FakeStorage, str], tmp_path: Path) -> None:
    server, endpoint = fake
    source = tmp_path / "bodies.ndjson"
    source.write_bytes(b'{"schema": ["EMAIL_SHA256"]}\n')
    assert blobs(endpoint).write_file("outbox/run-1.ndjson", source, "application/x-ndjson") == (
        f"gs://{BUCKET}/outbox/run-1.ndjson"
    )
    (upload,) = server.uploads()
    assert upload.query["uploadType"] == ["multipart"]
    assert server.objects[(BUCKET, "outbox/run-1.ndjson")][0] == source.read_bytes()


@pytest.mark.parametrize("size", [2, 9 * MiB], ids=["multipart", "resumable"])
@pytest.mark.parametrize(
    ("bucket", "error", "words"),
    [
        ("no-such-bucket", FileNotFoundError, "does not exist"),
        ("someone-elses", PermissionError, "may not write a.json.*storage.objects.create access"),
    ],
)
def test_a_missing_or_closed_bucket_is_a_clear_error_naming_it(
    fake: tuple[FakeStorage, str], bucket: str, error: type[Exception], words: str, size: int
) -> None:
    server, endpoint = fake
    server.buckets.add("someone-elses")
    server.denied.add("someone-elses")
    with pytest.raises(error, match=rf"bucket '{bucket}'.*{words}"):
        blobs(endpoint, bucket=bucket).write("a.json", b"x" * size, "application/json")
    assert len(server.uploads()) == 1  # not retried: waiting does not create a bucket
    assert server.objects == {}


@pytest.mark.parametrize("name", ["../escape.json", "/abs.json", "a//b.json", "a/./b", "", "dir/", "a\nb"])
def test_bad_names_are_refused_before_any_request(fake: tuple[FakeStorage, str], name: str) -> None:
    server, endpoint = fake
    with pytest.raises(ValueError, match="blob name"):
        blobs(endpoint).write(name, b"x", "text/plain")
    assert server.uploads() == []


def test_a_name_over_1024_bytes_and_a_bad_prefix_or_bucket_are_refused(fake: tuple[FakeStorage, str]) -> None:
    _, endpoint = fake
    with pytest.raises(ValueError, match="longer than Cloud Storage's 1024 bytes"):
        blobs(endpoint, prefix="p").write("한" * 341 + ".json", b"x", "text/plain")
    with pytest.raises(ValueError, match="blob name"):
        blobs(endpoint, prefix="exports/../other")
    with pytest.raises(ValueError, match="bare bucket name"):
        blobs(endpoint, bucket="gs://cdp-test-exports")


def test_spaces_and_non_ascii_names_are_stored_as_given(fake: tuple[FakeStorage, str]) -> None:
    server, endpoint = fake
    location = blobs(endpoint).write("exports/고객 1/manifest.json", b"{}", "application/json")
    assert location == f"gs://{BUCKET}/exports/고객 1/manifest.json"
    assert list(server.objects) == [(BUCKET, "exports/고객 1/manifest.json")]

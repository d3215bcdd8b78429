"""SecretManagerSecrets through the real google-cloud-secret-manager client (REST transport) against
a local fake of the v1 `versions/latest:access` call: there is no Secret Manager emulator.

The fake answers with the API's JSON shapes (payload.data in base64; errors as {"error": {...}}),
so the client's request building and error mapping are what is tested.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from shared.adapters.local_secrets import LocalSecrets
from shared.adapters.secret_manager import SecretManagerSecrets
from shared.ports.errors import TransientError
from shared.ports.secrets import SecretMissing

PROJECT = "cdp-test"
ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/latest(:access)?$")
SECRETS = {"facebook-access-token": "EAAtoken-value", "empty": "", "disabled": "EAAold"}
DISABLED = {"disabled"}  # its latest version is disabled
DENIED = {"someone-elses"}


class _Handler(BaseHTTPRequestHandler):
    paths: list[str]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.paths.append(self.path)
        match = ACCESS.match(self.path.split("?")[0])
        if match is None or match.group(1) != PROJECT:
            return self._answer(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
        name = match.group(2)
        if name == "outage":
            return self._answer(503, {"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}})
        if name in DENIED:
            message = f"Permission 'secretmanager.versions.access' denied for resource '{name}'"
            return self._answer(403, {"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED"}})
        if name not in SECRETS:
            message = f"Secret [projects/1/secrets/{name}] not found or has no versions."
            return self._answer(404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}})
        version = f"projects/{PROJECT}/secrets/{name}/versions/3"
        if match.group(3) is None:  # versions.get: the version's metadata, never its payload
            return self._answer(200, {"name": version, "state": "DISABLED" if name in DISABLED else "ENABLED"})
        data = base64.b64encode(SECRETS[name].encode()).decode()
        self._answer(200, {"name": version, "payload": {"data": data}})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[SecretManagerSecrets, list[str]]]:
    paths: list[str] = []
    handler = type("Handler", (_Handler,), {"paths": paths})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = secretmanager.SecretManagerServiceClient(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options={"api_endpoint": f"http://127.0.0.1:{server.server_port}"},
        )
        yield SecretManagerSecrets(PROJECT, client=client, timeout=1.5), paths
    finally:
        server.shutdown()
        server.server_close()


def test_reads_the_latest_version(fake: tuple[SecretManagerSecrets, list[str]]) -> None:
    secrets, paths = fake
    assert secrets.get("facebook-access-token") == "EAAtoken-value"
    latest = f"/v1/projects/{PROJECT}/secrets/facebook-access-token/versions/latest:access"
    assert [p.split("?")[0] for p in paths] == [latest]


def test_exists_reads_the_latest_versions_metadata_never_its_value(
    fake: tuple[SecretManagerSecrets, list[str]],
) -> None:
    secrets, paths = fake
    found = {
        name: secrets.exists(name) for name in ("facebook-access-token", "disabled", "no-such-secret", "someone-elses")
    }
    assert found == {"facebook-access-token": True, "disabled": False, "no-such-secret": False, "someone-elses": False}
    assert paths and not [p for p in paths if ":access" in p]
    assert secrets.exists("empty") is True  # enabled; its emptiness shows when a run reads it
    with pytest.raises(TransientError, match="try later"):
        secrets.exists("outage")


@pytest.mark.parametrize(
    ("name", "words"),
    [("no-such-secret", "not found or has no versions"), ("someone-elses", "denied"), ("empty", "is empty")],
)
def test_missing_denied_or_empty_is_secret_missing(
    fake: tuple[SecretManagerSecrets, list[str]], name: str, words: str
) -> None:
    secrets, _ = fake
    with pytest.raises(SecretMissing, match=words) as caught:
        secrets.get(name)
    assert name in str(caught.value)


def test_an_outage_is_transient(fake: tuple[SecretManagerSecrets, list[str]]) -> None:
    secrets, _ = fake
    with pytest.raises(TransientError, match="try later"):
        secrets.get("outage")


def test_local_secrets_env_then_folder(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "from-file").write_text("file-value\n", encoding="utf-8")
    secrets = LocalSecrets(folder, environ={"CDP_SECRET_FROM_ENV": "env-value", "CDP_SECRET_FROM_FILE": ""})
    assert secrets.get("from-env") == "env-value"
    assert secrets.get("from-file") == "file-value"
    assert secrets.get("projects/p/secrets/from-env/versions/3") == "env-value"
    assert secrets.exists("nowhere") is False
    with pytest.raises(SecretMissing, match="CDP_SECRET_NOWHERE"):
        secrets.get("nowhere")
    with pytest.raises(SecretMissing, match="not a secret"):
        secrets.get("../etc/passwd")

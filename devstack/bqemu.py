"""The BigQuery emulator (bqemulator, DuckDB inside) for testing the BigQuery adapter locally.

It lives in its own virtualenv, .venv-emu (scripts/install-bqemu): it downgrades protobuf, pins an
older sqlglot and brings google-cloud-bigquery-storage, none of which may leak into the app's venv.
It serves REST (what google-cloud-bigquery talks) and gRPC (the Storage Read API) on free ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from devstack.processes import Server, StackError, free_port, start_server, wait_http

REPO_ROOT = Path(__file__).resolve().parents[1]
EMU_VENV = REPO_ROOT / ".venv-emu"
INSTALL_HINT = "run scripts/install-bqemu"


@dataclass
class BqEmulator(Server):
    """The emulator process; `port` is REST, `grpc_port` the Storage Read API."""

    grpc_port: int = 0


def start_bqemulator(log_dir: Path, project: str = "cdp-local") -> BqEmulator:
    """Start an in-memory bqemulator on free ports and wait until /healthz answers."""
    executable = EMU_VENV / "bin" / "bqemulator"
    if not executable.is_file():
        raise StackError(f"bqemulator is not installed in {EMU_VENV}; {INSTALL_HINT}")
    rest_port = free_port()
    grpc_port = free_port()
    while grpc_port == rest_port:
        grpc_port = free_port()
    argv = [
        str(executable), "start", "--ephemeral", "--project", project,
        "--rest-port", str(rest_port), "--grpc-port", str(grpc_port), "--log-level", "warning",
    ]  # fmt: skip
    started = start_server("bqemulator", argv, rest_port, log_dir)
    server = BqEmulator(started.name, started.process, rest_port, started.log_path, {}, grpc_port)
    try:
        wait_http(server, "/healthz", timeout=60)
    except StackError as exc:
        if "extension" in server.log_tail():
            # DuckDB's spatial extension is mandatory and cannot be downloaded offline.
            hint = f"DuckDB extensions missing in $HOME/.duckdb; {INSTALL_HINT}"
            raise StackError(f"{exc}\n{hint}") from exc
        raise
    return server


def bigquery_client(server: Server, project: str = "cdp-local") -> bigquery.Client:
    """A real BigQuery client for the emulator: anonymous credentials, http:// endpoint."""
    return bigquery.Client(
        project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=server.url),
    )

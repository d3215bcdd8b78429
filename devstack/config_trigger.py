"""validate_config fed by Firestore writes locally, as Eventarc feeds it on GCP.

The Firestore emulator delivers document events itself when it is started with
`--functions_emulator=<host:port>`: every trigger registered at its `eventarcTrigger` endpoint sends
`google.cloud.firestore.document.v1.written` CloudEvents (the change as base64 protobuf) to that
host. This runs validate_config under functions-framework (devstack/serve.py, as the pipeline
serves its functions), a Firestore emulator of its own pointed at it (the flag is fixed at start),
and registers one trigger per document pattern infra/functions.tf gives validate_config, so a
segment, destination or publication written in the local stack gets its `status` as it would in
production, and our own status write fires the trigger once more, as there.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.emulators import start_firestore
from devstack.pipeline import serve_function
from devstack.processes import Server, free_port

TARGET = "validate_config"
# The document patterns of validate_config's triggers: `document` and `more_documents` in
# infra/functions.tf (tests/infra holds both lists equal).
DOCUMENTS = (
    "segments/{id}",
    "destinations/{id}",
    "publications/{id}",
    "campaigns/{id}",
    "message_templates/{id}",
    "messaging/{id}",
)
EVENT_TYPE = "google.cloud.firestore.document.v1.written"


@dataclass
class ConfigTrigger:
    firestore: Server  # the emulator that fires the triggers: write here
    function: Server  # validate_config; its log has one "config checked" line per event
    project: str

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs to write to this Firestore."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore.host_port,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "CDP_PROJECT": self.project,
        }

    def stop(self) -> None:
        self.firestore.stop()
        self.function.stop()


def register_trigger(firestore: Server, project: str, document: str) -> None:
    """One Eventarc-style document trigger on the emulator (its id names the pattern's collection)."""
    trigger = {
        "eventType": EVENT_TYPE,
        "database": "(default)",
        "namespace": "(default)",
        "document": {"value": document, "matchType": "PATH_PATTERN"},
    }
    trigger_id = f"{TARGET}-{document.split('/')[0]}"
    request = urllib.request.Request(
        f"{firestore.url}/emulator/v1/projects/{project}/eventarcTrigger?eventarcTriggerId={trigger_id}",
        data=json.dumps(trigger).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=60).close()  # the emulator's first answer can be slow


def start_config_trigger(log_dir: Path, project: str, env: Mapping[str, str]) -> ConfigTrigger:
    """validate_config and a triggering Firestore emulator on free ports. `env` is the function's
    (CDP_WAREHOUSE, CDP_DUCKDB_PATH, CDP_SECRETS_DIR, ...); the Firestore it reads and writes is
    this emulator."""
    firestore_port = free_port()
    function_env = {
        **env,
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{firestore_port}",
        "GOOGLE_CLOUD_PROJECT": project,
        "CDP_PROJECT": project,
        "PYTHONUNBUFFERED": "1",
    }
    function = serve_function(TARGET, log_dir, function_env)
    try:
        firestore = start_firestore(log_dir, firestore_port, functions_emulator=function.host_port)
    except BaseException:
        function.stop()
        raise
    trigger = ConfigTrigger(firestore, function, project)
    try:
        for document in DOCUMENTS:
            register_trigger(firestore, project, document)
    except BaseException:
        trigger.stop()
        raise
    return trigger


@contextmanager
def running_config_trigger(log_dir: Path, project: str, env: Mapping[str, str]) -> Iterator[ConfigTrigger]:
    """The trigger for the duration of a with-block, stopped on exit, on errors and on Ctrl-C."""
    trigger = start_config_trigger(log_dir, project, env)
    try:
        yield trigger
    finally:
        trigger.stop()


def outcomes(function: Server, message: str = "publishing config checked") -> list[str]:
    """The outcome of each event validate_config logged with `message`, in order."""
    found = []
    for line in function.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{message}"' in line:
            found.append(json.loads(line)["outcome"])
    return found


def main() -> None:
    """Run the trigger until Ctrl-C with this environment's CDP_* settings (warehouse, secrets
    folder) and say where to write: any Firestore client given FIRESTORE_EMULATOR_HOST."""
    import argparse
    import os
    import signal
    import sys
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="cdp-local")
    parser.add_argument("--logs", type=Path, default=Path(".local/logs/config-trigger"))
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k.startswith("CDP_")}
    # Stop both servers on a plain kill too, and on Ctrl-C even where the shell started us ignoring it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with running_config_trigger(args.logs, args.project, env) as trigger:
        print(f"validate_config is watching {', '.join(DOCUMENTS)}; write with")
        print("  " + " ".join(f"{k}={v}" for k, v in trigger.env.items()))
        print(f"its log: {trigger.function.log_path}; Ctrl-C stops both")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

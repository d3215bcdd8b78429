"""The whole SMS round trip over real HTTP: TwilioSms sends through the Twilio fake, the fake POSTs
signed status callbacks to the `twilio_status` function served by functions-framework as its own
process (devstack/serve.py), and a forged callback is turned away.

The function's log (JSON lines) is what it recorded until the delivery ledger is wired.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.fakes.twilio_api import TwilioApiFake, post_form, running_twilio_api, signature
from devstack.processes import Server, free_port, start_server, wait_http
from shared.adapters.twilio_sms import TwilioSms
from shared.ports.channels import Message
from tests.fakes import FakeSecrets

ACCOUNT = "AC" + "5d" * 16
TOKEN = "round-trip-token-1"
SERVICE = "MG" + "c4" * 16
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    folder = tmp_path_factory.mktemp("twilio-status")
    env = {
        "CDP_PROJECT": "cdp-test",
        "CDP_DUCKDB_PATH": str(folder / "warehouse.duckdb"),
        "CDP_TWILIO_STATUS_URL": f"http://127.0.0.1:{port}/",
        "CDP_TWILIO_AUTH_TOKEN": TOKEN,
    }
    argv = [sys.executable, "-m", "devstack.serve", "--target=twilio_status", "--source=main.py"]
    server = start_server("twilio_status", [*argv, "--host=127.0.0.1", f"--port={port}"], port, folder, env, REPO)
    try:
        wait_http(server, "/", timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake(webhook: Server) -> Iterator[TwilioApiFake]:
    with running_twilio_api(ACCOUNT, TOKEN, SERVICE, inbound_url=webhook.url + "/") as server:
        yield server


def logged(server: Server, message: str) -> list[dict[str, Any]]:
    lines = server.log_path.read_text(errors="replace").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in entries if e.get("message") == message]


def test_signed_callbacks_over_http_are_recorded_and_a_forged_one_is_refused(
    webhook: Server, fake: TwilioApiFake
) -> None:
    sms = TwilioSms(
        ACCOUNT, SERVICE, webhook.url + "/", FakeSecrets(values={"twilio-auth-token": TOKEN}), api_url=fake.url
    )
    sid = sms.send(Message("d-rt-1", "sms", "+821012345678", "회원 혜택 안내")).provider_id
    assert sid is not None

    sent = fake.set_status(sid, "sent")
    failed = fake.set_status(sid, "failed", error_code=21610)
    stop = fake.inbound("+821099990000", "STOP")
    form = {"MessageSid": sid, "MessageStatus": "delivered", "To": "+821012345678"}
    forged_url = webhook.url + "/?" + urlencode({"d": "d-rt-1"})
    forged = post_form(
        forged_url, urlencode(form).encode(), {"X-Twilio-Signature": signature("guess", forged_url, form)}
    )

    assert (
        sent is not None and failed is not None and (sent.answered, failed.answered, stop.answered) == (200, 200, 200)
    )
    assert forged == 403
    events = [(e["delivery_id"], e["kind"], e["code"]) for e in logged(webhook, "delivery event")]
    assert events[-2:] == [("d-rt-1", "sent", None), ("d-rt-1", "failed", "21610")]
    signals = [(s["source"], s["delivery_id"]) for s in logged(webhook, "opt-out signal")]
    assert signals[-2:] == [("provider_opt_out", "d-rt-1"), ("sms_stop", None)]
    assert "+821099990000" not in webhook.log_path.read_text()
    assert logged(webhook, "twilio webhook refused")[-1]["reason"] == "bad signature"

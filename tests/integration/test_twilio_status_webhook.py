"""The whole SMS round trip over real HTTP: TwilioSms sends through the Twilio fake, the fake POSTs
signed status callbacks to the `twilio_status` function served by functions-framework as its own
process (devstack/serve.py), and a forged callback is turned away.

What it recorded is read back from its DuckDB warehouse (the delivery ledger and the consent
ledger), where one planned SMS delivery was put before it started.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.fakes.twilio_api import TwilioApiFake, post_form, running_twilio_api, signature
from devstack.processes import Server, free_port, start_server, wait_http
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.twilio_sms import TwilioSms
from shared.messaging.ledger import insert_deliveries
from shared.ports.channels import Message
from shared.schema import table_specs
from shared.services.send_messages import DELIVERY_TYPES
from tests.fakes import FakeSecrets

ACCOUNT = "AC" + "5d" * 16
DELIVERY = "7e" * 16
NUMBER = "+821012345678"
TOKEN = "round-trip-token-1"
SERVICE = "MG" + "c4" * 16
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    folder = tmp_path_factory.mktemp("twilio-status")
    path = folder / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(str(path))
    warehouse.ensure_tables(list(table_specs().values()))
    planned = datetime.now(UTC) - timedelta(minutes=5)
    row = {name: None for name in DELIVERY_TYPES} | {
        "delivery_id": DELIVERY, "campaign_id": "c-rt", "run_id": "r-rt", "site_id": "shop", "customer_id": "c_rt",
        "channel": "sms", "address": NUMBER, "kind": "advertising", "outcome": "send", "reason": "eligible",
        "batch": 1, "dry_run": False, "planned_at": planned,
    }  # fmt: skip
    insert_deliveries(warehouse, [row])
    warehouse.close()
    env = {
        "CDP_PROJECT": "cdp-test",
        "CDP_DUCKDB_PATH": str(path),
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
    sid = sms.send(Message(DELIVERY, "sms", NUMBER, "회원 혜택 안내")).provider_id
    assert sid is not None

    sent = fake.set_status(sid, "sent")
    failed = fake.set_status(sid, "failed", error_code=21610)
    stop = fake.inbound("+821099990000", "STOP")  # a number no site messaged: counted, not guessed at
    form = {"MessageSid": sid, "MessageStatus": "delivered", "To": NUMBER}
    forged_url = webhook.url + "/?" + urlencode({"d": DELIVERY})
    forged = post_form(
        forged_url, urlencode(form).encode(), {"X-Twilio-Signature": signature("guess", forged_url, form)}
    )

    assert (
        sent is not None and failed is not None and (sent.answered, failed.answered, stop.answered) == (200, 200, 200)
    )
    assert forged == 403
    warehouse = DuckDBWarehouse(webhook.env["CDP_DUCKDB_PATH"])  # the server hands the file over when idle
    try:
        events = warehouse.query("select distinct event, code from audiences.delivery_events order by event")
        opt_outs = warehouse.query("select site_id, address, subscribed, source from raw.subscription")
    finally:
        warehouse.close()
    assert [(e["event"], e["code"]) for e in events] == [
        ("failed", "21610"),
        ("sent", None),
        ("unsubscribed", "twilio 21610"),
    ]  # no "delivered": the forged callback was not read
    assert [(o["site_id"], o["address"], o["subscribed"], o["source"]) for o in opt_outs] == [
        ("shop", NUMBER, False, "provider_opt_out")
    ]
    recorded = logged(webhook, "twilio report recorded")
    assert recorded[-1]["unmatched"] == 1  # the STOP from a number no site messaged
    assert "+821099990000" not in webhook.log_path.read_text()
    assert logged(webhook, "twilio webhook refused")[-1]["reason"] == "bad signature"

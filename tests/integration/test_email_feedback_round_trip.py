"""A complaint's whole round trip: a campaign e-mail planned in a DuckDB warehouse and delivered by
SmtpEmail to the SMTP sink (aiosmtpd), the message the sink received wrapped in an ARF report as a
mailbox provider's feedback loop sends it (recipient redacted), and the report POSTed over real HTTP
to `email_feedback` served by functions-framework as its own process (devstack/serve.py), as a
relay's inbound webhook would; a POST with a wrong token first, turned away.

What the function recorded is read back from its warehouse file: the delivery's `complained` and
`unsubscribed` events, the complaint opt-out in raw.subscription, and the consent gate refusing the
address for marketing e-mail on that site from then on.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from devstack.fakes.smtp_sink import running_smtp_sink
from devstack.fakes.twilio_api import post_form
from devstack.processes import Server, free_port, start_server, wait_http
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.smtp_email import SmtpEmail
from shared.consent.vocabulary import Reason
from shared.schema import table_specs
from shared.services import consent
from shared.services.deliver import deliver_batch
from tests.builders import SALT
from tests.feedback_reports import arf
from tests.messaging_world import CAMPAIGN, NOON, SITE, World

REPO = Path(__file__).resolve().parents[2]
TOKEN = "round-trip-feedback-token"
MINJI = "minji@example.com"


def logged(server: Server, message: str) -> list[dict[str, Any]]:
    lines = server.log_path.read_text(errors="replace").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in entries if e.get("message") == message]


def test_a_complaint_about_a_sent_e_mail_unsubscribes_its_address(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(str(path))
    warehouse.ensure_tables(list(table_specs().values()))
    world = World(tmp_path, warehouse=warehouse)
    world.edit("campaigns", CAMPAIGN, channels=["email"])
    minji = world.person("minji", email=MINJI, phone=None)
    world.plan()
    with running_smtp_sink() as sink:
        email = SmtpEmail(sink.hostname, sink.port, "새봄마켓 <news@shop.example>", security="none")
        for data in world.batches():
            deliver_batch(world.ports(channels={"email": email}), data, NOON)
        email.close()
        [received] = sink.messages
    delivery = str(world.delivery(minji, "email")["delivery_id"])
    sent = message_from_bytes(received.data, policy=policy.default)
    assert (received.rcpt_tos, sent["Message-ID"]) == ((MINJI,), f"<cdp.{delivery}@shop.example>")
    report = arf(received.data, redact=True)  # as Yahoo or Microsoft send it: no recipient
    assert MINJI.encode() not in report
    warehouse.close()

    port = free_port()
    env = {"CDP_PROJECT": "cdp-test", "CDP_DUCKDB_PATH": str(path), "CDP_EMAIL_FEEDBACK_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "devstack.serve", "--target=email_feedback", "--source=main.py"]
    server = start_server("email_feedback", [*argv, "--host=127.0.0.1", f"--port={port}"], port, tmp_path, env, REPO)
    try:
        wait_http(server, "/", timeout=60)
        before = datetime.now(UTC)
        raw = {"Content-Type": "message/rfc822"}
        forged = post_form(server.url + "/", report, {**raw, "Authorization": "Bearer guess"})
        credentials = base64.b64encode(f"fbl:{TOKEN}".encode()).decode()
        answer = post_form(server.url + "/", report, {**raw, "Authorization": f"Basic {credentials}"})
        again = post_form(server.url + "/", report, {**raw, "Authorization": f"Bearer {TOKEN}"})  # a relay's retry
        after = datetime.now(UTC) + timedelta(minutes=1)
        assert (forged, answer, again) == (403, 200, 200)
        [first, second] = logged(server, "email feedback recorded")
        assert (first["recorded"], second["duplicate"]) == (True, True)
        assert logged(server, "email feedback refused")[-1]["reason"] == "bad token"
        assert MINJI not in server.log_path.read_text()
    finally:
        server.stop()

    warehouse = DuckDBWarehouse(str(path))
    try:
        events = warehouse.query(
            "select distinct event, code, provider_id from audiences.delivery_events where delivery_id = @d order by 1",
            {"d": delivery},
        )
        opt_outs = warehouse.query(
            "select site_id, channel, address, subscribed, reason, request_id, effective_at"
            " from raw.subscription where source = 'complaint'"
        )
        [gate] = consent.eligible_audience(
            warehouse, SITE, "marketing", "email", after, SALT, customer_ids=[minji.customer_id]
        )
    finally:
        warehouse.close()
    assert [(e["event"], e["code"]) for e in events] == [
        ("complained", "abuse"),
        ("sent", "250"),
        ("unsubscribed", "arf abuse"),
    ]
    assert events[0]["provider_id"] == sent["Message-ID"]
    [opt_out] = opt_outs
    assert tuple(opt_out.values())[:6] == (SITE, "email", MINJI, False, "arf abuse", delivery)
    assert before <= opt_out["effective_at"] < after
    assert gate.reason == Reason.UNSUBSCRIBED

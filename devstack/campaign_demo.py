"""The demo's campaigns stage: the example campaigns sent through the real path to local fakes.

examples/campaigns/ goes to the Firestore emulator as a marketer would write it: the seed's win-back
SMS to dormant members (advertising, falling back to e-mail) and the VIP grade notice by e-mail
(informational), under the example `messaging/policy`. The send_messages service plans each run in
the warehouse and publishes its batches to the Pub/Sub emulator's `sends` topic; a push
subscription delivers them to the `deliver` function (its own process, built by the composition
root from the same settings a deployment reads), which sends through the real smtplib to an SMTP
sink and through the real twilio client to the fake Twilio API. The fake reports `sent` and
`delivered` to the `twilio_status` function (another process), signed as Twilio signs; one
recipient then taps the tracked link in their SMS (collect's click route: a 302 to the shop with UTM
parameters, the click recorded through the loader) and one answers STOP. The funnel printed is
read back from the ledger, beside what the fakes received, so a message sent twice or lost would
show.

The demo can run at any hour: the example's quiet hours and send windows (the shop's own choices)
are lifted for it, and said so; the law's night rule is not (an advertising message between 21:00
and 08:00 in Seoul without night consent is held until 08:00, and shows in the funnel as held).
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.fakes.smtp_sink import SmtpSink, running_smtp_sink
from devstack.fakes.twilio_api import TwilioApiFake, running_twilio_api
from devstack.pipeline import REPO, LocalPipeline, delete_subscription, push_subscription, serve_function
from devstack.processes import free_port
from shared import bootstrap
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import Settings
from shared.messaging import files, ledger
from shared.messaging.campaigns import CAMPAIGNS, POLICY
from shared.ports import DocumentStore
from shared.services.consent import eligible_audience
from shared.services.send_job import SendJob, run_send_job

EXAMPLES = REPO / "examples" / "campaigns"
ACCOUNT_SID = "AC" + "d" * 32
SERVICE_SID = "MG" + "d" * 32
AUTH_TOKEN = "demo-twilio-auth-token"
SENDER = "데모상점 <news@demo-shop.example>"
RUN = "demo-campaigns"
SETTLE_TIMEOUT = 180.0


@dataclass
class Outcome:
    campaign_id: str
    name: str
    run_id: str
    funnel: ledger.Funnel


@dataclass
class Stage:
    lines: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    ok: bool = True


def configure(documents: DocumentStore) -> list[str]:
    """The examples into Firestore (policy, templates, then campaigns), quiet hours and send windows
    lifted (module docstring); the campaign ids."""
    campaign_ids = []
    for path in files.expand([EXAMPLES]):
        found = files.read(path)
        doc = dict(found.doc)
        doc.pop("id", None)
        if found.collection == POLICY[0]:
            doc.pop("quiet_hours", None)
        elif found.collection == CAMPAIGNS:
            doc.pop("send_window", None)
            doc.pop("schedule", None)  # run here once, not every Tuesday
            doc["enabled"], doc["dry_run"] = True, False
            campaign_ids.append(found.doc_id)
        documents.set(found.collection, found.doc_id, doc)
    return campaign_ids


def channel_env(
    pipeline: LocalPipeline, out: Path, smtp: SmtpSink, twilio: TwilioApiFake, status_url: str
) -> dict[str, str]:
    """The settings a deployment's `messaging` variable and secrets give, pointed at the fakes."""
    return {
        **pipeline.env,
        "CDP_EMAIL_FROM": SENDER,
        "CDP_SMTP_HOST": smtp.hostname,
        "CDP_SMTP_PORT": str(smtp.port),
        "CDP_SMTP_SECURITY": "none",
        "CDP_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "CDP_TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "CDP_TWILIO_API_URL": twilio.url,
        "CDP_TWILIO_STATUS_URL": status_url,
        "CDP_TWILIO_AUTH_TOKEN": AUTH_TOKEN,  # the webhook's check
        "CDP_SECRET_TWILIO_AUTH_TOKEN": AUTH_TOKEN,  # the sender's, through the local SecretStore
        "CDP_PUBLISH_OUTBOX_DIR": str(out / "outbox"),
        "CDP_CLICK_URL": pipeline.collect_url,  # link() becomes collect's signed click route
    }


@contextmanager
def _fakes(pipeline: LocalPipeline, out: Path) -> Iterator[tuple[dict[str, str], SmtpSink, TwilioApiFake]]:
    """The SMTP sink, the fake Twilio API, twilio_status and deliver, and the sends subscription."""
    status_port = free_port()
    status_url = f"http://127.0.0.1:{status_port}/"
    with ExitStack() as stack:
        smtp = stack.enter_context(running_smtp_sink(maildir=out / "mail"))
        twilio = stack.enter_context(
            running_twilio_api(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, auto_deliver=True, inbound_url=status_url)
        )
        env = channel_env(pipeline, out, smtp, twilio, status_url)
        webhook = serve_function("twilio_status", out / "logs", env, port=status_port)
        stack.callback(webhook.stop)
        deliver = serve_function("deliver", out / "logs", env)
        stack.callback(deliver.stop)
        push_subscription(pipeline.emulators.project, ledger.TOPIC, "sends-deliver", deliver.url + "/")
        stack.callback(delete_subscription, pipeline.emulators.project, "sends-deliver")
        yield env, smtp, twilio


def run(pipeline: LocalPipeline, documents: DocumentStore, out: Path, now: datetime, site_id: str, salt: str) -> Stage:
    """Plan and send both example campaigns; the stage's report lines and whether everything agrees."""
    stage = Stage()
    campaign_ids = configure(documents)
    with _fakes(pipeline, out) as (env, smtp, twilio):
        settings = Settings.from_env(env)
        warehouse = DuckDBWarehouse(pipeline.duckdb_path)
        try:
            ports = bootstrap.build_send_ports(settings, warehouse, documents, bootstrap.build_bus(settings))
            report = run_send_job(ports, SendJob(now, tuple(campaign_ids)), RUN, now)
        finally:
            warehouse.close()  # deliver and twilio_status take the file in turn now
        planned = {c: r for c, r in report.runs.items() if r.plan is not None}
        for campaign_id, result in sorted(report.runs.items()):
            if result.plan is None:
                stage.ok = False
                stage.lines.append(f"  {campaign_id}: STOPPED: {result.error}")
        batches = sum(r.plan.batches for r in planned.values() if r.plan is not None)
        settled = _settle(documents, twilio, planned, batches)
        click = _click(pipeline, twilio)
        stop_number = _reply_stop(twilio)
        warehouse = DuckDBWarehouse(pipeline.duckdb_path)
        try:
            for campaign_id, result in sorted(planned.items()):
                doc = documents.get(CAMPAIGNS, campaign_id) or {}
                funnel = ledger.funnel(warehouse, campaign_id, result.run_id)
                stage.outcomes.append(Outcome(campaign_id, str(doc.get("name", campaign_id)), result.run_id, funnel))
            stage.lines += _report(stage.outcomes)
            stage.ok &= settled and _agree(stage, smtp, twilio)
            if click is not None:
                stage.ok &= _clicked(stage, warehouse, click)
            if stop_number is not None:
                stage.ok &= _stopped(stage, warehouse, site_id, stop_number, salt)
        finally:
            warehouse.close()
    return stage


def _settle(documents: DocumentStore, twilio: TwilioApiFake, planned: dict[str, Any], batches: int) -> bool:
    """Wait until deliver marked every batch done and the fake's callbacks were answered."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        done = sum(
            1
            for _, marker in documents.list(ledger.BATCHES)
            if marker.get("done_at") is not None
            and marker.get("campaign_id") in planned
            and marker.get("run_id") == planned[marker["campaign_id"]].run_id
        )
        callbacks = [w for w in twilio.webhooks if "MessageStatus" in w.params]
        if done >= batches and len(callbacks) >= 2 * len(twilio.messages):
            return all(w.answered == 200 for w in callbacks)
        time.sleep(0.25)
    return False


@dataclass(frozen=True)
class Click:
    status: int
    location: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the demo reads the 302 itself


def _click(pipeline: LocalPipeline, twilio: TwilioApiFake) -> Click | None:
    """The first SMS recipient taps the tracked link in their message: collect answers 302 to the
    shop's page with UTM parameters and records the click (through the loader, as any beacon)."""
    bodies = sorted(m.body for m in twilio.messages.values())
    found = next(
        (m.group(0) for b in bodies if (m := re.search(re.escape(pipeline.collect_url) + r"/c\?t=\S+", b))), None
    )
    if found is None:
        return None
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        answer = opener.open(urllib.request.Request(found, headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14)"}))
        status, location = answer.status, answer.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        status, location = exc.code, exc.headers.get("Location", "")
    return Click(status, location)


def _clicked(stage: Stage, warehouse: DuckDBWarehouse, click: Click) -> bool:
    """The click's `clicked` row reached the ledger (the loader writes it from collect's message)."""
    deadline = time.monotonic() + 30
    count = 0
    while time.monotonic() < deadline:
        count = int(
            warehouse.query(
                "SELECT COUNT(DISTINCT delivery_id) AS n FROM audiences.delivery_events WHERE event = 'clicked'"
            )[0]["n"]
        )
        if count:
            break
        time.sleep(0.5)
    stage.lines.append(
        f"  one recipient tapped the link in their SMS: {click.status} to {click.location}; clicked deliveries: {count}"
    )
    return click.status == 302 and count == 1


def _reply_stop(twilio: TwilioApiFake) -> str | None:
    """The first SMS recipient answers STOP, as a person would from their phone."""
    numbers = sorted({m.to for m in twilio.messages.values()})
    if not numbers:
        return None
    answered = twilio.inbound(numbers[0], "STOP")
    return numbers[0] if answered.answered == 200 else ""


def _report(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for outcome in outcomes:
        funnel = outcome.funnel
        reasons = funnel.reasons()
        eligible = reasons.pop("eligible", 0)
        lines.append(f"  {outcome.name} ({outcome.campaign_id})")
        lines.append(f"    audience {funnel.audience:,} -> eligible {eligible:,}")
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"      {reason:<28}{count:>7,}")
        by_channel = sorted({channel for channel, _ in funnel.events})
        for channel in by_channel:
            counts = {event: n for (c, event), n in funnel.events.items() if c == channel}
            failed = counts.get("failed", 0) + counts.get("bounced", 0)
            # SMTP reports no delivery: a message the relay accepted is as far as e-mail can tell.
            delivered = f"delivered {counts.get('delivered', 0):>6,}" if channel != "email" else "(relay accepted)"
            lines.append(
                f"    {channel:<6} sent {counts.get('sent', 0):>6,}   {delivered}   failed {failed:>4,}"
                f"   clicked {counts.get('clicked', 0):>4,}   unsubscribed {counts.get('unsubscribed', 0):>4,}"
            )
        if not by_channel:
            lines.append(f"    nothing sent yet (held: {funnel.outcomes().get('hold', 0):,})")
    return lines


def _agree(stage: Stage, smtp: SmtpSink, twilio: TwilioApiFake) -> bool:
    """What the ledger says was sent is what the fakes received: once each, nothing lost."""
    sent = {"email": 0, "sms": 0}
    delivered_sms = 0
    for outcome in stage.outcomes:
        for (channel, event), n in outcome.funnel.events.items():
            if event == "sent" and channel in sent:
                sent[channel] += n
            if event == "delivered" and channel == "sms":
                delivered_sms += n
    received = {"email": len(smtp.messages), "sms": len(twilio.created())}
    agree = sent == received and delivered_sms == len(twilio.messages)
    stage.lines.append(
        f"  the fakes received {received['email']:,} e-mails and {received['sms']:,} SMS; the ledger says sent "
        f"{sent['email']:,} and {sent['sms']:,}, SMS delivered {delivered_sms:,}: "
        + ("each once, none lost" if agree else "DISAGREE")
    )
    return agree


def _stopped(stage: Stage, warehouse: DuckDBWarehouse, site_id: str, number: str, salt: str) -> bool:
    """The STOP reply reached the consent ledger: the gate now refuses SMS to that number."""
    if not number:
        stage.lines.append("  a STOP reply was REFUSED by twilio_status")
        return False
    rows = warehouse.query(
        "SELECT customer_id FROM refined.identities WHERE site_id = @site AND id_type = 'phone' AND id_value = @number",
        {"site": site_id, "number": number},
    )
    ids = sorted({str(r["customer_id"]) for r in rows})
    answers = eligible_audience(warehouse, site_id, None, "sms", datetime.now(UTC), salt, customer_ids=ids)
    refused = bool(answers) and all(not a.eligible for a in answers)
    reason = answers[0].reason.value if answers else "no such customer"
    stage.lines.append(f"  one recipient replied STOP: the gate now answers {reason} for SMS to that number")
    return refused


def report(stage: Stage) -> str:
    head = "Campaigns (examples/campaigns through send_messages, deliver and twilio_status to the fakes)"
    note = "  (the example's quiet hours and send windows are lifted for the demo; the night rule is not)"
    return "\n".join([head, note, *stage.lines])

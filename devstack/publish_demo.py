"""The demo's publishing stage: the VIP example segment kept in a Facebook Custom Audience.

A local fake of the Graph API (devstack/fakes/meta_graph.py) stands in for Meta; the real
facebook-business SDK talks to it through our adapter, built by the composition root from the same
settings a deployment reads (CDP_FACEBOOK_GRAPH_URL, the token from the secret a destination names).
The marketer's two documents go to the Firestore emulator, and the job's service runs them as the
publish_audiences function does.

`first` runs right after the consent stage: the audience is created and the consented members with a
key are uploaded. `second` runs after the privacy requests and the preference centre, and after one
uploaded person withdraws ad_user_data consent: the audience loses that person (reason no_consent),
anyone the privacy stage erased (reason erased) and anyone who left the segment. Each run prints
what the platform now holds, counted on the fake, beside what the job says it sent.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from devstack.storefront import SITE_ID
from shared import bootstrap
from shared.config import Settings
from shared.ports import DocumentStore, Warehouse
from shared.services import consent
from shared.services.publish_job import PublishJob, run_publications

SEGMENT = "vip-lifetime-revenue"
DESTINATION = "demo-meta"
PUBLICATION = "vip-to-meta"
TOKEN_SECRET = "facebook-access-token"
DEMO_TOKEN = "EAAdemo0local0token0for0the0fake0graph0api"


@dataclass
class Stage:
    """The fake Graph API and what the runs did, across the demo's two publishing steps."""

    graph_url: str
    secrets_dir: Path
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def configure(documents: DocumentStore, out: Path, graph_url: str) -> Stage:
    """The marketer's documents, and the token where the local secret store finds it."""
    secrets_dir = out / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    (secrets_dir / TOKEN_SECRET).write_text(DEMO_TOKEN, encoding="utf-8")
    documents.set(
        "destinations",
        DESTINATION,
        {
            "type": "facebook_custom_audience",
            "name": "Demo ad account",
            "ad_account_id": "act_1234567890",
            "access_token_secret": TOKEN_SECRET,
            "api_version": "v26.0",
        },
    )
    documents.set(
        "publications",
        PUBLICATION,
        {
            "name": "VIP (demo)",
            "segment_id": SEGMENT,
            "destination_id": DESTINATION,
            "audience_id": "create",
            "customer_file_source": "USER_PROVIDED_ONLY",
            "mode": "mirror",
            "keys": ["EMAIL", "PHONE", "FN", "LN"],
            "enabled": True,
        },
    )
    return Stage(graph_url, secrets_dir)


def _run(stage: Stage, warehouse: Warehouse, documents: DocumentStore, env: dict[str, str], now: datetime,
         label: str) -> dict[str, object]:  # fmt: skip
    settings = Settings.from_env(env | {"CDP_FACEBOOK_GRAPH_URL": stage.graph_url,
                                        "CDP_SECRETS_DIR": str(stage.secrets_dir)})  # fmt: skip
    ports = bootstrap.build_publish_ports(settings, warehouse, documents)
    report = run_publications(ports, PublishJob(run_at=now, publications=(PUBLICATION,)), f"demo-{label}")
    run = report.runs[PUBLICATION]
    status = (documents.get("publications", PUBLICATION) or {}).get("status", {})
    held = _held_on_fake(stage.graph_url, run.audience_id)
    removed = ", ".join(f"{n} {reason}" for reason, n in sorted(run.removed.items())) or "none"
    stage.lines.append(
        f"  {label:<7} state {run.state}; members {run.staged.members:,}, consented with a key "
        f"{run.staged.desired:,}; sent +{run.added:,} / -{sum(run.removed.values()):,} ({removed}) "
        f"in {run.batches} requests; the fake holds {held:,}"
    )
    if run.failure is not None or status.get("state") != "ok" or held != run.staged.desired:
        stage.ok = False
        stage.lines.append(f"  {label}: UNEXPECTED: {run.failure or status.get('error')}; holds {held:,}")
    return {"audience_id": run.audience_id, "desired": run.staged.desired}


def _held_on_fake(graph_url: str, audience_id: str | None) -> int:
    """What the platform holds, as the fake counts it (GET /_fake/audiences), apart from our ledger."""
    with urllib.request.urlopen(f"{graph_url}/_fake/audiences", timeout=30) as answer:
        audiences = json.load(answer)["audiences"]
    found = audiences.get(str(audience_id))
    return int(found["size"]) if found else -1


def first(stage: Stage, warehouse: Warehouse, documents: DocumentStore, env: dict[str, str], now: datetime) -> None:
    result = _run(stage, warehouse, documents, env, now, "first")
    stage.lines.insert(
        0, f"Publishing (segment {SEGMENT} -> Facebook audience {result['audience_id']}, fake Graph API)"
    )


def second(
    stage: Stage, warehouse: Warehouse, documents: DocumentStore, env: dict[str, str], now: datetime, salt: str
) -> None:
    """Withdraw one uploaded person's ad_user_data consent, then run again."""
    rows = warehouse.query(
        "SELECT l.customer_id, p.member_id FROM audiences.publication_ledger AS l "
        "JOIN refined.profiles AS p ON p.customer_id = l.customer_id "
        "WHERE l.publication_id = @p AND l.removed_at IS NULL AND p.member_id IS NOT NULL "
        "ORDER BY l.customer_id LIMIT 1",
        {"p": PUBLICATION},
    )
    if rows:
        member = str(rows[0]["member_id"])
        consent.record_consent(
            warehouse, SITE_ID, "member", member, {"ad_user_data": False}, now, "preference_centre",
            recorded_at=now,
        )  # fmt: skip
        stage.lines.append(f"  member {member} withdraws ad_user_data consent")
    _run(stage, warehouse, documents, env, now, "second")


def report(stage: Stage) -> str:
    return "\n".join(stage.lines)

"""The demo's consent part: consent histories for the refined customers, then coverage through the gate.

Histories are generated per customer from its identifiers (refined.identities) with a fixed seed:
some never decide, some refuse, most grant through one identifier and some of those withdraw later
through another (the merge rule at work), a few carry an old CRM grant whose two-yearly notice is
due; addresses subscribe, and some opt out through provider signals. The rows are built by the same
ledger code every capture path uses and written in one insert per table. Coverage is then what the
gate answers for every customer: per purpose, and per channel for advertising and informational
messages.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.consent.ledger import CONSENT_TABLE, SUBSCRIPTION_TABLE, Proof, consent_rows, subscription_row
from shared.consent.policy import SEOUL
from shared.consent.vocabulary import Channel, Purpose, Reason
from shared.ports import Warehouse
from shared.services import consent as service

NEVER, REFUSE, WITHDRAW, OLD_GRANT = 0.25, 0.05, 0.15, 0.04  # shares of customers
WORDING = "demo-2026-01"


@dataclass
class Histories:
    customers: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # never, refused, granted, withdrew, old_grant
    consent_rows: int = 0
    subscription_rows: int = 0


def customers(warehouse: Warehouse, site_id: str) -> dict[str, list[tuple[str, str]]]:
    """Each customer's identifiers (type, value), as identity resolution linked them."""
    rows = warehouse.query(
        "select customer_id, id_type, id_value from refined.identities where site_id = @site_id"
        " order by customer_id, id_type, id_value",
        {"site_id": site_id},
    )
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        found[row["customer_id"]].append((row["id_type"], row["id_value"]))
    return dict(found)


def generate(
    warehouse: Warehouse, site_id: str, people: dict[str, list[tuple[str, str]]], now: datetime, seed: int
) -> Histories:
    """Write a consent history for each customer; returns what was generated."""
    rng = random.Random(seed)
    consents: list[dict[str, Any]] = []
    subscriptions: list[dict[str, Any]] = []
    made = Histories(customers=len(people))
    for _, identifiers in sorted(people.items()):
        t = now - timedelta(days=rng.uniform(1, 55))
        by_web = [i for i in identifiers if i[0] in ("visitor", "member")]
        subject = rng.choice(by_web or identifiers)
        draw = rng.random()
        proof = Proof(wording_version=WORDING, page_url="https://shop.example/consent")
        if draw < NEVER:
            made.kinds["never"] += 1
        elif draw < NEVER + REFUSE:
            made.kinds["refused"] += 1
            refused = dict.fromkeys(["analytics", "marketing", "ad_user_data"], False)
            consents += consent_rows(site_id, *subject, refused, t, now, "tracker", proof=proof)
        else:
            granted = {
                "analytics": True,
                "marketing": rng.random() < 0.75,
                "ad_user_data": rng.random() < 0.5,
                "ad_personalization": rng.random() < 0.4,
            }
            granted["night_marketing"] = granted["marketing"] and rng.random() < 0.3
            old = rng.random() < OLD_GRANT / (1 - NEVER - REFUSE)
            if old:  # a CRM grant from almost two years ago: its notice falls due within weeks
                t = now - timedelta(days=rng.uniform(700, 725))
                contact = [i for i in identifiers if i[0] in ("email", "phone")]
                subject = contact[0] if contact else subject
                granted["marketing"] = True
            made.kinds["old_grant" if old else "granted"] += 1
            source = "import" if old else "tracker" if subject[0] == "visitor" else "preference_centre"
            consents += consent_rows(site_id, *subject, granted, t, now, source, proof=proof)
            if granted["marketing"] and not old and rng.random() < WITHDRAW / 0.75:
                made.kinds["withdrew"] += 1
                other = [i for i in identifiers if i != subject] or [subject]  # another identifier when one exists
                later = t + timedelta(days=rng.uniform(0.5, (now - t).days or 1))
                consents += consent_rows(
                    site_id, *rng.choice(other), {"marketing": False}, min(later, now), now, "preference_centre"
                )
        subscriptions += _subscriptions(rng, site_id, identifiers, t, now)
    for table, rows, key in (
        (CONSENT_TABLE, consents, "consent_event_id"),
        (SUBSCRIPTION_TABLE, subscriptions, "subscription_event_id"),
    ):
        result = warehouse.insert_rows(table, rows, [r[key] for r in rows])
        if result.errors:
            raise RuntimeError(f"{table} refused {len(result.errors)} generated rows: {result.errors[0].reason}")
    made.consent_rows, made.subscription_rows = len(consents), len(subscriptions)
    return made


def _subscriptions(
    rng: random.Random, site_id: str, identifiers: Sequence[tuple[str, str]], t: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Subscribe most addresses when the person first decided; a few opt out later by a provider signal."""
    rows: list[dict[str, Any]] = []
    channels = {"email": [Channel.EMAIL], "phone": [Channel.SMS, Channel.ALIMTALK]}
    stops = {Channel.EMAIL: "bounce", Channel.SMS: "sms_stop", Channel.ALIMTALK: "provider_opt_out"}
    for id_type, value in identifiers:
        for channel in channels.get(id_type, []):
            if rng.random() > 0.7:
                continue
            rows.append(subscription_row(site_id, channel, value, True, t, now, "form"))
            if rng.random() < 0.1:
                stop = t + timedelta(days=rng.uniform(0.1, max((now - t).days, 1)))
                rows.append(subscription_row(site_id, channel, value, False, min(stop, now), now, stops[channel]))
    visitors = [value for id_type, value in identifiers if id_type == "visitor"]
    if visitors and rng.random() < 0.2:
        endpoint = f"https://push.example/{site_id}/{visitors[0]}"
        keys = {"p256dh": "demo-key", "auth": "demo-auth"}
        rows.append(
            subscription_row(site_id, Channel.WEBPUSH, endpoint, True, t, now, "tracker", visitor_id=visitors[0],
                             push_keys=keys)
        )  # fmt: skip
    return rows


def coverage(
    warehouse: Warehouse, site_id: str, customer_ids: list[str], at: datetime, salt: str
) -> dict[tuple[str | None, str | None], Counter[Reason]]:
    """What the gate answers for every customer: per purpose, and per channel for both kinds of message."""
    uses: list[tuple[str | None, str | None]] = [(p.value, None) for p in Purpose]
    uses += [(purpose, c.value) for c in Channel for purpose in (Purpose.MARKETING.value, None)]
    return {
        (purpose, channel): Counter(
            r.reason
            for r in service.eligible_audience(
                warehouse, site_id, purpose, channel, at, salt, customer_ids=customer_ids
            )
        )  # fmt: skip
        for purpose, channel in uses
    }


def report(
    made: Histories, counts: dict[tuple[str | None, str | None], Counter[Reason]], due: int, at: datetime
) -> str:
    """The demo's consent section as text."""
    kinds = ", ".join(
        f"{kind} {made.kinds[kind]:,}" for kind in ("never", "refused", "granted", "withdrew", "old_grant")
    )
    local = at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"Consent: generated histories for {made.customers:,} customers ({kinds})",
        f"  ledger rows: {made.consent_rows:,} consent, {made.subscription_rows:,} subscription",
        f"  coverage through the gate at {local} in Seoul (eligible / customers; main reasons otherwise)",
    ]
    for (purpose, channel), reasons in counts.items():
        use = (
            f"{purpose} (no message)"
            if channel is None
            else f"{channel}: " + ("advertising" if purpose else "informational")
        )
        total = sum(reasons.values())
        others = ", ".join(f"{r.value} {n:,}" for r, n in reasons.most_common() if r is not Reason.ELIGIBLE)
        lines.append(f"    {use:<34}{reasons[Reason.ELIGIBLE]:>7,} / {total:<7,} {others}")
    lines.append(f"  customers due a re-confirmation notice within 30 days (Art. 50(8)): {due:,}")
    return "\n".join(lines)


def run(warehouse: Warehouse, site_id: str, now: datetime, salt: str, seed: int = 7) -> str:
    """Generate the histories, measure coverage as of now, and return the report."""
    people = customers(warehouse, site_id)
    made = generate(warehouse, site_id, people, now, seed)
    counts = coverage(warehouse, site_id, sorted(people), now, salt)
    due = service.reconfirmations_due(warehouse, site_id, now, (now + timedelta(days=30)).astimezone(SEOUL).date())
    return report(made, counts, len({r.customer_id for r in due}), now)

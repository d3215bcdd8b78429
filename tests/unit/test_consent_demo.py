"""The demo's consent section on a planted identity graph: histories of every kind are generated,
and the coverage it prints is what the current-state statements say independently."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from devstack import consent_demo
from shared.services import consent as service
from tests.builders import SALT, SITE, link, new_warehouse

NOW = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)  # 12:00 in Seoul: no night rule in the numbers


def test_histories_and_coverage() -> None:
    w = new_warehouse()
    for n in range(300):
        nodes = [f"visitor:v{n}"]
        nodes += [f"member:m{n}"] if n % 2 else []
        nodes += [f"email:p{n}@x.com"] if n % 5 < 3 else []
        nodes += [f"phone:+8210{n:08d}"] if n % 5 >= 3 else []
        link(w, f"c{n}", *nodes)
    text = consent_demo.run(w, SITE, NOW, SALT)
    people = consent_demo.customers(w, SITE)
    made = consent_demo.generate(new_warehouse(), SITE, people, NOW, seed=7)  # the same draw, elsewhere
    assert sum(made.kinds[k] for k in ("never", "refused", "granted", "old_grant")) == 300
    assert all(made.kinds[k] > 0 for k in ("never", "refused", "granted", "withdrew", "old_grant")), made.kinds
    lines = text.splitlines()
    assert lines[0].startswith("Consent: generated histories for 300 customers (never ")
    assert f"{made.consent_rows:,} consent, {made.subscription_rows:,} subscription" in lines[1]
    table = {
        m.group(1).strip(): (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
        for line in lines[3:-1]
        if (m := re.match(r"    (.{34})\s*([\d,]+) / ([\d,]+)", line))
    }
    assert len(table) == 13 and all(total == 300 for _, total in table.values())
    states = service.consent_states(w, SITE, NOW)
    for purpose in ("analytics", "marketing", "ad_user_data", "night_marketing"):
        granted = {s["customer_id"] for s in states if s["purpose"] == purpose and s["granted"]}
        assert table[f"{purpose} (no message)"][0] == len(granted), purpose
    subscribed = {s["address"] for s in service.subscription_states(w, SITE, NOW) if s["subscribed"]}
    assert table["email: advertising"][0] <= table["email: informational"][0] <= len(subscribed)
    assert 0 < table["email: advertising"][0] <= table["marketing (no message)"][0]
    assert table["sms: informational"][0] > 0 and table["webpush: informational"][0] > 0
    due = f"  customers due a re-confirmation notice within 30 days (Art. 50(8)): {made.kinds['old_grant']}"
    assert lines[-1] == due

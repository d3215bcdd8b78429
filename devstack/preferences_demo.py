"""The demo's preference-centre stage: two people use the links a message would carry.

The `preferences` function runs as it does everywhere locally (devstack/serve.py). One person opens
their page and withdraws marketing consent, another presses their mail client's one-click
unsubscribe; the gate's answer for each is printed before and after, so the demo shows a choice
made on the page reaching the one gate every activation path goes through.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from devstack.pipeline import LocalPipeline, serve_function
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.config import LOCAL_PREFERENCE_KEY
from shared.preferences.links import open_link, seal
from shared.preferences.page import mask
from shared.services.consent import eligible_audience
from shared.services.preferences import current_choices


@dataclass(frozen=True)
class Person:
    customer_id: str
    email: str


def _reason(warehouse: DuckDBWarehouse, site_id: str, person: Person, purpose: str | None, channel: str | None,
            at: datetime, salt: str) -> str:  # fmt: skip
    [answer] = eligible_audience(warehouse, site_id, purpose, channel, at, salt, customer_ids=[person.customer_id])
    return answer.reason.value


def _pick(warehouse: DuckDBWarehouse, site_id: str, at: datetime, salt: str) -> tuple[Person, Person] | None:
    """Two customers with an e-mail address: one who granted marketing, one subscribed to e-mail."""
    rows = warehouse.query(
        "SELECT customer_id, email FROM refined.profiles WHERE site_id = @site AND email IS NOT NULL "
        "ORDER BY customer_id",
        {"site": site_id},
    )
    emails = {str(r["customer_id"]): str(r["email"]) for r in rows}
    if not emails:
        return None
    ids = list(emails)
    marketing = eligible_audience(warehouse, site_id, "marketing", None, at, salt, customer_ids=ids)
    subscribed = eligible_audience(warehouse, site_id, None, "email", at, salt, customer_ids=ids)
    first = next((e.customer_id for e in marketing if e.eligible), None)
    second = next((e.customer_id for e in subscribed if e.eligible and e.customer_id != first), None)
    if first is None or second is None:
        return None
    return Person(first, emails[first]), Person(second, emails[second])


def _call(url: str, data: dict[str, str] | None = None) -> int:
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=60) as answer:  # follows the page's 303 to the saved page
        return int(answer.status)


def run(pipeline: LocalPipeline, site_id: str, log_dir: Path, now: datetime, salt: str) -> tuple[str, bool]:
    """Run the stage; returns the report and whether every step did what it should."""
    warehouse = DuckDBWarehouse(pipeline.duckdb_path)
    try:
        picked = _pick(warehouse, site_id, now, salt)
        if picked is None:
            return "Preference centre: no customer with an e-mail address and a grant to change (skipped)", True
        page_person, one_click_person = picked
        link = seal(site_id, "email", page_person.email, LOCAL_PREFERENCE_KEY, now)
        before = current_choices(warehouse, open_link(link, LOCAL_PREFERENCE_KEY, now), now)
        before_marketing = _reason(warehouse, site_id, page_person, "marketing", None, now, salt)
        before_email = _reason(warehouse, site_id, one_click_person, None, "email", now, salt)
    finally:
        warehouse.close()  # the function's process takes the file now

    server = serve_function("preferences", log_dir, pipeline.env)
    try:
        page = _call(f"{server.url}/?t={link}")
        keep = {
            "t": link,
            "channel": [c.value for c, on in before.channels.items() if on],
            "purpose": [p.value for p, on in before.purposes.items() if on and p.value != "marketing"],
        }
        saved = _call(f"{server.url}/", keep)  # type: ignore[arg-type]
        unsubscribe = seal(site_id, "email", one_click_person.email, LOCAL_PREFERENCE_KEY, now)
        clicked = _call(f"{server.url}/unsubscribe?t={unsubscribe}", {"List-Unsubscribe": "One-Click"})
    finally:
        server.stop()

    later = datetime.now(UTC)  # the changes are dated by the function's clock
    warehouse = DuckDBWarehouse(pipeline.duckdb_path)
    try:
        after_marketing = _reason(warehouse, site_id, page_person, "marketing", None, later, salt)
        after_email = _reason(warehouse, site_id, one_click_person, None, "email", later, salt)
    finally:
        warehouse.close()
    ok = (page, saved, clicked) == (200, 200, 200) and after_marketing == "withdrawn" and after_email == "unsubscribed"
    lines = [
        "Preference centre (functions/preferences; links sealed, see docs/preferences.md)",
        f"  {page_person.customer_id} ({mask(page_person.email)}): opened the page ({page}), withdrew marketing "
        f"({saved}) -> marketing: {before_marketing} -> {after_marketing}",
        f"  {one_click_person.customer_id} ({mask(one_click_person.email)}): one-click unsubscribe ({clicked}) "
        f"-> e-mail (informational): {before_email} -> {after_email}",
    ]
    return "\n".join(lines), ok

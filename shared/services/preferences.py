"""The preference centre: what a person chose, and their changes into the ledgers.

A person arrives by a sealed link from a message (shared/preferences/links.py) naming the address
it went to. The page shows that address's channel subscriptions and the person's current consents
(the same rule as the gate: the latest decision across every identifier their customer resolves
to), and a save records only what changed, with the preference centre as source and the request's
proof. The RFC 8058 one-click `POST` unsubscribes the address from the link's channel.

A link sealed for a message names its delivery. When a save or a one-click switches off the
delivery's own channel, that delivery gets an `unsubscribed` event (code: the ledger source), so
segments and reports see who left after which message, as they do for a provider's opt-out. The
event comes after the ledger write and never fails the request: the person's choice is what
counts, and an event lost to an outage is only a report a row short.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final

from shared.consent.ledger import Proof
from shared.consent.vocabulary import CHANNEL_ID_TYPE, Channel, ConsentSource, Purpose, SubscriptionSource
from shared.messaging import ledger
from shared.messaging.ledger import Delivery, Event, event_row
from shared.ports import Warehouse
from shared.preferences.links import Link
from shared.preferences.page import LINK_CHANNELS, PAGE_PURPOSES
from shared.services.consent import record_consent, record_opt_out, record_subscription
from shared.sql import load_sql

log = logging.getLogger(__name__)


DELIVERY_FIELDS: Final = ("delivery_id", "campaign_id", "run_id", "site_id", "customer_id", "channel")


@dataclass(frozen=True)
class Choices:
    """The page's state for one link: each channel of its address and each purpose shown."""

    channels: dict[Channel, bool]
    purposes: dict[Purpose, bool]


@cache
def _statements() -> tuple[str, str]:
    """The consent and subscription state of one link's subject, narrowed from the gate's own
    statements (sql/consent), so the page and the gate can never disagree on a person's state."""
    consent = (
        f"select purpose, granted from ({load_sql('consent/consent_state')}) as s "
        "where s.customer_id in (select customer_id from refined.identities "
        "where site_id = @site_id and id_type = @subject_type and id_value = @subject_value) "
        "or (s.customer_id is null and s.subject_type = @subject_type and s.subject_value = @subject_value)"
    )
    subscriptions = (
        f"select channel, subscribed from ({load_sql('consent/subscription_state')}) as s "
        "where s.address = @address and s.channel in unnest(@channels)"
    )
    return consent, subscriptions


def current_choices(warehouse: Warehouse, link: Link, at: datetime) -> Choices:
    consent_sql, subscription_sql = _statements()
    subject_type = CHANNEL_ID_TYPE[link.channel]
    assert subject_type is not None  # links are for e-mail addresses and phone numbers only
    granted = {
        str(row["purpose"]): bool(row["granted"])
        for row in warehouse.query(
            consent_sql,
            {"site_id": link.site_id, "subject_type": subject_type.value, "subject_value": link.address, "at": at},
        )
    }
    channels = LINK_CHANNELS[link.channel]
    subscribed = {
        str(row["channel"]): bool(row["subscribed"])
        for row in warehouse.query(
            subscription_sql,
            {"site_id": link.site_id, "address": link.address, "channels": [c.value for c in channels], "at": at},
        )
    }
    return Choices(
        channels={c: subscribed.get(c.value, False) for c in channels},
        purposes={p: granted.get(p.value, False) for p in PAGE_PURPOSES},
    )


def save_choices(
    warehouse: Warehouse,
    link: Link,
    channels_on: Collection[str],
    purposes_on: Collection[str],
    now: datetime,
    proof: Proof,
) -> Choices:
    """Record what the submitted form changed (unknown names are ignored: the form offers only these);
    returns the choices as they now stand."""
    before = current_choices(warehouse, link, now)
    subject_type = CHANNEL_ID_TYPE[link.channel]
    assert subject_type is not None
    changed = {p.value: p.value in purposes_on for p, on in before.purposes.items() if on != (p.value in purposes_on)}
    if changed:
        record_consent(
            warehouse, link.site_id, subject_type, link.address, changed, now, ConsentSource.PREFERENCE_CENTRE,
            recorded_at=now, proof=proof,
        )  # fmt: skip
    for channel, on in before.channels.items():
        wanted = channel.value in channels_on
        if wanted != on:
            record_subscription(
                warehouse, link.site_id, channel, link.address, wanted, now, SubscriptionSource.PREFERENCE_CENTRE,
                recorded_at=now, proof=proof,
            )  # fmt: skip
    switched_off = {c for c, on in before.channels.items() if on and c.value not in channels_on}
    record_unsubscribed(warehouse, link, switched_off, SubscriptionSource.PREFERENCE_CENTRE, now)
    return Choices(
        channels={c: c.value in channels_on for c in before.channels},
        purposes={p: p.value in purposes_on for p in before.purposes},
    )


def one_click_unsubscribe(warehouse: Warehouse, link: Link, now: datetime, request_id: str | None) -> str:
    """RFC 8058: the mail client's `List-Unsubscribe=One-Click` POST, without the person seeing a page."""
    recorded = record_opt_out(
        warehouse, link.site_id, link.channel, link.address, SubscriptionSource.ONE_CLICK_UNSUBSCRIBE,
        "RFC 8058 one-click", now, request_id=request_id,
    )  # fmt: skip
    record_unsubscribed(warehouse, link, {link.channel}, SubscriptionSource.ONE_CLICK_UNSUBSCRIBE, now)
    return recorded


def record_unsubscribed(
    warehouse: Warehouse, link: Link, switched_off: Collection[Channel], source: SubscriptionSource, at: datetime
) -> bool:
    """The `unsubscribed` event of the link's delivery, if the link names one of the site's real
    deliveries and its channel is among those just switched off; whether one was recorded.

    Its id comes from the delivery and the source, so a repeated request adds nothing. Never raises
    (module docstring): a failure is logged.
    """
    if link.delivery_id is None or not switched_off:
        return False
    params = {"delivery_id": link.delivery_id, "site_id": link.site_id}
    try:
        rows = ledger.run(warehouse, "link_delivery", params)
        if not rows:  # sealed by a preview or a test, or for a delivery since erased
            log.info("unsubscribe through a link of no delivery", extra=params)
            return False
        delivery = Delivery(*(str(rows[0][k]) for k in DELIVERY_FIELDS))
        if delivery.channel not in switched_off:  # e.g. SMS switched off through an AlimTalk message
            return False
        ledger.record_events(warehouse, [event_row(delivery, Event.UNSUBSCRIBED, at, code=source.value)])
    except Exception:  # noqa: BLE001 - the person's unsubscribe is recorded already; see the docstring
        log.exception("unsubscribed event not recorded", extra=params)
        return False
    return True


def form_values(form: Mapping[str, Any], name: str) -> set[str]:
    """Checked boxes of a name (a multi-dict's getlist, or one value)."""
    getlist = getattr(form, "getlist", None)
    values = getlist(name) if callable(getlist) else [form.get(name)]
    return {str(v) for v in values if v}

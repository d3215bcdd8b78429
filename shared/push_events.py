"""A push event from the tracker: a browser's web push subscription (or its end) as a ledger row.

The tracker's `subscribe()` posts the PushSubscription the browser gave it (endpoint, keys,
expirationTime) as an event of type `push`; `unsubscribe()` posts its endpoint with `subscribed:
false`, as does the service worker's "수신거부" action. Like a consent event, it records a choice,
not behaviour, so collect turns it into one raw.subscription row itself (channel webpush, source
tracker), with the keys kept in the row where the sender reads them through the consent gate.

The row names the visitor and member the event names, so the gate reaches the subscription through
the customer's identities; without analytics consent the tracker names nobody, and a subscription
is then recorded but reaches no customer (an unsubscribe still ends the endpoint). The endpoint
must be https on a public host (shared/messaging/webpush.py): the sender will POST to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.beacons import Context, Invalid, ValidEvent, nfc
from shared.consent.ledger import SUBSCRIPTION_TABLE, Proof, subscription_row
from shared.consent.vocabulary import Channel, ConsentError, SubscriptionSource
from shared.messaging import webpush
from shared.redaction import strip_click_ids

LEDGER: Final = SUBSCRIPTION_TABLE
FIELDS: Final = ("subscribed", "endpoint", "keys", "expiration_time", "version")
MAX_VERSION: Final = 128


@dataclass(frozen=True)
class PushChoice:
    """What a push event says: subscribed (with the browser's keys) or ended, for one endpoint."""

    subscribed: bool
    endpoint: str
    keys: dict[str, str] | None = None
    expires_at: datetime | None = None
    version: str | None = None


def parse_choice(props: dict[str, Any], path: str, *, allow_local: bool = False) -> PushChoice:
    """A push event's props, checked whole; Invalid names the first wrong field with its reason code
    (push_endpoint_not_https, push_endpoint_not_public, invalid_push_endpoint, invalid_push_keys, ...)."""
    for key in props:
        if key not in FIELDS:
            at = f"{path}.{str(key)[:40]}"
            raise Invalid("invalid_value", at, f"{at} is not a field of a push event ({', '.join(FIELDS)})")
    subscribed = props.get("subscribed")
    if not isinstance(subscribed, bool):
        raise Invalid("wrong_type", f"{path}.subscribed", f"{path}.subscribed must be true or false")
    if "endpoint" not in props:
        raise Invalid("missing_field", f"{path}.endpoint", f"{path}.endpoint is required")
    try:
        endpoint = webpush.check_endpoint(props["endpoint"], allow_local=allow_local)
    except webpush.PushProblem as bad:
        raise Invalid(bad.reason, f"{path}.endpoint", f"{path}.endpoint: {bad}") from None
    keys = None
    if subscribed:
        try:
            keys = webpush.check_keys(props.get("keys"))
        except webpush.PushProblem as bad:
            raise Invalid(bad.reason, f"{path}.{bad.field or 'keys'}", f"{path}.{bad}") from None
    return PushChoice(subscribed, endpoint, keys, _expiry(props.get("expiration_time"), path), _version(props, path))


def ledger_row(event: ValidEvent, index: int, ctx: Context, *, allow_local: bool = False) -> dict[str, Any]:
    """The raw.subscription row of a push event; Invalid naming the field."""
    path = f"events[{index}]"
    choice = parse_choice(event.props, f"{path}.props", allow_local=allow_local)
    identified = event.consent_analytics is not False  # no analytics: nothing ties the browser to a person
    proof = Proof(
        wording_version=nfc(choice.version),
        page_url=event.url if event.consent_ads else strip_click_ids(event.url),
        ip_hash=ctx.ip_hash,
        request_id=ctx.request_id,
    )
    try:
        return subscription_row(
            ctx.site_id, Channel.WEBPUSH, choice.endpoint, choice.subscribed, event.event_ts, ctx.collected_at,
            SubscriptionSource.TRACKER, member_id=event.member_id if identified else None,
            visitor_id=event.visitor_id if identified else None, push_keys=choice.keys, expires_at=choice.expires_at,
            proof=proof,
        )  # fmt: skip
    except ConsentError as exc:  # what the ledger refuses beyond the checks above: placeholder ids, times
        at = path + _LEDGER_FIELDS.get(exc.field, f".props.{exc.field}")
        raise Invalid("invalid_value", at, f"{at}: {exc}") from exc


_LEDGER_FIELDS: Final = {
    "visitor_id": ".visitor_id",
    "member_id": ".member_id",
    "effective_at": ".ts",
    "proof.page_url": ".url",
    "proof.wording_version": ".props.version",
}


def _expiry(value: Any, path: str) -> datetime | None:
    """expirationTime (ms since epoch, or null) as a time."""
    if value is None:
        return None
    at = f"{path}.expiration_time"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("wrong_type", at, f"{at} must be milliseconds since epoch or null")
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise Invalid("invalid_value", at, f"{at} is not a usable time") from None


def _version(props: dict[str, Any], path: str) -> str | None:
    value = props.get("version")
    if value is None or value == "":
        return None
    at = f"{path}.version"
    if not isinstance(value, str):
        raise Invalid("wrong_type", at, f"{at} must be a string")
    if len(value) > MAX_VERSION:
        raise Invalid("string_too_long", at, f"{at} is {len(value)} characters; at most {MAX_VERSION}")
    return value.strip() or None

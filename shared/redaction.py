"""What collect takes out before anything leaves the request, so no later copy can hold it.

Pub/Sub keeps a message for 7 days and the dead-letter path stores it whole, so stripping in the
loader comes too late: the identifiers of a visitor who did not grant analytics (visitor id, member
id, IP hash, contact details in free text) and ad click ids without advertising consent are removed
from every event, bad row and message context before collect publishes. Pure functions.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from shared.beacons import CONSENT_KEYS, ValidEvent
from shared.contacts import normalize_email, normalize_phone
from shared.enrich.inflow import CLICK_IDS

REDACTED: Final = "redacted"
"""Stands where a value was removed: a bad row keeps its shape, a URL keeps the click id's name."""

PERSONAL_KEYS: Final = frozenset({"visitor_id", "member_id", "email", "phone"})

_CLICK_ID: Final = re.compile(
    r"(?<=[?&#;])(" + "|".join(re.escape(name) for name, _ in CLICK_IDS) + r")=[^&#]+", re.IGNORECASE
)
_CLICK_NAMES: Final = tuple(name.lower() + "=" for name, _ in CLICK_IDS)
# A run of digits written like a phone number, not part of a longer word or number (hex ids, SKUs).
_PHONE_RUN: Final = re.compile(r"(?<![\w+])\+?\(?\d[\d \-().]{6,20}\d(?![\w])")
# What may stand around an address in text or JSON: the address is the run between them.
_EMAIL_RUN: Final = re.compile(r"[^\s\"'<>()\[\]{},;:]+@[^\s\"'<>()\[\]{},;:]+")
_IDENTIFIER_FIELD: Final = re.compile(r'("(?:visitor_id|member_id|email|phone)"\s*:\s*)"(?:[^"\\]|\\.)*"')


def strip_click_ids(url: str | None) -> str | None:
    """`url` with each ad click id's value replaced by REDACTED.

    The parameter stays, so the landing is still classified as the ad click it was (medium, network,
    click id type), but no longer carries the id an ad platform could match to a person.
    """
    # Most URLs hold no click id: substring tests (in C) rule that out at a fraction of the regex's cost.
    if not url or not any(map(url.lower().__contains__, _CLICK_NAMES)):
        return url
    return _CLICK_ID.sub(lambda m: f"{m.group(1)}={REDACTED}", url)


def holds_contact(text: str) -> bool:
    """Whether free text holds an e-mail address or a phone number, as shared.contacts reads them.

    A phone must be written as one: international (+, 00) or national (a leading 0). Bare digit
    strings, which normalize_phone would also take, are order numbers and timestamps far more often.
    """
    if "@" in text and any(normalize_email(m.group()) for m in _EMAIL_RUN.finditer(text)):
        return True
    return any(_is_phone(m.group()) for m in _PHONE_RUN.finditer(text))


def drop_contacts(value: Any) -> Any:
    """Free-form properties without the strings that hold an e-mail or a phone number (dropped as
    entries or list items, at any depth); every other value is kept as it is."""
    if isinstance(value, dict):
        return {k: drop_contacts(v) for k, v in value.items() if not (isinstance(v, str) and holds_contact(v))}
    if isinstance(value, list):
        return [drop_contacts(v) for v in value if not (isinstance(v, str) and holds_contact(v))]
    return value


_NAMING_COLUMNS: Final = frozenset({"event_name", "conv_type", "order_id"})


def strip_event(event: ValidEvent, columns: dict[str, Any]) -> dict[str, Any]:
    """An accepted event made fit for the bus: click ids blanked without advertising consent; for an
    anonymous event, contact details dropped from its free text: the properties, and any text column
    (search keyword, product name, ...) that holds one. A site may send anything as an event's name,
    a conversion's type or an order id, an e-mail address too: those become REDACTED rather than
    nothing, so the row still says what happened (an order keeps an id).

    Changes `event` in place (its URLs) and returns the columns to publish. The identifiers
    themselves stay out of the message by beacons.event_message.
    """
    if not event.consent_ads:
        event.url = strip_click_ids(event.url)
        event.referrer = strip_click_ids(event.referrer)
    if not event.anonymous:
        return columns
    columns = dict(columns)
    for key, value in columns.items():
        if key == "properties":
            columns[key] = drop_contacts(value) or None if value else value
        elif isinstance(value, str) and holds_contact(value):
            columns[key] = REDACTED if key in _NAMING_COLUMNS else None
    return columns


def declared_consent(raw: Any, analytics_default: bool) -> tuple[bool, bool]:
    """(analytics, ads) of a rejected event, read as far as it can be: a consent object that is not
    one (not an object, a key that is no purpose, a flag that is not a boolean) counts as refused;
    a missing flag takes the default (advertising: refused)."""
    consent = raw.get("consent") if isinstance(raw, dict) else None
    if consent is None:
        return analytics_default, False
    if not isinstance(consent, dict) or any(
        key not in CONSENT_KEYS or not (value is None or isinstance(value, bool)) for key, value in consent.items()
    ):
        return False, False
    analytics = consent.get("analytics")
    ads = consent.get("ad_user_data")
    if ads is None:
        ads = consent.get("ads")
    return (analytics_default if analytics is None else analytics is True), ads is True


def redact_payload(raw: Any, analytics: bool, ads: bool) -> Any:
    """A rejected event as it may be stored in raw.bad_rows.

    Without analytics consent: visitor id, member id, e-mail and phone fields at any depth, the
    whole traits of an identify, and every string holding a contact are REDACTED. Without
    advertising consent: click ids in its URLs. Anything else is kept, so the row still shows
    why it was rejected.
    """
    if isinstance(raw, dict) and not ads:
        raw = {k: strip_click_ids(v) if k in ("url", "referrer") and isinstance(v, str) else v for k, v in raw.items()}
    if analytics:
        return raw
    if isinstance(raw, dict) and raw.get("type") == "identify" and raw.get("props") is not None:
        raw = {**raw, "props": REDACTED}
    return _mask(raw)


def redact_request(text: str, analytics_default: bool) -> str:
    """A whole rejected request body as it may be stored: each event of a batch redacted by its own
    consent, anything else as refused; text that is not JSON has its contacts and identifier
    fields masked where they stand. Unchanged text is returned as it came."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return redact_text(text)
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        events = [redact_payload(e, *declared_consent(e, analytics_default)) for e in data["events"]]
        redacted = {**_mask({k: v for k, v in data.items() if k != "events"}), "events": events}
    else:
        redacted = _mask(data)
    return text if redacted == data else orjson.dumps(redacted).decode()


def redact_text(text: str) -> str:
    """Text whose consent cannot be read (it is not JSON): the values of identifier fields, e-mail
    addresses and phone numbers replaced by REDACTED where they stand."""
    text = _IDENTIFIER_FIELD.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    text = _EMAIL_RUN.sub(lambda m: REDACTED if normalize_email(m.group()) else m.group(), text)
    return _PHONE_RUN.sub(lambda m: REDACTED if _is_phone(m.group()) else m.group(), text)


def _is_phone(run: str) -> bool:
    """International (+, 00) or national (a leading 0) with at least 9 digits, the shortest Korean
    number (02-123-4567): shorter runs with a leading 0 are dates ("01-02-2024") as often."""
    run = run.lstrip("(")
    return run[:1] in ("+", "0") and sum(c.isdigit() for c in run) >= 9 and normalize_phone(run) is not None


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k in PERSONAL_KEYS and v is not None else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str) and holds_contact(value):
        return REDACTED
    return value

"""A consent event from the tracker: its decision checked, and the raw.consent rows it stands for.

A consent event records a decision, not behaviour, so collect turns it into ledger rows itself (one
per purpose decided and per subject: the visitor, and the member when known) instead of an event
row. Those rows name their subjects even when the decision withdraws analytics: a withdrawal
recorded against nobody would leave the earlier grant standing. The IP hash goes with them as
proof, as the ledger's contract asks (sql/schema/raw/consent.json). The rows and their ids come
from shared.consent.ledger, as they do for every other way a decision arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from shared.beacons import PURPOSES, Context, Invalid, ValidEvent, nfc
from shared.consent.ledger import CONSENT_TABLE, Proof, consent_rows
from shared.consent.vocabulary import ConsentError
from shared.redaction import strip_click_ids

LEDGER: Final = CONSENT_TABLE
FIELDS: Final = ("purposes", "version", "tcf", "consent_mode")
# Google Consent Mode v2: the four types the ads and analytics tags read, and the three others it defines.
CONSENT_MODE_TYPES: Final = (
    "ad_storage",
    "analytics_storage",
    "ad_user_data",
    "ad_personalization",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)
CONSENT_MODE_VALUES: Final = ("granted", "denied")
MAX_VERSION: Final = 128
# Browsers hold a cookie of at most 4,096 bytes, and a CMP keeps the TC string in one.
MAX_TCF: Final = 4096
# An IAB TC string: base64url segments joined by dots.
_TCF: Final = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


@dataclass(frozen=True)
class Decision:
    """What a consent event decided, and its proof as sent."""

    purposes: dict[str, bool]
    version: str | None = None
    tcf: str | None = None
    consent_mode: dict[str, str] | None = None


def parse_decision(props: dict[str, Any], path: str) -> Decision:
    """A consent event's props, checked whole; raise Invalid naming the first wrong field."""
    for key in props:
        if key not in FIELDS:
            at = f"{path}.{str(key)[:40]}"
            raise Invalid("invalid_value", at, f"{at} is not a field of a consent event ({', '.join(FIELDS)})")
    purposes = props.get("purposes")
    if purposes is None:
        raise Invalid("missing_field", f"{path}.purposes", f"{path}.purposes is required")
    if not isinstance(purposes, dict):
        raise Invalid("wrong_type", f"{path}.purposes", f"{path}.purposes must be an object of purpose: true/false")
    if not purposes:
        raise Invalid("missing_field", f"{path}.purposes", f"{path}.purposes names no purpose")
    for purpose, granted in purposes.items():
        at = f"{path}.purposes.{str(purpose)[:40]}"
        if purpose not in PURPOSES:
            raise Invalid("unknown_purpose", at, f"{at} is not a purpose: {', '.join(PURPOSES)}")
        if not isinstance(granted, bool):
            raise Invalid("wrong_type", at, f"{at} must be true or false")
    return Decision(
        purposes={p: purposes[p] for p in PURPOSES if p in purposes},
        version=_text(props.get("version"), f"{path}.version", MAX_VERSION),
        tcf=_tcf(props.get("tcf"), f"{path}.tcf"),
        consent_mode=_consent_mode(props.get("consent_mode"), f"{path}.consent_mode"),
    )


def ledger_rows(event: ValidEvent, index: int, ctx: Context) -> list[dict[str, Any]]:
    """The raw.consent rows of a consent event; none when it names no subject (a refusal from a
    browser never identified: missing consent is refusal already). Raise Invalid naming the field."""
    path = f"events[{index}]"
    decision = parse_decision(event.props, f"{path}.props")
    proof = Proof(
        wording_version=nfc(decision.version),
        page_url=event.url if event.consent_ads else strip_click_ids(event.url),
        ip_hash=ctx.ip_hash,
        request_id=ctx.request_id,
        tcf_string=decision.tcf,
        consent_mode=decision.consent_mode,
    )
    rows: list[dict[str, Any]] = []
    for kind, value in (("visitor", event.visitor_id), ("member", event.member_id)):
        if not value:
            continue
        try:
            rows += consent_rows(
                ctx.site_id,
                kind,
                value,
                decision.purposes,
                event.event_ts,
                ctx.collected_at,
                ctx.source,
                visitor_id=event.visitor_id,
                proof=proof,
            )
        except ConsentError as exc:  # what the ledger refuses beyond the checks above: placeholder ids
            at = path + _LEDGER_FIELDS.get(exc.field, f".{kind}_id")
            raise Invalid("invalid_value", at, f"{at}: {exc}") from exc
    return rows


# Where a ledger field's value came from in the event, so the answer names the event's own field.
_LEDGER_FIELDS: Final = {
    "visitor_id": ".visitor_id",
    "effective_at": ".ts",
    "proof.page_url": ".url",
    "proof.wording_version": ".props.version",
    "proof.tcf_string": ".props.tcf",
    "proof.consent_mode": ".props.consent_mode",
}


def _text(value: Any, at: str, max_len: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid("wrong_type", at, f"{at} must be a string")
    if len(value) > max_len:
        raise Invalid("string_too_long", at, f"{at} is {len(value)} characters; at most {max_len}")
    return value.strip() or None


def _tcf(value: Any, at: str) -> str | None:
    tcf = _text(value, at, MAX_TCF)
    if tcf is not None and not _TCF.fullmatch(tcf):
        raise Invalid("invalid_value", at, f"{at} is not an IAB TC string (base64url segments joined by dots)")
    return tcf


def _consent_mode(value: Any, at: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("wrong_type", at, f"{at} must be an object of Consent Mode types: granted/denied")
    for key, state in value.items():
        where = f"{at}.{str(key)[:40]}"
        if key not in CONSENT_MODE_TYPES:
            raise Invalid(
                "invalid_value", where, f"{where} is not a Consent Mode type ({', '.join(CONSENT_MODE_TYPES)})"
            )
        if state not in CONSENT_MODE_VALUES:
            raise Invalid("invalid_value", where, f"{where} must be 'granted' or 'denied'")
    return dict(value) or None

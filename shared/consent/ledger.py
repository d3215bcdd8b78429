"""Ledger rows for raw.consent and raw.subscription, validated whole before anything is written.

Pure: the collector, the importer, the preference centre and provider webhooks all build rows here,
so one decision gets one id wherever it arrives. Ids hash what the decision is (site, subject or
address, purpose or channel, state, effective time, source) and not when it was stored, so a retry,
a redelivery or a re-import of the same decision stores nothing new. Subjects and addresses are
spelt as identity resolution spells its nodes (shared/contacts.py for e-mails and phones, visitor and
member ids as collected), or the ledger could not be joined to refined.identities.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.consent.vocabulary import (
    OPT_OUT_SOURCES,
    Channel,
    ConsentError,
    ConsentSource,
    Purpose,
    SubjectType,
    SubscriptionSource,
    parse,
)
from shared.contacts import normalize_email, normalize_phone

CONSENT_TABLE: Final = "raw.consent"
SUBSCRIPTION_TABLE: Final = "raw.subscription"
MAX_FUTURE: Final = timedelta(days=1)
"""How far past its recording a decision may take effect: further is a wrong clock, and a future
grant would sit unseen and then flip the state by itself."""
MAX_ID: Final = 256
MAX_TEXT: Final = 256
MAX_URL: Final = 2048
MAX_TCF: Final = 16_384
CONSENT_MODE_VALUES: Final = frozenset({"granted", "denied"})
# The placeholder ids identity resolution blocks (shared/services/refine.py BLOCKED_IDS and
# BLOCKED_PATTERN; a test keeps them equal). Not imported: refine brings sqlglot and half a second
# to collect's cold start, which records consent through this module.
PLACEHOLDER_IDS: Final = frozenset(
    {"", "null", "(null)", "none", "nil", "undefined", "anonymous", "anon", "unknown", "guest", "test", "0", "-1",
     "-", "n/a", "na", "nan", "false", "true", "[object object]", "noemail@noemail.com"}
)  # fmt: skip
PLACEHOLDER_PATTERN: Final = r"^[0\s._-]*$"
_PLACEHOLDER: Final = re.compile(PLACEHOLDER_PATTERN)


@dataclass(frozen=True)
class Proof:
    """What shows how a decision was made; every field optional, stored as sent."""

    wording_version: str | None = None
    page_url: str | None = None
    ip_hash: str | None = None
    request_id: str | None = None
    tcf_string: str | None = None  # consent only
    consent_mode: Mapping[str, str] | None = None  # consent only: Google Consent Mode v2 values


NO_PROOF: Final = Proof()


def ledger_id(*parts: str) -> str:
    """A row id from the parts that make a decision what it is (unit separator between them)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def instant(value: datetime) -> str:
    """One spelling of an instant for ids and rows: UTC, microseconds (BigQuery's precision)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def normalize_subject(
    subject_type: object, value: object, type_field: str = "subject_type", value_field: str = "subject_value"
) -> tuple[SubjectType, str]:
    """The subject as refined.identities spells its node, or ConsentError.

    E-mails lower-cased, phones E.164 (as collect stores them before refinement reads them); visitor
    and member ids exactly as collected, and refused when identity resolution would block them
    (they identify nobody, so a decision under them could reach no one or everyone).
    """
    kind = parse(SubjectType, subject_type, type_field)
    if not isinstance(value, str) or not value.strip():
        raise ConsentError(value_field, "must be a non-empty string")
    if kind in (SubjectType.EMAIL, SubjectType.PHONE):
        return kind, _contact(kind is SubjectType.EMAIL, value, value_field)
    if len(value) > MAX_ID:
        raise ConsentError(value_field, f"is {len(value)} characters; at most {MAX_ID}")
    if value.strip().lower() in PLACEHOLDER_IDS or _PLACEHOLDER.search(value):
        raise ConsentError(value_field, f"{value[:40]!r} identifies nobody (a placeholder value)")
    return kind, value


def normalize_address(channel: object, value: object, field: str = "address") -> tuple[Channel, str]:
    """A channel's address as the subscription ledger keys it: e-mail lower-cased, phone E.164, push
    endpoint an https URL as given."""
    kind = parse(Channel, channel, "channel")
    if not isinstance(value, str) or not value.strip():
        raise ConsentError(field, "must be a non-empty string")
    if kind is Channel.WEBPUSH:
        endpoint = value.strip()
        if not endpoint.startswith("https://") or len(endpoint) > MAX_URL:
            raise ConsentError(field, f"a push endpoint must be an https URL of at most {MAX_URL} characters")
        return kind, endpoint
    return kind, _contact(kind is Channel.EMAIL, value, field)


def _contact(email: bool, value: str, field: str) -> str:
    """An e-mail or a phone number in shared/contacts.py's spelling, or ConsentError."""
    normal = normalize_email(value) if email else normalize_phone(value)
    if normal is None:
        raise ConsentError(field, "is not an e-mail address" if email else "is not a phone number")
    return normal


def consent_rows(
    site_id: str,
    subject_type: object,
    subject_value: object,
    decisions: Mapping[str, object],
    effective_at: datetime,
    recorded_at: datetime,
    source: object,
    *,
    visitor_id: str | None = None,
    proof: Proof = NO_PROOF,
) -> list[dict[str, Any]]:
    """One raw.consent row per purpose in `decisions` ({purpose: granted}), all or none.

    Raises ConsentError with the field of the first problem (`purposes.<name>` for a purpose).
    """
    _site(site_id)
    kind, value = normalize_subject(subject_type, subject_value)
    origin = parse(ConsentSource, source, "source")
    _times(effective_at, recorded_at)
    if not isinstance(decisions, Mapping) or not decisions:
        raise ConsentError("purposes", "at least one purpose with true (granted) or false (withdrawn)")
    chosen: dict[Purpose, bool] = {}
    for name, granted in decisions.items():
        purpose = parse(Purpose, name, f"purposes.{name}")
        if not isinstance(granted, bool):
            raise ConsentError(f"purposes.{name}", "must be true (granted) or false (withdrawn)")
        chosen[purpose] = granted
    if visitor_id is not None:
        normalize_subject(SubjectType.VISITOR, visitor_id, value_field="visitor_id")
    common = {
        "site_id": site_id,
        "event_date": effective_at.astimezone(UTC).date().isoformat(),
        "effective_at": instant(effective_at),
        "recorded_at": instant(recorded_at),
        "subject_type": kind.value,
        "subject_value": value,
        "source": origin.value,
        "visitor_id": visitor_id,
        **_proof(proof, consent=True),
    }
    return [
        {
            "consent_event_id": ledger_id(
                site_id, kind, value, purpose, "1" if granted else "0", instant(effective_at), origin
            ),
            **common,
            "purpose": purpose.value,
            "granted": granted,
        }
        for purpose, granted in chosen.items()
    ]


def subscription_row(
    site_id: str,
    channel: object,
    address: object,
    subscribed: bool,
    effective_at: datetime,
    recorded_at: datetime,
    source: object,
    *,
    reason: str | None = None,
    member_id: str | None = None,
    visitor_id: str | None = None,
    push_keys: Mapping[str, str] | None = None,
    expires_at: datetime | None = None,
    proof: Proof = NO_PROOF,
) -> dict[str, Any]:
    """One raw.subscription row, or ConsentError naming the field. `push_keys` and `expires_at`
    (the browser's expirationTime) belong to a webpush subscription only."""
    _site(site_id)
    kind, normal = normalize_address(channel, address)
    origin = parse(SubscriptionSource, source, "source")
    if not isinstance(subscribed, bool):
        raise ConsentError("subscribed", "must be true or false")
    if subscribed and origin in OPT_OUT_SOURCES:
        raise ConsentError("source", f"{origin.value} can only unsubscribe")
    _times(effective_at, recorded_at)
    if member_id is not None:
        normalize_subject(SubjectType.MEMBER, member_id, value_field="member_id")
    if visitor_id is not None:
        normalize_subject(SubjectType.VISITOR, visitor_id, value_field="visitor_id")
    if push_keys is not None:
        if kind is not Channel.WEBPUSH:
            raise ConsentError("push_keys", "only a webpush subscription has push keys")
        if set(push_keys) != {"p256dh", "auth"} or not all(
            isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in push_keys.values()
        ):
            raise ConsentError("push_keys", "must be exactly p256dh and auth, as non-empty strings")
    if expires_at is not None and kind is not Channel.WEBPUSH:
        raise ConsentError("expires_at", "only a webpush subscription has an expiry")
    if expires_at is not None and (not isinstance(expires_at, datetime) or expires_at.tzinfo is None):
        raise ConsentError("expires_at", "must be a timezone-aware datetime")
    if proof.tcf_string is not None or proof.consent_mode is not None:
        raise ConsentError("proof", "TCF strings and Consent Mode values belong to consent, not subscriptions")
    return {
        "subscription_event_id": ledger_id(
            site_id, kind, normal, "1" if subscribed else "0", instant(effective_at), origin
        ),
        "site_id": site_id,
        "event_date": effective_at.astimezone(UTC).date().isoformat(),
        "effective_at": instant(effective_at),
        "recorded_at": instant(recorded_at),
        "channel": kind.value,
        "address": normal,
        "subscribed": subscribed,
        "source": origin.value,
        "reason": _text(reason, "reason", MAX_TEXT),
        "member_id": member_id,
        "visitor_id": visitor_id,
        "push_keys": dict(push_keys) if push_keys is not None else None,
        "expires_at": instant(expires_at) if expires_at is not None else None,
        **_proof(proof, consent=False),
    }


def _site(site_id: object) -> None:
    if not isinstance(site_id, str) or not site_id.strip() or len(site_id) > MAX_TEXT:
        raise ConsentError("site_id", "must be a non-empty string")


def _times(effective_at: object, recorded_at: object) -> None:
    for name, value in (("effective_at", effective_at), ("recorded_at", recorded_at)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ConsentError(name, "must be a timezone-aware datetime")
    assert isinstance(effective_at, datetime) and isinstance(recorded_at, datetime)
    if effective_at > recorded_at + MAX_FUTURE:
        raise ConsentError("effective_at", f"is more than {MAX_FUTURE.days} day after it was recorded")


def _text(value: object, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ConsentError(field, f"must be a string of at most {limit} characters")
    return value


def _proof(proof: Proof, consent: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "wording_version": _text(proof.wording_version, "proof.wording_version", MAX_TEXT),
        "page_url": _text(proof.page_url, "proof.page_url", MAX_URL),
        "ip_hash": _text(proof.ip_hash, "proof.ip_hash", MAX_TEXT),
        "request_id": _text(proof.request_id, "proof.request_id", MAX_TEXT),
    }
    if not consent:
        return fields
    mode = proof.consent_mode
    if mode is not None and not (
        isinstance(mode, Mapping)
        and all(isinstance(k, str) and len(k) <= 64 and v in CONSENT_MODE_VALUES for k, v in mode.items())
    ):
        raise ConsentError("proof.consent_mode", "must map Consent Mode keys to 'granted' or 'denied'")
    return fields | {
        "tcf_string": _text(proof.tcf_string, "proof.tcf_string", MAX_TCF),
        "consent_mode": dict(mode) if mode is not None else None,
    }

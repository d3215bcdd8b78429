"""Consent and subscription columns of CRM customer files, as ledger rows.

Korean shops keep "마케팅 수신동의", "SMS 수신여부", "이메일 수신여부" beside each member, usually as
Y/N and sometimes with the date it was given. Each column becomes one decision in `raw.consent`
(subject: the member) or one subscription record in `raw.subscription` (the row's e-mail or phone),
with source `import`, the file as proof (request id) and the time the file gives: the row's
`consent_at` column, else its join date (consent is usually given at sign-up), else the time the
export was taken. Ids hash the decision and its time, so a re-import adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from shared.beacons import Rejection
from shared.consent.ledger import Proof, consent_rows, subscription_row
from shared.consent.vocabulary import ConsentError

CONSENT_TABLE: Final = "raw.consent"
SUBSCRIPTION_TABLE: Final = "raw.subscription"

# Import field -> the purpose it decides.
CONSENT_FIELDS: Final = {
    "marketing_consent": "marketing",
    "night_marketing_consent": "night_marketing",
    "ad_user_data_consent": "ad_user_data",
    "ad_personalization_consent": "ad_personalization",
}
# Import field -> (channel, the row's field holding the address).
SUBSCRIPTION_FIELDS: Final = {
    "email_opt_in": ("email", "email"),
    "sms_opt_in": ("sms", "phone"),
    "alimtalk_opt_in": ("alimtalk", "phone"),
}
FIELDS: Final = (*CONSENT_FIELDS, *SUBSCRIPTION_FIELDS, "consent_at")

_YES: Final = frozenset(
    {"y", "yes", "true", "1", "o", "동의", "수신", "수신동의", "예", "허용", "agree", "agreed", "opt-in"}
)
_NO: Final = frozenset(
    {"n", "no", "false", "0", "x", "미동의", "비동의", "거부", "동의안함", "수신거부", "비수신", "아니오", "opt-out"}
)


def flag(value: Any, label: str) -> bool:
    """Y/N in the spellings CRM exports use (Y/N, 1/0, O/X, 동의/미동의, 수신/수신거부), or Rejection."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower().replace(" ", "")
    if text in _YES:
        return True
    if text in _NO:
        return False
    detail = f"{label} is {str(value)[:40]!r}: expected Y/N (or 동의/미동의, 수신/수신거부, 1/0)"
    raise _Bad(Rejection("invalid_value", label, detail))


class _Bad(Exception):
    def __init__(self, rejection: Rejection):
        super().__init__(rejection.detail)
        self.rejection = rejection


def ledger_rows(
    values: Mapping[str, Any],
    site_id: str,
    member_id: str,
    effective_at: datetime,
    recorded_at: datetime,
    request_id: str,
    line: int,
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, Rejection]]]:
    """The ledger rows of one customer record, and the problems of the columns left out (each a
    column dropped with its reason, as other optional fields are)."""
    rows: list[tuple[str, dict[str, Any]]] = []
    problems: list[tuple[str, Rejection]] = []
    proof = Proof(request_id=request_id)
    decisions: dict[str, bool] = {}
    for name, purpose in CONSENT_FIELDS.items():
        if name in values:
            try:
                decisions[purpose] = flag(values[name], f"line {line}: {name}")
            except _Bad as bad:
                problems.append((name, bad.rejection))
    if decisions:
        try:
            made = consent_rows(
                site_id, "member", member_id, decisions, effective_at, recorded_at, "import", proof=proof
            )
        except ConsentError as exc:  # e.g. a placeholder member id, which identifies nobody
            name = next(n for n in CONSENT_FIELDS if n in values)
            label = f"line {line}: {name}"
            problems.append((name, Rejection("invalid_value", label, f"{label}: {exc}")))
        else:
            rows.extend((CONSENT_TABLE, row) for row in made)
    for name, (channel, address_field) in SUBSCRIPTION_FIELDS.items():
        if name not in values:
            continue
        label = f"line {line}: {name}"
        try:
            subscribed = flag(values[name], label)
        except _Bad as bad:
            problems.append((name, bad.rejection))
            continue
        address = values.get(address_field)
        if address is None:
            detail = f"{label} needs the row's {address_field}, which is missing"
            problems.append((name, Rejection("missing_field", label, detail)))
            continue
        try:
            row = subscription_row(
                site_id, channel, str(address), subscribed, effective_at, recorded_at, "import",
                member_id=member_id, proof=proof,
            )  # fmt: skip
        except ConsentError as exc:
            problems.append((name, Rejection("invalid_value", label, f"{label}: the {address_field} {exc}")))
            continue
        rows.append((SUBSCRIPTION_TABLE, row))
    return rows, problems

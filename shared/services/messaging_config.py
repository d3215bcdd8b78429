"""Campaigns, message templates and the messaging policy: checked the moment a marketer writes them.

validate_config calls these for Firestore `campaigns/{id}`, `message_templates/{id}` and
`messaging/policy`, as it does for segments and publications: the document's own fields by
shared/messaging (campaigns.py, templates.py), plus what needs other documents and the deployment —
the segment and template exist, the template has a part for every channel of the chain, each channel
has a sender configured here (`available`), and an advertising campaign has the sender's name and
opt-out the policy must give. The verdict is the document's `status` (state, error with its field
path, errors, message, at), written by the same round as the others (segments.write_verdict: our
own status write ends the loop). A template's or the policy's edit re-checks the campaigns that
depend on it, since whether they can send changed. Every edit is one audit row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Final

from shared.activation.publications import InvalidConfig
from shared.cron import MIN_INTERVAL_MINUTES
from shared.messaging import campaigns as campaign_rules
from shared.messaging.alimtalk import ALIMTALK_TEMPLATES
from shared.messaging.campaigns import CAMPAIGNS as CAMPAIGNS
from shared.messaging.campaigns import POLICY, MessagingPolicy, parse_policy, validate_campaign
from shared.messaging.campaigns import TEMPLATES as TEMPLATES
from shared.messaging.templates import parse_template
from shared.ports import DocumentStore, Warehouse
from shared.services.audit import record_change
from shared.services.publication_config import config_status
from shared.services.segments import SEGMENTS, rewrite_verdict, write_verdict
from shared.tam.events import DocumentChange

log = logging.getLogger(__name__)

ENTRY_POINT: Final = "validate_config"
POLICY_COLLECTION, POLICY_DOC = POLICY
_OUTPUT: Final = {
    CAMPAIGNS: frozenset(campaign_rules.OUTPUT_FIELDS),
    TEMPLATES: frozenset({"status"}),
    POLICY_COLLECTION: frozenset({"status"}),
}


def _user_fields(collection: str, doc: Mapping[str, Any] | None) -> dict[str, Any]:
    hidden = _OUTPUT.get(collection, frozenset({"status"}))
    return {k: v for k, v in (doc or {}).items() if k not in hidden}


def _canonical(collection: str) -> Callable[[Mapping[str, Any] | None], str]:
    def canonical(doc: Mapping[str, Any] | None) -> str:
        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else str(value)

        return json.dumps(_user_fields(collection, doc), sort_keys=True, ensure_ascii=False, default=plain)

    return canonical


def _policy(documents: DocumentStore) -> tuple[MessagingPolicy, str | None]:
    """The messaging policy in force, and the problem when its document does not parse (then the defaults)."""
    doc = documents.get(POLICY_COLLECTION, POLICY_DOC)
    try:
        return parse_policy(doc), None
    except InvalidConfig as exc:
        return parse_policy(None), f"{POLICY_COLLECTION}/{POLICY_DOC} is invalid ({exc.problems[0]})"


def campaign_status(
    campaign_id: str,
    doc: Any,
    documents: DocumentStore,
    available: Collection[str],
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> dict[str, Any]:
    policy, policy_problem = _policy(documents)
    try:
        campaign, template = validate_campaign(
            campaign_id,
            doc,
            segment_exists=lambda segment_id: documents.get(SEGMENTS, segment_id) is not None,
            template_doc=lambda template_id: documents.get(TEMPLATES, template_id),
            policy=policy,
            available_channels=available,
            min_interval_minutes=min_interval_minutes,
            now=now,
            alimtalk_templates=lambda code: documents.get(ALIMTALK_TEMPLATES, code),
        )
    except InvalidConfig as exc:
        return config_status(now, [str(p) for p in exc.problems])
    if policy_problem is not None:  # the campaign is fine; what it would be sent under is not
        return config_status(now, [f"policy: {policy_problem}; fix it before this campaign sends"])
    message = (
        f"OK: {campaign.kind} campaign to {campaign.audience} by {' then '.join(campaign.channels)}, "
        f"template {template.id}"
    )
    if not campaign.enabled:
        message += "; disabled: nothing is sent"
    elif campaign.dry_run:
        message += "; dry run: messages are rendered to the outbox, nothing is sent"
    return config_status(now, message=message)


def template_status(
    template_id: str, doc: Any, now: datetime, documents: DocumentStore | None = None
) -> dict[str, Any]:
    """A template's verdict; its alimtalk part is checked against `alimtalk_templates` in `documents`."""
    registry = (lambda code: documents.get(ALIMTALK_TEMPLATES, code)) if documents is not None else None
    try:
        template = parse_template(template_id, doc, registry)
    except InvalidConfig as exc:
        return config_status(now, [str(p) for p in exc.problems])
    channels = [c for c in ("email", "sms", "alimtalk") if template.has(c)]
    variables = ", ".join(sorted(template.variables)) or "none"
    return config_status(now, message=f"OK: {', '.join(channels)}; variables {variables}")


def policy_status(doc: Any, now: datetime) -> dict[str, Any]:
    try:
        policy = parse_policy(doc)
    except InvalidConfig as exc:
        return config_status(now, [str(p) for p in exc.problems])
    cap = policy.cap
    caps = f"at most {cap.max} advertising messages per {cap.days} days" if cap is not None else "no frequency cap"
    sender = "sender set" if policy.form is not None else "no sender: advertising campaigns cannot send"
    return config_status(now, message=f"OK: {caps}; {sender}")


def recheck_campaigns(
    documents: DocumentStore,
    available: Collection[str],
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    template_id: str | None = None,
) -> dict[str, str]:
    """Check again the campaigns using the template (or all, after a policy edit); write a status only
    where the verdict changed. Returns id -> new state."""
    where = [("template_id", "==", template_id)] if template_id is not None else []
    changed: dict[str, str] = {}
    for campaign_id, doc in documents.list(CAMPAIGNS, where):
        result = campaign_status(campaign_id, doc, documents, available, now, min_interval_minutes)
        if rewrite_verdict(documents, CAMPAIGNS, campaign_id, doc, result):
            changed[campaign_id] = str(result["state"])
    if changed:
        log.info("campaigns re-checked", extra={"template_id": template_id, "changed": changed})
    return changed


def handle_messaging_write(
    change: DocumentChange,
    warehouse: Warehouse,
    documents: DocumentStore,
    available: Collection[str],
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    event_id: str | None = None,
) -> str:
    """validate_config for campaigns, message_templates and messaging/policy; returns what happened."""
    if change.collection == CAMPAIGNS:

        def verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
            return campaign_status(change.doc_id, doc, documents, available, now, min_interval_minutes)
    elif change.collection == TEMPLATES:

        def verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
            return template_status(change.doc_id, doc, now, documents)
    elif change.collection == POLICY_COLLECTION and change.doc_id == POLICY_DOC:

        def verdict(doc: Mapping[str, Any]) -> dict[str, Any]:
            return policy_status(doc, now)
    else:
        return "ignored: not a messaging document"
    try:
        outcome = write_verdict(
            change, documents, _canonical(change.collection), verdict, lambda m: config_status(now, [m])
        )
        if change.collection != CAMPAIGNS and outcome in ("ok", "error", "skipped: deleted"):
            template = change.doc_id if change.collection == TEMPLATES else None
            recheck_campaigns(documents, available, now, min_interval_minutes, template_id=template)
        return outcome
    finally:
        old, new = (_user_fields(change.collection, d) if d is not None else None for d in (change.old, change.new))
        record_change(
            warehouse, change.collection, change.doc_id, old, new, ENTRY_POINT, recorded_at=now, event_id=event_id
        )

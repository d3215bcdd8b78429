"""Destinations and publications: check a marketer's edit the moment it is written, put the verdict on it.

validate_config calls these for Firestore `destinations/{id}` and `publications/{id}`, as it calls
handle_segment_write for segments. A document's own fields are checked by
shared/activation/publications.py; this adds what needs other documents and ports: a publication's
segment and destination exist, the pair works together (`check_pair`), and a destination's token
secret exists in the SecretStore (asked through `exists`, so no token is read to validate).

The verdict is the document's `status` map: `state` ok or error, `error` (the first problem, with
its field path), `errors` (all of them), `message` and `at`; sync_schedules' `status.schedule` is
kept. Our status write fires the trigger again, and that event changes only fields we write, so it
ends there. A destination's edit (or deletion) re-checks the publications that name it, since what
they can do depends on it. Every edit of the marketer's fields is one row of the audit log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from shared.activation.publications import (
    FACEBOOK,
    OUTPUT_FIELDS,
    Destination,
    InvalidConfig,
    Publication,
    check_pair,
    parse_destination,
    parse_publication,
)
from shared.cron import MIN_INTERVAL_MINUTES
from shared.ports import DocumentStore, TransientError, Warehouse
from shared.ports.secrets import SecretStore
from shared.services.audit import record_change
from shared.services.segments import MAX_MESSAGE, SEGMENTS, rewrite_verdict, write_verdict
from shared.tam.events import DocumentChange
from shared.tam.rules import Problem, describe

log = logging.getLogger(__name__)

DESTINATIONS = "destinations"
PUBLICATIONS = "publications"
ENTRY_POINT: Final = "validate_config"
SECRET_FIELD: Final = "access_token_secret"


def config_status(at: datetime, problems: Sequence[str] = (), message: str | None = None) -> dict[str, Any]:
    """The `status` map of a destination or publication: every key present, so a merge replaces it whole."""
    errors = [_short(p) for p in problems]
    return {
        "state": "error" if errors else "ok",
        "stage": "validate",
        "message": _short(message) if message is not None else (errors[0] if errors else None),
        "error": errors[0] if errors else None,
        "errors": errors,
        "at": at,
    }


def _short(text: str) -> str:
    """Cut to MAX_MESSAGE characters, lone surrogates escaped: the status can always be stored."""
    text = text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def user_fields(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The marketer's fields: equal before and after a write of ours (status, run results)."""
    return {k: v for k, v in (doc or {}).items() if k not in OUTPUT_FIELDS}


def _canonical(doc: Mapping[str, Any] | None) -> str:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else str(value)

    return json.dumps(user_fields(doc), sort_keys=True, ensure_ascii=False, default=plain)


# -- checks -----------------------------------------------------------------------------------------


def check_destination(destination_id: str, doc: Any, secrets: SecretStore) -> Destination:
    """A usable destination, or InvalidConfig: its own fields, then whether its token secret exists."""
    destination = parse_destination(destination_id, doc)
    name = destination.access_token_secret
    if name is None:
        return destination
    try:
        found = secrets.exists(name)
    except TransientError as exc:
        message = f"could not be checked: Secret Manager did not answer ({str(exc)[:120]}); save again to retry"
        raise InvalidConfig([Problem(SECRET_FIELD, message)]) from None
    except Exception as exc:  # noqa: BLE001 - the marketer still gets a verdict at the field
        log.exception("secret check failed", extra={"destination_id": destination_id})
        raise InvalidConfig([Problem(SECRET_FIELD, f"could not be checked: {type(exc).__name__}")]) from None
    if not found:
        message = (
            f"no secret {describe(name)} with an enabled version that this deployment can see; "
            "store the access token in Secret Manager under this name"
        )
        raise InvalidConfig([Problem(SECRET_FIELD, message)])
    return destination


def check_publication(
    publication_id: str,
    doc: Any,
    documents: DocumentStore,
    secrets: SecretStore,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> tuple[Publication, Destination]:
    """A usable publication and its destination, or InvalidConfig naming the publication's fields.

    Problems of the destination itself are reported at `destination_id` (its own status has them
    in full), so the marketer sees why an otherwise valid publication cannot run.
    """
    publication = parse_publication(publication_id, doc, min_interval_minutes=min_interval_minutes, now=now)
    problems: list[Problem] = []
    if documents.get(SEGMENTS, publication.segment_id) is None:
        segment = publication.segment_id
        problems.append(Problem("segment_id", f"no segment {describe(segment)}: segments/{segment} does not exist"))
    destination: Destination | None = None
    destination_doc = documents.get(DESTINATIONS, publication.destination_id)
    if destination_doc is None:
        target = publication.destination_id
        problems.append(
            Problem("destination_id", f"no destination {describe(target)}: destinations/{target} does not exist")
        )
    else:
        try:
            destination = check_destination(publication.destination_id, destination_doc, secrets)
        except InvalidConfig as exc:
            problems.append(
                Problem(
                    "destination_id",
                    f"destination {describe(publication.destination_id)} is not usable: {exc.problems[0]}",
                )
            )
    if destination is not None:
        problems.extend(check_pair(publication, destination))
    if problems or destination is None:
        raise InvalidConfig(problems)
    return publication, destination


def destination_status(destination_id: str, doc: Any, secrets: SecretStore, now: datetime) -> dict[str, Any]:
    try:
        destination = check_destination(destination_id, doc, secrets)
    except InvalidConfig as exc:
        return config_status(now, [str(p) for p in exc.problems])
    if destination.type == FACEBOOK:
        message = (
            f"OK: Facebook ad account {destination.ad_account_id}, token in secret "
            f"{destination.access_token_secret}, Graph API {destination.api_version}"
        )
    else:
        message = "OK: hashed file export"
    return config_status(now, message=f"{message}; default keys {', '.join(destination.default_keys)}")


def publication_status(
    publication_id: str,
    doc: Any,
    documents: DocumentStore,
    secrets: SecretStore,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> dict[str, Any]:
    try:
        publication, destination = check_publication(publication_id, doc, documents, secrets, now, min_interval_minutes)
    except InvalidConfig as exc:
        return config_status(now, [str(p) for p in exc.problems])
    audience = "a new audience" if publication.creates_audience else f"audience {publication.audience_id}"
    when = (
        f"after each build of the segment and at {publication.schedule.cron} ({publication.schedule.timezone})"
        if publication.schedule is not None
        else "after each build of the segment"
    )
    message = (
        f"OK: segment {publication.segment_id} into {audience} of {destination.id}, "
        f"keys {', '.join(publication.keys_for(destination))}, mode {publication.mode}, {when}"
    )
    if not publication.enabled:
        message += "; disabled: nothing is published"
    elif publication.dry_run:
        message += "; dry run: requests go to the outbox, nothing is sent"
    return config_status(now, message=message)


# -- the trigger ------------------------------------------------------------------------------------


def handle_destination_write(
    change: DocumentChange,
    warehouse: Warehouse,
    documents: DocumentStore,
    secrets: SecretStore,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    event_id: str | None = None,
) -> str:
    """validate_config for a destination: its status, then its publications' statuses again;
    returns what happened to the destination's own status."""
    if change.collection != DESTINATIONS:
        return "ignored: not a destination"
    try:
        outcome = write_verdict(
            change,
            documents,
            _canonical,
            lambda doc: destination_status(change.doc_id, doc, secrets, now),
            lambda message: config_status(now, [message]),
        )
        if outcome in ("ok", "error", "skipped: deleted"):  # the marketer's fields changed
            recheck_publications(change.doc_id, documents, secrets, now, min_interval_minutes)
        return outcome
    finally:
        _audit(change, warehouse, now, event_id)


def handle_publication_write(
    change: DocumentChange,
    warehouse: Warehouse,
    documents: DocumentStore,
    secrets: SecretStore,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    event_id: str | None = None,
) -> str:
    """validate_config for a publication: its status; returns what happened."""
    if change.collection != PUBLICATIONS:
        return "ignored: not a publication"
    try:
        return write_verdict(
            change,
            documents,
            _canonical,
            lambda doc: publication_status(change.doc_id, doc, documents, secrets, now, min_interval_minutes),
            lambda message: config_status(now, [message]),
        )
    finally:
        _audit(change, warehouse, now, event_id)


def recheck_publications(
    destination_id: str,
    documents: DocumentStore,
    secrets: SecretStore,
    now: datetime,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
) -> dict[str, str]:
    """Check again every publication naming the destination; write a status only where the verdict
    changed (state or errors), so an unchanged one keeps its time. Returns id -> new state."""
    changed: dict[str, str] = {}
    for publication_id, doc in documents.list(PUBLICATIONS, [("destination_id", "==", destination_id)]):
        result = publication_status(publication_id, doc, documents, secrets, now, min_interval_minutes)
        if rewrite_verdict(documents, PUBLICATIONS, publication_id, doc, result):
            changed[publication_id] = str(result["state"])
    if changed:
        log.info("publications re-checked", extra={"destination_id": destination_id, "changed": changed})
    return changed


def _audit(change: DocumentChange, warehouse: Warehouse, now: datetime, event_id: str | None) -> None:
    """One audit row per edit of the marketer's fields (hashes and field names, never values)."""
    old, new = (user_fields(d) if d is not None else None for d in (change.old, change.new))
    record_change(
        warehouse, change.collection, change.doc_id, old, new, ENTRY_POINT, recorded_at=now, event_id=event_id
    )

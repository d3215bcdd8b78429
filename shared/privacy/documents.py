"""Firestore documents that name a person: every collection the platform owns is declared here.

Like tables, collections say which fields identify the person a document is about; erasure deletes
the documents whose field holds one of the subject's identifiers, and export copies them. A
collection of marketer configuration or job results names nobody and says so with no keys;
tests/unit/test_privacy_documents.py fails when the code uses a collection missing from this list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.ports import DocumentStore
from shared.privacy.statements import Keys

REQUESTS: Final = "privacy_requests"


@dataclass(frozen=True)
class DocumentKey:
    """A top-level field holding an identifier of `type` (visitor, member, email, phone, customer)."""

    field: str
    type: str


# Collection -> the fields naming a person. privacy_requests names the person too, but is kept as
# the record of the request: its identifiers are replaced by their suppression hashes once done.
COLLECTIONS: Final[Mapping[str, tuple[DocumentKey, ...]]] = {
    "segments": (),
    "segmentlets": (),
    "templates": (),
    "discoveries": (),
    "runs": (),
    REQUESTS: (),
    "deliveries": (),  # campaign delivery claims: state, times, codes, the provider's id; no one named
    "send_batches": (),  # published batches of delivery ids and their counts
    "destinations": (),  # marketers' configuration: ad accounts and secret names, no one named
    "publications": (),
    "campaigns": (),
    "message_templates": (),
    "messaging": (),  # messaging/policy: caps, hours, the sender's business name and 080 number
    "alimtalk_templates": (),  # Kakao's approved AlimTalk templates: code, status, content with #{} variables
    "alimtalk_hooks": (),  # NHN webhook ids received (deduplication): times and counts, no one named
    "reports": (),  # reports/latest: where the newest report page is, its window and size; no one named
}


def find_documents(
    documents: DocumentStore, keys: Keys, collections: Mapping[str, tuple[DocumentKey, ...]] = COLLECTIONS
) -> dict[str, dict[str, dict[str, Any]]]:
    """Collection -> id -> document, for every document whose declared field holds one of the keys."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for collection, fields in sorted(collections.items()):
        for key in fields:
            values = keys.values(key.type)
            if values:
                matches = documents.list(collection, [(key.field, "in", values)])
                found.setdefault(collection, {}).update(
                    (doc_id, doc) for doc_id, doc in matches if doc.get("site_id", keys.site_id) == keys.site_id
                )
    return {collection: docs for collection, docs in found.items() if docs}


def erase_documents(
    documents: DocumentStore, keys: Keys, collections: Mapping[str, tuple[DocumentKey, ...]] = COLLECTIONS
) -> dict[str, int]:
    """Delete those documents; return how many per collection (then find_documents finds none)."""
    found = find_documents(documents, keys, collections)
    for collection, docs in found.items():
        for doc_id in docs:
            documents.delete(collection, doc_id)
    return {collection: len(docs) for collection, docs in found.items()}

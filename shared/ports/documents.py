"""The DocumentStore port: marketer-facing configuration and job results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class DocumentStore(Protocol):
    """Marketer-facing configuration and results: Firestore (the emulator locally).

    Collections used: segments, templates, segmentlets, discoveries, runs, and later destinations,
    publications, campaigns, consents. Documents are plain JSON-compatible dicts; timestamps are
    timezone-aware datetimes.
    """

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document, or None when it does not exist."""
        ...

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        """Create or overwrite (merge=True: update only the given top-level fields)."""
        ...

    def create(self, collection: str, doc_id: str, data: Mapping[str, Any]) -> bool:
        """Create the document only if it does not exist, atomically; False when it already did.

        The claim a send or a run takes before it acts: of two that race, exactly one gets True.
        """
        ...

    def list(self, collection: str, where: Sequence[tuple[str, str, Any]] = ()) -> list[tuple[str, dict[str, Any]]]:
        """(id, document) pairs, filtered by (field, op, value) with ops ==, !=, <, <=, >, >=, in."""
        ...

    def delete(self, collection: str, doc_id: str) -> None:
        """Delete the document if it exists."""
        ...

"""The BlobStore port: files the platform hands to people (privacy exports, later reports).

A Cloud Storage bucket on GCP, a folder locally (shared/adapters/folder_blobs.py).
"""

from __future__ import annotations

from typing import Protocol


class BlobStore(Protocol):
    """Named files, written whole; a name is a relative '/'-separated path."""

    def write(self, name: str, data: bytes, content_type: str) -> str:
        """Store the bytes under name, replacing any earlier file; return where they are (path or URL)."""
        ...

"""Segment documents kept as YAML files (examples/segments/, ops repositories), read into documents.

Shared by `scripts/segments` and the demo, so that a file means the same segment to both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.tam.rules import describe


class UnreadableSegmentFile(Exception):
    """The file cannot be read or holds no document (a mapping); the message names the file."""


def load_file(path: Path, document: str = "segment document") -> tuple[str, dict[str, Any]]:
    """(document id, document) from a YAML file: the id is its `id:` key, else the file name's stem.

    `document` names what the file should hold in messages (campaign files use the same reader)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnreadableSegmentFile(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UnreadableSegmentFile(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except yaml.YAMLError as exc:
        raise UnreadableSegmentFile(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise UnreadableSegmentFile(f"{path}: nests too deeply to be a {document}") from exc
    except ValueError as exc:  # PyYAML converts scalars with int(), which refuses over 4300 digits
        raise UnreadableSegmentFile(f"{path}: not valid YAML: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise UnreadableSegmentFile(f"{path}: expected a {document} (a mapping), got {type(data).__name__}")
    doc_id = data.get("id", path.stem)
    return doc_id if isinstance(doc_id, str) else describe(doc_id), data

"""The resume point of an import, so that an interrupted one goes on after its last committed chunk."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.offline_import.shaping import ImportJob


DEFAULT_STATE_DIR = Path(__file__).resolve().parents[2] / ".local" / "import-state"


class ImportState:
    """The resume point of one (file content, kind, site, mapping), as a small JSON file."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def for_job(cls, state_dir: Path, job: ImportJob) -> ImportState:
        key = hashlib.sha256(f"{job.kind}\x1f{job.site_id}\x1f{job.plan.fingerprint()}".encode()).hexdigest()[:12]
        return cls(state_dir / f"{job.source.sha256}-{key}.json")

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash leaves the old state or the new one

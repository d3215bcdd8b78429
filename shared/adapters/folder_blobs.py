"""BlobStore on a local folder: the local stack's stand-in for a Cloud Storage bucket."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath


class FolderBlobs:
    """Files under one root; each written to a temporary name and renamed, so a reader never sees half."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def write(self, name: str, data: bytes, content_type: str) -> str:
        path = self._target(name)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
        return str(path)

    def write_file(self, name: str, path: Path, content_type: str) -> str:
        """As write, from a local file copied on disk: an audience file is never read into memory."""
        target = self._target(name)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        os.replace(partial, target)
        return str(target)

    def _target(self, name: str) -> Path:
        relative = PurePosixPath(name)
        if relative.is_absolute() or not relative.parts or any(p in ("", ".", "..") for p in relative.parts):
            raise ValueError(f"blob name must be a relative path without '..', got {name!r}")
        path = self.root.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

"""The local SecretStore: an environment variable CDP_SECRET_<NAME>, else a file in a folder.

The name is upper-cased with `-` and `.` as `_` (`facebook-access-token` is read from
CDP_SECRET_FACEBOOK_ACCESS_TOKEN); the folder (CDP_SECRETS_DIR) holds one file per secret, named as
the secret, the way a mounted Secret Manager volume would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from shared.ports.secrets import SecretMissing, split_name

_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")  # Secret Manager's secret ids


def env_name(name: str) -> str:
    return "CDP_SECRET_" + re.sub(r"[-.]", "_", name).upper()


class LocalSecrets:
    def __init__(self, folder: str | Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._folder = Path(folder) if folder else None
        self._environ = os.environ if environ is None else environ

    def get(self, name: str) -> str:
        name = split_name(name)[1]  # locally one value per secret id, whatever project or version is named
        if not _NAME.fullmatch(name):
            raise SecretMissing(f"{name[:80]!r} is not a secret id (letters, digits, - and _)")
        value = self._environ.get(env_name(name))
        if value:
            return value
        if self._folder is not None:
            path = self._folder / name
            if path.is_file():
                text = path.read_text(encoding="utf-8").strip()
                if text:
                    return text
        where = f" or a file {self._folder / name}" if self._folder is not None else ""
        raise SecretMissing(f"secret {name} not found: set {env_name(name)}{where}")

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except SecretMissing:
            return False
        return True

"""The SecretStore port: secrets a marketer's configuration names at run time.

Most secrets are fixed per function and bound as environment variables at deploy (shared/config.py).
A destination's access token is different: the destination document names a Secret Manager secret,
and a run reads it when it runs, so a marketer can add an ad account without a redeploy. Secret
Manager on GCP (shared/adapters/secret_manager.py); locally environment variables or a folder
(shared/adapters/local_secrets.py).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Protocol

_NAME = re.compile(r"(?:projects/([^/]+)/secrets/)?([^/]+)(?:/versions/([^/]+))?")


def split_name(name: str) -> tuple[str | None, str, str]:
    """A secret as a destination may name it (`meta-token`, `meta-token/versions/3` or the full
    `projects/p/secrets/meta-token/versions/3`): its project (None: ours), id and version."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise SecretMissing(f"{name[:80]!r} is not a secret name")
    project, secret, version = match.groups()
    return project, secret, version or "latest"


class SecretMissing(LookupError):
    """The named secret, or its latest enabled version, does not exist (or we may not read it)."""


class SecretStore(Protocol):
    def get(self, name: str) -> str:
        """The latest version's value; SecretMissing when there is none. The value never reaches a log."""
        ...

    def exists(self, name: str) -> bool:
        """Whether get(name) would find a value, without reading it where the store allows."""
        ...


class CachedSecret:
    """One secret read through a SecretStore at most every `ttl` seconds: for a value each request
    needs (a webhook's signing token) without a Secret Manager call per request, and without binding
    it at deploy, where a secret with no version yet would stop the function from starting."""

    def __init__(self, store: SecretStore, name: str, ttl: float = 300.0) -> None:
        self._store = store
        self._name = name
        self._ttl = ttl
        self._value: str | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> str:
        """The value; SecretMissing (or TransientError) when it cannot be read and none is cached."""
        with self._lock:
            if self._value is None or time.monotonic() - self._read_at > self._ttl:
                self._value = self._store.get(self._name)
                self._read_at = time.monotonic()
            return self._value

"""The SecretStore port: secrets a marketer's configuration names at run time.

Most secrets are fixed per function and bound as environment variables at deploy (shared/config.py).
A destination's access token is different: the destination document names a Secret Manager secret,
and a run reads it when it runs, so a marketer can add an ad account without a redeploy. Secret
Manager on GCP (shared/adapters/secret_manager.py); locally environment variables or a folder
(shared/adapters/local_secrets.py).
"""

from __future__ import annotations

from typing import Protocol


class SecretMissing(LookupError):
    """The named secret, or its latest enabled version, does not exist (or we may not read it)."""


class SecretStore(Protocol):
    def get(self, name: str) -> str:
        """The latest version's value; SecretMissing when there is none. The value never reaches a log."""
        ...

    def exists(self, name: str) -> bool:
        """Whether get(name) would find a value, without reading it where the store allows."""
        ...

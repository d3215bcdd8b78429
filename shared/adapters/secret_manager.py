"""The SecretStore on GCP: Secret Manager, latest version of a secret in the project.

Each run reads the token afresh (a rotated token is used at the next run, with no redeploy); the
value is returned, never logged. A secret that does not exist, has no enabled version, or that the
function's service account may not read is SecretMissing: to the marketer all three mean "fix the
secret named in the destination".
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions, retry

from shared.ports.errors import TransientError
from shared.ports.secrets import SecretMissing, split_name


class SecretManagerSecrets:
    def __init__(self, project: str, client: Any = None, timeout: float = 30.0) -> None:
        self._given = (
            client  # None: the default client, made at first use (a run with no secret to read never needs it)
        )
        self._project = project
        self._timeout = timeout
        self._retry = retry.Retry(predicate=retry.if_transient_error, initial=0.2, maximum=5.0, timeout=timeout)

    @property
    def _client(self) -> Any:
        if self._given is None:
            from google.cloud import secretmanager

            self._given = secretmanager.SecretManagerServiceClient()
        return self._given

    def _version(self, name: str) -> str:
        project, secret, version = split_name(name)
        return f"projects/{project or self._project}/secrets/{secret}/versions/{version}"

    def get(self, name: str) -> str:
        try:
            response = self._client.access_secret_version(
                request={"name": self._version(name)}, retry=self._retry, timeout=self._timeout
            )
        except (exceptions.NotFound, exceptions.Forbidden, exceptions.FailedPrecondition, exceptions.BadRequest) as exc:
            # Forbidden covers PermissionDenied; a disabled version: FailedPrecondition (gRPC), BadRequest (REST)
            raise SecretMissing(f"secret {name} in project {self._project}: {exc.message}") from None
        except (exceptions.RetryError, exceptions.ServerError, exceptions.DeadlineExceeded) as exc:
            raise TransientError(f"Secret Manager did not answer: {exc}") from None
        value: str = response.payload.data.decode("utf-8").strip()
        if not value:
            raise SecretMissing(f"secret {name} in project {self._project}: the latest version is empty")
        return value

    def exists(self, name: str) -> bool:
        """Whether the version get() would read (the latest unless the name gives one) is enabled, from
        its metadata (versions.get): a checker such as validate_config needs roles/secretmanager.viewer
        on the secret, never the token. An enabled but empty version counts as existing; get()
        refuses it at run time."""
        try:
            version = self._client.get_secret_version(
                request={"name": self._version(name)}, retry=self._retry, timeout=self._timeout
            )
        except (exceptions.NotFound, exceptions.Forbidden, exceptions.FailedPrecondition, exceptions.BadRequest):
            return False
        except (exceptions.RetryError, exceptions.ServerError, exceptions.DeadlineExceeded) as exc:
            raise TransientError(f"Secret Manager did not answer: {exc}") from None
        return getattr(version.state, "name", None) == "ENABLED"

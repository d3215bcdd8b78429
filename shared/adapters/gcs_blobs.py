"""BlobStore on a Cloud Storage bucket: where files for people go on GCP (a function has no folder
that outlives it).

Each write uploads the whole object (multipart up to 8 MiB, a resumable session above it: the
client's choice), replacing any earlier object of that name; a reader sees the old object or the
new one, never half. There is no precondition, so an upload retried after a lost answer writes the
same bytes again: retrying is safe, and is done in place within `timeout`. Past that an outage is
TransientError; a bucket that is missing or closed to the service account is an OSError naming the
bucket, as FolderBlobs raises for a missing or read-only folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from google.api_core import exceptions as gexc

from shared.ports.errors import TransientError

CHUNK_SIZE = 16 * 1024 * 1024  # a resumable upload's request size: memory held, and what a retry resends
_MAX_NAME_BYTES = 1024  # Cloud Storage's limit on an object name (UTF-8)
_TRANSIENT = (
    gexc.ServerError,  # 500, 502, 503, 504 once the retries ran out
    gexc.TooManyRequests,
    gexc.RetryError,
    requests.ConnectionError,
    requests.Timeout,
)


class GcsBlobs:
    """Objects under gs://<bucket>/<prefix>/. `client` is a google.cloud.storage.Client (default:
    the function's own credentials and project); `chunk_size` a multiple of 256 KiB."""

    def __init__(
        self, bucket: str, prefix: str = "", client: Any = None, timeout: float = 60.0, chunk_size: int = CHUNK_SIZE
    ) -> None:
        import google.cloud.storage as storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        if not bucket or "/" in bucket or ":" in bucket:
            raise ValueError(f"bucket must be a bare bucket name, got {bucket!r}")
        self.bucket = bucket
        self.prefix = "/".join(_parts(prefix.strip("/"))) if prefix.strip("/") else ""
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._client = client if client is not None else storage.Client()
        self._bucket = self._client.bucket(bucket)
        # The library's predicate (429, 408, 5xx, dropped connections) under a deadline a function can
        # afford (its own is 120 s); unconditional, since an overwrite with the same bytes is idempotent.
        self._retry = DEFAULT_RETRY.with_timeout(timeout)

    def object_name(self, name: str) -> str:
        """prefix/name, refused unless name is a plain relative path Cloud Storage accepts."""
        full = "/".join([self.prefix, *_parts(name)] if self.prefix else _parts(name))
        if len(full.encode("utf-8")) > _MAX_NAME_BYTES:
            raise ValueError(f"blob name {full!r} is longer than Cloud Storage's {_MAX_NAME_BYTES} bytes")
        return full

    def write(self, name: str, data: bytes, content_type: str) -> str:
        full = self.object_name(name)
        with _mapped(self.bucket, full):
            self._blob(full).upload_from_string(
                data, content_type=content_type, retry=self._retry, timeout=self.timeout
            )
        return f"gs://{self.bucket}/{full}"

    def write_file(self, name: str, path: Path, content_type: str) -> str:
        """As write, streamed from a local file one chunk at a time: a large file is never all in memory."""
        full = self.object_name(name)
        with _mapped(self.bucket, full):
            self._blob(full).upload_from_filename(
                str(path), content_type=content_type, retry=self._retry, timeout=self.timeout
            )
        return f"gs://{self.bucket}/{full}"

    def _blob(self, full: str) -> Any:
        return self._bucket.blob(full, chunk_size=self.chunk_size)


@contextlib.contextmanager
def _mapped(bucket: str, name: str) -> Iterator[None]:
    """The client's errors as the port's: an outage, or a bucket that cannot take the object."""
    try:
        yield
    except gexc.NotFound as exc:
        message = f"Cloud Storage bucket {bucket!r} does not exist or is not visible here: {_reason(exc)}"
        raise FileNotFoundError(message) from None
    except gexc.Forbidden as exc:
        # replacing an object takes storage.objects.delete as well as create (roles/storage.objectUser)
        message = f"Cloud Storage bucket {bucket!r}: this service account may not write {name}: {_reason(exc)}"
        raise PermissionError(message) from None
    except _TRANSIENT as exc:
        raise TransientError(f"Cloud Storage did not take gs://{bucket}/{name}: {_reason(exc)}") from None


def _parts(name: str) -> tuple[str, ...]:
    """The name's '/'-separated parts. Stricter than a path, as 'a//b' or 'a/./b' would be one file
    in a folder but another object in a bucket; line breaks Cloud Storage refuses itself."""
    parts = tuple(name.split("/"))
    if any(p in ("", ".", "..") for p in parts):  # also '' and '/abs' (a leading empty part)
        raise ValueError(f"blob name must be a relative path without '..', got {name!r}")
    if "\r" in name or "\n" in name:
        raise ValueError(f"blob name must not contain line breaks, got {name!r}")
    return parts


def _reason(exc: BaseException) -> str:
    """The API's own message when it sent one, else the exception's text, on one short line."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        return f"gave up after retries: {_reason(exc.cause)}"
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return " ".join(str(exc).split())[:300]

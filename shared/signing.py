"""Bus messages signed by the collector, so the loader stores only what collect produced.

Anyone who may publish to the beacons topic (a Cloud Scheduler job created by a holder of
cloudscheduler.jobs.create, a mistaken script) could otherwise write rows the loader trusts without
collect's validation. collect adds an HMAC-SHA256 of the message body, keyed by a secret that only
collect and the loader hold (Secret Manager `bus-key`); the loader refuses a message whose
signature is missing or wrong, as a bad row that keeps it whole for inspection or replay.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

SIGNATURE_ATTRIBUTE: Final = "sig"


def sign(data: bytes, key: str) -> str:
    """The hex HMAC-SHA256 of a message body (about 2 µs for a beacon message)."""
    return hmac.new(key.encode("utf-8"), data, hashlib.sha256).hexdigest()


def signed_by(data: bytes, attributes: Mapping[str, str], key: str) -> bool:
    """Whether the message carries the body's signature under `key` (compared in constant time)."""
    given = attributes.get(SIGNATURE_ATTRIBUTE)
    return given is not None and hmac.compare_digest(given, sign(data, key))

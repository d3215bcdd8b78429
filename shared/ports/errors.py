"""Errors the ports raise, shared by every adapter so services can tell an outage from bad content."""

from __future__ import annotations


class TransientError(RuntimeError):
    """A dependency is unavailable for now; the caller should retry (HTTP 503, Pub/Sub redelivery)."""


class JobRejected(ValueError):
    """The scheduler refused one job for its content (a cron it does not accept): not worth a retry."""


class RowsStillStreaming(RuntimeError):
    """A DML statement would touch rows BigQuery still holds in its streaming buffer (rows streamed in
    the last 30-90 minutes), which it refuses to modify: the same statement succeeds later."""

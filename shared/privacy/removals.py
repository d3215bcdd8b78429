"""The hook through which an erasure asks for the person's removal from ad-platform audiences.

Publishing (a later issue) uploads audiences to Facebook and others and is the only part that knows
what it uploaded, so an erasure cannot remove people itself. It calls this port with the erased
customers instead; until publishing provides an implementation that removes them at once, the
default records each request in privacy.audience_removals, where publishing finds the pending
ones: a request is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from shared.ports import Warehouse
from shared.sql import load_sql


class AudienceRemovals(Protocol):
    """Removal of erased customers from every audience uploaded to an ad platform."""

    def request_removal(self, site_id: str, customers: Mapping[str, str], requested_at: datetime) -> int:
        """Ask for the removal of these customers (customer id -> privacy request id); return how many."""
        ...


class RemovalQueue:
    """AudienceRemovals that records the requests in privacy.audience_removals (one MERGE per call)."""

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse

    def request_removal(self, site_id: str, customers: Mapping[str, str], requested_at: datetime) -> int:
        if customers:
            entries = sorted(f"{customer}|{request}" for customer, request in customers.items())
            params = {"site_id": site_id, "entries": entries, "requested_at": requested_at}
            self._warehouse.query(load_sql("privacy/audience_removals"), params)
        return len(customers)

"""Ports: what the services need from the outside world, as Protocols, one module per port.

Services take these as parameters; adapters in shared/adapters implement them; the composition root
(shared/bootstrap.py) picks the adapters from settings. Unit tests pass fakes from tests/fakes.py.
The names are re-exported here so callers can write `from shared.ports import Warehouse`.
"""

from shared.ports.audiences import (
    AudienceDestination,
    AudienceGone,
    AudienceInfo,
    BatchResult,
    DestinationError,
    DestinationUnavailable,
    PolicyBlocked,
    SessionStuck,
    Throttled,
    TokenExpired,
    UploadSession,
    Usage,
)
from shared.ports.bus import EventBus
from shared.ports.documents import DocumentStore
from shared.ports.errors import JobRejected, RowsStillStreaming, TransientError
from shared.ports.scheduler import JobScheduler, JobSpec
from shared.ports.warehouse import InsertResult, MLWarehouse, RowError, Warehouse

__all__ = [
    "AudienceDestination",
    "AudienceGone",
    "AudienceInfo",
    "BatchResult",
    "DestinationError",
    "DestinationUnavailable",
    "DocumentStore",
    "EventBus",
    "InsertResult",
    "JobRejected",
    "JobScheduler",
    "JobSpec",
    "MLWarehouse",
    "PolicyBlocked",
    "RowError",
    "RowsStillStreaming",
    "SessionStuck",
    "Throttled",
    "TokenExpired",
    "TransientError",
    "UploadSession",
    "Usage",
    "Warehouse",
]

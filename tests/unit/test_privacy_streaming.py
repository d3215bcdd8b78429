"""BigQuery's streaming buffer: the adapter turns its DML refusal into RowsStillStreaming, and an
erasure that meets it stays pending, names the table, and completes on a later retry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions

from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.ports import RowsStillStreaming, TransientError
from shared.privacy.removals import RemovalQueue
from shared.privacy.subjects import build_request, identifier
from shared.services import privacy
from shared.services import refine as refinement
from tests.builders import History, new_warehouse

NOW = datetime(2026, 5, 10, 12, tzinfo=UTC)
REFUSAL = (
    "UPDATE or DELETE statement over table acme.cdp_raw.page would affect rows in the streaming buffer, "
    "which is not supported"
)


class RaisingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def query_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


def test_the_adapter_names_the_streaming_buffer_refusal() -> None:
    warehouse = BigQueryWarehouse("acme", "cdp_", client=RaisingClient(api_exceptions.BadRequest(REFUSAL)))
    with pytest.raises(RowsStillStreaming, match="streaming buffer"):
        warehouse.query("delete from raw.page where event_date = @d", {"d": date(2026, 5, 1)})
    other = BigQueryWarehouse("acme", "cdp_", client=RaisingClient(api_exceptions.BadRequest("Syntax error")))
    with pytest.raises(api_exceptions.BadRequest):
        other.query("delete from raw.page where event_date = @d", {"d": date(2026, 5, 1)})
    busy = BigQueryWarehouse("acme", "cdp_", client=RaisingClient(api_exceptions.ServiceUnavailable("busy")))
    with pytest.raises(TransientError):
        busy.query("select 1 as one")


class StreamingWarehouse:
    """Our Warehouse port over DuckDB, refusing deletes from raw.page as BigQuery does while rows of
    the table are still streaming."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.streaming = inner, True

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.streaming and sql.startswith("delete from raw.page"):
            raise RowsStillStreaming(REFUSAL)
        result: list[dict[str, Any]] = self.inner.query(sql, params)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_erasure_meeting_the_buffer_stays_pending_then_completes() -> None:
    h = History()
    h.visit("05-01 10:00", "kim-v1", "/")
    h.add("raw.user", "05-01 10:01", "kim-v1", "kim-m", email="kim@example.com")
    inner = new_warehouse(h)
    refinement.refine(inner, None, date(2026, 5, 1), date(2026, 5, 1), NOW)
    warehouse = StreamingWarehouse(inner)
    request = build_request("req-1", "erase", [identifier("member", "kim-m")], "shop")

    [first] = privacy.erase(warehouse, [request], salt="s", now=NOW, removals=RemovalQueue(inner))
    assert first.status == "pending" and first.waiting == ["raw.page"]
    assert first.tables["raw.page"].remaining == 1 and first.tables["raw.user"].remaining == 0
    assert first.tables["refined.identities"].found == 0, "kept for the retry's expansion"
    assert "waiting for BigQuery's streaming buffer: raw.page" in first.summary()

    warehouse.streaming = False
    [retry] = privacy.erase(warehouse, [request], salt="s", now=NOW, removals=RemovalQueue(inner))
    assert retry.status == "done" and retry.waiting == []
    assert retry.tables["raw.page"].erased == 1 and retry.tables["refined.identities"].erased == 3
    assert inner.query("select count(*) as n from refined.identities") == [{"n": 0}]

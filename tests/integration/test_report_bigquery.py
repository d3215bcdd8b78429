"""The report's statements through BigQueryWarehouse (the real client) on bqemulator: the report world's
rows copied table by table, then every section must come out as on DuckDB. This checks that
sql/report is BigQuery's SQL and its parameters are typed as BigQuery wants them, not only sqlglot's
idea of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.reporting import compute
from shared.reporting.model import Report
from shared.schema import table_specs
from tests.builders import SALT
from tests.report_world import DAYS, NOW, World, build_world

PROJECT = "cdp-local"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Report, Report]]:
    world: World = build_world()
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu"), PROJECT)
    try:
        client = bigquery_client(server, PROJECT)
        bigquery = BigQueryWarehouse(
            PROJECT, f"t{uuid.uuid4().hex[:8]}_", client=client, retry_deadline=10, request_timeout=30
        )
        specs = list(table_specs().values())
        bigquery.ensure_tables(specs)
        for spec in specs:
            rows = world.warehouse.query(f"select * from {spec.dataset}.{spec.table}")
            if rows:
                # Copies of a row keep their id: distinct ids are what every report statement counts.
                ids = [f"{n}:{r[spec.row_id]}" for n, r in enumerate(rows)]
                result = bigquery.insert_rows(f"{spec.dataset}.{spec.table}", rows, ids)
                assert not result.errors, (spec.table, result.errors[:3])
        on_bigquery = compute.build(bigquery, world.documents, NOW, salt=SALT, days=DAYS)
        on_duckdb = compute.build(world.warehouse, world.documents, NOW, salt=SALT, days=DAYS)
        yield on_bigquery, on_duckdb
    finally:
        server.stop()
        world.warehouse.close()


def test_every_section_on_bigquery_is_as_on_duckdb(reports: tuple[Report, Report]) -> None:
    bigquery, duckdb = reports
    assert bigquery.funnel == duckdb.funnel
    assert bigquery.segments == duckdb.segments
    assert bigquery.rfm == duckdb.rfm
    assert bigquery.clusters == duckdb.clusters
    assert bigquery.campaigns == duckdb.campaigns
    assert bigquery.publications == duckdb.publications
    assert bigquery.coverage == duckdb.coverage
    assert bigquery.freshness == duckdb.freshness
    # Not all zero: the world's rows reached the emulator.
    assert bigquery.funnel[0].stages[0].count > 0 and bigquery.campaigns and bigquery.publications

"""The composition root: the one place that turns settings into adapters for the services."""

from __future__ import annotations

from functools import cache

from shared.config import Settings, get_settings
from shared.logs import configure_logging
from shared.ports import EventBus, Warehouse
from shared.schema import table_specs


def build_warehouse(settings: Settings) -> Warehouse:
    if settings.warehouse == "bigquery":
        from shared.adapters.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(settings.project, settings.dataset_prefix, settings.bigquery_location)
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(settings.duckdb_path)
    # Locally nothing else creates tables; in production Terraform does, from the same schema files.
    warehouse.ensure_tables(list(table_specs().values()))
    return warehouse


def build_bus(settings: Settings) -> EventBus:
    from shared.adapters.pubsub_bus import PubSubBus

    return PubSubBus(settings.project)


@cache
def settings() -> Settings:
    configure_logging()
    return get_settings()


@cache
def warehouse() -> Warehouse:
    return build_warehouse(settings())


@cache
def bus() -> EventBus:
    return build_bus(settings())

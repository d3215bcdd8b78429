"""The composition root: the one place that turns settings into adapters for the services."""

from __future__ import annotations

from functools import cache

from shared.config import Settings, get_settings
from shared.logs import configure_logging
from shared.ports import DocumentStore, EventBus, Warehouse
from shared.scheduling import JobScheduler, ScheduleConfig
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


def build_documents(settings: Settings) -> DocumentStore:
    from shared.adapters.firestore_store import FirestoreStore

    return FirestoreStore(settings.project)


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


@cache
def documents() -> DocumentStore:
    return build_documents(settings())


def build_job_scheduler(settings: Settings, config: ScheduleConfig) -> JobScheduler:
    from shared.adapters.cloud_scheduler import CloudSchedulerJobs

    return CloudSchedulerJobs(settings.project, config.location, config.topic)


@cache
def schedule_config() -> ScheduleConfig:
    settings()  # logging first
    return ScheduleConfig.from_env()


@cache
def job_scheduler() -> JobScheduler:
    return build_job_scheduler(settings(), schedule_config())

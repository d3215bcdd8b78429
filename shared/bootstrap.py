"""The composition root: the one place that turns settings into adapters and configs for the services.

Each accessor is cached, so a function instance builds its clients once, at cold start or on first use.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from shared.beacons import Limits
from shared.config import ScheduleSettings, Settings, get_settings
from shared.logs import configure_logging
from shared.ports import DocumentStore, EventBus, JobScheduler, Warehouse
from shared.schema import table_specs
from shared.services.collect import CollectorConfig


def build_warehouse(settings: Settings) -> Warehouse:
    if settings.warehouse == "bigquery":
        from shared.adapters.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(settings.project, settings.dataset_prefix, settings.bigquery_location)
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(settings.duckdb_path, threads=settings.duckdb_threads)
    # Locally nothing else creates tables; in production Terraform does, from the same schema files.
    warehouse.ensure_tables(list(table_specs().values()))
    return warehouse


def build_bus(settings: Settings) -> EventBus:
    from shared.adapters.pubsub_bus import PubSubBus

    return PubSubBus(settings.project)


def build_documents(settings: Settings) -> DocumentStore:
    from shared.adapters.firestore_store import FirestoreStore

    return FirestoreStore(settings.project)


def build_job_scheduler(settings: Settings) -> JobScheduler:
    from shared.adapters.cloud_scheduler import CloudSchedulerJobs

    return CloudSchedulerJobs(settings.project, settings.schedules.location, settings.schedules.topic)


def build_collector_config(settings: Settings) -> CollectorConfig:
    """collect's configuration; fails here, at cold start, when the IP salt is missing."""
    collect = settings.collect
    limits = Limits(
        max_events=collect.max_events_per_batch,
        max_age=timedelta(days=collect.max_event_age_days),
        max_future=timedelta(minutes=collect.max_event_future_minutes),
    )
    return CollectorConfig(
        settings.sites,
        settings.beacon_topic,
        collect.require_ip_salt(),
        limits,
        collect.max_body_bytes,
        collect.region_header,
    )


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


@cache
def schedule_config() -> ScheduleSettings:
    return settings().schedules


@cache
def job_scheduler() -> JobScheduler:
    return build_job_scheduler(settings())


@cache
def collector_config() -> CollectorConfig:
    return build_collector_config(settings())

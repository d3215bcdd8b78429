"""The composition root: the one place that turns settings into adapters and configs for the services.

Each accessor builds its value once per process, at cold start or on first use, even when several
requests arrive at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from shared.beacons import Limits
from shared.config import ScheduleSettings, Settings, get_settings
from shared.logs import configure_logging
from shared.ports import DocumentStore, EventBus, JobScheduler, Warehouse
from shared.ports.blobs import BlobStore
from shared.schema import table_specs
from shared.services.collect import CollectorConfig

if TYPE_CHECKING:
    from shared.activation.publications import Destination
    from shared.adapters.folder_blobs import FolderBlobs
    from shared.adapters.gcs_blobs import GcsBlobs
    from shared.messaging.clicks import ClickLinks
    from shared.ports import AudienceDestination
    from shared.ports.channels import MessageChannel
    from shared.ports.secrets import SecretStore
    from shared.services.alimtalk_results import ResultSource
    from shared.services.deliver import DeliverPorts, Links
    from shared.services.privacy import PrivacyPorts
    from shared.services.publish_job import PublishPorts
    from shared.services.refine import RefineSettings
    from shared.services.report import ReportPorts
    from shared.services.send_job import SendPorts
    from shared.services.sms_results import SmsResultSource


def build_warehouse(settings: Settings) -> Warehouse:
    if settings.warehouse == "bigquery":
        from shared.adapters.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(settings.project, settings.dataset_prefix, settings.bigquery_location)
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse, short_gil_turns

    short_gil_turns()
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
        collect.trusted_proxy_hops,
        settings.bus_key,
        settings.clicks.key,
        settings.channels.webpush_allow_local,
    )


def build_export_blobs(settings: Settings) -> BlobStore | None:
    """Where privacy exports go: the bucket CDP_PRIVACY_EXPORT_BUCKET (under privacy-exports/), else
    a folder locally (CDP_PRIVACY_EXPORT_DIR). None on GCP without a bucket: a function has no
    folder that outlives it, so exports wait."""
    return _blobs(settings, settings.privacy.export_bucket, "privacy-exports", settings.privacy.export_dir)


def _blobs(settings: Settings, bucket: str | None, prefix: str, folder: str) -> GcsBlobs | FolderBlobs | None:
    if bucket:
        from shared.adapters.gcs_blobs import GcsBlobs

        return GcsBlobs(bucket, prefix=prefix)
    if settings.warehouse == "bigquery":
        return None
    from shared.adapters.folder_blobs import FolderBlobs

    return FolderBlobs(folder)


def build_privacy_ports(settings: Settings, warehouse: Warehouse, blobs: BlobStore | None = None) -> PrivacyPorts:
    """Privacy requests' ports; fails here, at cold start, when the suppression salt is missing.

    Audience removals go through publishing's hook: the erased customers' uploaded rows are kept in
    audiences.publication_erasures and the request in privacy.audience_removals, for each
    publication's next run to remove. On BigQuery deletes leave rows that may still be in the
    streaming buffer, for a later run.
    """
    from shared.activation.ledger import LedgerRemovals
    from shared.privacy.statements import STREAMING_BUFFER
    from shared.services.privacy import PrivacyPorts

    return PrivacyPorts(
        warehouse=warehouse,
        removals=LedgerRemovals(warehouse),
        blobs=blobs if blobs is not None else build_export_blobs(settings),
        salt=settings.privacy.require_salt(),
        streaming_buffer=STREAMING_BUFFER if settings.warehouse == "bigquery" else None,
        batch_size=settings.privacy.batch_size,
        sites=tuple(sorted(settings.sites)),
    )


def build_secrets(settings: Settings) -> SecretStore:
    """Secrets a configuration names at run time: Secret Manager on GCP, env or a folder locally."""
    if settings.warehouse == "bigquery":
        from shared.adapters.secret_manager import SecretManagerSecrets

        return SecretManagerSecrets(settings.project)
    from shared.adapters.local_secrets import LocalSecrets

    return LocalSecrets(settings.publish.secrets_dir)


def build_publish_blobs(settings: Settings, prefix: str, folder: str) -> BlobStore | None:
    """Where publishing writes files (prefix outbox: dry-run bodies; exports: file exports): the
    bucket CDP_PUBLISH_BUCKET, else a folder locally; None on GCP without a bucket."""
    return _blobs(settings, settings.publish.bucket, prefix, folder)


def build_connect(settings: Settings, secrets: SecretStore) -> Callable[[Destination], AudienceDestination]:
    """How a run reaches a destination: Facebook with the access token read at each run (rotation
    needs no deploy), a file export through the files bucket's exports/ (a folder locally)."""
    exports = _blobs(settings, settings.publish.bucket, "exports", settings.publish.export_dir)

    def connect(destination: Destination) -> AudienceDestination:
        from shared.activation.publications import FACEBOOK
        from shared.ports import DestinationError

        if destination.type == FACEBOOK:
            from shared.adapters.facebook_audiences import FacebookAudiences

            if destination.ad_account_id is None or destination.access_token_secret is None:
                raise ValueError(f"destination {destination.id} has no ad account or token secret")
            token = secrets.get(destination.access_token_secret)
            return FacebookAudiences(
                destination.ad_account_id,
                token,
                api_version=destination.api_version,
                graph_url=settings.publish.graph_url,
            )
        from shared.adapters.file_export import FileExportAudience

        if exports is None:
            raise DestinationError("has nowhere to write files: CDP_PUBLISH_BUCKET is not set (Terraform sets it)")
        return FileExportAudience(exports, destination)

    return connect


def build_publish_ports(settings: Settings, warehouse: Warehouse, documents: DocumentStore) -> PublishPorts:
    from shared.services.publish_job import PublishPorts

    return PublishPorts(
        warehouse=warehouse,
        documents=documents,
        connect=build_connect(settings, build_secrets(settings)),
        outbox=build_publish_blobs(settings, "outbox", settings.publish.outbox_dir),
        salt=settings.privacy.require_salt(),
        dry_run=settings.publish.dry_run,
        min_interval_minutes=settings.schedules.min_interval_minutes,
    )


def build_links(settings: Settings) -> Links:
    """The preference centre every message links to: its public URL and the key its links are sealed with."""
    from shared.services.deliver import Links

    preferences = settings.preferences
    return Links(preferences.url, preferences.require_key(), timedelta(days=preferences.link_days))


def build_channels(settings: Settings, secrets: SecretStore) -> dict[str, MessageChannel]:
    """The senders of the channels this deployment has (build_available_channels): SMTP for e-mail,
    Twilio and NHN Cloud for SMS (with both, Korean numbers through NHN: SmsRouter), NHN Cloud for
    AlimTalk, pywebpush for web push. Their passwords, keys and tokens are read from `secrets` at
    send time."""
    channels = settings.channels
    senders: dict[str, MessageChannel] = {}
    if channels.email_from:
        from shared.adapters.smtp_email import Dkim, SmtpEmail

        dkim = (
            Dkim(channels.dkim_domain, channels.dkim_selector, channels.dkim_key_secret)
            if channels.dkim_domain and channels.dkim_selector
            else None
        )
        senders["email"] = SmtpEmail(
            channels.smtp_host,
            channels.smtp_port,
            channels.email_from,
            secrets=secrets,
            username=channels.smtp_username,
            password_secret=channels.smtp_password_secret,
            security=channels.smtp_security,
            reply_to=channels.email_reply_to,
            dkim_key=dkim,
            timeout=channels.smtp_timeout,
        )
    if channels.twilio_account_sid and channels.twilio_messaging_service_sid:
        from shared.adapters.twilio_sms import TwilioSms

        senders["sms"] = TwilioSms(
            channels.twilio_account_sid,
            channels.twilio_messaging_service_sid,
            channels.require_status_url(),
            secrets,
            auth_token_secret=channels.twilio_auth_token_secret,
            api_url=channels.twilio_api_url,
            timeout=channels.twilio_timeout,
        )
    if channels.nhn_sms:
        senders["sms"] = _nhn_sms(settings, secrets, senders.get("sms"))
    if channels.alimtalk and channels.nhn_alimtalk_app_key and channels.nhn_alimtalk_sender_key:
        from shared.adapters.nhn_alimtalk import NhnAlimTalk

        senders["alimtalk"] = NhnAlimTalk(
            channels.nhn_alimtalk_app_key,
            channels.nhn_alimtalk_sender_key,
            secrets,
            secret_key_secret=channels.nhn_alimtalk_secret,
            api_url=channels.nhn_alimtalk_api_url,
            timeout=channels.nhn_alimtalk_timeout,
        )
    if channels.webpush and channels.vapid_subject:
        from shared.adapters.web_push import WebPush

        senders["webpush"] = WebPush(
            secrets,
            subject=channels.vapid_subject,
            public_key=channels.vapid_public_key,
            key_secret=channels.vapid_key_secret,
            ttl=channels.webpush_ttl,
            urgency=channels.webpush_urgency,
            timeout=channels.webpush_timeout,
            allow_local=channels.webpush_allow_local,
            ca_file=channels.webpush_ca_file,
        )
    return senders


def _nhn_sms(settings: Settings, secrets: SecretStore, international: MessageChannel | None) -> MessageChannel:
    """NHN Cloud's SMS alone (numbers outside Korea refused as invalid_number), or with Twilio for
    them (docs/channels.md#domestic-smslms-nhn-cloud)."""
    from shared.adapters.nhn_sms import NhnSms
    from shared.adapters.sms_router import SmsRouter

    channels = settings.channels
    assert channels.nhn_sms_app_key and channels.nhn_sms_sender_number
    domestic = NhnSms(
        channels.nhn_sms_app_key,
        channels.nhn_sms_sender_number,
        secrets,
        secret_key_secret=channels.nhn_sms_secret,
        api_url=channels.nhn_sms_api_url,
        lms_title=channels.nhn_sms_lms_title,
        timeout=channels.nhn_sms_timeout,
    )
    return domestic if international is None else SmsRouter(domestic, international)


def build_deliver_ports(settings: Settings, warehouse: Warehouse, documents: DocumentStore) -> DeliverPorts:
    from shared.services.deliver import DeliverPorts

    return DeliverPorts(
        warehouse=warehouse,
        documents=documents,
        channels=build_channels(settings, build_secrets(settings)),
        salt=settings.privacy.require_salt(),
        links=build_links(settings),
        clicks=build_click_links(settings),
    )


def build_click_links(settings: Settings) -> ClickLinks | None:
    """Where a template's link() points: collect's click route, signed with click-key; None (links
    get UTM parameters only) when collect's public URL is not configured."""
    from shared.messaging.clicks import ClickLinks

    clicks = settings.clicks
    if not clicks.url:
        return None
    return ClickLinks(clicks.url, clicks.require_key(), timedelta(days=clicks.link_days))


def build_send_ports(settings: Settings, warehouse: Warehouse, documents: DocumentStore, bus: EventBus) -> SendPorts:
    from shared.services.send_job import SendPorts

    channels = build_channels(settings, build_secrets(settings))  # once, for both results sources
    return SendPorts(
        warehouse=warehouse,
        documents=documents,
        bus=bus,
        outbox=build_publish_blobs(settings, "outbox", settings.publish.outbox_dir),
        salt=settings.privacy.require_salt(),
        available_channels=build_available_channels(settings),
        links=build_links(settings),
        dry_run=settings.channels.dry_run,
        min_interval_minutes=settings.schedules.min_interval_minutes,
        alimtalk=build_alimtalk_results(settings, channels),
        sms=build_sms_results(settings, channels),
    )


def build_alimtalk_results(
    settings: Settings, channels: Mapping[str, MessageChannel] | None = None
) -> ResultSource | None:
    """The AlimTalk channel as the tick's results source (None without AlimTalk configured)."""
    channel = (channels if channels is not None else build_channels(settings, build_secrets(settings))).get("alimtalk")
    from shared.adapters.nhn_alimtalk import NhnAlimTalk

    return channel if isinstance(channel, NhnAlimTalk) else None


def build_sms_results(
    settings: Settings, channels: Mapping[str, MessageChannel] | None = None
) -> SmsResultSource | None:
    """NHN's SMS channel as the tick's results source: the `sms` channel when it is NhnSms, or the
    router's domestic side; None without NHN (Twilio reports by webhook)."""
    channel = (channels if channels is not None else build_channels(settings, build_secrets(settings))).get("sms")
    from shared.adapters.nhn_sms import NhnSms
    from shared.adapters.sms_router import SmsRouter

    domestic = channel.domestic if isinstance(channel, SmsRouter) else channel
    return domestic if isinstance(domestic, NhnSms) else None


def build_report_ports(
    settings: Settings, warehouse: Warehouse, documents: DocumentStore | None, blobs: BlobStore | None = None
) -> ReportPorts:
    """The report's ports: pages go to reports/ of CDP_REPORT_BUCKET (the files bucket), else a folder
    locally (CDP_REPORT_DIR); the consent gate's coverage needs the privacy salt."""
    from shared.services.report import ReportPorts

    report = settings.report
    where = blobs if blobs is not None else _blobs(settings, report.bucket, "reports", report.out_dir)
    if where is None:
        raise ValueError("the report has nowhere to go: CDP_REPORT_BUCKET is not set (Terraform sets it)")
    return ReportPorts(
        warehouse=warehouse,
        documents=documents,
        blobs=where,
        salt=settings.privacy.require_salt(),
        days=report.days,
        coverage_sample=report.coverage_sample,
    )


T = TypeVar("T")
_building = threading.RLock()  # re-entrant: an accessor's build calls settings()


class once(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cache
    """A process-wide value built by the first caller while the others wait.

    functools.cache lets two threads that miss at once both build: the loader's first two pushes
    then opened the DuckDB file twice, each holding its own lock and its own recent insert ids.
    """

    _unset = object()

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: object = self._unset
        self.__name__ = build.__name__
        self.__doc__ = build.__doc__

    def __call__(self) -> T:
        value = self._value
        if value is self._unset:
            with _building:
                if self._value is self._unset:
                    self._value = self._build()
                value = self._value
        return value  # type: ignore[return-value]

    def cache_clear(self) -> None:
        """Forget the value (tests that change the environment)."""
        with _building:
            self._value = self._unset


@once
def settings() -> Settings:
    configure_logging()
    return get_settings()


@once
def warehouse() -> Warehouse:
    return build_warehouse(settings())


@once
def bus() -> EventBus:
    return build_bus(settings())


@once
def documents() -> DocumentStore:
    return build_documents(settings())


@once
def schedule_config() -> ScheduleSettings:
    return settings().schedules


@once
def job_scheduler() -> JobScheduler:
    return build_job_scheduler(settings())


@once
def collector_config() -> CollectorConfig:
    return build_collector_config(settings())


@once
def refine_settings() -> RefineSettings:
    """Refinement's knobs, with the suppression salt (fails here, at cold start, when it is missing)."""
    from shared.services.refine import RefineSettings

    return RefineSettings(privacy_salt=settings().privacy.require_salt())


@once
def privacy_ports() -> PrivacyPorts:
    return build_privacy_ports(settings(), warehouse())


@once
def publish_ports() -> PublishPorts:
    return build_publish_ports(settings(), warehouse(), documents())


@once
def send_ports() -> SendPorts:
    return build_send_ports(settings(), warehouse(), documents(), bus())


@once
def deliver_ports() -> DeliverPorts:
    return build_deliver_ports(settings(), warehouse(), documents())


@once
def report_ports() -> ReportPorts:
    return build_report_ports(settings(), warehouse(), documents())


@once
def secrets() -> SecretStore:
    """validate_config asks whether the secrets destinations name exist (never reads them there)."""
    return build_secrets(settings())


def build_available_channels(settings: Settings) -> frozenset[str]:
    """The channels this deployment has a sender for: e-mail once a From address is set, SMS once a
    Twilio account and Messaging Service or an NHN SMS app are. A campaign naming another is refused
    at validation."""
    channels = settings.channels
    available = set()
    if channels.email_from:
        available.add("email")
    if (channels.twilio_account_sid and channels.twilio_messaging_service_sid) or channels.nhn_sms:
        available.add("sms")
    if channels.alimtalk:
        available.add("alimtalk")
    if channels.webpush:
        available.add("webpush")
    return frozenset(available)


@once
def available_channels() -> frozenset[str]:
    return build_available_channels(settings())


@once
def twilio_webhook_token() -> Callable[[], str]:
    """The Twilio auth token webhooks are signed with, from Secret Manager `twilio-auth-token`, read
    at most every 5 minutes (not bound at deploy, so a deployment without SMS starts without the
    secret). CDP_TWILIO_AUTH_TOKEN (settings) overrides it locally; the handler checks that first."""
    from shared.ports.secrets import CachedSecret

    return CachedSecret(secrets(), settings().channels.twilio_auth_token_secret).get


@once
def alimtalk_webhook_signature() -> Callable[[], str]:
    """The value NHN sends as X-Toast-Webhook-Signature, from Secret Manager (`alimtalk-webhook-signature`),
    read at most every 5 minutes. CDP_NHN_WEBHOOK_SIGNATURE (settings) overrides it locally."""
    from shared.ports.secrets import CachedSecret

    return CachedSecret(secrets(), settings().channels.nhn_webhook_signature_secret).get


EMAIL_FEEDBACK_TOKEN_SECRET: Final = "email-feedback-token"


@once
def email_feedback_token() -> Callable[[], str]:
    """The token the e-mail feedback forwarder sends (Basic password or Bearer), from Secret Manager
    `email-feedback-token`, read at most every 5 minutes. CDP_EMAIL_FEEDBACK_TOKEN (settings)
    overrides it locally; the handler checks that first."""
    from shared.ports.secrets import CachedSecret

    return CachedSecret(secrets(), EMAIL_FEEDBACK_TOKEN_SECRET).get

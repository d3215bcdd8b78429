"""Settings: one frozen object read from the environment once, failing fast with the missing name.

Sections (CollectSettings, ScheduleSettings) group what one part of the system reads; the environment
variable names are the ones infra/ sets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from shared.cron import MIN_INTERVAL_MINUTES

WarehouseKind = Literal["duckdb", "bigquery"]


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Site:
    """A website allowed to send beacons, and the browser origins it may send them from.

    `analytics_default` is the analytics consent of a beacon that states none (a pixel without its
    consent parameter, a server's event): whether analytics needs an opt-in depends on the site's
    jurisdiction, so it is the site's to say, and unsaid it is denied. Advertising purposes have no
    such setting: they are always denied unless granted (docs/collect-api.md).
    """

    site_id: str
    origins: tuple[str, ...] = ()
    analytics_default: bool = False

    def allows_origin(self, origin: str) -> bool:
        return "*" in self.origins or origin.rstrip("/") in self.origins


@dataclass(frozen=True)
class CollectSettings:
    """The public beacon endpoint's limits and its IP salt (env CDP_MAX_*, CDP_REGION_HEADER, CDP_IP_SALT)."""

    region_header: str = "X-Client-Geo-Location"
    # Proxies of ours that append to X-Forwarded-For: 1 for Cloud Run's front end alone, 2 with an
    # external load balancer in front (shared.enrich.ip.client_ip).
    trusted_proxy_hops: int = 1
    max_body_bytes: int = 256 * 1024
    max_events_per_batch: int = 100
    max_event_age_days: int = 30
    max_event_future_minutes: int = 24 * 60
    # Secrets: bound from Secret Manager as env vars; kept out of repr so they never reach logs.
    ip_salt: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CollectSettings:
        env = os.environ if env is None else env
        return cls(
            region_header=env.get("CDP_REGION_HEADER", cls.region_header),
            trusted_proxy_hops=_int(env, "CDP_TRUSTED_PROXY_HOPS", cls.trusted_proxy_hops),
            max_body_bytes=_int(env, "CDP_MAX_BODY_BYTES", cls.max_body_bytes),
            max_events_per_batch=_int(env, "CDP_MAX_EVENTS_PER_BATCH", cls.max_events_per_batch),
            max_event_age_days=_int(env, "CDP_MAX_EVENT_AGE_DAYS", cls.max_event_age_days),
            max_event_future_minutes=_int(env, "CDP_MAX_EVENT_FUTURE_MINUTES", cls.max_event_future_minutes),
            ip_salt=env.get("CDP_IP_SALT") or None,
        )

    def require_ip_salt(self) -> str:
        """The salt, asked for only where IPs are hashed: other functions run without the secret."""
        if not self.ip_salt:
            raise ConfigError("missing environment variable CDP_IP_SALT (Secret Manager secret ip-salt)")
        return self.ip_salt


@dataclass(frozen=True)
class ScheduleSettings:
    """What sync_schedules needs to know about the deployment (env CDP_SCHEDULE_* / CDP_JOBS_TOPIC)."""

    job_prefix: str = "cdp-seg-"  # every segment job we manage, and only those, starts with this
    topic: str = "jobs"
    segment_job: str = "build_segments"  # the job a segment's schedule fires
    # Publications' jobs: a prefix of their own, neither a prefix of the other, so no segment id can
    # name a publication's job and neither kind's sync deletes the other's jobs.
    publication_job_prefix: str = "cdp-pub-"
    publication_job: str = "publish_audiences"  # the job a publication's schedule fires
    campaign_job_prefix: str = "cdp-cmp-"  # campaigns' jobs, under a third prefix of their own
    campaign_job: str = "send_messages"  # the job a campaign's schedule fires
    default_time_zone: str = "Asia/Seoul"
    # The schedule of a segment that names none (None: such a segment gets no job). Segment parsing
    # (shared/tam) builds such segments daily at 07:00, so the job fires then too.
    default_cron: str | None = "0 7 * * *"
    min_interval_minutes: int = MIN_INTERVAL_MINUTES  # one BigQuery segment build per fire: bound the cost
    location: str = "asia-northeast3"  # Cloud Scheduler region

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScheduleSettings:
        env = os.environ if env is None else env
        prefix = env.get("CDP_SCHEDULE_JOB_PREFIX", cls.job_prefix)
        publication_prefix = env.get("CDP_SCHEDULE_PUBLICATION_JOB_PREFIX", cls.publication_job_prefix)
        campaign_prefix = env.get("CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX", cls.campaign_job_prefix)
        prefixes = (
            ("CDP_SCHEDULE_JOB_PREFIX", prefix),
            ("CDP_SCHEDULE_PUBLICATION_JOB_PREFIX", publication_prefix),
            ("CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX", campaign_prefix),
        )
        for name, value in prefixes:
            if not re.fullmatch(r"[A-Za-z0-9_-]{2,100}", value):
                raise ConfigError(f"{name} must be 2-100 letters, digits, '-' or '_', got {value!r}")
        for i, (name, value) in enumerate(prefixes):
            for other, other_value in prefixes[i + 1 :]:
                if value.startswith(other_value) or other_value.startswith(value):
                    raise ConfigError(
                        f"{name} {value!r} and {other} {other_value!r} overlap: each sync would delete the other's jobs"
                    )
        minutes = env.get("CDP_SCHEDULE_MIN_INTERVAL_MINUTES", str(cls.min_interval_minutes))
        if not minutes.isascii() or not minutes.isdigit():
            raise ConfigError(f"CDP_SCHEDULE_MIN_INTERVAL_MINUTES must be a whole number, got {minutes!r}")
        return cls(
            job_prefix=prefix,
            topic=env.get("CDP_JOBS_TOPIC", cls.topic),
            segment_job=env.get("CDP_SCHEDULE_SEGMENT_JOB", cls.segment_job),
            publication_job_prefix=publication_prefix,
            publication_job=env.get("CDP_SCHEDULE_PUBLICATION_JOB", cls.publication_job),
            campaign_job_prefix=campaign_prefix,
            campaign_job=env.get("CDP_SCHEDULE_CAMPAIGN_JOB", cls.campaign_job),
            default_time_zone=env.get("CDP_SCHEDULE_TIME_ZONE", cls.default_time_zone),
            default_cron=env.get("CDP_SCHEDULE_DEFAULT_CRON", cls.default_cron or "") or None,
            min_interval_minutes=int(minutes),
            location=env.get("CDP_SCHEDULER_LOCATION", cls.location),
        )


# The suppression salt of the local stack and the demo, where no Secret Manager exists. Hashes made
# with it protect nothing, so a BigQuery deployment refuses to run without its own (PrivacySettings).
LOCAL_PRIVACY_SALT = "cdp-local-privacy-salt"


@dataclass(frozen=True)
class PrivacySettings:
    """Privacy requests (env CDP_PRIVACY_*, docs/privacy.md): the salt of the suppression hashes and
    where exports are written (a folder locally, a Cloud Storage bucket on GCP)."""

    # Secret (Secret Manager `privacy-salt`): kept out of repr so it never reaches logs.
    salt: str | None = field(default=None, repr=False)
    export_dir: str = ".local/privacy-exports"
    export_bucket: str | None = None
    batch_size: int = 100  # requests per batch: one statement per table per batch

    @classmethod
    def from_env(cls, env: Mapping[str, str], warehouse: str) -> PrivacySettings:
        salt = env.get("CDP_PRIVACY_SALT") or (LOCAL_PRIVACY_SALT if warehouse == "duckdb" else None)
        return cls(
            salt=salt,
            export_dir=env.get("CDP_PRIVACY_EXPORT_DIR", cls.export_dir),
            export_bucket=env.get("CDP_PRIVACY_EXPORT_BUCKET") or None,
            batch_size=_int(env, "CDP_PRIVACY_BATCH_SIZE", cls.batch_size),
        )

    def require_salt(self) -> str:
        """The salt, asked for only where identifiers are hashed (refine, import, privacy requests)."""
        if not self.salt:
            raise ConfigError("missing environment variable CDP_PRIVACY_SALT (Secret Manager secret privacy-salt)")
        return self.salt


# The preference-link key of the local stack and the demo. Links sealed with it are forgeable by
# anyone who reads this file, so a BigQuery deployment refuses to run without its own.
LOCAL_PREFERENCE_KEY = "cdp-local-preference-key"


@dataclass(frozen=True)
class PreferenceSettings:
    """The preference centre (env CDP_PREFERENCE_*, docs/preferences.md): the key its links are
    sealed with (Secret Manager `preference-key`), its public URL, and how long a link stays valid."""

    key: str | None = field(default=None, repr=False)
    url: str = "http://127.0.0.1:8080/"
    link_days: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str], warehouse: str) -> PreferenceSettings:
        key = env.get("CDP_PREFERENCE_KEY") or (LOCAL_PREFERENCE_KEY if warehouse == "duckdb" else None)
        days = _int(env, "CDP_PREFERENCE_LINK_DAYS", cls.link_days)
        if days < 1:
            raise ConfigError(f"CDP_PREFERENCE_LINK_DAYS must be at least 1, got {days}")
        return cls(key=key, url=env.get("CDP_PREFERENCE_URL", cls.url), link_days=days)

    def require_key(self) -> str:
        if not self.key:
            raise ConfigError("missing environment variable CDP_PREFERENCE_KEY (Secret Manager secret preference-key)")
        return self.key


# The click-link key of the local stack and the demo: links signed with it can be made by anyone who
# reads this file, so a BigQuery deployment never takes it (its key comes from Secret Manager click-key).
LOCAL_CLICK_KEY = "cdp-local-click-key"


@dataclass(frozen=True)
class ClickSettings:
    """Click tracking (env CDP_CLICK_*, docs/campaigns.md#click-tracking): the key links are signed
    with (Secret Manager `click-key`: deliver signs, collect checks), collect's public URL the links
    point to (unset: link() adds UTM parameters only) and how long a link keeps working."""

    key: str | None = field(default=None, repr=False)
    url: str | None = None
    link_days: int = 90

    @classmethod
    def from_env(cls, env: Mapping[str, str], warehouse: str) -> ClickSettings:
        key = env.get("CDP_CLICK_KEY") or (LOCAL_CLICK_KEY if warehouse == "duckdb" else None)
        days = _int(env, "CDP_CLICK_LINK_DAYS", cls.link_days)
        if days < 1:
            raise ConfigError(f"CDP_CLICK_LINK_DAYS must be at least 1, got {days}")
        return cls(key=key, url=_public_url(env, "CDP_CLICK_URL"), link_days=days)

    def require_key(self) -> str:
        if not self.key:
            raise ConfigError("missing environment variable CDP_CLICK_KEY (Secret Manager secret click-key)")
        return self.key


@dataclass(frozen=True)
class PublishSettings:
    """Publishing audiences (env CDP_PUBLISH_*, docs/publishing.md): where the Graph API is, where
    dry runs' request bodies and file exports go (a folder locally, a bucket on GCP), and where
    local runs find the secrets destinations name (on GCP: Secret Manager)."""

    graph_url: str = "https://graph.facebook.com"
    outbox_dir: str = ".local/publish-outbox"
    export_dir: str = ".local/exports"
    bucket: str | None = None  # on GCP: outbox/ and exports/ in this bucket
    secrets_dir: str | None = field(default=None, repr=False)  # where local secrets are: kept out of logs too
    dry_run: bool = False  # every run of this deployment writes bodies to the outbox and sends nothing

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PublishSettings:
        dry_run = env.get("CDP_PUBLISH_DRY_RUN", "false").strip().lower()
        if dry_run not in ("true", "false", "1", "0", ""):
            raise ConfigError(f"CDP_PUBLISH_DRY_RUN must be true or false, got {dry_run!r}")
        return cls(
            graph_url=env.get("CDP_FACEBOOK_GRAPH_URL", cls.graph_url).rstrip("/"),
            outbox_dir=env.get("CDP_PUBLISH_OUTBOX_DIR", cls.outbox_dir),
            export_dir=env.get("CDP_PUBLISH_EXPORT_DIR", cls.export_dir),
            bucket=env.get("CDP_PUBLISH_BUCKET") or None,
            secrets_dir=env.get("CDP_SECRETS_DIR") or None,
            dry_run=dry_run in ("true", "1"),
        )


SmtpSecurity = Literal["starttls", "ssl", "none"]


@dataclass(frozen=True)
class ChannelSettings:
    """The e-mail and SMS channels (env CDP_SMTP_*, CDP_EMAIL_*, CDP_DKIM_*, CDP_TWILIO_*, CDP_NHN_*;
    docs/channels.md). Passwords and keys are Secret Manager names read at send time (a rotation
    needs no redeploy); only the status webhook's Twilio auth token is bound at deploy."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_security: SmtpSecurity = "starttls"
    smtp_username: str | None = None
    # Secret names (never values); kept out of the repr with the values.
    smtp_password_secret: str = field(default="smtp-password", repr=False)
    smtp_timeout: float = 30.0
    email_from: str | None = None  # "Shop <news@shop.example>"
    email_reply_to: str | None = None
    dkim_domain: str | None = None  # signing is on when domain and selector are set
    dkim_selector: str | None = None
    dkim_key_secret: str = field(default="dkim-private-key", repr=False)
    twilio_account_sid: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    twilio_auth_token_secret: str = field(default="twilio-auth-token", repr=False)
    twilio_timeout: float = 10.0
    # The status webhook's public URL as Twilio calls it (signatures cover it), and its auth token.
    twilio_status_url: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    # Kakao AlimTalk through NHN Cloud (CDP_NHN_*): on when the app key and sender key are set.
    nhn_alimtalk_app_key: str | None = None
    nhn_alimtalk_sender_key: str | None = None
    nhn_alimtalk_secret: str = field(default="alimtalk-api-key", repr=False)  # holds the X-Secret-Key
    nhn_alimtalk_api_url: str = "https://kakaotalk-bizmessage.api.nhncloudservice.com"
    nhn_alimtalk_timeout: float = 10.0
    # The results webhook's X-Toast-Webhook-Signature: a secret's name, or the value itself locally.
    nhn_webhook_signature_secret: str = field(default="alimtalk-webhook-signature", repr=False)
    nhn_webhook_signature: str | None = field(default=None, repr=False)
    # The token the e-mail feedback forwarder sends (email_feedback); on GCP read from the secret
    # `email-feedback-token`, this value only locally.
    email_feedback_token: str | None = field(default=None, repr=False)
    # Domestic SMS/LMS through NHN Cloud (CDP_NHN_SMS_*): on when the app key and the sender number
    # registered with NHN are set; Korean numbers then go through it, others through Twilio.
    nhn_sms_app_key: str | None = None
    nhn_sms_sender_number: str | None = None  # digits only
    nhn_sms_secret: str = field(default="nhn-sms-secret-key", repr=False)  # holds the X-Secret-Key
    nhn_sms_api_url: str = "https://sms.api.nhncloudservice.com"
    nhn_sms_timeout: float = 10.0
    nhn_sms_lms_title: str | None = None  # an LMS's title (40 bytes in EUC-KR); unset: its first line
    # Web push (CDP_VAPID_*, CDP_WEBPUSH_*): on when the VAPID public key and subject are set.
    vapid_public_key: str | None = None  # the applicationServerKey browsers subscribe with
    vapid_subject: str | None = None  # the VAPID `sub`: a mailto: or https: URL push services may contact
    vapid_key_secret: str = field(default="vapid-private-key", repr=False)
    webpush_ttl: int = 24 * 3600  # seconds a push service keeps a message for an offline browser
    webpush_urgency: str = "normal"  # RFC 8030: very-low, low, normal, high
    webpush_timeout: float = 10.0
    webpush_allow_local: bool = False  # loopback push endpoints (the local fake): DuckDB deployments only
    webpush_ca_file: str | None = None  # a certificate to trust besides the system's (the local fake's)
    dry_run: bool = False  # the deployment's: every campaign run only plans and previews (CDP_MESSAGING_DRY_RUN)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChannelSettings:
        security = env.get("CDP_SMTP_SECURITY", cls.smtp_security).strip().lower()
        if security not in ("starttls", "ssl", "none"):
            raise ConfigError(f"CDP_SMTP_SECURITY must be starttls, ssl or none, got {security!r}")
        dry_run = env.get("CDP_MESSAGING_DRY_RUN", "false").strip().lower()
        if dry_run not in ("true", "false"):
            raise ConfigError(f"CDP_MESSAGING_DRY_RUN must be true or false, got {dry_run!r}")
        status_url = _public_url(env, "CDP_TWILIO_STATUS_URL")
        return cls(
            smtp_host=env.get("CDP_SMTP_HOST") or cls.smtp_host,
            smtp_port=_int(env, "CDP_SMTP_PORT", 465 if security == "ssl" else cls.smtp_port),
            smtp_security=security,  # type: ignore[arg-type]
            smtp_username=env.get("CDP_SMTP_USERNAME") or None,
            smtp_password_secret=env.get("CDP_SMTP_PASSWORD_SECRET") or cls.smtp_password_secret,
            smtp_timeout=_seconds(env, "CDP_SMTP_TIMEOUT", cls.smtp_timeout),
            email_from=env.get("CDP_EMAIL_FROM") or None,
            email_reply_to=env.get("CDP_EMAIL_REPLY_TO") or None,
            dkim_domain=env.get("CDP_DKIM_DOMAIN") or None,
            dkim_selector=env.get("CDP_DKIM_SELECTOR") or None,
            dkim_key_secret=env.get("CDP_DKIM_KEY_SECRET") or cls.dkim_key_secret,
            twilio_account_sid=env.get("CDP_TWILIO_ACCOUNT_SID") or None,
            twilio_messaging_service_sid=env.get("CDP_TWILIO_MESSAGING_SERVICE_SID") or None,
            twilio_api_url=(env.get("CDP_TWILIO_API_URL") or cls.twilio_api_url).rstrip("/"),
            twilio_auth_token_secret=env.get("CDP_TWILIO_AUTH_TOKEN_SECRET") or cls.twilio_auth_token_secret,
            twilio_timeout=_seconds(env, "CDP_TWILIO_TIMEOUT", cls.twilio_timeout),
            twilio_status_url=status_url,
            twilio_auth_token=env.get("CDP_TWILIO_AUTH_TOKEN") or None,
            nhn_alimtalk_app_key=env.get("CDP_NHN_ALIMTALK_APP_KEY") or None,
            nhn_alimtalk_sender_key=env.get("CDP_NHN_ALIMTALK_SENDER_KEY") or None,
            nhn_alimtalk_secret=env.get("CDP_NHN_ALIMTALK_SECRET_KEY_SECRET") or cls.nhn_alimtalk_secret,
            nhn_alimtalk_api_url=(env.get("CDP_NHN_ALIMTALK_API_URL") or cls.nhn_alimtalk_api_url).rstrip("/"),
            nhn_alimtalk_timeout=_seconds(env, "CDP_NHN_ALIMTALK_TIMEOUT", cls.nhn_alimtalk_timeout),
            nhn_webhook_signature_secret=env.get("CDP_NHN_WEBHOOK_SIGNATURE_SECRET")
            or cls.nhn_webhook_signature_secret,
            nhn_webhook_signature=env.get("CDP_NHN_WEBHOOK_SIGNATURE") or None,
            email_feedback_token=env.get("CDP_EMAIL_FEEDBACK_TOKEN") or None,
            dry_run=dry_run == "true",
            **_webpush_settings(env),
            **_nhn_sms_settings(env),
        )

    @property
    def webpush(self) -> bool:
        """Whether this deployment sends web push (a VAPID public key and subject are set)."""
        return bool(self.vapid_public_key and self.vapid_subject)

    @property
    def nhn_sms(self) -> bool:
        """Whether this deployment sends SMS through NHN Cloud (an app key and sender number are set)."""
        return bool(self.nhn_sms_app_key and self.nhn_sms_sender_number)

    @property
    def alimtalk(self) -> bool:
        """Whether this deployment sends AlimTalk (an NHN app key and a sender key are set)."""
        return bool(self.nhn_alimtalk_app_key and self.nhn_alimtalk_sender_key)

    def require_status_url(self) -> str:
        """The webhook's public URL; ConfigError names what is missing."""
        if not self.twilio_status_url:
            raise ConfigError("missing environment variable CDP_TWILIO_STATUS_URL (the webhook's public URL)")
        return self.twilio_status_url


@dataclass(frozen=True)
class ReportSettings:
    """The report (env CDP_REPORT_*, docs/report.md): where pages go (reports/ in a bucket on GCP, a
    folder locally), the days its flows cover, and the most customers per site the consent gate
    measures coverage on (a larger site is measured on that many, first by id)."""

    bucket: str | None = None
    out_dir: str = ".local/reports"
    days: int = 30
    coverage_sample: int = 20_000  # ±0.7 points at 95 % on a site of any size; 3.7 s on the bench

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReportSettings:
        days = _int(env, "CDP_REPORT_DAYS", cls.days)
        sample = _int(env, "CDP_REPORT_COVERAGE_SAMPLE", cls.coverage_sample)
        if not 1 <= days <= 366:
            raise ConfigError(f"CDP_REPORT_DAYS must be 1 to 366, got {days}")
        if sample < 1:
            raise ConfigError(f"CDP_REPORT_COVERAGE_SAMPLE must be at least 1, got {sample}")
        return cls(
            bucket=env.get("CDP_REPORT_BUCKET") or None,
            out_dir=env.get("CDP_REPORT_DIR", cls.out_dir),
            days=days,
            coverage_sample=sample,
        )


@dataclass(frozen=True)
class Settings:
    """The deployment-wide settings, plus one section per part that needs its own (collect, schedules;
    activation and messaging later). Each section reads its own variables in from_env."""

    project: str
    warehouse: WarehouseKind = "duckdb"
    duckdb_path: str = ".local/warehouse.duckdb"
    # DuckDB worker threads (None: one per core). A process that only appends small batches, as
    # the local loader does, spends less CPU waking workers with 1.
    duckdb_threads: int | None = None
    dataset_prefix: str = ""
    bigquery_location: str = "asia-northeast3"
    beacon_topic: str = "beacons"  # collect publishes to it, load_events reads it
    max_delivery_attempts: int = 5  # of the beacons subscription, before the dead letter
    sites: Mapping[str, Site] = field(default_factory=dict)  # collect and the offline importer check these
    # Secret (Secret Manager `bus-key`, bound to collect and load_events): collect signs each bus
    # message with it and the loader refuses unsigned ones (shared/signing.py). Kept out of repr.
    bus_key: str | None = field(default=None, repr=False)
    collect: CollectSettings = field(default_factory=CollectSettings)
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)
    privacy: PrivacySettings = field(default_factory=lambda: PrivacySettings(salt=LOCAL_PRIVACY_SALT))
    preferences: PreferenceSettings = field(default_factory=lambda: PreferenceSettings(key=LOCAL_PREFERENCE_KEY))
    clicks: ClickSettings = field(default_factory=lambda: ClickSettings(key=LOCAL_CLICK_KEY))
    publish: PublishSettings = field(default_factory=PublishSettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    report: ReportSettings = field(default_factory=ReportSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        project = env.get("CDP_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ConfigError("missing environment variable CDP_PROJECT (or GOOGLE_CLOUD_PROJECT)")
        warehouse = env.get("CDP_WAREHOUSE", "duckdb")
        if warehouse not in ("duckdb", "bigquery"):
            raise ConfigError(f"CDP_WAREHOUSE must be 'duckdb' or 'bigquery', got {warehouse!r}")
        return cls(
            project=project,
            warehouse=warehouse,  # type: ignore[arg-type]
            duckdb_path=env.get("CDP_DUCKDB_PATH", cls.duckdb_path),
            duckdb_threads=_int(env, "CDP_DUCKDB_THREADS", 0) or None,
            dataset_prefix=env.get("CDP_DATASET_PREFIX", ""),
            bigquery_location=env.get("CDP_BIGQUERY_LOCATION", cls.bigquery_location),
            beacon_topic=env.get("CDP_BEACON_TOPIC", cls.beacon_topic),
            max_delivery_attempts=_int(env, "CDP_MAX_DELIVERY_ATTEMPTS", cls.max_delivery_attempts),
            sites=parse_sites(env.get("CDP_SITES", "{}")),
            bus_key=env.get("CDP_BUS_KEY") or None,
            collect=CollectSettings.from_env(env),
            schedules=ScheduleSettings.from_env(env),
            privacy=PrivacySettings.from_env(env, warehouse),
            preferences=PreferenceSettings.from_env(env, warehouse),
            clicks=ClickSettings.from_env(env, warehouse),
            publish=PublishSettings.from_env(env),
            channels=ChannelSettings.from_env(env),
            report=ReportSettings.from_env(env),
        )

    # Shortcuts into the collect section for callers written before the sections.
    @property
    def max_events_per_batch(self) -> int:
        return self.collect.max_events_per_batch

    def require_ip_salt(self) -> str:
        return self.collect.require_ip_salt()


def parse_sites(raw: str) -> dict[str, Site]:
    """Parse CDP_SITES: {"site_id": {"origins": ["https://shop.example"], "analytics_default": false}, ...}."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"CDP_SITES is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("CDP_SITES must be a JSON object keyed by site id")
    sites: dict[str, Site] = {}
    for site_id, spec in data.items():
        origins = spec.get("origins", []) if isinstance(spec, dict) else None
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise ConfigError(f"CDP_SITES[{site_id!r}].origins must be a list of origin strings")
        analytics_default = spec.get("analytics_default", False)
        if not isinstance(analytics_default, bool):
            raise ConfigError(f"CDP_SITES[{site_id!r}].analytics_default must be true or false")
        sites[site_id] = Site(site_id, tuple(o.rstrip("/") for o in origins), analytics_default)
    return sites


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from exc


def _public_url(env: Mapping[str, str], name: str) -> str | None:
    """A URL others call us at: https without query or fragment (http only for localhost); None unset."""
    url = env.get(name) or None
    if url is not None and not re.match(
        r"^(https://[^/?#\s]+|http://(127\.0\.0\.1|localhost)(:[0-9]+)?)(/[^?#\s]*)?$", url
    ):
        raise ConfigError(
            f"{name} must be an https URL without query or fragment (http only for localhost), got {url!r}"
        )
    return url


def _webpush_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """ChannelSettings' web push fields, checked: the key a P-256 point in base64url, the subject a
    mailto: or https: URL, TTL within a push service's four weeks, a known urgency; the local fake's
    loopback endpoints and certificate only on the DuckDB warehouse (never a deployment's)."""
    key = (env.get("CDP_VAPID_PUBLIC_KEY") or "").strip().rstrip("=") or None
    if key is not None and not re.fullmatch(r"B[A-Za-z0-9_-]{86}", key):
        raise ConfigError(
            "CDP_VAPID_PUBLIC_KEY must be the base64url P-256 public key browsers subscribe with (87 characters)"
        )
    subject = env.get("CDP_VAPID_SUBJECT") or None
    if subject is not None and not re.fullmatch(r"(mailto:[^@\s]+@[^@\s]+|https://[^\s/]+\S*)", subject):
        raise ConfigError(f"CDP_VAPID_SUBJECT must be a mailto: address or an https URL, got {subject!r}")
    ttl = _int(env, "CDP_WEBPUSH_TTL", ChannelSettings.webpush_ttl)
    if not 0 <= ttl <= 28 * 24 * 3600:
        raise ConfigError(f"CDP_WEBPUSH_TTL must be 0 to 2419200 seconds (four weeks), got {ttl}")
    urgency = env.get("CDP_WEBPUSH_URGENCY") or ChannelSettings.webpush_urgency
    if urgency not in ("very-low", "low", "normal", "high"):
        raise ConfigError(f"CDP_WEBPUSH_URGENCY must be very-low, low, normal or high, got {urgency!r}")
    local = (env.get("CDP_WEBPUSH_ALLOW_LOCAL") or "false").strip().lower()
    if local not in ("true", "false"):
        raise ConfigError(f"CDP_WEBPUSH_ALLOW_LOCAL must be true or false, got {local!r}")
    ca_file = env.get("CDP_WEBPUSH_CA_FILE") or None
    if (local == "true" or ca_file) and env.get("CDP_WAREHOUSE", "duckdb") != "duckdb":
        raise ConfigError("CDP_WEBPUSH_ALLOW_LOCAL and CDP_WEBPUSH_CA_FILE are for the local stack (DuckDB) only")
    return {
        "vapid_public_key": key,
        "vapid_subject": subject,
        "vapid_key_secret": env.get("CDP_VAPID_KEY_SECRET") or ChannelSettings.vapid_key_secret,
        "webpush_ttl": ttl,
        "webpush_urgency": urgency,
        "webpush_timeout": _seconds(env, "CDP_WEBPUSH_TIMEOUT", ChannelSettings.webpush_timeout),
        "webpush_allow_local": local == "true",
        "webpush_ca_file": ca_file,
    }


def _nhn_sms_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """ChannelSettings' NHN SMS fields, checked: the app key and sender number both or neither, the
    number 8 to 13 digits (hyphens dropped), the LMS title within 40 bytes in EUC-KR."""
    app_key = env.get("CDP_NHN_SMS_APP_KEY") or None
    sender = (env.get("CDP_NHN_SMS_SENDER_NUMBER") or "").replace("-", "").strip() or None
    if (app_key is None) != (sender is None):
        raise ConfigError(
            "set both CDP_NHN_SMS_APP_KEY and CDP_NHN_SMS_SENDER_NUMBER (registered with NHN), or neither"
        )
    if sender is not None and not re.fullmatch(r"[0-9]{8,13}", sender):
        raise ConfigError(f"CDP_NHN_SMS_SENDER_NUMBER must be 8 to 13 digits (e.g. 0212345678), got {sender!r}")
    title = (env.get("CDP_NHN_SMS_LMS_TITLE") or "").strip() or None
    if title is not None:
        try:
            size = len(title.encode("euc_kr"))
        except UnicodeEncodeError:
            raise ConfigError("CDP_NHN_SMS_LMS_TITLE has characters Korean carriers cannot send (EUC-KR)") from None
        if size > 40:
            raise ConfigError(f"CDP_NHN_SMS_LMS_TITLE must be at most 40 bytes in EUC-KR, got {size}")
    return {
        "nhn_sms_app_key": app_key,
        "nhn_sms_sender_number": sender,
        "nhn_sms_secret": env.get("CDP_NHN_SMS_SECRET_KEY_SECRET") or ChannelSettings.nhn_sms_secret,
        "nhn_sms_api_url": (env.get("CDP_NHN_SMS_API_URL") or ChannelSettings.nhn_sms_api_url).rstrip("/"),
        "nhn_sms_timeout": _seconds(env, "CDP_NHN_SMS_TIMEOUT", ChannelSettings.nhn_sms_timeout),
        "nhn_sms_lms_title": title,
    }


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from exc
    if not seconds > 0:
        raise ConfigError(f"{name} must be above 0, got {value!r}")
    return seconds


@cache
def get_settings() -> Settings:
    """The process-wide settings, read at cold start."""
    return Settings.from_env()

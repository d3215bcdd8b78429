"""What the report shows, as plain frozen values: computed once (compute.py), then drawn (render.py).

Every count is an int read from the warehouse or a document; the renderer formats but never derives
a number the model does not hold, so a test can hold each shown value against its own query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True)
class Window:
    """The days the report's flows cover (events, changes, deliveries): `since`..`until`, UTC dates."""

    since: date
    until: date

    @classmethod
    def ending(cls, now: datetime, days: int) -> Window:
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        until = now.astimezone(UTC).date()
        return cls(until - timedelta(days=days - 1), until)

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def params(self) -> dict[str, object]:
        """The SQL parameters of the window: the dates, and [since_ts, until_ts) as timestamps."""
        return {
            "since": self.since,
            "until": self.until,
            "since_ts": datetime.combine(self.since, time.min, UTC),
            "until_ts": datetime.combine(self.until + timedelta(days=1), time.min, UTC),
        }


@dataclass(frozen=True)
class Count:
    """A reason and how many it stopped (or a part and its size)."""

    key: str
    count: int


@dataclass(frozen=True)
class Stage:
    """One step of a funnel: how many reached it, and why the others between it and the step before
    did not (`drops`, by reason code; `drop_en`/`drop_ko` say what kind of drop it is)."""

    key: str
    en: str
    ko: str
    count: int
    unit: str
    drops: tuple[Count, ...] = ()
    drop_en: str = ""
    drop_ko: str = ""
    details: tuple[Count, ...] = ()  # parts of the count, or what changed, shown beside it

    @property
    def dropped(self) -> int:
        return sum(d.count for d in self.drops)


@dataclass(frozen=True)
class FunnelPart:
    """A run of stages counted in one unit (events, customers, delivery rows)."""

    key: str
    en: str
    ko: str
    stages: tuple[Stage, ...]


@dataclass(frozen=True)
class Freshness:
    """One stage's last success, from `runs` where it records itself, and its newest row in the warehouse."""

    stage: str
    limit_hours: float
    last_success: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    newest_row: datetime | None = None
    lag_hours: float | None = None  # since the last success (or the newest row, without runs)
    stale: bool = False


@dataclass(frozen=True)
class SegmentSeries:
    """A segment's size and its entries and exits on each day of the window."""

    segment_id: str
    name: str
    days: tuple[date, ...]
    size: tuple[int, ...]
    entered: tuple[int, ...]
    exited: tuple[int, ...]


@dataclass(frozen=True)
class RfmCell:
    r_score: int
    f_score: int
    customers: int
    monetary: float


@dataclass(frozen=True)
class RfmGroup:
    group: str
    customers: int
    monetary: float
    recency_days: float
    frequency: float


@dataclass(frozen=True)
class Rfm:
    period_start: date | None
    period_end: date | None
    cells: tuple[RfmCell, ...]
    groups: tuple[RfmGroup, ...]


@dataclass(frozen=True)
class Cluster:
    """A discovery cluster: its customers now (warehouse), its labels and where its centre sits on the
    two axes of the projection (the latest discovery run's document)."""

    cluster_id: int
    customers: int
    mean_distance: float | None
    label: str = ""
    label_ko: str = ""
    x: float | None = None
    y: float | None = None
    centroid: tuple[float, ...] = ()  # z-scores per column of Clusters.columns


@dataclass(frozen=True)
class Clusters:
    run_id: str | None
    columns: tuple[str, ...]
    clusters: tuple[Cluster, ...]
    axes: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class CampaignRow:
    """A campaign's deliveries on one channel in the window (campaigns.sql says what each count means)."""

    campaign_id: str
    name: str
    channel: str
    planned: int
    fallbacks: int
    eligible: int
    skipped: int
    held: int
    capped: int
    sent: int
    delivered: int
    failed: int
    clicked: int
    unsubscribed: int
    complained: int  # e-mails the recipient reported as spam (a feedback loop's complaint)


@dataclass(frozen=True)
class PublicationRow:
    """A publication's audience now and its last run's delta."""

    publication_id: str
    name: str
    destination_id: str | None
    audience: int
    held_rows: int
    last_run: str | None
    last_sent_at: datetime | None
    added: int
    removed: int
    replaced: int
    invalid: int
    refused_batches: int


@dataclass(frozen=True)
class CoverageRow:
    """What the consent gate answers for one use (a purpose without a message, or a channel's
    informational or advertising message) over a site's customers."""

    site_id: str
    use: str  # the purpose, or "<channel> informational" / "<channel> advertising"
    purpose: str | None
    channel: str | None
    measured: int  # customers the gate answered for (all of them, or the sample)
    eligible: int
    reasons: tuple[Count, ...]

    @property
    def share(self) -> float:
        return self.eligible / self.measured if self.measured else 0.0


@dataclass(frozen=True)
class SiteCoverage:
    site_id: str
    customers: int
    measured: int  # fewer than customers when the gate ran on a sample
    rows: tuple[CoverageRow, ...]


@dataclass(frozen=True)
class Note:
    """A sentence on the page about what it could not show, in both languages."""

    en: str
    ko: str


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    window: Window
    funnel: tuple[FunnelPart, ...]
    freshness: tuple[Freshness, ...]
    segments: tuple[SegmentSeries, ...]
    rfm: Rfm
    clusters: Clusters
    campaigns: tuple[CampaignRow, ...]
    publications: tuple[PublicationRow, ...]
    coverage: tuple[SiteCoverage, ...]
    notes: tuple[Note, ...] = field(default=())
    documents: bool = True  # False: built from the warehouse alone (no names, labels or run records)

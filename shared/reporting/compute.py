"""The report's model, computed by plain functions over the Warehouse port (sql/report/) and, when there
is one, the DocumentStore (names, labels, run records).

Each section is one function, so a section whose tables are missing or empty shows nothing rather
than failing the page; only `build` knows the whole. Counts come from SQL; Python only adds them up
and subtracts one stage from the one before (the drops), as the page states.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np

from shared.config import ReportSettings
from shared.consent.vocabulary import Channel, Purpose
from shared.ports import DocumentStore, Warehouse
from shared.reporting.model import (
    CampaignRow,
    Cluster,
    Clusters,
    Count,
    CoverageRow,
    Freshness,
    FunnelPart,
    Note,
    PublicationRow,
    Report,
    Rfm,
    RfmCell,
    RfmGroup,
    SegmentSeries,
    SiteCoverage,
    Stage,
    Window,
)
from shared.runs import RUNS
from shared.sql import run_statement

log = logging.getLogger(__name__)

DOOR_STAGES: Final = frozenset({"collect", "import"})  # bad rows refused before the bus or the file
RUN_LOOKBACK: Final = timedelta(days=8)  # runs read for freshness: a week of daily jobs and a day more
FAILED: Final = frozenset({"failed", "error", "partial"})  # run statuses that are no success
JOB_STAGE: Final = {"backfill": "refine"}  # a backfill by hand refreshes what refine does

# Each stage's age beyond which it is stale, in hours: about twice its schedule (infra/scheduler.tf),
# a day and more for the daily ones. collect and deliver record no runs: their newest rows tell.
LIMIT_HOURS: Final = {
    "collect": 24.0,
    "refine": 3.0,
    "discover": 26.0,
    "build_segments": 2.0,
    "privacy_requests": 2.0,
    "sync_schedules": 1.0,
    "publish_audiences": 26.0,
    "send_messages": 1.0,
    "deliver": 26.0,
    "build_report": 26.0,
}


def run(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """sql/report/<name>.sql with the parameters it names."""
    return run_statement(warehouse, f"report/{name}", params)


def _int(value: object) -> int:
    return int(value) if value is not None else 0  # type: ignore[call-overload]


def _float(value: object) -> float:
    return float(value) if value is not None else 0.0  # type: ignore[arg-type]


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the funnel ---------------------------------------------------------------------------------------


def funnel(warehouse: Warehouse, window: Window, campaigns: Sequence[CampaignRow]) -> tuple[FunnelPart, ...]:
    """From request to click in three parts, each in its own unit: events (ingestion), customers
    (audiences), delivery rows (messages). `campaigns` are the window's rows of `campaign_rows`."""
    return (
        _ingestion(warehouse, window),
        _audiences(warehouse, window),
        _messages(warehouse, window, campaigns),
    )


def _ingestion(warehouse: Warehouse, window: Window) -> FunnelPart:
    params = window.params()
    [requests] = run(warehouse, "requests", params)
    loaded_by_table = [Count(str(r["source_table"]), _int(r["events"])) for r in run(warehouse, "ingest", params)]
    door: list[Count] = []
    at_load: list[Count] = []
    for row in run(warehouse, "bad_rows", params):
        (door if row["stage"] in DOOR_STAGES else at_load).append(Count(str(row["reason_code"]), _int(row["bad_rows"])))
    door, at_load = _merged(door), _merged(at_load)
    loaded = sum(c.count for c in loaded_by_table)
    accepted = loaded + sum(c.count for c in at_load)
    received = accepted + sum(c.count for c in door)
    [refined_row] = run(warehouse, "refined_events", params)
    refined = _int(refined_row["events"])
    stages = (
        Stage(
            "requests", "Requests (and import files)", "요청 (가져온 파일 포함)", _int(requests["requests"]), "requests"
        ),
        Stage("received", "Events received", "받은 이벤트", received, "events"),
        Stage(
            "accepted",
            "Accepted",
            "수락",
            accepted,
            "events",
            tuple(door),
            "rejected at the door",
            "수집 단계에서 거부",
        ),
        Stage(
            "loaded",
            "Loaded into raw tables",
            "원천 테이블 적재",
            loaded,
            "events",
            tuple(at_load),
            "refused at load",
            "적재 단계에서 거부",
            details=tuple(loaded_by_table),
        ),
        Stage(
            "refined",
            "Refined events",
            "정제된 이벤트",
            refined,
            "events",
            _shortfall("not_refined", loaded, refined),
            "not refined (erased, bots, not yet refined)",
            "정제되지 않음 (삭제, 봇, 아직 정제 전)",
        ),
    )
    return FunnelPart("ingestion", "Ingestion", "수집", stages)


def _audiences(warehouse: Warehouse, window: Window) -> FunnelPart:
    [row] = run(warehouse, "audience", {})
    profiles, in_segments, published = _int(row["profiles"]), _int(row["in_segments"]), _int(row["published"])
    added = removed_total = invalid = 0
    removed: list[Count] = []
    for change in run(warehouse, "publication_changes", window.params()):
        entries = _int(change["entries"])
        if change["change"] == "added":
            added = entries
        elif change["change"] == "invalid":
            invalid = entries
        elif entries:
            removed.append(Count(str(change["reason"]), entries))
            removed_total += entries
    stages = (
        Stage("profiles", "Profiles", "고객 프로필", profiles, "customers"),
        Stage(
            "in_segments",
            "In a segment",
            "세그먼트 포함",
            in_segments,
            "customers",
            _shortfall("in_no_segment", profiles, in_segments),
            "in no segment",
            "세그먼트 없음",
        ),
        Stage(
            "published",
            "Held in an ad audience",
            "광고 오디언스 등록",
            published,
            "customers",
            _shortfall("not_published", in_segments, published),
            "not published (no publication, no consent, no key)",
            "미게시 (게시 없음, 동의 없음, 키 없음)",
            details=(Count("added", added), Count("removed", removed_total), *removed, Count("invalid", invalid)),
        ),
    )
    return FunnelPart("audiences", "Audiences", "오디언스", stages)


def _messages(warehouse: Warehouse, window: Window, campaigns: Sequence[CampaignRow]) -> FunnelPart:
    plan = run(warehouse, "plan_reasons", window.params())
    planned = sum(_int(r["deliveries"]) for r in plan)
    eligible = sum(_int(r["deliveries"]) for r in plan if r["outcome"] == "send")
    refused = _merged(
        Count(f"{r['outcome']}:{r['reason']}", _int(r["deliveries"])) for r in plan if r["outcome"] != "send"
    )
    sent = sum(c.sent for c in campaigns)
    delivered = sum(c.delivered for c in campaigns)
    clicked = sum(c.clicked for c in campaigns)
    fates: dict[str, list[Count]] = defaultdict(list)
    for r in run(warehouse, "fates", window.params()):
        fates[str(r["stage"])].append(Count(str(r["reason"]), _int(r["deliveries"])))
    stages = (
        Stage("planned", "Planned deliveries", "계획된 발송", planned, "deliveries"),
        Stage(
            "eligible",
            "Eligible",
            "발송 가능",
            eligible,
            "deliveries",
            tuple(refused),
            "held or skipped",
            "보류 또는 제외",
        ),
        Stage(
            "sent",
            "Sent",
            "발송",
            sent,
            "deliveries",
            tuple(_merged(fates["sent"])),
            "eligible, not sent: the last refusal",
            "발송 가능했으나 미발송: 마지막 사유",
        ),
        Stage(
            "delivered",
            "Delivered (provider report)",
            "도달 (사업자 보고)",
            delivered,
            "deliveries",
            tuple(_merged(fates["delivered"])),
            "sent, not reported delivered (e-mail relays report none)",
            "발송 후 도달 보고 없음 (이메일은 보고 없음)",
        ),
        Stage(
            "clicked",
            "Clicked",
            "클릭",
            clicked,
            "deliveries",
            _shortfall("not_clicked", sent, clicked),
            "sent, not clicked",
            "발송 후 클릭 없음",
        ),
    )
    return FunnelPart("messages", "Messages", "메시지", stages)


def _merged(counts: Iterable[Count]) -> list[Count]:
    """Counts of the same key added up, largest first."""
    total: Counter[str] = Counter()
    for c in counts:
        total[c.key] += c.count
    return [Count(k, n) for k, n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0])) if n]


def _shortfall(key: str, before: int, after: int) -> tuple[Count, ...]:
    return (Count(key, before - after),) if before > after else ()


# -- freshness ----------------------------------------------------------------------------------------


def freshness(
    warehouse: Warehouse, documents: DocumentStore | None, window: Window, now: datetime
) -> tuple[Freshness, ...]:
    """Per stage: the last successful run (Firestore `runs`) and the newest row it wrote. The lag runs
    from the last success when the stage records runs (a run may rightly write nothing), else from its
    newest row; a stage is stale past LIMIT_HOURS or when its last run failed."""
    newest: dict[str, datetime] = {}
    for row in run(warehouse, "freshness", window.params()):
        at = _aware(row["last_at"])
        if at is not None and (row["stage"] not in newest or at > newest[row["stage"]]):
            newest[str(row["stage"])] = at
    runs = _runs(documents, now) if documents is not None else {}
    result = []
    for stage, limit in LIMIT_HOURS.items():
        last = runs.get(stage)
        success = last["success"] if last else None
        basis = success if success is not None else (None if last else newest.get(stage))
        # A run that ended after `now` (a clock a little ahead, or a page built inside a longer run) is fresh.
        lag = max(0.0, (now - basis).total_seconds() / 3600) if basis is not None else None
        status = last["status"] if last else None
        result.append(
            Freshness(
                stage=stage,
                limit_hours=limit,
                last_success=success,
                last_status=status,
                last_error=last["error"] if last else None,
                newest_row=newest.get(stage),
                lag_hours=None if lag is None else round(lag, 2),
                stale=(lag is not None and lag > limit) or status in FAILED,
            )
        )
    return tuple(result)


def _runs(documents: DocumentStore, now: datetime) -> dict[str, dict[str, Any]]:
    """Per stage, from the runs of the lookback: the latest run's status and error, the last success."""
    latest: dict[str, dict[str, Any]] = {}
    success: dict[str, datetime] = {}
    for _, doc in documents.list(RUNS, [("started_at", ">=", now - RUN_LOOKBACK)]):
        stage = JOB_STAGE.get(str(doc.get("job")), str(doc.get("job")))
        started = _aware(doc.get("started_at"))
        if started is None:
            continue
        status = str(doc.get("status", ""))
        if stage not in latest or started > latest[stage]["started_at"]:
            latest[stage] = {"started_at": started, "status": status, "error": doc.get("error")}
        finished = _aware(doc.get("finished_at"))
        succeeded = status != "running" and status not in FAILED and finished is not None
        if succeeded and finished is not None and (stage not in success or finished > success[stage]):
            success[stage] = finished
    for stage, entry in latest.items():
        entry["success"] = success.get(stage)
    return latest


# -- segments -----------------------------------------------------------------------------------------


def segment_series(warehouse: Warehouse, documents: DocumentStore | None, window: Window) -> tuple[SegmentSeries, ...]:
    """Each segment's daily size, entries and exits over the window, largest segment (last day) first."""
    days = tuple(window.since + timedelta(days=n) for n in range(window.days))
    by_segment: dict[str, dict[date, dict[str, Any]]] = defaultdict(dict)
    for row in run(warehouse, "segments", window.params()):
        by_segment[str(row["segment_id"])][_date(row["day"])] = row
    series = []
    for segment_id, rows in by_segment.items():
        values = [rows.get(day, {}) for day in days]
        series.append(
            SegmentSeries(
                segment_id,
                _name(documents, "segments", segment_id),
                days,
                tuple(_int(v.get("size")) for v in values),
                tuple(_int(v.get("entered")) for v in values),
                tuple(_int(v.get("exited")) for v in values),
            )
        )
    series.sort(key=lambda s: (-s.size[-1], s.segment_id))
    return tuple(series)


def _date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _name(documents: DocumentStore | None, collection: str, doc_id: str) -> str:
    """A document's marketer-given name, else its id (no store, or no name)."""
    if documents is None:
        return doc_id
    doc = documents.get(collection, doc_id) or {}
    name = doc.get("name")
    return name if isinstance(name, str) and name.strip() else doc_id


# -- RFM and clusters ---------------------------------------------------------------------------------


def rfm(warehouse: Warehouse) -> Rfm:
    cells = tuple(
        RfmCell(_int(r["r_score"]), _int(r["f_score"]), _int(r["customers"]), _float(r["monetary"]))
        for r in run(warehouse, "rfm_grid", {})
    )
    rows = run(warehouse, "rfm_groups", {})
    groups = tuple(
        RfmGroup(
            str(r["rfm_group"]),
            _int(r["customers"]),
            _float(r["monetary"]),
            round(_float(r["recency_days"]), 1),
            round(_float(r["frequency"]), 2),
        )
        for r in rows
    )
    starts = [_date(r["period_start"]) for r in rows if r["period_start"] is not None]
    ends = [_date(r["period_end"]) for r in rows if r["period_end"] is not None]
    return Rfm(min(starts, default=None), max(ends, default=None), cells, groups)


def clusters(warehouse: Warehouse, documents: DocumentStore | None) -> Clusters:
    """Cluster sizes from refined.clusters; labels, centroids and the projection from the latest
    discovery run's document (discoveries/{run}), when there is a store and it names the same run."""
    rows = run(warehouse, "clusters", {})
    run_ids = {str(r["run_id"]) for r in rows if r["run_id"] is not None}
    doc = _discovery(documents)
    if doc is None or (run_ids and str(doc.get("run_id")) not in run_ids):
        plain = tuple(
            Cluster(_int(r["cluster_id"]), _int(r["customers"]), _opt_float(r["mean_distance"])) for r in rows
        )
        return Clusters(next(iter(sorted(run_ids)), None), (), plain)
    transform = doc.get("transform") or {}
    columns = tuple(str(c) for c in transform.get("columns", []))
    weight = np.asarray(transform.get("weight") or [1.0] * len(columns), dtype=float)
    described = {int(c["id"]): c for c in doc.get("clusters", []) if "id" in c}
    ids = sorted(set(described) | {_int(r["cluster_id"]) for r in rows})
    centres = np.asarray(
        [
            described[i].get("centroid_transformed") or [0.0] * len(columns) if i in described else [0.0] * len(columns)
            for i in ids
        ],
        dtype=float,
    ).reshape(len(ids), len(columns))
    xy, axes = _projection(centres)
    sizes = {_int(r["cluster_id"]): r for r in rows}
    result = []
    for n, cluster_id in enumerate(ids):
        info = described.get(cluster_id, {})
        row = sizes.get(cluster_id, {})
        z = centres[n] / np.where(weight == 0, 1.0, weight) if len(columns) else np.zeros(0)
        result.append(
            Cluster(
                cluster_id,
                _int(row.get("customers")),
                _opt_float(row.get("mean_distance")),
                str(info.get("label", "")),
                str(info.get("label_ko", "")),
                round(float(xy[n, 0]), 4),
                round(float(xy[n, 1]), 4),
                tuple(round(float(v), 2) + 0.0 for v in z),
            )
        )
    return Clusters(str(doc.get("run_id")), columns, tuple(result), axes)


def _opt_float(value: object) -> float | None:
    return None if value is None else round(float(value), 4)  # type: ignore[arg-type]


def _discovery(documents: DocumentStore | None) -> dict[str, Any] | None:
    if documents is None:
        return None
    config = documents.get("discoveries", "config") or {}
    latest = config.get("latest_run")
    return documents.get("discoveries", str(latest)) if isinstance(latest, str) and latest else None


def _projection(centres: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """The centroids on the two directions they differ most along (PCA of the centroids, in the
    clustering space), with the share of their spread each axis shows."""
    k, d = centres.shape
    if k == 0 or d == 0:
        return np.zeros((k, 2)), ("", "")
    centred = centres - centres.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    xy = np.zeros((k, 2))
    components = min(2, vt.shape[0])
    xy[:, :components] = centred @ vt[:components].T
    spread = float((singular**2).sum())
    shares = [float(s**2) / spread if spread else 0.0 for s in singular[:2]] + [0.0, 0.0]
    return xy, (f"PC1 ({shares[0]:.0%})", f"PC2 ({shares[1]:.0%})")


# -- campaigns and publications -----------------------------------------------------------------------


def campaign_rows(warehouse: Warehouse, documents: DocumentStore | None, window: Window) -> tuple[CampaignRow, ...]:
    names: dict[str, str] = {}
    rows = []
    for r in run(warehouse, "campaigns", window.params()):
        campaign_id = str(r["campaign_id"])
        if campaign_id not in names:
            names[campaign_id] = _name(documents, "campaigns", campaign_id)
        counts = {k: _int(r[k]) for k in CAMPAIGN_COUNTS}
        rows.append(CampaignRow(campaign_id, names[campaign_id], str(r["channel"]), **counts))
    return tuple(rows)


CAMPAIGN_COUNTS: Final = (
    "planned",
    "fallbacks",
    "eligible",
    "skipped",
    "held",
    "capped",
    "sent",
    "delivered",
    "failed",
    "clicked",
    "unsubscribed",
    "complained",
)


def publication_rows(warehouse: Warehouse, documents: DocumentStore | None) -> tuple[PublicationRow, ...]:
    return tuple(
        PublicationRow(
            str(r["publication_id"]),
            _name(documents, "publications", str(r["publication_id"])),
            None if r["destination_id"] is None else str(r["destination_id"]),
            _int(r["audience"]),
            _int(r["held_rows"]),
            None if r["last_run"] is None else str(r["last_run"]),
            _aware(r["last_sent_at"]),
            _int(r["added"]),
            _int(r["removed"]),
            _int(r["replaced"]),
            _int(r["invalid"]),
            _int(r["refused_batches"]),
        )
        for r in run(warehouse, "publications", {})
    )


# -- consent coverage ---------------------------------------------------------------------------------

# The uses the gate is asked about: each purpose without a message, then each channel's informational
# and advertising (marketing) message.
USES: Final[tuple[tuple[str | None, str | None], ...]] = (
    *((p.value, None) for p in Purpose),
    *((purpose, c.value) for c in Channel for purpose in (None, Purpose.MARKETING.value)),
)

Gate = Callable[[Warehouse, str, str | None, str | None, datetime, Sequence[str]], list[str]]


def coverage(
    warehouse: Warehouse, now: datetime, salt: str, sample: int, gate: Gate | None = None
) -> tuple[SiteCoverage, ...]:
    """Per site, the share of customers the gate lets each use reach now, and the reasons for the rest;
    over every customer up to `sample`, else the first `sample` by id (the page says so)."""
    ask = gate or _gate_with(salt)
    result = []
    for site in run(warehouse, "sites", {}):
        site_id = str(site["site_id"])
        chosen = run(warehouse, "coverage_sample", {"site_id": site_id, "limit": sample})
        ids = [str(r["customer_id"]) for r in chosen]
        rows = []
        for purpose, channel in USES:
            reasons = Counter(ask(warehouse, site_id, purpose, channel, now, ids) if ids else [])
            eligible = reasons.pop("eligible", 0)
            use = str(purpose) if channel is None else f"{channel} {'advertising' if purpose else 'informational'}"
            rows.append(
                CoverageRow(
                    site_id,
                    use,
                    purpose,
                    channel,
                    len(ids),
                    eligible,
                    tuple(Count(k, n) for k, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
                )
            )
        result.append(SiteCoverage(site_id, _int(site["customers"]), len(ids), tuple(rows)))
    return tuple(result)


def _gate_with(salt: str) -> Gate:
    from shared.services import consent

    def gate(
        warehouse: Warehouse, site_id: str, purpose: str | None, channel: str | None, at: datetime, ids: Sequence[str]
    ) -> list[str]:
        answers = consent.eligible_audience(warehouse, site_id, purpose, channel, at, salt, customer_ids=ids)
        return [a.reason.value for a in answers]

    return gate


# -- the whole --------------------------------------------------------------------------------------


def build(
    warehouse: Warehouse,
    documents: DocumentStore | None,
    now: datetime,
    *,
    salt: str,
    days: int = 30,
    coverage_sample: int = ReportSettings.coverage_sample,
) -> Report:
    """The whole report as of `now`, its flows over the `days` days ending today (UTC)."""
    window = Window.ending(now, days)
    notes: list[Note] = []
    if documents is None:
        notes.append(
            Note(
                "Built from the warehouse alone: no Firestore, so no run records, names or cluster labels.",
                "Firestore 없이 웨어하우스만으로 작성: 실행 기록, 이름, 클러스터 설명이 없습니다.",
            )
        )
    campaigns = campaign_rows(warehouse, documents, window)
    sites = coverage(warehouse, now, salt, coverage_sample)
    for site in sites:
        if site.measured < site.customers:
            notes.append(
                Note(
                    f"Consent coverage of {site.site_id}: measured on {site.measured:,} of {site.customers:,} "
                    "customers (the first by id, an even spread).",
                    f"{site.site_id} 동의 도달률: 고객 {site.customers:,}명 중 {site.measured:,}명 표본으로 측정.",
                )
            )
    return Report(
        generated_at=now,
        window=window,
        funnel=funnel(warehouse, window, campaigns),
        freshness=freshness(warehouse, documents, window, now),
        segments=segment_series(warehouse, documents, window),
        rfm=rfm(warehouse),
        clusters=clusters(warehouse, documents),
        campaigns=campaigns,
        publications=publication_rows(warehouse, documents),
        coverage=sites,
        notes=tuple(notes),
        documents=documents is not None,
    )

"""The report as one self-contained HTML page: inline CSS, inline SVG charts, the font as a data: URL.

No script, no link and no request: the page opens the same from a bucket, a mail attachment or a
laptop offline. Labels are English with Korean beside them. Every number a table shows carries
`data-k` (what it is) and `data-v` (its value), which the tests read back against the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from shared.reporting import charts, fonts
from shared.reporting.charts import Bar, Part, Point
from shared.reporting.model import (
    Clusters,
    Count,
    FunnelPart,
    Report,
    Rfm,
    SiteCoverage,
)

SEOUL = ZoneInfo("Asia/Seoul")
MAX_SEGMENT_CHARTS = 24  # small multiples beyond this are left to the table

CSS = """
*{box-sizing:border-box}
body{margin:0;font-family:"%(family)s",system-ui,sans-serif;color:#111827;background:#f3f4f6;line-height:1.45}
header{background:#111827;color:#f9fafb;padding:24px 32px}
header h1{margin:0 0 4px;font-size:26px}
header p{margin:2px 0;color:#d1d5db}
nav{background:#fff;border-bottom:1px solid #e5e7eb;padding:8px 32px;position:sticky;top:0}
nav a{margin-right:16px;color:#2563eb;text-decoration:none;font-size:14px}
main{padding:16px 32px 48px;max-width:1280px}
section{background:#fff;border-radius:8px;padding:20px 24px;margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.06)}
h2{margin:0 0 4px;font-size:21px}
.ko{color:#6b7280;font-weight:normal;margin-left:6px}
h3{margin:18px 0 6px;font-size:16px}
p.lead{margin:0 0 12px;color:#4b5563;font-size:14px}
figure{margin:8px 0;overflow-x:auto}
.grid{display:flex;flex-wrap:wrap;gap:8px 20px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f9fafb;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.drops{color:#b91c1c;font-size:12px}
.stale{color:#b91c1c;font-weight:600}
.ok{color:#15803d}
.note{background:#fef3c7;border-left:4px solid #d97706;padding:8px 12px;margin:8px 0;font-size:14px}
.empty{color:#6b7280;font-style:italic}
details summary{cursor:pointer;color:#2563eb;font-size:13px}
footer{color:#6b7280;font-size:12px;padding:0 32px 32px}
"""


def _bi(en: str, ko: str) -> str:
    """An English label with its Korean beside it."""
    return f'{escape(en)}<span class="ko">{escape(ko)}</span>'


def _n(key: str, value: float, digits: int = 0) -> str:
    """A number cell the tests can read back: data-k names it, data-v holds it unformatted."""
    shown = charts.number(value, digits)
    raw = f"{value:.{digits}f}" if digits else str(int(value))
    return f'<td class="n" data-k="{escape(key)}" data-v="{raw}">{shown}</td>'


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    cells = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: object) -> str:
    return f"<td>{escape(str(text))}</td>"


def _figure(key: str, svg: str) -> str:
    return f'<figure class="chart" data-chart="{escape(key)}">{svg}</figure>'


def _empty(en: str, ko: str) -> str:
    return f'<p class="empty">{escape(en)} · {escape(ko)}</p>'


def _when(at: datetime | None) -> str:
    if at is None:
        return "—"
    return at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M KST")


def _drops(counts: Sequence[Count], most: int = 4) -> str:
    """The largest reasons, for a line under a bar (the table lists them all)."""
    shown = ", ".join(f"{c.key} {charts.number(c.count)}" for c in counts[:most])
    return shown + (f", +{len(counts) - most} more" if len(counts) > most else "")


# -- sections -----------------------------------------------------------------------------------------


def _funnel(parts: Sequence[FunnelPart]) -> str:
    out = [
        f"<h2>{_bi('Funnel', '퍼널')}</h2>",
        '<p class="lead">From the request to the click, in three parts each counted in its own unit. '
        "The red line under a bar is what did not reach it, by reason. · 요청부터 클릭까지, 단계별 이탈 사유.</p>",
    ]
    for part in parts:
        items = [
            Bar(s.en, s.ko, s.count, f"− {charts.number(s.dropped)}: {_drops(s.drops)}" if s.drops else "")
            for s in part.stages
        ]
        out.append(f"<h3>{_bi(part.en, part.ko)}</h3>")
        out.append(_figure(f"funnel-{part.key}", charts.bars(items, f"{part.en} funnel")))
        rows = []
        for s in part.stages:
            key = f"funnel.{part.key}.{s.key}"
            drops = "".join(
                f'<div>{escape(c.key)} <span data-k="{escape(key)}.drop.{escape(c.key)}" data-v="{c.count}">'
                f"{charts.number(c.count)}</span></div>"
                for c in s.drops
            )
            details = "".join(
                f'<div>{escape(c.key)} <span data-k="{escape(key)}.detail.{escape(c.key)}" data-v="{c.count}">'
                f"{charts.number(c.count)}</span></div>"
                for c in s.details
            )
            what = f"<div><b>{escape(s.drop_en)}</b> · {escape(s.drop_ko)}</div>" if s.drops else ""
            rows.append(
                [
                    f"<td>{_bi(s.en, s.ko)}</td>",
                    _n(key, s.count),
                    _td(s.unit),
                    f'<td class="drops">{what}{drops}</td>',
                    f"<td>{details}</td>",
                ]
            )
        out.append(
            _table(
                [
                    _bi("stage", "단계"),
                    _bi("count", "수"),
                    _bi("unit", "단위"),
                    _bi("drop by reason", "이탈 사유"),
                    _bi("detail", "세부"),
                ],
                rows,
            )  # fmt: skip
        )
    return "".join(out)


def _freshness(report: Report) -> str:
    items = [(f.stage, f.lag_hours, f.limit_hours, f.stale) for f in report.freshness]
    rows = []
    for f in report.freshness:
        state = (
            '<td class="stale">stale · 지연</td>'
            if f.stale
            else ('<td class="ok">fresh · 정상</td>' if f.lag_hours is not None else "<td>no record · 기록 없음</td>")
        )
        rows.append(
            [
                _td(f.stage),
                state,
                _td(_when(f.last_success)),
                _td(f.last_status or "—"),
                _td(_when(f.newest_row)),
                _td(charts.age(f.lag_hours)),
                _td(charts.age(f.limit_hours)),
                _td((f.last_error or "")[:160]),
            ]
        )
    stale = sum(f.stale for f in report.freshness)
    return (
        f"<h2>{_bi('Freshness', '최신성')}</h2>"
        f'<p class="lead">Age of each stage since its last success (Firestore <code>runs</code>), else its newest '
        f"row; the dashed line is the limit. {stale} stale. · 단계별 마지막 성공 이후 경과 시간, 지연 {stale}개.</p>"
        + _figure("freshness", charts.lags(items, "freshness per stage"))
        + _table(
            [
                _bi("stage", "단계"),
                _bi("state", "상태"),
                _bi("last success", "마지막 성공"),
                _bi("last run", "최근 실행"),
                _bi("newest row", "최신 행"),
                _bi("lag", "경과"),
                _bi("limit", "한도"),
                _bi("error", "오류"),
            ],
            rows,
        )  # fmt: skip
    )


def _segments(report: Report) -> str:
    if not report.segments:
        return f"<h2>{_bi('Segments', '세그먼트')}</h2>" + _empty(
            "No segment has members yet.", "아직 세그먼트 구성원이 없습니다."
        )
    figures = [
        _figure(
            f"segment-{s.segment_id}",
            charts.series(s.days, s.size, s.entered, s.exited, s.name if s.name == s.segment_id else s.name),
        )
        for s in report.segments[:MAX_SEGMENT_CHARTS]
    ]
    rows = []
    for s in report.segments:
        key = f"segments.{s.segment_id}"
        daily = _table(
            [_bi("day", "날짜"), _bi("size", "크기"), _bi("entered", "진입"), _bi("left", "이탈")],
            (
                [_td(d.isoformat()), _n(f"{key}.{d.isoformat()}.size", n), _n(f"{key}.{d.isoformat()}.entered", e),
                 _n(f"{key}.{d.isoformat()}.exited", x)]
                for d, n, e, x in zip(s.days, s.size, s.entered, s.exited, strict=True)
            ),
        )  # fmt: skip
        rows.append(
            [
                _td(s.name),
                _td(s.segment_id),
                _n(f"{key}.size", s.size[-1]),
                _n(f"{key}.entered", sum(s.entered)),
                _n(f"{key}.exited", sum(s.exited)),
                f"<td><details><summary>per day · 일별</summary>{daily}</details></td>",
            ]
        )
    return (
        f"<h2>{_bi('Segments', '세그먼트')}</h2>"
        f'<p class="lead">Size per day (blue line), entries (green) and exits (red), {report.window.since} – '
        f"{report.window.until}. · 일별 크기, 진입, 이탈.</p>"
        + '<div class="grid">'
        + "".join(figures)
        + "</div>"
        + _table(
            [
                _bi("segment", "세그먼트"),
                "id",
                _bi("size now", "현재 크기"),
                _bi("entered", "진입"),
                _bi("left", "이탈"),
                "",
            ],
            rows,
        )  # fmt: skip
    )


def _rfm(rfm: Rfm) -> str:
    head = f"<h2>{_bi('RFM', 'RFM 분석')}</h2>"
    if not rfm.cells:
        return head + _empty("No customer has an order in the period yet.", "기간 내 주문한 고객이 없습니다.")
    cells = {(c.r_score, c.f_score): c for c in rfm.cells}
    rows = [f"R{r}" for r in range(5, 0, -1)]
    columns = [f"F{f}" for f in range(1, 6)]
    values = [
        [float(cells[(r, f)].customers) if (r, f) in cells else 0.0 for f in range(1, 6)] for r in range(5, 0, -1)
    ]
    texts = [
        [
            (charts.number(cells[(r, f)].customers), f"₩{_short(cells[(r, f)].monetary)}")
            if (r, f) in cells
            else ("0",)
            for f in range(1, 6)
        ]
        for r in range(5, 0, -1)
    ]
    grid = charts.heatmap(rows, columns, values, texts, "RFM grid: customers and revenue", cell=(96, 50))
    groups = charts.bars([Bar(g.group, RFM_KO.get(g.group, ""), g.customers) for g in rfm.groups], "RFM groups")
    cell_rows = [
        [_td(f"R{c.r_score} F{c.f_score}"), _n(f"rfm.cell.{c.r_score}.{c.f_score}.customers", c.customers),
         _n(f"rfm.cell.{c.r_score}.{c.f_score}.monetary", c.monetary, 2)]
        for c in rfm.cells
    ]  # fmt: skip
    group_rows = [
        [
            f"<td>{_bi(g.group, RFM_KO.get(g.group, ''))}</td>",
            _n(f"rfm.group.{g.group}.customers", g.customers),
            _n(f"rfm.group.{g.group}.monetary", g.monetary, 2),
            _td(g.recency_days),
            _td(g.frequency),
        ]
        for g in rfm.groups
    ]
    return (
        head + f'<p class="lead">Recency (R5 = most recent) by frequency (F5 = most orders), customers and revenue per '
        f"cell, period {rfm.period_start} – {rfm.period_end}. · 최근성 × 빈도, 셀별 고객 수와 매출.</p>"
        + '<div class="grid">'
        + _figure("rfm-grid", grid)
        + _figure("rfm-groups", groups)
        + "</div>"
        + _table(
            [
                _bi("group", "그룹"),
                _bi("customers", "고객"),
                _bi("revenue", "매출"),
                _bi("mean recency (days)", "평균 최근성"),
                _bi("mean orders", "평균 주문"),
            ],
            group_rows,
        )  # fmt: skip
        + "<details><summary>cells · 셀</summary>"
        + _table([_bi("cell", "셀"), _bi("customers", "고객"), _bi("revenue", "매출")], cell_rows)
        + "</details>"
    )


# The named groups of docs/segmentlets.md, in Korean for the page.
RFM_KO = {
    "Champions": "최우수 고객",
    "Loyal": "충성 고객",
    "Potential loyalist": "잠재 충성 고객",
    "New": "신규 고객",
    "Promising": "유망 고객",
    "Need attention": "관심 필요",
    "About to sleep": "휴면 직전",
    "At risk": "이탈 위험",
    "Cannot lose them": "놓치면 안 될 고객",
    "Hibernating": "휴면 고객",
    "Lost": "이탈 고객",
}


def _short(value: float) -> str:
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:,.0f}"


def _clusters(result: Clusters) -> str:
    head = f"<h2>{_bi('Clusters', '클러스터')}</h2>"
    if not result.clusters:
        return head + _empty("No discovery run has assigned clusters yet.", "아직 클러스터가 없습니다.")
    colour = {c.cluster_id: charts.PALETTE[n % len(charts.PALETTE)] for n, c in enumerate(result.clusters)}
    out = [head]
    if result.columns:
        out.append(
            f'<p class="lead">The latest discovery run ({escape(str(result.run_id))}): each cluster\'s centre on '
            "the two directions the centres differ most along (bubble area: customers), and what sets it apart "
            "in standard scores against all customers. · 클러스터 중심의 2차원 투영과 특징(표준점수).</p>"
        )
        points = [
            Point(
                str(c.cluster_id), c.x or 0.0, c.y or 0.0, float(c.customers), str(c.cluster_id), colour[c.cluster_id]
            )
            for c in result.clusters
        ]
        heat_rows = [f"{c.cluster_id}: {c.label_ko or c.label}"[:40] for c in result.clusters]
        values = [list(c.centroid) or [0.0] * len(result.columns) for c in result.clusters]
        texts = [[(f"{v:+.1f}",) for v in row] for row in values]
        out.append('<div class="grid">')
        out.append(_figure("clusters-projection", charts.bubbles(points, result.axes, "cluster projection")))
        out.append(
            _figure(
                "clusters-heatmap",
                charts.heatmap(
                    heat_rows,
                    result.columns,
                    values,
                    texts,
                    "cluster centres (z-scores)",
                    diverging=True,
                    cell=(58, 30),
                    row_label_width=260,
                    column_label_height=110,
                    rotate=True,
                ),
            )  # fmt: skip
        )
        out.append("</div>")
    else:
        out.append(
            '<p class="lead">Customers per cluster from the warehouse; the labels and centres need the discovery run '
            "document (Firestore). · 클러스터별 고객 수.</p>"
        )
        bars = [Bar(f"cluster {c.cluster_id}", "", c.customers, colour=colour[c.cluster_id]) for c in result.clusters]
        out.append(_figure("clusters-sizes", charts.bars(bars, "customers per cluster")))
    rows = [
        [_td(c.cluster_id), _td(c.label), _td(c.label_ko), _n(f"clusters.{c.cluster_id}.customers", c.customers),
         _td("—" if c.mean_distance is None else f"{c.mean_distance:.2f}")]
        for c in result.clusters
    ]  # fmt: skip
    out.append(
        _table(
            [
                "id",
                _bi("label", "설명 (영문)"),
                _bi("label (Korean)", "설명"),
                _bi("customers", "고객"),
                _bi("mean distance", "평균 거리"),
            ],
            rows,
        )  # fmt: skip
    )
    return "".join(out)


CAMPAIGN_HEAD = (
    ("planned", "계획"),
    ("fallbacks", "대체 채널"),
    ("eligible", "발송 가능"),
    ("skipped", "제외"),
    ("held", "보류"),
    ("capped", "빈도 제한"),
    ("sent", "발송"),
    ("delivered", "도달"),
    ("failed", "실패"),
    ("clicked", "클릭"),
    ("unsubscribed", "수신 거부"),
    ("complained", "스팸 신고"),
)


def _campaigns(report: Report) -> str:
    out = [f"<h2>{_bi('Campaigns and publications', '캠페인과 게시')}</h2>"]
    if report.campaigns:
        bars = []
        for c in report.campaigns:
            bars += [
                Bar(f"{c.name} · {c.channel}", "planned · 계획", c.planned, colour=charts.GREY),
                Bar("", "sent · 발송", c.sent, colour=charts.BLUE),
                Bar("", "delivered · 도달", c.delivered, colour=charts.GREEN),
                Bar("", "clicked · 클릭", c.clicked, colour=charts.AMBER),
            ]
        out.append(
            f'<p class="lead">Deliveries per campaign and channel, {report.window.since} – {report.window.until} '
            "(dry runs left out). · 캠페인·채널별 발송 결과.</p>"
        )
        out.append(_figure("campaigns", charts.bars(bars, "campaign deliveries")))
        rows = [
            [_td(c.name), _td(c.channel)]
            + [_n(f"campaigns.{c.campaign_id}.{c.channel}.{k}", getattr(c, k)) for k, _ in CAMPAIGN_HEAD]
            for c in report.campaigns
        ]
        out.append(
            _table([_bi("campaign", "캠페인"), _bi("channel", "채널")] + [_bi(k, ko) for k, ko in CAMPAIGN_HEAD], rows)
        )
    else:
        out.append(_empty("No campaign delivery in the window.", "기간 내 캠페인 발송이 없습니다."))
    out.append(f"<h3>{_bi('Publications', '오디언스 게시')}</h3>")
    if report.publications:
        bars = [
            Bar(p.name, p.publication_id if p.name != p.publication_id else "", p.audience) for p in report.publications
        ]
        out.append(_figure("publications", charts.bars(bars, "publication audiences")))
        rows = [
            [_td(p.name), _td(p.destination_id or "—")]
            + [_n(f"publications.{p.publication_id}.{k}", getattr(p, k)) for k in ("audience", "held_rows")]
            + [_td(p.last_run or "—"), _td(_when(p.last_sent_at))]
            + [
                _n(f"publications.{p.publication_id}.{k}", getattr(p, k))
                for k in ("added", "removed", "replaced", "invalid", "refused_batches")
            ]
            for p in report.publications
        ]
        out.append(
            _table(
                [
                    _bi("publication", "게시"),
                    _bi("destination", "대상"),
                    _bi("audience", "오디언스"),
                    _bi("rows held", "보유 행"),
                    _bi("last run", "최근 실행"),
                    _bi("at", "시각"),
                    _bi("added", "추가"),
                    _bi("removed", "제거"),
                    _bi("replaced", "교체"),
                    _bi("invalid", "무효"),
                    _bi("refused batches", "거부된 배치"),
                ],
                rows,
            )  # fmt: skip
        )
    else:
        out.append(_empty("Nothing has been published yet.", "아직 게시된 오디언스가 없습니다."))
    return "".join(out)


def _coverage(sites: Sequence[SiteCoverage]) -> str:
    out = [
        f"<h2>{_bi('Consent coverage', '동의 도달률')}</h2>",
        '<p class="lead">The share of customers the consent gate lets each use reach now (green), and why not for the '
        "rest: the same gate every upload and send goes through. · 동의 게이트 기준 목적·채널별 도달 가능 비율.</p>",
    ]
    if not sites:
        return "".join(out) + _empty("No profiles yet.", "아직 고객 프로필이 없습니다.")
    reasons = sorted({c.key for s in sites for r in s.rows for c in r.reasons})
    colour = {k: charts.REASON_COLOURS[n % len(charts.REASON_COLOURS)] for n, k in enumerate(reasons)}
    legend = " ".join(f'<span style="color:{colour[k]}">■</span> {escape(k)}' for k in reasons)
    out.append(f'<p class="lead"><span style="color:{charts.GREEN}">■</span> eligible · 도달 가능 {legend}</p>')
    for site in sites:
        measured = (
            f"{charts.number(site.measured)} of {charts.number(site.customers)} customers"
            if site.measured < site.customers
            else f"{charts.number(site.customers)} customers"
        )
        out.append(f'<h3>{escape(site.site_id)} <span class="ko">{measured}</span></h3>')
        rows = [
            (
                r.use,
                [Part("eligible", r.eligible, charts.GREEN), *(Part(c.key, c.count, colour[c.key]) for c in r.reasons)],
            )
            for r in site.rows
        ]
        out.append(_figure(f"coverage-{site.site_id}", charts.stacked(rows, f"consent coverage of {site.site_id}")))
        table_rows = []
        for r in site.rows:
            key = f"coverage.{site.site_id}.{r.use}"
            reasons_html = ", ".join(
                f'{escape(c.key)} <span data-k="{escape(key)}.reason.{escape(c.key)}" data-v="{c.count}">'
                f"{charts.number(c.count)}</span>"
                for c in r.reasons
            )
            table_rows.append(
                [_td(r.use), _n(f"{key}.eligible", r.eligible), _n(f"{key}.measured", r.measured),
                 _td(f"{r.share:.1%}"), f'<td class="drops">{reasons_html}</td>']
            )  # fmt: skip
        out.append(
            _table(
                [
                    _bi("use", "용도"),
                    _bi("reachable", "도달 가능"),
                    _bi("customers", "고객"),
                    _bi("share", "비율"),
                    _bi("not reachable, by reason", "불가 사유"),
                ],
                table_rows,
            )  # fmt: skip
        )
    return "".join(out)


SECTIONS = (
    ("funnel", "Funnel", "퍼널"),
    ("freshness", "Freshness", "최신성"),
    ("segments", "Segments", "세그먼트"),
    ("rfm", "RFM", "RFM"),
    ("clusters", "Clusters", "클러스터"),
    ("campaigns", "Campaigns", "캠페인"),
    ("consent", "Consent", "동의"),
)


def render(report: Report) -> str:
    """The page: every section, then the font cut to the characters the page uses."""
    bodies = {
        "funnel": _funnel(report.funnel),
        "freshness": _freshness(report),
        "segments": _segments(report),
        "rfm": _rfm(report.rfm),
        "clusters": _clusters(report.clusters),
        "campaigns": _campaigns(report),
        "consent": _coverage(report.coverage),
    }
    notes = "".join(f'<div class="note">{escape(n.en)}<br>{escape(n.ko)}</div>' for n in report.notes)
    nav = "".join(f'<a href="#{key}">{escape(en)} · {escape(ko)}</a>' for key, en, ko in SECTIONS)
    main = "".join(f'<section id="{key}">{bodies[key]}</section>' for key, _, _ in SECTIONS)
    window = report.window
    header = (
        "<header><h1>CDP report · 고객 데이터 리포트</h1>"
        f"<p>Built {escape(_when(report.generated_at))} · 작성 시각</p>"
        f"<p>Flows over {window.days} days, {window.since} – {window.until} (UTC dates) · "
        f"최근 {window.days}일</p></header>"
    )
    footer = (
        "<footer>Text set in Noto Sans CJK KR (SIL Open Font License 1.1), embedded in this file. · "
        "Noto Sans CJK KR 글꼴 포함.</footer>"
    )
    body = f"{header}<nav>{nav}</nav><main>{notes}{main}</main>{footer}"
    font, _missing = fonts.embedded(body + "CDP report · 고객 데이터 리포트")
    css = CSS % {"family": fonts.FAMILY}
    face = f'@font-face{{font-family:"{fonts.FAMILY}";src:url(data:font/otf;base64,{font}) format("opentype")}}'
    return (
        '<!doctype html><html lang="ko"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>CDP report · 고객 데이터 리포트</title>"
        f"<style>{face}{css}</style></head><body>{body}</body></html>"
    )

"""The report: every number the page shows equals an independent query on the warehouse (or the
document it comes from), the page holds nothing to fetch, its font covers its text, and each section
works from the warehouse alone."""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

from shared.adapters.folder_blobs import FolderBlobs
from shared.config import ConfigError, ReportSettings
from shared.reporting import compute, fonts, render
from shared.reporting.model import Report, Window
from shared.services import consent
from shared.services import report as report_job
from tests.builders import SALT
from tests.report_world import DAYS, NOW, RAW_TABLES, World, build_world

SINCE, UNTIL = (NOW - timedelta(days=DAYS - 1)).date(), NOW.date()
SINCE_TS, UNTIL_TS = f"{SINCE} 00:00:00+00", f"{UNTIL + timedelta(days=1)} 00:00:00+00"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    built = build_world()
    yield built
    built.warehouse.close()


@pytest.fixture(scope="module")
def built(world: World) -> Report:
    return compute.build(world.warehouse, world.documents, NOW, salt=SALT, days=DAYS)


@pytest.fixture(scope="module")
def page(built: Report) -> str:
    return render.render(built)


def shown(page: str) -> dict[str, str]:
    """Every number the page marks: data-k -> data-v."""
    found = re.findall(r'data-k="([^"]+)" data-v="([^"]+)"', page)
    keys = [k for k, _ in found]
    assert len(keys) == len(set(keys)), [k for k, n in Counter(keys).items() if n > 1]
    return {k.replace("&amp;", "&"): v for k, v in found}


def q(world: World, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """DuckDB SQL straight on the file: the test's own statements, not sql/report's."""
    with world.warehouse.connection() as conn:
        return [tuple(r) for r in conn.execute(sql, list(params)).fetchall()]


def one(world: World, sql: str, *params: Any) -> Any:
    [(value,)] = q(world, sql, *params)
    return value


def expected_numbers(world: World) -> dict[str, float]:
    """Each number the page should show, computed here from the tables."""
    e: dict[str, float] = {}
    day = f"event_date >= DATE '{SINCE}' AND event_date <= DATE '{UNTIL}'"
    # Ingestion: distinct ids per raw table, bad rows by stage, requests seen anywhere.
    loaded = {t.split(".")[1]: one(world, f"SELECT COUNT(DISTINCT event_id) FROM {t} WHERE {day}") for t in RAW_TABLES}
    bad = q(world, f"SELECT stage, reason_code, COUNT(DISTINCT bad_row_id) FROM raw.bad_rows WHERE {day} GROUP BY ALL")
    door = Counter({r: n for s, r, n in bad if s in ("collect", "import")})
    at_load = Counter({r: n for s, r, n in bad if s not in ("collect", "import")})
    requests = set()
    for table in (*RAW_TABLES, "raw.bad_rows"):
        requests |= {r for (r,) in q(world, f"SELECT request_id FROM {table} WHERE {day} AND request_id IS NOT NULL")}
    total_loaded = sum(loaded.values())
    refined = one(world, f"SELECT COUNT(DISTINCT event_id) FROM refined.events WHERE {day}")
    e["funnel.ingestion.requests"] = len(requests)
    e["funnel.ingestion.received"] = total_loaded + sum(door.values()) + sum(at_load.values())
    e["funnel.ingestion.accepted"] = total_loaded + sum(at_load.values())
    e |= {f"funnel.ingestion.accepted.drop.{r}": n for r, n in door.items()}
    e["funnel.ingestion.loaded"] = total_loaded
    e |= {f"funnel.ingestion.loaded.drop.{r}": n for r, n in at_load.items()}
    e |= {f"funnel.ingestion.loaded.detail.{t}": n for t, n in loaded.items() if n}
    e["funnel.ingestion.refined"] = refined
    if total_loaded > refined:
        e["funnel.ingestion.refined.drop.not_refined"] = total_loaded - refined
    # Audiences: profiles, members of any segment, customers an audience holds; the window's changes.
    profiles = one(world, "SELECT COUNT(*) FROM refined.profiles")
    members = one(world, "SELECT COUNT(*) FROM (SELECT DISTINCT customer_id FROM audiences.segment_members)")
    held = one(world, "SELECT COUNT(DISTINCT customer_id) FROM audiences.publication_ledger WHERE removed_at IS NULL")
    e["funnel.audiences.profiles"] = profiles
    e["funnel.audiences.in_segments"] = members
    e["funnel.audiences.in_segments.drop.in_no_segment"] = profiles - members
    e["funnel.audiences.published"] = held
    e["funnel.audiences.published.drop.not_published"] = members - held
    in_window = f"BETWEEN TIMESTAMPTZ '{SINCE_TS}' AND TIMESTAMPTZ '{UNTIL_TS}' - INTERVAL 1 MICROSECOND"
    e["funnel.audiences.published.detail.added"] = one(
        world, f"SELECT COUNT(*) FROM audiences.publication_ledger WHERE added_at {in_window}"
    )
    removed = q(
        world,
        f"SELECT removed_reason, COUNT(*) FROM audiences.publication_ledger WHERE removed_at {in_window} GROUP BY 1",
    )
    e["funnel.audiences.published.detail.removed"] = sum(n for _, n in removed)
    e |= {f"funnel.audiences.published.detail.{r}": n for r, n in removed}
    e["funnel.audiences.published.detail.invalid"] = one(
        world,
        "SELECT COALESCE(SUM(n), 0) FROM (SELECT DISTINCT log_id, num_invalid_entries AS n FROM audiences.publish_log "
        f"WHERE outcome = 'ok' AND sent_at {in_window})",
    )
    e |= _messages(world, in_window)
    e |= _sections(world)
    return e


def _messages(world: World, in_window: str) -> dict[str, float]:
    e: dict[str, float] = {}
    plan = q(
        world,
        "SELECT DISTINCT delivery_id, campaign_id, channel, outcome, reason, fallback_of IS NOT NULL "
        f"FROM audiences.deliveries WHERE NOT dry_run AND planned_at {in_window}",
    )
    assert len(plan) == len({p[0] for p in plan})  # copies are identical rows
    events: dict[str, set[tuple[str, str | None]]] = {}
    for d, event, code in q(world, "SELECT DISTINCT delivery_id, event, code FROM audiences.delivery_events"):
        events.setdefault(d, set()).add((event, code))

    def has(d: str, *kinds: str) -> bool:
        return any(k in kinds for k, _ in events.get(d, set()))

    e["funnel.messages.planned"] = len(plan)
    eligible = [p for p in plan if p[3] == "send"]
    e["funnel.messages.eligible"] = len(eligible)
    for (outcome, reason), n in Counter((p[3], p[4]) for p in plan if p[3] != "send").items():
        e[f"funnel.messages.eligible.drop.{outcome}:{reason}"] = n
    sent = [p for p in plan if has(p[0], "sent")]
    delivered = [p for p in plan if has(p[0], "delivered")]
    clicked = [p for p in plan if has(p[0], "clicked")]
    e["funnel.messages.sent"] = len(sent)
    e["funnel.messages.delivered"] = len(delivered)
    e["funnel.messages.clicked"] = len(clicked)
    e["funnel.messages.clicked.drop.not_clicked"] = len(sent) - len(clicked)
    # The planted refusals: d2 failed 30003, d9 skipped by the cap at send; n1 bounced after its send.
    e["funnel.messages.sent.drop.failed:30003"] = 1
    e["funnel.messages.sent.drop.skipped:frequency_capped"] = 1
    e["funnel.messages.delivered.drop.bounced:550 5.1.1"] = 1
    e["funnel.messages.delivered.drop.no_delivery_report"] = len(
        [p for p in sent if not has(p[0], "delivered", "bounced", "failed")]
    )
    for campaign, channel in {(p[1], p[2]) for p in plan}:
        rows = [p for p in plan if (p[1], p[2]) == (campaign, channel)]
        key = f"campaigns.{campaign}.{channel}"
        e[f"{key}.planned"] = len(rows)
        e[f"{key}.fallbacks"] = sum(p[5] for p in rows)
        e[f"{key}.eligible"] = sum(p[3] == "send" for p in rows)
        e[f"{key}.skipped"] = sum(p[3] == "skip" for p in rows)
        e[f"{key}.held"] = sum(p[3] == "hold" or has(p[0], "held") for p in rows)
        capped = [
            p for p in rows if p[4] == "frequency_capped" or ("skipped", "frequency_capped") in events.get(p[0], ())
        ]
        e[f"{key}.capped"] = len(capped)
        for name, kinds in (("sent", ("sent",)), ("delivered", ("delivered",)), ("failed", ("failed", "bounced")),
                            ("clicked", ("clicked",)), ("unsubscribed", ("unsubscribed",)),
                            ("complained", ("complained",))):  # fmt: skip
            e[f"{key}.{name}"] = sum(has(p[0], *kinds) for p in rows)
    return e


def _sections(world: World) -> dict[str, float]:
    e: dict[str, float] = {}
    # Segments: a member on a day entered on or before it and had not left by it.
    spells = q(world, "SELECT segment_id, entered_on, left_on FROM audiences.segment_member_history")
    for segment in {s for s, _, _ in spells}:
        mine = [(a, b) for s, a, b in spells if s == segment]
        days = [SINCE + timedelta(days=n) for n in range(DAYS)]
        for d in days:
            k = f"segments.{segment}.{d}"
            e[f"{k}.size"] = sum(a <= d and (b is None or b > d) for a, b in mine)
            e[f"{k}.entered"] = sum(a == d for a, _ in mine)
            e[f"{k}.exited"] = sum(b == d for _, b in mine)
        e[f"segments.{segment}.size"] = e[f"segments.{segment}.{UNTIL}.size"]
        e[f"segments.{segment}.entered"] = sum(SINCE <= a <= UNTIL for a, _ in mine)
        e[f"segments.{segment}.exited"] = sum(b is not None and SINCE <= b <= UNTIL for _, b in mine)
    # RFM: each site's latest period.
    latest = (
        "SELECT * FROM refined.rfm r "
        "WHERE period_end = (SELECT MAX(period_end) FROM refined.rfm x WHERE x.site_id = r.site_id)"
    )
    for r, f, n, m in q(world, f"SELECT r_score, f_score, COUNT(*), SUM(monetary) FROM ({latest}) GROUP BY ALL"):
        e[f"rfm.cell.{r}.{f}.customers"] = n
        e[f"rfm.cell.{r}.{f}.monetary"] = float(m)
    for g, n, m in q(world, f"SELECT rfm_group, COUNT(*), SUM(monetary) FROM ({latest}) GROUP BY ALL"):
        e[f"rfm.group.{g}.customers"] = n
        e[f"rfm.group.{g}.monetary"] = float(m)
    for c, n in q(world, "SELECT cluster_id, COUNT(*) FROM refined.clusters GROUP BY ALL"):
        e[f"clusters.{c}.customers"] = n
    # Publications: what the ledger holds, and the last run's delta from the log (one copy a batch).
    for (pub,) in q(world, "SELECT DISTINCT publication_id FROM audiences.publication_ledger"):
        k = f"publications.{pub}"
        e[f"{k}.audience"] = one(
            world,
            "SELECT COUNT(DISTINCT customer_id) FROM audiences.publication_ledger WHERE publication_id = ? "
            "AND removed_at IS NULL",
            pub,
        )
        e[f"{k}.held_rows"] = one(
            world,
            "SELECT COUNT(*) FROM audiences.publication_ledger WHERE publication_id = ? AND removed_at IS NULL",
            pub,
        )
        log = q(
            world,
            "SELECT DISTINCT log_id, run_id, op, rows, num_invalid_entries, outcome, sent_at "
            "FROM audiences.publish_log WHERE publication_id = ?",
            pub,
        )
        last = max(log, key=lambda row: row[6])[1]
        batches = [b for b in log if b[1] == last]
        for name, op in (("added", "add"), ("removed", "remove"), ("replaced", "replace")):
            e[f"{k}.{name}"] = sum(b[3] for b in batches if b[2] == op and b[5] == "ok")
        e[f"{k}.invalid"] = sum(b[4] or 0 for b in batches if b[5] == "ok")
        e[f"{k}.refused_batches"] = sum(b[5] != "ok" for b in batches)
    # Consent coverage: the one gate over every customer of each site, asked here directly.
    for site, in q(world, "SELECT DISTINCT site_id FROM refined.profiles"):  # fmt: skip
        ids = [c for (c,) in q(world, "SELECT customer_id FROM refined.profiles WHERE site_id = ?", site)]
        for purpose, channel in compute.USES:
            use = purpose if channel is None else f"{channel} {'advertising' if purpose else 'informational'}"
            answers = consent.eligible_audience(world.warehouse, site, purpose, channel, NOW, SALT, customer_ids=ids)
            reasons = Counter(a.reason.value for a in answers)
            k = f"coverage.{site}.{use}"
            e[f"{k}.eligible"] = reasons.pop("eligible", 0)
            e[f"{k}.measured"] = len(ids)
            e |= {f"{k}.reason.{r}": n for r, n in reasons.items()}
    return e


def test_every_number_on_the_page_equals_an_independent_query(world: World, page: str) -> None:
    numbers = shown(page)
    expected = expected_numbers(world)
    assert set(numbers) == set(expected), (sorted(set(numbers) - set(expected)), sorted(set(expected) - set(numbers)))
    wrong = {k: (numbers[k], v) for k, v in expected.items() if float(numbers[k]) != pytest.approx(float(v))}
    assert not wrong


def test_the_planted_rows_give_the_numbers_a_person_would_count(page: str) -> None:
    """A few values checked by hand against the rows of tests/report_world.py."""
    numbers = shown(page)
    assert numbers["funnel.ingestion.accepted.drop.wrong_type"] == "2"  # bad-2 twice, bad-3; bad-6 is March
    assert numbers["funnel.ingestion.loaded.drop.unsigned_message"] == "1"
    assert numbers["funnel.messages.planned"] == "9"  # d7 a dry run, d8 in March, d1's copy once
    assert numbers["campaigns.winback.sms.capped"] == "2"  # d6 at the plan, d9 at send
    assert numbers["campaigns.winback.sms.held"] == "1" and numbers["campaigns.winback.email.fallbacks"] == "1"
    assert numbers["publications.pub-vip.audience"] == "2" and numbers["publications.pub-vip.refused_batches"] == "1"
    assert numbers["funnel.audiences.published.detail.invalid"] == "1"  # l1 and its copy: once
    assert numbers["segments.vip.2026-05-04.size"] == "3" and numbers["segments.vip.2026-05-05.size"] == "2"
    assert numbers["coverage.shop.email advertising.eligible"] == "1"  # Alice: marketing and a subscribed e-mail


def test_names_labels_and_freshness_come_from_the_documents(built: Report, page: str) -> None:
    assert {c.name for c in built.campaigns if c.campaign_id == "winback"} == {"휴면 회원 새 혜택 안내"}
    assert "VIP 고객" in page and "VIP → Meta" in page and "고액 구매" in page
    clusters = {c.cluster_id: c for c in built.clusters.clusters}
    assert clusters[0].centroid == (1.2, 0.4, -0.5)  # centroid_transformed / weight: z-scores
    assert clusters[0].x is not None and clusters[1].x is not None and clusters[0].x * clusters[1].x < 0
    fresh = {f.stage: f for f in built.freshness}
    assert fresh["refine"].last_success == NOW - timedelta(hours=2) + timedelta(minutes=1)
    assert fresh["refine"].lag_hours == pytest.approx(1.98, abs=0.01) and not fresh["refine"].stale
    # The latest discover run failed: stale however recent its last success; its error is shown.
    assert fresh["discover"].stale and fresh["discover"].last_error == "RuntimeError: boom"
    assert fresh["build_segments"].stale and fresh["build_segments"].lag_hours == pytest.approx(4.98, abs=0.01)
    assert fresh["privacy_requests"].last_success is None and not fresh["privacy_requests"].stale  # beyond 8 days
    assert fresh["sync_schedules"].last_status == "ok" and not fresh["sync_schedules"].stale
    # collect records no runs: its newest row in the window decides.
    assert fresh["collect"].newest_row is not None and fresh["collect"].stale


def test_the_page_fetches_nothing_and_its_font_covers_its_text(page: str) -> None:
    assert page.startswith("<!doctype html>")
    assert not re.search(r"<(script|link|img|iframe)\b", page, re.I)
    urls = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>)]+)|url\(([^)]+)\)""", page)
    assert all(u.startswith(("#", "data:")) for pair in urls for u in pair if u), urls
    [encoded] = re.findall(r"base64,([A-Za-z0-9+/=]+)", page)
    cmap = TTFont(io.BytesIO(base64.b64decode(encoded)))["cmap"].getBestCmap()
    text = visible_text(page)
    assert re.search(r"[가-힣]", text), "the page has Korean labels"
    missing = {c for c in text if not c.isspace() and ord(c) not in cmap}
    assert not missing, sorted(missing)
    assert len(encoded) < 200_000  # cut to the page's characters, not the whole Hangul set


def visible_text(page: str) -> str:
    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.skip = False

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.skip = tag == "style"

        def handle_endtag(self, tag: str) -> None:
            self.skip = False

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(page)
    return "".join(parser.parts)


def test_the_committed_font_has_every_ks_x_1001_syllable_and_its_licence() -> None:
    assert fonts.FONT_FILE.stat().st_size < 400_000
    wanted = {chr(c) for c in range(0x20, 0x7F)} | set("₩■·…−–—→ㄱㅎ") | set(fonts.asset_characters()[-2350:])
    assert wanted <= fonts.covered() <= set(fonts.asset_characters())
    assert len([c for c in fonts.covered() if "가" <= c <= "힣"]) == 2350
    assert "SIL OPEN FONT LICENSE Version 1.1" in fonts.LICENSE_FILE.read_text()
    encoded, missing = fonts.embedded("고객 report 뷁")  # 뷁 is no KS X 1001 syllable
    assert missing == {"뷁"}
    cut = TTFont(io.BytesIO(base64.b64decode(encoded)))["cmap"].getBestCmap()
    assert {chr(c) for c in cut} >= set("고객report") and ord("뷁") not in cut


def test_built_from_the_warehouse_alone_the_page_says_so(world: World) -> None:
    alone = compute.build(world.warehouse, None, NOW, salt=SALT, days=DAYS)
    assert not alone.documents and "warehouse alone" in alone.notes[0].en
    assert {c.name for c in alone.campaigns} == {"winback", "notice"}  # ids for names
    assert alone.clusters.columns == () and {c.cluster_id for c in alone.clusters.clusters} == {0, 1}
    assert all(f.last_success is None for f in alone.freshness)
    page = render.render(alone)
    assert 'data-chart="clusters-sizes"' in page and "Firestore" in page


def test_coverage_on_a_sample_says_how_many_it_measured(world: World) -> None:
    sampled = compute.build(world.warehouse, None, NOW, salt=SALT, days=DAYS, coverage_sample=5)
    shop = {s.site_id: s for s in sampled.coverage}["shop"]
    first = sorted(c for (c,) in q(world, "SELECT customer_id FROM refined.profiles WHERE site_id = 'shop'"))[:5]
    assert shop.measured == 5 and shop.customers == len(first) + 8 and all(r.measured == 5 for r in shop.rows)
    assert any("5 of 13" in n.en for n in sampled.notes)
    direct = consent.eligible_audience(world.warehouse, "shop", "marketing", None, NOW, SALT, customer_ids=first)
    marketing = {r.use: r for r in shop.rows}["marketing"]
    assert marketing.eligible == sum(a.eligible for a in direct)


def test_an_empty_warehouse_gives_a_page_with_every_section_empty() -> None:
    from tests.builders import new_warehouse

    warehouse = new_warehouse()
    try:
        empty = compute.build(warehouse, None, NOW, salt=SALT, days=7)
    finally:
        warehouse.close()
    assert [s.count for p in empty.funnel for s in p.stages] == [0] * 13
    assert empty.segments == () and empty.rfm.cells == () and empty.coverage == () and empty.campaigns == ()
    page = render.render(empty)
    for section in ("funnel", "freshness", "segments", "rfm", "clusters", "campaigns", "consent"):
        assert f'<section id="{section}">' in page


def test_the_job_writes_the_page_and_a_redelivery_rewrites_the_same_file(world: World, tmp_path: Path) -> None:
    ports = report_job.ReportPorts(world.warehouse, world.documents, FolderBlobs(tmp_path), SALT, days=DAYS)
    first = report_job.build_report(ports, NOW, run_id="build_report-1")
    again = report_job.build_report(ports, NOW, run_id="build_report-1")
    assert first.location == again.location == str(tmp_path / "report-20260510T030000Z.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.html", "report-20260510T030000Z.html"]
    latest = world.documents.get("reports", "latest")
    assert latest is not None and latest["location"] == first.location and latest["bytes"] == first.bytes
    assert latest["stale_stages"] == [f.stage for f in first.report.freshness if f.stale]
    run = world.documents.get("runs", "build_report-1")
    assert run is not None and run["status"] == "succeeded" and run["location"] == first.location


def test_report_settings_refuse_what_cannot_work() -> None:
    assert ReportSettings.from_env({}) == ReportSettings()
    got = ReportSettings.from_env(
        {"CDP_REPORT_BUCKET": "b", "CDP_REPORT_DAYS": "7", "CDP_REPORT_COVERAGE_SAMPLE": "10"}
    )
    assert (got.bucket, got.days, got.coverage_sample) == ("b", 7, 10)
    with pytest.raises(ConfigError, match="CDP_REPORT_DAYS"):
        ReportSettings.from_env({"CDP_REPORT_DAYS": "0"})
    with pytest.raises(ConfigError, match="CDP_REPORT_COVERAGE_SAMPLE"):
        ReportSettings.from_env({"CDP_REPORT_COVERAGE_SAMPLE": "-1"})


def test_chart_labels_are_cut_to_their_room_with_hangul_counted_wide() -> None:
    from shared.reporting.charts import fit

    assert fit("RFM: Loyal", 200) == "RFM: Loyal"
    latin, hangul = fit("x" * 100, 120), fit("가" * 100, 120)
    assert latin.endswith("…") and hangul.endswith("…") and len(hangul) < len(latin) < 100


def test_a_run_that_ended_after_the_page_time_is_fresh_not_negative(world: World) -> None:
    early = compute.freshness(world.warehouse, world.documents, Window.ending(NOW, DAYS), NOW - timedelta(hours=3))
    refine = {f.stage: f for f in early}["refine"]
    assert refine.lag_hours == 0.0 and not refine.stale

"""The report page in headless Chromium, opened from a file as a person would: no request leaves it, no
console error, every chart has ink in its box, and Hangul is drawn with glyphs, not missing-glyph boxes."""

from __future__ import annotations

import io
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser

from shared.adapters.folder_blobs import FolderBlobs
from shared.services import report
from tests.builders import SALT
from tests.e2e.browser import chromium
from tests.report_world import DAYS, NOW, build_world

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    world = build_world()
    folder = tmp_path_factory.mktemp("report")
    try:
        ports = report.ReportPorts(world.warehouse, world.documents, FolderBlobs(folder), SALT, days=DAYS)
        built = report.build_report(ports, NOW)
    finally:
        world.warehouse.close()
    yield Path(built.location)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def ink(png: bytes) -> tuple[float, float]:
    """The picture's grey-level spread and its share of pixels that are not near-white."""
    grey = Image.open(io.BytesIO(png)).convert("L")
    values = grey.tobytes()
    return statistics.pstdev(values), sum(v < 230 for v in values) / len(values)


def test_the_page_loads_offline_with_every_chart_drawn(browser: Browser, page_file: Path, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    requests: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri(), wait_until="load")
    page.evaluate("document.fonts.ready")
    assert failed == [] and errors == []
    assert requests == [page_file.as_uri()]  # the file itself; the font is inline, nothing else is asked for
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    charts = page.locator("figure.chart")
    names = charts.evaluate_all("els => els.map(e => e.dataset.chart)")
    assert {"funnel-ingestion", "funnel-audiences", "funnel-messages", "freshness", "rfm-grid", "rfm-groups",
            "clusters-projection", "clusters-heatmap", "campaigns", "publications", "coverage-shop",
            "segment-vip"} <= set(names)  # fmt: skip
    for n, name in enumerate(names):
        chart = charts.nth(n).locator("svg")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30, name
        spread, inked = ink(chart.screenshot())
        assert spread > 8 and inked > 0.01, (name, spread, inked)
    page.close()


SPAN_STYLE = 'font: 40px "Report Sans"; position: fixed; top: 0; left: 0; background: #fff; color: #000; padding: 4px'


def test_hangul_is_drawn_by_the_embedded_font_not_as_boxes(browser: Browser, page_file: Path) -> None:
    page = browser.new_page()
    page.goto(page_file.as_uri(), wait_until="load")
    page.evaluate("document.fonts.ready")
    loaded = page.evaluate("[...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)")
    assert [f.strip('"') for f in loaded] == ["Report Sans"]
    # Four Hangul syllables beside four private-use characters no font has: the latter are drawn as
    # missing-glyph boxes (or nothing); real glyphs differ from them and from each other.
    shots = {}
    for name, text in (("hangul", "고객분석"), ("other", "클릭발송"), ("missing", "\ue000\ue001\ue002\ue003")):
        page.evaluate(
            """([name, text]) => { const s = document.createElement('span'); s.id = name; s.textContent = text;
               s.style.cssText = STYLE; document.body.appendChild(s); }""".replace("STYLE", repr(SPAN_STYLE)),
            [name, text],
        )
        shots[name] = page.locator(f"#{name}").screenshot()
        page.evaluate("name => document.getElementById(name).remove()", name)
    width = page.evaluate(
        "() => { const c = document.createElement('canvas').getContext('2d'); c.font = '40px \"Report Sans\"';"
        " return c.measureText('고객분석').width; }"
    )
    assert width > 100  # four full-width glyphs
    assert ink(shots["hangul"])[1] > 0.02
    assert shots["hangul"] != shots["missing"] and shots["hangul"] != shots["other"]
    assert shots["missing"] != shots["other"]
    page.close()

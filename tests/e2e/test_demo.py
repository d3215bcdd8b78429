"""The README's main job, small: scripts/demo end to end (its own emulators and servers on free ports),
through ingestion, refinement, discovery with its charts, and the segment builds."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from devstack import demo

pytestmark = pytest.mark.emulator


def test_the_demo_runs_the_whole_pipeline_and_discovers_clusters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert demo.main(["--visitors", "120", "--days", "14", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "All stages agree." in printed
    assert "Discovery (K-Means over the profiles)" in printed
    charts = sorted(p.name for p in (out / "discovery").glob("*.png"))
    assert charts == ["clusters_heatmap.png", "clusters_projection.png"]
    assert all((out / "discovery" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in charts)
    with duckdb.connect(str(out / "warehouse.duckdb"), read_only=True) as conn:
        clustered, agree, k = conn.execute(
            "select count(*), count(*) filter (where p.cluster_id = c.cluster_id), count(distinct c.cluster_id) "
            "from refined.clusters c join refined.profiles p using (customer_id)"
        ).fetchone()
        in_scope = conn.execute("select count(*) from refined.profiles where recency_days < 365").fetchone()[0]
    assert clustered == agree == in_scope > 0
    assert 2 <= k <= 8
    # Each cluster is a built segment: its line shows the label and its member count.
    assert len(re.findall(r"^\s+K-Means \d+: .+\s\d+ members$", printed, re.MULTILINE)) == k
    # The report page, built while the emulator was up, with its path printed; its funnel counts the
    # rows the terminal's ingestion table counted (the window covers the whole history), less erasures.
    page = re.search(r"^Report: (\S+) \(open it in a browser", printed, re.MULTILINE)
    assert page, printed[-3000:]
    html = Path(page.group(1)).read_text()
    assert Path(page.group(1)).parent == out / "report" and (out / "report" / "latest.html").read_text() == html
    raw = r"^\s+raw\.(?:page|land|event|user|conv)\s+"
    loaded = sum(int(n.replace(",", "")) for n in re.findall(raw + r"([\d,]+)\s+[\d,]+\s+ok$", printed, re.MULTILINE))
    erased = sum(int(n) for n in re.findall(raw + r"\d+ found\s+(\d+) erased", printed, re.MULTILINE))
    shown = int(re.search(r'data-k="funnel.ingestion.loaded" data-v="(\d+)"', html).group(1))  # type: ignore[union-attr]
    # The privacy stage erased a person's rows since; later stages may add a click or an order.
    assert 0 < loaded - erased <= shown <= loaded - erased + 10, (loaded, erased, shown)
    assert "고객 데이터 리포트" in html and 'data-chart="clusters-projection"' in html


def test_the_default_demo_agrees_and_every_example_segment_has_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's main job at its default size, as a newcomer runs it: an example segment that
    shows nobody would look broken."""
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "All stages agree." in printed
    names = {}
    for path in sorted((demo.REPO / "examples" / "segments").glob("*.yaml")):
        name = next(line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("name:"))
        names[name] = re.search(rf"^\s+{re.escape(name)}\s+([\d,]+) members$", printed, re.MULTILINE)
    assert all(names.values()), f"not built: {[n for n, m in names.items() if not m]}"
    sizes = {name: int(m.group(1).replace(",", "")) for name, m in names.items() if m}
    assert all(sizes.values()), f"empty example segments: {sizes}"
    # Publishing: the VIP segment reaches the fake Graph API, and a withdrawal takes one person out.
    first = re.search(r"^\s+first\s+state ok; .* sent \+(\d+) / -0 .* the fake holds (\d+)$", printed, re.MULTILINE)
    second = re.search(
        r"^\s+second\s+state ok; .* sent \+0 / -1 \(1 no_consent\) .* the fake holds (\d+)$", printed, re.MULTILINE
    )
    assert first and second, printed[printed.find("Publishing") :]
    assert int(first.group(1)) == int(first.group(2)) > 0 and int(second.group(1)) == int(first.group(2)) - 1
    # Campaigns: what the ledger says was sent is what the fakes received, and a STOP reply sticks.
    campaigns = printed[printed.find("Campaigns (examples/campaigns") :]
    received = re.search(
        r"^  the fakes received (\d+) e-mails, (\d+) SMS and (\d+) AlimTalks; the ledger says sent (\d+), (\d+) "
        r"and (\d+), SMS delivered (\d+): each once, none lost$",
        campaigns,
        re.MULTILINE,
    )
    assert received, campaigns
    emails, sms, kakao, sent_emails, sent_sms, sent_kakao, delivered = (int(g) for g in received.groups())
    assert emails == sent_emails > 0 and sms == sent_sms == delivered  # advertising SMS may be held at night
    assert kakao == sent_kakao > 0  # informational AlimTalk: no night rule
    # Web push: browsers subscribed through collect; the fake push service decrypted what they show.
    assert re.search(
        r"^  3 VIP browsers subscribed through collect; the push service received 3, decrypted and showed 3: \S",
        campaigns,
        re.MULTILINE,
    ), campaigns
    # An order beacon triggers the order confirmation within the target (issue 18's trigger latency).
    latency = re.search(
        r"^  a VIP's order beacon triggered the order confirmation: planned ([\d.]+) s after collect accepted it "
        r"\(target 300 s\), e-mails sent 1$",
        campaigns,
        re.MULTILINE,
    )
    assert latency and float(latency.group(1)) <= 300, campaigns
    # The VIP KakaoTalk does not know (NHN's 3019, reported after acceptance) gets the SMS instead.
    assert re.search(
        r"^  one VIP is not a KakaoTalk user: alimtalk sent, alimtalk failed \(3019\), sms sent",
        campaigns,
        re.MULTILINE,
    ), campaigns
    assert "VIP 회원 등급 안내 (이메일) (vip-grade-notice)" in campaigns
    if sms:  # the link in an SMS goes through collect's click route, back to the shop with UTM parameters
        assert re.search(
            r"^  one recipient tapped the link in their SMS: 302 to https://demo-shop\.example/benefits\?"
            r"utm_source=sms&utm_medium=sms&utm_campaign=dormant-winback-sms&\S+; clicked deliveries: 1$",
            campaigns,
            re.MULTILINE,
        ), campaigns
        assert "one recipient replied STOP: the gate now answers unsubscribed for SMS" in campaigns
    # A mailbox provider's complaint report (ARF, recipient redacted) reaches email_feedback: the
    # delivery's complaint and opt-out are recorded and the gate refuses that address's e-mail.
    assert (
        "one recipient marked their e-mail as spam: the feedback loop's report (recipient redacted) reached "
        "email_feedback (200), which recorded complained, unsubscribed; the gate now answers unsubscribed "
        "for e-mail to that address"
    ) in campaigns, campaigns
    assert re.search(r"^ {21}sent .* complained 1$", campaigns, re.MULTILINE), campaigns
    last = printed.strip().splitlines()[-1]
    assert re.fullmatch(r"demo: done in \d+ s \(load \d+ msgs/s\)", last), last

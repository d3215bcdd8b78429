"""The device-class benchmark: Matomo's types mapped to ours, cases read and left out, the scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.devices import (
    MATOMO_CLASSES,
    Case,
    browsers_only,
    device_classifier,
    evaluate,
    load_fixtures,
    main,
    matomo_class,
    read_cases,
    report,
    sample,
)

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# Written for these tests in the fixtures' shape (a list of cases), not taken from them.
FIXTURE = f"""
- user_agent: "{IPHONE}"
  device: {{type: smartphone, brand: Apple, model: iPhone}}
- user_agent: "{IPAD}"
  device: {{type: tablet, brand: Apple, model: iPad}}
- user_agent: "1.0"
  device: {{type: ""}}
- user_agent: "{WINDOWS}"
  headers: {{Sec-CH-UA-Mobile: "?1"}}
  device: {{type: smartphone}}
"""
BOTS = f"""
- user_agent: "{GOOGLEBOT}"
  bot: {{name: Googlebot, category: Search bot}}
"""


def test_matomo_types_map_to_our_five_classes() -> None:
    assert {MATOMO_CLASSES[t] for t in ("smartphone", "phablet", "feature phone")} == {"mobile"}
    assert (MATOMO_CLASSES["tablet"], MATOMO_CLASSES["desktop"], MATOMO_CLASSES["bot"]) == ("tablet", "desktop", "bot")
    assert {MATOMO_CLASSES[t] for t in ("tv", "console", "wearable", "car browser", "peripheral")} == {"other"}
    assert set(MATOMO_CLASSES.values()) == {"mobile", "tablet", "desktop", "bot", "other"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ({"user_agent": "x", "device": {"type": "phablet"}}, "phablet"),
        ({"user_agent": "x", "bot": {"name": "b"}}, "bot"),
        ({"user_agent": "x", "headers": {"a": "b"}, "device": {"type": "tablet"}}, "client hints"),
        ({"user_agent": "x", "device": {"type": ""}}, "no type"),
        ({"user_agent": "x", "device": {"type": "hologram"}}, "unmapped type 'hologram'"),
        ({"device": {"type": "tablet"}}, "malformed"),
        ("not a case", "malformed"),
    ],
)
def test_each_case_gets_a_class_or_a_reason(case: object, expected: str) -> None:
    assert matomo_class(case) == expected


def test_fixture_files_are_read_with_the_left_out_counted(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(FIXTURE, encoding="utf-8")
    (tmp_path / "bots.yml").write_text(BOTS, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    cases, excluded = load_fixtures(tmp_path)
    assert cases == [Case("smartphone", IPHONE), Case("tablet", IPAD), Case("bot", GOOGLEBOT)]
    assert excluded == {"no type": 1, "client hints": 1}
    with pytest.raises(OSError, match="no \\*.yml"):
        load_fixtures(tmp_path / "missing")


def test_user_agents_stay_text() -> None:
    """A user agent that looks like a number is still a string (BaseLoader semantics)."""
    kept, _ = read_cases([{"user_agent": "1.0", "device": {"type": "desktop"}}])
    assert kept == [Case("desktop", "1.0")]


def test_browsers_only_drops_apps_http_clients() -> None:
    cases = [Case("smartphone", IPHONE), Case("smartphone", "Dalvik/2.1.0 (Linux; U; Android 14)"),
             Case("tablet", "Opera/9.80 (Android 4.0.4; Linux; Opera Tablet/ADR-1301)")]  # fmt: skip
    assert browsers_only(cases) == [cases[0], cases[2]]


def test_the_sample_caps_each_class_and_repeats() -> None:
    cases = [Case("smartphone", f"p{i}") for i in range(10)] + [Case("tablet", f"t{i}") for i in range(3)]
    first = sample(cases, 4, seed=1)
    assert sorted(c.theirs for c in first) == ["smartphone"] * 4 + ["tablet"] * 3
    assert sample(cases, 4, seed=1) == first
    assert sample(cases, 0, seed=1) == cases


def test_scoring_counts_right_wrong_and_what_instead() -> None:
    cases = [Case("smartphone", "a"), Case("phablet", "b"), Case("tablet", "c"), Case("tv", "d")]
    result = evaluate(cases, lambda ua: "mobile")
    assert result.total == {"smartphone": 1, "phablet": 1, "tablet": 1, "tv": 1}
    assert result.right == {"smartphone": 1, "phablet": 1}
    assert result.wrong_as == {"tablet": {"mobile": 1}, "tv": {"mobile": 1}}
    assert [m.split() for m in result.misses] == [["tablet", "->", "mobile", "c"], ["tv", "->", "mobile", "d"]]
    lines = report(result)
    assert lines[-2].split() == ["mobile+tablet+desktop+bot", "2", "/", "3", "66.7%"]
    assert lines[-1].split() == ["all", "2", "/", "4", "50.0%"]
    assert any(line.split()[:6] == ["tablet", "tablet", "0", "/", "1", "0.0%"] for line in lines)


def test_the_real_parser_on_plain_cases() -> None:
    classify, source = device_classifier(None)
    assert source.endswith("shared/enrich/user_agent.py")
    cases = [Case("smartphone", IPHONE), Case("tablet", IPAD), Case("desktop", WINDOWS), Case("bot", GOOGLEBOT)]
    result = evaluate(cases, classify)
    assert result.right == result.total and not result.misses


def test_main_prints_the_table_and_fails_on_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yml").write_text(FIXTURE + BOTS, encoding="utf-8")
    assert main([str(tmp_path), "--misses"]) == 0
    out = capsys.readouterr().out
    assert "3 mapped, 3 measured" in out and "client hints 1" in out
    assert [line.split() for line in out.splitlines() if line.startswith("all ")] == [["all", "3", "/", "3", "100.0%"]]
    assert main([str(tmp_path / "missing")]) == 1
    assert "cannot read" in capsys.readouterr().err

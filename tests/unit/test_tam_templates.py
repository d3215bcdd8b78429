"""The four templates: what each offers, what it demands, and that its defaults are valid segments."""

from __future__ import annotations

import json

import pytest

from shared.segmentlets import BY_CODE, PRODUCT_SEGMENTLETS
from shared.tam.rules import InvalidSegment, Period, parse_segment
from shared.tam.templates import DEFAULT_SCHEDULE, TEMPLATES


def test_the_four_templates_of_the_product() -> None:
    assert {t: (v.name_ko, v.name_en) for t, v in TEMPLATES.items()} == {
        "all_users": ("전체 사용자", "All users"),
        "behaviour": ("사용자 행동", "User behaviour"),
        "kmeans": ("K-Means 세그먼트", "K-Means segment"),
        "rfm": ("RFM 분석", "RFM analysis"),
    }


def test_what_each_template_offers() -> None:
    offered = {t.id: set(t.segmentlets) for t in TEMPLATES.values()}
    assert offered["all_users"] == {c for c, s in BY_CODE.items() if s.group in ("Who", "Activity")}
    assert {"kw_inner", "pn", "rvn_ltv", "ref_media_lst", "recency_days"} <= offered["behaviour"]
    assert "rfm" not in offered["behaviour"] and "cluster_id" not in offered["behaviour"]
    assert "cluster_id" in offered["kmeans"] and "rfm" not in offered["kmeans"]
    assert "rfm" in offered["rfm"] and "kw_inner" not in offered["rfm"]
    assert set().union(*offered.values()) >= set(PRODUCT_SEGMENTLETS)  # every segmentlet is reachable
    for template in TEMPLATES.values():
        assert set(template.required) <= set(template.segmentlets)


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_defaults_make_a_valid_segment(template_id: str) -> None:
    template = TEMPLATES[template_id]
    doc = {"name": "starter", "template": template_id}
    if template.default_rules is not None:
        doc["rules"] = template.default_rules
    segment = parse_segment("starter", doc)
    assert segment.period == Period(last_days=template.default_period["last_days"])
    assert (segment.schedule.cron, segment.schedule.timezone) == (DEFAULT_SCHEDULE["cron"], "Asia/Seoul")
    assert (segment.rules is None) == (template.default_rules is None)


def test_only_all_users_may_omit_rules() -> None:
    assert [t for t in TEMPLATES.values() if not t.rules_required] == [TEMPLATES["all_users"]]
    with pytest.raises(InvalidSegment, match="rules: template rfm needs at least one condition"):
        parse_segment("x", {"name": "x", "template": "rfm"})


def test_template_documents_are_plain_json() -> None:
    doc = TEMPLATES["rfm"].document()
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert doc["defaults"]["period"] == {"last_days": 365} and doc["required"] == ["rfm"]
    assert doc["segmentlets"][0] == "sex"  # catalogue order

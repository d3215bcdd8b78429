"""The four segment templates: which segmentlets each offers, what a segment needs, its defaults.

A template narrows the catalogue to what makes sense for one kind of audience, so a marketer picks
from a short list and a K-Means or RFM segment cannot forget its defining attribute. Defaults are
plain document fragments (the same shape a segment document uses), so the compiler sees one form
whether a value came from the marketer or from the template. Published to Firestore `templates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.segmentlets import CATALOGUE

DEFAULT_TIMEZONE = "Asia/Seoul"
# Daily at 07:00 Seoul time: after the nightly refine, before the working day.
DEFAULT_SCHEDULE: dict[str, str] = {"cron": "0 7 * * *", "timezone": DEFAULT_TIMEZONE}


@dataclass(frozen=True)
class Template:
    id: str
    name_ko: str
    name_en: str
    description: str
    groups: tuple[str, ...]  # segmentlet groups offered
    required: tuple[str, ...]  # segmentlets a segment of this template must have a condition on
    rules_required: bool  # False: a segment may omit rules (everyone active in the period)
    default_period: dict[str, Any]
    default_rules: dict[str, Any] | None  # a starter the UI pre-fills; never applied silently

    @property
    def segmentlets(self) -> tuple[str, ...]:
        """Codes offered, in catalogue order."""
        return tuple(s.code for s in CATALOGUE if s.group in self.groups)

    def document(self) -> dict[str, Any]:
        """The Firestore `templates/{id}` document."""
        return {
            "id": self.id,
            "name_ko": self.name_ko,
            "name_en": self.name_en,
            "description": self.description,
            "groups": list(self.groups),
            "segmentlets": list(self.segmentlets),
            "required": list(self.required),
            "rules_required": self.rules_required,
            "defaults": {
                "period": dict(self.default_period),
                "schedule": dict(DEFAULT_SCHEDULE),
                "rules": self.default_rules,
                "enabled": True,
            },
        }


TEMPLATES: dict[str, Template] = {
    t.id: t
    for t in (
        Template(
            id="all_users",
            name_ko="전체 사용자",
            name_en="All users",
            description="Everyone active in the period, optionally narrowed by who they are.",
            groups=("Who", "Activity"),
            required=(),
            rules_required=False,
            default_period={"last_days": 30},
            default_rules=None,
        ),
        Template(
            id="behaviour",
            name_ko="사용자 행동",
            name_en="User behaviour",
            description="Combine what customers did, searched, viewed and bought with who they are.",
            groups=("Who", "Did", "Want", "Value", "Activity"),
            required=(),
            rules_required=True,
            default_period={"last_days": 90},
            default_rules={"all": [{"segmentlet": "sessions", "op": "gte", "value": 1}]},
        ),
        Template(
            id="kmeans",
            name_ko="K-Means 세그먼트",
            name_en="K-Means segment",
            description="Customers of one or more clusters found by the discovery job.",
            groups=("KMeans", "Who", "Value", "Activity"),
            required=("cluster_id",),
            rules_required=True,
            default_period={"last_days": 365},
            default_rules={"all": [{"segmentlet": "cluster_id", "op": "eq", "value": 1}]},
        ),
        Template(
            id="rfm",
            name_ko="RFM 분석",
            name_en="RFM analysis",
            description="Customers of one or more RFM groups (recency, frequency, monetary).",
            groups=("RFM", "Who", "Value", "Activity"),
            required=("rfm",),
            rules_required=True,
            default_period={"last_days": 365},
            default_rules={"all": [{"segmentlet": "rfm", "op": "in", "value": ["At risk", "Cannot lose them"]}]},
        ),
    )
}

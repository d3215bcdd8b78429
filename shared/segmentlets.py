"""The segmentlet catalogue: the ready-made attributes marketers build audiences from.

Each segmentlet is one column of `refined.profiles`. Refinement (sql/refine) fills the columns;
the segment compiler (rules → SQL) accepts only these codes and, for each, only the operators its
type allows. The 22 segmentlets of the product come first; the activity attributes after them
(recency, sessions, contactability) are what dormant-customer and reachability rules need.
Definitions are in docs/segmentlets.md.
"""

from __future__ import annotations

from dataclasses import dataclass

# Operators by value type. `list` columns hold distinct values, most recent first.
OPERATORS: dict[str, tuple[str, ...]] = {
    "category": ("eq", "ne", "in", "not_in", "exists", "not_exists"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "exists", "not_exists"),
    "list": ("contains", "not_contains", "contains_any", "contains_all", "exists", "not_exists"),
    "text_list": ("contains", "not_contains", "contains_any", "contains_all", "matches", "exists", "not_exists"),
    "boolean": ("eq", "exists", "not_exists"),
}


@dataclass(frozen=True)
class Segmentlet:
    code: str
    name_ko: str
    name_en: str
    group: str  # Who, Did, Want, Value, RFM, KMeans, Activity
    type: str  # a key of OPERATORS
    column: str  # the refined.profiles column
    description: str

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS[self.type]


CATALOGUE: tuple[Segmentlet, ...] = (
    # Who
    Segmentlet("sex", "성별", "Sex", "Who", "category", "sex", "M, F or U, from the latest identify or CRM record"),
    Segmentlet("age", "연령", "Age", "Who", "number", "age", "Age in whole years on the run date, from birth year"),
    Segmentlet("device", "기기", "Device", "Who", "category", "device", "desktop, mobile or tablet used most"),
    Segmentlet("os", "운영체제", "Operating system", "Who", "category", "os", "Operating system used most"),
    Segmentlet("br", "브라우저", "Browser", "Who", "category", "br", "Browser used most"),
    Segmentlet("region", "지역", "Region", "Who", "category", "region", "Region seen most (load-balancer geo)"),
    # Did
    Segmentlet(
        "ref_media_fst",
        "최초 유입 매체",
        "First inflow medium",
        "Did",
        "category",
        "ref_media_fst",
        "Medium of the first arrival ever",
    ),
    Segmentlet(
        "ref_media_lst",
        "최종 유입 매체",
        "Last inflow medium",
        "Did",
        "category",
        "ref_media_lst",
        "Medium of the last non-direct arrival",
    ),
    Segmentlet(
        "ad",
        "광고 유입",
        "Ad inflow",
        "Did",
        "list",
        "ad",
        "Ad platforms the customer arrived from by an ad click, most recent first",
    ),
    Segmentlet(
        "cc",
        "캠페인 유입",
        "Campaign inflow",
        "Did",
        "list",
        "cc",
        "Campaigns (utm_campaign) the customer arrived from, most recent first",
    ),
    # Want
    Segmentlet(
        "kw_inner",
        "내부 검색어",
        "Internal search keyword",
        "Want",
        "text_list",
        "kw_inner",
        "Distinct site-search keywords, most recent first",
    ),
    Segmentlet(
        "kw_outer",
        "유입 검색어",
        "Inbound search keyword",
        "Want",
        "text_list",
        "kw_outer",
        "Distinct search-engine keywords of arrivals, most recent first",
    ),
    Segmentlet(
        "pn_odr",
        "주문 상품명",
        "Ordered product name",
        "Want",
        "text_list",
        "pn_odr",
        "Distinct names of ordered products, most recent first",
    ),
    Segmentlet(
        "pn",
        "조회 상품명",
        "Viewed product name",
        "Want",
        "text_list",
        "pn",
        "Distinct names of viewed products, most recent first",
    ),
    # Value
    Segmentlet("rvn", "주문 매출", "Order revenue", "Value", "number", "rvn", "Revenue in the period (refunds net)"),
    Segmentlet("odr", "주문 수", "Orders", "Value", "number", "odr", "Orders in the period"),
    Segmentlet(
        "avg_rvn", "평균 주문 금액", "Average order value", "Value", "number", "avg_rvn", "rvn / odr in the period"
    ),
    Segmentlet("rvn_ltv", "누적 매출", "Lifetime revenue", "Value", "number", "rvn_ltv", "Revenue ever"),
    Segmentlet("odr_ltv", "누적 주문 수", "Lifetime orders", "Value", "number", "odr_ltv", "Orders ever"),
    Segmentlet(
        "avg_rvn_ltv",
        "누적 평균 주문 금액",
        "Lifetime average order value",
        "Value",
        "number",
        "avg_rvn_ltv",
        "rvn_ltv / odr_ltv",
    ),
    # RFM and KMeans
    Segmentlet(
        "rfm",
        "RFM 그룹",
        "RFM group",
        "RFM",
        "category",
        "rfm",
        "Named RFM group: Champions, Loyal, …, Lost (docs/segmentlets.md)",
    ),
    Segmentlet(
        "cluster_id",
        "클러스터",
        "Cluster",
        "KMeans",
        "number",
        "cluster_id",
        "K-Means cluster id from the latest discovery run",
    ),
    # Activity: not among the 22, but what dormancy and reachability rules need
    Segmentlet(
        "recency_days",
        "최근 방문 경과일",
        "Days since last visit",
        "Activity",
        "number",
        "recency_days",
        "Whole days from the last event to the run date",
    ),
    Segmentlet("sessions", "방문 수", "Sessions", "Activity", "number", "sessions", "Sessions in the period"),
    Segmentlet("page_views", "페이지뷰", "Page views", "Activity", "number", "page_views", "Page views in the period"),
    Segmentlet("is_member", "회원 여부", "Member", "Activity", "boolean", "is_member", "Has a member id"),
    Segmentlet("has_email", "이메일 보유", "Has email", "Activity", "boolean", "has_email", "An email is known"),
    Segmentlet("has_phone", "휴대폰 보유", "Has phone", "Activity", "boolean", "has_phone", "A phone number is known"),
)

BY_CODE: dict[str, Segmentlet] = {s.code: s for s in CATALOGUE}
PRODUCT_SEGMENTLETS = tuple(s.code for s in CATALOGUE if s.group != "Activity")
assert len(PRODUCT_SEGMENTLETS) == 22, "the product promises exactly 22 segmentlets"

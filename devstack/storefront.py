"""A synthetic Korean storefront: visitors, sessions and beacons as the tracker would send them.

Deterministic for a seed. Used by the demo, the benchmarks and tests. Traffic mixes Naver, Daum
and Google search with Korean keywords, paid and social campaigns, mobile in-app browsers, logins
and orders, plus a small share of deliberately bad requests with known reasons.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

SITE_ID = "demo-shop"
ORIGIN = "https://demo-shop.example"

CATALOG: list[tuple[str, str, str, int]] = [
    ("p001", "린넨 셔츠", "shirts", 39000),
    ("p002", "옥스포드 셔츠", "shirts", 45000),
    ("p003", "스트라이프 셔츠", "shirts", 42000),
    ("p004", "데님 자켓", "outer", 89000),
    ("p005", "울 코트", "outer", 249000),
    ("p006", "경량 패딩", "outer", 129000),
    ("p007", "트렌치 코트", "outer", 189000),
    ("p008", "여름 원피스", "dresses", 59000),
    ("p009", "니트 원피스", "dresses", 79000),
    ("p010", "플리츠 스커트", "skirts", 49000),
    ("p011", "와이드 슬랙스", "pants", 55000),
    ("p012", "청바지", "pants", 65000),
    ("p013", "조거 팬츠", "pants", 39000),
    ("p014", "캐시미어 니트", "knit", 139000),
    ("p015", "가디건", "knit", 69000),
    ("p016", "맨투맨", "tops", 35000),
    ("p017", "후드티", "tops", 49000),
    ("p018", "반팔 티셔츠", "tops", 19000),
    ("p019", "운동화", "shoes", 99000),
    ("p020", "로퍼", "shoes", 119000),
    ("p021", "샌들", "shoes", 45000),
    ("p022", "가죽 토트백", "bags", 159000),
    ("p023", "에코백", "bags", 25000),
    ("p024", "백팩", "bags", 89000),
    ("p025", "실버 목걸이", "accessories", 49000),
    ("p026", "가죽 벨트", "accessories", 39000),
    ("p027", "울 머플러", "accessories", 45000),
    ("p028", "버킷햇", "accessories", 29000),
    ("p029", "양말 5족 세트", "accessories", 15000),
    ("p030", "선글라스", "accessories", 79000),
]
SEARCH_WORDS = [
    "셔츠",
    "코트",
    "원피스",
    "패딩",
    "니트",
    "청바지",
    "운동화",
    "가방",
    "린넨",
    "여름",
    "겨울 코트",
    "선물",
]
REGIONS = [
    ("KR11", "Seoul", 35),
    ("KR41", "Gyeonggi", 25),
    ("KR26", "Busan", 8),
    ("KR28", "Incheon", 6),
    ("KR27", "Daegu", 5),
    ("KR30", "Daejeon", 4),
    ("KR29", "Gwangju", 3),
    ("KR31", "Ulsan", 2),
    ("KR48", "Gyeongnam", 4),
    ("KR47", "Gyeongbuk", 3),
    ("KR44", "Chungnam", 2),
    ("KR49", "Jeju", 3),
]
USER_AGENTS = [
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        22,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        18,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        10,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 KAKAOTALK 10.6.5",
        8,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921N Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36 NAVER(inapp; search; 2000; 12.5.1)",
        7,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        16,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/122.0.0.0 Whale/3.25.232.19 Safari/537.36",
        5,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        8,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        4,
    ),
    ("Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)", 1),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 1),
]
CAMPAIGNS = ["winter_sale", "new_arrivals", "black_friday", "member_day"]


@dataclass
class Beacon:
    """One HTTP request as a browser would send it, and what it should produce."""

    body: bytes
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    expect_reason: str | None = None  # set for deliberately bad requests


@dataclass
class Visitor:
    visitor_id: str
    user_agent: str
    region: tuple[str, str]
    ip: str
    member: dict[str, Any] | None
    propensity: float
    vip: bool = False  # a loyal high spender: visits often and usually buys


def _weighted(rng: random.Random, options: list[tuple[Any, int]]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options], k=1)[0]


def _inflow(rng: random.Random) -> tuple[str | None, dict[str, str]]:
    """Where a session comes from: (referrer, landing URL parameters)."""
    word = rng.choice(SEARCH_WORDS)
    kind = _weighted(
        rng,
        [
            ("naver", 24),
            ("naver_ad", 8),
            ("google", 14),
            ("google_ad", 6),
            ("daum", 6),
            ("instagram", 8),
            ("facebook_ad", 5),
            ("kakao", 6),
            ("email", 5),
            ("direct", 18),
        ],
    )
    campaign = rng.choice(CAMPAIGNS)
    if kind == "naver":
        return f"https://search.naver.com/search.naver?where=nexearch&query={quote(word)}", {}
    if kind == "naver_ad":
        return (
            f"https://search.naver.com/search.naver?query={quote(word)}",
            {
                "n_media": "27758",
                "n_query": word,
                "n_rank": "1",
                "n_ad_group": "grp-a001",
                "n_ad": "nad-a001",
                "n_keyword": word,
            },
        )
    if kind == "google":
        return (
            f"https://www.google.co.kr/search?q={quote(word)}" if rng.random() < 0.3 else "https://www.google.com/"
        ), {}
    if kind == "google_ad":
        return "https://www.google.com/", {
            "gclid": uuid.UUID(int=rng.getrandbits(128)).hex,
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": campaign,
        }
    if kind == "daum":
        return f"https://search.daum.net/search?w=tot&q={quote(word)}", {}
    if kind == "instagram":
        return "https://l.instagram.com/", {"utm_source": "instagram", "utm_medium": "social", "utm_campaign": campaign}
    if kind == "facebook_ad":
        return "https://m.facebook.com/", {
            "fbclid": uuid.UUID(int=rng.getrandbits(128)).hex,
            "utm_source": "facebook",
            "utm_medium": "paid_social",
            "utm_campaign": campaign,
        }
    if kind == "kakao":
        return "https://talk.kakao.com/", {"utm_source": "kakao", "utm_medium": "social", "utm_campaign": campaign}
    if kind == "email":
        return "https://mail.naver.com/", {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": campaign}
    return None, {}


class Storefront:
    """Generates the beacons of `visitors` visitors over `days` days ending at `end`."""

    def __init__(
        self, seed: int = 7, visitors: int = 2500, days: int = 60, end: datetime | None = None, bad_share: float = 0.02
    ):
        self.rng = random.Random(seed)
        self.visitors = visitors
        self.days = days
        self.end = end or datetime.now(UTC)
        self.bad_share = bad_share
        self._members = 0

    def _new_visitor(self) -> Visitor:
        rng = self.rng
        member = None
        if rng.random() < 0.35:
            self._members += 1
            n = self._members
            member = {
                "member_id": f"m{n:05d}",
                "sex": rng.choice(["M", "F", "F"]),
                "birth_year": rng.randint(1960, 2006),
                "email": f"member{n}@example.com",
                "phone": f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
            }
        # Every 25th member is a VIP, as a real shop's top few percent who bring much of its revenue;
        # chosen by number rather than by a draw, so every run has one VIP per 25 members.
        visitor = Visitor(
            visitor_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            user_agent=_weighted(rng, USER_AGENTS),
            region=_weighted(rng, [((code, name), w) for code, name, w in REGIONS]),
            ip=f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            member=member,
            propensity=rng.betavariate(2, 5) * (1.6 if member else 0.8),
        )
        if member is not None and self._members % 25 == 0:
            visitor.vip, visitor.propensity = True, 0.9
        return visitor

    def beacons(self) -> Iterator[Beacon]:
        """Every request in the order a fleet of browsers would send them (per visitor)."""
        for _ in range(self.visitors):
            visitor = self._new_visitor()
            sessions = 1 + min(int(self.rng.expovariate(0.9)), 12) + (8 if visitor.vip else 0)
            starts = sorted(
                self.end - timedelta(seconds=self.rng.uniform(600, self.days * 86400)) for _ in range(sessions)
            )
            for number, start in enumerate(starts):
                yield self._session(
                    visitor,
                    start,
                    logs_in=visitor.member is not None
                    and number > 0
                    or (visitor.member is not None and self.rng.random() < 0.5),
                )
                if self.rng.random() < self.bad_share:
                    yield self._bad_request(visitor, start)

    def _session(self, visitor: Visitor, start: datetime, logs_in: bool) -> Beacon:
        rng = self.rng
        referrer, params = _inflow(rng)
        now = start
        events: list[dict[str, Any]] = []
        member_id: str | None = None
        cart: list[tuple[str, str, str, int]] = []
        previous_url = referrer
        pages = rng.randint(1, 10)

        def emit(kind: str, url: str, title: str, props: dict[str, Any] | None = None, ref: str | None = None) -> None:
            events.append(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "type": kind,
                    "ts": int(now.timestamp() * 1000),
                    "visitor_id": visitor.visitor_id,
                    "member_id": member_id,
                    "url": url,
                    "title": title,
                    "referrer": ref,
                    "consent": {"analytics": True, "ads": True},
                    "props": props or {},
                }
            )

        for page in range(pages):
            product = rng.choice(CATALOG)
            roll = rng.random()
            if page == 0:
                query = ("?" + urlencode(params)) if params else ""
                url, title = f"{ORIGIN}/{query}", "데모샵"
            elif roll < 0.55:
                url, title = f"{ORIGIN}/products/{product[0]}", product[1]
            elif roll < 0.75:
                word = rng.choice(SEARCH_WORDS)
                url, title = f"{ORIGIN}/search?q={quote(word)}", f"검색: {word}"
            else:
                url, title = f"{ORIGIN}/category/{product[2]}", product[2]
            emit("page", url, title, ref=previous_url)
            emit("land", url, title, ref=previous_url)
            if "/products/" in url:
                emit(
                    "event",
                    url,
                    title,
                    {
                        "name": "product_view",
                        "product_id": product[0],
                        "product_name": product[1],
                        "category": product[2],
                        "price": product[3],
                    },
                )
                if rng.random() < 0.25 + visitor.propensity / 2:
                    cart.append(product)
                    emit(
                        "event",
                        url,
                        title,
                        {
                            "name": "add_to_cart",
                            "product_id": product[0],
                            "product_name": product[1],
                            "price": product[3],
                            "quantity": 1,
                        },
                    )
            elif "/search" in url:
                emit("event", url, title, {"name": "search", "keyword": title.split(": ", 1)[1]})
            if logs_in and member_id is None and visitor.member and (page == pages - 1 or rng.random() < 0.3):
                member_id = visitor.member["member_id"]
                emit(
                    "identify",
                    f"{ORIGIN}/login",
                    "로그인",
                    {k: v for k, v in visitor.member.items() if k != "member_id"},
                )
            previous_url = url
            now += timedelta(seconds=rng.randint(5, 240))
        if cart and rng.random() < visitor.propensity:
            items = [
                {"product_id": p[0], "product_name": p[1], "category": p[2], "price": p[3], "quantity": 1} for p in cart
            ]
            emit(
                "conv",
                f"{ORIGIN}/checkout/done",
                "주문 완료",
                {
                    "conv_type": "order",
                    "order_id": f"o-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
                    "revenue": sum(p[3] for p in cart),
                    "currency": "KRW",
                    "items": items,
                },
            )
        if member_id is None and visitor.member is None and rng.random() < 0.02:
            emit("conv", f"{ORIGIN}/signup/done", "가입 완료", {"conv_type": "signup"})
        body = {"site_id": SITE_ID, "events": events}  # history replay: no sent_at, device clock trusted
        return Beacon(json.dumps(body, ensure_ascii=False).encode(), self._headers(visitor), events)

    def _bad_request(self, visitor: Visitor, start: datetime) -> Beacon:
        rng = self.rng
        marker = uuid.UUID(int=rng.getrandbits(128)).hex
        ts = int(start.timestamp() * 1000)
        good = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": "page",
            "ts": ts,
            "visitor_id": visitor.visitor_id,
            "url": f"{ORIGIN}/?m={marker}",
            "consent": {"analytics": True, "ads": True},  # as the shop's other beacons: the site's default would refuse
        }
        kind = rng.choice(
            [
                "malformed_json",
                "unknown_site_id",
                "wrong_type",
                "string_too_long",
                "unknown_event_type",
                "origin_not_allowed",
            ]
        )
        headers = self._headers(visitor)
        if kind == "malformed_json":
            return Beacon(
                f'{{"site_id": "{SITE_ID}", "events": [{{"m": "{marker}"'.encode(), headers, expect_reason=kind
            )
        if kind == "unknown_site_id":
            return Beacon(
                json.dumps({"site_id": f"typo-{marker[:6]}", "events": [good]}).encode(), headers, expect_reason=kind
            )
        if kind == "origin_not_allowed":
            headers["Origin"] = "https://copycat.example"
            return Beacon(json.dumps({"site_id": SITE_ID, "events": [good]}).encode(), headers, expect_reason=kind)
        bad = dict(good, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        if kind == "wrong_type":
            bad["ts"] = "2026-01-01"
        elif kind == "string_too_long":
            bad["title"] = "x" * 600
        else:
            bad["type"] = "click"
        events = [good, bad]
        return Beacon(json.dumps({"site_id": SITE_ID, "events": events}).encode(), headers, events, expect_reason=kind)

    @staticmethod
    def _headers(visitor: Visitor) -> dict[str, str]:
        return {
            "Content-Type": "text/plain;charset=UTF-8",
            "Origin": ORIGIN,
            "User-Agent": visitor.user_agent,
            "X-Forwarded-For": visitor.ip,
            "X-Client-Geo-Location": f"KR,{visitor.region[0]},{visitor.region[1]}",
        }

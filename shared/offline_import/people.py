"""Names and regions of CRM customers: full names split into family and given name only when the
split is certain (Korean names in Hangul), and Korean regions named as the load balancer names them.
"""

from __future__ import annotations

import re

from shared.enrich.geo import KR_REGIONS

# Two-syllable Korean surnames. A three-or-more-syllable name that starts with one is read as that
# surname (남궁민수 → 남궁 + 민수); a two-syllable name is always one + one (선우 → 선 + 우).
COMPOUND_SURNAMES = frozenset(
    ["남궁", "제갈", "선우", "황보", "독고", "사공", "서문", "동방", "어금", "망절", "소봉", "장곡"]
)
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")


def split_korean_name(full: str) -> tuple[str, str] | None:
    """(family, given) of a Hangul name such as 홍길동, 남궁민수 or 홍 길동; None when not certain.

    Korean names put the surname first and are 2 to 5 syllables. Anything else (Latin letters,
    Hanja, more than one space) is not split: "Gil-dong Hong" may be in either order.
    """
    parts = full.split()
    if len(parts) == 2 and all(_HANGUL.fullmatch(p) for p in parts) and len(parts[0]) <= 2:
        return parts[0], parts[1]
    if len(parts) != 1 or not _HANGUL.fullmatch(full) or not 2 <= len(full) <= 5:
        return None
    cut = 2 if len(full) >= 3 and full[:2] in COMPOUND_SURNAMES else 1
    return full[:cut], full[cut:]


def resolve_names(name: str | None, given: str | None, family: str | None) -> tuple[str | None, str | None, str | None]:
    """(full_name, family_name, given_name) from the name columns a file has.

    Separate given / family columns are taken as they are. With a family column, a name column
    holds the given name (이름 beside 성), with the surname in front or not (홍길동 or 길동). A
    full name alone is split only by `split_korean_name`; otherwise it stays a full name.
    """
    name, given, family = (" ".join(v.split()) or None if v is not None else None for v in (name, given, family))
    if family is not None and given is None and name is not None:
        rest = name[len(family) :].strip() if name.startswith(family) and len(name) > len(family) else name
        return None, family, rest
    if given is not None or family is not None or name is None:
        return name, family, given
    split = split_korean_name(name)
    return (name, *split) if split else (name, None, None)


_REGION_SUFFIX = re.compile(r"(특별자치시|특별자치도|특별시|광역시|자치시|자치도|도|시)$")
_KR_NAMES = {
    "서울": "Seoul",
    "부산": "Busan",
    "대구": "Daegu",
    "인천": "Incheon",
    "광주": "Gwangju",
    "대전": "Daejeon",
    "울산": "Ulsan",
    "세종": "Sejong",
    "경기": "Gyeonggi",
    "강원": "Gangwon",
    "충북": "Chungbuk",
    "충청북": "Chungbuk",
    "충남": "Chungnam",
    "충청남": "Chungnam",
    "전북": "Jeonbuk",
    "전라북": "Jeonbuk",
    "전남": "Jeonnam",
    "전라남": "Jeonnam",
    "경북": "Gyeongbuk",
    "경상북": "Gyeongbuk",
    "경남": "Gyeongnam",
    "경상남": "Gyeongnam",
    "제주": "Jeju",
}
_EN_SUFFIX = re.compile(r"(specialselfgoverning(?:province|city)|metropolitancity|specialcity|province|city|do|si)$")
_EN_NAMES = {name.lower(): name for name in KR_REGIONS.values()} | {
    "chungcheongbuk": "Chungbuk",
    "chungcheongnam": "Chungnam",
    "jeollabuk": "Jeonbuk",
    "jeollanam": "Jeonnam",
    "gyeongsangbuk": "Gyeongbuk",
    "gyeongsangnam": "Gyeongnam",
}


def region_name(text: str) -> str:
    """A Korean first-level division as the load balancer's geo header names it (서울특별시, 서울,
    Seoul → Seoul; 경기도 → Gyeonggi), so segments on region see imported and tracked customers
    alike; any other value is kept as written (a district, another country's region)."""
    text = " ".join(text.split())
    first = text.split(" ", 1)[0]
    korean = _KR_NAMES.get(_REGION_SUFFIX.sub("", first)) or _KR_NAMES.get(first)
    if korean:
        return korean
    latin = re.sub(r"[^a-z]", "", text.lower())
    return _EN_NAMES.get(_EN_SUFFIX.sub("", latin)) or _EN_NAMES.get(latin) or text

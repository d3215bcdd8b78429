"""Country, region and city from the load balancer's geo header (the only trusted source of place)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from shared.enrich.text import cap, decode_percent, scrub


@dataclass(frozen=True, slots=True)
class Geo:
    country: str | None
    region: str | None
    city: str | None


# ISO 3166-2:KR first-level divisions. Gangwon and Jeonbuk became special self-governing
# provinces in 2023/2024 and got new codes; both the old and the new code are mapped.
KR_REGIONS: Final[dict[str, str]] = {
    "11": "Seoul",
    "26": "Busan",
    "27": "Daegu",
    "28": "Incheon",
    "29": "Gwangju",
    "30": "Daejeon",
    "31": "Ulsan",
    "50": "Sejong",
    "41": "Gyeonggi",
    "42": "Gangwon",
    "51": "Gangwon",
    "43": "Chungbuk",
    "44": "Chungnam",
    "45": "Jeonbuk",
    "52": "Jeonbuk",
    "46": "Jeonnam",
    "47": "Gyeongbuk",
    "48": "Gyeongnam",
    "49": "Jeju",
}
_UNKNOWN_COUNTRIES: Final = frozenset({"ZZ", "XX"})
_COUNTRY = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}(?:-?[A-Z0-9]{1,4})?")


def parse_geo_header(value: str | None) -> Geo:
    """Read "{client_region},{client_region_subdivision},{client_city}" from the load balancer.

    The city is the last part and may itself contain commas. Korean subdivisions become region
    names; other subdivisions keep their code (e.g. "USCA"), because a wrong name is worse
    than a code.
    """
    parts = [part.strip() for part in scrub(value or "").split(",", 2)]
    parts += [""] * (3 - len(parts))
    country_raw, subdivision_raw, city_raw = parts
    country = country_raw.upper()
    if not _COUNTRY.fullmatch(country) or country in _UNKNOWN_COUNTRIES:
        country = ""

    region: str | None = None
    code = subdivision_raw.upper()
    if _SUBDIVISION.fullmatch(code):
        local = code.replace("-", "")
        if country and local.startswith(country):
            local = local[len(country) :]
        region = KR_REGIONS.get(local, code) if country == "KR" else code

    city = city_raw
    if "%" in city:
        city = decode_percent(city)
    city = " ".join("".join(ch for ch in city if unicodedata.category(ch) != "Cc").split())
    return Geo(country or None, cap(region), cap(city or None))

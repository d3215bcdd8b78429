"""What every enrichment string goes through: percent-decoding that never fails, and one length cap."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

MAX_LEN: Final = 512
"""Every string the enrich modules return is cut to this many characters."""

_SURROGATES: Final = re.compile(r"[\ud800-\udfff]")


def scrub(value: str) -> str:
    """The value with lone surrogates (which JSON "\\ud800" escapes and WSGI headers can carry, and
    UTF-8 cannot encode) replaced by U+FFFD; ASCII input is returned as is at once."""
    if value.isascii():
        return value
    return _SURROGATES.sub("\ufffd", value)


def decode_percent(value: str) -> str:
    """Percent-decode as UTF-8, else as CP949 (old EUC-KR links from Korean portals), else
    UTF-8 with replacement characters: never fails."""
    raw = unquote_to_bytes(value.replace("+", " "))
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")


def cap(value: str | None) -> str | None:
    """The value cut to MAX_LEN characters; None for None or empty, as columns store no blanks."""
    return value[:MAX_LEN] if value else None

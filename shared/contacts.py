"""E-mail addresses and phone numbers in one canonical spelling.

Identity resolution joins people on these keys, and activation (Facebook's hashed audiences,
AlimTalk and SMS) hashes or dials them, so the collector, the offline importer and those channels
must all spell one contact the same way. Pure and total: a string that is not a contact gives None,
never an exception; the caller decides whether that rejects its input.
"""

from __future__ import annotations

import re
from typing import Final

DEFAULT_COUNTRY: Final = "82"
"""Country calling code assumed for national numbers (a leading 0): this platform's shops are Korean."""

MAX_EMAIL: Final = 254  # RFC 5321's limit on a forward path
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_PUNCTUATION: Final = re.compile(r"[\s\-().]")
ASCII_DIGITS: Final = re.compile(r"[0-9]+")
"""Digits as numbers are written in data: str.isdigit() also takes superscripts and other scripts'
digits ("²", "٣"), which int() then refuses or a phone number should never hold."""


def normalize_email(value: str) -> str | None:
    """Trimmed and lower-cased, or None when it is not an email address.

    Deliberately loose (something@host.tld, no whitespace): a stricter check would drop real
    addresses that shops hold, while this one still refuses names, phone numbers and blanks.
    """
    value = value.strip()
    return value.lower() if len(value) <= MAX_EMAIL and _EMAIL.fullmatch(value) else None


def normalize_phone(value: str, default_country: str = DEFAULT_COUNTRY) -> str | None:
    """E.164 ("+821012345678") from common Korean and international spellings, or None.

    Spaces, dashes, dots and brackets are ignored; "+" or "00" starts an international number, a
    leading 0 a national one in `default_country`; anything else must already carry its country code.
    """
    digits = _PHONE_PUNCTUATION.sub("", value.strip())
    if digits.startswith("+"):
        body = digits[1:]
    elif digits.startswith("00"):
        body = digits[2:]
    elif digits.startswith("0"):
        body = default_country + digits[1:]
    elif default_country == "82" and len(digits) == 10 and digits.startswith("10"):
        # A Korean mobile (010-...) whose leading 0 a spreadsheet dropped; no valid number
        # written with its country code looks like this (+1 numbers have 11 digits).
        body = default_country + digits
    else:
        body = digits
    if not ASCII_DIGITS.fullmatch(body) or not 8 <= len(body) <= 15:  # str.isdigit() takes "²" and "٣"
        return None
    return "+" + body

"""Meta customer-file keys: one normaliser per key, and the SHA-256 that Meta matches on.

Facebook Custom Audiences and the hashed file export match people on these keys. A key spelled
otherwise than Meta spells it never matches, and a blank hashed as sha256("") matches no one while
being counted as sent. The rules, as Meta documents them:

- Marketing API, Custom Audiences, "Hashing and normalizing data"
  (developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences#hash): SHA-256
  every key but EXTERN_ID and MADID; "only First name FN and Last Name LN support special
  characters and non-Roman alphabet" (quoted in grouparoo/grouparoo#915).
- The per-key table on that page (mirrored in HCL Unica Link's Facebook connector manual,
  data_normalization.html): EMAIL trimmed and lower-cased; PHONE digits with the country code and
  without symbols, letters or leading zeros; GEN m or f; DOBY YYYY from 1900 to this year, DOBM
  01-12, DOBD 01-31; FN/LN lower case without punctuation, special characters in UTF-8; CT a-z
  only, without punctuation, special characters or spaces; ST outside the US the same; ZIP lower
  case without spaces (US: the first 5 digits); COUNTRY ISO 3166-1 alpha-2 in lower case; MADID
  lower case with its hyphens.
- Meta Business Help Centre 2082575038703844 ("How to format a customer list"): names with or
  without accents; phones must carry the country code even when every customer is in one country.

Written here, not taken from the facebook-business SDK: its multi-key path strips every non-Latin
letter from names (a Hangul name becomes sha256("")), hashes phones as written, hashes blanks and
MADIDs and lower-cases EXTERN_ID (../shared/notes/activation.md §1). Every normaliser is total:
any text gives the key's spelling or None (blank or invalid: the key is left out of the row),
never "" and never an exception.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from hashlib import sha256
from time import gmtime
from types import MappingProxyType
from typing import Final

import phonenumbers

from shared.contacts import normalize_email

Normalizer = Callable[[str], str | None]

DEFAULT_REGION: Final = "KR"
"""Region assumed for phone numbers without a country code: this platform's shops are Korean."""


class UnsupportedKey(ValueError):
    """A key that Meta's schema lacks or this module does not spell; names the key for status.error."""

    def __init__(self, key: object) -> None:
        super().__init__(f"unsupported customer-file key {key!r} (supported: {', '.join(KEYS)})")
        self.key = key


# --- PHONE -----------------------------------------------------------------------------------


def _kr_mobile_spelling() -> re.Pattern[str]:
    """A Korean mobile as profiles hold it ("+821012345678") or written nationally ("01012345678").

    phonenumbers.parse + is_valid_number cost ~60 µs a number here, more than the rest of a row;
    this pattern answers the commonest shape from the same metadata is_valid_number consults: a
    national number of a possible length that matches the region's general and mobile patterns
    has a type, so it is valid. Group 1 is the national number. Anything else asks the library.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(DEFAULT_REGION)
    general = metadata.general_desc if metadata else None
    mobile = metadata.mobile if metadata else None
    if general is None or mobile is None or not general.national_number_pattern or not mobile.national_number_pattern:
        raise RuntimeError(f"phonenumbers has no mobile metadata for {DEFAULT_REGION}")
    lengths = set(general.possible_length) & set(mobile.possible_length or general.possible_length)
    national = "|".join(f"[0-9]{{{n}}}" for n in sorted(lengths) if n > 0)
    return re.compile(
        rf"(?:\+82|0)(?=(?:{national})\Z)(?=(?:{general.national_number_pattern})\Z)"
        rf"(?=(?:{mobile.national_number_pattern})\Z)(1[0-9]*)"
    )


_KR_MOBILE: Final = _kr_mobile_spelling()
_PHONE_SEPARATORS: Final = str.maketrans("", "", " -.")


def normalize_phone(value: str) -> str | None:
    """E.164 digits without "+" ("821012345678"), KR for national numbers; None unless valid.

    Valid means phonenumbers' is_valid_number (a number the country's numbering plan assigns), not
    just is_possible_number (a plausible length): a number no one can hold never matches, and
    counting it as a key would upload a person with nothing to match on.
    """
    match = _KR_MOBILE.fullmatch(value) or _KR_MOBILE.fullmatch(value.strip().translate(_PHONE_SEPARATORS))
    if match:
        return "82" + match[1]
    return phone_by_library(value)


def phone_by_library(value: str) -> str | None:
    """normalize_phone's answer from phonenumbers alone: the reference its fast path must equal."""
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


# --- names, places, dates ----------------------------------------------------------------------


def normalize_name(value: str) -> str | None:
    """FN or LN: lower case, letters only (Hangul and accents kept: "김민지", "josé"), NFC.

    Spaces, punctuation, digits and symbols go ("Mary-Ann" -> "maryann"), combining marks stay
    (NFD "José" composes back to "josé"), so two spellings of one name hash alike.
    """
    text = value.lower()
    if not text.isalpha():
        text = "".join(ch for ch in text if unicodedata.category(ch)[0] in "LM")
        if not any(ch.isalpha() for ch in text):
            return None
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def normalize_latin(value: str) -> str | None:
    """CT or ST: a-z only ("São Paulo" -> "saopaulo", "Gyeonggi-do" -> "gyeonggido").

    Accents are folded and spaces, digits and punctuation dropped; a value with any other letter
    (a Hangul city such as "서울") is dropped whole, since Meta matches places only in Roman letters
    and half a name would be another place. profiles.region already holds the romanised province
    names of the load balancer and the importer ("Seoul", "Gyeonggi").
    """
    kept: list[str] = []
    for ch in unicodedata.normalize("NFKD", value.casefold()):
        if "a" <= ch <= "z":
            kept.append(ch)
        elif unicodedata.category(ch)[0] == "L":
            return None
    return "".join(kept) or None


_GENDERS: Final = dict.fromkeys(["m", "male", "man", "남", "남자", "남성"], "m") | dict.fromkeys(
    ["f", "female", "woman", "여", "여자", "여성"], "f"
)


def normalize_gender(value: str) -> str | None:
    """GEN: m or f, from English and Korean spellings (M, Male, 남, 남자, 남성, ...); else None."""
    return _GENDERS.get(value.strip().lower())


_YEAR: Final = re.compile(r"[0-9]{4}")
_DAY_OR_MONTH: Final = re.compile(r"[0-9]{1,2}")


def normalize_birth_year(value: str) -> str | None:
    """DOBY: four digits from 1900 to this year (UTC), as Meta accepts."""
    text = value.strip()
    return text if _YEAR.fullmatch(text) and 1900 <= int(text) <= gmtime().tm_year else None


def normalize_birth_month(value: str) -> str | None:
    """DOBM: "01" to "12" ("3" -> "03")."""
    return _two_digits(value, 12)


def normalize_birth_day(value: str) -> str | None:
    """DOBD: "01" to "31"."""
    return _two_digits(value, 31)


def _two_digits(value: str, highest: int) -> str | None:
    text = value.strip()
    return f"{int(text):02d}" if _DAY_OR_MONTH.fullmatch(text) and 1 <= int(text) <= highest else None


_ZIP_DIGITS: Final = re.compile(r"([0-9]{5})(?:-?[0-9]{4})?")
_POSTCODE: Final = re.compile(r"[a-z0-9][a-z0-9-]{1,9}")


def normalize_zip(value: str) -> str | None:
    """ZIP: lower case without spaces; a code of digits must be Korean (5 digits) or a US ZIP(+4).

    Korea's codes have had 5 digits since 2015: an old 6-digit one ("135-080") maps to no current
    code and is dropped. A US ZIP+4 keeps its first 5 digits, as Meta asks. Codes with letters
    (the UK, Canada) are only lower-cased and stripped of spaces.
    """
    text = "".join(value.split()).lower()
    if text.replace("-", "").isdecimal():
        match = _ZIP_DIGITS.fullmatch(text) if text.isascii() else None
        return match[1] if match else None
    return text if _POSTCODE.fullmatch(text) else None


_COUNTRY_NAMES: Final = dict.fromkeys(
    ["kor", "korea", "southkorea", "republicofkorea", "korearepublicof", "대한민국", "한국", "남한"], "kr"
)


def normalize_country(value: str) -> str | None:
    """COUNTRY: an ISO 3166-1 alpha-2 code in lower case ("KR" -> "kr"; "South Korea", "대한민국" too).

    Codes are checked against the regions phonenumbers knows (every alpha-2 country plus AC, TA
    and XK, which Meta may or may not match): a made-up code is dropped rather than hashed.
    """
    text = "".join(ch for ch in value.casefold() if ch.isalnum())
    if len(text) == 2 and text.isascii() and text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text
    return _COUNTRY_NAMES.get(text)


_MADID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ZEROS_MADID: Final = "00000000-0000-0000-0000-000000000000"


def normalize_madid(value: str) -> str | None:
    """MADID (IDFA or AAID): a UUID in lower case with its hyphens; the all-zero id is dropped.

    Devices that limit ad tracking report the all-zero id: it names no one, and every such row
    would share it.
    """
    text = value.strip().lower()
    return text if _MADID.fullmatch(text) and text != _ZEROS_MADID else None


def normalize_extern_id(value: str) -> str | None:
    """EXTERN_ID: the shop's own id, trimmed and otherwise as written (case kept; the SDK lowers it)."""
    return value.strip() or None


# --- keys and rows ------------------------------------------------------------------------------

NORMALIZERS: Final[Mapping[str, Normalizer]] = MappingProxyType(
    {
        "EMAIL": normalize_email,
        "PHONE": normalize_phone,
        "FN": normalize_name,
        "LN": normalize_name,
        "GEN": normalize_gender,
        "DOBY": normalize_birth_year,
        "DOBM": normalize_birth_month,
        "DOBD": normalize_birth_day,
        "CT": normalize_latin,
        "ST": normalize_latin,
        "ZIP": normalize_zip,
        "COUNTRY": normalize_country,
        "MADID": normalize_madid,
        "EXTERN_ID": normalize_extern_id,
    }
)
KEYS: Final = tuple(NORMALIZERS)
UNHASHED: Final = frozenset({"EXTERN_ID", "MADID"})
"""Keys Meta takes as they are: hashing them would stop them matching."""

PROFILE_COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "EMAIL": "email",  # refined.profiles (normalised at the door by shared.contacts)
        "PHONE": "phone",  # refined.profiles, E.164
        "FN": "given_name",  # raw.user: the importer splits Hangul full names (offline_import.people)
        "LN": "family_name",  # raw.user
        "GEN": "sex",  # refined.profiles: M, F or U
        "DOBY": "birth_year",  # refined.profiles
        "DOBM": "birth_month",
        "DOBD": "birth_day",
        "CT": "city",
        "ST": "region",  # refined.profiles: romanised Korean provinces
        "ZIP": "zip",
        "COUNTRY": "country",
        "MADID": "madid",
        "EXTERN_ID": "member_id",  # refined.profiles: the shop's own member id
    }
)
"""The column each key is read from in a profile row: the one place that says so.

A full name that could not be split (raw.user.full_name alone, e.g. "Gil-dong Hong") is not read:
its order is unknown, and FN and LN are matched separately. Columns no table holds yet (month and
day of birth, city, ZIP, country, MADID) are read when the rows a caller builds carry them.
"""


PER_PERSON: Final = frozenset({"EMAIL", "PHONE", "MADID", "EXTERN_ID"})
"""Keys almost every person spells differently; the others repeat (a tenth of Koreans are named
Kim) and are spelled once per distinct value in a batch."""


def hash_rows(profiles: Sequence[Mapping[str, object]], keys: Sequence[str]) -> list[tuple[str | None, ...]]:
    """What Meta's multi-key payload holds for each person, in the order of `keys`.

    Per key: the SHA-256 hex of the normalised value, EXTERN_ID and MADID as they are, None where
    the profile lacks the key or holds an invalid value (Meta takes it blank). Works a column at
    a time, so a batch costs one pass per key rather than a call per value. Values are scalars
    (text, numbers); raises UnsupportedKey before reading any row.
    """
    unsupported = [key for key in keys if key not in NORMALIZERS]
    if unsupported:
        raise UnsupportedKey(unsupported[0])
    if not keys:
        return [() for _ in profiles]
    columns = [_spell_column([p.get(PROFILE_COLUMNS[key]) for p in profiles], key) for key in keys]
    return list(zip(*columns, strict=True))


def _spell_column(values: list[object], key: str) -> list[str | None]:
    normalize = NORMALIZERS[key]
    if key not in PER_PERSON:
        spelled = {value: _spell(value, normalize, key not in UNHASHED) for value in set(values)}
        return [spelled[value] for value in values]
    texts = [None if v is None else normalize(v if v.__class__ is str else str(v)) for v in values]
    if key in UNHASHED:
        return texts
    return [None if text is None else sha256(text.encode()).hexdigest() for text in texts]


def _spell(value: object, normalize: Normalizer, hashed: bool) -> str | None:
    text = None if value is None else normalize(value if isinstance(value, str) else str(value))
    return sha256(text.encode()).hexdigest() if hashed and text is not None else text


def hash_row(profile: Mapping[str, object], keys: Sequence[str]) -> tuple[str | None, ...]:
    """hash_rows for one profile."""
    return hash_rows([profile], keys)[0]


def has_any_key(values: Sequence[str | None]) -> bool:
    """Whether a hashed row can match anyone: a row of blanks is not uploaded."""
    return any(value is not None for value in values)

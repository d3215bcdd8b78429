"""Meta customer-file keys: golden vectors per key, the hashed row, and properties of the normalisers.

Every expected spelling below is written by hand from Meta's rules, and its SHA-256 is computed
here from that literal, never by the module under test. A few digests are also pinned as hex
taken from coreutils' sha256sum, so a change of encoding (UTF-8 for Hangul) cannot pass unseen.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.activation.customer_file import (
    KEYS,
    NORMALIZERS,
    PROFILE_COLUMNS,
    UNHASHED,
    UnsupportedKey,
    has_any_key,
    hash_row,
    hash_rows,
    normalize_phone,
    phone_by_library,
)
from shared.contacts import normalize_phone as contacts_phone

NFD_KIMMINJI = unicodedata.normalize("NFD", "김민지")
NFD_JOSE = unicodedata.normalize("NFD", "José")
KR_MOBILE_SPELLINGS = ["010-1234-5678", "01012345678", "+82 10-1234-5678", "(010) 1234 5678", "+821012345678"]

# (key, input, the spelling Meta should hash or receive; None: left out of the row)
GOLDEN: list[tuple[str, str, str | None]] = [
    ("EMAIL", "  KimMinJi@Example.COM ", "kimminji@example.com"),
    ("EMAIL", "kim.minji+shop@naver.com", "kim.minji+shop@naver.com"),  # Meta asks no dot or tag removal
    ("EMAIL", "not-an-email", None),
    ("EMAIL", "kim@localhost", None),
    ("EMAIL", "kim minji@example.com", None),
    ("EMAIL", "", None),
    ("EMAIL", "   ", None),
    *[("PHONE", spelling, "821012345678") for spelling in KR_MOBILE_SPELLINGS],
    ("PHONE", "010.1234.5678", "821012345678"),
    ("PHONE", "1012345678", "821012345678"),  # the leading 0 a spreadsheet dropped
    ("PHONE", "02-123-4567", "8221234567"),  # Seoul landline
    ("PHONE", "011-123-4567", "82111234567"),  # an old 3-digit-exchange mobile
    ("PHONE", "+1 650-253-0000", "16502530000"),
    ("PHONE", "+44 20 7946 0958", "442079460958"),
    ("PHONE", "12345", None),
    ("PHONE", "010-1234", None),
    ("PHONE", "+82 10 5970 1234", None),  # no Korean number starts 010-597
    ("PHONE", "phone", None),
    ("PHONE", "", None),
    ("PHONE", "   ", None),
    ("FN", "김민지", "김민지"),
    ("FN", NFD_KIMMINJI, "김민지"),
    ("FN", " 민지 ", "민지"),
    ("FN", "José", "josé"),
    ("FN", NFD_JOSE, "josé"),
    ("FN", "Mary-Ann", "maryann"),
    ("FN", "F.", "f"),
    ("FN", "123", None),
    ("FN", "---", None),
    ("FN", "", None),
    ("FN", "  \t", None),
    ("LN", "김", "김"),
    ("LN", "남궁", "남궁"),
    ("LN", "O'Neil", "oneil"),
    ("LN", "Van der Berg", "vanderberg"),
    ("LN", "KIM", "kim"),
    ("LN", "", None),
    *[("GEN", male, "m") for male in ["M", "m", " Male ", "남", "남자", "남성"]],
    *[("GEN", female, "f") for female in ["F", "FEMALE", "여", "여자", "여성"]],
    *[("GEN", other, None) for other in ["U", "unknown", "x", "", " "]],
    ("DOBY", "1990", "1990"),
    ("DOBY", " 1990 ", "1990"),
    ("DOBY", "1900", "1900"),
    ("DOBY", "1899", None),
    ("DOBY", "3000", None),
    ("DOBY", "90", None),
    ("DOBY", "", None),
    ("DOBM", "3", "03"),
    ("DOBM", "03", "03"),
    ("DOBM", "12", "12"),
    ("DOBM", "13", None),
    ("DOBM", "0", None),
    ("DOBD", "7", "07"),
    ("DOBD", "31", "31"),
    ("DOBD", "32", None),
    ("DOBD", "", None),
    ("CT", "Seoul", "seoul"),
    ("CT", "New York", "newyork"),
    ("CT", "São Paulo", "saopaulo"),
    ("CT", "St. Louis", "stlouis"),
    ("CT", "서울", None),  # Meta matches places in Roman letters only
    ("CT", "", None),
    ("ST", "Gyeonggi", "gyeonggi"),
    ("ST", "Gyeonggi-do", "gyeonggido"),
    ("ST", "CA", "ca"),
    ("ST", "경기도", None),
    ("ZIP", "06236", "06236"),
    ("ZIP", " 06236 ", "06236"),
    ("ZIP", "135-080", None),  # a pre-2015 Korean code
    ("ZIP", "94043-1351", "94043"),
    ("ZIP", "SW1A 1AA", "sw1a1aa"),
    ("ZIP", "", None),
    ("COUNTRY", "KR", "kr"),
    ("COUNTRY", " kr ", "kr"),
    ("COUNTRY", "South Korea", "kr"),
    ("COUNTRY", "Korea, Republic of", "kr"),
    ("COUNTRY", "대한민국", "kr"),
    ("COUNTRY", "US", "us"),
    ("COUNTRY", "ZZ", None),
    ("COUNTRY", "Korean", None),
    ("COUNTRY", "", None),
    ("MADID", " AECE52E7-03EE-455A-B3C4-E57283966239 ", "aece52e7-03ee-455a-b3c4-e57283966239"),
    ("MADID", "00000000-0000-0000-0000-000000000000", None),  # limit-ad-tracking devices
    ("MADID", "AECE52E7", None),
    ("EXTERN_ID", " M-0001 ", "M-0001"),  # case kept: the SDK's lower-casing would break it
    ("EXTERN_ID", "", None),
    ("EXTERN_ID", "  ", None),
]

# Digests from `printf '%s' VALUE | sha256sum` (coreutils), of the UTF-8 bytes.
SHA256SUM = {
    "kimminji@example.com": "f5fb02c3e34a0db2255e1068efdaac07ab423b26392cf9df3d20b6a1dfbb3fa9",
    "김민지": "92bd2b518365fb0e5c4e9d9002cfddd66e59415aa54d0fe2b1a722b4a9cd4182",
    "821012345678": "5d639079300bfabb1fa81139c823d324b2a67e9dd4157475190a31fb17528bc0",
    "josé": "d994e1d001886fe5b45b1267bd1fa2b752ac50742579bd3dad7b2a2aa0ed6866",
    "m": "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a",
    "1990": "a7be8e1fe282a37cd666e0632b17d933fa13f21addf4798fc0455bc166e2488c",
    "gyeonggi": "32103b7a2ee20b0e0affbcff09fa546852a4b4a11f0433eac778d584d3ad70ea",
    "kr": "d5647005d31dcbb66ff531c5e097544a03558bc538b9c65ee2539594886ffbc0",
}
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256(""): never sent


def expected_value(key: str, spelling: str | None) -> str | None:
    if spelling is None or key in UNHASHED:
        return spelling
    return hashlib.sha256(spelling.encode("utf-8")).hexdigest()


def test_the_vectors_cover_every_key() -> None:
    assert {key for key, _, _ in GOLDEN} == set(KEYS)
    assert {key for key, _, spelling in GOLDEN if spelling is None} == set(KEYS)  # a drop for each


@pytest.mark.parametrize(("key", "raw", "spelling"), GOLDEN)
def test_golden_vectors(key: str, raw: str, spelling: str | None) -> None:
    assert NORMALIZERS[key](raw) == spelling
    assert hash_row({PROFILE_COLUMNS[key]: raw}, [key]) == (expected_value(key, spelling),)


@pytest.mark.parametrize(
    ("key", "column", "raw", "spelling"),
    [
        ("EMAIL", "email", " KimMinJi@Example.com", "kimminji@example.com"),
        ("FN", "given_name", NFD_KIMMINJI, "김민지"),
        ("PHONE", "phone", "010-1234-5678", "821012345678"),
        ("FN", "given_name", "José", "josé"),
        ("GEN", "sex", "M", "m"),
        ("DOBY", "birth_year", 1990, "1990"),  # an INT64 column
        ("ST", "region", "Gyeonggi", "gyeonggi"),
        ("COUNTRY", "country", "KR", "kr"),
    ],
)
def test_digests_equal_coreutils_sha256sum(key: str, column: str, raw: object, spelling: str) -> None:
    assert hash_row({column: raw}, [key]) == (SHA256SUM[spelling],)


def test_a_profile_row_in_the_order_of_the_keys() -> None:
    profile = {
        "customer_id": "c-1",
        "email": "KimMinJi@Example.com ",
        "phone": "+821012345678",
        "given_name": "민지",
        "family_name": "김",
        "sex": "F",
        "birth_year": 1990,  # an INT64 column
        "region": "Seoul",
        "member_id": "M-0001",
    }
    keys = ["LN", "FN", "EMAIL", "PHONE", "GEN", "DOBY", "ST", "EXTERN_ID", "ZIP"]
    assert hash_row(profile, keys) == (
        hashlib.sha256("김".encode()).hexdigest(),
        hashlib.sha256("민지".encode()).hexdigest(),
        SHA256SUM["kimminji@example.com"],
        SHA256SUM["821012345678"],
        hashlib.sha256(b"f").hexdigest(),
        SHA256SUM["1990"],
        hashlib.sha256(b"seoul").hexdigest(),
        "M-0001",  # unhashed
        None,  # no zip column
    )


def test_blanks_are_left_out_never_hashed_as_the_empty_string() -> None:
    profile = {"email": "", "phone": "  ", "given_name": "-", "family_name": None, "sex": "U", "member_id": " "}
    keys = ["EMAIL", "PHONE", "FN", "LN", "GEN", "EXTERN_ID"]
    row = hash_row(profile, keys)
    assert row == (None,) * len(keys)
    assert EMPTY_SHA256 not in row
    assert not has_any_key(row)


def test_has_any_key() -> None:
    assert has_any_key((None, "M-0001"))
    assert has_any_key((SHA256SUM["kr"],))
    assert not has_any_key((None, None))
    assert not has_any_key(())


def test_a_batch_equals_its_rows_one_by_one() -> None:
    """The batch spells repeated values (names, regions) once per value: same answers as per row."""
    profiles: list[dict[str, object]] = [
        {"email": f"user{n}@example.com", "phone": f"010-{1000 + n}-5678", "family_name": "김이박"[n % 3],
         "given_name": ["민지", "서준", None, "José"][n % 4], "sex": "MF"[n % 2], "region": "Seoul", "birth_year": 1990}
        for n in range(12)
    ]  # fmt: skip
    profiles.append({"email": "bad", "phone": "123", "given_name": "", "birth_year": "1899"})
    keys = ["EMAIL", "PHONE", "FN", "LN", "GEN", "ST", "DOBY"]
    rows = hash_rows(profiles, keys)
    assert rows == [hash_row(p, keys) for p in profiles]
    assert rows[0][3] == rows[3][3] == hashlib.sha256("김".encode()).hexdigest()
    assert rows[2][2] is None and rows[3][2] == SHA256SUM["josé"]
    assert rows[-1] == (None,) * len(keys)
    assert hash_rows([], keys) == []
    assert hash_rows(profiles[:2], []) == [(), ()]


@pytest.mark.parametrize("key", ["NAME", "email", "PHONE_SHA256", ""])
def test_an_unsupported_key_is_refused_by_name(key: str) -> None:
    with pytest.raises(UnsupportedKey) as caught:
        hash_rows([{"email": "kim@example.com"}], ["EMAIL", key])
    assert caught.value.key == key
    assert repr(key) in str(caught.value)


# --- phones: agreement with shared.contacts and with phonenumbers itself -----------------------


@pytest.mark.parametrize(
    "spelling", [*KR_MOBILE_SPELLINGS, "010.1234.5678", "1012345678", "02-123-4567", "031-123-4567", "+82 2 123 4567"]
)
def test_ordinary_korean_numbers_agree_with_contacts(spelling: str) -> None:
    e164 = contacts_phone(spelling)
    assert e164 is not None
    assert normalize_phone(spelling) == e164.removeprefix("+")


@pytest.mark.parametrize("spelling", ["+82 12345678", "+82 10 5970 1234", "+82 99 1234 5678"])
def test_stricter_than_contacts_on_numbers_no_plan_assigns(spelling: str) -> None:
    """contacts takes any 8 to 15 digits (it only spells); Meta's key must be a valid number."""
    assert contacts_phone(spelling) is not None
    assert normalize_phone(spelling) is None


def test_the_fast_path_equals_phonenumbers_on_every_010_prefix() -> None:
    """Every 010-XXXX block, written as profiles hold it and as people type it."""
    for block in range(10_000):
        for number in (f"+8210{block:04d}5678", f"010-{block:04d}-0000"):
            assert normalize_phone(number) == phone_by_library(number), number


PHONE_CHARS = st.text(alphabet="0123456789 +-.()", max_size=18)
KR_LIKE = st.builds(
    lambda prefix, body, sep: prefix + sep.join([body[:2], body[2:6], body[6:]]),
    st.sampled_from(["+82", "+82 ", "0", "", "+820", "00", "82"]),
    st.text(alphabet="0123456789", min_size=8, max_size=11),
    st.sampled_from(["", " ", "-", ".", "--", " - "]),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(PHONE_CHARS, KR_LIKE))
def test_the_fast_path_equals_phonenumbers(value: str) -> None:
    assert normalize_phone(value) == phone_by_library(value)


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KEYS), st.text())
def test_normalisers_are_total_and_never_give_the_empty_string(key: str, value: str) -> None:
    spelled = NORMALIZERS[key](value)
    assert spelled is None or (isinstance(spelled, str) and spelled != "")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=30), st.integers()), min_size=len(KEYS), max_size=len(KEYS)))
def test_any_profile_hashes_without_raising_and_without_empty_digests(values: list[object]) -> None:
    profile = {PROFILE_COLUMNS[key]: value for key, value in zip(KEYS, values, strict=True)}
    row = hash_row(profile, KEYS)
    assert len(row) == len(KEYS)
    assert EMPTY_SHA256 not in row
    for key, value in zip(KEYS, row, strict=True):
        assert value is None or (value != "" and (key in UNHASHED or len(value) == 64))


def test_the_publish_bench_runs_and_ends_with_its_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    """A small run of `scripts/bench publish`: its digests are checked against the bare loop's."""
    from benchmarks import publish

    assert publish.main(["--profiles", "2500", "--batch", "1000", "--members", "3000"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    pattern = r"publish hash ratio: \d+\.\d\d, 3k first upload: \d+ requests in \d+ s, delta/full: \d+\.\d\d"
    assert re.fullmatch(pattern, last), last

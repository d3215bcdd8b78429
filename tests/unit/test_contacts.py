"""Contact keys: the one spelling of an email or phone that identity and activation rely on."""

from __future__ import annotations

import pytest

from shared.contacts import normalize_email, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Kim.MinJi@Example.CO.KR ", "kim.minji@example.co.kr"),
        ("a+tag@mail.example", "a+tag@mail.example"),
        ("no-at-sign.example", None),
        ("two@@example.com", None),
        ("user@localhost", None),
        ("user name@example.com", None),
        ("", None),
        ("x" * 243 + "@example.com", None),  # 255 characters: one more than an address may have
    ],
)
def test_email_addresses_are_trimmed_and_lower_cased(raw: str, expected: str | None) -> None:
    assert normalize_email(raw) == expected


def test_national_numbers_take_the_given_country() -> None:
    assert normalize_phone("(0)20 7946 0958", default_country="44") == "+442079460958"
    # The dropped-0 rule is Korean only: elsewhere ten digits are read as carrying their country code.
    assert normalize_phone("1012345678", default_country="44") == "+1012345678"
    assert normalize_phone("010.1234.5678") == "+821012345678"

"""The Network Act's form on SMS and e-mail (once, never doubled), the RFC 8058 headers, and
preference links that the preference centre opens."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.messaging import adform
from shared.messaging.adform import AdForm
from shared.preferences.links import open_link

FORM = AdForm("홍길동상회", "02-1234-5678", "080-123-4567")
NOW = datetime(2026, 5, 1, 3, tzinfo=UTC)


def test_an_sms_gets_the_mark_sender_and_free_opt_out() -> None:
    assert adform.sms("봄 세일 20%\n", FORM) == "(광고) 홍길동상회 02-1234-5678\n봄 세일 20%\n무료수신거부 080-123-4567"


@pytest.mark.parametrize("body", ["(광고) 봄 세일 20%", "  (광고)봄 세일 20%", "(광고)\t봄 세일 20%"])
def test_a_body_that_starts_with_the_mark_keeps_one(body: str) -> None:
    text = adform.sms(body, FORM)
    assert text.count("(광고)") == 1
    assert text.splitlines()[:2] == ["(광고) 홍길동상회 02-1234-5678", "봄 세일 20%"]


def test_the_opt_out_line_is_not_added_twice_and_a_form_without_a_number_adds_none() -> None:
    body = "봄 세일\n무료수신거부 080-123-4567"
    assert adform.sms(body, FORM).count("080-123-4567") == 1
    assert adform.sms("봄 세일", AdForm("상회", "02-1", None)) == "(광고) 상회 02-1\n봄 세일"
    assert adform.sms("봄", AdForm("상회", "02-1", "0801234567", "수신거부")).endswith("\n수신거부 0801234567")


def test_an_email_subject_is_marked_once() -> None:
    assert adform.subject("봄 세일") == "(광고) 봄 세일"
    assert adform.subject("(광고) 봄 세일") == "(광고) 봄 세일"


def test_email_parts_end_with_the_sender_and_the_preference_link() -> None:
    url = "https://p.example/?t=a&b"
    text = adform.email_text("본문\n\n", FORM, url)
    assert text == f"본문\n\n--\n홍길동상회 | 02-1234-5678\n{adform.EMAIL_OPT_OUT}: {url}\n"
    html = adform.email_html("<html><BODY><p>본문</p></Body >\n</html>", FORM, url)
    assert html.startswith("<html><BODY><p>본문</p><p ")
    assert html.endswith("</p></Body >\n</html>")
    assert '<a href="https://p.example/?t=a&amp;b">수신거부</a>' in html
    fragment = adform.email_html("<p>본문</p>", AdForm("<Shop & Co>", "a@b.co"), url)
    assert fragment.startswith("<p>본문</p><p ") and "&lt;Shop &amp; Co&gt; | a@b.co" in fragment


def test_the_rfc_8058_headers() -> None:
    assert adform.unsubscribe_headers("https://p.example/unsubscribe?t=T") == {
        "List-Unsubscribe": "<https://p.example/unsubscribe?t=T>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    with_mail = adform.unsubscribe_headers("https://p.example/unsubscribe?t=T", "unsub@shop.example")
    assert with_mail["List-Unsubscribe"] == (
        "<https://p.example/unsubscribe?t=T>, <mailto:unsub@shop.example?subject=unsubscribe>"
    )


@pytest.mark.parametrize(
    ("text", "variant"),
    [("[광고] 세일", "[광고]"), ("(광 고) 세일", "(광 고)"), ("【광고】세일", "【광고】"), ("<광고>", "<광고>")],
)
def test_variants_of_the_mark_are_found(text: str, variant: str) -> None:
    assert adform.mark_variant(text) == variant


@pytest.mark.parametrize("text", ["(광고) 세일", "광고 문의는 02-1", "세일 [광고]"])
def test_the_mark_itself_and_other_texts_are_not_variants(text: str) -> None:
    assert adform.mark_variant(text) is None


@pytest.mark.parametrize(
    ("channel", "address", "sealed_for"),
    [("email", "kim@example.com", "email"), ("sms", "+821012345678", "sms"), ("alimtalk", "+821012345678", "sms")],
)
def test_preference_links_open_at_the_preference_centre(channel: str, address: str, sealed_for: str) -> None:
    page, one_click = adform.preference_urls("https://prefs.example.com", "shop", channel, address, "k", NOW)
    assert page.startswith("https://prefs.example.com/?t=")
    assert one_click.startswith("https://prefs.example.com/unsubscribe?t=")
    token = parse_qs(urlsplit(page).query)["t"][0]
    assert parse_qs(urlsplit(one_click).query)["t"][0] == token
    link = open_link(token, "k", NOW)
    assert (link.site_id, link.channel.value, link.address) == ("shop", sealed_for, address)

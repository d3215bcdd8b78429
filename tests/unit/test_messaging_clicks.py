"""Click links (shared/messaging/clicks.py): the signed token, its refusals, the UTM landing, the
destinations a template may name, and what a click records."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from shared.messaging import clicks
from shared.messaging.clicks import Click, ClickError, ClickLinks
from shared.messaging.ledger import EVENTS, Delivery, Event, delivery_id, event_id

KEY = "test-click-key"
NOW = datetime(2026, 6, 3, 3, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 9, 2, tzinfo=UTC)
CLICK = Click("shop", "winback-sms", "cron-20260601T0100Z", "c_0123456789abcdef0123", "sms",
              "https://shop.example/benefits?color=red#top", EXPIRES)  # fmt: skip
DELIVERY = Delivery(
    delivery_id("winback-sms", "run-1", "c_minji", "email"), "winback-sms", "run-1", "shop", "c_minji", "email"
)


def unpadded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decoded(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_a_token_opens_to_the_click_it_was_made_for() -> None:
    token = clicks.sign(CLICK, KEY)
    assert clicks.open_click(token, KEY, NOW) == CLICK
    assert token.isascii() and set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # compact: 6 bytes of version, flags and expiry, the ids with a length byte each (the platform's
    # customer id in 10 bytes), the URL without https://, 16 bytes of signature
    assert len(decoded(token)) == 6 + (1 + 4) + (1 + 11) + (1 + 19) + (1 + 10) + 35 + 16
    assert len(token) == 140
    assert CLICK.delivery_id == delivery_id("winback-sms", "cron-20260601T0100Z", "c_0123456789abcdef0123", "sms")


@pytest.mark.parametrize(
    "click",
    [
        Click("숍", "캠페인-1", "manual-run", "customer-7", "email", "http://shop.example/a", EXPIRES),
        Click("s", "c", "r", "C_0123456789ABCDEF0123", "webpush", "https://shop.example", EXPIRES),
        Click("s", "c", "r", "c_0123", "alimtalk", "https://shop.example/" + "p" * 900, EXPIRES),
    ],
)
def test_every_channel_id_and_scheme_round_trips(click: Click) -> None:
    assert clicks.open_click(clicks.sign(click, KEY), KEY, NOW) == click


def test_the_signature_is_hmac_sha256_under_a_key_derived_for_click_links() -> None:
    raw = decoded(clicks.sign(CLICK, KEY))
    body, tag = raw[:-16], raw[-16:]
    derived = hashlib.sha256(b"cdp click link\x00" + KEY.encode()).digest()
    assert tag == hmac.digest(derived, body, "sha256")[:16]


def test_every_altered_byte_is_refused_and_nothing_opens() -> None:
    raw = decoded(clicks.sign(CLICK, KEY))
    reasons = set()
    for index in range(len(raw)):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        with pytest.raises(ClickError) as refused:
            clicks.open_click(unpadded(bytes(altered)), KEY, NOW)
        reasons.add(refused.value.reason)
    assert reasons == {"malformed", "forged"}  # the version byte is malformed, every other forged


def test_a_token_under_another_key_or_cut_short_is_refused() -> None:
    token = clicks.sign(CLICK, "another-key")
    with pytest.raises(ClickError) as refused:
        clicks.open_click(token, KEY, NOW)
    assert refused.value.reason == "forged"
    assert str(refused.value) == "the link was not issued by this service or was altered"
    own = clicks.sign(CLICK, KEY)
    for cut in (own[:-1], own[:-4], own[:40]):
        with pytest.raises(ClickError) as refused:
            clicks.open_click(cut, KEY, NOW)
        assert refused.value.reason in ("forged", "malformed")


@pytest.mark.parametrize(
    "token",
    ["", "x", "a" * 3000, "AQ1r!fsA", "AQ1rifsA CWRl", "토큰", "=" * 40, unpadded(b"\x02" + b"\x00" * 40)],
)
def test_what_is_no_token_is_malformed(token: str) -> None:
    with pytest.raises(ClickError) as refused:
        clicks.open_click(token, KEY, NOW)
    assert refused.value.reason == "malformed"


def test_a_link_works_until_its_expiry_and_not_at_it() -> None:
    token = clicks.sign(CLICK, KEY)
    assert clicks.open_click(token, KEY, EXPIRES - timedelta(seconds=1)).url == CLICK.url
    with pytest.raises(ClickError) as refused:
        clicks.open_click(token, KEY, EXPIRES)
    assert refused.value.reason == "expired"
    assert str(refused.value) == "the link expired on 2026-09-02"


def test_an_expiry_is_the_midnight_after_the_lifetime_the_same_all_day() -> None:
    assert clicks.expiry(NOW, timedelta(days=90)) == datetime(2026, 9, 2, tzinfo=UTC)
    late = datetime(2026, 6, 3, 23, 59, 59, tzinfo=UTC)
    assert clicks.expiry(late, timedelta(days=90)) == clicks.expiry(NOW, timedelta(days=90))
    assert clicks.expiry(late + timedelta(seconds=1), timedelta(days=90)) == datetime(2026, 9, 3, tzinfo=UTC)


def test_the_landing_adds_utm_parameters_and_keeps_the_query_and_fragment() -> None:
    assert CLICK.landing() == (
        "https://shop.example/benefits?color=red&utm_source=sms&utm_medium=sms&utm_campaign=winback-sms"
        "&utm_content=cron-20260601T0100Z#top"
    )
    push = Click("s", "spring sale", "r/1", "c", "webpush", "https://shop.example", EXPIRES)
    assert push.landing() == (
        "https://shop.example?utm_source=webpush&utm_medium=push&utm_campaign=spring+sale&utm_content=r%2F1"
    )


def test_utm_parameters_the_marketer_wrote_are_kept() -> None:
    own = Click("s", "c", "r", "c", "email", "https://shop.example/?utm_campaign=spring&utm_source=", EXPIRES)
    assert own.landing() == "https://shop.example/?utm_campaign=spring&utm_source=&utm_medium=email&utm_content=r"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "link() takes the destination as a quoted URL"),
        (5, "link() takes the destination as a quoted URL"),
        ("javascript:alert(1)", "the destination starts with https:// or http://"),
        ("//evil.example/x", "the destination starts with https:// or http://"),
        ("HTTPS://SHOP.EXAMPLE", "the destination starts with https:// or http://"),
        ("data:text/html,<script>", "the destination starts with https:// or http://"),
        ("https://shop.example@evil.example/", "names a host, and no user or password"),
        ("https://user:pw@shop.example/", "names a host, and no user or password"),
        ("https:///path", "names a host"),
        ("https://shop.example/이벤트", "write the URL in ASCII without spaces"),
        ("https://shop.example/a b", "write the URL in ASCII without spaces"),
        ("https://shop.example/\nLocation: x", "write the URL in ASCII without spaces"),
        ("https://shop.example:99999/", "not a URL"),
        ("https://[::1/", "not a URL"),
        ("https://shop.example/" + "a" * 1010, "the destination is 1,031 characters; at most 1,024"),
    ],
)
def test_a_destination_a_template_may_not_name(url: object, problem: str) -> None:
    found = clicks.destination_problem(url)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    "url", ["https://shop.example", "http://shop.example/a?b=c&d=%ED%95%9C#f", "https://shop.example:8443/x"]
)
def test_a_destination_a_template_may_name(url: str) -> None:
    assert clicks.destination_problem(url) is None


def test_sign_refuses_what_it_cannot_pack() -> None:
    for bad in (
        Click("s", "c", "r", "c", "fax", "https://a.example", EXPIRES),
        Click("s", "c", "r", "c", "sms", "ftp://a.example", EXPIRES),
        Click("s", "c", "r", "c", "sms", "https://a.example/\r\nSet-Cookie: x=1", EXPIRES),
        Click("s", "c" * 256, "r", "c", "sms", "https://a.example", EXPIRES),
        Click("", "c", "r", "c", "sms", "https://a.example", EXPIRES),
    ):
        with pytest.raises(ValueError):
            clicks.sign(bad, KEY)
    with pytest.raises(ValueError, match="empty"):
        clicks.sign(CLICK, "")


def test_a_linker_makes_each_destination_a_click_link_of_the_delivery() -> None:
    links = ClickLinks("https://c.shop.example/", KEY, timedelta(days=30))
    link = clicks.linker(DELIVERY, links, NOW)
    made = link("https://shop.example/b")
    assert made.startswith("https://c.shop.example/c?t=")
    assert link("https://shop.example/b") == made and link("https://shop.example/other") != made
    click = clicks.open_click(made.split("?t=", 1)[1], KEY, NOW)
    assert (click.site_id, click.campaign_id, click.run_id, click.customer_id, click.channel) == (
        "shop", "winback-sms", "run-1", "c_minji", "email",
    )  # fmt: skip
    assert (click.url, click.delivery_id, click.expires_at) == (
        "https://shop.example/b", DELIVERY.delivery_id, datetime(2026, 7, 4, tzinfo=UTC),
    )  # fmt: skip
    # rendered again the same day (a lookup before a resend): the same text
    assert clicks.linker(DELIVERY, links, NOW + timedelta(hours=5))("https://shop.example/b") == made
    with pytest.raises(TypeError):
        link(None)


def test_without_click_links_a_link_carries_its_utm_parameters_only() -> None:
    link = clicks.linker(DELIVERY, None, NOW)
    assert link("https://shop.example/b") == (
        "https://shop.example/b?utm_source=email&utm_medium=email&utm_campaign=winback-sms&utm_content=run-1"
    )


def test_the_sample_link_is_a_real_link_at_collects_default_address() -> None:
    sample = clicks.sample_link("https://shop.example/b")
    assert sample.startswith(clicks.SAMPLE_BASE + "/c?t=")
    assert clicks.open_click(sample.split("?t=", 1)[1], "sample", NOW).url == "https://shop.example/b"
    assert len(sample) == 206  # what a 1,600-character SMS gives up for one link on the default address


def test_a_click_is_one_id_per_link_and_minute_shared_by_its_raw_event_and_ledger_row() -> None:
    first = clicks.click_id(CLICK, NOW)
    assert clicks.click_id(CLICK, NOW + timedelta(seconds=59)) == first
    assert clicks.click_id(CLICK, NOW + timedelta(seconds=60)) != first
    other = Click(*[getattr(CLICK, f) for f in ("site_id", "campaign_id", "run_id", "customer_id", "channel")],
                  "https://shop.example/other", EXPIRES)  # fmt: skip
    assert clicks.click_id(other, NOW) != first
    row = clicks.ledger_row(CLICK, NOW)
    assert row == {
        "event_id": first,
        "delivery_id": CLICK.delivery_id,
        "campaign_id": "winback-sms",
        "run_id": "cron-20260601T0100Z",
        "site_id": "shop",
        "customer_id": "c_0123456789abcdef0123",
        "channel": "sms",
        "event": "clicked",
        "code": None,
        "provider_id": None,
        "release_at": None,
        "at": NOW.isoformat(),
    }
    assert first == event_id(CLICK.delivery_id, Event.CLICKED, None, f"{int(NOW.timestamp()) // 60}|{CLICK.url}")
    assert clicks.is_click_row(clicks.LEDGER_TABLE, row)
    assert not clicks.is_click_row(clicks.LEDGER_TABLE, {**row, "event": "sent"})
    assert not clicks.is_click_row("audiences.deliveries", row)


def test_the_names_kept_here_are_the_ledgers() -> None:
    assert (EVENTS, Event.CLICKED.value) == (clicks.LEDGER_TABLE, clicks.CLICKED)
    assert set(clicks.MEDIUMS) == set(clicks.CHANNELS)

"""The preference centre's parts: sealed links, the page, and choices into the ledgers (DuckDB)."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.consent.ledger import Proof
from shared.consent.vocabulary import Channel, Purpose
from shared.messaging.templates import SAMPLE_URL
from shared.preferences.links import LinkError, open_link, seal
from shared.preferences.page import language, mask, render
from shared.schema import table_spec
from shared.services.consent import record_consent, record_subscription
from shared.services.preferences import current_choices, one_click_unsubscribe, save_choices

KEY = "test-preference-key"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_a_sealed_link_opens_to_its_normalised_address_and_hides_it() -> None:
    token = seal("shop", "email", "  Kim.Minji@Example.COM ", KEY, NOW)
    link = open_link(token, KEY, NOW + timedelta(days=59))
    assert (link.site_id, link.channel, link.address) == ("shop", Channel.EMAIL, "kim.minji@example.com")
    assert "kim" not in base64.urlsafe_b64decode(token + "==").decode("latin-1").lower()
    phone = open_link(seal("shop", "sms", "010-1234-5678", KEY, NOW), KEY, NOW)
    assert (phone.channel, phone.address) == (Channel.SMS, "+821012345678")
    assert seal("shop", "email", "a@b.co", KEY, NOW) != seal("shop", "email", "a@b.co", KEY, NOW)  # fresh nonce


def test_a_link_may_name_the_delivery_whose_message_carries_it() -> None:
    delivery = "0123456789abcdef" * 2
    named = open_link(seal("shop", "sms", "010-1234-5678", KEY, NOW, delivery_id=delivery), KEY, NOW)
    assert (named.site_id, named.channel, named.address, named.delivery_id) == (
        "shop", Channel.SMS, "+821012345678", delivery,
    )  # fmt: skip
    assert named.expires_at == NOW + timedelta(days=60)
    assert open_link(seal("shop", "email", "a@b.co", KEY, NOW), KEY, NOW).delivery_id is None
    # templates check an SMS's length with a sample link: a phone's, delivery and all, is no longer
    token = seal("a-long-site-name", "sms", "010-1234-5678", KEY, NOW, delivery_id=delivery)
    assert len(token) <= len(SAMPLE_URL.split("?t=")[1])
    with pytest.raises(ValueError, match="32 lower-case hex characters, not 'D1'"):
        seal("shop", "email", "a@b.co", KEY, NOW, delivery_id="D1")


def first_format_token(payload: dict[str, object], key: str) -> str:
    """A link as the first format sealed it (JSON under associated data p1), written out here so a
    change that stopped links already sent from opening fails."""
    aead = AESGCM(hashlib.sha256(b"cdp preference link\x00" + key.encode("utf-8")).digest())
    nonce = os.urandom(12)
    sealed = nonce + aead.encrypt(nonce, orjson.dumps(payload), b"p1")
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def test_links_of_the_first_format_still_open_until_they_expire() -> None:
    expiry = int((NOW + timedelta(days=3)).timestamp())
    token = first_format_token({"s": "shop", "c": "email", "a": "a@b.co", "x": expiry}, KEY)
    link = open_link(token, KEY, NOW)
    assert (link.site_id, link.channel, link.address, link.delivery_id) == ("shop", Channel.EMAIL, "a@b.co", None)
    with pytest.raises(LinkError) as expired:
        open_link(token, KEY, NOW + timedelta(days=3))
    assert expired.value.reason == "expired"
    with pytest.raises(LinkError) as foreign:
        open_link(first_format_token({"s": "shop", "c": "email", "a": "a@b.co", "x": expiry}, "other"), KEY, NOW)
    assert foreign.value.reason == "forged"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[:-3] + ("AAA" if t[-3:] != "AAA" else "BBB"), "forged"),  # altered
        (lambda t: seal("shop", "email", "a@b.co", "another-key", NOW), "forged"),  # another key
        (lambda t: "", "malformed"),
        (lambda t: "not base64 !!", "malformed"),
        (lambda t: "QUJD", "malformed"),  # too short to hold a seal
        (lambda t: "한글", "malformed"),
    ],
)
def test_a_link_that_is_not_ours_does_not_open(mangle: object, reason: str) -> None:
    token = seal("shop", "email", "a@b.co", KEY, NOW)
    with pytest.raises(LinkError) as raised:
        open_link(mangle(token), KEY, NOW)  # type: ignore[operator]
    assert raised.value.reason == reason


def test_an_expired_link_says_so() -> None:
    token = seal("shop", "email", "a@b.co", KEY, NOW, lifetime=timedelta(days=1))
    with pytest.raises(LinkError, match="expired on 2026-12-04") as raised:
        open_link(token, KEY, NOW + timedelta(days=1))
    assert raised.value.reason == "expired"


def test_links_are_only_for_addresses_a_message_goes_to() -> None:
    with pytest.raises(ValueError, match="not webpush"):
        seal("shop", "webpush", "https://push.example/abc", KEY, NOW)


def test_language_and_masking() -> None:
    assert language("en", "ko-KR") == "en"
    assert language(None, "fr-FR;q=1, en-US;q=0.8") == "en"
    assert language("xx", None) == "ko"
    assert mask("kim.minji@example.com") == "ki*******@example.com"
    assert mask("+821012345678") == "+82101***5678"


def test_the_page_escapes_what_it_shows_and_speaks_both_languages() -> None:
    page = render("ko", token="tok<en>", address="<b>@x.co",
                  channels={Channel.EMAIL: True}, purposes={Purpose.MARKETING: False})  # fmt: skip
    assert "<b*@" not in page and "&lt;b*@x.co" in page and 'value="tok&lt;en&gt;"' in page
    assert "광고성 정보 수신 동의" in page and 'id="channel-email" checked' in page
    assert 'id="purpose-marketing">' in page  # not checked
    english = render("en", error="expired")
    assert "This link has expired" in english and "<form" not in english


# -- choices into the ledgers -------------------------------------------------------------------------


@pytest.fixture
def warehouse() -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables([table_spec(n) for n in ("raw.consent", "raw.subscription", "refined.identities")])
    return warehouse


def ledger(warehouse: DuckDBWarehouse) -> list[tuple[object, ...]]:
    rows = warehouse.query(
        "select 'consent' as k, purpose as what, granted as yes, source, subject_value as who from raw.consent "
        "union all select 'subscription', channel, subscribed, source, address from raw.subscription "
        "order by k, what"
    )
    return [(r["k"], r["what"], r["yes"], r["source"], r["who"]) for r in rows]


def test_the_page_shows_the_persons_state_across_their_identifiers(warehouse: DuckDBWarehouse) -> None:
    """Marketing granted under the member id of the same customer shows on the e-mail's page."""
    warehouse.insert_rows("refined.identities", [
        {"identity_id": "shop|member:m1", "site_id": "shop", "node": "member:m1", "id_type": "member",
         "id_value": "m1", "customer_id": "c_1"},
        {"identity_id": "shop|email:a@b.co", "site_id": "shop", "node": "email:a@b.co", "id_type": "email",
         "id_value": "a@b.co", "customer_id": "c_1"},
    ], ["shop|member:m1", "shop|email:a@b.co"])  # fmt: skip
    record_consent(warehouse, "shop", "member", "m1", {"marketing": True}, NOW - timedelta(days=3), "import",
                   recorded_at=NOW)  # fmt: skip
    record_subscription(warehouse, "shop", "email", "a@b.co", True, NOW - timedelta(days=3), "form", recorded_at=NOW)
    link = open_link(seal("shop", "email", "a@b.co", KEY, NOW), KEY, NOW)
    choices = current_choices(warehouse, link, NOW)
    assert choices.channels == {Channel.EMAIL: True}
    assert choices.purposes[Purpose.MARKETING] is True and choices.purposes[Purpose.NIGHT_MARKETING] is False


def test_a_save_records_only_what_changed_with_its_proof(warehouse: DuckDBWarehouse) -> None:
    record_subscription(warehouse, "shop", "sms", "01012345678", True, NOW - timedelta(days=1), "form", recorded_at=NOW)
    link = open_link(seal("shop", "sms", "010-1234-5678", KEY, NOW), KEY, NOW)
    proof = Proof(wording_version="preferences-v1-ko", page_url="https://prefs.example/", request_id="r1")
    after = save_choices(warehouse, link, {"sms", "alimtalk"}, {"marketing", "bogus"}, NOW, proof)
    assert after.channels == {Channel.SMS: True, Channel.ALIMTALK: True}
    assert ledger(warehouse) == [
        ("consent", "marketing", True, "preference_centre", "+821012345678"),
        ("subscription", "alimtalk", True, "preference_centre", "+821012345678"),
        ("subscription", "sms", True, "form", "+821012345678"),  # unchanged: nothing new recorded
    ]
    [row] = warehouse.query("select wording_version, page_url, request_id from raw.consent")
    assert row == {"wording_version": "preferences-v1-ko", "page_url": "https://prefs.example/", "request_id": "r1"}
    later = NOW + timedelta(minutes=5)
    save_choices(warehouse, link, set(), set(), later, proof)  # everything off
    assert current_choices(warehouse, link, later).purposes[Purpose.MARKETING] is False
    assert current_choices(warehouse, link, later).channels == {Channel.SMS: False, Channel.ALIMTALK: False}


def test_one_click_unsubscribes_the_links_address_once(warehouse: DuckDBWarehouse) -> None:
    record_subscription(warehouse, "shop", "email", "a@b.co", True, NOW - timedelta(days=1), "form", recorded_at=NOW)
    link = open_link(seal("shop", "email", "A@B.co", KEY, NOW), KEY, NOW)
    first = one_click_unsubscribe(warehouse, link, NOW, "r1")
    assert one_click_unsubscribe(warehouse, link, NOW, "r1") == first  # a retried POST: the same ledger id
    assert current_choices(warehouse, link, NOW).channels == {Channel.EMAIL: False}
    [row] = warehouse.query("select source, reason from raw.subscription where subscribed = false")
    assert row == {"source": "one_click_unsubscribe", "reason": "RFC 8058 one-click"}

"""The preference centre's page in Korean and English, rendered in Jinja2's sandbox.

What each choice means is stated on the page in the words the law uses: advertising information
(광고성 정보, Network Act Art. 50), its night-time variant (Art. 50(3)), and the two ad-platform
uses Google's Consent Mode v2 names, so the person sees exactly the purposes the ledger records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from shared.consent.vocabulary import Channel, Purpose

Language = Literal["ko", "en"]
LANGUAGES: Final = ("ko", "en")
PAGE_PURPOSES: Final = (Purpose.MARKETING, Purpose.NIGHT_MARKETING, Purpose.AD_USER_DATA, Purpose.AD_PERSONALIZATION)
LINK_CHANNELS: Final[dict[Channel, tuple[Channel, ...]]] = {
    Channel.EMAIL: (Channel.EMAIL,),
    Channel.SMS: (Channel.SMS, Channel.ALIMTALK),  # a phone number receives both
}

TEXTS: Final[dict[str, dict[str, str]]] = {
    "ko": {
        "title": "수신 및 개인정보 활용 설정",
        "intro": "아래 주소에 대한 설정입니다:",
        "channels": "수신 채널",
        "consents": "동의 항목",
        "save": "저장",
        "saved": "저장되었습니다. 변경 내용은 지금부터 적용됩니다.",
        "unsubscribed": "수신 거부가 처리되었습니다.",
        "footer": "동의하지 않아도 서비스 이용에는 제한이 없습니다. 언제든지 이 페이지에서 바꿀 수 있습니다.",
        "other_language": "English",
        "channel.email": "이메일",
        "channel.email.help": "이메일로 안내와 소식을 받습니다.",
        "channel.sms": "문자 메시지 (SMS/LMS)",
        "channel.sms.help": "휴대전화 문자로 안내와 소식을 받습니다.",
        "channel.alimtalk": "카카오 알림톡",
        "channel.alimtalk.help": "주문·배송 등 정보성 알림을 카카오톡으로 받습니다.",
        "purpose.marketing": "광고성 정보 수신 동의",
        "purpose.marketing.help": "할인, 이벤트 등 광고성 정보를 받습니다.",
        "purpose.night_marketing": "야간 광고성 정보 수신 동의",
        "purpose.night_marketing.help": "오후 9시부터 오전 8시 사이에도 광고성 정보를 받습니다.",
        "purpose.ad_user_data": "광고 플랫폼 제공 동의",
        "purpose.ad_user_data.help": "맞춤 광고를 위해 암호화된 연락처를 광고 플랫폼(예: Meta)에 제공합니다.",
        "purpose.ad_personalization": "맞춤형 광고 동의",
        "purpose.ad_personalization.help": "광고 플랫폼이 관심사에 맞는 광고를 보여 주는 데 활용합니다.",
        "error.malformed": "링크가 올바르지 않습니다. 받은 메시지의 링크를 다시 열어 주세요.",
        "error.forged": "이 링크는 확인할 수 없습니다. 받은 메시지의 링크를 다시 열어 주세요.",
        "error.expired": "링크의 유효 기간이 지났습니다. 최근 받은 메시지의 링크를 이용해 주세요.",
        "error.invalid": "요청을 처리할 수 없습니다.",
    },
    "en": {
        "title": "Your communication and privacy choices",
        "intro": "These choices are for:",
        "channels": "Channels",
        "consents": "Consents",
        "save": "Save",
        "saved": "Saved. Your choices apply from now on.",
        "unsubscribed": "You have been unsubscribed.",
        "footer": "Declining never limits the service you get. You can change these choices here at any time.",
        "other_language": "한국어",
        "channel.email": "E-mail",
        "channel.email.help": "Notices and news by e-mail.",
        "channel.sms": "Text messages (SMS/LMS)",
        "channel.sms.help": "Notices and news by text message.",
        "channel.alimtalk": "KakaoTalk notifications (AlimTalk)",
        "channel.alimtalk.help": "Order and delivery notices on KakaoTalk.",
        "purpose.marketing": "Advertising messages",
        "purpose.marketing.help": "Offers, sales and events.",
        "purpose.night_marketing": "Advertising messages at night",
        "purpose.night_marketing.help": "Advertising messages between 9 pm and 8 am as well.",
        "purpose.ad_user_data": "Sharing with ad platforms",
        "purpose.ad_user_data.help": "Your contact details, hashed, given to ad platforms (e.g. Meta) for ads.",
        "purpose.ad_personalization": "Personalised ads",
        "purpose.ad_personalization.help": "Ad platforms may use it to show ads that match your interests.",
        "error.malformed": "This link is incomplete. Please open the link in the message you received again.",
        "error.forged": "This link cannot be verified. Please open the link in the message you received again.",
        "error.expired": "This link has expired. Please use the link in a recent message.",
        "error.invalid": "The request could not be processed.",
    },
}


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    help: str
    on: bool


def language(requested: str | None, accept_language: str | None) -> Language:
    """?lang= first, then the browser's first supported language, then Korean (the shops' market)."""
    if requested in LANGUAGES:
        return requested  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag  # type: ignore[return-value]
    return "ko"


def mask(address: str) -> str:
    """Enough of the address to recognise it, not enough to read it off a shoulder or a screenshot."""
    if "@" in address:
        name, domain = address.split("@", 1)
        return f"{name[:2]}{'*' * max(1, len(name) - 2)}@{domain}"
    return f"{address[:-4][:6]}{'*' * max(0, len(address) - 10)}{address[-4:]}"


@cache
def _template() -> object:
    env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string((Path(__file__).with_name("page.html")).read_text(encoding="utf-8"))


def render(
    lang: Language,
    *,
    token: str = "",
    address: str = "",
    channels: Mapping[Channel, bool] | None = None,
    purposes: Mapping[Purpose, bool] | None = None,
    saved: bool = False,
    unsubscribed: bool = False,
    error: str | None = None,
) -> str:
    """The page: the choices as they stand, or an error (a `LinkError` reason or `invalid`)."""
    t = TEXTS[lang]

    def choices(kind: str, items: Mapping[Channel, bool] | Mapping[Purpose, bool]) -> Sequence[Choice]:
        return [Choice(k.value, t[f"{kind}.{k.value}"], t[f"{kind}.{k.value}.help"], on) for k, on in items.items()]

    template = _template()
    html: str = template.render(  # type: ignore[attr-defined]
        lang=lang,
        other_lang="en" if lang == "ko" else "ko",
        t=t,
        token=token,
        masked_address=mask(address) if address else "",
        channels=choices("channel", channels or {}),
        purposes=choices("purpose", purposes or {}),
        saved=saved,
        unsubscribed=unsubscribed,
        error=t[f"error.{error}"] if error else None,
    )
    return html

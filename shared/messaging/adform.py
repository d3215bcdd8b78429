"""The Network Act's form for advertising messages, and RFC 8058 unsubscribe headers for e-mail.

Art. 50(4) and its decree: an advertising message starts with "(광고)" (variants such as "[광고]"
are not allowed), names the sender and a contact, and ends with a free way to opt out: an 080
number for SMS, a link for e-mail, whose subject also starts with "(광고)", and for a push
notification its title, with the opt-out (its action, the browser's settings) ending the body. The
form is added here, after rendering, so no template can forget it; a template that already starts
with "(광고)" keeps one. Plain string work on every advertising message, so it stays cheap. Facts:
../shared/notes/activation.md §3 and §4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from markupsafe import escape

from shared.preferences.links import DEFAULT_LIFETIME, seal

AD_MARK: Final = "(광고)"
DEFAULT_OPT_OUT_LABEL: Final = "무료수신거부"
EMAIL_OPT_OUT: Final = "수신을 원하지 않으시면 무료로 수신거부하실 수 있습니다"
EMAIL_OPT_OUT_LINK: Final = "수신거부"
# A push notification's free opt-out: its own "수신거부" action (functions/collect/sw.js ends the
# subscription) and the browser's notification settings, which every platform has.
PUSH_OPT_OUT: Final = "수신거부: 알림의 [수신거부] 또는 브라우저 알림 설정"
ONE_CLICK: Final = "List-Unsubscribe=One-Click"

# "광고" in brackets other than ASCII parentheses, or spaced out, at the start of a text: a variant
# of the mark that the Act does not accept (KISA's guide lists [광고], (광 고), 【광고】 and the like).
_MARK_VARIANT: Final = re.compile(r"\s*[(\[{<（［【〔〈《「『]\s*광\s*고\s*[)\]}>）］】〕〉》」』]")
_CLOSING_BODY: Final = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class AdForm:
    """Who sends advertising and how to opt out, from the `messaging/policy` document."""

    sender_name: str
    sender_contact: str  # a phone number or an address shown to the recipient
    opt_out_number: str | None = None  # the free 080 number SMS carry at their end
    opt_out_label: str = DEFAULT_OPT_OUT_LABEL


def mark_variant(text: str) -> str | None:
    """The not-allowed variant of "(광고)" a text starts with (e.g. "[광고]"), or None."""
    found = _MARK_VARIANT.match(text)
    if found is None or found.group().strip() == AD_MARK:
        return None
    return found.group().strip()


def _unmarked(text: str) -> str:
    """The text without a leading "(광고)" (and the blanks after it): the form puts its own."""
    stripped = text.lstrip()
    return stripped[len(AD_MARK) :].lstrip(" \t") if stripped.startswith(AD_MARK) else text


def sms(text: str, form: AdForm) -> str:
    """An SMS body in the form: "(광고) name contact" first, the 080 opt-out line last.

    The opt-out line is not added twice when the body already gives the number.
    """
    head = f"{AD_MARK} {form.sender_name} {form.sender_contact}"
    body = _unmarked(text).rstrip()
    number = form.opt_out_number
    if number is None or number in body:
        return f"{head}\n{body}"
    return f"{head}\n{body}\n{form.opt_out_label} {number}"


def subject(text: str) -> str:
    """An e-mail subject starting with "(광고)", once."""
    return text if text.lstrip().startswith(AD_MARK) else f"{AD_MARK} {text}"


def push_body(text: str, form: AdForm) -> str:
    """A push notification's body with the sender and the free opt-out at its end (its title takes
    the mark through `subject`)."""
    return f"{text.rstrip()}\n{form.sender_name} {form.sender_contact}\n{PUSH_OPT_OUT}"


def email_text(text: str, form: AdForm, preference_url: str) -> str:
    """The plain-text part with the sender and the free opt-out link at its end."""
    return f"{text.rstrip()}\n\n--\n{form.sender_name} | {form.sender_contact}\n{EMAIL_OPT_OUT}: {preference_url}\n"


def email_html(html: str, form: AdForm, preference_url: str) -> str:
    """The HTML part with the same footer, escaped, before `</body>` (or at the end)."""
    footer = (
        '<p style="font-size:12px;color:#666">'
        f"{escape(form.sender_name)} | {escape(form.sender_contact)}<br>"
        f'{escape(EMAIL_OPT_OUT)}: <a href="{escape(preference_url)}">{escape(EMAIL_OPT_OUT_LINK)}</a></p>'
    )
    at = max((found.start() for found in _CLOSING_BODY.finditer(html)), default=len(html))
    return html[:at] + footer + html[at:]


def unsubscribe_headers(one_click_url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 8058 headers: the one-click POST URL (https, first) and, when configured, a mailto.

    The adapter must sign both with DKIM for mail providers to honour them.
    """
    targets = f"<{one_click_url}>"
    if mailto:
        targets += f", <mailto:{mailto}?subject=unsubscribe>"
    return {"List-Unsubscribe": targets, "List-Unsubscribe-Post": ONE_CLICK}


def preference_urls(
    base_url: str,
    site_id: str,
    channel: str,
    address: str,
    key: str,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
    *,
    delivery_id: str | None = None,
) -> tuple[str, str]:
    """(preference page, one-click unsubscribe) for one address, as functions/preferences serves
    them: `<base>?t=TOKEN` and `<base>unsubscribe?t=TOKEN`, the token sealed by links.seal.

    A phone number's link is sealed for sms, which covers AlimTalk on the same number. With the
    message's delivery id, an unsubscribe through either URL is recorded as that delivery's event.
    """
    way = "email" if channel == "email" else "sms"
    token = seal(site_id, way, address, key, now, lifetime, delivery_id=delivery_id)
    base = base_url if base_url.endswith("/") else base_url + "/"
    return f"{base}?t={token}", f"{base}unsubscribe?t={token}"

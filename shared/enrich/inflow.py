"""Inflow: where a page view came from (medium, source, search keyword, campaign, ad click id).

Referrer hosts are looked up in two layers: the tables below (Korean portals, communities and
apps, webmail, ad servers, login and payment round trips: plain data, so adding one is a one-line
change), then Matomo's community list of search engines, social networks and AI assistants
(`shared.enrich.referrers`, data in `shared/enrich/data/`), read on the first classification.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Final
from urllib.parse import urlsplit

from shared.enrich.referrers import HostRule, ReferrerTables, load_tables
from shared.enrich.text import cap, decode_percent, scrub

_MAX_URL_LEN: Final = 8192
_MAX_QUERY_PARAMS: Final = 256

DIRECT, INTERNAL, SEARCH, SOCIAL, EMAIL, PAID, REFERRAL, AI_ASSISTANT = (
    "direct", "internal", "search", "social", "email", "paid", "referral", "ai_assistant"
)  # fmt: skip
MEDIA: Final = (DIRECT, INTERNAL, SEARCH, SOCIAL, EMAIL, PAID, REFERRAL, AI_ASSISTANT)


@dataclass(frozen=True, slots=True)
class Inflow:
    is_entry: bool
    medium: str  # one of MEDIA: "direct" | "internal" | "search" | "social" | "email" | "paid"
    # | "referral" | "ai_assistant"
    source_name: str | None
    referrer_host: str | None
    search_keyword: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    click_id_type: str | None
    click_id: str | None


_HostTable = Mapping[str, str | tuple[str, tuple[str, ...]]]


def _rules(medium: str, table: _HostTable) -> dict[str, HostRule]:
    rules: dict[str, HostRule] = {}
    for host, value in table.items():
        source, params = (value, ()) if isinstance(value, str) else value
        rules[host] = HostRule(medium, source, params)
    return rules


# Host tables. A key matches that host and every subdomain of it ("search.naver.com" also
# matches "m.search.naver.com"); the most specific key wins, and any of them wins over Matomo's
# list. Android apps appear as "android-app://<package>/" referrers, so their package names are
# listed like hosts.

# host -> (source, keyword parameters in priority order)
SEARCH_ENGINES: Final = _rules(
    SEARCH,
    {
        "search.naver.com": ("naver", ("query",)),
        "www.naver.com": ("naver", ("query",)),  # the portal home: only its own host
        "m.naver.com": ("naver", ("query",)),
        "shopping.naver.com": ("naver_shopping", ("query",)),
        "search.daum.net": ("daum", ("q",)),
        "www.daum.net": ("daum", ("q",)),
        "m.daum.net": ("daum", ("q",)),
        "search.zum.com": ("zum", ("query",)),
        "search.nate.com": ("nate", ("q",)),
        "bing.com": ("bing", ("q",)),
        "search.yahoo.com": ("yahoo", ("p",)),
        "search.yahoo.co.jp": ("yahoo", ("p",)),
        "baidu.com": ("baidu", ("wd", "word")),
        "duckduckgo.com": ("duckduckgo", ("q",)),
        "ecosia.org": ("ecosia", ("q",)),
        "search.brave.com": ("brave", ("q",)),
        "qwant.com": ("qwant", ("q",)),
        "startpage.com": ("startpage", ("query", "q")),
        "ixquick.com": ("startpage", ("query", "q")),  # Startpage's former name
        "aolsearch.com": ("aol", ("q", "query")),
        "ya.ru": ("yandex", ("text",)),
        "seznam.cz": ("seznam", ("q",)),
        "search.aol.com": ("aol", ("q",)),
        "com.google.android.googlequicksearchbox": ("google", ("q",)),
        "com.nhn.android.search": ("naver", ("query",)),
        "net.daum.android.daum": ("daum", ("q",)),
    },
)

# Search engines with one site per country: matched by pattern on the whole host.
SEARCH_ENGINE_PATTERNS: Final[tuple[tuple[re.Pattern[str], HostRule], ...]] = (
    (
        re.compile(r"(?:www\.|m\.|images\.)?google\.(?:com?\.)?[a-z]{2,3}"),
        HostRule(SEARCH, "google", ("q",)),
    ),
    (
        re.compile(r"(?:www\.)?yandex\.(?:com?\.)?[a-z]{2,3}"),
        HostRule(SEARCH, "yandex", ("text",)),
    ),
)

SOCIAL_SITES: Final = _rules(
    SOCIAL,
    {
        "facebook.com": "facebook",  # also l., lm., m.facebook.com (outbound link shims)
        "fb.com": "facebook",
        "instagram.com": "instagram",
        "threads.net": "threads",
        "threads.com": "threads",
        "t.co": "twitter",
        "twitter.com": "twitter",
        "x.com": "twitter",
        "youtube.com": "youtube",
        "youtu.be": "youtube",
        "kakao.com": "kakao",  # story., pf. (channels), open. (open chat)
        "band.us": "band",
        "blog.naver.com": "naver_blog",
        "cafe.naver.com": "naver_cafe",
        "post.naver.com": "naver_post",
        "kin.naver.com": "naver_kin",
        "in.naver.com": "naver_influencer",
        "cafe.daum.net": "daum_cafe",
        "tistory.com": "tistory",
        "brunch.co.kr": "brunch",
        "linkedin.com": "linkedin",
        "lnkd.in": "linkedin",
        "pinterest.com": "pinterest",
        "pinterest.co.kr": "pinterest",
        "pin.it": "pinterest",
        "tiktok.com": "tiktok",
        "reddit.com": "reddit",
        "line.me": "line",
        "t.me": "telegram",
        "discord.com": "discord",
        "dcinside.com": "dcinside",
        "theqoo.net": "theqoo",
        "ruliweb.com": "ruliweb",
        "clien.net": "clien",
        "fmkorea.com": "fmkorea",
        "ppomppu.co.kr": "ppomppu",
        "instiz.net": "instiz",
        "everytime.kr": "everytime",
        "com.kakao.talk": "kakao",
        "com.facebook.katana": "facebook",
        "com.instagram.android": "instagram",
        "com.google.android.youtube": "youtube",
        "com.nhn.android.band": "band",
        "com.twitter.android": "twitter",
        "com.nhn.android.blog": "naver_blog",  # the Naver Blog app
        "com.nhn.android.navercafe": "naver_cafe",
        "net.daum.android.cafe": "daum_cafe",
        "net.daum.android.tistoryapp": "tistory",
        "com.kakao.story": "kakao",  # KakaoStory's app, like story.kakao.com
        "com.instagram.barcelona": "threads",
        "jp.naver.line.android": "line",
        "ok.ru": "odnoklassniki",
        "linktr.ee": "linktree",  # link-in-bio pages of social profiles
        "lnk.bio": "lnk_bio",
    },
)

# Chat assistants that send visitors on (GA4 reports them apart from referrals); Matomo's
# AIAssistants.yml adds ChatGPT, Gemini, Copilot, Claude, Perplexity and the rest.
AI_ASSISTANTS: Final = _rules(
    AI_ASSISTANT,
    {
        "clova-x.naver.com": "clova_x",  # Naver's CLOVA X
        "wrtn.ai": "wrtn",
        "character.ai": "character_ai",
        "poe.com": "poe",
        "kimi.com": "kimi",
        "kimi.moonshot.cn": "kimi",
        "copilot.cloud.microsoft": "copilot",
        "com.openai.chatgpt": "chatgpt",
        "com.anthropic.claude": "claude",
        "ai.perplexity.app.android": "perplexity",
    },
)

WEBMAIL_SITES: Final = _rules(
    EMAIL,
    {
        "mail.naver.com": "naver_mail",
        "mail.daum.net": "daum_mail",
        "mail.kakao.com": "kakao_mail",
        "mail.nate.com": "nate_mail",
        "mail.google.com": "gmail",
        "outlook.live.com": "outlook",
        "outlook.office.com": "outlook",
        "outlook.office365.com": "outlook",
        "mail.yahoo.com": "yahoo_mail",
        "mail.yahoo.co.jp": "yahoo_mail",
        "mail.yahoo.net": "yahoo_mail",  # Yahoo Mail's message views (*.yom.mail.yahoo.net)
        "com.google.android.gm": "gmail",
        "com.nhn.android.mail": "naver_mail",
        "net.daum.android.mail": "daum_mail",
        "mail2.daum.net": "daum_mail",
        "hanmail.net": "daum_mail",
        "mail.live.com": "outlook",  # Hotmail/Outlook.com's older hosts (*.mail.live.com)
        "outlook.com": "outlook",
        "mail.aol.com": "aol_mail",
        "mail.proton.me": "proton_mail",
        "mail.protonmail.com": "proton_mail",
        "mail.zoho.com": "zoho_mail",
        "mail.yandex.ru": "yandex_mail",
        "mail.yandex.com": "yandex_mail",
        "e.mail.ru": "mail_ru_mail",
        "mail.qq.com": "qq_mail",
        "mail.163.com": "163_mail",
        # United Internet's mail apps (GMX, WEB.DE, mail.com, 1&1) link out through "deref-" hosts.
        "gmx.net": "gmx",
        "gmx.de": "gmx",
        "gmx.at": "gmx",
        "gmx.ch": "gmx",
        "gmx.com": "gmx",
        "gmx.fr": "gmx",
        "gmx.es": "gmx",
        "gmx.it": "gmx",
        "gmx.co.uk": "gmx",
        "mail.com": "mail_com",
        "deref-gmx.net": "gmx",
        "deref-gmx.de": "gmx",
        "deref-gmx.at": "gmx",
        "deref-gmx.ch": "gmx",
        "deref-gmx.com": "gmx",
        "deref-gmx.fr": "gmx",
        "deref-gmx.es": "gmx",
        "deref-gmx.it": "gmx",
        "deref-gmx.co.uk": "gmx",
        "deref-web.de": "web_de",
        "deref-mail.com": "mail_com",
    },
)

# Ad servers and click redirectors: a visit referred by one of them was an ad click.
AD_SERVERS: Final = _rules(
    PAID,
    {
        "googleadservices.com": "google",
        "doubleclick.net": "google",
        "googlesyndication.com": "google",
        "adsensecustomsearchads.com": "google",  # AdSense for Search ads on partner sites
        "syndicatedsearch.goog": "google",  # the same, Google's newer host
        "adcr.naver.com": "naver",  # Naver search-ad click redirector
        "ader.naver.com": "naver",  # Naver GFA display ads
        "ad.search.naver.com": ("naver", ("query",)),  # "more ads" pages of Naver search ads
    },
)

# Login and payment round trips: the visitor leaves the site to sign in or pay and comes straight
# back. Counting the return as a new arrival would split the visit and credit the login or
# payment provider with the sale, so these referrers are treated like the site itself.
PASS_THROUGH_HOSTS: Final = frozenset(
    {
        "nid.naver.com", "accounts.kakao.com", "kauth.kakao.com", "accounts.google.com",
        "appleid.apple.com", "pay.naver.com", "pg-web.kakao.com", "online-pay.kakao.com",
        "kakaopay.com", "inicis.com", "kcp.co.kr", "tosspayments.com", "toss.im",
        "nicepay.co.kr", "payco.com", "danal.co.kr", "paypal.com",
    }
)  # fmt: skip

# Most specific key first is guaranteed by the lookup walking from the full host up, so the
# tables can share one dict; later tables would override earlier ones on a duplicate key.
HOST_RULES: Final[dict[str, HostRule]] = {
    **SEARCH_ENGINES,
    **SOCIAL_SITES,
    **AI_ASSISTANTS,
    **WEBMAIL_SITES,
    **AD_SERVERS,
}

# Webmail beyond the table: a referrer whose subdomain part has "mail" in a label ("webmail.",
# "mail01.", "email.", "lightmailer-bs.") or starts with "messagerie" (French providers), or any
# label starting with "deref-" (German providers' link redirectors), is a webmail reader.
_WEBMAIL_LABEL = re.compile(r"[a-z0-9-]*mail|messagerie")
_SECOND_LEVEL_LABELS: Final = frozenset({"co", "com", "net", "org", "ac", "go", "or", "ne", "edu", "gov"})

# Ad click ids appended to landing URLs, in priority order: the first present is reported.
# fbclid comes last because Facebook adds it to every outbound link, ads or not.
CLICK_IDS: Final[tuple[tuple[str, str], ...]] = (
    # (parameter, source)
    ("gclid", "google"),
    ("gbraid", "google"),
    ("wbraid", "google"),
    ("dclid", "google"),
    ("msclkid", "bing"),
    ("n_ad", "naver"),  # Naver search ads' auto-tagging (with n_query, n_keyword, n_media...)
    ("NaPm", "naver"),  # Naver ads' click parameter (search ads and GFA)
    ("ttclid", "tiktok"),
    ("twclid", "twitter"),
    ("li_fat_id", "linkedin"),
    ("ScCid", "snapchat"),
    ("epik", "pinterest"),
    ("yclid", "yandex"),
    ("fbclid", "facebook"),
)
NOT_PAID_CLICK_IDS: Final = frozenset({"fbclid"})
SEARCH_AD_CLICK_IDS: Final = frozenset({"gclid", "gbraid", "wbraid", "msclkid", "n_ad", "NaPm"})
UTM_PARAMS: Final = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Naver search ads put the visitor's query in n_query and the bought keyword in n_keyword.
AD_KEYWORD_PARAMS: Final = ("n_query", "n_keyword")
# Naver search ads' other auto-tagging parameters: a landing with any of them (and no n_ad, which
# some ad types leave out) is a Naver ad click too.
NAVER_AD_PARAMS: Final = ("n_media", "n_query", "n_rank", "n_ad_group", "n_keyword_id", "n_campaign_type")

# utm_medium values (lower case, "_" and " " read as "-") and the medium they mean.
UTM_MEDIUMS: Final[dict[str, str]] = {
    **dict.fromkeys(
        ("cpc", "ppc", "paidsearch", "paid-search", "paid", "display", "cpm", "cpa", "cpv",
         "cpi", "cps", "cpt", "banner", "affiliate", "affiliates", "retargeting", "remarketing",
         "ad", "ads", "paid-social", "paidsocial", "sa", "da", "gfa", "powerlink", "bizboard",
         # Naver brand search and shopping search ads
         "bs", "brandsearch", "brand-search", "shopping", "shopping-ad", "shopping-ads", "shoppingsearch"),
        PAID,
    ),
    **dict.fromkeys(
        # Owned messages: this platform's own AlimTalk, SMS and push links are counted as email.
        ("email", "e-mail", "mail", "newsletter", "edm", "sms", "lms", "mms", "alimtalk",
         "friendtalk", "push", "webpush", "web-push", "app-push"),
        EMAIL,
    ),
    **dict.fromkeys(
        ("social", "sns", "social-network", "social-media", "sm", "organic-social", "social-post"),
        SOCIAL,
    ),
    **dict.fromkeys(("organic", "organic-search", "seo"), SEARCH),
    **dict.fromkeys(("referral", "referrer", "referer", "link"), REFERRAL),
    **dict.fromkeys(("none", "(none)", "direct"), DIRECT),
}  # fmt: skip
# An unknown utm_medium that looks like an ad is "paid", anything else unknown is "referral".
_AD_LIKE_MEDIUM = re.compile(
    r"cp[a-z]|ppc|paid|banner|display|affiliat|retarget|remarket|sponsor"
    r"|(?:^|[^a-z])ads?(?:[^a-z]|$)"
)
_SOCIAL_LIKE_MEDIUM = re.compile(r"social|sns")
_EMAIL_LIKE_MEDIUM = re.compile(r"mail|newsletter")
SEARCH_AD_MEDIUMS: Final = frozenset(
    {"cpc", "ppc", "paidsearch", "paid-search", "sa", "powerlink", "bs", "brandsearch", "brand-search"}
)

# utm_source names that say the medium when utm_medium is missing (as GA4's default channel
# grouping does); the host tables' source names are added below.
SOURCE_MEDIUMS: Final[dict[str, str]] = {
    **{rule.source: rule.medium for rule in SEARCH_ENGINES.values()},
    **{rule.source: rule.medium for rule in SOCIAL_SITES.values()},
    **{rule.source: rule.medium for rule in WEBMAIL_SITES.values()},
    **{rule.source: rule.medium for rule in AI_ASSISTANTS.values()},
    "google": SEARCH,
    "yandex": SEARCH,
    "kakaotalk": SOCIAL,
    "kakao_talk": SOCIAL,
    "kakaostory": SOCIAL,
    "fb": SOCIAL,
    "ig": SOCIAL,
    "email": EMAIL,
    "newsletter": EMAIL,
}


def classify_inflow(page_url: str | None, referrer: str | None) -> Inflow:
    """Say whether a page view is an arrival and from where: medium, source, keyword, campaign.

    Medium precedence: utm_medium; an ad click id ("paid"; fbclid alone is "social") or Naver
    search ads' n_ parameters ("paid"); the referrer (same site or a login/payment round trip is
    "internal" unless campaign parameters are present; then search, social, AI assistant,
    webmail, ad server, other site); the utm_source name; no referrer is "direct". Source
    precedence: utm_source (lower-cased), the click id's network, the referrer's known name, the
    referrer host without "www.". HTML-escaped URLs ("&amp;utm_medium=") are read as unescaped.
    """
    page = _split_url(page_url)
    ref = _split_url(referrer)
    params = page.params if page else {}
    utm = {name: _clean(params.get(name)) for name in UTM_PARAMS}
    click_type, click_id, click_source = _click_id(params)
    naver_ad = click_type is None and _first(params, NAVER_AD_PARAMS) is not None
    if naver_ad:
        click_source = "naver"
    has_campaign = click_type is not None or naver_ad or any(utm.values())

    ref_host = ref.host if ref else None
    page_host = page.host if page else None
    rule = _host_rule(ref_host, ref.path) if ref and ref_host else None
    same_site = ref_host is not None and (
        (page_host is not None and _site_key(ref_host) == _site_key(page_host))
        or _in_table(ref_host, PASS_THROUGH_HOSTS)
    )
    utm_medium = _norm_medium(utm["utm_medium"])

    if utm_medium:
        medium = _medium_from_utm(utm_medium)
    elif click_type is not None:
        medium = SOCIAL if click_type in NOT_PAID_CLICK_IDS else PAID
    elif naver_ad:
        medium = PAID
    elif ref_host and not same_site:
        medium = rule.medium if rule else REFERRAL
    elif utm["utm_source"]:
        medium = _source_medium(utm["utm_source"].lower())
    else:
        medium = INTERNAL if same_site else DIRECT

    is_entry = has_campaign or not same_site

    source: str | None = None
    if utm["utm_source"]:
        source = utm["utm_source"].lower()
    elif click_source:
        source = click_source
    elif ref_host and not same_site:
        source = rule.source if rule else _strip_prefix(ref_host, "www.")

    keyword = None
    if is_entry:
        if rule and ref and not same_site:
            names = rule.keyword_params
            keyword = _first(ref.params, names) or _first(ref.fragment_params, names)
        keyword = keyword or _first(params, AD_KEYWORD_PARAMS)
        paid_search = medium == PAID and (
            (rule is not None and rule.medium == SEARCH)
            or click_type in SEARCH_AD_CLICK_IDS
            or naver_ad
            or utm_medium in SEARCH_AD_MEDIUMS
        )
        if not keyword and (medium == SEARCH or paid_search):
            keyword = utm["utm_term"]

    return Inflow(
        is_entry=is_entry,
        medium=medium,
        source_name=cap(source),
        referrer_host=cap(ref_host),
        search_keyword=keyword,
        utm_source=utm["utm_source"],
        utm_medium=utm["utm_medium"],
        utm_campaign=utm["utm_campaign"],
        utm_term=utm["utm_term"],
        utm_content=utm["utm_content"],
        click_id_type=click_type,
        click_id=click_id,
    )


@dataclass(frozen=True, slots=True)
class _Url:
    host: str | None
    params: dict[str, str]  # lower-cased name -> first raw (still encoded) value
    fragment_params: dict[str, str]
    path: str = ""  # lower-cased


# "&amp;" (and "&#38;") where a URL went through HTML escaping: a real "&amp;" in a query is "%26amp%3B".
_HTML_AMPERSAND = re.compile(r"&(?:amp|#0*38|#x0*26);", re.IGNORECASE)


def _split_url(url: str | None) -> _Url | None:
    text = scrub((url or "").strip()[:_MAX_URL_LEN])
    if not text:
        return None
    if "&" in text:
        text = _HTML_AMPERSAND.sub("&", text)
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced "[" in the host
        query, _, fragment = text.partition("?")[2].partition("#")
        return _Url(None, _parse_query(query), _parse_query(fragment))
    return _Url(_clean_host(host), _parse_query(parts.query), _parse_query(parts.fragment), parts.path.lower())


def _clean_host(host: str | None) -> str | None:
    host = (host or "").strip().rstrip(".").lower()
    if not host or any(ch.isspace() or ord(ch) < 32 for ch in host):
        return None
    return host


def _parse_query(query: str) -> dict[str, str]:
    """First value of each parameter, names lower-cased, values left encoded for _clean."""
    params: dict[str, str] = {}
    for pair in query.split("&", _MAX_QUERY_PARAMS)[:_MAX_QUERY_PARAMS]:
        name, _, value = pair.partition("=")
        key = decode_percent(name).strip().lower()
        if key and key not in params:
            params[key] = value
    return params


def _clean(value: str | None) -> str | None:
    """Decode a raw parameter value, drop control characters, collapse whitespace, cap."""
    if value is None:
        return None
    text = decode_percent(value)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return cap(" ".join(text.split()) or None)


def _first(params: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if (value := _clean(params.get(name.lower()))) is not None:
            return value
    return None


def _click_id(params: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    for name, source in CLICK_IDS:
        if (value := _clean(params.get(name.lower()))) is not None:
            return name, value, source
    return None, None, None


@cache
def _matomo() -> ReferrerTables:
    """Matomo's tables, read once per process on the first classification (about 30 ms), so
    that importing this module (collect does) costs nothing."""
    return load_tables(SEARCH, SOCIAL, AI_ASSISTANT)


@cache
def _matomo_sources() -> dict[str, str]:
    return _matomo().sources()


def _host_rule(host: str, path: str = "") -> HostRule | None:
    """The rule of the most specific key of our tables equal to the host or one of its parents;
    else our search engine patterns; else Matomo's list; else webmail by the host's shape. Matomo's
    entries with a path come first ("x.com/i/grok" is an AI assistant, the rest of x.com social)."""
    matomo = _matomo()
    if path and (rule := matomo.path_rule(host, path)):
        return rule
    labels = host.split(".")
    for i in range(len(labels) - 1):
        if rule := HOST_RULES.get(".".join(labels[i:])):
            return rule
    for pattern, rule in SEARCH_ENGINE_PATTERNS:
        if pattern.fullmatch(host):
            return rule
    if rule := matomo.lookup(host, path):
        return rule
    return _webmail_by_shape(labels)


def _webmail_by_shape(labels: list[str]) -> HostRule | None:
    """A webmail rule for hosts like "webmail1.orange.fr" or "deref-gmx.net" (see _WEBMAIL_LABEL);
    the source is the registrable domain ("orange.fr")."""
    size = 3 if len(labels) > 2 and labels[-2] in _SECOND_LEVEL_LABELS and len(labels[-1]) == 2 else 2
    domain, subdomain = labels[-size:], labels[:-size]
    if any(_WEBMAIL_LABEL.match(label) for label in subdomain) or any(label.startswith("deref-") for label in labels):
        return HostRule(EMAIL, ".".join(domain).removeprefix("deref-"))
    return None


def _source_medium(source: str) -> str:
    """The medium a utm_source name says: ours, else Matomo's list, else "referral"."""
    return SOURCE_MEDIUMS.get(source) or _matomo_sources().get(source, REFERRAL)


def _in_table(host: str, table: frozenset[str]) -> bool:
    labels = host.split(".")
    return any(".".join(labels[i:]) in table for i in range(len(labels) - 1))


def _site_key(host: str) -> str:
    """Host compared for "same site": "www.shop.example" and "m.shop.example" are one site."""
    for prefix in ("www.", "m."):
        if host.startswith(prefix) and host.count(".") > 1:
            return host[len(prefix) :]
    return host


def _strip_prefix(host: str, prefix: str) -> str:
    return host[len(prefix) :] if host.startswith(prefix) and host.count(".") > 1 else host


def _norm_medium(value: str | None) -> str | None:
    if not value:
        return None
    return re.sub(r"[\s_]+", "-", value.strip().lower())


def _medium_from_utm(medium: str) -> str:
    if known := UTM_MEDIUMS.get(medium):
        return known
    if _AD_LIKE_MEDIUM.search(medium):
        return PAID
    if _SOCIAL_LIKE_MEDIUM.search(medium):
        return SOCIAL
    if _EMAIL_LIKE_MEDIUM.search(medium):
        return EMAIL
    return REFERRAL

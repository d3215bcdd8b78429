"""Message templates: Firestore `message_templates/{id}`, checked at save, rendered in Jinja2's sandbox.

A template has one part per channel: `email` {subject, html, text} and `sms` {text}. Marketers
write them, so a template runs only in Jinja2's immutable sandbox (jinja2 >= 3.1.6, which closes
CVE-2025-27516) with StrictUndefined: a name the context lacks fails that recipient's render
instead of printing an empty hole, and attributes such as `__class__` are refused. HTML parts are
autoescaped, text parts and subjects are not (what select_autoescape does for .html names; two
environments because the parts have no file names).

Checked at save, each problem with its field path (`sms.text`, `email.subject`): syntax, unknown
filters, variables outside VARIABLES, unsafe attribute access, `link()` with anything but a quoted
http(s) URL (shared/messaging/clicks.py: a signed link must not send people where data says), a
variant of the "(광고)" mark, and the length of a render with sample values, click links included
at their real length (SMS: 1,600 characters, Twilio's concatenation limit, and 2,000 bytes in
EUC-KR, the LMS limit of Korean carriers; subject: 998 characters, RFC 5322's line).
At send time each recipient's render is checked again, and a failure is a reason code, never an
exception: one bad profile must not stop a campaign.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from jinja2 import StrictUndefined, Template, meta, nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.activation.publications import InvalidConfig
from shared.consent.vocabulary import Channel
from shared.messaging import MessageReason, adform, alimtalk, clicks, webpush
from shared.messaging.adform import AdForm
from shared.tam.rules import MAX_ERRORS, Problem, describe, field_path

PARTS: Final[Mapping[Channel, tuple[str, ...]]] = MappingProxyType(
    {
        Channel.EMAIL: ("subject", "html", "text"),
        Channel.SMS: ("text",),
        Channel.WEBPUSH: ("title", "body", "url", "icon"),
    }
)
"""The fields of each channel's part; the channels templates exist for in this version."""
REQUIRED: Final[Mapping[Channel, tuple[str, ...]]] = MappingProxyType(
    {Channel.EMAIL: ("subject", "text"), Channel.SMS: ("text",), Channel.WEBPUSH: ("title", "body")}
)
TEMPLATE_FIELDS: Final = ("id", "name", "description", "email", "sms", "alimtalk", "webpush")
ALIMTALK_FIELDS: Final = ("template_code", "parameters")
RegistryLookup = Callable[[str], Any]
"""AlimTalk template code -> its `alimtalk_templates/{code}` document, or None (shared/messaging/alimtalk.py)."""
OUTPUT_FIELDS: Final = ("status",)

MAX_SMS_CHARS: Final = 1600  # Twilio: the longest body it splits and reassembles
SMS_BYTES: Final = 90  # one Korean SMS in EUC-KR; a longer text is an LMS
MAX_LMS_BYTES: Final = 2000  # an LMS in EUC-KR (domestic carriers, ../shared/notes/activation.md §3)
MAX_SUBJECT: Final = 998  # RFC 5322: characters on one header line
MAX_SOURCE: Final = {"html": 200_000}  # characters of a field's source; others MAX_TEXT_SOURCE
MAX_TEXT_SOURCE: Final = 20_000
MAX_NAME: Final = 200
CACHE_SIZE: Final = 128
_DETAIL: Final = 200  # characters of an error kept as a render failure's detail


@dataclass(frozen=True)
class Variable:
    """A name templates may use, where the sender takes its value from, and a sample value."""

    name: str
    source: str
    sample: object


SAMPLE_URL: Final = "https://prefs.example.com/?t=" + "x" * 152  # a sealed token is about 150 characters
LINK: Final = "link"  # the function that makes a URL a click link (clicks.linker)


def _untracked(url: object) -> object:
    """link(url) for a render without a sender's own `link` in its context: the URL itself."""
    return url


PROFILE_VARIABLES: Final = (
    Variable("given_name", "raw.user given_name, the latest (CRM import)", "길동"),
    Variable("family_name", "raw.user family_name, the latest (CRM import)", "홍"),
    Variable("full_name", "raw.user full_name, the latest (CRM import)", "홍길동"),
    Variable("member_id", "refined.profiles member_id", "M0001234567"),
    Variable("email", "refined.profiles email", "gildong.hong@example.com"),
    Variable("phone", "refined.profiles phone (E.164)", "+821012345678"),
    Variable("region", "refined.profiles region", "Seoul"),
    Variable("rfm", "refined.profiles rfm (named RFM group)", "Need attention"),
    Variable("age", "refined.profiles age", 34),
    Variable("recency_days", "refined.profiles recency_days", 61),
    Variable("odr_ltv", "refined.profiles odr_ltv (orders ever)", 3),
    Variable("rvn_ltv", "refined.profiles rvn_ltv (revenue ever)", 152000),
)
SYSTEM_VARIABLES: Final = (
    Variable("preference_url", "the preference centre, sealed for the address (adform.preference_urls)", SAMPLE_URL),
    Variable("unsubscribe_url", "RFC 8058 one-click unsubscribe for the address (adform.preference_urls)", SAMPLE_URL),
    Variable("sender_name", "messaging/policy sender.name", "홍길동상회"),
    Variable("sender_contact", "messaging/policy sender.contact", "02-1234-5678"),
    Variable(LINK, "link('https://…'): the URL as a signed click redirect with UTM parameters", clicks.sample_link),
)
VARIABLES: Final[Mapping[str, Variable]] = MappingProxyType(
    {v.name: v for v in (*PROFILE_VARIABLES, *SYSTEM_VARIABLES)}
)


def sample_context() -> dict[str, object]:
    """Every variable with its sample value: what the save-time checks render with."""
    return {name: variable.sample for name, variable in VARIABLES.items()}


def _finalize(value: object) -> object:
    """A profile field without a value prints nothing (write `{{ given_name or "고객" }}`), not "None"."""
    return "" if value is None else value


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape, finalize=_finalize)
    env.globals[LINK] = _untracked
    return env


_TEXT: Final = _environment(autoescape=False)
_HTML: Final = _environment(autoescape=True)


@dataclass(frozen=True)
class MessageTemplate:
    """A checked template: its parts' sources per channel and a digest of them (its version)."""

    id: str
    name: str
    parts: Mapping[Channel, Mapping[str, str]]
    digest: str
    variables: frozenset[str]  # every variable a part uses: the columns the sender must read
    links: frozenset[str] = frozenset()  # the destinations its link() calls name

    def has(self, channel: object) -> bool:
        return channel in self.parts


class Rendered(NamedTuple):
    text: str  # AlimTalk: the approved content with its variables filled, as Kakao shows it
    subject: str | None = None  # e-mail
    html: str | None = None  # e-mail
    headers: Mapping[str, str] = MappingProxyType({})  # e-mail: List-Unsubscribe, List-Unsubscribe-Post
    template_code: str | None = None  # AlimTalk
    parameters: Mapping[str, str] = MappingProxyType({})  # AlimTalk: #{name} -> value


class RenderFailed(NamedTuple):
    reason: MessageReason  # render_failed or message_too_long
    detail: str  # the error, never the recipient's values


# -- checks at save -----------------------------------------------------------------------------------


def parse_template(template_id: str, doc: Any, alimtalk_templates: RegistryLookup | None = None) -> MessageTemplate:
    """Validate a `message_templates/{id}` document; raise InvalidConfig listing every problem.
    An `alimtalk` part is checked against the registry (`alimtalk_templates`); without one it
    cannot be, and is a problem."""
    problems: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise InvalidConfig([Problem("", f"expected an object, got {describe(doc)}")])
    for key in doc:
        if key not in TEMPLATE_FIELDS and key not in OUTPUT_FIELDS:
            problems.append(Problem(field_path(key), f"unknown field; expected one of {', '.join(TEMPLATE_FIELDS)}"))
    if "id" in doc and doc["id"] != template_id:
        problems.append(Problem("id", f"{describe(doc['id'])} differs from the document id {describe(template_id)}"))
    name = doc.get("name", "")
    for key, limit in (("name", MAX_NAME), ("description", MAX_TEXT_SOURCE)):
        value = doc.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            problems.append(Problem(key, f"expected a text of at most {limit:,} characters, got {describe(value)}"))
    parts: dict[Channel, dict[str, str]] = {}
    used: set[str] = set()
    links: set[str] = set()
    for channel, fields in PARTS.items():
        part = doc.get(channel.value)
        if part is None:
            continue
        if not isinstance(part, Mapping):
            problems.append(
                Problem(channel.value, f"expected an object with {', '.join(fields)}, got {describe(part)}")
            )
            continue
        checked = _check_part(channel, part, problems, links)
        if checked is not None:
            parts[channel], names = checked
            used |= names
    if doc.get(Channel.ALIMTALK.value) is not None:
        kakao = _check_alimtalk(doc[Channel.ALIMTALK.value], alimtalk_templates, problems, links)
        if kakao is not None:
            parts[Channel.ALIMTALK], names = kakao
            used |= names
    if not any(channel.value in doc for channel in (*PARTS, Channel.ALIMTALK)):
        channels = ", ".join((*PARTS, Channel.ALIMTALK))
        problems.append(Problem("", f"a template needs a part for at least one channel: {channels}"))
    if problems:
        if len(problems) > MAX_ERRORS:
            problems = [*problems[:MAX_ERRORS], Problem("", f"… and {len(problems) - MAX_ERRORS} more problems")]
        raise InvalidConfig(problems)
    canonical = json.dumps({c.value: dict(sorted(p.items())) for c, p in sorted(parts.items())}, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    name = name if isinstance(name, str) else ""
    return MessageTemplate(template_id, name, parts, digest, frozenset(used), frozenset(links))


def _check_part(
    channel: Channel, part: Mapping[str, Any], problems: list[Problem], links: set[str]
) -> tuple[dict[str, str], set[str]] | None:
    """One channel's part: its sources and the variables they use, or None (problems appended)."""
    fields = PARTS[channel]
    before = len(problems)
    for key in part:
        if key not in fields:
            problems.append(
                Problem(f"{channel.value}.{field_path(key)}", f"unknown field; expected {', '.join(fields)}")
            )
    sources: dict[str, str] = {}
    compiled: dict[str, Template] = {}
    used: set[str] = set()
    for name in fields:
        path = f"{channel.value}.{name}"
        source = part.get(name)
        if source is None:
            if name in REQUIRED[channel]:
                problems.append(Problem(path, "is required"))
            continue
        template = _check_source(path, source, _HTML if name == "html" else _TEXT, used, problems, links)
        if template is not None:
            sources[name], compiled[name] = str(source), template
    if channel is Channel.WEBPUSH and (sealed := sorted(used & _SEALED_LINKS)):
        message = (
            f"{', '.join(sealed)}: preference links are sealed for e-mail addresses and phone numbers; "
            "a push notification's opt-out is its 수신거부 action"
        )
        problems.append(Problem(channel.value, message))
    if len(problems) > before:
        return None
    _check_sample(channel, compiled, problems)
    return (sources, used) if len(problems) == before else None


def _check_alimtalk(
    part: Any, lookup: RegistryLookup | None, problems: list[Problem], links: set[str]
) -> tuple[dict[str, str], set[str]] | None:
    """The `alimtalk` part: an approved template of the registry and a value for each of its
    `#{name}` variables, either `parameters.<name>` (a text with template variables) or the
    template variable of that name; filled with sample values it must fit Kakao's 1,300
    characters. Its sources: template_code, content and `#{name}` -> each parameter's source."""
    before = len(problems)
    if not isinstance(part, Mapping):
        problems.append(
            Problem("alimtalk", f"expected an object with {', '.join(ALIMTALK_FIELDS)}, got {describe(part)}")
        )
        return None
    for key in part:
        if key not in ALIMTALK_FIELDS:
            problems.append(
                Problem(f"alimtalk.{field_path(key)}", f"unknown field; expected {', '.join(ALIMTALK_FIELDS)}")
            )
    code, parameters = part.get("template_code"), part.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        problems.append(
            Problem("alimtalk.parameters", f"expected an object of #{{name}}: text, got {describe(parameters)}")
        )
        return None
    if not isinstance(code, str):
        problems.append(
            Problem("alimtalk.template_code", f"expected the approved template's code, got {describe(code)}")
        )
        return None
    if lookup is None:
        problems.append(Problem("alimtalk.template_code", "cannot be checked here: no AlimTalk template registry"))
        return None
    found = alimtalk.parse_registry(code, lookup(code))
    if isinstance(found, str):
        problems.append(Problem("alimtalk.template_code", found))
        return None
    if not found.approved:
        status = alimtalk.STATUSES[found.status]
        message = f"AlimTalk template {code!r} is {found.status} ({status}): only approved (APR) templates can be sent"
        problems.append(Problem("alimtalk.template_code", message))
    sources = {"template_code": code, "content": found.content}
    compiled: dict[str, Template] = {}
    used: set[str] = set()
    for name, source in parameters.items():
        path = f"alimtalk.parameters.{field_path(name)}"
        if name not in found.variables:
            known = ", ".join(f"#{{{v}}}" for v in found.variables) or "none"
            problems.append(Problem(path, f"template {code!r} has no #{{{name}}}; its variables: {known}"))
            continue
        template = _check_source(path, source, _TEXT, used, problems, links)
        if template is not None:
            sources[f"#{{{name}}}"], compiled[name] = str(source), template
    for name in found.variables:
        if name in parameters:
            continue
        if name in VARIABLES and name != LINK:
            used.add(name)
        else:
            message = (
                f"#{{{name}}} has no value: set parameters.{name} (a text such as {{{{ given_name }}}}) "
                "or name the variable after a template variable"
            )
            problems.append(Problem("alimtalk.parameters", message))
    if len(problems) > before:
        return None
    sample = sample_context()
    values: dict[str, str] = {}
    for name in found.variables:
        try:
            values[name] = str(_finalize(compiled[name].render(sample) if name in compiled else sample[name]))
        except Exception as exc:  # noqa: BLE001 - any failure of a marketer's template is a problem at its path
            problems.append(
                Problem(
                    f"alimtalk.parameters.{field_path(name)}", f"cannot be rendered with sample values: {_detail(exc)}"
                )
            )
    filled = alimtalk.fill(found.content, values)
    if len(filled) > alimtalk.MAX_CONTENT:
        message = f"is {len(filled):,} characters with sample values; AlimTalk takes at most {alimtalk.MAX_CONTENT:,}"
        problems.append(Problem("alimtalk", message))
    return (sources, used) if len(problems) == before else None


def _check_source(
    path: str,
    source: object,
    env: ImmutableSandboxedEnvironment,
    used: set[str],
    problems: list[Problem],
    links: set[str],
) -> Template | None:
    """Parse and compile one field; its unknown variables and unsafe attributes are problems."""
    limit = MAX_SOURCE.get(path.rsplit(".", 1)[-1], MAX_TEXT_SOURCE)
    if not isinstance(source, str) or not source.strip():
        problems.append(Problem(path, f"expected a non-empty text, got {describe(source)}"))
        return None
    if len(source) > limit:
        problems.append(Problem(path, f"is {len(source):,} characters; at most {limit:,}"))
        return None
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(Problem(path, "must be valid Unicode text"))
        return None
    try:
        tree = env.parse(source)
        names = meta.find_undeclared_variables(tree)  # compiles: finds unknown filters and tests too
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        problems.append(Problem(path, f"line {line}: {exc.message}" if line else str(exc.message)))
        return None
    before = len(problems)
    for attribute in sorted(_unsafe_attributes(tree)):
        problems.append(Problem(path, f"access to {attribute!r} is not allowed"))
    for name in sorted(names - VARIABLES.keys()):
        problems.append(Problem(path, f"unknown variable {name!r}; known: {', '.join(VARIABLES)}"))
    problems.extend(Problem(path, message) for message in _link_problems(tree, links))
    used |= names & VARIABLES.keys()
    return env.from_string(tree) if len(problems) == before else None


def _unsafe_attributes(tree: nodes.Template) -> set[str]:
    """Attributes starting with "_" read by `.x`, `["x"]` or `|attr("x")`: the sandbox refuses them at
    render, so a template that names one is refused at save."""
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            found.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            if isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
                found.add(node.arg.value)
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            for arg in node.args:
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.startswith("_"):
                    found.add(arg.value)
    return found


def _link_problems(tree: nodes.Template, links: set[str]) -> list[str]:
    """Every use of `link` must be a call with one quoted http(s) URL (clicks.destination_problem):
    a destination a variable chose could be anywhere, and a signed link goes wherever it says.
    The destinations found are added to `links`."""
    found: list[str] = []
    called: set[int] = set()
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == LINK):
            continue
        called.add(id(call.node))
        if len(call.args) != 1 or call.kwargs or call.dyn_args or call.dyn_kwargs:
            found.append("link() takes one argument, the destination: link('https://shop.example/sale')")
            continue
        arg = call.args[0]
        url = arg.value if isinstance(arg, nodes.Const) else None
        problem = clicks.destination_problem(url)
        if problem is not None:
            found.append(problem)
        elif isinstance(url, str):
            links.add(url)
    for name in tree.find_all(nodes.Name):
        if name.name == LINK and id(name) not in called:
            found.append("link is a function: write {{ link('https://shop.example/sale') }}")
    return found


def _check_sample(channel: Channel, compiled: Mapping[str, Template], problems: list[Problem]) -> None:
    """Render the part with sample values: it must render, fit the channel and not misuse "(광고)"."""
    if channel is Channel.WEBPUSH:
        return _check_push_sample(compiled, problems)
    context = sample_context()
    for name, template in compiled.items():
        path = f"{channel.value}.{name}"
        try:
            text = template.render(context)
        except Exception as exc:  # noqa: BLE001 - any failure of a marketer's template is a problem at its path
            problems.append(Problem(path, f"cannot be rendered with sample values: {_detail(exc)}"))
            continue
        if name in ("subject", "text") and (variant := adform.mark_variant(text)) is not None:
            problems.append(Problem(path, f"starts with {variant!r}; the Network Act allows only {adform.AD_MARK!r}"))
        if channel is Channel.SMS:
            problem = sms_problem(text)
            if problem is not None:
                problems.append(Problem(path, f"{problem} (rendered with sample values)"))
        elif name == "subject":
            if "\n" in text or "\r" in text:
                problems.append(Problem(path, "must be one line"))
            elif len(text) > MAX_SUBJECT:
                problems.append(Problem(path, f"is {len(text):,} characters with sample values; at most {MAX_SUBJECT}"))


def _check_push_sample(compiled: Mapping[str, Template], problems: list[Problem]) -> None:
    """A push part with sample values: a one-line title without a variant of "(광고)", a body, a
    url and icon that are URLs (the icon https), and a payload the push service takes."""
    context, rendered = sample_context(), {}
    for name, template in compiled.items():
        try:
            rendered[name] = template.render(context)
        except Exception as exc:  # noqa: BLE001 - any failure of a marketer's template is a problem at its path
            problems.append(Problem(f"webpush.{name}", f"cannot be rendered with sample values: {_detail(exc)}"))
    for name, text in rendered.items():
        problem = push_problem(name, text)
        if problem is not None:
            problems.append(Problem(f"webpush.{name}", f"{problem} (rendered with sample values)"))
    if len(rendered) == len(compiled) and not problems:
        size = len(_notification(rendered, "x" * 32).payload())
        if size > webpush.MAX_PLAINTEXT:
            limit = webpush.MAX_PLAINTEXT
            message = f"the notification is {size:,} bytes with sample values; a push carries at most {limit:,}"
            problems.append(Problem("webpush", message))


_SEALED_LINKS: Final = frozenset({"preference_url", "unsubscribe_url"})
_LIMITS: Final = {"title": webpush.MAX_TITLE, "body": webpush.MAX_BODY, "url": webpush.MAX_URL, "icon": webpush.MAX_URL}


def push_problem(name: str, text: str) -> str | None:
    """Why one rendered field of a push notification cannot go out, or None."""
    if len(text) > _LIMITS[name]:
        return f"is {len(text):,} characters; at most {_LIMITS[name]:,}"
    if name == "title" and ("\n" in text or "\r" in text):
        return "must be one line"
    if name == "title" and (variant := adform.mark_variant(text)) is not None:
        return f"starts with {variant!r}; the Network Act allows only {adform.AD_MARK!r}"
    if name in ("url", "icon") and text:
        scheme = ("https://",) if name == "icon" else ("https://", "http://")
        if not text.startswith(scheme) or any(c.isspace() for c in text):
            return f"must be an {' or '.join(s[:-3] for s in scheme)} URL"
    return None


def _notification(fields: Mapping[str, str], tag: str) -> webpush.Notification:
    return webpush.Notification(
        fields["title"], fields["body"], fields.get("url") or None, fields.get("icon") or None, tag
    )


def sms_problem(text: str) -> str | None:
    """Why an SMS body cannot go out: over 1,600 characters, over 2,000 bytes in EUC-KR, or with
    characters EUC-KR lacks (Korean carriers take no others); None when it can."""
    if len(text) > MAX_SMS_CHARS:
        return f"is {len(text):,} characters; at most {MAX_SMS_CHARS:,}"
    try:
        size = len(text.encode("euc_kr"))
    except UnicodeEncodeError:
        missing = sorted({c for c in text if not _euc_kr(c)})
        return f"has characters Korean carriers cannot send (EUC-KR): {''.join(missing[:10])!r}"
    if size > MAX_LMS_BYTES:
        return f"is {size:,} bytes in EUC-KR; an LMS holds at most {MAX_LMS_BYTES:,}"
    return None


def _euc_kr(char: str) -> bool:
    try:
        char.encode("euc_kr")
    except UnicodeEncodeError:
        return False
    return True


def euc_kr_bytes(text: str) -> int:
    """The size of a text in EUC-KR (a character it lacks counts as one byte); over SMS_BYTES is an LMS."""
    return len(text.encode("euc_kr", "replace"))


# -- rendering ----------------------------------------------------------------------------------------


def _detail(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"


def _failed(exc: BaseException) -> RenderFailed:
    return RenderFailed(MessageReason.RENDER_FAILED, _detail(exc))


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def _compile(env: ImmutableSandboxedEnvironment, source: str | None) -> Template | None:
    """One field compiled, its globals (the environment's, as a ChainMap over them) flattened into
    one dict: Jinja walks a template's globals twice per render (merged into the context, and their
    names listed), and walking a ChainMap took 40 % of a short SMS's render (18 -> 11 us, measured
    by scripts/bench send). The environments' globals never change after import, so the copy stays
    equal to them."""
    if source is None:
        return None
    template = env.from_string(source)
    template.globals = dict(template.globals)
    return template


class CompiledTemplate:
    """A template's parts compiled once (compiled() caches them per id and digest).

    `render` takes one recipient's context: every variable the template uses (MessageTemplate.
    variables), None where the profile has no value, plus `link` when clicks are tracked.
    Advertising messages pass the campaign's AdForm; e-mails get List-Unsubscribe headers when the
    context has `unsubscribe_url`.
    """

    __slots__ = ("id", "digest", "_sms", "_subject", "_text", "_html", "_alimtalk", "_push")

    def __init__(self, template: MessageTemplate) -> None:
        self.id = template.id
        self.digest = template.digest
        sms = template.parts.get(Channel.SMS, {})
        email = template.parts.get(Channel.EMAIL, {})
        self._sms = _compile(_TEXT, sms.get("text"))
        self._subject = _compile(_TEXT, email.get("subject"))
        self._text = _compile(_TEXT, email.get("text"))
        self._html = _compile(_HTML, email.get("html"))
        kakao = template.parts.get(Channel.ALIMTALK)
        self._alimtalk = (
            (
                kakao["template_code"],
                kakao["content"],
                {k[2:-1]: _compile(_TEXT, v) for k, v in kakao.items() if k[:2] == "#{"},
            )
            if kakao is not None
            else None
        )
        push = template.parts.get(Channel.WEBPUSH)
        self._push = {name: _compile(_TEXT, push.get(name)) for name in PARTS[Channel.WEBPUSH]} if push else None

    def render(
        self, channel: object, context: Mapping[str, object], form: AdForm | None = None, mailto: str | None = None
    ) -> Rendered | RenderFailed:
        if channel == Channel.SMS:
            return self.render_sms(context, form)
        if channel == Channel.EMAIL:
            return self.render_email(context, form, mailto)
        if channel == Channel.ALIMTALK:
            return self.render_alimtalk(context)
        if channel == Channel.WEBPUSH:
            return self.render_webpush(context, form)
        raise ValueError(f"no templates for channel {channel!r}")

    def render_webpush(self, context: Mapping[str, object], form: AdForm | None = None) -> Rendered | RenderFailed:
        """A push notification: `subject` its title, `text` its body, `parameters` its url and icon;
        advertising gets "(광고)" on the title and the sender and opt-out ending the body."""
        if self._push is None:
            raise ValueError(f"template {self.id} has no webpush part")
        try:
            fields = {name: _one_line(t.render(context)) if name == "title" else t.render(context)
                      for name, t in self._push.items() if t is not None}  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one recipient's failure is a reason code, not a crash
            return _failed(exc)
        if form is not None:
            fields["title"], fields["body"] = adform.subject(fields["title"]), adform.push_body(fields["body"], form)
        for name in ("url", "icon"):
            if fields.get(name) and push_problem(name, fields[name]) is not None:
                return RenderFailed(MessageReason.RENDER_FAILED, f"{name}: {push_problem(name, fields[name])}")
        size = len(_notification(fields, "x" * 32).payload())
        if size > webpush.MAX_PLAINTEXT:
            return RenderFailed(MessageReason.MESSAGE_TOO_LONG, f"a notification of {size} bytes")
        links = MappingProxyType({name: fields[name] for name in ("url", "icon") if fields.get(name)})
        return Rendered(fields["body"], fields["title"], parameters=links)

    def render_alimtalk(self, context: Mapping[str, object]) -> Rendered | RenderFailed:
        """The approved template's code and a value for each `#{name}`: its parameter rendered, or
        the template variable of that name (no value prints nothing). AlimTalk is informational
        only, so there is no advertising form."""
        if self._alimtalk is None:
            raise ValueError(f"template {self.id} has no alimtalk part")
        code, content, parameters = self._alimtalk
        values: dict[str, str] = {}
        try:
            for name in alimtalk.VARIABLE.findall(content):
                template = parameters.get(name)
                values[name] = template.render(context) if template is not None else str(_finalize(context[name]))
        except Exception as exc:  # noqa: BLE001 - one recipient's failure is a reason code, not a crash
            return _failed(exc)
        text = alimtalk.fill(content, values)
        if len(text) > alimtalk.MAX_CONTENT:
            return RenderFailed(MessageReason.MESSAGE_TOO_LONG, f"{len(text)} characters")
        return Rendered(text, template_code=code, parameters=MappingProxyType(values))

    def render_sms(self, context: Mapping[str, object], form: AdForm | None = None) -> Rendered | RenderFailed:
        if self._sms is None:
            raise ValueError(f"template {self.id} has no sms part")
        try:
            text = self._sms.render(context)
        except Exception as exc:  # noqa: BLE001 - one recipient's failure is a reason code, not a crash
            return _failed(exc)
        if form is not None:
            text = adform.sms(text, form)
        # EUC-KR takes at most 2 bytes a character: only a long text needs encoding to be measured
        if len(text) > MAX_SMS_CHARS or (len(text) * 2 > MAX_LMS_BYTES and euc_kr_bytes(text) > MAX_LMS_BYTES):
            return RenderFailed(MessageReason.MESSAGE_TOO_LONG, f"{len(text)} characters, {euc_kr_bytes(text)} bytes")
        return Rendered(text)

    def render_email(
        self, context: Mapping[str, object], form: AdForm | None = None, mailto: str | None = None
    ) -> Rendered | RenderFailed:
        if self._subject is None or self._text is None:
            raise ValueError(f"template {self.id} has no email part")
        try:
            subject = _one_line(self._subject.render(context))
            text = self._text.render(context)
            html = self._html.render(context) if self._html is not None else None
        except Exception as exc:  # noqa: BLE001 - one recipient's failure is a reason code, not a crash
            return _failed(exc)
        unsubscribe = context.get("unsubscribe_url")
        if form is not None:
            preference = context.get("preference_url")
            if not isinstance(preference, str) or not isinstance(unsubscribe, str):
                detail = "an advertising e-mail needs preference_url and unsubscribe_url in its context"
                return RenderFailed(MessageReason.RENDER_FAILED, detail)
            subject = adform.subject(subject)
            text = adform.email_text(text, form, preference)
            html = adform.email_html(html, form, preference) if html is not None else None
        if len(subject) > MAX_SUBJECT:
            return RenderFailed(MessageReason.MESSAGE_TOO_LONG, f"subject of {len(subject)} characters")
        if isinstance(unsubscribe, str) and unsubscribe:
            return Rendered(text, subject, html, adform.unsubscribe_headers(unsubscribe, mailto))
        return Rendered(text, subject, html)


_CACHE: Final[OrderedDict[tuple[str, str], CompiledTemplate]] = OrderedDict()
_CACHE_LOCK: Final = threading.Lock()


def compiled(template: MessageTemplate) -> CompiledTemplate:
    """The template compiled, once per (id, digest): an edit makes a new digest and a new entry."""
    key = (template.id, template.digest)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    made = CompiledTemplate(template)
    with _CACHE_LOCK:
        _CACHE[key] = made
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return made


def sample_render(
    template: MessageTemplate, channel: Channel, form: AdForm | None = None, mailto: str | None = None
) -> Rendered | RenderFailed:
    """The part rendered with sample values (and the advertising form): what a campaign check measures."""
    return compiled(template).render(channel, sample_context(), form, mailto)

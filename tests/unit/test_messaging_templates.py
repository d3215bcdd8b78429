"""Message templates: checks at save with field paths, rendering in the sandbox (StrictUndefined,
escapes refused, autoescape for HTML only), per-recipient failures as reason codes, and the cache."""

from __future__ import annotations

from typing import Any

import pytest

from shared.activation.publications import InvalidConfig
from shared.consent.vocabulary import Channel
from shared.messaging import MessageReason
from shared.messaging.adform import AdForm
from shared.messaging.templates import (
    MAX_LMS_BYTES,
    MAX_SMS_CHARS,
    CompiledTemplate,
    MessageTemplate,
    Rendered,
    RenderFailed,
    compiled,
    euc_kr_bytes,
    parse_template,
    sample_render,
    sms_problem,
)

FORM = AdForm("홍길동상회", "02-1234-5678", "080-123-4567")
EMAIL = {
    "subject": "{{ given_name or '고객' }}님, 새 혜택이 도착했어요",
    "html": (
        "<html><body><p>{{ given_name }}님 안녕하세요. "
        "<a href=\"{{ link('https://shop.example/b') }}\">보기</a></p></body></html>"
    ),
    "text": "{{ given_name }}님 안녕하세요. {{ link('https://shop.example/b') }}",
}
SMS = {"text": "{{ given_name or '고객' }}님, 60일 만이에요! 새 혜택: {{ link('https://shop.example/b') }}"}


def template(**parts: Any) -> dict[str, Any]:
    return {"name": "Win-back", **(parts or {"email": EMAIL, "sms": SMS})}


def problems(doc: Any) -> dict[str, str]:
    """Path -> its problems' messages, joined by " | "."""
    with pytest.raises(InvalidConfig) as error:
        parse_template("t1", doc)
    found: dict[str, str] = {}
    for problem in error.value.problems:
        found[problem.path] = f"{found[problem.path]} | {problem.message}" if problem.path in found else problem.message
    return found


def unchecked(text: str) -> CompiledTemplate:
    """An SMS template compiled without the save check, as a bug elsewhere could make one."""
    return CompiledTemplate(MessageTemplate("unchecked", "", {Channel.SMS: {"text": text}}, text, frozenset()))


def test_a_template_parses_with_its_variables_and_a_digest_per_content() -> None:
    parsed = parse_template("t1", template())
    assert parsed.has("email") and parsed.has("sms") and not parsed.has("alimtalk")
    assert parsed.variables == {"given_name"}  # link() is a global: the sender may override it
    assert parsed.links == {"https://shop.example/b"}  # the destinations the sender makes click links of
    assert parsed.digest == parse_template("t1", template()).digest
    edited = parse_template("t1", template(sms={"text": SMS["text"] + "!"}))
    assert edited.digest != parsed.digest


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"sms": {"text": "{{ first_name }}님"}}, "sms.text", "unknown variable 'first_name'; known: given_name,"),
        ({"sms": {"text": "{% if given_name %}hi"}}, "sms.text", "line 1: Unexpected end of template."),
        ({"sms": {"text": "{{ given_name|shout }}"}}, "sms.text", "line 1: No filter named 'shout'."),
        ({"sms": {"text": "{{ ''.__class__.__mro__ }}"}}, "sms.text", "access to '__class__' is not allowed"),
        ({"sms": {"text": "{{ email|attr('__class__') }}"}}, "sms.text", "access to '__class__' is not allowed"),
        ({"sms": {"text": "{{ email['_x'] }}"}}, "sms.text", "access to '_x' is not allowed"),
        ({"sms": {"text": "[광고] 봄 세일"}}, "sms.text", "starts with '[광고]'; the Network Act allows only '(광고)'"),
        ({"sms": {"text": "(광 고) 봄 세일"}}, "sms.text", "starts with '(광 고)'"),
        ({"sms": {"text": "봄 세일 😀"}}, "sms.text", "has characters Korean carriers cannot send (EUC-KR): '😀'"),
        ({"sms": {"text": "가" * 1001}}, "sms.text", "is 2,002 bytes in EUC-KR; an LMS holds at most 2,000"),
        ({"sms": {"text": "a" * 1601}}, "sms.text", "is 1,601 characters; at most 1,600"),
        ({"sms": {"text": "{{ age + given_name }}"}}, "sms.text", "cannot be rendered with sample values: TypeError"),
        ({"sms": {"text": ""}}, "sms.text", 'expected a non-empty text, got ""'),
        ({"sms": {}}, "sms.text", "is required"),
        ({"sms": "hi"}, "sms", "expected an object with text"),
        ({"sms": {"text": "hi", "title": "x"}}, "sms.title", "unknown field; expected text"),
        ({"email": {"subject": "x" * 999, "text": "t"}}, "email.subject", "is 999 characters with sample values"),
        ({"email": {"subject": "a{{ '\n' }}b", "text": "t"}}, "email.subject", "must be one line"),
        ({"email": {"subject": "【광고】 세일", "text": "t"}}, "email.subject", "starts with '【광고】'"),
        ({"email": {"text": "t"}}, "email.subject", "is required"),
        ({"email": {"subject": "s", "text": "t", "html": "{{ unsubscribe }}"}}, "email.html", "unknown variable"),
        ({"webpush": {"text": "x"}, "sms": SMS}, "webpush.text", "unknown field; expected title, body, url, icon"),
        ({"alimtalk": {"text": "x"}, "sms": SMS}, "alimtalk.text", "unknown field; expected template_code, parameters"),
        ({"name": "x"}, "", "a template needs a part for at least one channel: email, sms"),
        ({"sms": SMS, "channel": "sms"}, "channel", "unknown field; expected one of id, name, description"),
        ({"sms": SMS, "id": "t2"}, "id", '"t2" differs from the document id "t1"'),
        ({"sms": SMS, "description": 5}, "description", "expected a text of at most 20,000 characters, got 5"),
        ({"sms": SMS, "name": "x" * 201}, "name", "expected a text of at most 200 characters"),
        # link() names its destination in quotes: a signed link must not go where a value says
        ({"sms": {"text": "{{ link(email) }}"}}, "sms.text", "link() takes the destination as a quoted URL"),
        ({"sms": {"text": "{{ link('https://a.example/?m=' ~ member_id) }}"}}, "sms.text", "link() takes the"),
        ({"email": {"subject": "s", "text": "{{ link() }}"}}, "email.text", "link() takes one argument"),
        ({"sms": {"text": "{{ link('https://a.example', 'x') }}"}}, "sms.text", "link() takes one argument"),
        ({"sms": {"text": "{{ link(url='https://a.example') }}"}}, "sms.text", "link() takes one argument"),
        ({"sms": {"text": "{{ link }}"}}, "sms.text", "link is a function: write {{ link('https://"),
        ({"sms": {"text": "{% set link = 'x' %}{{ link }}"}}, "sms.text", "link is a function"),
        ({"sms": {"text": "{{ link('javascript:alert(1)') }}"}}, "sms.text", "link('javascript:alert(1)'): the"),
        (
            {
                "email": {
                    "subject": "s",
                    "text": "t",
                    "html": "<a href=\"{{ link('https://a.example@evil.example') }}\">",
                }
            },
            "email.html",
            "link('https://a.example@evil.example'): the destination names a host, and no user or password",
        ),
    ],
)
def test_every_problem_is_reported_at_its_field(doc: dict[str, Any], path: str, message: str) -> None:
    found = problems(doc)
    assert path in found, found
    assert found[path].startswith(message), found[path]


def test_every_problem_of_a_template_is_listed_at_once() -> None:
    found = problems({"email": {"subject": "{{ nme }}", "html": "{{", "text": "t"}, "sms": {"text": "{{ x }}"}})
    assert set(found) == {"email.subject", "email.html", "sms.text"}


def test_a_document_that_is_not_a_map_is_refused() -> None:
    assert problems(["sms"]) == {"": "expected an object, got a list"}


def test_an_sms_of_90_bytes_is_an_sms_and_longer_is_an_lms_within_limits() -> None:
    assert euc_kr_bytes("가" * 45) == 90 and euc_kr_bytes("a" * 91) == 91
    assert sms_problem("가" * 1000) is None  # 2,000 bytes: the largest LMS
    assert sms_problem("a" * MAX_SMS_CHARS) is None
    assert MAX_LMS_BYTES == 2000


def test_render_sms_and_email_with_a_recipients_context() -> None:
    parsed = compiled(parse_template("t1", template()))
    sms = parsed.render("sms", {"given_name": "민지", "link": lambda url: url + "?c=1"})
    assert sms == Rendered("민지님, 60일 만이에요! 새 혜택: https://shop.example/b?c=1")
    context = {"given_name": "<민지>", "unsubscribe_url": "https://p.example/unsubscribe?t=T"}
    email = parsed.render("email", context)
    assert isinstance(email, Rendered)
    assert email.subject == "<민지>님, 새 혜택이 도착했어요"  # subjects and text parts are not escaped
    assert email.text == "<민지>님 안녕하세요. https://shop.example/b"
    assert email.html is not None and "<p>&lt;민지&gt;님 안녕하세요." in email.html  # HTML is
    assert email.headers == {
        "List-Unsubscribe": "<https://p.example/unsubscribe?t=T>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_a_missing_profile_value_prints_nothing_and_a_default_can_replace_it() -> None:
    parsed = compiled(parse_template("t1", template()))
    assert parsed.render_sms({"given_name": None}) == Rendered("고객님, 60일 만이에요! 새 혜택: https://shop.example/b")
    email = parsed.render_email({"given_name": None})
    assert isinstance(email, Rendered) and email.text.startswith("님 안녕하세요.") and email.headers == {}


def test_a_variable_missing_from_the_context_fails_that_recipient_with_a_reason() -> None:
    parsed = compiled(parse_template("t1", template()))
    assert parsed.render_sms({}) == RenderFailed(
        MessageReason.RENDER_FAILED, "UndefinedError: 'given_name' is undefined"
    )


def test_sandbox_escapes_fail_at_render_too() -> None:
    """A template built without the save check (as a bug elsewhere could) is still refused by the sandbox."""
    for probe in ("{{ given_name.__class__.__mro__ }}", "{{ (given_name|attr('__class__')).__subclasses__() }}"):
        result = unchecked(probe).render_sms({"given_name": "x"})
        assert isinstance(result, RenderFailed) and result.reason is MessageReason.RENDER_FAILED
        assert result.detail.startswith("SecurityError: access to attribute '__class__' of 'str' object is unsafe")


def test_the_immutable_sandbox_refuses_mutating_a_value() -> None:
    result = unchecked("{{ given_name }}{% set _ = email.append(1) %}").render_sms({"given_name": "x", "email": []})
    assert isinstance(result, RenderFailed) and "SecurityError" in result.detail


def test_an_error_in_one_recipients_values_is_a_reason_not_an_exception() -> None:
    parsed = compiled(parse_template("t1", template(sms={"text": "{{ 100 // recency_days }}일"})))
    assert parsed.render_sms({"recency_days": 4}) == Rendered("25일")
    failed = parsed.render_sms({"recency_days": 0})
    assert failed == RenderFailed(MessageReason.RENDER_FAILED, "ZeroDivisionError: integer division or modulo by zero")


def test_a_recipients_render_over_the_limit_is_too_long() -> None:
    parsed = compiled(parse_template("t1", template(sms={"text": "{{ given_name }}"})))
    assert parsed.render_sms({"given_name": "가" * 1000}) == Rendered("가" * 1000)
    too_long = parsed.render_sms({"given_name": "가" * 1001})
    assert too_long == RenderFailed(MessageReason.MESSAGE_TOO_LONG, "1001 characters, 2002 bytes")
    assert parsed.render_sms({"given_name": "a" * 1601}).reason is MessageReason.MESSAGE_TOO_LONG  # type: ignore[union-attr]


def test_a_subject_is_kept_on_one_line_whatever_the_values() -> None:
    parsed = compiled(parse_template("t1", template(email={"subject": "{{ given_name }}님", "text": "t"})))
    result = parsed.render_email({"given_name": "민지\r\nBcc: x@evil.example"})
    assert isinstance(result, Rendered) and result.subject == "민지 Bcc: x@evil.example님"


def test_the_advertising_form_is_applied_at_render() -> None:
    parsed = compiled(parse_template("t1", template()))
    sms = parsed.render_sms({"given_name": "민지"}, FORM)
    assert isinstance(sms, Rendered)
    assert sms.text.splitlines()[0] == "(광고) 홍길동상회 02-1234-5678"
    assert sms.text.splitlines()[-1] == "무료수신거부 080-123-4567"
    context = {"given_name": "민지", "preference_url": "https://p/?t=T", "unsubscribe_url": "https://p/unsubscribe?t=T"}
    email = parsed.render_email(context, FORM, "unsubscribe@shop.example")
    assert isinstance(email, Rendered) and email.subject == "(광고) 민지님, 새 혜택이 도착했어요"
    assert email.headers["List-Unsubscribe"] == (
        "<https://p/unsubscribe?t=T>, <mailto:unsubscribe@shop.example?subject=unsubscribe>"
    )
    assert email.text.endswith("https://p/?t=T\n") and email.html is not None and email.html.endswith("</body></html>")
    missing = parsed.render_email({"given_name": "민지"}, FORM)
    assert isinstance(missing, RenderFailed) and "preference_url and unsubscribe_url" in missing.detail


def test_compiled_templates_are_cached_per_id_and_digest() -> None:
    first = parse_template("cache-t", template())
    assert compiled(first) is compiled(parse_template("cache-t", template()))
    edited = parse_template("cache-t", template(sms={"text": "새 문구 {{ given_name }}"}))
    assert compiled(edited) is not compiled(first)
    assert compiled(edited).render_sms({"given_name": "a"}) == Rendered("새 문구 a")


def test_an_sms_is_measured_with_its_click_links_at_their_real_length() -> None:
    # 1,400 characters of text fit alone; with one click link on collect's default address they do not
    text = "a" * 1400 + " {{ link('https://shop.example/b') }}"
    assert problems({"sms": {"text": text}}) == {
        "sms.text": "is 1,607 characters; at most 1,600 (rendered with sample values)"
    }
    parsed = parse_template("t1", {"sms": {"text": "a" * 1390 + " {{ link('https://shop.example/b') }}"}})
    assert parsed.links == {"https://shop.example/b"}
    rendered = sample_render(parsed, Channel.SMS)
    assert isinstance(rendered, Rendered) and len(rendered.text) == 1597
    assert rendered.text.startswith(
        "a" * 1390 + " https://asia-northeast3-your-project.cloudfunctions.net/cdp-collect/c?t="
    )


def test_sample_render_measures_a_part_with_the_form() -> None:
    parsed = parse_template("t1", template())
    bare = sample_render(parsed, Channel.SMS)
    with_form = sample_render(parsed, Channel.SMS, FORM)
    assert isinstance(bare, Rendered) and isinstance(with_form, Rendered)
    assert len(with_form.text) - len(bare.text) == len("(광고) 홍길동상회 02-1234-5678\n\n무료수신거부 080-123-4567")

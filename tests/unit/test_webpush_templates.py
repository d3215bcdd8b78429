"""The webpush part of a message template: checked at save with field paths, rendered in the sandbox,
with the Network Act's form for advertising, and refused at send time when it would not fit a push."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.activation.publications import InvalidConfig
from shared.consent.vocabulary import Channel
from shared.messaging import MessageReason, webpush
from shared.messaging.adform import PUSH_OPT_OUT, AdForm
from shared.messaging.templates import Rendered, RenderFailed, compiled, parse_template, sample_context

PUSH = {
    "title": "{{ given_name or '고객' }}님, 봄 세일",
    "body": "오늘부터 20% 할인",
    "url": "{{ link('https://shop.example/spring') }}",
    "icon": "https://shop.example/icon.png",
}
FORM = AdForm("홍길동상회", "02-1234-5678", "080-123-4567")


def problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidConfig) as raised:
        parse_template("t1", doc)
    return [(p.path, p.message) for p in raised.value.problems]


def test_a_push_part_is_checked_and_records_what_it_uses() -> None:
    template = parse_template("t1", {"webpush": PUSH})
    assert template.has(Channel.WEBPUSH)
    assert "given_name" in template.variables
    assert template.links == {"https://shop.example/spring"}


@pytest.mark.parametrize(
    ("part", "path", "fragment"),
    [
        ({"body": "b"}, "webpush.title", "is required"),
        ({"title": "t"}, "webpush.body", "is required"),
        ({"title": "t", "body": "b", "text": "x"}, "webpush.text", "unknown field; expected title, body, url, icon"),
        ({"title": "a{{ '\n' }}b", "body": "b"}, "webpush.title", "must be one line"),
        ({"title": "x" * 121, "body": "b"}, "webpush.title", "is 121 characters; at most 120"),
        ({"title": "[광고] 세일", "body": "b"}, "webpush.title", "starts with '[광고]'"),
        ({"title": "t", "body": "가" * 1001}, "webpush.body", "is 1,001 characters; at most 1,000"),
        ({"title": "t", "body": "b", "url": "shop.example/x"}, "webpush.url", "must be an https or http URL"),
        ({"title": "t", "body": "b", "icon": "http://shop.example/i.png"}, "webpush.icon", "must be an https URL"),
        ({"title": "t", "body": "{{ first_name }}"}, "webpush.body", "unknown variable 'first_name'"),
        ({"title": "t", "body": "{{ ''.__class__ }}"}, "webpush.body", "access to '__class__' is not allowed"),
        ({"title": "t", "body": "{{ preference_url }}"}, "webpush", "preference links are sealed for e-mail"),
        ({"title": "t", "body": "b", "url": "{{ link(email) }}"}, "webpush.url", "link() takes the destination"),
        ({"title": "t" * 100, "body": "가" * 999, "url": "https://a.example/" + "x" * 1900}, "webpush",
         "bytes with sample values; a push carries at most 3,000"),
    ],
)  # fmt: skip
def test_a_push_part_that_cannot_go_out_is_refused_at_its_path(part: dict[str, str], path: str, fragment: str) -> None:
    found = problems({"webpush": part})
    assert any(p == path and fragment in m for p, m in found), found


def test_it_renders_title_body_url_and_icon_in_the_sandbox() -> None:
    template = parse_template("t1", {"webpush": PUSH})
    context = sample_context() | {"given_name": "지민", "link": lambda url: url + "?utm_medium=push"}
    rendered = compiled(template).render(Channel.WEBPUSH, context)
    assert isinstance(rendered, Rendered)
    assert (rendered.subject, rendered.text) == ("지민님, 봄 세일", "오늘부터 20% 할인")
    assert dict(rendered.parameters) == {
        "url": "https://shop.example/spring?utm_medium=push",
        "icon": "https://shop.example/icon.png",
    }


def test_advertising_gets_the_mark_on_the_title_and_the_sender_and_opt_out_in_the_body() -> None:
    template = parse_template("t1", {"webpush": {"title": "(광고) 봄 세일", "body": "20% 할인  "}})
    rendered = compiled(template).render(Channel.WEBPUSH, sample_context(), FORM)
    assert isinstance(rendered, Rendered)
    assert rendered.subject == "(광고) 봄 세일"  # one mark, never two
    assert rendered.text == f"20% 할인\n홍길동상회 02-1234-5678\n{PUSH_OPT_OUT}"
    assert dict(rendered.parameters) == {}


def test_a_recipient_whose_values_break_the_push_fails_with_a_code() -> None:
    template = parse_template("t1", {"webpush": {"title": "{{ given_name }}", "body": "{{ region }}"}})
    renderer = compiled(template)
    long = renderer.render(Channel.WEBPUSH, sample_context() | {"region": "가" * 1100})
    assert isinstance(long, RenderFailed) and long.reason is MessageReason.MESSAGE_TOO_LONG
    broken = renderer.render(Channel.WEBPUSH, {"given_name": "x"})  # region missing: StrictUndefined
    assert isinstance(broken, RenderFailed) and broken.reason is MessageReason.RENDER_FAILED
    parts = {"webpush": {"title": "t", "body": "b", "url": "https://shop.example/u/{{ member_id }}"}}
    bad_url = compiled(parse_template("t2", parts)).render(Channel.WEBPUSH, {"member_id": "1 2"})
    assert isinstance(bad_url, RenderFailed) and bad_url.detail.startswith("url:")


def test_the_payload_of_a_notification_is_what_the_worker_reads() -> None:
    shown = webpush.Notification("t", "b", "https://x.example/", None, "d" * 32)
    assert json.loads(shown.payload()) == {
        "title": "t", "body": "b", "url": "https://x.example/", "tag": "d" * 32,
        "actions": [{"action": "unsubscribe", "title": "수신거부"}],
    }  # fmt: skip
    assert webpush.topic("d" * 32) == "d" * 32
    assert len(webpush.topic("a delivery id with spaces")) == 32

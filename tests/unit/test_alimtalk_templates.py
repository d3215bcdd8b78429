"""AlimTalk templates: a message template's `alimtalk` part checked against the registry mirrored in
Firestore `alimtalk_templates` (approved only, every `#{variable}` given a value from profile fields,
1,300 characters), each problem at its field path; rendered per recipient; campaigns over AlimTalk
(informational only) through validate_config's path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.activation.publications import InvalidConfig
from shared.consent.vocabulary import Channel
from shared.messaging import MessageReason
from shared.messaging.alimtalk import ALIMTALK_TEMPLATES, RegistryTemplate, fill, parse_registry
from shared.messaging.campaigns import MessagingPolicy, validate_campaign
from shared.messaging.templates import Rendered, RenderFailed, compiled, parse_template
from shared.services.messaging_config import campaign_status, template_status
from tests.fakes import FakeDocumentStore

NOW = datetime(2026, 6, 3, 3, 0, tzinfo=UTC)
GRADE = "#{고객명}님, 회원 등급이 #{등급}(으)로 변경되었습니다. 회원번호 #{member_id}"
REGISTRY: dict[str, Any] = {
    "GRADE_NOTICE": {"status": "APR", "content": GRADE, "name": "등급 변경 안내"},
    "UNDER_REVIEW": {"status": "REQ", "content": "#{고객명}님 안내"},
    "REFUSED": {"status": "TSC04", "content": "#{고객명}님 안내"},
    "SHORT": {"status": "TSC03", "content": "#{given_name}님, 주문이 접수되었습니다."},
    "WIDE": {"status": "APR", "content": "가" * 1290 + "#{고객명}"},
    "HUGE": {"status": "APR", "content": "가" * 1301},
}
PART: dict[str, Any] = {
    "template_code": "GRADE_NOTICE",
    "parameters": {"고객명": "{{ given_name or '고객' }}", "등급": "VIP"},
}


def registry(code: str) -> Any:
    return REGISTRY.get(code)


def problems(part: Any, lookup: Any = registry) -> dict[str, str]:
    with pytest.raises(InvalidConfig) as error:
        parse_template("t1", {"alimtalk": part}, lookup)
    return {p.path: p.message for p in error.value.problems}


def test_an_approved_template_parses_with_the_variables_its_values_use() -> None:
    parsed = parse_template("t1", {"alimtalk": PART}, registry)
    assert parsed.has(Channel.ALIMTALK) and not parsed.has(Channel.SMS)
    assert parsed.variables == {"given_name", "member_id"}  # #{member_id} is the template variable of that name
    part = parsed.parts[Channel.ALIMTALK]
    assert part["template_code"] == "GRADE_NOTICE" and part["content"] == GRADE
    assert part["#{고객명}"] == "{{ given_name or '고객' }}" and part["#{등급}"] == "VIP"
    nhn_code = parse_template("t2", {"alimtalk": {"template_code": "SHORT"}}, registry)
    assert nhn_code.variables == {"given_name"}  # TSC03 is approved


def test_a_recipients_render_fills_the_approved_content() -> None:
    parsed = parse_template("t1", {"alimtalk": PART}, registry)
    rendered = compiled(parsed).render(Channel.ALIMTALK, {"given_name": "민지", "member_id": "M7"})
    assert isinstance(rendered, Rendered)
    assert rendered.template_code == "GRADE_NOTICE"
    assert dict(rendered.parameters) == {"고객명": "민지", "등급": "VIP", "member_id": "M7"}
    assert rendered.text == "민지님, 회원 등급이 VIP(으)로 변경되었습니다. 회원번호 M7"
    nobody = compiled(parsed).render(Channel.ALIMTALK, {"given_name": None, "member_id": None})
    assert (
        isinstance(nobody, Rendered) and nobody.parameters["고객명"] == "고객" and nobody.parameters["member_id"] == ""
    )


def test_a_value_that_makes_it_too_long_fails_that_recipient_only() -> None:
    parsed = parse_template("t1", {"alimtalk": {"template_code": "WIDE", "parameters": {"고객명": "{{ full_name }}"}}},
                            registry)  # fmt: skip
    assert isinstance(compiled(parsed).render(Channel.ALIMTALK, {"full_name": "홍길동"}), Rendered)
    failed = compiled(parsed).render(Channel.ALIMTALK, {"full_name": "가" * 20})
    assert isinstance(failed, RenderFailed) and failed.reason is MessageReason.MESSAGE_TOO_LONG


@pytest.mark.parametrize(
    ("part", "path", "message"),
    [
        ({"template_code": "NOPE"}, "alimtalk.template_code", "no AlimTalk template 'NOPE': alimtalk_templates/NOPE"),
        ({"template_code": "UNDER_REVIEW", "parameters": {"고객명": "x"}}, "alimtalk.template_code",
         "AlimTalk template 'UNDER_REVIEW' is REQ (requested or under review): only approved (APR)"),
        ({"template_code": "REFUSED", "parameters": {"고객명": "x"}}, "alimtalk.template_code", "is REJ (rejected)"),
        ({"template_code": "HUGE"}, "alimtalk.template_code", "content is 1,301 characters; Kakao takes at most 1,300"),
        ({"template_code": "bad code!"}, "alimtalk.template_code", "is not an AlimTalk template code"),
        ({"template_code": 5}, "alimtalk.template_code", "expected the approved template's code, got 5"),
        ({"template_code": "GRADE_NOTICE", "parameters": {"고객명": "x"}}, "alimtalk.parameters",
         "#{등급} has no value: set parameters.등급"),
        ({**PART, "parameters": {**PART["parameters"], "쿠폰": "x"}}, "alimtalk.parameters.쿠폰",
         "template 'GRADE_NOTICE' has no #{쿠폰}; its variables: #{고객명}, #{등급}, #{member_id}"),
        ({**PART, "parameters": {**PART["parameters"], "등급": "{{ grade }}"}}, "alimtalk.parameters.등급",
         "unknown variable 'grade'"),
        ({**PART, "parameters": {**PART["parameters"], "등급": "{{ given_name.__class__ }}"}},
         "alimtalk.parameters.등급", "access to '__class__' is not allowed"),
        ({**PART, "parameters": "VIP"}, "alimtalk.parameters", "expected an object of #{name}: text"),
        ({**PART, "buttons": []}, "alimtalk.buttons", "unknown field; expected template_code, parameters"),
        ({"template_code": "WIDE", "parameters": {"고객명": "{{ full_name * 10 }}"}}, "alimtalk",
         "characters with sample values; AlimTalk takes at most 1,300"),
        ("GRADE_NOTICE", "alimtalk", "expected an object with template_code, parameters"),
    ],
)  # fmt: skip
def test_every_problem_is_reported_at_its_field(part: Any, path: str, message: str) -> None:
    found = problems(part)
    assert path in found, found
    assert message in found[path]


def test_without_a_registry_an_alimtalk_part_cannot_be_checked() -> None:
    assert problems(PART, None) == {"alimtalk.template_code": "cannot be checked here: no AlimTalk template registry"}


def test_registry_documents() -> None:
    assert parse_registry("GRADE_NOTICE", REGISTRY["GRADE_NOTICE"]) == RegistryTemplate(
        "GRADE_NOTICE", "APR", GRADE, "등급 변경 안내"
    )
    assert parse_registry("REFUSED", REGISTRY["REFUSED"]) == RegistryTemplate("REFUSED", "REJ", "#{고객명}님 안내")
    assert "has status 'DRAFT'" in str(parse_registry("X", {"status": "DRAFT", "content": "a"}))
    assert "has no content" in str(parse_registry("X", {"status": "APR", "content": " "}))
    assert parse_registry("GRADE_NOTICE", REGISTRY["GRADE_NOTICE"]).variables == (  # type: ignore[union-attr]
        "고객명", "등급", "member_id",
    )  # fmt: skip
    assert fill("#{a}-#{b}-#{a}", {"a": "1"}) == "1-#{b}-1"


# -- campaigns and validate_config ----------------------------------------------------------------------


def world() -> FakeDocumentStore:
    documents = FakeDocumentStore()
    for code, doc in REGISTRY.items():
        documents.set(ALIMTALK_TEMPLATES, code, doc)
    documents.set("segments", "vip", {"name": "VIP"})
    documents.set("message_templates", "grade", {"alimtalk": PART, "sms": {"text": "{{ given_name }}님, 등급 변경"}})
    return documents


def campaign(**fields: Any) -> dict[str, Any]:
    doc = {"segment_id": "vip", "kind": "informational", "channels": ["alimtalk", "sms"], "template_id": "grade"}
    return doc | fields


def status(documents: FakeDocumentStore, doc: dict[str, Any], available: set[str] | None = None) -> dict[str, Any]:
    return campaign_status("c1", doc, documents, available or {"alimtalk", "sms", "email"}, NOW)


def test_an_informational_campaign_over_alimtalk_with_an_sms_fallback_is_ok() -> None:
    verdict = status(world(), campaign())
    assert verdict["state"] == "ok", verdict
    assert "informational campaign to segment vip by alimtalk then sms, template grade" in verdict["message"]
    parsed, template = validate_campaign(
        "c1", campaign(), segment_exists=lambda s: True, template_doc=lambda t: world().get("message_templates", t),
        policy=MessagingPolicy(), available_channels={"alimtalk", "sms"},
        alimtalk_templates=lambda code: REGISTRY.get(code),
    )  # fmt: skip
    assert parsed.channels == (Channel.ALIMTALK, Channel.SMS) and template.has(Channel.ALIMTALK)


def test_advertising_over_alimtalk_is_refused_with_its_field() -> None:
    verdict = status(world(), campaign(kind="advertising"))
    assert verdict["state"] == "error"
    assert verdict["error"].startswith("channels[0]: alimtalk cannot carry advertising messages")


def test_a_campaign_whose_template_is_no_longer_approved_is_refused() -> None:
    documents = world()
    documents.set(ALIMTALK_TEMPLATES, "GRADE_NOTICE", {"status": "REQ", "content": GRADE})
    verdict = status(documents, campaign())
    assert verdict["state"] == "error"
    assert verdict["error"].startswith('template_id: template "grade" is not usable: alimtalk.template_code: ')
    assert "is REQ" in verdict["error"]


def test_alimtalk_needs_a_sender_and_a_part() -> None:
    documents = world()
    no_sender = status(documents, campaign(), {"sms"})
    assert no_sender["error"].startswith("channels[0]: alimtalk has no sender on this deployment; available: sms")
    documents.set("message_templates", "sms-only", {"sms": {"text": "안내"}})
    no_part = status(documents, campaign(template_id="sms-only"))
    assert 'template "sms-only" has no alimtalk part, which channels[0] needs' in no_part["error"]


def test_a_templates_status_names_its_alimtalk_problem_and_channels() -> None:
    documents = world()
    ok = template_status("grade", documents.get("message_templates", "grade"), NOW, documents)
    assert ok["state"] == "ok" and ok["message"].startswith("OK: sms, alimtalk; variables given_name, member_id")
    bad = template_status("grade", {"alimtalk": {"template_code": "UNDER_REVIEW"}}, NOW, documents)
    assert bad["state"] == "error" and bad["error"].startswith("alimtalk.template_code: AlimTalk template")

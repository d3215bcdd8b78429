"""Kakao AlimTalk without a provider: the template registry, result codes and the results webhook.

**The registry.** Kakao sends an AlimTalk only with a template it approved, and checks each message
against it: the content is fixed, only its `#{name}` variables are filled per recipient. The
approved templates are mirrored in Firestore `alimtalk_templates/{templateCode}` so a template
can be checked at save, without calling the provider: `status` (APR approved, REQ requested or
under review, REJ rejected; NHN's TSC01-TSC04 map onto them), `content` (at most 1,300 characters,
Kakao's limit, also after the variables are filled) and optionally `name`. A `message_templates`
document's `alimtalk` part names the code and says where each variable's value comes from
(shared/messaging/templates.py).

**Results.** NHN Cloud answers a send with a request id per call and a sequence number per
recipient; whether the message arrived comes later, as a delivery result code: 1000 delivered,
3018 (not an active KakaoTalk user lately, or a SIM that does not match), 3019 (not a KakaoTalk
user) and 3020 (the person blocked AlimTalk) are failures a text message can still reach, so they
fall back to the next channel of the campaign's chain; 3005 means sent but not confirmed (it may
still arrive within 3 days): no event yet. Results reach us by the webhook (MESSAGE_RESULT_UPDATE,
`parse_hook`) and by looking them up (shared/adapters/nhn_alimtalk.py), both as AlimTalkResult.

../shared/notes/activation.md §2 has the provider's facts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.services.delivery_events import EventKind, ReportError

ALIMTALK_TEMPLATES: Final = "alimtalk_templates"
MAX_CONTENT: Final = 1300  # characters of a template's body, filled (error -2019 / -3048 otherwise)
MAX_CODE: Final = 20  # characters of a template code
APPROVED: Final = "APR"
STATUSES: Final[Mapping[str, str]] = {"APR": "approved", "REQ": "requested or under review", "REJ": "rejected"}
NHN_STATUSES: Final[Mapping[str, str]] = {"TSC01": "REQ", "TSC02": "REQ", "TSC03": "APR", "TSC04": "REJ"}
"""NHN's template status codes (its template API and TEMPLATE_STATUS_UPDATE hooks) -> the registry's."""
VARIABLE: Final = re.compile(r"#\{([^{}#]{1,50})\}")

DELIVERED: Final = "1000"
UNCONFIRMED: Final = "3005"  # sent, not confirmed: may still arrive within 3 days
FALLBACK_CODES: Final = frozenset({"3018", "3019", "3020"})
"""Inactive or SIM mismatch, not a KakaoTalk user, AlimTalk blocked: the next channel is tried."""
RESULT_EVENT: Final = "MESSAGE_RESULT_UPDATE"
_CODE: Final = re.compile(r"[A-Za-z0-9_-]{1,20}")
_RESULT_CODE: Final = re.compile(r"-?[0-9A-Z]{1,10}")


# -- the registry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryTemplate:
    """An AlimTalk template as Kakao holds it: its code, status and content with `#{name}` variables."""

    code: str
    status: str
    content: str
    name: str = ""

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    @property
    def variables(self) -> tuple[str, ...]:
        """The `#{name}` variables of the content, each once, in order of appearance."""
        return tuple(dict.fromkeys(VARIABLE.findall(self.content)))


def registry_problem(code: str, doc: Any) -> str | None:
    """Why an `alimtalk_templates` document cannot be used as a template, or None."""
    if not isinstance(doc, Mapping):
        return f"{ALIMTALK_TEMPLATES}/{code} is not an object"
    status, content = doc.get("status"), doc.get("content")
    if status not in STATUSES and status not in NHN_STATUSES:
        return f"{ALIMTALK_TEMPLATES}/{code} has status {status!r}; expected one of {', '.join(STATUSES)}"
    if not isinstance(content, str) or not content.strip():
        return f"{ALIMTALK_TEMPLATES}/{code} has no content"
    if len(content) > MAX_CONTENT:
        return (
            f"{ALIMTALK_TEMPLATES}/{code} content is {len(content):,} characters; Kakao takes at most {MAX_CONTENT:,}"
        )
    return None


def parse_registry(code: str, doc: Any) -> RegistryTemplate | str:
    """The registry document as a template, or the problem that makes it unusable."""
    if not _CODE.fullmatch(code):
        return f"{code[:40]!r} is not an AlimTalk template code (letters, digits, - and _, up to {MAX_CODE})"
    if doc is None:
        return f"no AlimTalk template {code!r}: {ALIMTALK_TEMPLATES}/{code} does not exist"
    problem = registry_problem(code, doc)
    if problem is not None:
        return problem
    status = NHN_STATUSES.get(doc["status"], doc["status"])
    name = doc.get("name")
    return RegistryTemplate(code, status, doc["content"], name if isinstance(name, str) else "")


def fill(content: str, values: Mapping[str, str]) -> str:
    """The content with each `#{name}` replaced by its value (as Kakao renders it); a name without a
    value stays as written."""
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), content)


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlimTalkResult:
    """One recipient's result as NHN reports it (webhook hook, list or single query)."""

    delivery_id: str | None  # recipientGroupingKey: ours
    request_id: str
    recipient_seq: int
    result_code: str | None  # the delivery result code (1000, 3019, ...); None while pending
    message_status: str | None = None  # COMPLETED, FAILED, CANCEL (queries); None in a webhook
    hook_id: str | None = None

    @property
    def provider_id(self) -> str:
        """How our ledger names the message at NHN: `<requestId>/<recipientSeq>`."""
        return provider_id(self.request_id, self.recipient_seq)

    @property
    def event(self) -> EventKind | None:
        """The ledger event this result is: delivered, failed (with its code), canceled, or None
        while the outcome is pending (no code yet, or 3005 unconfirmed)."""
        if self.message_status == "CANCEL":
            return "canceled"
        code = self.result_code
        if code == DELIVERED:
            return "delivered"
        if not code or code == UNCONFIRMED:
            return "failed" if self.message_status == "FAILED" and code else None
        return "failed"

    @property
    def falls_back(self) -> bool:
        return self.result_code in FALLBACK_CODES


def provider_id(request_id: str, recipient_seq: int) -> str:
    return f"{request_id}/{recipient_seq}"


def parse_hook(body: Any) -> tuple[str, tuple[AlimTalkResult, ...]]:
    """A webhook body: its `hooksId` and, for MESSAGE_RESULT_UPDATE, each hook as a result of an
    AlimTalk (FriendTalk and brand message hooks are left out); other events give no results.
    ReportError names the field at fault."""
    if not isinstance(body, Mapping):
        raise ReportError("body", "expected a JSON object")
    hooks_id = body.get("hooksId")
    if not isinstance(hooks_id, str) or not 0 < len(hooks_id) <= 200:
        raise ReportError("hooksId", "expected the webhook's id")
    if body.get("event") != RESULT_EVENT:
        return hooks_id, ()
    hooks = body.get("hooks")
    if not isinstance(hooks, list):
        raise ReportError("hooks", "expected a list")
    results: list[AlimTalkResult] = []
    for index, hook in enumerate(hooks):
        path = f"hooks[{index}]"
        if not isinstance(hook, Mapping):
            raise ReportError(path, "expected an object")
        kind = hook.get("kakaoMessageType")
        if kind is not None and not str(kind).startswith("ALIMTALK"):
            continue
        results.append(_hook_result(hook, path))
    return hooks_id, tuple(results)


def _hook_result(hook: Mapping[str, Any], path: str) -> AlimTalkResult:
    request_id = hook.get("requestId")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 100:
        raise ReportError(f"{path}.requestId", "expected the request id")
    seq = hook.get("recipientSeq")
    if isinstance(seq, str) and seq.isdigit():
        seq = int(seq)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ReportError(f"{path}.recipientSeq", f"{str(seq)[:20]!r} is not a sequence number")
    code = hook.get("resultCode")
    if code is not None and (not isinstance(code, str | int) or not _RESULT_CODE.fullmatch(str(code))):
        raise ReportError(f"{path}.resultCode", f"{str(code)[:20]!r} is not a result code")
    key = hook.get("recipientGroupingKey")
    hook_id = hook.get("hookId")
    return AlimTalkResult(
        delivery_id=key if isinstance(key, str) and key else None,
        request_id=request_id,
        recipient_seq=seq,
        result_code=str(code) if code not in (None, "") else None,
        hook_id=hook_id if isinstance(hook_id, str) else None,
    )

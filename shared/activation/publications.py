"""Destination and publication documents: the model behind Firestore `destinations/{id}` and
`publications/{id}`, and their validation.

Marketers write these by hand, so every problem is reported with the field path that holds it
(`keys[1]: unsupported key "PHONE_NUMBER"; ...`), as segment validation does (shared/tam/rules.py,
whose Problem and message helpers are reused). A destination names the Secret Manager secret that
holds the platform's access token, never the token: a document is read by anyone with console
access, logged on every edit and copied into the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.activation.customer_file import KEYS
from shared.cron import MIN_INTERVAL_MINUTES, check_schedule
from shared.ports.audiences import CUSTOMER_FILE_SOURCES
from shared.tam.rules import MAX_ERRORS, Problem, Schedule, describe, field_path
from shared.tam.templates import DEFAULT_TIMEZONE

FACEBOOK: Final = "facebook_custom_audience"
FILE_EXPORT: Final = "file_export"
DESTINATION_TYPES: Final = (FACEBOOK, FILE_EXPORT)
MODES: Final = ("mirror", "add_only", "replace")
CREATE: Final = "create"
DEFAULT_API_VERSION: Final = "v26.0"  # the SDK's default (../shared/notes/activation.md §1)
DEFAULT_KEYS: Final = ("EMAIL", "PHONE")

DESTINATION_FIELDS: Final = (
    "id",
    "name",
    "type",
    "ad_account_id",
    "access_token_secret",
    "api_version",
    "default_keys",
    "prefix",
)
PUBLICATION_FIELDS: Final = (
    "id",
    "name",
    "segment_id",
    "destination_id",
    "audience_id",
    "customer_file_source",
    "mode",
    "keys",
    "schedule",
    "enabled",
    "dry_run",
)
OUTPUT_FIELDS: Final = ("status", "computed_at", "last_success", "audience_size")
"""Fields the publishing job and validate_config write back; never the marketer's."""

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_GRAPH_ID: Final = re.compile(r"[0-9]{1,32}")
_AD_ACCOUNT: Final = re.compile(r"(?:act_)?[0-9]{1,32}")
_API_VERSION: Final = re.compile(r"v[0-9]{1,3}\.[0-9]{1,2}")
# A folder in the export bucket: up to 8 '/'-separated names, none starting with a dot ('..' included).
_PREFIX: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}){0,7}")
# A Secret Manager secret: its id (letters, digits, - and _, up to 255) or its resource name,
# optionally with a version.
_SECRET: Final = re.compile(
    r"(?:projects/[a-z0-9-]{1,63}/secrets/)?[A-Za-z0-9_-]{1,255}(?:/versions/(?:[0-9]{1,10}|latest))?"
)
_TOKEN_PREFIXES: Final = ("EAA",)  # Meta's user and system-user access tokens start so
_TOKEN_LENGTH: Final = 100  # Meta tokens run to about 200 letters and digits; secret ids rarely reach 100


class InvalidConfig(ValueError):
    """A destination or publication document that cannot be used; `problems` name each field path."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def path(self) -> str:
        """The field path of the first problem: where status.error points the marketer."""
        return self.problems[0].path


@dataclass(frozen=True)
class Destination:
    """Where audiences go: an ad account (Facebook) or a hashed file export."""

    id: str
    type: str
    name: str = ""
    ad_account_id: str | None = None  # "act_<digits>" for Facebook
    access_token_secret: str | None = None  # a Secret Manager name; the token is read at run time
    api_version: str = DEFAULT_API_VERSION
    default_keys: tuple[str, ...] = DEFAULT_KEYS
    prefix: str = ""  # file export: the folder of the bucket its runs are written under


@dataclass(frozen=True)
class Publication:
    """One segment kept in one audience of one destination."""

    id: str
    segment_id: str
    destination_id: str
    audience_id: str  # the platform's id, or CREATE
    mode: str
    keys: tuple[str, ...] | None  # None: the destination's default_keys
    enabled: bool = True
    name: str = ""
    customer_file_source: str | None = None  # required when the audience is to be created
    schedule: Schedule | None = None
    dry_run: bool = False  # write the request bodies to the outbox, send nothing

    @property
    def creates_audience(self) -> bool:
        return self.audience_id == CREATE

    def keys_for(self, destination: Destination) -> tuple[str, ...]:
        """The customer-file schema sent: the publication's keys, else the destination's defaults."""
        return self.keys if self.keys is not None else destination.default_keys


def parse_destination(destination_id: str, doc: Any) -> Destination:
    """Validate a destination document; raise InvalidConfig listing every problem, field path first."""
    parser = _Parser(DESTINATION_FIELDS)
    if not parser.document(destination_id, doc):
        raise parser.error()
    kind = parser.choice(doc, "type", DESTINATION_TYPES, required=True)
    name = parser.text(doc, "name") or ""
    facebook = kind == FACEBOOK
    account = parser.matching(doc, "ad_account_id", _AD_ACCOUNT, "an ad account id such as act_1234567890", facebook)
    secret = parser.secret(doc, facebook)
    version = parser.matching(doc, "api_version", _API_VERSION, "a Graph API version such as v26.0", False)
    default_keys = parser.keys(doc, "default_keys")
    prefix = parser.matching(doc, "prefix", _PREFIX, "a folder such as exports/naver", False)
    if prefix is not None and kind == FACEBOOK:
        parser.fail("prefix", "applies only to file_export destinations")
    if parser.problems or kind is None:
        raise parser.error()
    return Destination(
        id=destination_id,
        type=kind,
        name=name,
        ad_account_id=f"act_{account.removeprefix('act_')}" if account else None,
        access_token_secret=secret,
        api_version=version or DEFAULT_API_VERSION,
        default_keys=default_keys or DEFAULT_KEYS,
        prefix=prefix or "",
    )


def parse_publication(
    publication_id: str,
    doc: Any,
    *,
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    now: datetime | None = None,
) -> Publication:
    """Validate a publication document; raise InvalidConfig listing every problem, field path first.

    The schedule gets the check segment schedules get (shared/cron.py), so sync_schedules can make
    it a Cloud Scheduler job without refusing it later.
    """
    parser = _Parser(PUBLICATION_FIELDS)
    if not parser.document(publication_id, doc):
        raise parser.error()
    name = parser.text(doc, "name") or ""
    segment_id = parser.identifier(doc, "segment_id")
    destination_id = parser.identifier(doc, "destination_id")
    audience_id = parser.audience(doc)
    source = parser.choice(doc, "customer_file_source", sorted(CUSTOMER_FILE_SOURCES), required=False)
    if audience_id == CREATE:
        if source is None and "customer_file_source" not in doc:
            parser.fail(
                "customer_file_source",
                f"is required to create an audience; one of {_listed(sorted(CUSTOMER_FILE_SOURCES))}",
            )
        if not name:
            parser.fail("name", "is required to create an audience: it becomes the audience's name")
    elif "customer_file_source" in doc and audience_id is not None:
        parser.fail("customer_file_source", 'applies only when audience_id is "create"')
    mode = parser.choice(doc, "mode", MODES, required=False) or "mirror"
    keys = parser.keys(doc, "keys")
    schedule = parser.schedule(doc, min_interval_minutes, now)
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        parser.fail("enabled", f"expected true or false, got {describe(enabled)}")
    dry_run = doc.get("dry_run", False)
    if not isinstance(dry_run, bool):
        parser.fail("dry_run", f"expected true or false, got {describe(dry_run)}")
    if parser.problems or segment_id is None or destination_id is None or audience_id is None:
        raise parser.error()
    return Publication(
        id=publication_id,
        segment_id=segment_id,
        destination_id=destination_id,
        audience_id=audience_id,
        mode=mode,
        keys=keys,
        enabled=bool(enabled),
        name=name,
        customer_file_source=source,
        schedule=schedule,
        dry_run=bool(dry_run),
    )


def check_pair(publication: Publication, destination: Destination) -> list[Problem]:
    """What makes a valid publication unusable with its destination (paths on the publication)."""
    problems: list[Problem] = []
    if publication.destination_id != destination.id:
        problems.append(
            Problem("destination_id", f"names {describe(publication.destination_id)}, not {describe(destination.id)}")
        )
    if destination.type == FILE_EXPORT and publication.audience_id != CREATE:
        problems.append(Problem("audience_id", 'a file export has no audience on a platform; use "create"'))
    if destination.type == FILE_EXPORT and publication.mode == "replace":
        problems.append(Problem("mode", "a file export writes each run's changes; replace is for platform audiences"))
    return problems


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values)


class _Parser:
    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = fields
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def error(self) -> InvalidConfig:
        problems = self.problems or [Problem("", "invalid document")]
        if len(problems) > MAX_ERRORS:
            rest = len(problems) - MAX_ERRORS
            problems = [*problems[:MAX_ERRORS], Problem("", f"… and {rest} more problems")]
        return InvalidConfig(problems)

    def document(self, doc_id: str, doc: Any) -> bool:
        """Checks the id and the field names; False when the document is not a map at all."""
        if not isinstance(doc_id, str) or not _ID.fullmatch(doc_id):
            self.fail("id", f"{describe(doc_id)} is not a valid id (letters, digits, - and _, up to 63)")
        if not isinstance(doc, Mapping):
            self.fail("", f"expected an object, got {describe(doc)}")
            return False
        for key in doc:
            if key not in self.fields and key not in OUTPUT_FIELDS:
                self.fail(field_path(key), f"unknown field; expected one of {_listed(self.fields)}")
        if "id" in doc and doc["id"] != doc_id:
            self.fail("id", f"{describe(doc['id'])} differs from the document id {describe(doc_id)}")
        return True

    def text(self, doc: Mapping[str, Any], key: str) -> str | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > 200 or not value.isprintable():
            self.fail(key, f"expected a printable text of at most 200 characters, got {describe(value)}")
            return None
        return value

    def identifier(self, doc: Mapping[str, Any], key: str) -> str | None:
        value = doc.get(key)
        if value is None:
            self.fail(key, "is required")
        elif not isinstance(value, str) or not _ID.fullmatch(value):
            self.fail(key, f"{describe(value)} is not a document id (letters, digits, - and _, up to 63)")
        else:
            return value
        return None

    def choice(self, doc: Mapping[str, Any], key: str, allowed: Sequence[str], required: bool) -> str | None:
        value = doc.get(key)
        if value is None:
            if required:
                self.fail(key, f"is required; one of {_listed(allowed)}")
            return None
        if value not in allowed:
            self.fail(key, f"unknown value {describe(value)}; one of {_listed(allowed)}")
            return None
        return str(value)

    def matching(
        self, doc: Mapping[str, Any], key: str, pattern: re.Pattern[str], shape: str, required: bool
    ) -> str | None:
        value = doc.get(key)
        if value is None:
            if required:
                self.fail(key, f"is required: {shape}")
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.fail(key, f"expected {shape}, got {describe(value)}")
            return None
        return value

    def secret(self, doc: Mapping[str, Any], required: bool) -> str | None:
        key = "access_token_secret"
        value = doc.get(key)
        if value is None:
            if required:
                self.fail(key, "is required: the Secret Manager secret holding the access token")
            return None
        if isinstance(value, str) and _looks_like_token(value):
            # Never echo it: the message is written back on the document and logged.
            self.fail(key, "looks like an access token; store the token in Secret Manager and give the secret's name")
            return None
        if not isinstance(value, str) or not _SECRET.fullmatch(value):
            self.fail(key, f"expected a Secret Manager secret name such as meta-token, got {describe(value)}")
            return None
        return value

    def audience(self, doc: Mapping[str, Any]) -> str | None:
        value = doc.get("audience_id")
        if value is None:
            self.fail("audience_id", 'is required: the platform\'s audience id, or "create"')
        elif isinstance(value, str) and (value == CREATE or _GRAPH_ID.fullmatch(value)):
            return value
        else:
            self.fail(
                "audience_id", f'expected the platform\'s audience id (digits) or "create", got {describe(value)}'
            )
        return None

    def keys(self, doc: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.fail(key, f"expected a non-empty list of keys such as [EMAIL, PHONE], got {describe(value)}")
            return None
        found: list[str] = []
        for index, item in enumerate(value):
            if item not in KEYS:
                self.fail(f"{key}[{index}]", f"unsupported key {describe(item)}; one of {_listed(KEYS)}")
            elif item in found:
                self.fail(f"{key}[{index}]", f"{item} is listed twice")
            else:
                found.append(item)
        return tuple(found) if len(found) == len(value) else None

    def schedule(self, doc: Mapping[str, Any], min_interval_minutes: int, now: datetime | None) -> Schedule | None:
        if doc.get("schedule") is None:
            return None  # published after each build of the segment only
        checked = check_schedule(doc["schedule"], DEFAULT_TIMEZONE, min_interval_minutes, now)
        for path, message in checked.problems:
            self.fail(path, message)
        if checked.cron is None or checked.timezone is None:
            return None
        return Schedule(checked.cron, checked.timezone)


def _looks_like_token(value: str) -> bool:
    text = value.strip()
    return text.startswith(_TOKEN_PREFIXES) or (len(text) >= _TOKEN_LENGTH and text.isalnum())

"""Campaign and messaging-policy documents: Firestore `campaigns/{id}` and `messaging/policy`.

Marketers write these by hand, so every problem is reported with the field path that holds it, as
segments and publications are (shared/tam/rules.py's Problem, shared/activation/publications.py's
InvalidConfig, so validate_config treats all of them alike). `parse_campaign` checks a campaign's
own fields; `check_campaign` what needs other documents and the deployment: the segment and the
template exist, the template has a part for every channel of the chain, each channel has a sender,
and an advertising campaign has what the Network Act's form needs. The lookups are passed in, so
this module reads nothing itself.

A campaign uses one template (`template_id`) with a part per channel: the same message, one place
to edit it, one kind for all its channels.

A campaign runs on a schedule, once (send_at), on request, or on a `trigger`: each member entering
its segment, or each person whose collected event names it, after a delay and until an expiry
(shared/services/triggers.py plans them on the messaging tick).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

from shared.activation.publications import InvalidConfig
from shared.consent.vocabulary import Channel, Kind, Purpose
from shared.contacts import normalize_email
from shared.cron import MIN_INTERVAL_MINUTES, check_schedule, time_zone_error
from shared.messaging import MessageReason
from shared.messaging.adform import DEFAULT_OPT_OUT_LABEL, AdForm
from shared.messaging.templates import MessageTemplate, RegistryLookup, RenderFailed, parse_template, sample_render
from shared.tam.rules import MAX_ERRORS, Problem, Schedule, describe, field_path
from shared.tam.templates import DEFAULT_TIMEZONE

CAMPAIGNS: Final = "campaigns"
TEMPLATES: Final = "message_templates"
POLICY: Final = ("messaging", "policy")  # collection, document

CAMPAIGN_FIELDS: Final = (
    "id",
    "name",
    "description",
    "segment_id",
    "kind",
    "channels",
    "template_id",
    "schedule",
    "send_at",
    "send_window",
    "enabled",
    "dry_run",
    "trigger",
)
OUTPUT_FIELDS: Final = ("status", "last_run", "last_success")
"""Fields the campaign jobs and validate_config write back; never the marketer's."""
POLICY_FIELDS: Final = ("frequency_caps", "quiet_hours", "throttles", "sender", "opt_out")
KINDS: Final = (Kind.INFORMATIONAL.value, Kind.ADVERTISING.value)
MAX_CHANNELS: Final = len(Channel)


@dataclass(frozen=True)
class ChannelRule:
    """What a channel may carry and which provider sends it (its throttle's key)."""

    kinds: frozenset[Kind]
    provider: str
    note: str = ""


BOTH: Final = frozenset({Kind.INFORMATIONAL, Kind.ADVERTISING})
CHANNEL_RULES: Final[Mapping[Channel, ChannelRule]] = MappingProxyType(
    {
        Channel.EMAIL: ChannelRule(BOTH, "smtp"),
        Channel.SMS: ChannelRule(BOTH, "twilio"),
        # Kakao: AlimTalk carries informational messages only (../shared/notes/activation.md §2)
        Channel.ALIMTALK: ChannelRule(frozenset({Kind.INFORMATIONAL}), "nhn_alimtalk", "Kakao allows no advertising"),
        Channel.WEBPUSH: ChannelRule(BOTH, "webpush"),
    }
)
PROVIDERS: Final = ("smtp", "twilio", "nhn_sms", "nhn_alimtalk", "webpush")
DEFAULT_THROTTLES: Final[Mapping[str, float]] = MappingProxyType(
    {"smtp": 10.0, "twilio": 10.0, "nhn_sms": 10.0, "nhn_alimtalk": 10.0, "webpush": 50.0}
)
MAX_THROTTLE: Final = 10_000.0
MAX_CAP: Final = 100
MAX_CAP_DAYS: Final = 90
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_CLOCK: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_FREE_NUMBER: Final = re.compile(r"080-?[0-9]{3,4}-?[0-9]{4}")
_SETTLE: Final = 8  # moves between quiet hours and a send window before concluding they never meet
TRIGGER_FIELDS: Final = ("when", "delay_minutes", "expire_minutes", "event_name", "event_type")
MAX_TRIGGER_MINUTES: Final = 7 * 24 * 60  # a week: the entries a tick scans stay a few days' partitions
MIN_EXPIRE_MINUTES: Final = 10  # two ticks of the five-minute messaging job: one missed tick loses nobody
DEFAULT_EXPIRE_MINUTES: Final = 24 * 60
EVENT_TYPES: Final = ("event", "conv")  # collect's beacon types whose name a trigger may name
KNOWN_EVENTS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"event": ("product_view", "search", "add_to_cart"), "conv": ("order", "signup", "refund")}
)
"""Names collect and our own code write; any other name is a site's custom one, which is allowed."""
_EVENT_NAME: Final = re.compile(r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,98}[^\s\x00-\x1f\x7f])?")


# -- the model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyWindow:
    """From `start` to `end` every day in a time zone; an end before the start crosses midnight."""

    start: time
    end: time
    timezone: str
    zone: ZoneInfo = field(repr=False, compare=False)

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_start(self, at: datetime) -> datetime:
        """The first start at or after `at`, in UTC."""
        return self._next(at, self.start)

    def next_end(self, at: datetime) -> datetime:
        """The first end at or after `at`, in UTC."""
        return self._next(at, self.end)

    def _next(self, at: datetime, moment: time) -> datetime:
        local = at.astimezone(self.zone)
        candidate = datetime.combine(local.date(), moment, self.zone)
        if candidate < local:
            candidate = datetime.combine(local.date() + timedelta(days=1), moment, self.zone)
        return candidate.astimezone(UTC)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


class TriggerWhen(StrEnum):
    SEGMENT_ENTRY = "segment_entry"  # a member's entry into the campaign's segment
    EVENT = "event"  # a collected event of a name


@dataclass(frozen=True)
class Trigger:
    """Send to each entry `delay` after it, while it is at most `expire` overdue; an entry is a
    member's entry into the segment or a collected event (`event_type` event or conv, by name)."""

    when: TriggerWhen
    delay: timedelta = timedelta(0)
    expire: timedelta = timedelta(minutes=DEFAULT_EXPIRE_MINUTES)
    event_name: str | None = None
    event_type: str | None = None  # "event" (raw.event.event_name) or "conv" (raw.conv.conv_type)

    def __str__(self) -> str:
        entering = self.when is TriggerWhen.SEGMENT_ENTRY
        what = "entering the segment" if entering else f"{self.event_type} '{self.event_name}'"
        return f"on {what}, {_minutes(self.delay)} later, until {_minutes(self.expire)} after that"


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} minutes"


@dataclass(frozen=True)
class Campaign:
    """One message to a segment's members, through a chain of channels, once or on a schedule; or to
    each entry of a trigger."""

    id: str
    segment_id: str | None  # None only for an event trigger: whoever sends the event
    kind: Kind  # informational or advertising
    channels: tuple[Channel, ...]  # the fallback chain, first choice first
    template_id: str
    name: str = ""
    description: str = ""
    schedule: Schedule | None = None  # cron; None with send_at None: run on request only
    send_at: datetime | None = None  # a one-off send
    send_window: DailyWindow | None = None
    enabled: bool = False  # a campaign sends nothing until enabled is true
    dry_run: bool = False
    trigger: Trigger | None = None

    @property
    def audience(self) -> str:
        """Who the campaign is sent to, in words for statuses and command lines."""
        segment = f"segment {self.segment_id}"
        if self.trigger is None:
            return segment
        if self.trigger.when is TriggerWhen.SEGMENT_ENTRY:
            return f"{segment}, {self.trigger}"
        scope = f" in {segment}" if self.segment_id is not None else ""
        return f"each person{scope} {self.trigger}"

    @property
    def purpose(self) -> Purpose | None:
        """The purpose to ask the consent gate for: marketing for advertising, none for informational."""
        return Purpose.MARKETING if self.kind is Kind.ADVERTISING else None

    def template_for(self, channel: Channel) -> str:
        """The template whose `channel` part the campaign sends (one template for every channel)."""
        return self.template_id


@dataclass(frozen=True)
class FrequencyCap:
    """At most `max` advertising messages per person in `days` calendar days in Seoul (today included)."""

    max: int
    days: int


@dataclass(frozen=True)
class QuietHours:
    window: DailyWindow
    kinds: frozenset[Kind]


@dataclass(frozen=True)
class MessagingPolicy:
    """The `messaging/policy` document: caps, quiet hours, throttles, and the advertising form."""

    cap: FrequencyCap | None = FrequencyCap(2, 7)
    quiet_hours: QuietHours | None = None
    throttles: Mapping[str, float] = field(default_factory=lambda: DEFAULT_THROTTLES)
    form: AdForm | None = None  # sender and opt-out: required by advertising campaigns
    unsubscribe_mailto: str | None = None  # the mailto of List-Unsubscribe, when one is kept

    def rate(self, channel: Channel) -> float:
        """Messages per second the channel's provider may be sent."""
        return self.throttles[CHANNEL_RULES[channel].provider]


DEFAULT_POLICY: Final = MessagingPolicy()


# -- reading a document -------------------------------------------------------------------------------


class _Reader:
    """Collects every problem of one document, field path first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def error(self) -> InvalidConfig:
        found = self.problems or [Problem("", "invalid document")]
        if len(found) > MAX_ERRORS:
            found = [*found[:MAX_ERRORS], Problem("", f"… and {len(found) - MAX_ERRORS} more problems")]
        return InvalidConfig(found)

    def mapping(self, value: Any, path: str, allowed: Sequence[str], ours: Sequence[str] = ()) -> bool:
        """Whether `value` is a map; its keys outside `allowed` (and `ours`) are problems."""
        if not isinstance(value, Mapping):
            self.fail(path, f"expected an object with {', '.join(allowed)}, got {describe(value)}")
            return False
        for key in value:
            if key not in allowed and key not in ours:
                where = f"{path}.{field_path(key)}" if path else field_path(key)
                self.fail(where, f"unknown field; expected one of {', '.join(allowed)}")
        return True

    def text(self, value: Any, path: str, limit: int = 200, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.fail(path, "is required")
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
            self.fail(path, f"expected a printable text of at most {limit} characters, got {describe(value)}")
            return None
        return value

    def identifier(self, value: Any, path: str) -> str | None:
        if value is None:
            self.fail(path, "is required")
        elif not isinstance(value, str) or not _ID.fullmatch(value):
            self.fail(path, f"{describe(value)} is not a document id (letters, digits, - and _, up to 63)")
        else:
            return value
        return None

    def flag(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {describe(value)}")
            return default
        return value

    def number(self, value: Any, path: str, low: float, high: float, whole: bool) -> float | None:
        kind = int if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            noun = "a whole number" if whole else "a number"
            self.fail(path, f"expected {noun} from {low:g} to {high:g}, got {describe(value)}")
            return None
        return value

    def window(self, value: Any, path: str, default_zone: str, extra: Sequence[str] = ()) -> DailyWindow | None:
        """A daily window {start: "HH:MM", end: "HH:MM", timezone}; extra keys are the caller's."""
        if not self.mapping(value, path, ("start", "end", "timezone", *extra)):
            return None
        start = self.clock(value.get("start"), f"{path}.start")
        end = self.clock(value.get("end"), f"{path}.end")
        zone = value.get("timezone") or default_zone
        problem = time_zone_error(zone)
        if problem is not None:
            self.fail(f"{path}.timezone", problem)
            return None
        if start is None or end is None:
            return None
        if start == end:
            self.fail(f"{path}.end", "equals the start; give a window of at least a minute")
            return None
        return DailyWindow(start, end, zone, ZoneInfo(zone))

    def clock(self, value: Any, path: str) -> time | None:
        found = _CLOCK.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            self.fail(path, f'expected a time of day such as "09:00" (00:00 to 23:59), got {describe(value)}')
            return None
        return time(int(found.group(1)), int(found.group(2)))


# -- campaigns ----------------------------------------------------------------------------------------


def parse_campaign(
    campaign_id: str, doc: Any, *, min_interval_minutes: int = MIN_INTERVAL_MINUTES, now: datetime | None = None
) -> Campaign:
    """Validate a campaign document's own fields; raise InvalidConfig listing every problem."""
    read = _Reader()
    if not isinstance(campaign_id, str) or not _ID.fullmatch(campaign_id):
        read.fail("id", f"{describe(campaign_id)} is not a valid id (letters, digits, - and _, up to 63)")
    if not read.mapping(doc, "", CAMPAIGN_FIELDS, OUTPUT_FIELDS):
        raise read.error()
    if "id" in doc and doc["id"] != campaign_id:
        read.fail("id", f"{describe(doc['id'])} differs from the document id {describe(campaign_id)}")
    name = read.text(doc.get("name"), "name") or ""
    description = read.text(doc.get("description"), "description", limit=2000) or ""
    trigger_doc = doc.get("trigger")
    on_event = isinstance(trigger_doc, Mapping) and trigger_doc.get("when") == TriggerWhen.EVENT.value
    segment_id = None  # an event trigger may name none: whoever sends the event
    if doc.get("segment_id") is not None or not on_event:
        segment_id = read.identifier(doc.get("segment_id"), "segment_id")
    template_id = read.identifier(doc.get("template_id"), "template_id")
    kind = _kind(read, doc.get("kind"))
    channels = _channels(read, doc.get("channels"), kind)
    trigger = _trigger(read, trigger_doc) if trigger_doc is not None else None
    schedule = None
    if doc.get("schedule") is not None:
        checked = check_schedule(doc["schedule"], DEFAULT_TIMEZONE, min_interval_minutes, now)
        for path, message in checked.problems:
            read.fail(path, message)
        if checked.cron is not None and checked.timezone is not None:
            schedule = Schedule(checked.cron, checked.timezone)
    send_at = _instant(read, doc.get("send_at"), "send_at")
    if doc.get("schedule") is not None and send_at is not None:
        read.fail("send_at", "a campaign has a schedule (repeated runs) or a send_at (one run), not both")
    if trigger_doc is not None and (doc.get("schedule") is not None or send_at is not None):
        taken = "schedule" if doc.get("schedule") is not None else "send_at"
        read.fail("trigger", f"a campaign runs on a trigger, a schedule or a send_at, one of them; it has a {taken}")
    window = None
    if doc.get("send_window") is not None:
        zone = schedule.timezone if schedule is not None else DEFAULT_TIMEZONE
        window = read.window(doc["send_window"], "send_window", zone)
    enabled = read.flag(doc.get("enabled"), "enabled", False)
    dry_run = read.flag(doc.get("dry_run"), "dry_run", False)
    if read.problems or template_id is None or kind is None or channels is None:
        raise read.error()
    return Campaign(
        id=campaign_id,
        segment_id=segment_id,
        kind=kind,
        channels=channels,
        template_id=template_id,
        name=name,
        description=description,
        schedule=schedule,
        send_at=send_at,
        send_window=window,
        enabled=enabled,
        dry_run=dry_run,
        trigger=trigger,
    )


def _trigger(read: _Reader, value: Any) -> Trigger | None:
    """`{when, delay_minutes, expire_minutes}`, plus `event_name` (and `event_type`) for an event.
    `when`, not `on`: YAML 1.1 reads an unquoted `on:` key as true."""
    if not read.mapping(value, "trigger", TRIGGER_FIELDS):
        return None
    ons = ", ".join(w.value for w in TriggerWhen)
    when = value.get("when")
    if when not in [w.value for w in TriggerWhen]:
        said = "is required" if when is None else f"unknown value {describe(when)}"
        read.fail("trigger.when", f"{said}; one of {ons}")
        return None
    delay = read.number(value.get("delay_minutes", 0), "trigger.delay_minutes", 0, MAX_TRIGGER_MINUTES, whole=True)
    expire = read.number(
        value.get("expire_minutes", DEFAULT_EXPIRE_MINUTES),
        "trigger.expire_minutes",
        MIN_EXPIRE_MINUTES,
        MAX_TRIGGER_MINUTES,
        whole=True,
    )
    name = event_type = None
    if TriggerWhen(when) is TriggerWhen.EVENT:
        event_type, name = _event(read, value.get("event_type", "event"), value.get("event_name"))
    else:
        for key in ("event_name", "event_type"):
            if key in value:
                read.fail(f"trigger.{key}", "only an event trigger names an event; remove it")
    if delay is None or expire is None or (TriggerWhen(when) is TriggerWhen.EVENT and name is None):
        return None
    minutes = timedelta(minutes=1)
    return Trigger(TriggerWhen(when), int(delay) * minutes, int(expire) * minutes, name, event_type)


def _event(read: _Reader, event_type: Any, name: Any) -> tuple[str | None, str | None]:
    """The beacon type and name an event trigger waits for: a name collect could have stored."""
    if event_type not in EVENT_TYPES:
        read.fail("trigger.event_type", f"unknown value {describe(event_type)}; one of {', '.join(EVENT_TYPES)}")
        return None, None
    if name is None:
        known = ", ".join(KNOWN_EVENTS[event_type])
        read.fail("trigger.event_name", f"is required: the {event_type} name to wait for ({known}, or your own)")
        return event_type, None
    if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
        message = "expected a name of 1 to 100 characters, without line breaks or spaces around it"
        read.fail("trigger.event_name", f"{message}, got {describe(name)}")
        return event_type, None
    if event_type == "conv" and name != name.lower():
        read.fail("trigger.event_name", f"collect stores conv types in lower case: use {describe(name.lower())}")
        return event_type, None
    return event_type, name


def _kind(read: _Reader, value: Any) -> Kind | None:
    if value in KINDS:
        return Kind(value)
    read.fail(
        "kind", f"{'is required' if value is None else f'unknown value {describe(value)}'}; one of {', '.join(KINDS)}"
    )
    return None


def _channels(read: _Reader, value: Any, kind: Kind | None) -> tuple[Channel, ...] | None:
    """The fallback chain: known channels, each once, each allowed for the kind."""
    names = ", ".join(c.value for c in Channel)
    if not isinstance(value, list) or not value or len(value) > MAX_CHANNELS:
        read.fail(
            "channels",
            f"expected a list of 1 to {MAX_CHANNELS} channels in fallback order ({names}), got {describe(value)}",
        )
        return None
    chain: list[Channel] = []
    for index, item in enumerate(value):
        path = f"channels[{index}]"
        if item not in [c.value for c in Channel]:
            read.fail(path, f"unknown channel {describe(item)}; one of {names}")
        elif Channel(item) in chain:
            read.fail(path, f"{item} is listed twice")
        else:
            channel = Channel(item)
            rule = CHANNEL_RULES[channel]
            if kind is not None and kind not in rule.kinds:
                allowed = ", ".join(c.value for c, r in CHANNEL_RULES.items() if kind in r.kinds)
                read.fail(path, f"{item} cannot carry {kind.value} messages ({rule.note}); use {allowed}")
            chain.append(channel)
    return tuple(chain) if len(chain) == len(value) else None


def _instant(read: _Reader, value: Any, path: str) -> datetime | None:
    """A timestamp (Firestore gives a datetime) or an ISO 8601 text with its offset."""
    if value is None:
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        read.fail(path, f"expected a timestamp or a time such as 2026-05-01T10:00:00+09:00, got {describe(value)}")
        return None
    return moment.astimezone(UTC)


TemplateLookup = Callable[[str], Any]
"""template id -> the `message_templates/{id}` document, or None when there is none."""


def check_campaign(
    campaign: Campaign,
    *,
    segment_exists: Callable[[str], bool],
    template_doc: TemplateLookup,
    policy: MessagingPolicy,
    available_channels: Collection[str],
    alimtalk_templates: RegistryLookup | None = None,
) -> tuple[list[Problem], MessageTemplate | None]:
    """What makes a valid campaign unusable here (paths on the campaign), and its template if usable.

    `available_channels`: the channels this deployment has a sender for (an adapter and its
    credentials); a channel of the vocabulary without one is refused until it has.
    `alimtalk_templates`: the AlimTalk registry, which a template's alimtalk part is checked against.
    """
    problems: list[Problem] = []
    segment = campaign.segment_id
    if segment is not None and not segment_exists(segment):
        problems.append(Problem("segment_id", f"no segment {describe(segment)}: segments/{segment} does not exist"))
    for index, channel in enumerate(campaign.channels):
        if channel.value not in available_channels:
            have = ", ".join(sorted(available_channels)) or "none"
            problems.append(
                Problem(f"channels[{index}]", f"{channel.value} has no sender on this deployment; available: {have}")
            )
    template = _template(campaign, template_doc, problems, alimtalk_templates)
    if campaign.kind is Kind.ADVERTISING:
        problems.extend(_advertising_problems(campaign, policy, template))
    quiet = policy.quiet_hours
    if campaign.send_window is not None and quiet is not None and campaign.kind in quiet.kinds:
        probe = datetime(2026, 1, 1, tzinfo=UTC)
        if first_send_time(probe, campaign.send_window, quiet.window)[0] is MessageReason.NO_SEND_TIME:
            message = f"{campaign.send_window} lies within the quiet hours of messaging/policy ({quiet.window})"
            problems.append(Problem("send_window", message))
    return problems, template


def _template(
    campaign: Campaign, template_doc: TemplateLookup, problems: list[Problem], registry: RegistryLookup | None
) -> MessageTemplate | None:
    name = campaign.template_id
    doc = template_doc(name)
    if doc is None:
        problems.append(Problem("template_id", f"no template {describe(name)}: {TEMPLATES}/{name} does not exist"))
        return None
    try:
        template = parse_template(name, doc, registry)
    except InvalidConfig as exc:
        problems.append(Problem("template_id", f"template {describe(name)} is not usable: {exc.problems[0]}"))
        return None
    for index, channel in enumerate(campaign.channels):
        if not template.has(channel):
            message = f"template {describe(name)} has no {channel.value} part, which channels[{index}] needs"
            problems.append(Problem("template_id", message))
    return template


def _advertising_problems(
    campaign: Campaign, policy: MessagingPolicy, template: MessageTemplate | None
) -> list[Problem]:
    """The Network Act's form needs the sender, a contact and (for SMS) a free 080 number; an SMS
    or a push notification must still fit with the form added."""
    form = policy.form
    if form is None:
        return [
            Problem(
                "kind",
                "advertising needs the sender's name and contact (Network Act Art. 50(4)): "
                "set sender.name and sender.contact in messaging/policy",
            )
        ]
    problems: list[Problem] = []
    for index, channel in enumerate(campaign.channels):
        if channel is Channel.SMS and form.opt_out_number is None:
            message = "advertising by sms needs a free opt-out number: set opt_out.number (080-…) in messaging/policy"
            problems.append(Problem(f"channels[{index}]", message))
        if channel in (Channel.SMS, Channel.WEBPUSH) and template is not None and template.has(channel):
            rendered = sample_render(template, channel, form)
            if isinstance(rendered, RenderFailed):
                text = "sms text" if channel is Channel.SMS else "webpush notification"
                message = f"with the advertising form the {text} is too long ({rendered.detail} with sample values)"
                problems.append(Problem("template_id", message))
    return problems


def validate_campaign(
    campaign_id: str,
    doc: Any,
    *,
    segment_exists: Callable[[str], bool],
    template_doc: TemplateLookup,
    policy: MessagingPolicy,
    available_channels: Collection[str],
    min_interval_minutes: int = MIN_INTERVAL_MINUTES,
    now: datetime | None = None,
    alimtalk_templates: RegistryLookup | None = None,
) -> tuple[Campaign, MessageTemplate]:
    """parse_campaign then check_campaign: a usable campaign and its template, or InvalidConfig."""
    campaign = parse_campaign(campaign_id, doc, min_interval_minutes=min_interval_minutes, now=now)
    problems, template = check_campaign(
        campaign,
        segment_exists=segment_exists,
        template_doc=template_doc,
        policy=policy,
        available_channels=available_channels,
        alimtalk_templates=alimtalk_templates,
    )
    if problems or template is None:
        raise InvalidConfig(problems[:MAX_ERRORS] or [Problem("template_id", "is not usable")])
    return campaign, template


def first_send_time(
    at: datetime, window: DailyWindow | None, quiet: DailyWindow | None
) -> tuple[MessageReason | None, datetime | None]:
    """When a message due at `at` may go: (None, None) now; (quiet_hours or outside_send_window,
    the release time) later; (no_send_time, None) never, when the quiet hours cover the window."""
    moment = at
    reason: MessageReason | None = None
    for _ in range(_SETTLE):
        if quiet is not None and quiet.contains(moment):
            reason = reason or MessageReason.QUIET_HOURS
            moment = quiet.next_end(moment)
        elif window is not None and not window.contains(moment):
            reason = reason or MessageReason.OUTSIDE_SEND_WINDOW
            moment = window.next_start(moment)
        else:
            return reason, (moment if reason is not None else None)
    return MessageReason.NO_SEND_TIME, None


# -- the policy document ------------------------------------------------------------------------------


def parse_policy(doc: Any) -> MessagingPolicy:
    """Validate `messaging/policy`; a missing document (None) or field is the default.

    Defaults: at most 2 advertising messages per person in 7 calendar days in Seoul, no quiet hours
    (the night rule holds advertising 21:00-08:00 regardless), DEFAULT_THROTTLES, no sender (then
    no advertising campaign validates).
    """
    if doc is None:
        return DEFAULT_POLICY
    read = _Reader()
    if not read.mapping(doc, "", POLICY_FIELDS, ("status",)):
        raise read.error()
    cap = _cap(read, doc["frequency_caps"]) if "frequency_caps" in doc else DEFAULT_POLICY.cap
    quiet = _quiet(read, doc.get("quiet_hours"))
    throttles = _throttles(read, doc.get("throttles"))
    form, mailto = _form(read, doc.get("sender"), doc.get("opt_out"))
    if read.problems:
        raise read.error()
    return MessagingPolicy(cap, quiet, throttles, form, mailto)


def _cap(read: _Reader, value: Any) -> FrequencyCap | None:
    if value is None:
        return None
    if not read.mapping(value, "frequency_caps", ("advertising",), ("informational",)):
        return None
    if "informational" in value:
        read.fail("frequency_caps.informational", "informational messages are never capped; remove it")
    cap = value.get("advertising")
    if cap is None:
        return None  # explicitly none
    path = "frequency_caps.advertising"
    if not read.mapping(cap, path, ("max", "days")):
        return None
    most = read.number(cap.get("max"), f"{path}.max", 1, MAX_CAP, whole=True)
    days = read.number(cap.get("days"), f"{path}.days", 1, MAX_CAP_DAYS, whole=True)
    return FrequencyCap(int(most), int(days)) if most is not None and days is not None else None


def _quiet(read: _Reader, value: Any) -> QuietHours | None:
    if value is None:
        return None
    window = read.window(value, "quiet_hours", DEFAULT_TIMEZONE, ("kinds",))
    kinds = value.get("kinds", list(KINDS)) if isinstance(value, Mapping) else []
    if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
        read.fail("quiet_hours.kinds", f"expected a list of {', '.join(KINDS)}, got {describe(kinds)}")
        return None
    return QuietHours(window, frozenset(Kind(k) for k in kinds)) if window is not None else None


def _throttles(read: _Reader, value: Any) -> Mapping[str, float]:
    if value is None:
        return DEFAULT_THROTTLES
    if not read.mapping(value, "throttles", PROVIDERS):
        return DEFAULT_THROTTLES
    rates = dict(DEFAULT_THROTTLES)
    for provider in PROVIDERS:
        if provider in value:
            rate = read.number(value[provider], f"throttles.{provider}", 0.01, MAX_THROTTLE, whole=False)
            if rate is not None:
                rates[provider] = float(rate)
    return MappingProxyType(rates)


def _form(read: _Reader, sender: Any, opt_out: Any) -> tuple[AdForm | None, str | None]:
    name = contact = number = mailto = None
    label = DEFAULT_OPT_OUT_LABEL
    if sender is not None and read.mapping(sender, "sender", ("name", "contact")):
        name = read.text(sender.get("name"), "sender.name", limit=100, required=True)
        contact = read.text(sender.get("contact"), "sender.contact", limit=100, required=True)
    if opt_out is not None and read.mapping(opt_out, "opt_out", ("number", "label", "mailto")):
        number = opt_out.get("number")
        if number is not None and (not isinstance(number, str) or not _FREE_NUMBER.fullmatch(number)):
            read.fail("opt_out.number", f"expected a free 080 number such as 080-123-4567, got {describe(number)}")
            number = None
        label = read.text(opt_out.get("label"), "opt_out.label", limit=40) or label
        raw_mail = opt_out.get("mailto")
        if raw_mail is not None:
            mailto = normalize_email(raw_mail) if isinstance(raw_mail, str) else None
            if mailto is None:
                read.fail("opt_out.mailto", f"expected an e-mail address, got {describe(raw_mail)}")
    form = AdForm(name, contact, number, label) if name is not None and contact is not None else None
    return form, mailto

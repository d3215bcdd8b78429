"""deliver: send one batch of planned deliveries, each at most once, falling back along the chain.

A batch (a `sends` message, shared/messaging/ledger.py Batch) names delivery rows send_messages
planned. For each, in order:

1. **Decide again** at `now`, for the whole batch at once (one gate statement per site and
   channel, one count of the cap): a withdrawal, an unsubscribe or an erasure since the plan wins,
   the night is judged now (a plan at 20:55 sent at 21:05 is held until 08:00), the cap counts what
   other campaigns sent meanwhile. A gate that now picks another address for the channel skips the
   delivery as `address_changed` (the row records the address the plan chose; the next run plans
   the new one).
2. **Claim** it with `DocumentStore.create` in the `deliveries` collection before any provider
   call. Of two workers that race, one creates the claim; the other reads its state: final
   (sent, failed, skipped, ...) means a redelivery, so nothing is sent; `sending` means another
   worker is at it, or died at it: after `claim_timeout` the send is looked up (`lookup`) before
   anything else; `held` waits for its release.
3. **Render** the template with the recipient's profile values, the preference links and (for
   advertising) the Network Act's form; a failure skips the delivery with its code.
4. **Send** through the channel, paced by a token bucket per provider (RateLimiter, shared by the
   threads of a process; `messaging/policy` throttles give the rate).
5. **Record** the claim's final state and a delivery event (written to the warehouse at the end of
   the call, and again from the claim when a redelivery finds it: event ids make the copies one).

Outcomes of a send: accepted -> `sent`. `Rejected` -> `failed` (a hard bounce `bounced`, the address
unsubscribed), `OptedOut` -> `opted_out` (the opt-out recorded through consent.record_opt_out),
then the **fallback**: the next channel of the campaign's chain gets its own delivery row
(`fallback_of`) and the whole policy again for that channel, and is delivered in the same call; a
skip for a reason of the channel (no address, unsubscribed, a render failure, ...) falls back the
same way. `ChannelThrottled` stops the batch (the claim handed on, the rest unclaimed) and
`ChannelUnavailable` too: when the provider may have accepted the message (`maybe_sent`) the claim
waits for a lookup, otherwise it is handed on. Anything left to do later (a throttle, an outage, a
claim another worker holds, a lookup that failed) raises DeliveryIncomplete once the rest is done:
the handler answers so that Pub/Sub redelivers the batch, and what was settled is skipped then.

Design note, where this differs from a single claim document per delivery: the DocumentStore
port has no compare-and-set, so a claim is never taken back or re-taken in place. Each attempt is
its own document (`<delivery id>`, then `<delivery id>.1`, `.2`, ...): a claim that ended open
(handed on after a throttle, found absent by a lookup, or held and now due) lets the next attempt
be created, and `create` again decides which single worker makes it. The claim holds no personal
data (state, times, codes, the provider's id), so erasure has nothing to do in Firestore; a lookup
therefore asks with the message rendered again. A sealed preference link differs on every render,
so an SMS that carries one is not found by its body: Twilio's lookup then answers unknown (never
absent while any message of ours to the number is listed), and the delivery is left unknown rather
than sent twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, NamedTuple

from shared.activation.publications import InvalidConfig
from shared.consent.vocabulary import Channel, ConsentError, Kind
from shared.messaging import MessageReason, Outcome, adform
from shared.messaging.alimtalk import ALIMTALK_TEMPLATES
from shared.messaging.campaigns import (
    CAMPAIGNS,
    CHANNEL_RULES,
    POLICY,
    TEMPLATES,
    Campaign,
    MessagingPolicy,
    parse_policy,
    validate_campaign,
)
from shared.messaging.clicks import ClickLinks, linker
from shared.messaging.ledger import (
    BATCHES,
    CLAIMS,
    Batch,
    Event,
    Recipient,
    SendCode,
    event_row,
    insert_deliveries,
    parse_batch,
    recipients,
    record_events,
)
from shared.messaging.ledger import delivery_id as make_delivery_id
from shared.messaging.policy import GateAnswer, cap_since, prepare
from shared.messaging.templates import LINK, CompiledTemplate, MessageTemplate, RenderFailed, compiled
from shared.ports import DocumentStore, TransientError, Warehouse
from shared.ports.channels import (
    BatchChannel,
    ChannelError,
    ChannelThrottled,
    ChannelUnavailable,
    Message,
    MessageChannel,
    OptedOut,
    Rejected,
    SendResult,
)
from shared.preferences.links import DEFAULT_LIFETIME
from shared.services import consent
from shared.services.delivery_events import Report, refusal_report

log = logging.getLogger(__name__)

CLAIM_TIMEOUT: Final = timedelta(minutes=10)
"""A `sending` claim older than this belongs to a worker that died: its send is looked up. Far
longer than any adapter's timeout, so a live worker is never overtaken."""
MAX_ATTEMPTS: Final = 20
"""Attempts of one delivery (claims handed on) before it is given up as unknown."""
FALLBACK_REASONS: Final = frozenset(
    {
        MessageReason.NO_ADDRESS,
        MessageReason.NO_SUBSCRIPTION,
        MessageReason.UNSUBSCRIBED,
        MessageReason.INVALID_ADDRESS,
        MessageReason.RENDER_FAILED,
        MessageReason.MESSAGE_TOO_LONG,
    }
)
"""Skips that say nothing against the person, only against this channel: the next channel is tried."""


class ClaimState(StrEnum):
    """The state of one attempt's claim (its `deliveries` document)."""

    SENDING = "sending"  # taken: its worker renders and sends
    LOOKUP = "lookup"  # the send may have been accepted (a timeout): ask the provider before anything else
    RETRY = "retry"  # refused before anything was accepted (throttled, unavailable): the next attempt sends
    ABSENT = "absent"  # a lookup found no such message: the next attempt sends
    HELD = "held"  # held until release_at: the next attempt decides again
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    OPTED_OUT = "opted_out"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # the provider cannot tell whether it arrived: never resent


OPEN: Final = frozenset({ClaimState.RETRY, ClaimState.ABSENT, ClaimState.HELD})
FINAL: Final = frozenset(
    {
        ClaimState.SENT,
        ClaimState.FAILED,
        ClaimState.BOUNCED,
        ClaimState.OPTED_OUT,
        ClaimState.SKIPPED,
        ClaimState.UNKNOWN,
    }
)
_REFUSED: Final = frozenset({ClaimState.FAILED, ClaimState.BOUNCED, ClaimState.OPTED_OUT})


def claim_id(delivery: str, attempt: int) -> str:
    """The claim document of a delivery's attempt: the delivery id, then `<id>.1`, `<id>.2`, ..."""
    return delivery if attempt == 0 else f"{delivery}.{attempt}"


# -- pacing -------------------------------------------------------------------------------------------


class RateLimiter:
    """Messages per second per provider, for every thread of a process: each `acquire` takes the
    provider's next free slot (1/rate after the last) and sleeps until it. A provider's Retry-After
    moves the next slot for everyone (`pause`). Deployments cap deliver's instances so that
    instances x rate stays within the provider's limit."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self, provider: str, rate: float) -> float:
        """Wait for the provider's next slot; return the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next.get(provider, now))
            self._next[provider] = start + 1.0 / rate
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, provider: str, seconds: float) -> None:
        with self._lock:
            now = self._clock()
            self._next[provider] = max(self._next.get(provider, now), now + max(seconds, 0.0))


LIMITER: Final = RateLimiter()


def provider_of(channel: object, name: str, to: str) -> str:
    """The provider whose throttle paces a message: the channel's rule (CHANNEL_RULES), unless the
    channel routes numbers between providers (shared/adapters/sms_router.py `provider_for`)."""
    route = getattr(channel, "provider_for", None)
    return str(route(to)) if callable(route) else CHANNEL_RULES[Channel(name)].provider


"""The process's limiter: every batch a process delivers shares it."""


# -- ports and results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """The preference centre a message links to (settings.preferences): its URL and sealing key."""

    url: str
    key: str = field(repr=False)
    lifetime: timedelta = DEFAULT_LIFETIME


@dataclass(frozen=True)
class DeliverPorts:
    warehouse: Warehouse
    documents: DocumentStore
    channels: Mapping[str, MessageChannel]  # by channel name: the deployment's senders
    salt: str  # the privacy salt the consent gate matches suppressions with
    links: Links | None = None  # None: no preference links (advertising e-mails then fail to render)
    limiter: RateLimiter = LIMITER
    claim_timeout: timedelta = CLAIM_TIMEOUT
    clicks: ClickLinks | None = None  # click tracking (settings.clicks); None: link() adds UTM parameters only


@dataclass
class BatchReport:
    """What one call did with a batch; `complete` when nothing is left for a redelivery."""

    campaign_id: str
    run_id: str
    batch: str
    sent: int = 0
    failed: int = 0  # refused (bounced and opted out included)
    opted_out: int = 0
    skipped: int = 0
    held: int = 0
    unknown: int = 0
    already: int = 0  # settled by an earlier delivery of the batch
    fallbacks: int = 0  # delivery rows this call planned on a next channel
    busy: int = 0  # claimed by another worker that has not finished
    lookups: int = 0  # a lookup that could not be answered now
    left: int = 0  # not reached: the batch stopped on a throttle or an outage
    retry_after: float | None = None
    stopped: str | None = None  # why the batch stopped early
    done_before: bool = False  # the batch was finished by an earlier delivery: nothing read

    @property
    def complete(self) -> bool:
        return not (self.busy or self.lookups or self.left or self.stopped)

    def counts(self) -> dict[str, Any]:
        names = ("sent", "failed", "opted_out", "skipped", "held", "unknown", "already", "fallbacks", "busy",
                 "lookups", "left")  # fmt: skip
        return {name: getattr(self, name) for name in names}


class DeliveryIncomplete(TransientError):
    """Part of the batch must be tried again later (a throttle, an outage, a claim another worker
    holds): answer so that Pub/Sub redelivers; what was settled is skipped then."""

    def __init__(self, report: BatchReport) -> None:
        why = report.stopped or ("claims held elsewhere" if report.busy else "lookups pending")
        super().__init__(f"batch {report.batch} incomplete: {why}")
        self.report = report
        self.retry_after = report.retry_after


# -- the campaign at send time ------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    campaign: Campaign
    template: MessageTemplate
    policy: MessagingPolicy


def load_campaign(
    documents: DocumentStore, campaign_id: str, available_channels: Sequence[str], now: datetime
) -> Loaded | SendCode:
    """The campaign, its template and the policy as they are now, or why nothing may be sent: a
    campaign disabled, set to dry run, deleted or no longer valid stops its sends."""
    doc = documents.get(CAMPAIGNS, campaign_id)
    if doc is None:
        return SendCode.CAMPAIGN_INVALID
    try:
        policy = parse_policy(documents.get(*POLICY))
        campaign, template = validate_campaign(
            campaign_id,
            doc,
            segment_exists=lambda _: True,  # the audience was planned; the segment may change freely now
            template_doc=lambda name: documents.get(TEMPLATES, name),
            policy=policy,
            available_channels=available_channels,
            min_interval_minutes=0,
            now=now,
            alimtalk_templates=lambda code: documents.get(ALIMTALK_TEMPLATES, code),
        )
    except InvalidConfig as exc:
        log.warning("campaign not valid at send time", extra={"campaign_id": campaign_id, "error": str(exc)})
        return SendCode.CAMPAIGN_INVALID
    if not campaign.enabled:
        return SendCode.CAMPAIGN_DISABLED
    if campaign.dry_run:
        return SendCode.CAMPAIGN_DRY_RUN
    return Loaded(campaign, template, policy)


# -- rendering ----------------------------------------------------------------------------------------

_LINK_VARIABLES: Final = frozenset({"preference_url", "unsubscribe_url"})


def render(
    renderer: CompiledTemplate,
    template: MessageTemplate,
    campaign: Campaign,
    policy: MessagingPolicy,
    recipient: Recipient,
    links: Links | None,
    now: datetime,
    clicks: ClickLinks | None = None,
) -> Message | RenderFailed:
    """The message one recipient gets, or the reason it cannot be made (a code, never an exception).
    A template's link() calls become this delivery's click links (clicks.linker)."""
    address = recipient.address
    if not address:
        return RenderFailed(MessageReason.RENDER_FAILED, "no address")
    form = policy.form
    context: dict[str, object] = dict(recipient.profile)
    context["sender_name"] = form.sender_name if form is not None else None
    context["sender_contact"] = form.sender_contact if form is not None else None
    context["preference_url"] = context["unsubscribe_url"] = None
    if links is not None and (recipient.channel == Channel.EMAIL or template.variables & _LINK_VARIABLES):
        try:
            preference, unsubscribe = adform.preference_urls(
                links.url, recipient.site_id, recipient.channel, address, links.key, now, links.lifetime,
                delivery_id=recipient.delivery_id,
            )  # fmt: skip
        except (ValueError, ConsentError) as exc:
            return RenderFailed(MessageReason.RENDER_FAILED, f"no preference link: {exc}")
        context["preference_url"], context["unsubscribe_url"] = preference, unsubscribe
    if template.links:
        context[LINK] = linker(recipient, clicks, now)
    advertising = campaign.kind is Kind.ADVERTISING
    rendered = renderer.render(recipient.channel, context, form if advertising else None, policy.unsubscribe_mailto)
    if isinstance(rendered, RenderFailed):
        return rendered
    if recipient.channel == Channel.SMS and address.startswith("+82"):
        try:  # Korean carriers take EUC-KR only: a value (an emoji in a name) the sample could not show
            rendered.text.encode("euc_kr")
        except UnicodeEncodeError:
            return RenderFailed(MessageReason.RENDER_FAILED, "characters Korean carriers cannot send (EUC-KR)")
    return Message(
        delivery_id=recipient.delivery_id,
        channel=recipient.channel,
        to=address,
        text=rendered.text,
        subject=rendered.subject,
        html=rendered.html,
        headers=dict(rendered.headers),
        metadata={"campaign_id": recipient.campaign_id, "run_id": recipient.run_id},
        template_code=rendered.template_code,
        parameters=dict(rendered.parameters),
    )


# -- one batch ----------------------------------------------------------------------------------------


class Verdict(NamedTuple):
    """What the policy says of one delivery now, and the gate's answer it read (a fallback's row
    takes its address and consent rows from it)."""

    outcome: Outcome
    reason: str  # a MessageReason or a SendCode
    release_at: datetime | None = None
    answer: GateAnswer | None = None


def deliver_batch(ports: DeliverPorts, batch: Batch | bytes, now: datetime) -> BatchReport:
    """Deliver one batch (see the module docstring) at `now`, the current time (claims age by it,
    and the policy is judged at it; not the message's publish time). Raises ValueError for a
    message that is not a batch (acknowledge it), DeliveryIncomplete when a redelivery must finish
    it, TransientError when a dependency is down."""
    if isinstance(batch, bytes):
        batch = parse_batch(batch)
    report = BatchReport(batch.campaign_id, batch.run_id, batch.key)
    marker = ports.documents.get(BATCHES, batch.key)
    if marker is not None and marker.get("done_at") is not None:
        report.done_before = True
        return report
    job = _Job(ports, batch, now, report)
    try:
        job.run()
    finally:
        job.flush()
    log.info("deliver batch", extra={"campaign_id": batch.campaign_id, "batch": batch.key, **report.counts()})
    if not report.complete:
        raise DeliveryIncomplete(report)
    ports.documents.set(BATCHES, batch.key, {"done_at": now, **report.counts()}, merge=True)
    return report


class _Job:
    """The state of one call: the campaign as it is now, the events to write, why it stopped."""

    def __init__(self, ports: DeliverPorts, batch: Batch, now: datetime, report: BatchReport) -> None:
        self.ports, self.batch, self.now, self.report = ports, batch, now, report
        self.documents = ports.documents
        self.events: list[dict[str, Any]] = []
        self.loaded: Loaded | None = None
        self.renderer: CompiledTemplate | None = None
        self.since: datetime | None = None  # the frequency cap's window, for an advertising campaign
        self.queued: list[tuple[Recipient, int, Message]] = []  # claimed, for a batching channel's send_many
        self.batching = frozenset(name for name, c in ports.channels.items() if isinstance(c, BatchChannel))
        self.push_keys: dict[str, Mapping[str, str] | None] = {}  # webpush: the gate's keys, by delivery id

    def recipients(self, ids: Sequence[str]) -> list[Recipient]:
        """The rows of `ids`, each with the advertising messages its customer was sent in the cap's
        window (the same for every channel: the cap counts messages on any channel)."""
        return recipients(self.ports.warehouse, ids, self.since)

    def run(self) -> None:
        loaded = load_campaign(self.documents, self.batch.campaign_id, sorted(self.ports.channels), self.now)
        if not isinstance(loaded, SendCode):
            self.loaded, self.renderer = loaded, compiled(loaded.template)
            policy = loaded.policy
            if loaded.campaign.kind is Kind.ADVERTISING and policy.cap is not None:
                self.since = cap_since(self.now, policy.cap.days)
        rows = [
            r
            for r in self.recipients(self.batch.delivery_ids)
            if r.campaign_id == self.batch.campaign_id and r.run_id == self.batch.run_id and r.outcome != Outcome.SKIP
        ]
        if not rows:
            return
        if isinstance(loaded, SendCode):
            pending = [(row, Verdict(Outcome.SKIP, loaded)) for row in rows]
        else:
            pending = self.judge(rows)
        while pending:
            refused: list[Recipient] = []
            for index, (row, verdict) in enumerate(pending):
                if self.report.stopped:
                    self.report.left += len(pending) - index
                    self.send_queued()  # hands the claims back: nothing more is sent after a stop
                    return
                if self.settle(row, verdict):
                    refused.append(row)
            refused += self.send_queued()
            pending = self.fall_back(refused) if self.loaded is not None and not self.report.stopped else []

    # -- deciding -------------------------------------------------------------------------------------

    def judge(self, rows: Sequence[Recipient], fresh: bool = False) -> list[tuple[Recipient, Verdict]]:
        """The policy for each row now: one gate statement per site and channel (the cap's counts
        came with the rows). `fresh` rows have no address yet (a fallback's): they take the gate's."""
        assert self.loaded is not None
        campaign, policy = self.loaded.campaign, self.loaded.policy
        groups: dict[tuple[str, str], list[Recipient]] = {}
        for row in rows:
            groups.setdefault((row.site_id, row.channel), []).append(row)
        verdicts: dict[str, Verdict] = {}
        for (site, channel), group in groups.items():
            try:
                rules = prepare(campaign, Channel(channel), policy, self.now)
            except ValueError:  # the campaign's chain no longer has this channel
                verdicts |= {row.delivery_id: Verdict(Outcome.SKIP, SendCode.CHANNEL_REMOVED) for row in group}
                continue
            customers = sorted({row.customer_id for row in group})
            w, salt = self.ports.warehouse, self.ports.salt
            answers = {
                a.customer_id: a
                for a in consent.eligible_audience(
                    w, site, campaign.purpose, channel, self.now, salt, customer_ids=customers
                )
            }
            for row in group:
                answer = answers[row.customer_id]
                if channel == Channel.WEBPUSH:  # the subscription's keys come with its endpoint
                    self.push_keys[row.delivery_id] = answer.push_keys
                decision = rules.decide(answer, row.sent)
                verdict = Verdict(decision.outcome, decision.reason, decision.release_at, answer)
                if not fresh and decision.outcome is not Outcome.SKIP and answer.address != row.address:
                    verdict = Verdict(Outcome.SKIP, SendCode.ADDRESS_CHANGED, None, answer)
                verdicts[row.delivery_id] = verdict
        return [(row, verdicts[row.delivery_id]) for row in rows]

    def fall_back(self, refused: Sequence[Recipient]) -> list[tuple[Recipient, Verdict]]:
        """The next channel's delivery for each refused row: its row (planned now, with the policy
        again for that channel) unless an earlier attempt planned it, and its verdict."""
        assert self.loaded is not None
        campaign = self.loaded.campaign
        wanted: dict[str, Recipient] = {}
        for row in refused:
            chain = [c.value for c in campaign.channels]
            if row.channel not in chain or chain.index(row.channel) + 1 >= len(chain):
                continue
            channel = chain[chain.index(row.channel) + 1]
            delivery = make_delivery_id(row.campaign_id, row.run_id, row.customer_id, channel)
            wanted[delivery] = replace(
                row, delivery_id=delivery, channel=channel, address=None, outcome=Outcome.SEND.value,
                reason=MessageReason.ELIGIBLE.value, fallback_of=row.delivery_id,
            )  # fmt: skip
        if not wanted:
            return []
        known = {r.delivery_id: r for r in self.recipients(list(wanted))}
        # planned by an earlier attempt: its skips stand (and fall back in turn), the rest is judged now
        judged = [(r, Verdict(Outcome.SKIP, r.reason)) for r in known.values() if r.outcome == Outcome.SKIP]
        judged += self.judge([r for r in known.values() if r.outcome != Outcome.SKIP])
        judged += self.plan_rows(self.judge([r for d, r in wanted.items() if d not in known], fresh=True))
        return judged

    def plan_rows(self, judged: list[tuple[Recipient, Verdict]]) -> list[tuple[Recipient, Verdict]]:
        """Write the fallbacks' delivery rows (before any call), with the address the gate chose."""
        assert self.loaded is not None
        rows: list[dict[str, Any]] = []
        planned: list[tuple[Recipient, Verdict]] = []
        for row, verdict in judged:
            answer = verdict.answer
            erased = verdict.reason == MessageReason.ERASED  # an erased person's address is not kept
            address = answer.address if answer is not None and not erased else None
            rows.append(
                {
                    "delivery_id": row.delivery_id, "campaign_id": row.campaign_id, "run_id": row.run_id,
                    "site_id": row.site_id, "customer_id": row.customer_id, "channel": row.channel,
                    "address": address, "kind": self.loaded.campaign.kind.value,
                    "outcome": verdict.outcome.value, "reason": str(verdict.reason),
                    "release_at": verdict.release_at.isoformat() if verdict.release_at else None,
                    "consent_event_id": answer.consent_event_id if answer else None,
                    "subscription_event_id": answer.subscription_event_id if answer else None,
                    "night_consent_event_id": answer.night_consent_event_id if answer else None,
                    "fallback_of": row.fallback_of, "batch": None, "dry_run": False,
                    "planned_at": self.now.isoformat(),
                }
            )  # fmt: skip
            planned.append((replace(row, address=address, outcome=verdict.outcome.value), verdict))
        insert_deliveries(self.ports.warehouse, rows)
        self.report.fallbacks += len(rows)
        return planned

    # -- one delivery ---------------------------------------------------------------------------------

    def settle(self, row: Recipient, verdict: Verdict) -> bool:
        """Claim, send and record one delivery; True when the next channel should be tried."""
        first = {
            Outcome.SEND: ClaimState.SENDING,
            Outcome.HOLD: ClaimState.HELD,
            Outcome.SKIP: ClaimState.SKIPPED,
        }[verdict.outcome]
        for attempt in range(MAX_ATTEMPTS):
            doc = {
                "state": first.value,
                "at": self.now,
                "attempt": attempt,
                "campaign_id": row.campaign_id,
                "run_id": row.run_id,
                "channel": row.channel,
                "code": None if first is ClaimState.SENDING else str(verdict.reason),
                "release_at": verdict.release_at,
            }
            key = claim_id(row.delivery_id, attempt)
            if self.documents.create(CLAIMS, key, doc):
                return self.owned(row, verdict, first, attempt)
            found = self.documents.get(CLAIMS, key)
            if found is None:  # claims are never deleted: a store that lost one is left to a redelivery
                self.report.busy += 1
                return False
            state = ClaimState(found["state"])
            when = found.get("updated_at") or found["at"]  # a result recorded again keeps its time
            if state is ClaimState.HELD and found.get("release_at") is not None and found["release_at"] > self.now:
                self.report.held += 1
                self.record(row, Event.HELD, attempt, code=found.get("code"), release_at=found["release_at"], at=when)
                return False
            if state in OPEN:
                continue
            if state in FINAL:
                self.report.already += 1
                code, provider = found.get("code"), found.get("provider_id")
                self.record(row, Event(state.value), attempt, code=code, provider=provider, at=when)
                return state in _REFUSED or (state is ClaimState.SKIPPED and code in FALLBACK_REASONS)
            if state is ClaimState.SENDING and found["at"] + self.ports.claim_timeout > self.now:
                self.report.busy += 1
                return False
            looked = self.look_up(row, attempt)  # a stale sending claim, or one waiting for its lookup
            if looked is not None:
                return looked
        log.error("delivery gave up after too many attempts", extra={"delivery_id": row.delivery_id})
        self.report.unknown += 1
        return False

    def owned(self, row: Recipient, verdict: Verdict, state: ClaimState, attempt: int) -> bool:
        """This worker created the attempt's claim: act on it."""
        if state is ClaimState.HELD:
            self.report.held += 1
            self.record(row, Event.HELD, attempt, code=str(verdict.reason), release_at=verdict.release_at)
            return False
        if state is ClaimState.SKIPPED:
            self.report.skipped += 1
            self.record(row, Event.SKIPPED, attempt, code=str(verdict.reason))
            return verdict.reason in FALLBACK_REASONS
        return self.send(row, attempt)

    def finish(
        self, row: Recipient, attempt: int, state: ClaimState, code: str | None, provider_id: str | None = None
    ) -> None:
        """Set the claim's state, code and provider id (merge: the claim's own fields stay); a
        redelivery records its event again from these, under the same id."""
        update = {"state": state.value, "code": code, "provider_id": provider_id, "updated_at": self.now}
        self.documents.set(CLAIMS, claim_id(row.delivery_id, attempt), update, merge=True)

    def message(self, row: Recipient) -> Message | RenderFailed:
        assert self.loaded is not None and self.renderer is not None
        loaded = self.loaded
        ports = self.ports
        made = render(
            self.renderer, loaded.template, loaded.campaign, loaded.policy, row, ports.links, self.now, ports.clicks
        )
        if row.channel == Channel.WEBPUSH and isinstance(made, Message):
            return replace(made, push_keys=self.push_keys.get(row.delivery_id))
        return made

    def send(self, row: Recipient, attempt: int) -> bool:
        assert self.loaded is not None
        message = self.message(row)
        if isinstance(message, RenderFailed):
            log.warning("render failed", extra={"delivery_id": row.delivery_id, "detail": message.detail})
            self.finish(row, attempt, ClaimState.SKIPPED, message.reason.value)
            self.report.skipped += 1
            self.record(row, Event.SKIPPED, attempt, code=message.reason.value)
            return True
        channel = self.ports.channels[row.channel]
        if row.channel in self.batching:  # claimed now, sent with the pass's others (send_queued)
            self.queued.append((row, attempt, message))
            return False
        provider = provider_of(channel, row.channel, message.to)
        self.ports.limiter.acquire(provider, self.loaded.policy.throttles[provider])
        try:
            result: SendResult | ChannelError = channel.send(message)
        except ChannelError as exc:
            result = exc
        return self.outcome(row, attempt, message, result)

    def send_queued(self) -> list[Recipient]:
        """The messages claimed for batching channels, one send_many per channel (the adapter splits
        it into its provider's requests), each result recorded per delivery as `send` records one;
        the rows to fall back. After a stop nothing is sent: the claims are handed on."""
        queued, self.queued = self.queued, []
        by_channel: dict[str, list[tuple[Recipient, int, Message]]] = {}
        for item in queued:
            by_channel.setdefault(item[0].channel, []).append(item)
        refused: list[Recipient] = []
        for name, items in by_channel.items():
            if self.report.stopped:
                for row, attempt, _ in items:
                    self.finish(row, attempt, ClaimState.RETRY, None)
                self.report.left += len(items)
                continue
            assert self.loaded is not None
            channel = self.ports.channels[name]
            assert isinstance(channel, BatchChannel)
            paced: dict[str, int] = {}  # messages per provider (a router splits one channel between two)
            for _, _, message in items:
                provider = provider_of(channel, name, message.to)
                paced[provider] = paced.get(provider, 0) + 1
            for provider, count in paced.items():  # messages a second: a batch takes `count` slots
                self.ports.limiter.acquire(provider, self.loaded.policy.throttles[provider] / count)
            results = channel.send_many([message for _, _, message in items])
            for (row, attempt, message), result in zip(items, results, strict=True):
                if self.outcome(row, attempt, message, result):
                    refused.append(row)
        return refused

    def outcome(self, row: Recipient, attempt: int, message: Message, result: SendResult | ChannelError) -> bool:
        """A send's answer for one delivery: recorded on its claim and in its events; True when the
        next channel should be tried."""
        provider = provider_of(self.ports.channels.get(row.channel), row.channel, message.to)
        if isinstance(result, Rejected):
            return self.refused(row, attempt, message, result)
        if isinstance(result, ChannelThrottled):
            self.finish(row, attempt, ClaimState.RETRY, result.code)
            self.ports.limiter.pause(provider, result.retry_after)
            self.stop(f"{row.channel} throttled", result.retry_after)
            return False
        if isinstance(result, ChannelUnavailable):
            if result.maybe_sent:  # the provider may hold it: a lookup comes before any resend
                self.finish(row, attempt, ClaimState.LOOKUP, result.code)
                self.record(row, Event.SENDING, attempt, code=result.code)
            else:
                self.finish(row, attempt, ClaimState.RETRY, result.code)
            self.stop(f"{row.channel} unavailable: {result}")
            return False
        if isinstance(result, ChannelError):
            raise result
        return self.result(row, attempt, result)

    def result(self, row: Recipient, attempt: int, result: SendResult) -> bool:
        """A send's or a lookup's answer: failed (the next channel is tried) or sent."""
        if result.state == "failed":
            self.finish(row, attempt, ClaimState.FAILED, result.code, result.provider_id)
            self.report.failed += 1
            self.record(row, Event.FAILED, attempt, code=result.code, provider=result.provider_id)
            return True
        self.finish(row, attempt, ClaimState.SENT, result.code, result.provider_id)
        self.report.sent += 1
        self.record(row, Event.SENT, attempt, code=result.code, provider=result.provider_id)
        return False

    def refused(self, row: Recipient, attempt: int, message: Message, refusal: Rejected) -> bool:
        """Rejected or OptedOut: the delivery failed; the provider's opt-out signal (an opted out
        number, a hard bounce) unsubscribes the address; the next channel is tried."""
        assert self.loaded is not None
        found = refusal_report(message, refusal, self.now)
        if isinstance(refusal, OptedOut):
            state = ClaimState.OPTED_OUT
            self.report.opted_out += 1
        else:
            state = ClaimState.BOUNCED if found.events and found.events[0].kind == "bounced" else ClaimState.FAILED
        self.finish(row, attempt, state, refusal.code)
        self.report.failed += 1
        self.record(row, Event(state.value), attempt, code=refusal.code)
        for signal in found.opt_outs:
            try:
                consent.record_opt_out(
                    self.ports.warehouse, row.site_id, signal.channel, signal.address, signal.source, signal.reason,
                    signal.effective_at, recorded_at=self.now, request_id=signal.request_id or row.delivery_id,
                )  # fmt: skip
            except ConsentError as exc:  # an address the ledger cannot key: the event still says it
                log.error("opt-out not recorded", extra={"delivery_id": row.delivery_id, "error": str(exc)})
        return True

    def look_up(self, row: Recipient, attempt: int) -> bool | None:
        """Ask the provider what became of an earlier send of this attempt. None: it has no such
        message, so the next attempt may send; otherwise the answer of `settle`."""
        channel = self.ports.channels.get(row.channel)
        message = self.message(row) if self.loaded is not None else None
        if channel is None or not isinstance(message, Message):
            result = None  # nothing to ask with: unknown, never resent
        else:
            try:
                result = channel.lookup(message)
            except ChannelError as exc:
                log.warning("lookup failed", extra={"delivery_id": row.delivery_id, "error": str(exc)})
                self.report.lookups += 1
                return False
        if result is not None and result.state == "absent":
            self.finish(row, attempt, ClaimState.ABSENT, result.code)
            return None
        if result is None or result.state == "unknown":
            self.finish(row, attempt, ClaimState.UNKNOWN, None)
            self.report.unknown += 1
            self.record(row, Event.UNKNOWN, attempt)
            return False
        return self.result(row, attempt, result)

    # -- records --------------------------------------------------------------------------------------

    def stop(self, why: str, retry_after: float | None = None) -> None:
        self.report.stopped = why
        self.report.retry_after = retry_after

    def record(
        self,
        row: Recipient,
        event: Event,
        attempt: int,
        *,
        code: str | None = None,
        provider: str | None = None,
        release_at: datetime | None = None,
        at: datetime | None = None,
    ) -> None:
        when = at or self.now
        self.events.append(
            event_row(row, event, when, code=code, provider_id=provider, release_at=release_at, key=f"a{attempt}")
        )

    def flush(self) -> None:
        """Write the call's events (also when it stops on an error: what was settled is recorded)."""
        events, self.events = self.events, []
        record_events(self.ports.warehouse, events)


# -- provider reports ---------------------------------------------------------------------------------

REPORTED: Final[Mapping[str, Event]] = {
    "sent": Event.SENT,
    "delivered": Event.DELIVERED,
    "undelivered": Event.FAILED,
    "failed": Event.FAILED,
    "bounced": Event.BOUNCED,
    "canceled": Event.FAILED,
    "complained": Event.COMPLAINED,
}
"""delivery_events.EventKind -> the ledger's event."""


@dataclass(frozen=True)
class Recorded:
    events: int = 0  # ledger rows written for reports about our deliveries
    opt_outs: int = 0  # unsubscribes recorded in the consent ledger
    unmatched: int = 0  # reports and signals naming no delivery of ours: left to the caller


def record_report(warehouse: Warehouse, report: Report) -> Recorded:
    """A provider's report (shared/services/delivery_events.py: the Twilio status webhook's) into the
    ledgers: each event about a delivery of ours becomes a delivery_events row (its id from the
    delivery, the event and the code, so a webhook delivered twice adds nothing), and each opt-out
    naming a delivery is recorded on that delivery's site through consent.record_opt_out, with an
    `unsubscribed` event of that delivery. What names no delivery (an inbound STOP, an id we never
    planned) is counted, not guessed at."""
    named = {e.delivery_id for e in report.events} | {s.delivery_id for s in report.opt_outs}
    ids = sorted(d for d in named if d)
    rows = {r.delivery_id: r for r in recipients(warehouse, ids)}
    events = [
        event_row(rows[e.delivery_id], REPORTED[e.kind], e.occurred_at, code=e.code, provider_id=e.provider_id)
        for e in report.events
        if e.delivery_id in rows
    ]
    opt_outs = 0
    for signal in report.opt_outs:
        row = rows.get(signal.delivery_id or "")
        if row is None:
            continue
        consent.record_opt_out(
            warehouse, row.site_id, signal.channel, signal.address, signal.source, signal.reason,
            signal.effective_at, request_id=signal.request_id or row.delivery_id,
        )  # fmt: skip
        opt_outs += 1
        unsubscribed = event_row(row, Event.UNSUBSCRIBED, signal.effective_at, code=signal.reason)
        events.append(unsubscribed)
    record_events(warehouse, events)
    reported = len(events) - opt_outs
    unmatched = len(report.events) - reported + len(report.opt_outs) - opt_outs
    if unmatched:
        log.warning("reports about no delivery of ours", extra={"unmatched": unmatched})
    return Recorded(reported, opt_outs, unmatched)

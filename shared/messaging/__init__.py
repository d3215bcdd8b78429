"""Campaigns (messages to a TAM audience): their configuration, templates and the one policy engine.

`campaigns` parses Firestore `campaigns/{id}` and `messaging/policy` and checks a campaign against
the documents it names; `templates` parses `message_templates/{id}`, checks them at save and renders
them in Jinja2's sandbox; `policy` decides, per recipient and channel, send, hold or skip with a
reason code; `adform` gives advertising messages the Network Act's form. All pure: the jobs that
plan and send (shared/services) call them with what they read. docs/campaigns.md describes them.

The vocabulary of outcomes and reason codes lives here so every module can name it without
importing the engine.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SEND = "send"
    HOLD = "hold"  # not now: evaluate again at the decision's release time
    SKIP = "skip"  # not in this run


class MessageReason(StrEnum):
    """Why a recipient is sent to, held or skipped on a channel; stored with every delivery row.

    Listed in the order the policy engine decides them (policy.py), then the renderer's.
    """

    ELIGIBLE = "eligible"
    # consent and subscription: the consent gate's answer
    ERASED = "erased"  # the gate's `suppressed`: an erasure's suppression matches the person
    NO_MARKETING_CONSENT = "no_marketing_consent"  # advertising without a marketing decision or only refusals
    MARKETING_WITHDRAWN = "marketing_withdrawn"  # advertising; the marketing consent was withdrawn
    NO_ADDRESS = "no_address"
    NO_SUBSCRIPTION = "no_subscription"
    UNSUBSCRIBED = "unsubscribed"
    INVALID_ADDRESS = "invalid_address"  # an address the channel cannot dial or mail
    # legal rules (Network Act Art. 50(3))
    NIGHT_NOT_ALLOWED = "night_not_allowed"  # hold: advertising 21:00-08:00 KST without night_marketing
    # the campaign's suppression list
    SUPPRESSED = "suppressed"
    # frequency cap
    FREQUENCY_CAPPED = "frequency_capped"
    # quiet hours and the campaign's send window
    QUIET_HOURS = "quiet_hours"  # hold until the quiet hours end
    OUTSIDE_SEND_WINDOW = "outside_send_window"  # hold until the send window opens
    NO_SEND_TIME = "no_send_time"  # skip: quiet hours cover the whole send window
    # throttle: the sender's, when a provider asks it to slow down
    THROTTLED = "throttled"
    # rendering
    RENDER_FAILED = "render_failed"
    MESSAGE_TOO_LONG = "message_too_long"

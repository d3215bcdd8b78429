"""The consent model's closed vocabularies: purposes, channels, subjects, sources and reason codes.

Every value that reaches a ledger row, the gate or a decision is one of these, so a typo fails where
it is written (ConsentError names the field) instead of silently denying or, worse, allowing.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final, TypeVar


class ConsentError(ValueError):
    """Bad consent input: `field` is the path of the offending value, for a 4xx or a status.error."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class Purpose(StrEnum):
    """What a person lets us do with their data (processing consent, per person)."""

    ANALYTICS = "analytics"
    AD_USER_DATA = "ad_user_data"  # uploading the person to an ad platform
    AD_PERSONALIZATION = "ad_personalization"
    MARKETING = "marketing"  # advertising messages at all (Network Act Art. 50(1))
    NIGHT_MARKETING = "night_marketing"  # advertising messages 21:00-08:00 KST (Art. 50(3))


class Channel(StrEnum):
    """Where a message goes; subscriptions belong to the channel's address."""

    EMAIL = "email"
    SMS = "sms"  # SMS and LMS
    ALIMTALK = "alimtalk"
    WEBPUSH = "webpush"


class SubjectType(StrEnum):
    """What identified the person when they decided: the node types of refined.identities."""

    VISITOR = "visitor"
    MEMBER = "member"
    EMAIL = "email"
    PHONE = "phone"


class ConsentSource(StrEnum):
    TRACKER = "tracker"
    PIXEL = "pixel"
    IMPORT = "import"
    PREFERENCE_CENTRE = "preference_centre"
    API = "api"
    PROVIDER = "provider"
    # A re-confirmation notice sent (Art. 50(8)): proof of the notice, never a decision. The current
    # state ignores these rows; only the re-confirmation statement reads them.
    RECONFIRMATION = "reconfirmation"


class SubscriptionSource(StrEnum):
    FORM = "form"
    TRACKER = "tracker"
    IMPORT = "import"
    PREFERENCE_CENTRE = "preference_centre"
    ONE_CLICK_UNSUBSCRIBE = "one_click_unsubscribe"  # RFC 8058
    SMS_STOP = "sms_stop"
    PROVIDER_OPT_OUT = "provider_opt_out"  # e.g. Twilio 21610
    BOUNCE = "bounce"  # a hard bounce: the address does not exist
    COMPLAINT = "complaint"
    PUSH_GONE = "push_gone"  # the push service answered 404 or 410


OPT_OUT_SOURCES: Final = frozenset(
    {
        SubscriptionSource.ONE_CLICK_UNSUBSCRIBE,
        SubscriptionSource.SMS_STOP,
        SubscriptionSource.PROVIDER_OPT_OUT,
        SubscriptionSource.BOUNCE,
        SubscriptionSource.COMPLAINT,
        SubscriptionSource.PUSH_GONE,
    }
)
"""Sources that can only unsubscribe: a provider signal never subscribes anyone."""


class Reason(StrEnum):
    """The gate's and the policy's answer per person (and channel); anything but ELIGIBLE excludes."""

    ELIGIBLE = "eligible"
    SUPPRESSED = "suppressed"  # erased: a privacy suppression matches one of the person's identifiers
    NO_CONSENT = "no_consent"  # never granted (no decision, or only refusals)
    WITHDRAWN = "withdrawn"  # granted once, withdrawn since
    NO_ADDRESS = "no_address"  # no address known for the channel
    NO_SUBSCRIPTION = "no_subscription"  # an address, but never subscribed
    UNSUBSCRIBED = "unsubscribed"
    NIGHT_NOT_ALLOWED = "night_not_allowed"  # advertising at night without night consent: held, not dropped


class Kind(StrEnum):
    """What an activation does, which decides the checks it needs."""

    INFORMATIONAL = "informational"  # a message the person needs: subscription only
    ADVERTISING = "advertising"  # an advertising message: marketing consent, subscription, the night rule
    PROCESSING = "processing"  # a use of the person's data without a message (ad uploads): consent only


CHANNEL_ID_TYPE: Final[dict[Channel, SubjectType | None]] = {
    Channel.EMAIL: SubjectType.EMAIL,
    Channel.SMS: SubjectType.PHONE,
    Channel.ALIMTALK: SubjectType.PHONE,
    Channel.WEBPUSH: None,  # an endpoint URL, known only from the subscription's visitor or member
}
"""The identity node type whose values are a channel's addresses."""

CONSENT_MODE_KEYS: Final[dict[str, Purpose]] = {
    "analytics_storage": Purpose.ANALYTICS,
    "ad_user_data": Purpose.AD_USER_DATA,
    "ad_personalization": Purpose.AD_PERSONALIZATION,
}
"""Google Consent Mode v2 keys that carry one of our purposes (ad_storage has no purpose of ours)."""

E = TypeVar("E", bound=StrEnum)


def parse(kind: type[E], value: object, field: str) -> E:
    """`value` as a member of `kind`, or ConsentError naming the field and the allowed values."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in kind)
    label = re.sub(r"(?<!^)(?=[A-Z])", " ", kind.__name__).lower()  # SubjectType -> "subject type"
    raise ConsentError(field, f"unknown {label} {str(value)[:60]!r}; expected one of {allowed}")

"""Web push settings (CDP_VAPID_*, CDP_WEBPUSH_*): checked by name, and the composition root's
sender and collect's local switch built from them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.adapters.web_push import WebPush, public_key_of
from shared.bootstrap import build_available_channels, build_channels, build_collector_config
from shared.config import ConfigError, Settings
from tests.fakes import FakeSecrets

KEY = public_key_of(ec.generate_private_key(ec.SECP256R1()))
BASE = {"CDP_PROJECT": "p", "CDP_IP_SALT": "s"}


def settings(**env: str) -> Settings:
    return Settings.from_env(BASE | env)


def test_web_push_is_on_with_a_key_and_a_subject_and_off_otherwise() -> None:
    on = settings(CDP_VAPID_PUBLIC_KEY=KEY, CDP_VAPID_SUBJECT="mailto:push@shop.example", CDP_WEBPUSH_TTL="3600",
                  CDP_WEBPUSH_URGENCY="high", CDP_WEBPUSH_TIMEOUT="4")  # fmt: skip
    channels = on.channels
    assert channels.webpush and (channels.webpush_ttl, channels.webpush_urgency, channels.webpush_timeout) == (
        3600, "high", 4.0,
    )  # fmt: skip
    assert channels.vapid_key_secret == "vapid-private-key" and "vapid-private-key" not in repr(channels)
    assert "webpush" in build_available_channels(on)
    sender = build_channels(on, FakeSecrets())["webpush"]
    assert isinstance(sender, WebPush) and sender.name == "webpush"
    off = settings(CDP_VAPID_PUBLIC_KEY=KEY)
    assert not off.channels.webpush and "webpush" not in build_available_channels(off)
    assert "webpush" not in build_channels(off, FakeSecrets())


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CDP_VAPID_PUBLIC_KEY": "not-a-key"}, "CDP_VAPID_PUBLIC_KEY"),
        ({"CDP_VAPID_SUBJECT": "push@shop.example"}, "CDP_VAPID_SUBJECT"),
        ({"CDP_VAPID_SUBJECT": "http://shop.example"}, "CDP_VAPID_SUBJECT"),
        ({"CDP_WEBPUSH_TTL": "-1"}, "CDP_WEBPUSH_TTL"),
        ({"CDP_WEBPUSH_TTL": "9999999"}, "CDP_WEBPUSH_TTL"),
        ({"CDP_WEBPUSH_URGENCY": "urgent"}, "CDP_WEBPUSH_URGENCY"),
        ({"CDP_WEBPUSH_TIMEOUT": "0"}, "CDP_WEBPUSH_TIMEOUT"),
        ({"CDP_WEBPUSH_ALLOW_LOCAL": "yes"}, "CDP_WEBPUSH_ALLOW_LOCAL"),
        ({"CDP_WEBPUSH_ALLOW_LOCAL": "true", "CDP_WAREHOUSE": "bigquery", "CDP_PRIVACY_SALT": "x",
          "CDP_PREFERENCE_KEY": "k", "CDP_CLICK_KEY": "c"}, "CDP_WEBPUSH_ALLOW_LOCAL"),
        ({"CDP_WEBPUSH_CA_FILE": "/tmp/ca.pem", "CDP_WAREHOUSE": "bigquery", "CDP_PRIVACY_SALT": "x",
          "CDP_PREFERENCE_KEY": "k", "CDP_CLICK_KEY": "c"}, "CDP_WEBPUSH_CA_FILE"),
    ],
)  # fmt: skip
def test_a_bad_web_push_setting_is_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        settings(**env)


def test_collect_admits_the_local_fake_only_when_told() -> None:
    assert build_collector_config(settings()).allow_local_push is False
    assert build_collector_config(settings(CDP_WEBPUSH_ALLOW_LOCAL="true")).allow_local_push is True

"""NHN SMS settings (CDP_NHN_SMS_*): checked by name, and the composition root's SMS channel built
from them: NHN alone, Twilio alone, or the router when both are configured; the tick's SMS results
source where NHN sends SMS."""

from __future__ import annotations

import pytest

from shared.adapters.nhn_sms import NhnSms
from shared.adapters.sms_router import SmsRouter
from shared.adapters.twilio_sms import TwilioSms
from shared.bootstrap import build_available_channels, build_channels, build_sms_results
from shared.config import ConfigError, Settings
from tests.fakes import FakeSecrets

BASE = {"CDP_PROJECT": "p", "CDP_IP_SALT": "s"}
NHN = {"CDP_NHN_SMS_APP_KEY": "app-1", "CDP_NHN_SMS_SENDER_NUMBER": "02-1234-5678"}
TWILIO = {
    "CDP_TWILIO_ACCOUNT_SID": "AC" + "4f" * 16,
    "CDP_TWILIO_MESSAGING_SERVICE_SID": "MG" + "a7" * 16,
    "CDP_TWILIO_STATUS_URL": "https://hooks.shop.example/twilio-status",
}


def settings(*parts: dict[str, str]) -> Settings:
    env = dict(BASE)
    for part in parts:
        env |= part
    return Settings.from_env(env)


def test_nhn_sms_settings_and_their_defaults() -> None:
    channels = settings(NHN, {"CDP_NHN_SMS_LMS_TITLE": "새봄마켓 안내", "CDP_NHN_SMS_TIMEOUT": "4"}).channels
    assert channels.nhn_sms and channels.nhn_sms_sender_number == "0212345678"
    assert (channels.nhn_sms_lms_title, channels.nhn_sms_timeout) == ("새봄마켓 안내", 4.0)
    assert channels.nhn_sms_api_url == "https://sms.api.nhncloudservice.com"
    assert channels.nhn_sms_secret == "nhn-sms-secret-key" and "nhn-sms-secret-key" not in repr(channels)
    assert not settings().channels.nhn_sms


def test_the_sms_channel_is_nhn_alone_twilio_alone_or_the_router_with_both() -> None:
    alone = build_channels(settings(NHN), FakeSecrets())["sms"]
    assert isinstance(alone, NhnSms) and "sms" in build_available_channels(settings(NHN))
    assert isinstance(build_channels(settings(TWILIO), FakeSecrets())["sms"], TwilioSms)
    both = build_channels(settings(NHN, TWILIO), FakeSecrets())["sms"]
    assert isinstance(both, SmsRouter)
    assert isinstance(both.domestic, NhnSms) and isinstance(both.international, TwilioSms)
    assert both.route("+821012345678") is both.domestic and both.route("+14155550100") is both.international
    assert "sms" not in build_channels(settings(), FakeSecrets())
    assert "sms" not in build_available_channels(settings())


def test_the_ticks_sms_results_source_is_nhns_channel_alone_or_behind_the_router() -> None:
    """Only NHN's SMS is polled for results; Twilio's come by webhook."""
    alone, routed = build_sms_results(settings(NHN)), build_sms_results(settings(NHN, TWILIO))
    assert isinstance(alone, NhnSms) and isinstance(routed, NhnSms)
    assert build_sms_results(settings(TWILIO)) is None and build_sms_results(settings()) is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CDP_NHN_SMS_APP_KEY": "app-1"}, "CDP_NHN_SMS_SENDER_NUMBER"),
        ({"CDP_NHN_SMS_SENDER_NUMBER": "0212345678"}, "CDP_NHN_SMS_APP_KEY"),
        (NHN | {"CDP_NHN_SMS_SENDER_NUMBER": "02-123"}, "CDP_NHN_SMS_SENDER_NUMBER"),
        (NHN | {"CDP_NHN_SMS_SENDER_NUMBER": "+82212345678"}, "CDP_NHN_SMS_SENDER_NUMBER"),
        (NHN | {"CDP_NHN_SMS_LMS_TITLE": "가" * 21}, "CDP_NHN_SMS_LMS_TITLE"),
        (NHN | {"CDP_NHN_SMS_LMS_TITLE": "안내 😀"}, "CDP_NHN_SMS_LMS_TITLE"),
        (NHN | {"CDP_NHN_SMS_TIMEOUT": "0"}, "CDP_NHN_SMS_TIMEOUT"),
    ],
)
def test_a_bad_nhn_sms_setting_is_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        settings(env)

from __future__ import annotations

import pytest

from shared.config import ConfigError, Settings


def test_reads_settings_and_sites() -> None:
    s = Settings.from_env(
        {
            "CDP_PROJECT": "p",
            "CDP_SITES": '{"shop": {"origins": ["https://a.example/"]}}',
            "CDP_MAX_EVENTS_PER_BATCH": "20",
            "CDP_IP_SALT": "secret",
        }
    )
    assert s.project == "p" and s.warehouse == "duckdb" and s.max_events_per_batch == 20
    assert s.sites["shop"].allows_origin("https://a.example") and not s.sites["shop"].allows_origin("https://b.example")
    assert s.require_ip_salt() == "secret"
    assert "secret" not in repr(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CDP_PROJECT"),
        ({"CDP_PROJECT": "p", "CDP_WAREHOUSE": "sqlite"}, "CDP_WAREHOUSE"),
        ({"CDP_PROJECT": "p", "CDP_SITES": "{"}, "CDP_SITES"),
        ({"CDP_PROJECT": "p", "CDP_SITES": '{"shop": {"origins": "x"}}'}, "CDP_SITES['shop'].origins"),
        (
            {"CDP_PROJECT": "p", "CDP_SITES": '{"shop": {"origins": [], "analytics_default": "yes"}}'},
            "CDP_SITES['shop'].analytics_default",
        ),
        ({"CDP_PROJECT": "p", "CDP_MAX_BODY_BYTES": "big"}, "CDP_MAX_BODY_BYTES"),
    ],
)
def test_fails_fast_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_env(env)


def test_a_site_lets_analytics_run_by_default_only_when_it_says_so() -> None:
    sites = '{"kr": {"origins": [], "analytics_default": true}, "eu": {"origins": []}}'
    s = Settings.from_env({"CDP_PROJECT": "p", "CDP_SITES": sites})
    assert s.sites["kr"].analytics_default is True and s.sites["eu"].analytics_default is False


def test_missing_salt_is_named_when_needed() -> None:
    with pytest.raises(ConfigError, match="CDP_IP_SALT"):
        Settings.from_env({"CDP_PROJECT": "p"}).require_ip_salt()


def test_duckdb_threads_default_to_duckdbs_own_choice() -> None:
    assert Settings.from_env({"CDP_PROJECT": "p"}).duckdb_threads is None
    assert Settings.from_env({"CDP_PROJECT": "p", "CDP_DUCKDB_THREADS": "1"}).duckdb_threads == 1
    with pytest.raises(ConfigError, match="CDP_DUCKDB_THREADS"):
        Settings.from_env({"CDP_PROJECT": "p", "CDP_DUCKDB_THREADS": "one"})


def test_channel_settings_and_their_errors() -> None:
    env = {
        "CDP_PROJECT": "p",
        "CDP_SMTP_SECURITY": "SSL",
        "CDP_TWILIO_API_URL": "http://127.0.0.1:8731/",
        "CDP_TWILIO_STATUS_URL": "https://hooks.shop.example/twilio-status",
        "CDP_TWILIO_AUTH_TOKEN": "tok-9f2",
    }
    channels = Settings.from_env(env).channels
    assert (channels.smtp_security, channels.smtp_port, channels.smtp_password_secret) == ("ssl", 465, "smtp-password")
    assert channels.twilio_api_url == "http://127.0.0.1:8731"
    assert channels.require_status_url() == "https://hooks.shop.example/twilio-status"
    assert channels.twilio_auth_token == "tok-9f2"
    assert "tok-9f2" not in repr(Settings.from_env(env))
    with pytest.raises(ConfigError, match="CDP_TWILIO_STATUS_URL"):
        Settings.from_env({"CDP_PROJECT": "p"}).channels.require_status_url()


def test_click_settings_their_local_key_and_their_errors() -> None:
    local = Settings.from_env({"CDP_PROJECT": "p"}).clicks
    assert (local.key, local.url, local.link_days) == ("cdp-local-click-key", None, 90)
    env = {"CDP_PROJECT": "p", "CDP_WAREHOUSE": "bigquery"}
    with pytest.raises(ConfigError, match="CDP_CLICK_KEY \\(Secret Manager secret click-key\\)"):
        Settings.from_env(env).clicks.require_key()  # never the local key on BigQuery
    env |= {"CDP_CLICK_KEY": "k-77c1", "CDP_CLICK_URL": "https://c.shop.example", "CDP_CLICK_LINK_DAYS": "30"}
    clicks = Settings.from_env(env).clicks
    assert (clicks.require_key(), clicks.url, clicks.link_days) == ("k-77c1", "https://c.shop.example", 30)
    assert "k-77c1" not in repr(Settings.from_env(env))
    for name, value in (("CDP_CLICK_URL", "http://c.shop.example"), ("CDP_CLICK_URL", "https://c.example/?a=1"),
                        ("CDP_CLICK_LINK_DAYS", "0")):  # fmt: skip
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**env, name: value})


def test_a_cached_secret_is_read_once_per_ttl() -> None:
    from shared.ports.secrets import CachedSecret, SecretMissing

    class Store:
        reads = 0

        def get(self, name: str) -> str:
            self.reads += 1
            if name != "twilio-auth-token":
                raise SecretMissing(name)
            return f"token-{self.reads}"

        def exists(self, name: str) -> bool:
            return name == "twilio-auth-token"

    store = Store()
    cached = CachedSecret(store, "twilio-auth-token", ttl=60)
    assert [cached.get(), cached.get()] == ["token-1", "token-1"] and store.reads == 1
    assert CachedSecret(store, "twilio-auth-token", ttl=0).get() == "token-2"  # expired at once: read again
    with pytest.raises(SecretMissing):
        CachedSecret(store, "nope").get()
    for name, value in [
        ("CDP_SMTP_SECURITY", "tls"),
        ("CDP_SMTP_TIMEOUT", "0"),
        ("CDP_TWILIO_TIMEOUT", "soon"),
        ("CDP_TWILIO_STATUS_URL", "http://hooks.shop.example/twilio-status"),
        ("CDP_TWILIO_STATUS_URL", "https://hooks.shop.example/twilio-status?d=1"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({"CDP_PROJECT": "p", name: value})

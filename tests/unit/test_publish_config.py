"""Destination and publication documents: what is accepted, defaults, and every refusal by field path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.activation.publications import (
    CREATE,
    DEFAULT_API_VERSION,
    InvalidConfig,
    Publication,
    check_pair,
    parse_destination,
    parse_publication,
)

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
TOKEN = "EAAGm0PX4ZCpsBAJZBZCqZAZDZD" + "x" * 150


def facebook(**fields: Any) -> dict[str, Any]:
    return {
        "type": "facebook_custom_audience",
        "ad_account_id": "act_1234567890",
        "access_token_secret": "meta-token",
        **fields,
    }


def publication(**fields: Any) -> dict[str, Any]:
    return {"segment_id": "vip", "destination_id": "meta", "audience_id": "23850000000000001", **fields}


def problems(error: pytest.ExceptionInfo[InvalidConfig]) -> dict[str, str]:
    return {p.path: p.message for p in error.value.problems}


def test_a_facebook_destination_with_defaults() -> None:
    destination = parse_destination("meta", facebook(ad_account_id="1234567890"))
    assert destination.ad_account_id == "act_1234567890"
    assert destination.access_token_secret == "meta-token"
    assert destination.api_version == DEFAULT_API_VERSION == "v26.0"
    assert destination.default_keys == ("EMAIL", "PHONE")


def test_a_destination_takes_a_secret_resource_name_a_version_and_its_keys() -> None:
    secret = "projects/shop-prod/secrets/meta-token/versions/3"
    doc = facebook(access_token_secret=secret, api_version="v27.0", default_keys=["EMAIL", "EXTERN_ID"])
    destination = parse_destination("meta", doc)
    assert (destination.access_token_secret, destination.api_version) == (secret, "v27.0")
    assert destination.default_keys == ("EMAIL", "EXTERN_ID")


def test_a_file_export_needs_no_account_or_token() -> None:
    destination = parse_destination("files", {"type": "file_export", "name": "Naver upload"})
    assert (destination.type, destination.ad_account_id, destination.access_token_secret) == ("file_export", None, None)


@pytest.mark.parametrize("token", [TOKEN, "EAAB12", "A1b2" * 40])
def test_a_token_where_the_secret_name_goes_is_refused_without_being_echoed(token: str) -> None:
    with pytest.raises(InvalidConfig) as error:
        parse_destination("meta", facebook(access_token_secret=token))
    assert error.value.path == "access_token_secret"
    assert "looks like an access token" in str(error.value)
    assert token not in str(error.value)


def test_every_destination_problem_is_listed_with_its_path() -> None:
    doc = {"type": "tiktok", "ad_account_id": "act_12x", "api_version": "26", "default_keys": ["EMAIL", "MAIL"], "x": 1}
    with pytest.raises(InvalidConfig) as error:
        parse_destination("meta", doc)
    found = problems(error)
    assert set(found) == {"x", "type", "ad_account_id", "api_version", "default_keys[1]"}
    assert "one of facebook_custom_audience, file_export" in found["type"]
    assert found["api_version"] == 'expected a Graph API version such as v26.0, got "26"'
    assert found["default_keys[1]"].startswith('unsupported key "MAIL"')


def test_a_facebook_destination_needs_its_account_and_secret() -> None:
    with pytest.raises(InvalidConfig) as error:
        parse_destination("meta", {"type": "facebook_custom_audience"})
    assert list(problems(error)) == ["ad_account_id", "access_token_secret"]


def test_a_publication_with_defaults() -> None:
    parsed = parse_publication("vip-to-meta", publication(), now=NOW)
    assert parsed == Publication("vip-to-meta", "vip", "meta", "23850000000000001", "mirror", None)
    assert parsed.enabled and parsed.schedule is None and not parsed.creates_audience
    destination = parse_destination("meta", facebook())
    assert parsed.keys_for(destination) == ("EMAIL", "PHONE")


def test_a_publication_creating_its_audience_with_keys_schedule_and_mode() -> None:
    doc = publication(
        audience_id=CREATE,
        name="VIP 고객",
        customer_file_source="USER_PROVIDED_ONLY",
        mode="replace",
        keys=["EMAIL", "PHONE", "FN", "LN", "EXTERN_ID"],
        schedule={"cron": "0 6 * * *"},
        enabled=False,
    )
    parsed = parse_publication("vip-to-meta", doc, now=NOW)
    assert parsed.creates_audience and parsed.name == "VIP 고객"
    assert (parsed.customer_file_source, parsed.mode, parsed.enabled) == ("USER_PROVIDED_ONLY", "replace", False)
    assert parsed.keys == ("EMAIL", "PHONE", "FN", "LN", "EXTERN_ID")
    assert parsed.schedule is not None and (parsed.schedule.cron, parsed.schedule.timezone) == (
        "0 6 * * *",
        "Asia/Seoul",
    )
    assert parsed.keys_for(parse_destination("meta", facebook())) == parsed.keys


def test_creating_an_audience_needs_a_source_and_a_name() -> None:
    with pytest.raises(InvalidConfig) as error:
        parse_publication("p", publication(audience_id=CREATE), now=NOW)
    found = problems(error)
    assert list(found) == ["customer_file_source", "name"]
    assert "USER_PROVIDED_ONLY" in found["customer_file_source"]


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"segment_id": None}, "segment_id", "is required"),
        ({"destination_id": "meta/x"}, "destination_id", "is not a document id"),
        ({"audience_id": 23850000000000001}, "audience_id", 'or "create"'),
        ({"audience_id": "act_1"}, "audience_id", 'or "create"'),
        ({"customer_file_source": "USER_PROVIDED_ONLY"}, "customer_file_source", 'only when audience_id is "create"'),
        ({"mode": "sync"}, "mode", "one of mirror, add_only, replace"),
        ({"keys": []}, "keys", "non-empty list"),
        ({"keys": "EMAIL"}, "keys", "non-empty list"),
        ({"keys": ["EMAIL", "email"]}, "keys[1]", 'unsupported key "email"'),
        ({"keys": ["EMAIL", "EMAIL"]}, "keys[1]", "listed twice"),
        ({"schedule": {"cron": "*/5 * * * *"}}, "schedule.cron", "at most once every 60 minutes"),
        ({"schedule": {"cron": "0 6 * * *", "timezone": "Seoul"}}, "schedule.timezone", "unknown time zone"),
        ({"enabled": "yes"}, "enabled", "expected true or false"),
        ({"segment": "vip"}, "segment", "unknown field"),
        ({"id": "other"}, "id", "differs from the document id"),
    ],
)
def test_each_bad_publication_field_is_named(fields: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(InvalidConfig) as error:
        parse_publication("p", publication(**fields), now=NOW)
    assert error.value.path == path
    assert message in error.value.problems[0].message


def test_a_publication_that_is_not_a_map_or_has_a_bad_id() -> None:
    with pytest.raises(InvalidConfig) as error:
        parse_publication("bad id", ["vip"], now=NOW)
    assert list(problems(error)) == ["id", ""]


def test_status_fields_written_back_are_not_edits() -> None:
    parsed = parse_publication("p", publication(status={"state": "ok"}, last_success=NOW), now=NOW)
    assert parsed.segment_id == "vip"


def test_a_pair_that_does_not_fit() -> None:
    files = parse_destination("files", {"type": "file_export"})
    pub = parse_publication("p", publication(mode="replace"), now=NOW)
    assert [p.path for p in check_pair(pub, files)] == ["destination_id", "audience_id", "mode"]
    assert check_pair(pub, parse_destination("meta", facebook())) == []

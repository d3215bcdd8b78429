"""FacebookAudiences on the real facebook-business SDK against the fake Graph API on a free port.

The SDK's session, API object, request classes and error parsing do the work; the fake checks what
Meta checks (token, appsecret_proof, payload shape, hash format, session order) and keeps the
audience's members, so each test asserts who is in, and what went over the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator

import pytest

from devstack.fakes.meta_graph import (
    POLICY_BLOCKED,
    SERVICE_UNAVAILABLE,
    TOKEN_EXPIRED,
    TOO_MANY_REQUESTS,
    MetaGraphFake,
    running_meta_graph,
    throttled,
)
from devstack.processes import free_port
from shared.adapters.facebook_audiences import FacebookAudiences
from shared.ports.audiences import (
    MAX_BATCH_BYTES,
    AudienceGone,
    DestinationError,
    DestinationUnavailable,
    PolicyBlocked,
    Row,
    SessionStuck,
    Throttled,
    TokenExpired,
    UploadSession,
    payload_bytes,
    payload_json,
)

TOKEN = "EAAG-test-token-0f9c2d7e"
APP_SECRET = "app-secret-41b7"
ACCOUNT = "act_1029384756"
SCHEMA = ["EMAIL", "PHONE", "FN"]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def person(n: int, phone: bool = True, name: str | None = None) -> Row:
    """A hashed row as customer_file.hash_rows gives it: None where the person lacks a key."""
    return (sha(f"p{n}@shop.example"), sha(f"8210{n:08d}") if phone else None, sha(name) if name else None)


def stored(row: Row) -> tuple[str, ...]:
    """A row as Meta (and the fake) holds it: blanks as ""."""
    return tuple(value or "" for value in row)


@pytest.fixture
def fake() -> Iterator[MetaGraphFake]:
    with running_meta_graph(access_token=TOKEN, app_secret=APP_SECRET, expired_versions={"v24.0": "v26.0"}) as server:
        yield server


@pytest.fixture
def fb(fake: MetaGraphFake) -> FacebookAudiences:
    return FacebookAudiences(ACCOUNT, TOKEN, app_secret=APP_SECRET, graph_url=fake.url)


def new_audience(fb: FacebookAudiences) -> str:
    return fb.create_audience("VIP buyers", "publication vip", "USER_PROVIDED_ONLY")


def test_create_posts_the_customer_file_audience_under_the_ad_account(
    fake: MetaGraphFake, fb: FacebookAudiences
) -> None:
    audience_id = new_audience(fb)

    (create,) = fake.graph_requests("POST", "customaudiences")
    assert create.path == f"/v26.0/{ACCOUNT}/customaudiences"
    assert {name: create.field(name) for name in ("name", "description", "subtype", "customer_file_source")} == {
        "name": "VIP buyers",
        "description": "publication vip",
        "subtype": "CUSTOM",
        "customer_file_source": "USER_PROVIDED_ONLY",
    }
    assert create.headers["authorization"] == f"Bearer {TOKEN}"
    assert create.query == {} and create.field("access_token") is None
    proof = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert create.form["appsecret_proof"] == [proof]
    assert fake.audiences[audience_id].account == ACCOUNT
    assert audience_id.isdigit()


def test_add_sends_the_hashes_as_given_and_the_audience_holds_exactly_them(
    fake: MetaGraphFake, fb: FacebookAudiences
) -> None:
    audience_id = new_audience(fb)
    rows = [person(1, name="김민지"), person(2, phone=False), person(3, name="josé")]

    result = fb.add(audience_id, SCHEMA, rows)

    assert (result.audience_id, result.num_received, result.num_invalid_entries) == (audience_id, 3, 0)
    assert result.invalid_entry_samples == {}
    (post,) = fake.graph_requests("POST", "users")
    assert post.path == f"/v26.0/{audience_id}/users"
    assert post.field("payload") == payload_json(SCHEMA, rows)
    sent = json.loads(post.field("payload") or "")
    assert sent["data"][1] == [sha("p2@shop.example"), "", ""]  # a missing key is a blank, not sha256("")
    assert sent["data"][0][2] == sha("김민지")  # no second hashing, no stripped Hangul
    assert fake.members(audience_id, SCHEMA) == {stored(row) for row in rows}


def test_remove_sends_its_payload_in_the_body_and_nothing_in_the_url(
    fake: MetaGraphFake, fb: FacebookAudiences
) -> None:
    audience_id = new_audience(fb)
    rows = [person(n) for n in range(5)]
    fb.add(audience_id, SCHEMA, rows)

    result = fb.remove(audience_id, SCHEMA, rows[:2])

    (delete,) = fake.graph_requests("DELETE", "users")
    assert delete.query == {}
    assert delete.form["payload"] == [payload_json(SCHEMA, rows[:2])]
    assert delete.headers["content-type"] == "application/x-www-form-urlencoded"
    assert result.num_received == 2
    assert fake.members(audience_id, SCHEMA) == {stored(row) for row in rows[2:]}


def test_invalid_entries_are_counted_and_sampled_and_not_stored(fake: MetaGraphFake, fb: FacebookAudiences) -> None:
    audience_id = new_audience(fb)
    good = person(1)
    unhashed = ("p2@shop.example", None, None)

    result = fb.add(audience_id, SCHEMA, [good, unhashed])

    assert (result.num_received, result.num_invalid_entries) == (2, 1)
    assert result.invalid_entry_samples == {"p2@shop.example": "EMAIL"}
    assert fake.members(audience_id, SCHEMA) == {stored(good)}


def test_a_replace_session_over_three_batches_leaves_exactly_its_rows(
    fake: MetaGraphFake, fb: FacebookAudiences
) -> None:
    audience_id = new_audience(fb)
    fb.add(audience_id, SCHEMA, [person(n) for n in range(100, 104)])  # yesterday's members
    batches = [[person(n) for n in range(start, start + 3)] for start in (0, 3, 6)]
    session_id = 7_340_000_000_000_000_001

    results = []
    for seq, batch in enumerate(batches, start=1):
        session = UploadSession(session_id, seq, last_batch_flag=seq == 3, estimated_num_total=9)
        results.append(fb.replace(audience_id, SCHEMA, batch, session))
        if seq < 3:  # members change only when the session ends
            assert len(fake.members(audience_id, SCHEMA)) == 4

    assert fake.members(audience_id, SCHEMA) == {stored(row) for batch in batches for row in batch}
    assert [(r.session_id, r.num_received) for r in results] == [(session_id, 3)] * 3
    sent = [json.loads(r.field("session") or "") for r in fake.graph_requests("POST", "usersreplace")]
    assert sent == [
        {"batch_seq": seq, "estimated_num_total": 9, "last_batch_flag": seq == 3, "session_id": session_id}
        for seq in (1, 2, 3)
    ]

    retried = fb.replace(audience_id, SCHEMA, batches[2], UploadSession(session_id, 3, last_batch_flag=True))
    assert retried == results[2]  # a retry after the end changes nothing
    assert len(fake.members(audience_id, SCHEMA)) == 9


def test_a_second_session_while_one_is_open_is_stuck_until_the_open_one_ends(
    fake: MetaGraphFake, fb: FacebookAudiences
) -> None:
    audience_id = new_audience(fb)
    fb.replace(audience_id, SCHEMA, [person(1)], UploadSession(11, 1, last_batch_flag=False))

    with pytest.raises(SessionStuck) as stuck:
        fb.replace(audience_id, SCHEMA, [person(2)], UploadSession(12, 1, last_batch_flag=False))
    assert (stuck.value.code, stuck.value.subcode) == (2650, 1870147)

    fb.replace(audience_id, SCHEMA, [person(1)], UploadSession(11, 2, last_batch_flag=True))  # the closer
    fb.replace(audience_id, SCHEMA, [person(2)], UploadSession(12, 1, last_batch_flag=True))
    assert fake.members(audience_id, SCHEMA) == {stored(person(2))}


@pytest.mark.parametrize("code", [17, 613, 80003, 80004])
def test_throttling_codes_raise_throttled_with_the_wait_meta_announces(
    fake: MetaGraphFake, fb: FacebookAudiences, code: int
) -> None:
    audience_id = new_audience(fb)
    fake.fail_next(throttled(code, regain_minutes=3))

    with pytest.raises(Throttled) as raised:
        fb.add(audience_id, SCHEMA, [person(1)])

    assert (raised.value.code, raised.value.retry_after) == (code, 180.0)
    assert fb.usage().highest_percent == 100
    assert fake.members(audience_id, SCHEMA) == set()
    fb.add(audience_id, SCHEMA, [person(1)])  # and resumes
    assert fake.members(audience_id, SCHEMA) == {stored(person(1))}


def test_a_plain_http_429_is_throttled_too_although_the_sdk_takes_it_for_a_success(
    fake: MetaGraphFake, fb: FacebookAudiences
) -> None:
    audience_id = new_audience(fb)
    fake.fail_next(TOO_MANY_REQUESTS)

    with pytest.raises(Throttled) as raised:
        fb.remove(audience_id, SCHEMA, [person(1)])

    assert (raised.value.http_status, raised.value.retry_after) == (429, 30.0)


def test_provider_errors_map_to_their_kinds(fake: MetaGraphFake, fb: FacebookAudiences) -> None:
    audience_id = new_audience(fb)

    fake.fail_next(SERVICE_UNAVAILABLE)
    with pytest.raises(DestinationUnavailable):
        fb.add(audience_id, SCHEMA, [person(1)])

    with pytest.raises(DestinationError) as generic:
        fb.add(audience_id, ["EMAIL", "SHOE_SIZE"], [(sha("a@b.example"), "270")])
    assert type(generic.value) is DestinationError
    assert "Invalid schema key 'SHOE_SIZE'" in str(generic.value) and generic.value.code == 100

    fake.flag_audience(audience_id)
    with pytest.raises(PolicyBlocked) as blocked:
        fb.add(audience_id, SCHEMA, [person(1)])
    assert (blocked.value.code, blocked.value.subcode) == (100, 1713230)
    assert "Audience Upload Blocked" in str(blocked.value)
    info = fb.audience_info(audience_id)
    assert info.operation_status is not None and info.operation_status.code == 471

    fake.delete_audience(audience_id)
    with pytest.raises(AudienceGone) as gone:
        fb.remove(audience_id, SCHEMA, [person(1)])
    assert (gone.value.code, gone.value.subcode, gone.value.http_status) == (100, 33, 400)
    assert gone.value.trace_id

    fake.expire_token()
    with pytest.raises(TokenExpired) as expired:
        fb.create_audience("x", "", "USER_PROVIDED_ONLY")
    assert (expired.value.code, expired.value.subcode) == (190, 463)
    assert POLICY_BLOCKED.code == 100 and TOKEN_EXPIRED.subcode == 463


def test_a_wrong_app_secret_is_refused_by_the_fake(fake: MetaGraphFake) -> None:
    wrong = FacebookAudiences(ACCOUNT, TOKEN, app_secret="not-the-secret", graph_url=fake.url)

    with pytest.raises(DestinationError, match="Invalid appsecret_proof"):
        new_audience(wrong)


def test_audience_info_reports_size_and_statuses(fake: MetaGraphFake, fb: FacebookAudiences) -> None:
    audience_id = new_audience(fb)
    fb.add(audience_id, SCHEMA, [person(n) for n in range(120)])

    info = fb.audience_info(audience_id)

    assert (info.audience_id, info.name) == (audience_id, "VIP buyers")
    assert (info.approximate_count_lower_bound, info.approximate_count_upper_bound) == (120, 120)
    assert info.operation_status is not None and info.operation_status.code == 200
    assert info.delivery_status is not None and info.delivery_status.code == 200
    (read,) = fake.graph_requests("GET")
    assert read.query["fields"] == [
        "name,approximate_count_lower_bound,approximate_count_upper_bound,operation_status,delivery_status"
    ]


def test_usage_headers_give_the_highest_percentage(fake: MetaGraphFake, fb: FacebookAudiences) -> None:
    audience_id = new_audience(fb)
    assert fb.usage().highest_percent == 0

    fake.report_usage(72, account_percent=85.5)
    fb.add(audience_id, SCHEMA, [person(1)])

    assert (fb.usage().highest_percent, fb.usage().regain_access_seconds) == (85.5, 0.0)
    fake.report_usage(40)
    fb.add(audience_id, SCHEMA, [person(2)])
    assert fb.usage().highest_percent == 85.5  # the account header of the same answer still says so


def test_a_version_warning_header_is_logged_once(fake: MetaGraphFake, caplog: pytest.LogCaptureFixture) -> None:
    old = FacebookAudiences(ACCOUNT, TOKEN, app_secret=APP_SECRET, graph_url=fake.url, api_version="v24.0")
    caplog.set_level(logging.WARNING, logger="shared.adapters.facebook_audiences")

    audience_id = new_audience(old)
    old.add(audience_id, SCHEMA, [person(1)])

    warnings = [r for r in caplog.records if r.name == "shared.adapters.facebook_audiences"]
    assert [r.getMessage() for r in warnings] == [
        "Graph API version warning: v24.0 has expired; this call was answered by v26.0."
    ]
    assert warnings[0].levelno == logging.WARNING and vars(warnings[0])["api_version"] == "v24.0"


def test_the_current_version_gets_no_warning(fb: FacebookAudiences, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    fb.add(new_audience(fb), SCHEMA, [person(1)])
    assert not [r for r in caplog.records if "version" in r.getMessage()]


def test_the_token_appears_in_no_log_line_url_or_error(fake: MetaGraphFake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line, query string included
    fb = FacebookAudiences(ACCOUNT, TOKEN, app_secret=APP_SECRET, graph_url=fake.url, api_version="v24.0")
    audience_id = new_audience(fb)
    fb.add(audience_id, SCHEMA, [person(1)])
    fb.remove(audience_id, SCHEMA, [person(1)])
    fb.audience_info(audience_id)
    errors: list[Exception] = []
    fake.fail_next(throttled(80003))
    fake.fail_next(POLICY_BLOCKED)
    for _ in range(2):
        try:
            fb.add(audience_id, SCHEMA, [person(2)])
        except DestinationError as exc:
            errors.append(exc)
    fake.expire_token()
    with pytest.raises(TokenExpired) as expired:
        fb.audience_info(audience_id)
    errors.append(expired.value)
    offline = FacebookAudiences(ACCOUNT, TOKEN, graph_url=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(DestinationUnavailable) as unreachable:
        offline.add(audience_id, SCHEMA, [person(3)])
    errors.append(unreachable.value)

    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "POST /v24.0/" in logged and "DELETE /v24.0/" in logged  # the request lines were logged
    assert TOKEN not in logged
    assert [type(e).__name__ for e in errors] == [
        "Throttled",
        "PolicyBlocked",
        "TokenExpired",
        "DestinationUnavailable",
    ]
    for error in errors:
        assert TOKEN not in f"{error} {error!r} {vars(error)} {error.__cause__} {error.__context__}"
    assert TOKEN not in repr(fb)
    for request in fake.requests:
        assert TOKEN not in request.path + json.dumps(request.query) + json.dumps(request.form)


def test_batches_over_the_limits_are_refused_before_any_request(fake: MetaGraphFake, fb: FacebookAudiences) -> None:
    audience_id = new_audience(fb)
    before = len(fake.requests)
    many = [(sha(f"{n}"),) for n in range(10_001)]
    over_bytes = [person(n) for n in range(450)]
    assert payload_bytes(SCHEMA, over_bytes) > MAX_BATCH_BYTES

    with pytest.raises(ValueError, match="10,001 rows is over Meta's 10,000"):
        fb.add(audience_id, ["EMAIL"], many)
    with pytest.raises(ValueError, match="over the 60,000-byte cap"):
        fb.remove(audience_id, SCHEMA, over_bytes)
    with pytest.raises(ValueError, match="row 0 has 2 values for a schema of 3 keys"):
        fb.replace(audience_id, SCHEMA, [(sha("a"), sha("b"))], UploadSession(5, 1, last_batch_flag=True))
    with pytest.raises(ValueError, match="at least one row"):
        fb.add(audience_id, SCHEMA, [])
    with pytest.raises(ValueError, match="Graph id"):
        fb.add("../act_1/customaudiences", SCHEMA, [person(1)])

    assert len(fake.requests) == before


def test_the_largest_batch_under_the_cap_is_accepted_whole(fake: MetaGraphFake, fb: FacebookAudiences) -> None:
    audience_id = new_audience(fb)
    rows: list[Row] = []
    while payload_bytes(SCHEMA, [*rows, person(len(rows))]) <= MAX_BATCH_BYTES:
        rows.append(person(len(rows)))

    result = fb.add(audience_id, SCHEMA, rows)

    (post,) = fake.graph_requests("POST", "users")
    assert len((post.field("payload") or "").encode()) == payload_bytes(SCHEMA, rows) <= MAX_BATCH_BYTES
    assert result.num_received == len(rows) == len(fake.members(audience_id, SCHEMA))


def test_payload_bytes_is_the_size_of_the_payload_sent() -> None:
    rows: list[Row] = [person(1, name="김민지"), ("", None, "x"), (None, None, None)]
    for count in range(len(rows) + 1):
        assert payload_bytes(SCHEMA, rows[:count]) == len(payload_json(SCHEMA, rows[:count]).encode())

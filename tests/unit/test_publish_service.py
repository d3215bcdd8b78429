"""publish_audiences on DuckDB with an in-memory AudienceDestination: first upload, churn of every
kind, reruns, crashes, add_only, replace sessions, throttling, refusals, dry runs and the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.activation import ledger
from shared.activation.customer_file import hash_row
from shared.activation.deltas import row_hash
from shared.activation.publications import parse_destination
from shared.adapters.folder_blobs import FolderBlobs
from shared.ports.audiences import (
    AudienceGone,
    DestinationUnavailable,
    PolicyBlocked,
    SessionStuck,
    Throttled,
    TokenExpired,
    Usage,
    payload_json,
)
from shared.services.publish_audiences import Report, publish, session_id_for
from tests.builders import SALT
from tests.fake_audiences import Crash, FakeAudiences
from tests.publish_world import KEYS, World, facebook, publication, segment


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def port() -> FakeAudiences:
    return FakeAudiences()


def run(world: World, port: FakeAudiences, audience: str, run_id: str, **options: Any) -> Report:
    pub = options.pop("pub", None) or publication(audience, **options.pop("fields", {}))
    return publish(
        world.warehouse, port, pub, options.pop("destination", facebook()), segment(), world.tick(), run_id,
        salt=SALT, sleep=options.pop("sleep", _no_sleep), **options,
    )  # fmt: skip


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s unexpectedly")


def shop(world: World, count: int = 0) -> dict[str, Any]:
    """Ann (all keys, Hangul names), Bob (refused consent), Cat (e-mail and a Latin name), Dan
    (never decided), Eve (granted, no contact key at all); plus `count` generated members."""
    people = {
        "ann": world.person("ann", email="ann@example.com", phone="010-1234-5678", given="민지", family="김"),
        "bob": world.person("bob", email="bob@example.com", consent=False),
        "cat": world.person("cat", email="Cat@Example.com", given="Cat"),
        "dan": world.person("dan", email="dan@example.com", consent=None),
        "eve": world.person("eve"),
    }
    for n in range(count):
        people[f"p{n:03d}"] = world.person(f"p{n:03d}", email=f"p{n:03d}@example.com", phone=f"010-5555-{n:04d}")
    return people


def ledger_rows(world: World, **where: Any) -> list[dict[str, Any]]:
    rows = world.warehouse.query("select * from audiences.publication_ledger order by customer_id, added_at")
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def log_rows(world: World) -> list[dict[str, Any]]:
    return world.warehouse.query("select * from audiences.publish_log order by sent_at, batch_seq, attempt")


def held_customers(world: World) -> set[str]:
    return {r["customer_id"] for r in ledger_rows(world, removed_at=None)}


def test_first_upload_sends_exactly_the_consenting_members_with_a_key(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    report = run(world, port, audience, "r1")
    assert report.state == "ok" and report.failure is None
    assert port.held(audience) == world.desired() and len(port.held(audience)) == 2  # ann, cat
    ann = hash_row(people["ann"].profile(), KEYS)
    assert ann[2] is not None and ann[2] == hash_row({"given_name": "민지"}, ("FN",))[0]  # Hangul kept
    assert (report.added, report.removed, report.batches, report.invalid) == (2, {}, 1, 0)
    assert (report.staged.members, report.staged.eligible, report.staged.desired) == (5, 3, 2)  # eve has no key
    assert report.audience_size == (2, 2)
    assert report.warnings == ["delivery status 300: This audience is too small to use."]
    held = ledger_rows(world, removed_at=None)
    assert {r["customer_id"] for r in held} == {"c_ann", "c_cat"}
    grants = world.warehouse.query(
        "select consent_event_id, subject_value from raw.consent where purpose = 'ad_user_data' and granted"
    )
    by_member = {r["subject_value"]: r["consent_event_id"] for r in grants}
    for row in held:
        assert row["keys"] == list(KEYS) and row["audience_id"] == audience and row["added_run"] == "r1"
        assert row["consent_event_id"] == by_member[row["customer_id"].replace("c_", "m-")]
        assert row["row_hash"] == row_hash(KEYS, tuple(h or None for h in row["hashes"]))
    [entry] = log_rows(world)
    assert (entry["op"], entry["rows"], entry["num_received"], entry["outcome"], entry["batch_seq"]) == (
        "add", 2, 2, "ok", 1,
    )  # fmt: skip


def test_a_rerun_sends_nothing(world: World, port: FakeAudiences) -> None:
    shop(world, 30)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    first = run(world, port, audience, "r1", max_batch_rows=10)
    calls = len(port.sent())
    again = run(world, port, audience, "r2", max_batch_rows=10)
    same_run = run(world, port, audience, "r1", max_batch_rows=10)  # a redelivered message
    assert first.added == 32 and first.batches == 4
    assert (again.added, again.removed, again.batches) == (0, {}, 0)
    assert (same_run.added, same_run.batches) == (0, 0)
    assert [c.op for c in port.sent()[calls:]] == ["info", "info"]
    assert len(ledger_rows(world)) == 32 and port.held(audience) == world.desired()


def test_churn_removes_each_leaver_with_its_reason(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    fay = world.person("fay", email="fay@example.com")
    gus = world.person("gus", email="gus@example.com", phone="+82 10 9999 0000")
    hal = world.person("hal", phone="010-2222-3333")
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r1")
    assert len(port.held(audience)) == 5
    old_cat = hash_row(people["cat"].profile(), KEYS)

    world.leave(fay)  # left the segment
    world.decide(gus, False)  # withdrew ad_user_data
    world.erase(hal, ledger.LedgerRemovals(world.warehouse))  # a privacy erasure
    world.change(people["cat"], email="cat@new.example")  # a key changed
    world.decide(people["bob"], True)  # bob grants: added
    report = run(world, port, audience, "r2")

    assert report.removed == {"left_segment": 1, "no_consent": 1, "erased": 1, "key_changed": 1}
    assert report.added == 2  # cat's new row, bob
    assert port.held(audience) == world.desired()
    assert (KEYS, old_cat) not in port.held(audience)
    reasons = {r["customer_id"]: r["removed_reason"] for r in ledger_rows(world) if r["removed_at"] is not None}
    assert reasons == {"c_fay": "left_segment", "c_gus": "no_consent", "c_cat": "key_changed"}  # hal: erased whole
    assert held_customers(world) == {"c_ann", "c_bob", "c_cat"}
    assert ledger_rows(world, customer_id="c_hal") == []
    assert world.warehouse.query("select * from audiences.publication_erasures") == []
    assert world.warehouse.query("select * from privacy.audience_removals") == []
    removes = [c for c in port.sent("remove")]
    assert [len(c.rows) for c in removes] == [4] and removes[0].schema == KEYS  # old rows, as they were sent
    # the next run has nothing to do
    assert run(world, port, audience, "r3").batches == 0


def test_an_erasure_keeps_the_hashes_until_the_platform_is_told(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r1")
    ann_row = (KEYS, hash_row(people["ann"].profile(), KEYS))
    world.erase(people["ann"], ledger.LedgerRemovals(world.warehouse))
    assert ledger_rows(world, customer_id="c_ann") == []  # the erasure deleted the ledger rows
    [kept] = world.warehouse.query("select customer_id, hashes from audiences.publication_erasures")
    assert kept["customer_id"] == "c_ann" and tuple(h or None for h in kept["hashes"]) == ann_row[1]
    assert world.warehouse.query("select customer_id from privacy.audience_removals") == [{"customer_id": "c_ann"}]
    port.fail_next(DestinationUnavailable("Graph API unreachable"))  # the first attempt fails: nothing forgotten
    failed = run(world, port, audience, "r2")
    assert failed.state == "retry" and ann_row in port.held(audience)
    assert len(world.warehouse.query("select * from audiences.publication_erasures")) == 1
    report = run(world, port, audience, "r3")
    assert report.removed == {"erased": 1} and ann_row not in port.held(audience)
    assert world.warehouse.query("select * from audiences.publication_erasures") == []
    assert world.warehouse.query("select * from privacy.audience_removals") == []


def test_erasing_someone_never_uploaded_leaves_nothing_to_remove(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r1")
    world.erase(people["bob"], ledger.LedgerRemovals(world.warehouse))  # refused consent: never uploaded
    assert world.warehouse.query("select * from audiences.publication_erasures") == []
    assert world.warehouse.query("select * from privacy.audience_removals") == []
    assert run(world, port, audience, "r2").batches == 0


def test_a_crash_before_a_batch_leaves_the_rest_to_the_next_run(world: World, port: FakeAudiences) -> None:
    shop(world, 58)  # 60 rows to add: 6 batches of 10
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.fail_on_batch[3] = Crash("killed while sending the third batch")
    with pytest.raises(Crash):
        run(world, port, audience, "r1", max_batch_rows=10)
    assert len(held_customers(world)) == 20 and len(port.held(audience)) == 20
    sent_before = port.rows_sent("add")
    report = run(world, port, audience, "r2", max_batch_rows=10)
    assert report.added == 40 and port.rows_sent("add") - sent_before == 40
    assert port.held(audience) == world.desired() and len(ledger_rows(world)) == 60


def test_a_crash_after_the_platform_took_a_batch_resends_only_that_one(world: World, port: FakeAudiences) -> None:
    shop(world, 58)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.crash_after_call = 3  # the third batch is applied, then the process dies before recording it
    with pytest.raises(Crash):
        run(world, port, audience, "r1", max_batch_rows=10)
    assert len(held_customers(world)) == 20 and len(port.held(audience)) == 30
    report = run(world, port, audience, "r1", max_batch_rows=10)  # the same run, redelivered
    assert report.added == 40 and port.held(audience) == world.desired()
    assert len(ledger_rows(world)) == 60 == len({r["customer_id"] for r in ledger_rows(world)})
    assert [r["batch_seq"] for r in log_rows(world) if r["run_id"] == "r1"] == [1, 2, 3, 4, 5, 6]


def test_add_only_never_removes(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r1", fields={"mode": "add_only"})
    first = port.held(audience)
    world.leave(people["ann"])
    world.change(people["cat"], email="cat@new.example")
    report = run(world, port, audience, "r2", fields={"mode": "add_only"})
    assert (report.added, report.removed) == (1, {})
    assert port.sent("remove") == [] and first < port.held(audience)
    assert len(port.held(audience)) == 3  # ann stays; cat's old and new rows


def test_replace_sends_one_session_and_the_audience_becomes_the_desired_set(world: World, port: FakeAudiences) -> None:
    people = shop(world, 23)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.members[audience] = {(KEYS, ("f" * 64, None, None, None))}  # someone uploaded by hand
    report = run(world, port, audience, "r1", fields={"mode": "replace"}, max_batch_rows=10)
    calls = port.sent("replace")
    expected = session_id_for("vip-meta", audience, 1)
    assert [(c.session.session_id, c.session.batch_seq, c.session.last_batch_flag) for c in calls] == [  # type: ignore[union-attr]
        (expected, 1, False), (expected, 2, False), (expected, 3, True),
    ]  # fmt: skip
    assert {c.session.estimated_num_total for c in calls} == {25}  # type: ignore[union-attr]
    assert port.held(audience) == world.desired() and report.added == 25
    world.leave(people["ann"])
    world.change(people["cat"], email="cat@new.example")
    second = run(world, port, audience, "r2", fields={"mode": "replace"}, max_batch_rows=10)
    assert port.held(audience) == world.desired() and len(port.held(audience)) == 24
    assert second.removed == {"replaced": 2}  # ann's row and cat's old one
    assert {c.session.session_id for c in port.sent("replace")[3:]} == {session_id_for("vip-meta", audience, 2)}  # type: ignore[union-attr]
    assert sorted(r["removed_reason"] for r in ledger_rows(world) if r["removed_at"]) == ["replaced", "replaced"]


def test_an_interrupted_replace_session_is_resumed(world: World, port: FakeAudiences) -> None:
    shop(world, 23)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.crash_after_call = 2  # batch 2 applied, not recorded
    with pytest.raises(Crash):
        run(world, port, audience, "r1", fields={"mode": "replace"}, max_batch_rows=10)
    port.members[audience] = set()  # nothing replaced yet
    report = run(world, port, audience, "r2", fields={"mode": "replace"}, max_batch_rows=10)
    sessions = [(c.session.session_id, c.session.batch_seq, len(c.rows)) for c in port.sent("replace")]  # type: ignore[union-attr]
    sid = session_id_for("vip-meta", audience, 1)
    assert sessions == [(sid, 1, 10), (sid, 2, 10), (sid, 2, 10), (sid, 3, 5)]  # batch 2 resent, then the rest
    assert report.failure is None and port.held(audience) == world.desired()


def test_a_stuck_session_is_ended_by_the_next_run(world: World, port: FakeAudiences) -> None:
    shop(world, 23)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.fail_on_batch[2] = SessionStuck("a replace session is still open", code=2650, subcode=1870147)
    stuck = run(world, port, audience, "r1", fields={"mode": "replace"}, max_batch_rows=10)
    assert stuck.state == "retry" and stuck.failure is not None and stuck.failure.path == "audience_id"
    assert "next run ends it" in stuck.status(world.clock)["error"]
    first = session_id_for("vip-meta", audience, 1)
    [open_session] = ledger.sessions(world.warehouse, "vip-meta")
    assert (open_session.session_id, open_session.last_ok_seq, open_session.stuck) == (first, 1, True)
    report = run(world, port, audience, "r2", fields={"mode": "replace"}, max_batch_rows=10)
    calls = [
        (c.session.session_id, c.session.batch_seq, c.session.last_batch_flag, len(c.rows))  # type: ignore[union-attr]
        for c in port.sent("replace")
    ]
    second = session_id_for("vip-meta", audience, 2)
    assert calls[2:] == [(first, 2, True, 1), (second, 1, False, 10), (second, 2, False, 10), (second, 3, True, 5)]
    assert report.failure is None and port.held(audience) == world.desired()


def test_replace_with_nobody_left_removes_the_held_rows(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r1", fields={"mode": "replace"})
    for name in ("ann", "cat"):
        world.leave(people[name])
    report = run(world, port, audience, "r2", fields={"mode": "replace"})
    assert port.held(audience) == set() and report.removed == {"left_segment": 2}


def test_throttling_waits_for_the_hint_and_resumes(world: World, port: FakeAudiences) -> None:
    shop(world, 18)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    slept: list[float] = []
    run(world, port, audience, "r0", max_batch_rows=10)  # 20 rows held
    world.person("new", email="new@example.com")
    port.fail_next(Throttled("too many calls", retry_after=30, code=80003), times=2)
    report = run(world, port, audience, "r1", sleep=slept.append)
    assert slept == [30, 30] and report.waited_seconds == 60 and report.failure is None
    assert port.held(audience) == world.desired()
    tries = [(r["attempt"], r["outcome"]) for r in log_rows(world) if r["run_id"] == "r1"]
    assert tries == [(1, "throttled"), (2, "throttled"), (3, "ok")]


def test_throttling_beyond_the_limit_stops_and_the_next_run_resumes(world: World, port: FakeAudiences) -> None:
    shop(world, 18)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.fail_next(Throttled("too many calls", retry_after=600, code=17), times=2)
    slept: list[float] = []
    report = run(world, port, audience, "r1", sleep=slept.append, max_batch_rows=10)
    assert report.state == "retry" and slept == [600] and report.added == 0
    assert run(world, port, audience, "r2", max_batch_rows=10).added == 20
    assert port.held(audience) == world.desired()


def test_high_usage_slows_the_run_down(world: World, port: FakeAudiences) -> None:
    shop(world, 8)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.usage = lambda: Usage(highest_percent=95.0, regain_access_seconds=0.0)  # type: ignore[method-assign]
    slept: list[float] = []
    run(world, port, audience, "r1", sleep=slept.append, max_batch_rows=5)
    assert slept == [10.0, 10.0]  # each answer reported 95 %


def test_usage_no_answer_repeats_is_paced_for_once(world: World, port: FakeAudiences) -> None:
    shop(world, 8)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.current_usage = Usage(highest_percent=100.0, regain_access_seconds=42.0)  # kept from one answer
    slept: list[float] = []
    run(world, port, audience, "r1", sleep=slept.append, max_batch_rows=5)
    assert slept == [42.0]


@pytest.mark.parametrize(
    ("error", "path", "words"),
    [
        (PolicyBlocked("Audience Upload Blocked", code=100, subcode=1713230), "audience_id", "restricted audience"),
        (TokenExpired("Session has expired", code=190), "destination_id", "secret meta-token"),
        (AudienceGone("does not exist", code=100, subcode=33), "audience_id", "was deleted"),
    ],
)
def test_a_refusal_a_person_must_fix_stops_the_run_with_a_status(
    world: World, port: FakeAudiences, error: Exception, path: str, words: str
) -> None:
    shop(world, 18)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.fail_next(error)
    report = run(world, port, audience, "r1", max_batch_rows=10)
    assert report.state == "error" and report.failure is not None and report.failure.path == path
    status = report.status(world.clock)
    assert status["state"] == "error" and status["error"].startswith(f"{path}: ") and words in status["error"]
    assert ledger_rows(world) == [] and port.held(audience) == set() and len(port.sent("add")) == 1
    [entry] = log_rows(world)
    assert entry["outcome"] == "error" and entry["error"].startswith(type(error).__name__)


def test_a_restricted_audience_is_refused_before_anything_is_recorded(world: World, port: FakeAudiences) -> None:
    shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    port.restricted.add(audience)
    report = run(world, port, audience, "r1")
    assert report.failure is not None and "operation status 471" in report.failure.message
    assert ledger_rows(world) == []


def test_invalid_entries_are_counted_and_sampled_without_the_value(world: World, port: FakeAudiences) -> None:
    people = shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    email = hash_row(people["cat"].profile(), KEYS)[0]
    assert email is not None
    port.unreadable = frozenset({email})
    report = run(world, port, audience, "r1")
    assert report.invalid == 1
    [entry] = log_rows(world)
    assert entry["num_invalid_entries"] == 1 and entry["invalid_entry_samples"] == [f"EMAIL: {email[:8]}…"]


def test_a_dry_run_writes_the_request_bodies_and_sends_nothing(
    world: World, port: FakeAudiences, tmp_path: Path
) -> None:
    people = shop(world, 8)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r0")
    leaving = {hash_row(people[name].profile(), KEYS) for name in ("ann", "cat")}
    world.leave(people["ann"])
    world.change(people["cat"], email="cat@new.example")
    calls, ledger_before = len(port.sent()), ledger_rows(world)
    report = run(world, port, audience, "dry", dry_run=True, outbox=FolderBlobs(tmp_path), max_batch_rows=5)
    assert len(port.sent()) == calls and ledger_rows(world) == ledger_before and log_rows(world)[-1]["run_id"] == "r0"
    assert report.state == "dry_run" and report.removed == {"left_segment": 1, "key_changed": 1} and report.added == 1
    bodies = [json.loads(Path(p).read_text()) for p in report.outbox]
    assert [(b["method"], b["path"], b["rows"]) for b in bodies] == [
        ("DELETE", f"/v26.0/{audience}/users", 2),
        ("POST", f"/v26.0/{audience}/users", 1),
    ]
    removed = json.loads(bodies[0]["form"]["payload"])
    assert removed["schema"] == list(KEYS)
    assert {tuple(None if v == "" else v for v in row) for row in removed["data"]} == leaving
    assert bodies[1]["form"] == {"payload": payload_json(KEYS, [hash_row(people["cat"].profile(), KEYS)])}
    real = run(world, port, audience, "r1", max_batch_rows=5)  # the real run sends what the dry run wrote
    assert [c.rows for c in port.sent()[calls:] if c.op != "info"] == [
        [tuple(None if v == "" else v for v in row) for row in json.loads(b["form"]["payload"])["data"]] for b in bodies
    ]
    assert real.added == 1 and port.held(audience) == world.desired()


def test_a_dry_run_of_a_replace_shows_its_session(world: World, port: FakeAudiences, tmp_path: Path) -> None:
    shop(world, 8)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    report = run(world, port, audience, "dry", fields={"mode": "replace"}, dry_run=True, outbox=FolderBlobs(tmp_path))
    [body] = [json.loads(Path(p).read_text()) for p in report.outbox]
    session = json.loads(body["form"]["session"])
    assert body["path"].endswith("/usersreplace") and body["method"] == "POST"
    assert session == {
        "session_id": session_id_for("vip-meta", audience, 1), "batch_seq": 1, "last_batch_flag": True,
        "estimated_num_total": 10,
    }  # fmt: skip


def test_an_audience_to_create_is_created_once(world: World, port: FakeAudiences) -> None:
    shop(world)
    fields = {"audience_id": "create", "name": "VIP", "customer_file_source": "USER_PROVIDED_ONLY"}
    pub = publication("create", **{k: v for k, v in fields.items() if k != "audience_id"})
    first = run(world, port, "", "r1", pub=pub)
    again = run(world, port, "", "r2", pub=pub)
    assert first.created_audience and not again.created_audience
    assert first.audience_id == again.audience_id and [c.op for c in port.sent("create")] == ["create"]
    assert port.names[str(first.audience_id)] == "VIP" and port.held(str(first.audience_id)) == world.desired()


def test_bad_input_sends_nothing(world: World, port: FakeAudiences) -> None:
    shop(world)
    audience = port.create_audience("vip", "", "USER_PROVIDED_ONLY")
    export = parse_destination("meta", {"type": "file_export"})
    report = run(world, port, audience, "r1", destination=export)
    assert report.failure is not None and report.failure.path == "destination_id" and not report.failure.retry
    assert "file_export destination" in report.failure.message
    elsewhere = run(world, port, audience, "r2", pub=publication(audience, segment_id="other"))
    assert elsewhere.failure is not None and elsewhere.failure.path == "segment_id"
    off = run(world, port, audience, "r3", fields={"enabled": False})
    assert off.state == "disabled"
    assert [c.op for c in port.sent()] == ["create"] and ledger_rows(world) == []
    assert world.warehouse.query("select * from audiences.publication_staging") == []

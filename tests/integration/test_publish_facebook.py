"""publish_audiences through the real FacebookAudiences adapter (facebook-business SDK) against the
fake Graph API on a free port: after each run, with churn between runs, the fake's audience holds
exactly the desired rows; throttling from Graph is waited out, a restricted audience stops the run,
and replace sessions go over /usersreplace."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devstack.fakes.meta_graph import MetaGraphFake, running_meta_graph, throttled
from shared.activation.ledger import LedgerRemovals
from shared.adapters.facebook_audiences import FacebookAudiences
from shared.ports.audiences import Row
from shared.services.publish_audiences import Report, publish
from tests.builders import SALT
from tests.publish_world import KEYS, World, facebook, publication, segment

TOKEN = "EAAG-publish-test-token"


@pytest.fixture
def graph() -> Iterator[MetaGraphFake]:
    with running_meta_graph(access_token=TOKEN) as fake:
        yield fake


def adapter(graph: MetaGraphFake) -> FacebookAudiences:
    return FacebookAudiences("act_1234567890", TOKEN, graph_url=graph.url, timeout=10)


def on_graph(rows: set[tuple[tuple[str, ...], Row]]) -> set[tuple[str, ...]]:
    """Desired rows as Graph keeps them: blanks as ""."""
    return {tuple("" if value is None else value for value in row) for _, row in rows}


def shop(world: World, count: int) -> dict[str, object]:
    people: dict[str, object] = {
        "ann": world.person("ann", email="ann@example.com", phone="010-1234-5678", given="민지", family="김"),
        "bob": world.person("bob", email="bob@example.com", consent=False),
        "cat": world.person("cat", email="cat@example.com", given="José", family="Núñez"),
        "dan": world.person("dan", phone="+82 10 2222 3333"),
    }
    for n in range(count):
        people[f"p{n:03d}"] = world.person(f"p{n:03d}", email=f"p{n:03d}@example.com", phone=f"010-7000-{n:04d}")
    return people


def run(world: World, port: FacebookAudiences, audience: str, run_id: str, **options: object) -> Report:
    fields = options.pop("fields", {})
    assert isinstance(fields, dict)
    return publish(
        world.warehouse, port, publication(audience, **fields), facebook(), segment(), world.tick(), run_id,
        salt=SALT, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_mirror_runs_with_churn_keep_the_graph_audience_equal_to_the_desired_set(graph: MetaGraphFake) -> None:
    world, port = World(), adapter(graph)
    people = shop(world, 450)  # 453 rows, most of 142 bytes: two requests under the 60 KB cap
    audience = port.create_audience("VIP", "publish test", "USER_PROVIDED_ONLY")
    first = run(world, port, audience, "r1")
    assert first.failure is None and first.added == 453 and first.batches == 2
    assert graph.members(audience, KEYS) == on_graph(world.desired())
    assert first.audience_size == (453, 453)

    world.leave(people["p000"])  # type: ignore[arg-type]
    world.decide(people["p001"], False)  # type: ignore[arg-type]
    world.erase(people["p002"], LedgerRemovals(world.warehouse))  # type: ignore[arg-type]
    world.change(people["cat"], email="cat@new.example")  # type: ignore[arg-type]
    world.decide(people["bob"], True)  # type: ignore[arg-type]
    second = run(world, port, audience, "r2")
    assert second.removed == {"left_segment": 1, "no_consent": 1, "erased": 1, "key_changed": 1}
    assert second.added == 2
    assert graph.members(audience, KEYS) == on_graph(world.desired())
    deletes = graph.graph_requests("DELETE", "users")
    assert len(deletes) == 1 and deletes[0].query == {} and deletes[0].field("payload")  # the body, not the URL

    third = run(world, port, audience, "r3")
    assert third.batches == 0 and graph.members(audience, KEYS) == on_graph(world.desired())


def test_graph_throttling_is_waited_out(graph: MetaGraphFake) -> None:
    world, port = World(), adapter(graph)
    shop(world, 10)
    audience = port.create_audience("VIP", "", "USER_PROVIDED_ONLY")
    graph.fail_next(throttled(80003, regain_minutes=2))
    graph.report_usage(12)  # the answers after it: usage back to normal
    slept: list[float] = []
    report = run(world, port, audience, "r1", sleep=slept.append)
    assert report.failure is None and slept == [120.0]
    assert graph.members(audience, KEYS) == on_graph(world.desired())


def test_a_restricted_audience_stops_the_run_for_the_marketer(graph: MetaGraphFake) -> None:
    world, port = World(), adapter(graph)
    shop(world, 3)
    audience = port.create_audience("VIP", "", "USER_PROVIDED_ONLY")
    graph.flag_audience(audience)
    report = run(world, port, audience, "r1")
    assert report.state == "error" and report.failure is not None and report.failure.path == "audience_id"
    assert "Audience Upload Blocked" in report.failure.message and graph.members(audience, KEYS) == set()
    assert world.warehouse.query("select count(*) as n from audiences.publication_ledger") == [{"n": 0}]


def test_replace_sessions_over_usersreplace(graph: MetaGraphFake) -> None:
    world, port = World(), adapter(graph)
    people = shop(world, 450)
    audience = port.create_audience("VIP", "", "USER_PROVIDED_ONLY")
    run(world, port, audience, "r0")  # mirrored first
    world.leave(people["ann"])  # type: ignore[arg-type]
    world.change(people["dan"], phone="010-9999-8888")  # type: ignore[arg-type]
    report = run(world, port, audience, "r1", fields={"mode": "replace"})
    assert report.failure is None and report.removed == {"replaced": 2}
    assert graph.members(audience, KEYS) == on_graph(world.desired())
    sessions = [json.loads(r.field("session") or "{}") for r in graph.graph_requests("POST", "usersreplace")]
    assert [(s["batch_seq"], s["last_batch_flag"], s["estimated_num_total"]) for s in sessions] == [
        (1, False, 452), (2, True, 452),
    ]  # fmt: skip
    assert len({s["session_id"] for s in sessions}) == 1

"""The publish_audiences job: which publications a message runs, bad configuration as status.error
with the field to fix, each run recorded in `runs` and on the publication, and the message
build_segments sends after a build. DuckDB with the publishing world; fakes of our own ports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.activation.publications import Destination
from shared.adapters.folder_blobs import FolderBlobs
from shared.ports import AudienceDestination
from shared.ports.secrets import SecretMissing
from shared.services.publish_job import PublishJob, PublishPorts, after_build, publish_job, run_publications
from tests.builders import SALT, leaf, segment_doc
from tests.fake_audiences import FakeAudiences
from tests.fakes import FakeBus, FakeDocumentStore
from tests.publish_world import KEYS, SEGMENT, SITE, World

AUDIENCE = "23850000000000001"


def documents(**publication: Any) -> FakeDocumentStore:
    docs = FakeDocumentStore()
    segment = segment_doc({"all": [leaf("rvn_ltv", "gte", 0)]}, site_id=SITE)
    docs.set("segments", SEGMENT, {**segment, "computed_at": datetime(2026, 11, 1, tzinfo=UTC)})
    docs.set(
        "destinations",
        "meta",
        {"type": "facebook_custom_audience", "ad_account_id": "act_1234567890", "access_token_secret": "meta-token"},
    )
    doc = {"segment_id": SEGMENT, "destination_id": "meta", "audience_id": "create", "name": "VIP",
           "customer_file_source": "USER_PROVIDED_ONLY", "keys": list(KEYS), **publication}  # fmt: skip
    docs.set("publications", "vip-meta", {k: v for k, v in doc.items() if v is not None})  # None: left out
    return docs


class Connections:
    """The composition root's connect, with a token store: a missing secret raises as the real one."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.platform = FakeAudiences()
        self.secrets = secrets
        self.tokens: list[str] = []

    def __call__(self, destination: Destination) -> AudienceDestination:
        assert destination.access_token_secret is not None
        if destination.access_token_secret not in self.secrets:
            raise SecretMissing(f"secret {destination.access_token_secret} not found")
        self.tokens.append(self.secrets[destination.access_token_secret])
        return self.platform


@pytest.fixture
def world() -> World:
    world = World()
    world.person("ann", email="ann@example.com", given="Ann", family="Lee")
    world.person("bo", phone="010-1234-5678", given="보람", family="김")
    world.person("cy", email="cy@example.com", consent=False)  # a member without ad_user_data consent
    return world


def ports(world: World, docs: FakeDocumentStore, connect: Connections, tmp_path: Path, **kw: Any) -> PublishPorts:
    return PublishPorts(world.warehouse, docs, connect, FolderBlobs(tmp_path / "outbox"), SALT, **kw)


def test_a_run_creates_the_audience_uploads_the_consented_and_records_itself(world: World, tmp_path: Path) -> None:
    docs, connect = documents(), Connections({"meta-token": "EAAsecret"})
    job = PublishJob(run_at=world.tick())
    report = run_publications(ports(world, docs, connect, tmp_path), job, "publish_audiences-7")
    assert report.runs["vip-meta"].state == "ok"
    assert connect.platform.held(AUDIENCE) == world.desired()
    assert len(world.desired()) == 2  # cy never consented
    status = docs.get("publications", "vip-meta")["status"]  # type: ignore[index]
    assert (status["state"], status["error"], status["added"], status["audience_id"]) == ("ok", None, 2, AUDIENCE)
    assert docs.get("publications", "vip-meta")["last_success"] == job.run_at  # type: ignore[index]
    run = docs.get("runs", "publish_audiences-7-vip-meta")
    assert run is not None
    assert (run["job"], run["status"], run["added"], run["desired"], run["publication_id"]) == (
        "publish_audiences", "ok", 2, 2, "vip-meta",
    )  # fmt: skip
    assert "EAAsecret" not in json.dumps(run, default=str) and "EAAsecret" not in json.dumps(status, default=str)


def test_a_run_keeps_the_schedule_sync_schedules_wrote_on_the_status(world: World, tmp_path: Path) -> None:
    docs, connect = documents(), Connections({"meta-token": "EAAsecret"})
    schedule = {"state": "scheduled", "job": "cdp-pub-vip-meta"}
    docs.set("publications", "vip-meta", {"status": {"state": "ok", "schedule": schedule}}, merge=True)
    run_publications(ports(world, docs, connect, tmp_path), PublishJob(run_at=world.tick()), "r1")
    status = docs.get("publications", "vip-meta")["status"]  # type: ignore[index]
    assert (status["schedule"], status["stage"], status["added"]) == (schedule, "publish", 2)


def test_a_redelivered_message_sends_nothing_twice(world: World, tmp_path: Path) -> None:
    docs, connect = documents(), Connections({"meta-token": "EAAsecret"})
    job = PublishJob(run_at=world.tick())
    run_publications(ports(world, docs, connect, tmp_path), job, "publish_audiences-7")
    calls = len(connect.platform.calls)
    again = run_publications(ports(world, docs, connect, tmp_path), job, "publish_audiences-7")
    assert again.runs["vip-meta"].added == 0
    assert [c.op for c in connect.platform.calls[calls:]] == ["info"]  # only the size read: no add, no remove
    assert connect.platform.held(AUDIENCE) == world.desired()


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"segment_id": "nope"}, "segment_id", "names segment nope, which does not exist"),
        ({"destination_id": "nope"}, "destination_id", "names destination nope, which does not exist"),
        ({"keys": ["EMAIL", "SHOE_SIZE"]}, "keys[1]", "SHOE_SIZE"),
        ({"mode": "sometimes"}, "mode", "sometimes"),
    ],
)
def test_bad_configuration_stops_the_publication_with_the_field_and_sends_nothing(
    world: World, tmp_path: Path, change: dict[str, Any], path: str, words: str
) -> None:
    docs, connect = documents(**change), Connections({"meta-token": "EAAsecret"})
    report = run_publications(ports(world, docs, connect, tmp_path), PublishJob(run_at=world.tick()), "r1")
    status = docs.get("publications", "vip-meta")["status"]  # type: ignore[index]
    assert status["state"] == "error" and status["error"].startswith(f"{path}: ") and words in status["error"]
    assert report.runs["vip-meta"].failure is not None and not report.retry
    assert connect.platform.calls == [] and connect.tokens == []
    assert docs.get("runs", "r1-vip-meta")["status"] == "error"  # type: ignore[index]


def test_a_missing_secret_is_the_destinations_error_and_nothing_is_sent(world: World, tmp_path: Path) -> None:
    docs, connect = documents(), Connections({})
    run_publications(ports(world, docs, connect, tmp_path), PublishJob(run_at=world.tick()), "r1")
    status = docs.get("publications", "vip-meta")["status"]  # type: ignore[index]
    assert status["error"] == "destination_id: destination meta's access_token_secret: secret meta-token not found"
    assert connect.platform.calls == []


def test_a_segment_never_built_uploads_nothing_rather_than_emptying_the_audience(world: World, tmp_path: Path) -> None:
    docs, connect = documents(), Connections({"meta-token": "EAAsecret"})
    docs.set("segments", SEGMENT, {"computed_at": None}, merge=True)
    run_publications(ports(world, docs, connect, tmp_path), PublishJob(run_at=world.tick()), "r1")
    assert docs.get("publications", "vip-meta")["status"]["error"] == (  # type: ignore[index]
        f"segment_id: segment {SEGMENT} has not been built yet: its first build starts a run"
    )
    assert connect.platform.calls == []


def test_dry_run_from_the_message_writes_bodies_and_sends_nothing(world: World, tmp_path: Path) -> None:
    docs = documents(audience_id="123456789", customer_file_source=None)
    connect = Connections({"meta-token": "EAAsecret"})
    job = publish_job({"job": "publish_audiences", "publication_id": "vip-meta", "dry_run": True}, world.tick())
    report = run_publications(ports(world, docs, connect, tmp_path), job, "r1")
    assert report.runs["vip-meta"].state == "dry_run", report.runs["vip-meta"].failure
    assert [c for c in connect.platform.calls if c.op in ("add", "remove", "replace")] == []
    bodies = sorted((tmp_path / "outbox").rglob("*.json"))
    assert bodies, "the request bodies are in the outbox"
    sent = json.loads(bodies[0].read_text())
    payload = json.loads(sent["form"]["payload"])
    assert (sent["method"], sent["path"]) == ("POST", "/v26.0/123456789/users")
    assert payload["schema"] == list(KEYS) and len(payload["data"]) == 2


def test_the_message_narrows_by_publication_or_segment_and_skips_disabled(world: World, tmp_path: Path) -> None:
    docs, connect = documents(), Connections({"meta-token": "EAAsecret"})
    docs.set(
        "publications", "off", {"segment_id": SEGMENT, "destination_id": "meta", "audience_id": "1", "enabled": False}
    )
    by_other_segment = publish_job({"segment_ids": ["other"]}, world.tick())
    assert run_publications(ports(world, docs, connect, tmp_path), by_other_segment, "r1").runs == {}
    by_segment = run_publications(
        ports(world, docs, connect, tmp_path), publish_job({"segment_id": SEGMENT}, world.tick()), "r2"
    )
    assert sorted(by_segment.runs) == ["vip-meta"] and by_segment.skipped == ["off"]
    with pytest.raises(ValueError, match="publication_ids"):
        publish_job({"publication_ids": "vip-meta"}, world.clock)
    with pytest.raises(ValueError, match="dry_run"):
        publish_job({"dry_run": "yes"}, world.clock)


def test_after_build_asks_for_the_publications_of_built_segments_only(world: World) -> None:
    docs, bus = documents(), FakeBus()
    at = datetime(2026, 11, 2, 3, tzinfo=UTC)
    assert after_build(docs, bus, "jobs", {"other": None}, at) is None and bus.published == []
    after_build(docs, bus, "jobs", {SEGMENT: None, "other": None}, at)
    [(topic, data, attributes)] = bus.published
    assert (topic, attributes) == ("jobs", {"job": "publish_audiences"})
    assert json.loads(data) == {"job": "publish_audiences", "segment_ids": [SEGMENT], "run_at": at.isoformat()}


def test_a_file_export_through_the_composition_root_writes_one_csv_of_the_consented(
    world: World, tmp_path: Path
) -> None:
    from shared import bootstrap
    from shared.config import Settings

    docs = documents(destination_id="files", audience_id="create")
    docs.set("destinations", "files", {"type": "file_export", "name": "Kakao Moment upload"})
    settings = Settings.from_env({"CDP_PROJECT": "p", "CDP_PUBLISH_EXPORT_DIR": str(tmp_path / "exports")})
    connect = bootstrap.build_connect(settings, bootstrap.build_secrets(settings))
    report = run_publications(
        PublishPorts(world.warehouse, docs, connect, None, SALT), PublishJob(run_at=world.tick()), "r1"
    )
    assert report.runs["vip-meta"].state == "ok", report.runs["vip-meta"].failure
    [added] = sorted((tmp_path / "exports").rglob("add.csv"))
    lines = added.read_text().splitlines()
    assert lines[0] == "email,phone,fn,ln" and len(lines) == 1 + len(world.desired()) == 3
    status = docs.get("publications", "vip-meta")["status"]  # type: ignore[index]
    assert (status["state"], status["added"], status["audience_id"]) == ("ok", 2, "file:files")


def test_a_file_export_with_nowhere_to_write_stops_with_the_destination(world: World, tmp_path: Path) -> None:
    from shared import bootstrap
    from shared.config import Settings

    docs = documents(destination_id="files")
    docs.set("destinations", "files", {"type": "file_export"})
    settings = Settings.from_env({"CDP_PROJECT": "p", "CDP_WAREHOUSE": "bigquery", "CDP_PRIVACY_SALT": "s"})
    connect = bootstrap.build_connect(settings, bootstrap.build_secrets(settings))
    run_publications(PublishPorts(world.warehouse, docs, connect, None, SALT), PublishJob(run_at=world.tick()), "r1")
    error = docs.get("publications", "vip-meta")["status"]["error"]  # type: ignore[index]
    assert error == (
        "destination_id: destination files has nowhere to write files: "
        "CDP_PUBLISH_BUCKET is not set (Terraform sets it)"
    )

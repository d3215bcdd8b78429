"""validate_config for destinations and publications: the verdict on the document, by field path,
the loop ended after one round, an audit row per edit, a destination's edit re-checking its
publications. Firestore and Secret Manager are fakes of our ports; the audit log is DuckDB."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.schema import table_spec
from shared.services import publication_config as service
from shared.services.audit import document_hash
from shared.tam.events import DocumentChange
from tests.fakes import FakeDocumentStore, FakeSecrets

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
TOKEN = "EAAGm0PX4ZCpsBAJZBZCqZAZDZD" + "x" * 150
META = {"type": "facebook_custom_audience", "ad_account_id": "act_1234567890", "access_token_secret": "meta-token"}
FILES = {"type": "file_export", "name": "Naver upload"}
VIP = {"segment_id": "vip", "destination_id": "meta", "audience_id": "23850000000000001", "keys": ["EMAIL", "PHONE"]}
SEGMENT = {"name": "VIP", "template": "all_users"}
NEW_AUDIENCE = {"audience_id": "create", "name": "VIP customers", "customer_file_source": "USER_PROVIDED_ONLY"}


def warehouse() -> DuckDBWarehouse:
    found = DuckDBWarehouse(":memory:")
    found.ensure_tables([table_spec("audit.config_changes")])
    return found


def world(**collections: Mapping[str, Mapping[str, Any]]) -> FakeDocumentStore:
    """A segment `vip`, the destinations `meta` and `files`, and whatever else is given."""
    docs: dict[str, dict[str, dict[str, Any]]] = {
        "segments": {"vip": dict(SEGMENT)},
        "destinations": {"meta": dict(META), "files": dict(FILES)},
    }
    for collection, named in collections.items():
        docs.setdefault(collection, {}).update({k: dict(v) for k, v in named.items()})
    return FakeDocumentStore(docs=docs)


def secrets() -> FakeSecrets:
    return FakeSecrets(values={"meta-token": "EAA-the-real-token"})


def publish(
    documents: FakeDocumentStore, doc: Mapping[str, Any], secret_store: FakeSecrets | None = None
) -> dict[str, Any]:
    """Write publications/p1 as the marketer would and run the trigger on it; the document after."""
    documents.set("publications", "p1", doc)
    change = DocumentChange("publications", "p1", None, dict(doc))
    service.handle_publication_write(change, warehouse(), documents, secret_store or secrets(), NOW)
    return documents.docs["publications"]["p1"]


def test_a_valid_publication_is_ok_and_only_its_status_is_written() -> None:
    documents, store = world(), secrets()
    before = copy.deepcopy(documents.docs)
    doc = publish(documents, VIP, store)
    status = doc.pop("status")
    assert status == {
        "state": "ok",
        "stage": "validate",
        "message": "OK: segment vip into audience 23850000000000001 of meta, keys EMAIL, PHONE, mode mirror, "
        "after each build of the segment",
        "error": None,
        "errors": [],
        "at": NOW,
    }
    assert documents.docs == {**before, "publications": {"p1": VIP}}
    assert store.asked == [("exists", "meta-token")]  # looked for, never read


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"segment_id": "ghost"}, 'segment_id: no segment "ghost": segments/ghost does not exist'),
        ({"destination_id": "tiktok"}, 'destination_id: no destination "tiktok": destinations/tiktok does not exist'),
        (
            {"keys": ["EMAIL", "MAIL"]},
            'keys[1]: unsupported key "MAIL"; one of EMAIL, PHONE, FN, LN, GEN, DOBY, DOBM, DOBD, CT, ST, ZIP, '
            "COUNTRY, MADID, EXTERN_ID",
        ),
        (
            {"destination_id": "files", "mode": "replace", **NEW_AUDIENCE},
            "mode: a file export writes each run's changes; replace is for platform audiences",
        ),
        (
            {"destination_id": "files"},
            'audience_id: a file export has no audience on a platform; use "create"',
        ),
        ({"mode": "sync"}, 'mode: unknown value "sync"; one of mirror, add_only, replace'),
        ({"schedule": {"cron": "*/5 * * * *"}}, "schedule.cron: "),
    ],
)
def test_each_bad_publication_gets_its_field_path_and_nothing_else_is_written(
    fields: dict[str, Any], error: str
) -> None:
    documents = world()
    before = copy.deepcopy(documents.docs)
    doc = {**VIP, **fields}
    stored = publish(documents, doc)
    status = stored.pop("status")
    assert status["state"] == "error" and status["error"].startswith(error)
    assert status["errors"][0] == status["error"] and status["message"] == status["error"] and status["at"] == NOW
    assert documents.docs == {**before, "publications": {"p1": doc}}


def test_every_problem_of_a_publication_is_listed() -> None:
    status = publish(world(), {**VIP, "segment_id": "ghost", "destination_id": "tiktok"})["status"]
    assert [e.split(":")[0] for e in status["errors"]] == ["segment_id", "destination_id"]


def test_a_destination_whose_secret_is_missing_is_an_error_at_the_secret_and_so_are_its_publications() -> None:
    documents, store = world(), FakeSecrets()  # Secret Manager holds no meta-token
    change = DocumentChange("destinations", "meta", None, dict(META))
    assert service.handle_destination_write(change, warehouse(), documents, store, NOW) == "error"
    status = documents.docs["destinations"]["meta"]["status"]
    missing = (
        'access_token_secret: no secret "meta-token" with an enabled version that this deployment can see; '
        "store the access token in Secret Manager under this name"
    )
    assert (status["state"], status["error"], status["errors"]) == ("error", missing, [missing])
    assert (
        publish(documents, VIP, store)["status"]["error"]
        == f'destination_id: destination "meta" is not usable: {missing}'
    )
    assert ("get", "meta-token") not in store.asked


@pytest.mark.parametrize("token", [TOKEN, "EAAB12"])
def test_a_token_pasted_instead_of_a_secret_name_is_refused_never_echoed_never_looked_up(token: str) -> None:
    documents, store, audit = world(), secrets(), warehouse()
    doc = {**META, "access_token_secret": token}
    documents.set("destinations", "meta", doc)
    change = DocumentChange("destinations", "meta", dict(META), dict(doc))
    assert service.handle_destination_write(change, audit, documents, store, NOW, event_id="e1") == "error"
    status = documents.docs["destinations"]["meta"]["status"]
    assert status["error"] == (
        "access_token_secret: looks like an access token; store the token in Secret Manager and give the secret's name"
    )
    assert token not in repr(status) and store.asked == []  # not even sent to Secret Manager as a name
    [row] = audit.query("select changed_fields, after_hash from audit.config_changes")
    assert row["changed_fields"] == ["access_token_secret"] and row["after_hash"] == document_hash(doc)
    assert token not in repr(row)


def test_secret_manager_down_is_an_error_at_the_secret_that_says_to_retry() -> None:
    documents = world()
    change = DocumentChange("destinations", "meta", None, dict(META))
    assert service.handle_destination_write(change, warehouse(), documents, FakeSecrets(down=True), NOW) == "error"
    error = documents.docs["destinations"]["meta"]["status"]["error"]
    assert error.startswith("access_token_secret: could not be checked: Secret Manager did not answer")
    assert error.endswith("save again to retry")


def test_valid_destinations_are_ok_with_what_they_are() -> None:
    documents = world()
    for doc_id, doc in (("meta", META), ("files", FILES)):
        change = DocumentChange("destinations", doc_id, None, dict(doc))
        assert service.handle_destination_write(change, warehouse(), documents, secrets(), NOW) == "ok"
    assert documents.docs["destinations"]["meta"]["status"]["message"] == (
        "OK: Facebook ad account act_1234567890, token in secret meta-token, Graph API v26.0; default keys EMAIL, PHONE"
    )
    assert (
        documents.docs["destinations"]["files"]["status"]["message"]
        == "OK: hashed file export; default keys EMAIL, PHONE"
    )


def test_a_bad_destination_lists_its_fields() -> None:
    documents = world()
    doc = {"type": "tiktok", "api_version": "26"}
    change = DocumentChange("destinations", "meta", None, doc)
    documents.set("destinations", "meta", doc)
    assert service.handle_destination_write(change, warehouse(), documents, secrets(), NOW) == "error"
    errors = documents.docs["destinations"]["meta"]["status"]["errors"]
    assert [e.split(":")[0] for e in errors] == ["type", "api_version"]


# --- the trigger: one round, stale events, the audit log ------------------------------------------


class TriggeringStore(FakeDocumentStore):
    """Firestore with validate_config's triggers: every write to destinations/ or publications/
    queues the event Eventarc would deliver."""

    def __init__(self, documents: FakeDocumentStore) -> None:
        super().__init__(docs=documents.docs)
        self.events: list[DocumentChange] = []

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        old = self.get(collection, doc_id)
        super().set(collection, doc_id, data, merge)
        if collection in (service.DESTINATIONS, service.PUBLICATIONS):
            self.events.append(DocumentChange(collection, doc_id, old, self.get(collection, doc_id)))

    def delete(self, collection: str, doc_id: str) -> None:
        old = self.get(collection, doc_id)
        super().delete(collection, doc_id)
        if collection in (service.DESTINATIONS, service.PUBLICATIONS):
            self.events.append(DocumentChange(collection, doc_id, old, None))


def run_triggers(store: TriggeringStore, audit: DuckDBWarehouse, secret_store: FakeSecrets) -> list[str]:
    outcomes: list[str] = []
    while store.events:
        assert len(outcomes) < 20, f"trigger loop: {outcomes}"
        change = store.events.pop(0)
        handle = (
            service.handle_destination_write
            if change.collection == service.DESTINATIONS
            else service.handle_publication_write
        )
        outcome = handle(change, audit, store, secret_store, NOW, event_id=f"e{len(outcomes)}")
        outcomes.append(f"{change.collection}/{change.doc_id}: {outcome}")
    return outcomes


def audit_rows(audit: DuckDBWarehouse) -> list[tuple[str, str, list[str]]]:
    rows = audit.query("select collection, document_id, action, changed_fields from audit.config_changes")
    return sorted((f"{r['collection']}/{r['document_id']}", r["action"], r["changed_fields"]) for r in rows)


def test_the_trigger_ends_after_our_status_write_and_audits_only_edits() -> None:
    store, audit, secret_store = TriggeringStore(world()), warehouse(), secrets()
    store.set("publications", "p1", VIP)
    assert run_triggers(store, audit, secret_store) == [
        "publications/p1: ok",
        "publications/p1: skipped: only results changed",
    ]
    store.set("publications", "p1", {"keys": ["EMAIL", "MAIL"]}, merge=True)
    assert run_triggers(store, audit, secret_store) == [
        "publications/p1: error",
        "publications/p1: skipped: only results changed",
    ]
    store.delete("publications", "p1")
    assert run_triggers(store, audit, secret_store) == ["publications/p1: skipped: deleted"]
    assert audit_rows(audit) == [
        ("publications/p1", "created", sorted(VIP)),
        ("publications/p1", "deleted", sorted(VIP)),
        ("publications/p1", "updated", ["keys"]),
    ]


def test_a_destination_edit_rechecks_its_publications_and_leaves_unchanged_verdicts_alone() -> None:
    store, audit, secret_store = TriggeringStore(world()), warehouse(), secrets()
    store.set("publications", "to-meta", VIP)
    store.set("publications", "to-meta-new", {**VIP, **NEW_AUDIENCE, "mode": "add_only"})
    store.set("publications", "to-files", {**VIP, **NEW_AUDIENCE, "destination_id": "files"})
    run_triggers(store, audit, secret_store)
    assert {k: v["status"]["state"] for k, v in store.docs["publications"].items()} == {
        "to-meta": "ok",
        "to-meta-new": "ok",
        "to-files": "ok",
    }
    stamps = {k: v["status"]["at"] for k, v in store.docs["publications"].items()}

    # meta becomes a file export: an existing audience id means nothing there; a new audience does.
    store.set("destinations", "meta", FILES)
    outcomes = run_triggers(store, audit, secret_store)
    assert outcomes == [
        "destinations/meta: ok",
        "destinations/meta: skipped: only results changed",
        "publications/to-meta: skipped: only results changed",
    ]
    publications = store.docs["publications"]
    assert publications["to-meta"]["status"]["error"] == (
        'audience_id: a file export has no audience on a platform; use "create"'
    )
    assert publications["to-meta-new"]["status"]["at"] == stamps["to-meta-new"]  # still ok: not rewritten
    assert publications["to-files"]["status"]["at"] == stamps["to-files"]  # names another destination

    store.delete("destinations", "meta")
    outcomes = run_triggers(store, audit, secret_store)
    assert outcomes[0] == "destinations/meta: skipped: deleted"
    for publication_id in ("to-meta", "to-meta-new"):
        assert publications[publication_id]["status"]["error"] == (
            'destination_id: no destination "meta": destinations/meta does not exist'
        )
    assert publications["to-files"]["status"]["state"] == "ok"
    assert [r for r in audit_rows(audit) if r[0] == "destinations/meta"] == [
        ("destinations/meta", "deleted", ["name", "type"]),
        ("destinations/meta", "updated", ["access_token_secret", "ad_account_id", "name", "type"]),
    ]


def test_a_fixed_secret_makes_the_publications_ok_again() -> None:
    store, audit, secret_store = TriggeringStore(world()), warehouse(), FakeSecrets()
    store.set("publications", "p1", VIP)
    run_triggers(store, audit, secret_store)
    assert store.docs["publications"]["p1"]["status"]["error"].startswith('destination_id: destination "meta"')
    secret_store.values["meta-token"] = "EAA-now-stored"
    store.set("destinations", "meta", {"access_token_secret": "meta-token", "name": "Meta"}, merge=True)
    run_triggers(store, audit, secret_store)
    assert store.docs["publications"]["p1"]["status"]["state"] == "ok"


def test_a_stale_event_writes_nothing_and_the_schedule_status_survives() -> None:
    documents = world()
    documents.set("publications", "p1", {**VIP, "mode": "add_only"})  # already edited again
    stale = DocumentChange("publications", "p1", None, dict(VIP))
    assert service.handle_publication_write(stale, warehouse(), documents, secrets(), NOW) == (
        "skipped: edited again since"
    )
    assert "status" not in documents.docs["publications"]["p1"]

    scheduled = {"state": "scheduled", "job": "cdp-pub-p1"}
    documents.set("publications", "p1", {**VIP, "status": {"state": "ok", "schedule": scheduled}})
    change = DocumentChange("publications", "p1", {**VIP, "mode": "add_only"}, documents.get("publications", "p1"))
    assert service.handle_publication_write(change, warehouse(), documents, secrets(), LATER) == "ok"
    assert documents.docs["publications"]["p1"]["status"]["schedule"] == scheduled


def test_other_collections_are_not_ours() -> None:
    change = DocumentChange("segments", "vip", None, dict(SEGMENT))
    documents = world()
    assert service.handle_publication_write(change, warehouse(), documents, secrets(), NOW) == (
        "ignored: not a publication"
    )
    assert service.handle_destination_write(change, warehouse(), documents, secrets(), NOW) == (
        "ignored: not a destination"
    )


def test_a_bug_in_a_check_still_gives_a_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("oops")

    monkeypatch.setattr(service, "check_pair", broken)
    status = publish(world(), VIP)["status"]
    assert status["state"] == "error" and status["error"] == "could not be checked: KeyError: 'oops'"

"""The file_export destination: FileExportAudience on FolderBlobs, alone and through publish() on a
DuckDB warehouse. The files' bytes, one file per operation per run, retries, churn and consent."""

from __future__ import annotations

import csv
import hashlib
import json
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.activation import ledger
from shared.activation.customer_file import KEYS as ALL_KEYS
from shared.activation.customer_file import hash_row
from shared.activation.publications import (
    Destination,
    InvalidConfig,
    Publication,
    parse_destination,
    parse_publication,
)
from shared.adapters.file_export import HEADERS, FileExportAudience
from shared.adapters.folder_blobs import FolderBlobs
from shared.ports.audiences import BatchResult, Row, UploadSession
from shared.services.publish_audiences import Report, publish
from tests.builders import SALT
from tests.fake_audiences import Crash
from tests.publish_world import KEYS, SEGMENT, World, segment
from tests.unit.test_customer_file import SHA256SUM
from tests.unit.test_publish_service import shop  # Ann, Bob (refused), Cat, Dan (undecided), Eve (no key)

AT = datetime(2026, 11, 2, 4, 30, tzinfo=UTC)
PUBLICATION = "vip-files"


def destination(**fields: Any) -> Destination:
    return parse_destination("files", {"type": "file_export", "name": "Naver upload", **fields})


def export_publication(audience_id: str = "create", **fields: Any) -> Publication:
    doc = {"segment_id": SEGMENT, "destination_id": "files", "audience_id": audience_id, "keys": list(KEYS)}
    if audience_id == "create":
        doc |= {"name": "VIP file", "customer_file_source": "USER_PROVIDED_ONLY"}
    return parse_publication(PUBLICATION, {**doc, **fields})


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s")


class Setup:
    """A bucket folder, a spool folder and an adapter over them, for one world."""

    def __init__(self, root: Path, world: World | None = None, **fields: Any) -> None:
        self.bucket, self.spool = root / "bucket", root / "spool"
        self.world = world
        self.destination = destination(**fields)

    def adapter(self) -> FileExportAudience:
        return FileExportAudience(FolderBlobs(self.bucket), self.destination, spool=self.spool)

    def folder(self, run_id: str) -> Path:
        return self.bucket.joinpath(
            *self.destination.prefix.split("/") if self.destination.prefix else [], PUBLICATION, run_id
        )

    def publish(self, run_id: str, port: FileExportAudience | None = None, **options: Any) -> Report:
        assert self.world is not None
        pub = options.pop("pub", None) or export_publication()
        return publish(
            self.world.warehouse, port or self.adapter(), pub, self.destination, segment(), self.world.tick(), run_id,
            salt=SALT, sleep=no_sleep, **options,
        )  # fmt: skip


def read_csv(path: Path) -> tuple[list[str], list[Row]]:
    with path.open(encoding="utf-8", newline="") as source:
        header, *records = list(csv.reader(source))
    return header, [tuple(None if value == "" else value for value in record) for record in records]


def as_desired(path: Path) -> set[tuple[tuple[str, ...], Row]]:
    """A CSV's rows in World.desired()'s terms: (schema, row)."""
    header, rows = read_csv(path)
    keys = tuple(key for column in header for key, name in HEADERS.items() if name == column)
    return {(keys, row) for row in rows}


# -- the adapter alone --------------------------------------------------------------------------------------


def test_every_key_has_meta_s_lower_case_header() -> None:
    assert tuple(HEADERS) == ALL_KEYS
    assert all(header == key.lower() for key, header in HEADERS.items())


def test_the_file_of_a_known_profile_byte_for_byte(tmp_path: Path) -> None:
    setup = Setup(tmp_path, prefix="exports/naver")
    schema = ("EMAIL", "PHONE", "FN", "GEN", "DOBY", "EXTERN_ID")
    kim = {"email": "  KimMinJi@Example.COM ", "phone": "010-1234-5678", "given_name": "김민지", "sex": "남"}
    kim |= {"birth_year": "1990", "member_id": " M-0001 "}
    cat = {"email": "Cat@Example.com", "phone": "12345", "sex": "U", "member_id": "M,0002"}  # bad phone, gender
    adapter = setup.adapter()
    adapter.begin(PUBLICATION, "run-1", AT)
    audience = adapter.create_audience("VIP", "", "USER_PROVIDED_ONLY")
    result = adapter.add(audience, schema, [hash_row(kim, schema), hash_row(cat, schema)])
    written = adapter.finish(final=True)

    folder = setup.bucket / "exports" / "naver" / PUBLICATION / "run-1"
    assert audience == "file:files" and result == BatchResult("file:files", 2, 0)
    assert written == [str(folder / "add.csv"), str(folder / "manifest.json")]
    expected = (
        "email,phone,fn,gen,doby,extern_id\n"
        f"{SHA256SUM['kimminji@example.com']},{SHA256SUM['821012345678']},{SHA256SUM['김민지']},"
        f"{SHA256SUM['m']},{SHA256SUM['1990']},M-0001\n"
        f'{sha("cat@example.com")},,,,,"M,0002"\n'  # blanks empty; EXTERN_ID as it is, quoted for its comma
    )
    data = (folder / "add.csv").read_bytes()
    assert data == expected.encode()
    assert json.loads((folder / "manifest.json").read_text()) == {
        "publication_id": PUBLICATION,
        "run_id": "run-1",
        "destination_id": "files",
        "created_at": "2026-11-02T04:30:00+00:00",
        "layout": "meta",
        "final": True,
        "keys": list(schema),
        "hashing": {
            "EMAIL": "sha256",
            "PHONE": "sha256",
            "FN": "sha256",
            "GEN": "sha256",
            "DOBY": "sha256",
            "EXTERN_ID": "none",
        },  # fmt: skip
        "files": {
            "add.csv": {
                "op": "add",
                "rows": 2,
                "keys": list(schema),
                "columns": ["email", "phone", "fn", "gen", "doby", "extern_id"],
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        },
    }
    assert sorted(p.name for p in folder.iterdir()) == ["add.csv", "manifest.json"]
    assert not (setup.spool / PUBLICATION / "run-1").exists()  # a finished run leaves no spool
    info = adapter.audience_info(audience)
    assert (info.name, info.approximate_count_lower_bound, adapter.usage().highest_percent) == ("Naver upload", None, 0)


def test_removals_under_two_schemas_share_one_file(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    adapter = setup.adapter()
    adapter.begin(PUBLICATION, "run-1", AT)
    adapter.remove("file:files", ("EMAIL", "PHONE"), [(sha("a@example.com"), sha("821011112222"))])
    adapter.remove("file:files", ("EMAIL",), [(sha("b@example.com"),)])
    adapter.remove("file:files", ("PHONE", "FN"), [(None, sha("민지"))])
    adapter.finish(final=True)
    data = (setup.folder("run-1") / "remove.csv").read_text(encoding="utf-8")
    assert data == (
        f"email,phone,fn\n{sha('a@example.com')},{sha('821011112222')},\n{sha('b@example.com')},,\n,,{sha('민지')}\n"
    )


def test_a_run_with_nothing_to_send_writes_nothing(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    adapter = setup.adapter()
    adapter.begin(PUBLICATION, "run-1", AT)
    assert adapter.finish(final=True) == [] and not setup.bucket.exists()


def test_bad_batches_and_calls_out_of_a_run_are_refused(tmp_path: Path) -> None:
    adapter = Setup(tmp_path).adapter()
    with pytest.raises(RuntimeError, match="between begin"):
        adapter.add("file:files", ("EMAIL",), [(sha("a@example.com"),)])
    with pytest.raises(ValueError, match="cannot name a folder"):
        adapter.begin(PUBLICATION, "../escape", AT)
    adapter.begin(PUBLICATION, "run-1", AT)
    with pytest.raises(ValueError, match="customer-file keys"):
        adapter.add("file:files", ("MAIL",), [("x",)])
    with pytest.raises(ValueError, match="one per key"):
        adapter.add("file:files", ("EMAIL", "PHONE"), [(sha("a@example.com"),)])
    with pytest.raises(ValueError, match="at least one row"):
        adapter.add("file:files", ("EMAIL",), [])
    assert adapter.finish(final=True) == []


def test_the_same_batches_give_the_same_bytes(tmp_path: Path) -> None:
    batches = [[(sha(f"p{n}@example.com"), None if n % 3 else sha(f"8210555{n:05d}")) for n in range(i, i + 4)]
               for i in range(0, 12, 4)]  # fmt: skip
    outputs = []
    for name in ("one", "two"):
        setup = Setup(tmp_path / name)
        adapter = setup.adapter()
        adapter.begin(PUBLICATION, "run-1", AT)
        for batch in batches:
            adapter.add("file:files", ("EMAIL", "PHONE"), batch)
        adapter.replace("file:files", ("EMAIL",), [(sha("r@example.com"),)], UploadSession(7, 1, True))
        adapter.finish(final=True)
        outputs.append({p.name: p.read_bytes() for p in setup.folder("run-1").iterdir()})
    assert outputs[0] == outputs[1] and sorted(outputs[0]) == ["add.csv", "manifest.json", "replace.csv"]
    assert outputs[0]["add.csv"].count(b"\n") == 13  # the header and 12 rows, in the order sent


def test_assembly_streams_from_disk(tmp_path: Path) -> None:
    """100,000 rows in batches of 10,000: finish() holds parts and the file on disk, never in memory."""
    setup = Setup(tmp_path)
    adapter = setup.adapter()
    adapter.begin(PUBLICATION, "run-1", AT)
    for start in range(0, 100_000, 10_000):
        adapter.add(
            "file:files", ("EMAIL", "PHONE"), [(sha(str(n)), sha(f"p{n}")) for n in range(start, start + 10_000)]
        )
    tracemalloc.start()
    adapter.finish(final=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = (setup.folder("run-1") / "add.csv").stat().st_size
    assert size > 12_000_000 and peak < 4_000_000, (size, peak)  # buffers, not the file


# -- through publish() on DuckDB ------------------------------------------------------------------------------


def test_a_run_writes_one_file_of_the_desired_set_and_no_one_without_consent(tmp_path: Path) -> None:
    world = World()
    people = shop(world, count=5)
    setup = Setup(tmp_path, world)
    report = setup.publish("r1", max_batch_rows=2)

    folder = setup.folder("r1")
    assert report.failure is None and report.state == "ok" and report.batches == 4  # 7 rows in batches of 2
    assert report.created_audience and report.audience_id == "file:files" and report.added == 7
    assert sorted(p.name for p in folder.iterdir()) == ["add.csv", "manifest.json"]
    assert report.outbox == [str(folder / "add.csv"), str(folder / "manifest.json")]
    assert as_desired(folder / "add.csv") == world.desired() and len(read_csv(folder / "add.csv")[1]) == 7
    sent = (folder / "add.csv").read_text()
    for name in ("bob", "dan"):  # refused, never decided: no ad_user_data consent
        assert sha(f"{name}@example.com") not in sent
    assert hash_row(people["eve"].profile(), KEYS) == (None,) * 4  # no key: not a row
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]["add.csv"]["rows"] == 7 and manifest["keys"] == list(KEYS)
    held = world.warehouse.query("select count(*) as n from audiences.publication_ledger where removed_at is null")
    assert held[0]["n"] == 7
    assert not (setup.spool / PUBLICATION).exists() or not any((setup.spool / PUBLICATION).iterdir())


def test_churn_writes_remove_csv_with_the_rows_as_they_were_sent(tmp_path: Path) -> None:
    world = World()
    people = shop(world, count=2)
    setup = Setup(tmp_path, world)
    setup.publish("r1")
    first = as_desired(setup.folder("r1") / "add.csv")
    keys = KEYS
    old = {name: (keys, hash_row(people[name].profile(), keys)) for name in ("ann", "cat", "p000", "p001")}

    world.decide(people["ann"], False)  # withdrew ad_user_data
    world.leave(people["cat"])  # left the segment
    world.change(people["p000"], email="p000@new.example")  # a key changed: old row out, new in
    world.erase(people["p001"], ledger.LedgerRemovals(world.warehouse))  # a privacy erasure
    world.decide(people["bob"], True)  # granted: added
    report = setup.publish("r2", max_batch_rows=2)

    folder = setup.folder("r2")
    assert report.removed == {"no_consent": 1, "left_segment": 1, "key_changed": 1, "erased": 1}
    assert sorted(p.name for p in folder.iterdir()) == ["add.csv", "manifest.json", "remove.csv"]
    removed, added = as_desired(folder / "remove.csv"), as_desired(folder / "add.csv")
    assert removed == set(old.values())
    assert added == {(keys, hash_row(people[name].profile(), keys)) for name in ("bob", "p000")}
    assert (first - removed) | added == world.desired()
    assert sha("ann@example.com") not in (folder / "add.csv").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert list(manifest["files"]) == ["remove.csv", "add.csv"]
    assert {name: entry["rows"] for name, entry in manifest["files"].items()} == {"remove.csv": 4, "add.csv": 2}


class CrashingExport(FileExportAudience):
    """Killed right after its n-th add returned: the batch is spooled, the ledger never hears of it."""

    def __init__(self, setup: Setup, after: int) -> None:
        super().__init__(FolderBlobs(setup.bucket), setup.destination, spool=setup.spool)
        self.after, self.calls = after, 0

    def add(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        result = super().add(audience_id, schema, rows, session)
        self.calls += 1
        if self.calls == self.after:
            raise Crash("killed")
        return result


def run_files(setup: Setup, run_id: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(setup.folder(run_id).iterdir())}


def test_a_retried_run_writes_the_bytes_of_an_uninterrupted_one(tmp_path: Path) -> None:
    twin, crashed = Setup(tmp_path / "twin", World()), Setup(tmp_path / "crashed", World())
    for setup in (twin, crashed):
        assert setup.world is not None
        shop(setup.world, count=6)
    twin.publish("r1", max_batch_rows=2)
    with pytest.raises(Crash):
        crashed.publish("r1", CrashingExport(crashed, after=3), max_batch_rows=2)
    assert not crashed.folder("r1").exists()  # nothing written before the run ends
    retry = crashed.publish("r1", max_batch_rows=2)  # the same run id, later, in a new process

    assert retry.failure is None and retry.added == 4  # the third batch again, and the fourth
    assert run_files(crashed, "r1") == run_files(twin, "r1")  # created_at is the first attempt's
    assert crashed.world is not None and as_desired(crashed.folder("r1") / "add.csv") == crashed.world.desired()

    before = {p.name: p.stat().st_mtime_ns for p in crashed.folder("r1").iterdir()}
    again = crashed.publish("r1", max_batch_rows=2)  # redelivered once more: nothing to send, nothing written
    assert (again.batches, again.outbox) == (0, [])
    assert {p.name: p.stat().st_mtime_ns for p in crashed.folder("r1").iterdir()} == before


def test_a_run_that_never_finished_is_written_by_the_next_run(tmp_path: Path) -> None:
    world = World()
    people = shop(world, count=4)
    setup = Setup(tmp_path, world)
    with pytest.raises(Crash):
        setup.publish("r1", CrashingExport(setup, after=2), max_batch_rows=2)
    world.decide(people["bob"], True)
    report = setup.publish("r2", max_batch_rows=2)  # a new run id: r1 is never retried

    first, second = as_desired(setup.folder("r1") / "add.csv"), as_desired(setup.folder("r2") / "add.csv")
    assert len(first) == 4  # the two batches r1 took; the second, not in the ledger, is sent again by r2
    assert report.added == 5 and len(second) == 5 and len(first & second) == 2  # r1's second batch, its third, bob
    assert first | second == world.desired()
    assert json.loads((setup.folder("r1") / "manifest.json").read_text())["final"] is True
    assert not any((setup.spool / PUBLICATION).iterdir())


def test_a_file_export_takes_only_create_and_adds_or_mirrors(tmp_path: Path) -> None:
    world = World()
    shop(world)
    setup = Setup(tmp_path, world)
    numbered = setup.publish("r1", pub=export_publication("123"))
    replace = setup.publish("r2", pub=export_publication(mode="replace"))
    assert numbered.failure is not None and numbered.failure.path == "audience_id"
    assert replace.failure is not None and replace.failure.path == "mode"
    assert not setup.bucket.exists() and world.warehouse.query("select * from audiences.publication_ledger") == []


def test_the_prefix_is_checked_and_belongs_to_file_exports() -> None:
    assert destination(prefix="exports/naver-2026").prefix == "exports/naver-2026"
    assert destination().prefix == ""
    for bad in ("../up", "/abs", "a//b", ".hidden", "a/" * 9 + "a", 3):
        with pytest.raises(InvalidConfig) as error:
            destination(prefix=bad)
        assert error.value.path == "prefix", bad
    meta = {"type": "facebook_custom_audience", "ad_account_id": "act_1", "access_token_secret": "meta-token"}
    with pytest.raises(InvalidConfig) as error:
        parse_destination("meta", {**meta, "prefix": "exports"})
    assert str(error.value) == "prefix: applies only to file_export destinations"

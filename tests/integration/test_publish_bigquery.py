"""sql/publish through BigQueryWarehouse (the real client) on bqemulator: the same publish() runs on
BigQuery and on DuckDB (a first upload to an audience the run creates, churn with every removal
reason and an erasure, an incremental rerun, replace sessions) must report the same and leave the
same ledger, and every statement of sql/publish must have run on BigQuery. This checks that the
parameters the service binds (timestamps, null session ids, string arrays, Arrow appends) are
typed as BigQuery wants them and that the SQL is BigQuery's, not only sqlglot's idea of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pytest

from devstack.bqemu import bigquery_client, start_bqemulator
from shared.activation.ledger import LedgerRemovals
from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.ports import Warehouse
from shared.ports.audiences import SessionStuck
from shared.schema import table_specs
from shared.services.publish_audiences import publish
from shared.sql import SQL_DIR, load_sql
from tests.builders import SALT, new_warehouse
from tests.fake_audiences import FakeAudiences
from tests.publish_world import SITE, World, facebook, publication, segment

PROJECT = "cdp-local"
FILES = sorted(path.stem for path in (SQL_DIR / "publish").glob("*.sql"))


class Recording(BigQueryWarehouse):
    """BigQueryWarehouse noting which sql/publish statements it ran (by their text)."""

    names = {load_sql(f"publish/{name}"): name for name in FILES}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ran: set[str] = set()

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        self.ran.add(self.names.get(sql, ""))
        return super().query(sql, params)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        self.ran.add(self.names.get(sql, ""))
        return super().query_arrow(sql, params)


@pytest.fixture(scope="module")
def bigquery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    server = start_bqemulator(tmp_path_factory.mktemp("bqemu-publish"), PROJECT)
    try:
        client = bigquery_client(server, PROJECT)
        prefix = f"p{uuid.uuid4().hex[:8]}_"
        warehouse = Recording(PROJECT, prefix, client=client, retry_deadline=20, request_timeout=60)
        warehouse.ensure_tables(list(table_specs().values()))
        yield warehouse
    finally:
        server.stop()


def scenario(warehouse: Warehouse) -> list[Any]:
    """Runs of every kind, each checked against the desired set; what each reported, and the ledger."""
    world, port = World(warehouse=warehouse), FakeAudiences()  # type: ignore[arg-type]
    people = {
        "ann": world.person("ann", email="ann@example.com", phone="010-1234-5678", given="민지", family="김"),
        "bob": world.person("bob", email="bob@example.com", consent=False),
        "cat": world.person("cat", email="Cat@Example.com", given="Cat"),
        "dan": world.person("dan", email="dan@example.com", consent=None),
        "eve": world.person("eve"),
        "fay": world.person("fay", email="fay@example.com"),
        "gus": world.person("gus", email="gus@example.com", phone="+82 10 9999 0000"),
        "hal": world.person("hal", phone="010-2222-3333"),
        "ivy": world.person("ivy", email="ivy@example.com", member=False),
    }
    created = {"name": "VIP", "customer_file_source": "USER_PROVIDED_ONLY"}
    summaries: list[Any] = []

    def run(run_id: str, site: str | None = SITE, stuck: bool = False, **fields: Any) -> None:
        pub = publication("create", **created, **fields)
        options: dict[str, Any] = {"max_batch_rows": 2} if fields.get("mode") == "replace" else {}
        report = publish(warehouse, port, pub, facebook(), segment(site), world.tick(), run_id, salt=SALT, **options)
        assert (report.state == "retry") if stuck else (report.failure is None), report.failure
        assert stuck or port.held(str(report.audience_id)) == world.desired()
        staged = report.staged
        summaries.append((report.added, report.removed, report.batches, staged.members, staged.desired, staged.hashed))

    run("r1")
    world.leave(people["fay"])
    world.decide(people["gus"], False)
    world.erase(people["hal"], LedgerRemovals(warehouse))
    world.change(people["cat"], email="cat@new.example")
    world.change(people["ann"], given="서연")
    world.decide(people["bob"], True)
    world.join(people["ivy"])
    run("r2")
    run("r3", site=None)  # nothing changed: nothing hashed, nothing sent (a segment of every site)
    world.change(people["dan"], email="dan@new.example")
    world.decide(people["dan"], True)
    batches = sum(1 for call in port.calls if call.op in ("add", "remove", "replace"))
    port.fail_on_batch[batches + 2] = SessionStuck("a replace session is still open", code=2650, subcode=1870147)
    run("r4", stuck=True, mode="replace")  # batches of two rows; the second finds the audience stuck
    run("r5", mode="replace")  # the stuck session is ended with one row, then a new one sends all
    held = warehouse.query(
        "select customer_id, row_hash, removed_reason from audiences.publication_ledger order by customer_id, row_hash"
    )
    return [summaries, held]


def test_publish_runs_on_bigquery_as_on_duckdb(bigquery: Recording) -> None:
    on_bigquery = scenario(bigquery)
    assert on_bigquery == scenario(new_warehouse())
    summaries = on_bigquery[0]
    assert summaries[1][:2] == (4, {"left_segment": 1, "no_consent": 1, "erased": 1, "key_changed": 2})
    assert summaries[2] == (0, {}, 0, 7, 4, 0)  # ann, bob, cat, ivy; nothing hashed or sent
    assert bigquery.ran >= set(FILES), f"not run on BigQuery: {sorted(set(FILES) - bigquery.ran)}"

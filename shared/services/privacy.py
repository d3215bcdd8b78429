"""Privacy requests: erase or export everything about a person, in batches (docs/privacy.md).

A batch is up to `batch_size` requests; within it the requests of each site are handled together:
one statement per table to find the subjects' rows, one to delete them and one to verify none is
left (or one to export them), however many people the batch holds. The tables and the columns
that identify a person come from the subject_keys every table declares (sql/schema/*/tables.json).

An erasure runs in this order, so that a failure part-way leaves a request that a retry finishes
and nothing that brings the person back:
1. expand the named identifiers through identity resolution (or take the expansion a pending
   request kept: a retry must not lose identities that the first attempt already erased);
2. add every expanded identifier to the suppression list, and ask for the customers' removal from
   ad-platform audiences (AudienceRemovals);
3. per table, find the rows, then delete them in the partitions that hold them;
4. delete the documents that name the person (collections declared in shared/privacy/documents.py);
5. verify: find again; the request is done only when no row is left anywhere. Only then are its
   refined.identities rows deleted (and verified): they are what expansion reads, so a request
   that stays pending keeps them for its retry.

process_requests is the entry point's job: it takes the pending documents of Firestore
`privacy_requests`, runs them in batches and writes each receipt back on its document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Any, TypeVar

from shared.ports import DocumentStore, RowsStillStreaming, Warehouse
from shared.ports.blobs import BlobStore
from shared.privacy.documents import COLLECTIONS, REQUESTS, DocumentKey, erase_documents, find_documents
from shared.privacy.expansion import Expansion, expand, expansion_document, expansion_from_document
from shared.privacy.exports import write_export
from shared.privacy.receipts import DONE, ERROR, PENDING, Receipt
from shared.privacy.removals import AudienceRemovals
from shared.privacy.statements import KEY_PREFIX, SWEEP_WINDOW, Dml, Keys, Owners, Plan, plan, sweep_sql
from shared.privacy.subjects import FIELDS, Identifier, PrivacyRequest, RequestError, parse_request
from shared.privacy.suppression import hashes_of, suppress
from shared.runs import Run, recorded
from shared.schema import IDENTIFIER_TYPES, TableSpec, table_specs
from shared.services.audit import record_change

EXPANSION_READS = "refined.identities"  # erased last: a retry's expansion reads it
JOB = "privacy_requests"
T = TypeVar("T")


@dataclass(frozen=True)
class PrivacyPorts:
    """What privacy requests need, built by the composition root (shared/bootstrap.py)."""

    warehouse: Warehouse
    removals: AudienceRemovals
    blobs: BlobStore | None  # None: exports cannot be written here yet (they wait, pending)
    salt: str = field(repr=False)
    streaming_buffer: timedelta | None = None  # BigQuery: deletes skip rows this recent
    batch_size: int = 100
    sites: tuple[str, ...] = ()

    def dml(self, now: datetime) -> Dml:
        return Dml(settled_before=now - self.streaming_buffer if self.streaming_buffer else None)


@dataclass(kw_only=True)
class PrivacyRun(Run):
    """A run of process_requests: its `runs` document."""

    requests: int = 0
    done: int = 0
    pending: int = 0
    refused: int = 0
    swept: list[str] = field(default_factory=list)  # streamed tables checked for late rows

    def document(self) -> dict[str, Any]:
        counts = {"requests": self.requests, "done": self.done, "pending": self.pending, "refused": self.refused}
        return super().document() | counts | {"swept": list(self.swept)}


def subject_tables(specs: Sequence[TableSpec] | None = None) -> list[TableSpec]:
    """The tables an erasure or export visits, in order: every table declaring subject keys, with
    refined.identities last."""
    chosen = [s for s in (specs if specs is not None else table_specs().values()) if s.subject_keys]
    return sorted(chosen, key=lambda s: (s.name == EXPANSION_READS, s.name))


def sweep(
    warehouse: Warehouse,
    salt: str,
    arrived_since: datetime,
    dml: Dml | None = None,
    specs: Sequence[TableSpec] | None = None,
) -> list[str]:
    """Delete rows that arrived since `arrived_since` naming a suppressed identifier (a late beacon
    from an erased cookie), one statement per streamed table; return the tables swept."""
    swept = []
    for spec in subject_tables(specs):
        statement = sweep_sql(spec, arrived_since, salt, dml)
        if statement is not None:
            try:
                warehouse.query(*statement)
            except RowsStillStreaming:
                continue  # the next run's window still holds these rows
            swept.append(spec.name)
    return swept


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def erase(
    warehouse: Warehouse,
    requests: Sequence[PrivacyRequest],
    *,
    salt: str,
    now: datetime,
    removals: AudienceRemovals,
    documents: DocumentStore | None = None,
    dml: Dml | None = None,
    sites: Collection[str] = (),
    expansions: Mapping[str, Expansion] | None = None,
    specs: Sequence[TableSpec] | None = None,
    collections: Mapping[str, tuple[DocumentKey, ...]] = COLLECTIONS,
) -> list[Receipt]:
    """Erase one batch of requests (kind erase); a receipt per request, in the requests' order.

    expansions: what an earlier attempt of some of these requests expanded to (kept on pending
    requests); the others are expanded now. sites: where a request naming no site may be known
    besides the sites identity resolution knows (the configured ones).
    """
    receipts = {r.request_id: Receipt(r.request_id, "erase", now) for r in requests}
    expanded = _expansions(warehouse, requests, sites, expansions)
    tables = subject_tables(specs)
    last = [s for s in tables if s.name == EXPANSION_READS]
    for site, subjects in _by_site(expanded).items():
        batch = reduce(Keys.union, subjects.values())
        _suppress(warehouse, salt, site, subjects, receipts, removals, now)
        owners = Owners(subjects)
        plans = [p for p in (plan(s, batch, dml) for s in tables if s not in last) if p is not None]
        _delete(warehouse, plans, owners, receipts)
        if documents is not None:
            for request_id, keys in subjects.items():
                erased = erase_documents(documents, keys, collections)
                receipt = receipts[request_id]
                receipt.documents = _add(receipt.documents or {}, erased)
        for p in plans:
            _attribute(warehouse.query(p.find_sql(), p.params), p, owners, receipts, "remaining")
        finished = {r: keys for r, keys in subjects.items() if not (receipts[r].left or receipts[r].waiting)}
        if finished:
            batch = reduce(Keys.union, finished.values())
            owners = Owners(finished)
            plans = [p for p in (plan(s, batch, dml) for s in last) if p is not None]
            _delete(warehouse, plans, owners, receipts)
            for p in plans:
                _attribute(warehouse.query(p.find_sql(), p.params), p, owners, receipts, "remaining")
    for request_id, receipt in receipts.items():
        for spec in tables:
            count = receipt.count(spec.name)
            count.erased = max(count.found - count.remaining, 0)
        if documents is not None and receipt.documents is None:
            receipt.documents = {}
        receipt.finished_at, receipt.waiting = now, sorted(set(receipt.waiting))
        if receipt.left == 0 and not receipt.waiting:
            receipt.status, receipt.verified_at = DONE, now
        else:
            receipt.status = PENDING
        _describe(receipt, expanded[request_id])
    return [receipts[r.request_id] for r in requests]


def erase_with(
    ports: PrivacyPorts,
    requests: Sequence[PrivacyRequest],
    now: datetime,
    documents: DocumentStore | None = None,
    expansions: Mapping[str, Expansion] | None = None,
    collections: Mapping[str, tuple[DocumentKey, ...]] = COLLECTIONS,
) -> list[Receipt]:
    """erase with the ports the composition root built (the job and the command line)."""
    return erase(
        ports.warehouse,
        requests,
        salt=ports.salt,
        now=now,
        removals=ports.removals,
        documents=documents,
        dml=ports.dml(now),
        sites=ports.sites,
        expansions=expansions,
        collections=collections,
    )


def export(
    warehouse: Warehouse,
    requests: Sequence[PrivacyRequest],
    *,
    blobs: BlobStore,
    now: datetime,
    documents: DocumentStore | None = None,
    sites: Collection[str] = (),
    specs: Sequence[TableSpec] | None = None,
    collections: Mapping[str, tuple[DocumentKey, ...]] = COLLECTIONS,
) -> list[Receipt]:
    """Export one batch of requests (kind export): per request, NDJSON per table and a manifest."""
    receipts = {r.request_id: Receipt(r.request_id, "export", now) for r in requests}
    expanded = _expansions(warehouse, requests, sites, None)
    tables = subject_tables(specs)
    rows: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    docs: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(dict)
    for _site, subjects in _by_site(expanded).items():
        batch = reduce(Keys.union, subjects.values())
        owners = Owners(subjects)
        for p in (p for p in (plan(spec, batch) for spec in tables) if p is not None):
            for row in warehouse.query(p.export_sql(), p.params):
                whose = owners.of(p, row, KEY_PREFIX)
                plain = {k: v for k, v in row.items() if not k.startswith(KEY_PREFIX)}
                for request_id in whose:
                    rows[request_id][p.table].append(plain)
        if documents is not None:
            for request_id, keys in subjects.items():
                for collection, found in find_documents(documents, keys, collections).items():
                    docs[request_id].setdefault(collection, {}).update(found)
    for request_id, receipt in receipts.items():
        for spec in tables:
            receipt.count(spec.name).found = len(rows[request_id].get(spec.name, ()))
        found_docs = docs.get(request_id, {}) if documents is not None else None
        manifest = write_export(blobs, request_id, rows[request_id], found_docs, now)
        receipt.export = {"location": manifest["location"], "files": manifest["files"]}
        receipt.documents = None if found_docs is None else {c: len(d) for c, d in found_docs.items()}
        receipt.status, receipt.finished_at = DONE, now
        _describe(receipt, expanded[request_id])
    return [receipts[r.request_id] for r in requests]


def _expansions(
    warehouse: Warehouse,
    requests: Sequence[PrivacyRequest],
    sites: Collection[str],
    kept: Mapping[str, Expansion] | None,
) -> dict[str, Expansion]:
    kept = kept or {}
    fresh = [r for r in requests if r.request_id not in kept]
    return {
        **expand(warehouse, fresh, sites),
        **{r.request_id: kept[r.request_id] for r in requests if r.request_id in kept},
    }


def _by_site(expanded: Mapping[str, Expansion]) -> dict[str, dict[str, Keys]]:
    """site -> request id -> its keys there: the unit one statement per table serves."""
    by_site: dict[str, dict[str, Keys]] = defaultdict(dict)
    for request_id, expansion in expanded.items():
        for site, keys in expansion.items():
            by_site[site][request_id] = keys
    return dict(sorted(by_site.items()))


def _suppress(
    warehouse: Warehouse,
    salt: str,
    site: str,
    subjects: Mapping[str, Keys],
    receipts: Mapping[str, Receipt],
    removals: AudienceRemovals,
    now: datetime,
) -> None:
    """Suppress every expanded identifier and ask for the customers' removal, before any delete."""
    identifiers: dict[Identifier, str] = {}
    customers: dict[str, str] = {}
    for request_id, keys in sorted(subjects.items()):
        for identifier in keys.identifiers:
            identifiers.setdefault(identifier, request_id)
        for customer in keys.customers:
            customers.setdefault(customer, request_id)
        receipts[request_id].suppressed += len(keys.identifiers)
        receipts[request_id].audience_removals += len(keys.customers)
    suppress(warehouse, salt, site, identifiers, now)
    removals.request_removal(site, customers, now)


def _delete(warehouse: Warehouse, plans: Sequence[Plan], owners: Owners, receipts: Mapping[str, Receipt]) -> None:
    """Find each table's rows (counted per request), then delete them in the partitions holding them."""
    for p in plans:
        found = warehouse.query(p.find_sql(), p.params)
        whose = _attribute(found, p, owners, receipts, "found")
        if found:
            partitions = {row["partition_value"] for row in found} if p.spec.partition_field else set()
            sql, params = p.delete_sql(partitions)
            try:
                warehouse.query(sql, params)
            except RowsStillStreaming:
                for request_id in whose:  # verification still finds the rows: these stay pending
                    receipts[request_id].waiting.append(p.table)


def _attribute(
    found: Sequence[Mapping[str, Any]], p: Plan, owners: Owners, receipts: Mapping[str, Receipt], field: str
) -> set[str]:
    """Add each found group's rows to the requests it is about; return those requests."""
    everyone: set[str] = set()
    for row in found:
        whose = owners.of(p, row)
        everyone |= whose
        for request_id in whose:
            count = receipts[request_id].count(p.table)
            setattr(count, field, getattr(count, field) + int(row["row_count"]))
    return everyone


def _add(total: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    for key, n in more.items():
        total[key] = total.get(key, 0) + n
    return total


def _describe(receipt: Receipt, expansion: Expansion) -> None:
    """Counts of what the request expanded to, without naming any identifier (the expansion itself
    rides along for the caller to keep on a pending request, outside the receipt's document)."""
    receipt.expansion = expansion
    receipt.sites = sorted(expansion)
    identifiers = {i for keys in expansion.values() for i in keys.identifiers}
    receipt.identifiers = {t: sum(1 for i in identifiers if i.type == t) for t in IDENTIFIER_TYPES}
    receipt.identifiers["customers"] = len({c for keys in expansion.values() for c in keys.customers})


def process_requests(
    documents: DocumentStore,
    ports: PrivacyPorts,
    now: datetime,
    run_id: str | None = None,
    collections: Mapping[str, tuple[DocumentKey, ...]] = COLLECTIONS,
) -> PrivacyRun:
    """Run every pending request of Firestore `privacy_requests` in batches; write each receipt back.

    A document without a status (new) or with status.state pending is taken. One that cannot be
    parsed gets status.state error with the field and reason, and nothing else is written for it.
    A finished request keeps its receipt, and its identifiers are replaced by their suppression
    hashes (identifier_hashes), so the record proves what was done without naming the person; a
    pending one keeps its identifiers and the expansion its retry needs. Every run also sweeps the
    rows that arrived lately and name an erased identifier (sweep). The audit log
    (audit.config_changes: hashes and field names, never values) records each request when it is
    first taken and again when its identifiers are replaced.
    """
    run = PrivacyRun(job=JOB, run_id=run_id or f"{JOB}-{now:%Y%m%dT%H%M%S%f}", started_at=now)
    with recorded(documents, run):
        requests, kept = [], {}
        originals = dict(documents.list(REQUESTS))
        for doc_id, doc in originals.items():
            status = doc.get("status")
            if isinstance(status, Mapping) and status.get("state") != PENDING:
                continue
            run.requests += 1
            if status is None:
                record_change(ports.warehouse, REQUESTS, doc_id, None, _written(doc), JOB, recorded_at=now)
            try:
                request = parse_request(doc_id, doc)
                if isinstance(status, Mapping) and status.get("expansion"):
                    kept[doc_id] = expansion_from_document(status["expansion"])
            except (RequestError, ValueError, KeyError) as exc:
                path, reason = (exc.field, exc.reason) if isinstance(exc, RequestError) else ("status", str(exc))
                error = {"state": ERROR, "error": {"field": path, "reason": reason}, "updated_at": now}
                documents.set(REQUESTS, doc_id, {"status": error}, merge=True)
                run.refused += 1
                continue
            requests.append(request)
        receipts: list[tuple[PrivacyRequest, Receipt]] = []
        # exports first: a person who asks for a copy and for erasure gets the copy
        exports = [r for r in requests if r.kind == "export"]
        if ports.blobs is not None:
            for batch in batches(exports, ports.batch_size):
                done = export(
                    ports.warehouse,
                    batch,
                    blobs=ports.blobs,
                    now=now,
                    documents=documents,
                    sites=ports.sites,
                    collections=collections,
                )
                receipts += zip(batch, done, strict=True)
        erasures = [r for r in requests if r.kind == "erase"]
        for batch in batches(erasures, ports.batch_size):
            kept_here = {r.request_id: kept[r.request_id] for r in batch if r.request_id in kept}
            done = erase_with(ports, batch, now, documents, kept_here, collections)
            receipts += zip(batch, done, strict=True)
        for request, receipt in receipts:
            update = _write_back(documents, request, receipt, ports.salt, kept.get(request.request_id), now)
            before = _written(originals[request.request_id])
            after = _written({**before, **update})
            record_change(ports.warehouse, REQUESTS, request.request_id, before, after, JOB, recorded_at=now)
            run.done += receipt.status == DONE
            run.pending += receipt.status == PENDING
        buffer = ports.streaming_buffer or timedelta(0)
        run.swept = sweep(ports.warehouse, ports.salt, now - buffer - SWEEP_WINDOW, ports.dml(now))
        if ports.blobs is None:
            for request in exports:  # valid, and kept until this deployment can write exports
                waiting = {"state": PENDING, "waiting": ["export storage"], "updated_at": now}
                documents.set(REQUESTS, request.request_id, {"status": waiting}, merge=True)
                run.pending += 1
    return run


def _write_back(
    documents: DocumentStore,
    request: PrivacyRequest,
    receipt: Receipt,
    salt: str,
    kept: Expansion | None,
    now: datetime,
) -> dict[str, Any]:
    """The receipt onto the request's document: state, receipt; and the identifiers' fate. Returns
    the fields written."""
    status: dict[str, Any] = {"state": receipt.status, "receipt": receipt.document(), "updated_at": now}
    update: dict[str, Any] = {"status": status}
    if receipt.status == PENDING and receipt.kind == "erase":
        expansion = kept or receipt.expansion
        if expansion is not None:
            status["expansion"] = expansion_document(expansion)
    if receipt.status == DONE:
        sites = receipt.sites or ([request.site_id] if request.site_id else [])
        update |= {name: None for name in FIELDS.values()}
        update["identifier_hashes"] = {site: hashes_of(salt, site, request.identifiers) for site in sites}
    documents.set(REQUESTS, request.request_id, update, merge=True)
    return update


def _written(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A request's fields as a person wrote them, for the audit log: all but the status we write."""
    return {key: value for key, value in doc.items() if key != "status"}

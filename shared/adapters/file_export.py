"""AudienceDestination as files: each run's adds and removes as CSVs in a bucket (a folder locally),
in Meta's customer-list layout, for media without an API and for uploads by hand.

A run writes, under `<prefix>/<publication>/<run>/`, `remove.csv`, `add.csv` (`replace.csv` for a
replace) only when it has rows for them, then `manifest.json`: written last, so a reader that finds
the manifest finds the files complete. One column per key, headed by Meta's file header, each cell
the value the service computed (SHA-256 hex, EXTERN_ID and MADID as they are), blank for a key the
person lacks.

The service records each batch in its ledger as soon as the port call returns, so a batch is on disk
before `add` or `remove` returns: one part file per batch in a local spool kept per publication and
run, named by a digest of its content. `finish()` assembles each operation's parts into one CSV on
disk and uploads it from the file, so a million rows are never in memory at once. The spool is what
makes retries safe:

- A run retried under the same id continues its spool. A batch sent again (taken just before a
  crash, so not in the ledger) has the same digest and is not spooled twice; the files are the bytes
  an uninterrupted run writes (`created_at` is the first attempt's).
- A run that stopped part-way writes what it took (`final: false`) and keeps its spool; a run killed
  before `finish()` wrote nothing. Either way the next run of the publication writes that run's
  files, under that run's folder, before its own, and drops the spool.
- A run with nothing to send writes nothing, so a retry of a finished run leaves its files alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Protocol

from shared.activation.customer_file import KEYS, UNHASHED
from shared.activation.publications import Destination
from shared.ports.audiences import AudienceInfo, BatchResult, DestinationUnavailable, Row, UploadSession, Usage
from shared.ports.blobs import BlobStore

LAYOUT: Final = "meta"
HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "EMAIL": "email",
        "PHONE": "phone",
        "FN": "fn",
        "LN": "ln",
        "GEN": "gen",
        "DOBY": "doby",
        "DOBM": "dobm",
        "DOBD": "dobd",
        "CT": "ct",
        "ST": "st",
        "ZIP": "zip",
        "COUNTRY": "country",
        "MADID": "madid",
        "EXTERN_ID": "extern_id",
    }
)
"""The column header of each key: Meta's customer-list headers (Business Help Centre 2082575038703844),
which are also the SDK's MultiKeySchema names; dobm, dobd and extern_id are not in the Help Centre's
list and are mapped by hand in Audience Manager."""

OPS: Final = ("remove", "add", "replace")
"""The operations, in the order a run's files are written."""
DEFAULT_SPOOL: Final = Path(tempfile.gettempdir()) / "cdp-file-export"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:=-]{0,199}")  # one folder name, never . or ..
_NO_USAGE: Final = Usage()  # one instance: the service paces once per usage report it is given


class FileBlobs(BlobStore, Protocol):
    """A BlobStore that can also upload a local file without reading it into memory."""

    def write_file(self, name: str, path: Path, content_type: str) -> str: ...


class FileExportAudience:
    """AudienceDestination (and RunFiles) for one file_export destination.

    The service says which run the batches belong to (`begin`) and when it is over (`finish`); the
    audience is a stable pseudo id, `file:<destination id>`, found again in the ledger by later runs.
    """

    def __init__(self, blobs: FileBlobs, destination: Destination, spool: Path | str = DEFAULT_SPOOL) -> None:
        self.blobs = blobs
        self.destination = destination
        self.audience_id = f"file:{destination.id}"
        self.spool = Path(spool)
        self._run: _Spool | None = None

    # -- RunFiles --------------------------------------------------------------------------------------

    def begin(self, publication_id: str, run_id: str, at: datetime) -> None:
        for label, value in (("publication id", publication_id), ("run id", run_id)):
            if not _NAME.fullmatch(value):
                raise ValueError(f"{label} {value!r} cannot name a folder (letters, digits, _ . : = -)")
        self._run = _Spool.open(self.spool / publication_id / run_id, publication_id, run_id, at)

    def finish(self, *, final: bool) -> list[str]:
        run = self._current()
        written: list[str] = []
        try:
            for stale in run.stale():
                written += self._deliver(stale, final=True)
                stale.drop()
            written += self._deliver(run, final)
            if final:
                run.drop()
        except OSError as exc:
            raise DestinationUnavailable(f"audience files could not be written: {exc}") from None
        self._run = None
        return written

    # -- AudienceDestination -----------------------------------------------------------------------------

    def create_audience(self, name: str, description: str, customer_file_source: str) -> str:
        return self.audience_id

    def add(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        return self._take("add", audience_id, schema, rows)

    def remove(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession | None = None
    ) -> BatchResult:
        return self._take("remove", audience_id, schema, rows)

    def replace(
        self, audience_id: str, schema: Sequence[str], rows: Sequence[Row], session: UploadSession
    ) -> BatchResult:
        """Rows of a replace session go to replace.csv: the full set when the session ran in one run."""
        return self._take("replace", audience_id, schema, rows)

    def audience_info(self, audience_id: str) -> AudienceInfo:
        """No platform holds the audience: its size is the ledger's, so none is reported here."""
        return AudienceInfo(audience_id, self.destination.name or self.destination.id, None, None, None, None)

    def usage(self) -> Usage:
        return _NO_USAGE

    # -- the files -----------------------------------------------------------------------------------------

    def _current(self) -> _Spool:
        if self._run is None:
            raise RuntimeError("a file export takes batches between begin() and finish()")
        return self._run

    def _take(self, op: str, audience_id: str, schema: Sequence[str], rows: Sequence[Row]) -> BatchResult:
        unknown = [key for key in schema if key not in HEADERS]
        if unknown or len(set(schema)) != len(schema) or not schema:
            raise ValueError(f"schema must be distinct customer-file keys, got {list(schema)}")
        if not rows:
            raise ValueError("a batch needs at least one row")
        if any(len(row) != len(schema) for row in rows):
            raise ValueError(f"every row must have {len(schema)} values, one per key of the schema")
        try:
            self._current().take(op, schema, rows)
        except OSError as exc:
            raise DestinationUnavailable(f"a batch could not be spooled: {exc}") from None
        return BatchResult(audience_id, len(rows), 0)

    def _deliver(self, run: _Spool, final: bool) -> list[str]:
        """Write one run's files from its parts, the manifest last; nothing when it has no parts."""
        base = "/".join(p for p in (self.destination.prefix, run.publication_id, run.run_id) if p)
        written: list[str] = []
        files: dict[str, Any] = {}
        for op in OPS:
            parts = run.parts(op)
            if not parts:
                continue
            local = run.path / f"{op}.csv"
            keys, rows = _assemble(parts, local)
            written.append(self.blobs.write_file(f"{base}/{op}.csv", local, "text/csv"))
            files[f"{op}.csv"] = {
                "op": op,
                "rows": rows,
                "keys": keys,
                "columns": [HEADERS[key] for key in keys],
                "sha256": _file_digest(local),
            }
            local.unlink()
        if not files:
            return written
        keys = sorted({key for entry in files.values() for key in entry["keys"]}, key=KEYS.index)
        manifest = {
            "publication_id": run.publication_id,
            "run_id": run.run_id,
            "destination_id": self.destination.id,
            "created_at": run.created_at,
            "layout": LAYOUT,
            "final": final,
            "keys": keys,
            "hashing": {key: "none" if key in UNHASHED else "sha256" for key in keys},
            "files": files,
        }
        data = (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode()
        written.append(self.blobs.write(f"{base}/manifest.json", data, "application/json"))
        return written


@dataclass
class _Spool:
    """One run's batches on local disk: `<op>/<n>-<digest>.csv`, each a JSON line (keys, rows) then
    the rows as CSV in the batch's own key order; `run.json` holds the first attempt's time."""

    path: Path
    publication_id: str
    run_id: str
    created_at: str
    count: int = 0
    digests: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, path: Path, publication_id: str, run_id: str, at: datetime) -> _Spool:
        run = cls(path, publication_id, run_id, at.isoformat())
        facts = path / "run.json"
        if facts.exists():
            run.created_at = str(json.loads(facts.read_text())["created_at"])
        for op in OPS:
            for part in run.parts(op):
                number, digest = part.stem.split("-")
                run.count = max(run.count, int(number))
                run.digests.add(digest)
        return run

    def parts(self, op: str) -> list[Path]:
        folder = self.path / op
        return sorted(folder.glob("*.csv")) if folder.is_dir() else []

    def take(self, op: str, schema: Sequence[str], rows: Sequence[Row]) -> None:
        buffer = io.StringIO(newline="")
        buffer.write(json.dumps({"keys": list(schema), "rows": len(rows)}) + "\n")
        csv.writer(buffer, lineterminator="\n").writerows(["" if v is None else v for v in row] for row in rows)
        text = buffer.getvalue()
        digest = hashlib.sha256(f"{op}\n{text}".encode()).hexdigest()[:32]
        if digest in self.digests:
            return  # this very batch was spooled by an earlier attempt of the run
        (self.path / op).mkdir(parents=True, exist_ok=True)
        facts = self.path / "run.json"
        if not facts.exists():
            facts.write_text(json.dumps({"publication_id": self.publication_id, "run_id": self.run_id,
                                         "created_at": self.created_at}))  # fmt: skip
        self.count += 1
        part = self.path / op / f"{self.count:06d}-{digest}.csv"
        partial = part.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8", newline="")
        os.replace(partial, part)
        self.digests.add(digest)

    def stale(self) -> list[_Spool]:
        """Spools of this publication's earlier runs that no run finished."""
        found: list[_Spool] = []
        if not self.path.parent.is_dir():
            return found
        for folder in sorted(self.path.parent.iterdir()):
            if folder == self.path or not folder.is_dir():
                continue
            facts = folder / "run.json"
            if not facts.exists():  # killed before its first batch was spooled: nothing to write
                continue
            meta = json.loads(facts.read_text())
            found.append(_Spool(folder, str(meta["publication_id"]), str(meta["run_id"]), str(meta["created_at"])))
        return found

    def drop(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _assemble(parts: Sequence[Path], out: Path) -> tuple[list[str], int]:
    """Concatenate parts into one CSV with a header, streamed; returns its keys and row count.

    Columns are the keys in the order first met: removals of rows sent under an older schema can
    sit beside others in one run, and their parts are rewritten to the union (blank where a part
    lacks a key); a part already in that order is copied as it is."""
    heads = []
    for part in parts:
        with part.open(encoding="utf-8", newline="") as source:
            heads.append(json.loads(source.readline()))
    keys: list[str] = []
    for head in heads:
        keys += [key for key in head["keys"] if key not in keys]
    with out.open("w", encoding="utf-8", newline="") as target:
        writer = csv.writer(target, lineterminator="\n")
        writer.writerow([HEADERS[key] for key in keys])
        for part, head in zip(parts, heads, strict=True):
            with part.open(encoding="utf-8", newline="") as source:
                source.readline()
                if head["keys"] == keys:
                    shutil.copyfileobj(source, target)
                    continue
                where = [head["keys"].index(key) if key in head["keys"] else None for key in keys]
                writer.writerows(["" if i is None else record[i] for i in where] for record in csv.reader(source))
    return keys, sum(int(head["rows"]) for head in heads)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

"""Reading an export: decoding (UTF-8 or CP949), CSV or NDJSON records, and the header's columns.

Everything that makes a file unusable as a whole is found here, before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.beacons import Rejection


class UnusableFile(Exception):
    """The file as a whole cannot be imported (exit 2); raised before anything is written."""


@dataclass(frozen=True)
class Line:
    """One record as read: where it starts, its values by column, and what it was, for bad rows."""

    number: int
    values: dict[str, Any] | None
    raw: str | dict[str, Any]  # the NDJSON line's text, or the CSV row by header
    error: Rejection | None = None

    @property
    def payload(self) -> str:
        """Serialised only for rejected lines: most lines never need it."""
        return self.raw if isinstance(self.raw, str) else json.dumps(self.raw, ensure_ascii=False)


@dataclass(frozen=True)
class Source:
    """A decoded input file; the sha256 of its bytes names its resume state."""

    path: Path
    sha256: str
    format: str
    encoding: str
    text: str
    columns: tuple[str, ...]
    mtime: datetime
    delimiter: str = ","

    @property
    def data_lines(self) -> int:
        """Physical lines after the header: the progress bar's total."""
        lines = self.text.count("\n") + (0 if self.text.endswith("\n") else 1)
        return max(lines - (1 if self.format == "csv" else 0), 0)

    def lines(self) -> Iterator[Line]:
        return self._csv_lines() if self.format == "csv" else self._ndjson_lines()

    def _csv_lines(self) -> Iterator[Line]:
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
        end, header_seen = 0, False
        try:
            for row in reader:
                start, end = end + 1, reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                named = dict(zip(self.columns, row, strict=False))
                extra = row[len(self.columns) :]
                if any(cell.strip() for cell in extra):
                    detail = f"line {start} has {len(row)} fields; the header has {len(self.columns)}"
                    rejection = Rejection("malformed_line", f"line {start}", detail)
                    yield Line(start, None, {**named, "": extra}, rejection)
                    continue
                yield Line(start, {c: v for c, v in named.items() if c}, named)
        except csv.Error as exc:
            raise UnusableFile(f"{self.path.name} is not readable CSV after line {end}: {exc}") from exc

    def _ndjson_lines(self) -> Iterator[Line]:
        for number, text in enumerate(self.text.split("\n"), 1):
            text = text.rstrip("\r")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError:
                yield Line(
                    number, None, text, Rejection("malformed_json", f"line {number}", f"line {number} is not JSON")
                )
                continue
            if not isinstance(value, dict):
                detail = f"line {number} is not a JSON object"
                yield Line(number, None, text, Rejection("not_an_object", f"line {number}", detail))
                continue
            yield Line(number, value, text)


def read_source(path: Path, fmt: str | None = None, encoding: str | None = None) -> Source:
    """Read and decode a file, find its columns; UnusableFile when that is impossible."""
    try:
        data = path.read_bytes()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        raise UnusableFile(f"cannot read {path}: {exc.strerror}") from exc
    fmt = fmt or _format_of(path)
    text, used = _decode(data, path, encoding)
    if not unicodedata.is_normalized("NFC", text):  # Hangul from macOS exports arrives decomposed
        text = unicodedata.normalize("NFC", text)
    digest = hashlib.sha256(data).hexdigest()
    if fmt == "csv":
        first = next((line for line in text.splitlines() if line.strip()), "")
        delimiter = max(",\t;|", key=first.count) if first else ","
        header = next(csv.reader([first], delimiter=delimiter), [])
        columns = tuple(c.strip() for c in header)
        duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
        if duplicates:
            raise UnusableFile(f"{path.name}: column {', '.join(duplicates)} appears more than once in the header")
        source = Source(path, digest, fmt, used, text, columns, mtime, delimiter)
    else:
        seen: dict[str, None] = {}
        source = Source(path, digest, fmt, used, text, (), mtime)
        for line in source.lines():
            seen.update(dict.fromkeys(line.values or {}))
        source = Source(path, digest, fmt, used, text, tuple(seen), mtime)
    if not any(source.columns):
        raise UnusableFile(f"{path.name} has no {'header' if fmt == 'csv' else 'JSON object lines'}")
    return source


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise UnusableFile(f"cannot tell the format of {path.name} from its extension; pass --format csv or ndjson")


def _decode(data: bytes, path: Path, encoding: str | None) -> tuple[str, str]:
    """UTF-8 (BOM or not) first, then CP949, the superset of EUC-KR that Korean Excel writes."""
    for name in [encoding] if encoding else ["utf-8-sig", "cp949"]:
        try:
            return data.decode(name).removeprefix("\ufeff"), name
        except LookupError as exc:
            raise UnusableFile(f"unknown encoding {name!r}") from exc
        except UnicodeDecodeError as exc:
            failure = exc
    raise UnusableFile(
        f"{path.name} is not {encoding or 'UTF-8 or CP949/EUC-KR'} (byte {failure.start}); pass --encoding"
    )

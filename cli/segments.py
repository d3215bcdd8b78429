"""scripts/segments: segments as YAML files, for ops and marketers who prefer files to the console.

    scripts/segments validate FILE…   check files offline (exit 1 on any error)
    scripts/segments apply FILE…      validate all, then write them to Firestore (idempotent)
    scripts/segments preview ID|FILE  size now and a few sample profiles
    scripts/segments list             every segment with its status, size and last build
    scripts/segments publish          the segmentlet catalogue and templates to Firestore

A file holds one segment document (docs/segments.md); its id is the file's `id:` key, or else
the file name without extension. Reading a file lives in shared/tam/files.py and the work in
shared/services/segments.py; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from google.auth.exceptions import DefaultCredentialsError

from shared.config import ScheduleSettings
from shared.cron import MIN_INTERVAL_MINUTES
from shared.ports import DocumentStore, Warehouse
from shared.services import segments as service
from shared.tam.files import UnreadableSegmentFile, load_file
from shared.tam.rules import InvalidSegment, Segment, field_path, parse_segment


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass
class Context:
    out: TextIO
    documents: Callable[[], DocumentStore]
    warehouse: Callable[[], Warehouse]
    now: Callable[[], datetime]
    cwd: Path
    min_interval_minutes: int = MIN_INTERVAL_MINUTES  # CDP_SCHEDULE_MIN_INTERVAL_MINUTES, as sync applies it


def _check(ctx: Context, files: Sequence[str]) -> list[tuple[Path, str, dict[str, Any]]] | None:
    """Every file parsed and validated; prints each verdict; None when any failed."""
    loaded, failed = [], False
    for name in files:
        path = ctx.cwd / name
        try:
            segment_id, doc = load_file(path)
            parse_segment(segment_id, doc, min_interval_minutes=ctx.min_interval_minutes, now=ctx.now())
        except UnreadableSegmentFile as exc:
            print(f"error {exc}", file=ctx.out)
            failed = True
            continue
        except InvalidSegment as exc:
            print(f"error {name} ({field_path(segment_id)}):", file=ctx.out)
            for problem in exc.problems:
                print(f"  {problem}", file=ctx.out)
            failed = True
            continue
        print(f"ok    {name} ({segment_id})", file=ctx.out)
        loaded.append((path, segment_id, doc))
    return None if failed else loaded


def cmd_validate(ctx: Context, args: argparse.Namespace) -> int:
    return 0 if _check(ctx, args.files) is not None else 1


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    loaded = _check(ctx, args.files)
    if loaded is None:
        print("nothing applied: fix the errors above first", file=ctx.out)
        return 1
    documents = ctx.documents()
    counts = service.publish_catalogue(documents)
    if counts["written"] or counts["deleted"]:
        print(f"catalogue: {counts['written']} written, {counts['deleted']} deleted", file=ctx.out)
    for path, segment_id, doc in loaded:
        outcome = service.apply_segment(documents, segment_id, doc, ctx.min_interval_minutes)
        print(f"{outcome:<9} segments/{segment_id} ({path.name})", file=ctx.out)
    return 0


def _segment_for(ctx: Context, ref: str) -> Segment:
    path = ctx.cwd / ref
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        segment_id, doc = load_file(path)
    else:
        found = ctx.documents().get(service.SEGMENTS, ref)
        if found is None:
            raise CliError(f"no segment {ref!r} in Firestore (scripts/segments list shows them)")
        segment_id, doc = ref, found
    try:
        return parse_segment(segment_id, doc, min_interval_minutes=ctx.min_interval_minutes, now=ctx.now())
    except InvalidSegment as exc:
        raise CliError(f"{ref} is invalid:\n" + "\n".join(f"  {p}" for p in exc.problems)) from exc


def cmd_preview(ctx: Context, args: argparse.Namespace) -> int:
    segment = _segment_for(ctx, args.ref)
    now = ctx.now()
    result = service.preview_segment(segment, ctx.warehouse(), now, limit=args.limit)
    print(f"{segment.id}: {segment.name}", file=ctx.out)
    print(f"size: {result.size:,} customers (as of {service.today_for(segment, now).isoformat()})", file=ctx.out)
    if result.sample:
        print(f"sample ({len(result.sample)}):", file=ctx.out)
        _table(ctx.out, result.sample)
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = []
    for segment_id, doc in ctx.documents().list(service.SEGMENTS):
        state = (doc.get("status") or {}).get("state", "-")
        computed = service.as_datetime(doc.get("computed_at"))
        rows.append(
            {
                "id": segment_id,
                "name": doc.get("name", ""),
                "template": doc.get("template", ""),
                "enabled": doc.get("enabled", True),
                "status": state,
                "size": doc.get("size", "-"),
                "computed_at": computed.isoformat(timespec="minutes") if computed else "-",
            }
        )
    if not rows:
        print("no segments (scripts/segments apply FILE… creates them)", file=ctx.out)
        return 0
    _table(ctx.out, rows)
    return 0


def cmd_publish(ctx: Context, args: argparse.Namespace) -> int:
    counts = service.publish_catalogue(ctx.documents())
    print(
        f"segmentlets and templates: {counts['written']} written, {counts['unchanged']} unchanged, "
        f"{counts['deleted']} deleted",
        file=ctx.out,
    )
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    return "" if value is None else str(value)


def _table(out: TextIO, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    cells = [[_cell(row.get(c))[:40] for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/segments", description="Segments as YAML files (docs/segments.md).")
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("validate", "check files offline"), ("apply", "validate, then write to Firestore")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("files", nargs="+", metavar="FILE")
    s = sub.add_parser("preview", help="size and sample profiles of a stored segment or a file")
    s.add_argument("ref", metavar="ID|FILE")
    s.add_argument("--limit", type=int, default=5, choices=range(1, 101), metavar="N", help="sample size (1-100)")
    sub.add_parser("list", help="stored segments with status and size")
    sub.add_parser("publish", help="publish segmentlets and templates to Firestore")
    return p


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "apply": cmd_apply,
    "preview": cmd_preview,
    "list": cmd_list,
    "publish": cmd_publish,
}


def main(argv: Sequence[str] | None = None, ctx: Context | None = None) -> int:
    args = parser().parse_args(argv)
    if ctx is None:
        os.environ.setdefault("CDP_PROJECT", os.environ.get("GOOGLE_CLOUD_PROJECT", "cdp-local"))
        from shared import bootstrap

        # A file name or a value that is not valid Unicode still prints (escaped), never a traceback.
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(errors="backslashreplace")
        ctx = Context(
            out=sys.stdout,
            documents=bootstrap.documents,
            warehouse=bootstrap.warehouse,
            now=lambda: datetime.now(UTC),
            cwd=Path(os.environ.get("CDP_SEGMENTS_CWD", ".")),
            min_interval_minutes=ScheduleSettings.from_env().min_interval_minutes,
        )
    try:
        return COMMANDS[args.command](ctx, args)
    except (CliError, UnreadableSegmentFile) as exc:
        print(f"error: {exc}", file=ctx.out)
        return 1
    except DefaultCredentialsError:
        print(
            "error: no Firestore to talk to: set FIRESTORE_EMULATOR_HOST for the local emulator, or "
            "log in with `gcloud auth application-default login` for the project's Firestore",
            file=ctx.out,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

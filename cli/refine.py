"""scripts/backfill: refine a range of event dates by hand, with a progress bar.

`backfill FROM TO` runs shared.services.refine.backfill chunk by chunk; `run FROM TO` one plain run,
as the scheduled job does. The run's document is printed as JSON (and recorded unless --no-record).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime

from tqdm import tqdm

from shared import bootstrap
from shared.ports import DocumentStore, Warehouse
from shared.services import refine as refinement


class _Bar:
    """refinement.Progress drawn by tqdm on stderr."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def step(self, label: str) -> None:
        self._bar.set_postfix_str(label)

    def done(self) -> None:
        self._bar.update()


@contextmanager
def progress_bar(steps: int, enabled: bool = True) -> Iterator[refinement.Progress]:
    with tqdm(total=steps, desc="refine", unit="chunk", disable=not enabled, file=sys.stderr) as bar:
        yield _Bar(bar)


def backfill(
    warehouse: Warehouse,
    documents: DocumentStore | None,
    date_from: date,
    date_to: date,
    now: datetime,
    chunk_days: int = 7,
    settings: refinement.RefineSettings | None = None,
    progress: bool = True,
    every_node: bool = False,
) -> refinement.RunReport:
    """refinement.backfill with a progress bar on stderr (unless progress is false)."""
    steps = len(refinement.chunks(date_from, date_to, chunk_days)) + 1
    with progress_bar(steps, progress) as bar:
        return refinement.backfill(
            warehouse, documents, date_from, date_to, now, chunk_days, settings, bar, every_node=every_node
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/backfill", description="Refine a range of event dates.")
    parser.add_argument("command", choices=("backfill", "run"), help="backfill: chunked with progress; run: one run")
    parser.add_argument("date_from", type=date.fromisoformat, metavar="FROM", help="first event date, YYYY-MM-DD")
    parser.add_argument("date_to", type=date.fromisoformat, metavar="TO", help="last event date, YYYY-MM-DD")
    parser.add_argument("--chunk-days", type=int, default=7, help="days per chunk of a backfill (default 7)")
    parser.add_argument("--no-record", action="store_true", help="do not record the run in Firestore `runs`")
    parser.add_argument(
        "--every-node",
        action="store_true",
        help="resolve every identity again, not only where edges changed: after deleting or editing edges by hand",
    )
    args = parser.parse_args(argv)
    if args.date_from > args.date_to:
        parser.error(f"FROM {args.date_from} is after TO {args.date_to}")

    # Out of the box against the local DuckDB file, as scripts/import and scripts/segments run.
    os.environ.setdefault("CDP_PROJECT", os.environ.get("GOOGLE_CLOUD_PROJECT", "cdp-local"))
    warehouse = bootstrap.warehouse()
    documents = None if args.no_record else bootstrap.documents()
    now = datetime.now(UTC)
    settings = bootstrap.refine_settings()
    if args.command == "run":
        report = refinement.refine(
            warehouse, documents, args.date_from, args.date_to, now, settings, every_node=args.every_node
        )
    else:
        report = backfill(
            warehouse,
            documents,
            args.date_from,
            args.date_to,
            now,
            chunk_days=args.chunk_days,
            settings=settings,
            every_node=args.every_node,
        )
    print(json.dumps(report.document() | {"run_id": report.run_id}, default=str, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""scripts/import: CRM customers and POS orders from files into the raw tables (docs/import.md).

The argument parsing, messages and progress bar of the importer; the work is shared/offline_import,
which knows nothing of a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tqdm import tqdm

from shared.beacons import Invalid
from shared.config import ConfigError, Settings
from shared.offline_import.mapping import KINDS, load_mapping, parse_map_args, plan_columns
from shared.offline_import.runner import check_site, format_summary, run_import
from shared.offline_import.shaping import DEFAULT_TIMEZONE, ImportJob, parse_time
from shared.offline_import.sources import UnusableFile, read_source
from shared.offline_import.state import DEFAULT_STATE_DIR, ImportState
from shared.ports import TransientError
from shared.privacy.suppression import WarehouseSuppressions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/import",
        description="Import CRM customers or POS/offline orders into the raw tables.",
        epilog="Column mapping, ids, resuming and exit codes: docs/import.md",
    )
    parser.add_argument("kind", choices=KINDS, help="customers (→ raw.user) or orders (→ raw.conv)")
    parser.add_argument("file", type=Path, metavar="FILE", help="CSV or NDJSON export")
    parser.add_argument("--site", required=True, help="site id the records belong to (must be in CDP_SITES)")
    parser.add_argument("--allow-unknown-site", action="store_true", help="accept a site not in CDP_SITES")
    parser.add_argument("--mapping", type=Path, metavar="FILE", help='JSON file {"source column": "field" | "-"}')
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help="map one column (repeatable; FIELD '-' drops the column); overrides --mapping",
    )
    parser.add_argument("--format", choices=("csv", "ndjson"), help="default: from the file extension")
    parser.add_argument("--encoding", metavar="NAME", help="default: UTF-8 (BOM tolerated), else CP949/EUC-KR")
    parser.add_argument(
        "--timezone", default=DEFAULT_TIMEZONE, metavar="ZONE", help="zone of times without an offset (%(default)s)"
    )
    parser.add_argument(
        "--as-of", metavar="TIME", help="time of customer records without joined_at (default: the file's mtime)"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    parser.add_argument("--restart", action="store_true", help="ignore the saved resume state")
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR", help="resume state (.local/import-state)"
    )
    parser.add_argument("--chunk-size", type=int, default=2000, metavar="N", help="rows per insert (%(default)s)")
    parser.add_argument("--progress", action="store_true", help="show the progress bar even when not a TTY")
    return parser


def _settings() -> Settings:
    env = dict(os.environ)
    if not env.get("CDP_PROJECT") and not env.get("GOOGLE_CLOUD_PROJECT"):
        env["CDP_PROJECT"] = "cdp-local"  # runs out of the box against the local DuckDB file
    return Settings.from_env(env)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: 0 when the file was processed (rejected rows included), 2 when it is unusable, 1 on outage.

    130 when interrupted; like an outage, a re-run resumes after the last committed chunk.
    """
    args = _parser().parse_args(argv)
    base = Path(os.environ.get("CDP_IMPORT_CWD", "."))  # scripts/import runs from the repo; paths are the caller's
    try:
        if args.chunk_size < 1:
            raise UnusableFile("--chunk-size must be at least 1")
        settings = _settings()
        check_site(args.site, settings.sites, args.allow_unknown_site)
        try:
            tz = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise UnusableFile(f"unknown --timezone {args.timezone!r}") from exc
        source = read_source(base / args.file, args.format, args.encoding)
        overrides = {**(load_mapping(base / args.mapping) if args.mapping else {}), **parse_map_args(args.map)}
        plan = plan_columns(args.kind, source.columns, overrides)
        as_of = parse_time(args.as_of, tz, "--as-of") if args.as_of else source.mtime
        salt = None if args.dry_run else settings.privacy.require_salt()  # re-imports skip erased people
    except (UnusableFile, ConfigError) as exc:
        print(f"import: {exc}", file=sys.stderr)
        return 2
    except Invalid as exc:
        print(f"import: {exc.rejection.detail}", file=sys.stderr)
        return 2
    job = ImportJob(args.kind, args.site, source, plan, as_of, tz, args.chunk_size)
    print(
        f"import: {args.kind} from {source.path.name} ({source.format}, {source.encoding}) for site {args.site}; "
        f"columns {plan.describe()}",
        file=sys.stderr,
    )
    state = None if args.dry_run else ImportState.for_job(base / args.state_dir, job)
    warehouse = None
    if not args.dry_run:
        from shared.bootstrap import build_warehouse

        warehouse = build_warehouse(settings)
    show = args.progress or sys.stderr.isatty()
    with tqdm(total=source.data_lines, unit="row", file=sys.stderr, disable=not show, desc=source.path.name) as bar:
        try:
            screen = None if warehouse is None or salt is None else WarehouseSuppressions(warehouse, salt)
            report = run_import(
                job,
                warehouse,
                lambda: datetime.now(UTC),
                state=state,
                restart=args.restart,
                progress=bar.update,
                screen=screen,
            )
        except TransientError as exc:
            print(
                f"\nimport: the warehouse is unavailable ({exc}); committed chunks are kept, run the same "
                "command again to resume",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print(
                "\nimport: interrupted; committed chunks are kept, run the same command again to resume",
                file=sys.stderr,
            )
            return 130
        finally:
            if warehouse is not None:  # a dry run opens none
                warehouse.close()
    print(format_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

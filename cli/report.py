"""scripts/report: build the report by hand into a folder, as the scheduled `build_report` job does.

Locally it reads the demo's warehouse (or --warehouse) and the Firestore emulator when one is
running (FIRESTORE_EMULATOR_HOST); without it the page is built from the warehouse alone and says
so. `scripts/report font SOURCE.ttc` rebuilds the committed font subset (shared/reporting/fonts/).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_WAREHOUSE = REPO / ".local" / "demo" / "warehouse.duckdb"
DEFAULT_OUT = REPO / ".local" / "reports"
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")  # Debian's fonts-noto-cjk


def emulator_running(env: Mapping[str, str] = os.environ) -> bool:
    """Whether FIRESTORE_EMULATOR_HOST names a port that answers."""
    host = env.get("FIRESTORE_EMULATOR_HOST", "")
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        return False
    try:
        with socket.create_connection((name.strip("[]"), int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def build(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/report", description="Build the report (one HTML file).")
    parser.add_argument(
        "--warehouse", type=Path, help=f"a DuckDB warehouse file (default: the demo's, {DEMO_WAREHOUSE})"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder to write into (default {DEFAULT_OUT})")
    parser.add_argument("--days", type=int, help="days the flows cover (default CDP_REPORT_DAYS or 30)")
    args = parser.parse_args(argv)

    os.environ.setdefault("CDP_PROJECT", os.environ.get("GOOGLE_CLOUD_PROJECT", "cdp-local"))
    path = args.warehouse or (DEMO_WAREHOUSE if DEMO_WAREHOUSE.exists() else None)
    if path is not None:
        if not path.exists():
            print(f"report: no warehouse at {path}", file=sys.stderr)
            return 2
        os.environ["CDP_DUCKDB_PATH"] = str(path)

    from shared import bootstrap
    from shared.adapters.folder_blobs import FolderBlobs
    from shared.services import report

    settings = bootstrap.settings()
    documents = bootstrap.documents() if settings.warehouse == "bigquery" or emulator_running() else None
    if documents is None:
        print("report: no Firestore emulator running (FIRESTORE_EMULATOR_HOST): built from the warehouse alone")
    ports = bootstrap.build_report_ports(settings, bootstrap.warehouse(), documents, blobs=FolderBlobs(str(args.out)))
    if args.days is not None:
        ports = ports.with_days(args.days)
    result = report.build_report(ports, datetime.now(UTC))
    bootstrap.warehouse().close()
    print(f"report: {result.location} ({result.bytes / 1024:,.0f} KB, built in {result.seconds:.1f} s)")
    return 0


def font(argv: Sequence[str]) -> int:
    """Cut the committed font from a Noto Sans CJK collection (the KR face) to the asset's characters."""
    parser = argparse.ArgumentParser(prog="scripts/report font", description=font.__doc__)
    parser.add_argument("source", type=Path, nargs="?", default=NOTO_CJK, help=f"the .ttc (default {NOTO_CJK})")
    args = parser.parse_args(argv)
    from fontTools import subset  # type: ignore[import-untyped]
    from fontTools.ttLib import TTCollection  # type: ignore[import-untyped]

    from shared.reporting import fonts

    if not args.source.exists():
        print(f"report font: no {args.source}: apt-get install fonts-noto-cjk", file=sys.stderr)
        return 2
    faces = [f for f in TTCollection(str(args.source)).fonts if f["name"].getDebugName(1) == "Noto Sans CJK KR"]
    if not faces:
        print(f"report font: {args.source} has no Noto Sans CJK KR face", file=sys.stderr)
        return 2
    face = faces[0]
    options = subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.layout_features = ["kern", "liga", "ccmp", "locl", "ljmo", "vjmo", "tjmo", "palt"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=fonts.asset_characters())
    subsetter.subset(face)
    face.save(str(fonts.FONT_FILE))
    print(f"report font: {fonts.FONT_FILE} ({fonts.FONT_FILE.stat().st_size / 1024:,.0f} KB)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["font"]:
        return font(args[1:])
    return build(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""scripts/privacy: export or erase everything about one person, by hand (docs/privacy.md).

`scripts/privacy erase --email kim@example.com [--site shop]` runs one request through the same
service as the batch entry point, on the local DuckDB warehouse by default (.local/warehouse.duckdb,
or CDP_DUCKDB_PATH; BigQuery with CDP_WAREHOUSE=bigquery), and prints its receipt. Exit codes: 0
done, 2 a bad request or setting, 3 still pending (rows in BigQuery's streaming buffer: run it again
later, or pass --wait), 1 the warehouse is unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from shared import bootstrap
from shared.adapters.folder_blobs import FolderBlobs
from shared.config import ConfigError, Settings
from shared.ports import DocumentStore, TransientError
from shared.privacy.receipts import DONE, Receipt
from shared.privacy.subjects import FIELDS, PrivacyRequest, RequestError, build_request, identifier
from shared.services import privacy

OPTIONS = {"email": "--email", "phone": "--phone", "member": "--member-id", "visitor": "--visitor-id"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/privacy",
        description="Export or erase everything about one person (expanded through identity resolution).",
        epilog="Receipts, suppression and what is erased where: docs/privacy.md",
    )
    parser.add_argument("kind", choices=("export", "erase"), help="export: NDJSON + manifest; erase: delete + suppress")
    for id_type, option in OPTIONS.items():
        parser.add_argument(
            option, dest=id_type, action="append", default=[], metavar="VALUE", help=f"{FIELDS[id_type]} (repeatable)"
        )
    parser.add_argument("--site", help="only this site (default: every site that knows the person)")
    parser.add_argument(
        "--out", metavar="DIR", help="export folder (default CDP_PRIVACY_EXPORT_DIR, .local/privacy-exports)"
    )
    parser.add_argument(
        "--documents",
        choices=("auto", "yes", "no"),
        default="auto",
        help="also Firestore documents naming the person (auto: when Firestore or its emulator is configured)",
    )
    parser.add_argument(
        "--wait", type=float, default=0, metavar="MINUTES", help="retry a pending erasure for up to this long"
    )
    parser.add_argument("--json", action="store_true", help="print the receipt as JSON")
    return parser


def _settings(out: str | None) -> Settings:
    env = dict(os.environ)
    if not env.get("CDP_PROJECT") and not env.get("GOOGLE_CLOUD_PROJECT"):
        env["CDP_PROJECT"] = "cdp-local"  # runs out of the box against the local DuckDB file
    if out:  # scripts/privacy runs from the repository; a relative --out is the caller's
        env["CDP_PRIVACY_EXPORT_DIR"] = str(Path(env.get("CDP_PRIVACY_CWD", ".")) / out)
    return Settings.from_env(env)


def request_from(args: argparse.Namespace) -> PrivacyRequest:
    """The request the options describe; RequestError names the option at fault."""
    identifiers = [
        identifier(id_type, value, option) for id_type, option in OPTIONS.items() for value in getattr(args, id_type)
    ]
    request_id = f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    try:
        return build_request(request_id, args.kind, identifiers, args.site)
    except RequestError as exc:
        raise RequestError(" ".join(OPTIONS.values()), exc.reason) from None


def _documents(settings: Settings, choice: str) -> DocumentStore | None:
    wanted = choice == "yes" or (
        choice == "auto" and (settings.warehouse == "bigquery" or bool(os.environ.get("FIRESTORE_EMULATOR_HOST")))
    )
    return bootstrap.build_documents(settings) if wanted else None


def run(args: argparse.Namespace, settings: Settings, request: PrivacyRequest) -> Receipt:
    warehouse = bootstrap.build_warehouse(settings)
    documents = _documents(settings, args.documents)
    ports = bootstrap.build_privacy_ports(settings, warehouse, FolderBlobs(settings.privacy.export_dir))
    try:
        if args.kind == "export":
            assert ports.blobs is not None
            [receipt] = privacy.export(
                warehouse, [request], blobs=ports.blobs, now=datetime.now(UTC), documents=documents, sites=ports.sites
            )
            return receipt
        deadline = time.monotonic() + args.wait * 60
        while True:
            now = datetime.now(UTC)
            [receipt] = privacy.erase_with(ports, [request], now, documents)
            if receipt.status == DONE or time.monotonic() >= deadline:
                return receipt
            print(f"privacy: pending ({receipt.left} rows left); trying again in 5 minutes", file=sys.stderr)
            time.sleep(min(300.0, max(deadline - time.monotonic(), 1.0)))
    finally:
        warehouse.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args.out)
        request = request_from(args)
        settings.privacy.require_salt()  # before anything is opened: hashing needs it
        receipt = run(args, settings, request)
    except RequestError as exc:
        print(f"privacy: {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"privacy: {exc}", file=sys.stderr)
        return 2
    except TransientError as exc:
        print(f"privacy: the warehouse is unavailable ({exc}); run the same command again", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"request_id": receipt.request_id} | receipt.document(), default=str, ensure_ascii=False))
    else:
        print(receipt.summary())
    return 0 if receipt.status == DONE else 3


if __name__ == "__main__":
    sys.exit(main())

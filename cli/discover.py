"""scripts/discover: one discovery run by hand, as the scheduled `discover` job does, printed for people."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from shared import bootstrap
from shared.discovery.features import BY_CODE, ConfigError, DiscoveryError
from shared.services import discover as discovery


def feature_help() -> str:
    """The feature catalogue, one line each, for --help."""
    return "\n".join(f"  {f.code:<16} {f.kind:<9} {f.name_en}" for f in BY_CODE.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/discover",
        description="Run one discovery (K-Means) over the profiles, as the scheduled job does.",
        epilog="features:\n" + feature_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--engine", choices=("auto", "sklearn", "bigquery_ml"), default="auto")
    parser.add_argument("--charts", type=Path, help="also write cluster charts (PNG) into this folder")
    parser.add_argument("--k", type=int, help="this k instead of the config's (auto) choice")
    args = parser.parse_args(argv)

    # Out of the box against the local DuckDB file, as scripts/import and scripts/segments run.
    os.environ.setdefault("CDP_PROJECT", os.environ.get("GOOGLE_CLOUD_PROJECT", "cdp-local"))
    documents = bootstrap.documents()
    override = None
    if args.k is not None:  # parse_config ignores the fields the job writes back
        override = {**(documents.get(discovery.DISCOVERIES, discovery.CONFIG) or {}), "k": args.k}
    now = datetime.now(UTC)
    try:
        results = discovery.discover(
            bootstrap.warehouse(), documents, now, engine=args.engine, charts_dir=args.charts, config_override=override
        )
    except (ConfigError, DiscoveryError) as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 2
    print(discovery.format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

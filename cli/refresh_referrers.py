"""scripts/refresh-referrers: download Matomo's referrer list again into shared/enrich/data/.

Needs network (github.com); the project's build machines have none, and without it this stops with
an error and leaves the shipped files as they are. It resolves the ref to a commit, downloads the
three YAML files and the CC0 licence of that commit, checks that they parse into the lookup tables,
and only then writes them and SOURCE.json. Review the diff and run the enrichment tests and
`scripts/bench referrers` before committing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import yaml

from shared.enrich.referrers import DATA_DIR, FILES, load_tables

REPO = "matomo-org/searchengine-and-social-list"
LICENSE_NAME = "LICENSE-matomo-referrers-CC0.txt"
TIMEOUT_S = 20


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "cdp-refresh-referrers"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # fixed https URLs only
        body: bytes = response.read()
        return body


def resolve(ref: str) -> tuple[str, str]:
    """The commit id and commit date of a branch, tag or commit of the repository."""
    data = json.loads(_get(f"https://api.github.com/repos/{REPO}/commits/{ref}"))
    return str(data["sha"]), str(data["commit"]["committer"]["date"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/refresh-referrers", description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="master", help="branch, tag or commit (default: %(default)s)")
    parser.add_argument("--dir", type=Path, default=DATA_DIR, help="where to write (default: shared/enrich/data)")
    args = parser.parse_args(argv)
    try:
        commit, date = resolve(args.ref)
        files = {name: _get(f"https://raw.githubusercontent.com/{REPO}/{commit}/{name}") for name in FILES}
        files[LICENSE_NAME] = _get(f"https://raw.githubusercontent.com/{REPO}/{commit}/LICENSE")
    except (urllib.error.URLError, TimeoutError, OSError, KeyError, ValueError) as error:
        print(
            f"refresh-referrers: cannot download {REPO}@{args.ref} ({error}). This needs network access to "
            "api.github.com and raw.githubusercontent.com; nothing was changed.",
            file=sys.stderr,
        )
        return 1
    if not files[LICENSE_NAME].startswith(b"CC0 1.0 Universal"):
        print("refresh-referrers: the repository's LICENSE is no longer CC0 1.0; nothing was changed.", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as staging:
        for name, body in files.items():
            (Path(staging) / name).write_bytes(body)
        try:
            tables = load_tables("search", "social", "ai_assistant", Path(staging))
        except (ValueError, OSError, yaml.YAMLError) as error:
            print(f"refresh-referrers: the downloaded files do not parse: {error}", file=sys.stderr)
            return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (args.dir / name).write_bytes(body)
    source = {
        "repository": f"https://github.com/{REPO}",
        "commit": commit,
        "committed": date,
        "license": "CC0-1.0",
        "files": [*FILES, LICENSE_NAME],
    }
    (args.dir / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    print(
        f"refresh-referrers: {REPO}@{commit} ({date}): {len(tables.search_exact)} search engine hosts, "
        f"{len(tables.social_hosts)} social hosts, {len(tables.ai_hosts)} AI assistant hosts written to {args.dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

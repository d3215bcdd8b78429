"""The website tracker as `collect` serves it: minified, gzipped and content-hashed once; and the
web push service worker (functions/collect/sw.js), built the same way.

`python -m shared.tracker` prints the sizes quoted in docs/tracker.md.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import rjsmin

SOURCE = Path(__file__).resolve().parent.parent / "functions" / "collect" / "tracker.js"
WORKER_SOURCE = SOURCE.parent / "sw.js"


@dataclass(frozen=True)
class TrackerAsset:
    """One build of tracker.js; `body` and `gzip_body` are two encodings of the same script."""

    body: bytes
    gzip_body: bytes
    # A weak validator: it stays valid for both content codings, so If-None-Match matches whichever
    # one the client cached (a strong ETag would have to differ between them).
    etag: str
    source_size: int
    content_type: str = "text/javascript; charset=utf-8"


def build_asset(source: str) -> TrackerAsset:
    """Minify and compress `source`; deterministic, so every instance serves the same ETag."""
    minified: str = rjsmin.jsmin(source)  # rjsmin is untyped
    body = minified.encode("utf-8")
    # mtime=0 keeps the gzip bytes a function of the content alone.
    gzip_body = gzip.compress(body, compresslevel=9, mtime=0)
    digest = hashlib.sha256(body).hexdigest()[:32]
    return TrackerAsset(
        body=body,
        gzip_body=gzip_body,
        etag=f'W/"{digest}"',
        source_size=len(source.encode("utf-8")),
    )


@cache
def tracker_asset() -> TrackerAsset:
    """The tracker built from functions/collect/tracker.js, once per process (cold start)."""
    return build_asset(SOURCE.read_text(encoding="utf-8"))


@cache
def worker_asset() -> TrackerAsset:
    """The web push service worker collect serves at /sw.js, once per process."""
    return build_asset(WORKER_SOURCE.read_text(encoding="utf-8"))


def size_line(asset: TrackerAsset, name: str = "tracker.js") -> str:
    return (
        f"{name}: raw {asset.source_size} bytes, minified {len(asset.body)} bytes, "
        f"minified+gzip {len(asset.gzip_body)} bytes"
    )


def main() -> None:
    print(size_line(tracker_asset()))
    print(size_line(worker_asset(), "sw.js"))


if __name__ == "__main__":
    main()

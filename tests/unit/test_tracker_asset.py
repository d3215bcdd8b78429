"""shared.tracker: the served build of tracker.js is small, stable and still valid JavaScript."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from shared import tracker
from shared.tracker import build_asset, tracker_asset


def test_asset_is_cached_and_read_from_the_source() -> None:
    asset = tracker_asset()
    assert tracker_asset() is asset
    assert asset.source_size == len(tracker.SOURCE.read_bytes())
    assert asset.content_type.startswith("text/javascript")


def test_minified_is_smaller_and_gzip_round_trips() -> None:
    asset = tracker_asset()
    assert len(asset.body) < asset.source_size
    assert len(asset.gzip_body) < len(asset.body)
    assert gzip.decompress(asset.gzip_body) == asset.body
    # Comments go; the public name the snippet relies on stays.
    assert b"/*" not in asset.body
    assert b"w.cdp=cdp" in asset.body


def test_etag_is_stable_and_derived_from_the_content() -> None:
    source = tracker.SOURCE.read_text(encoding="utf-8")
    first, again = build_asset(source), build_asset(source)
    assert first.etag == again.etag == tracker_asset().etag
    assert first.gzip_body == again.gzip_body  # no timestamp in the gzip header
    assert first.etag.startswith('W/"') and first.etag.endswith('"')
    # A comment-only change minifies to the same bytes, so caches stay valid.
    assert build_asset("// note\n" + source).etag == first.etag
    assert build_asset(source.replace("MAX_QUEUE = 500", "MAX_QUEUE = 501")).etag != first.etag


def test_size_line() -> None:
    asset = tracker_asset()
    line = tracker.size_line(asset)
    assert line == (
        f"tracker.js: raw {asset.source_size} bytes, minified {len(asset.body)} bytes, "
        f"minified+gzip {len(asset.gzip_body)} bytes"
    )


@pytest.mark.parametrize("which", ["source", "minified"])
def test_script_parses(which: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is missing (apt-get install nodejs); the browser tests still run it")
    path = tmp_path / "tracker.js"
    path.write_bytes(tracker.SOURCE.read_bytes() if which == "source" else tracker_asset().body)
    result = subprocess.run(
        [node, "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr

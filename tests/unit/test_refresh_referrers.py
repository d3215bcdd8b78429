"""scripts/refresh-referrers without network: the download is replaced by the shipped files."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest

from cli import refresh_referrers
from shared.enrich.referrers import DATA_DIR, FILES

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_get(url: str) -> bytes:
    if url.startswith("https://api.github.com/"):
        return json.dumps({"sha": COMMIT, "commit": {"committer": {"date": "2026-01-02T03:04:05Z"}}}).encode()
    name = url.rsplit("/", 1)[1]
    return (DATA_DIR / (refresh_referrers.LICENSE_NAME if name == "LICENSE" else name)).read_bytes()


def test_refresh_writes_the_files_and_their_commit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(refresh_referrers, "_get", _fake_get)
    assert refresh_referrers.main(["--dir", str(tmp_path)]) == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes()
    source = json.loads((tmp_path / "SOURCE.json").read_text())
    assert source["commit"] == COMMIT and source["license"] == "CC0-1.0"


def test_refresh_without_network_fails_clearly_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(url: str) -> bytes:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(refresh_referrers, "_get", offline)
    assert refresh_referrers.main(["--dir", str(tmp_path)]) == 1
    assert "needs network access" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_refresh_rejects_files_that_do_not_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(url: str) -> bytes:
        return b"- just: [a list" if url.endswith("Socials.yml") else _fake_get(url)

    monkeypatch.setattr(refresh_referrers, "_get", broken)
    assert refresh_referrers.main(["--dir", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []

"""scripts/segments: validate, apply (twice = no change), preview, list and publish, on fakes."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.segments import Context, main
from tests.builders import SEGMENTS_NOW as NOW
from tests.builders import planted_warehouse
from tests.fakes import FakeDocumentStore

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted((ROOT / "examples" / "segments").glob("*.yaml"))


class Cli:
    def __init__(self, cwd: Path):
        self.documents = FakeDocumentStore(docs={"segments": {}, "segmentlets": {}, "templates": {}})
        self.warehouse = planted_warehouse()
        self.cwd = cwd

    def __call__(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        ctx = Context(out, lambda: self.documents, lambda: self.warehouse, lambda: NOW, self.cwd)
        return main(list(argv), ctx), out.getvalue()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_the_examples_are_valid(cli: Cli) -> None:
    assert len(EXAMPLES) == 5
    code, out = cli("validate", *map(str, EXAMPLES))
    assert code == 0 and out.count("ok    ") == 5


def test_validate_reports_field_paths_and_fails(cli: Cli) -> None:
    (cli.cwd / "bad.yaml").write_text(
        "name: bad\ntemplate: behaviour\nperiod: {last_days: 0}\n"
        "rules:\n  all:\n    - {segmentlet: age, op: gte, value: abc}\n",
        encoding="utf-8",
    )
    (cli.cwd / "list.yaml").write_text("- 1\n", encoding="utf-8")
    (cli.cwd / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    code, out = cli("validate", "bad.yaml", "list.yaml", "broken.yaml", "missing.yaml")
    assert code == 1
    assert "error bad.yaml (bad):\n  period.last_days: must be between 1 and 3650, got 0\n" in out
    assert '  rules.all[0].value: expected a number for age, got "abc"\n' in out
    assert "list.yaml: expected a segment document (a mapping), got list" in out
    assert "broken.yaml: not valid YAML" in out and "missing.yaml: cannot read" in out


def test_apply_twice_changes_nothing_and_refuses_a_bad_batch(cli: Cli) -> None:
    for example in EXAMPLES:
        shutil.copy(example, cli.cwd / example.name)
    names = [e.name for e in EXAMPLES]
    code, out = cli("apply", *names)
    assert code == 0 and out.count("created   segments/") == 5 and "catalogue: 32 written" in out
    stored = cli.documents.get("segments", "shirt-searchers")
    assert stored is not None and "id" not in stored and stored["template"] == "behaviour"
    snapshot = {k: dict(v) for k, v in cli.documents.docs.items()}
    code, out = cli("apply", *names)
    assert code == 0 and out.count("unchanged segments/") == 5 and "catalogue" not in out
    assert {k: dict(v) for k, v in cli.documents.docs.items()} == snapshot

    (cli.cwd / "dormant-members.yaml").write_text(
        (cli.cwd / "dormant-members.yaml").read_text(encoding="utf-8").replace("value: 60", "value: 90"),
        encoding="utf-8",
    )
    (cli.cwd / "bad.yaml").write_text("name: bad\ntemplate: nope\n", encoding="utf-8")
    code, out = cli("apply", "dormant-members.yaml", "bad.yaml")
    assert code == 1 and "nothing applied" in out
    assert cli.documents.get("segments", "dormant-members") == snapshot["segments"]["dormant-members"]
    code, out = cli("apply", "dormant-members.yaml")
    assert code == 0 and "updated   segments/dormant-members" in out


def test_file_name_is_the_id_when_the_file_has_none(cli: Cli) -> None:
    (cli.cwd / "women.yml").write_text(
        "name: 여성\ntemplate: all_users\nrules: {segmentlet: sex, op: eq, value: F}\n", encoding="utf-8"
    )
    assert cli("apply", "women.yml")[0] == 0
    assert cli.documents.get("segments", "women") is not None


def test_preview_prints_size_and_samples(cli: Cli) -> None:
    shutil.copy(ROOT / "examples" / "segments" / "shirt-searchers.yaml", cli.cwd / "shirt.yaml")
    code, out = cli("preview", "shirt.yaml")  # a file, before it is applied
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "shirt-searchers: 셔츠 검색 고객"
    assert lines[1] == "size: 1 customers (as of 2026-03-10)"
    assert lines[3].split() == ["customer_id", "site_id", "last_seen", "kw_inner", "kw_outer"]
    assert lines[4].startswith("c01 ") and "린넨 셔츠" in lines[4]
    cli("apply", "shirt.yaml")
    code, stored = cli("preview", "shirt-searchers", "--limit", "1")
    assert code == 0 and stored == out
    assert cli("preview", "nope") == (1, "error: no segment 'nope' in Firestore (scripts/segments list shows them)\n")


def test_list_and_publish(cli: Cli) -> None:
    assert cli("list") == (0, "no segments (scripts/segments apply FILE… creates them)\n")
    assert cli("publish") == (0, "segmentlets and templates: 32 written, 0 unchanged, 0 deleted\n")
    assert cli("publish") == (0, "segmentlets and templates: 0 written, 32 unchanged, 0 deleted\n")
    for example in EXAMPLES:
        shutil.copy(example, cli.cwd / example.name)
    cli("apply", *(e.name for e in EXAMPLES))
    cli.documents.set("segments", "vip-lifetime-revenue", {"size": 2, "status": {"state": "ok"}}, merge=True)
    code, out = cli("list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "name", "template", "enabled", "status", "size", "computed_at"]
    assert len(lines) == 6 and lines[-1].startswith("vip-lifetime-revenue") and " ok " in lines[-1]


def test_the_script_runs_the_module(tmp_path: Path) -> None:
    example = ROOT / "examples" / "segments" / "rfm-at-risk.yaml"
    result = subprocess.run(
        [str(ROOT / "scripts" / "segments"), "validate", str(example)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok    {example} (rfm-at-risk)\n"


def test_missing_firestore_credentials_get_a_hint(tmp_path: Path) -> None:
    from google.auth.exceptions import DefaultCredentialsError

    def no_firestore() -> FakeDocumentStore:
        raise DefaultCredentialsError("no credentials")

    out = io.StringIO()
    ctx = Context(out, no_firestore, planted_warehouse, lambda: NOW, tmp_path)
    assert main(["list"], ctx) == 1
    assert out.getvalue().startswith("error: no Firestore to talk to: set FIRESTORE_EMULATOR_HOST")

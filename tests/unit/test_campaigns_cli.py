"""scripts/campaigns: validate and apply the example files, list, and preview a campaign run on the
messaging test world (DuckDB): the rendered messages carry the person's values and the advertising
mark, every decision is printed, clear errors, and nothing is written or sent."""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cli.campaigns import Context, main
from shared.schema import table_specs
from tests.builders import SALT
from tests.messaging_world import CAMPAIGN, NOON, World

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "campaigns"


class Cli:
    def __init__(self, world: World, available: frozenset[str] = frozenset({"email", "sms"})):
        self.world = world
        self.available = available

    def __call__(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        w = self.world
        ctx = Context(
            out, lambda: w.documents, lambda: w.warehouse, lambda: NOON, w.tmp, SALT, w.links(), self.available
        )
        return main(list(argv), ctx), out.getvalue()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def cli(world: World) -> Cli:
    return Cli(world)


def everything(world: World) -> dict[str, Any]:
    tables = {name: world.rows(name) for name in table_specs()}
    return {"tables": tables, "documents": copy.deepcopy(world.documents.docs), "bus": list(world.bus.published)}


def test_the_examples_validate_and_apply_once(cli: Cli, world: World) -> None:
    shutil.copytree(EXAMPLES, world.tmp / "campaigns")
    code, out = cli("validate", "campaigns")
    assert code == 0 and out.count("ok    ") == 5
    assert "ok    campaigns/templates/winback-benefits.yaml (message_templates/winback-benefits)\n" in out

    code, out = cli("apply", "campaigns")  # the segments are not in Firestore yet
    assert code == 1 and out.endswith("nothing applied: fix the errors above first\n")
    assert 'segment_id: no segment "dormant-members": segments/dormant-members does not exist' in out
    assert world.documents.get("campaigns", "vip-grade-notice") is None

    for segment in ("dormant-members", "vip-lifetime-revenue"):
        world.documents.set("segments", segment, {"name": segment})
    code, out = cli("apply", "campaigns")
    assert code == 0 and out.count("created   ") == 4
    assert out.startswith("ok    ") and "updated   messaging/policy (policy.yaml)\n" in out  # the world had one
    assert "created   campaigns/dormant-winback-sms (dormant-winback-sms.yaml)\n" in out
    stored = world.documents.get("campaigns", "dormant-winback-sms")
    assert stored is not None and "id" not in stored and stored["channels"] == ["sms", "email"]
    policy = world.documents.get("messaging", "policy")
    assert policy is not None and policy["opt_out"]["number"] == "080-123-4567"

    world.documents.set("campaigns", "vip-grade-notice", {"status": {"state": "ok"}}, merge=True)
    code, out = cli("apply", "campaigns")
    assert code == 0 and out.count("unchanged ") == 5
    kept = world.documents.get("campaigns", "vip-grade-notice")
    assert kept is not None and kept["status"] == {"state": "ok"}

    code, out = cli("list")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "kind", "segment", "channels", "enabled", "status", "last_run"]
    assert any(line.startswith("vip-grade-notice ") and " ok " in line for line in lines)


def test_validate_reports_field_paths(cli: Cli, world: World) -> None:
    folder = world.tmp / "bad"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "t.yaml").write_text("sms: {text: '{{ first_name }}님 안녕하세요'}\n", encoding="utf-8")
    (folder / "c.yaml").write_text("segment_id: s\nkind: promo\nchannels: [sms]\ntemplate_id: t\n", encoding="utf-8")
    (folder / "policy.yaml").write_text("opt_out: {number: '010-1234-5678'}\n", encoding="utf-8")
    code, out = cli("validate", "bad")
    assert code == 1
    assert "error bad/policy.yaml (messaging/policy):\n  opt_out.number: expected a free 080 number" in out
    assert "error bad/templates/t.yaml (message_templates/t):\n  sms.text: unknown variable 'first_name'" in out
    assert "error bad/c.yaml (campaigns/c):\n  policy: messaging/policy is invalid" in out

    (folder / "policy.yaml").unlink()
    code, out = cli("validate", "bad/c.yaml")
    assert code == 1 and '  kind: unknown value "promo"; one of informational, advertising\n' in out


def test_preview_prints_messages_decisions_and_the_funnel_and_writes_nothing(cli: Cli, world: World) -> None:
    world.person("ann", given="안나")
    world.person("bob", phone=None, given="보배")
    world.person("dan", marketing=False)
    world.commit()
    before = everything(world)

    code, out = cli("preview", CAMPAIGN, "--n", "5")

    assert code == 0, out
    assert everything(world) == before and not (world.tmp / "outbox").exists()
    lines = out.splitlines()
    assert lines[:3] == [
        "winback-sms: Win-back",
        "  advertising to segment winback by sms then email, template winback",
        "  a run at 2026-06-03 12:00 KST, previewed: nothing written or sent",
    ]
    assert "  audience                                          3" in lines
    assert "  message now                                       2" in lines
    assert "    no_marketing_consent    no marketing consent recorded                     1" in lines
    assert "    email*    send  eligible                          1" in lines
    assert "  values: given_name=안나" in lines
    ann = lines.index("  values: given_name=안나")
    assert lines[ann + 1] == f"  sms -> {world.people['ann'].phone}: send eligible"
    assert lines[ann + 2].startswith("    consent       pass     gate eligible; address +8210")
    assert lines[ann + 5].startswith("    frequency_cap pass     0 of at most 2 advertising messages in 7 Seoul days")
    assert lines[ann + 7] == "    throttle      pass     twilio paced at 10000 messages a second"
    assert lines[ann + 9] == "      | (광고) 홍길동상회 02-1234-5678"
    assert lines[ann + 10].startswith("      | 안나님, 60일 만이에요!")
    assert "  email -> bob@example.com (fallback): send eligible" in lines
    assert "    subject: (광고) 보배님, 새 혜택이 도착했어요" in lines
    dan = lines.index("  values: given_name=-") + 1
    assert lines[dan + 1].startswith("    consent       decides  gate no_consent")
    assert lines[dan + 2] == "    legal         -"

    code, text = cli("preview", CAMPAIGN, "--json", "--customer", "c_bob", "--at", "2026-06-03T22:00:00+09:00")
    body = json.loads(text)
    assert code == 0 and body["written"] == 0 and body["at"] == "2026-06-03T13:00:00+00:00"
    [bob] = body["recipients"]
    assert [c["reason"] for c in bob["channels"]] == ["no_address", "night_not_allowed"]
    assert bob["channels"][1]["message"]["subject"] == "(광고) 보배님, 새 혜택이 도착했어요"
    assert everything(world) == before


def test_preview_of_a_file_reads_the_policy_and_templates_beside_it(cli: Cli, world: World) -> None:
    shutil.copytree(EXAMPLES, world.tmp / "campaigns")
    world.edit("campaigns", CAMPAIGN, segment_id="winback")
    doc = (world.tmp / "campaigns" / "dormant-winback-sms.yaml").read_text(encoding="utf-8")
    (world.tmp / "campaigns" / "dormant-winback-sms.yaml").write_text(
        doc.replace("segment_id: dormant-members", "segment_id: winback"), encoding="utf-8"
    )
    world.person("ann", given="안나")
    world.commit()

    code, out = cli("preview", "campaigns/dormant-winback-sms.yaml")

    assert code == 0, out
    assert "      | (광고) 데모상점 02-1234-5678" in out and "      | 안나님, 오랜만이에요!" in out.replace(" \n", "\n")
    assert "      | 무료수신거부 080-123-4567" in out
    assert "확인하기 https://demo-shop.example/benefits?utm_source=sms&utm_medium=sms" in out  # no click redirect
    assert "    send_time     pass     sendable at 2026-06-03 12:00 KST (quiet hours 21:00-09:00 Asia/Seoul" in out


def test_preview_errors_are_clear(cli: Cli, world: World) -> None:
    world.person("ann")
    world.commit()
    assert cli("preview", "nope") == (1, "error: no campaign 'nope' in Firestore (scripts/campaigns list shows them)\n")

    world.edit("campaigns", CAMPAIGN, channels=["alimtalk"])
    code, out = cli("preview", CAMPAIGN)
    assert code == 1 and out.startswith(f"error: campaign {CAMPAIGN} is invalid (its status.error says the same):\n")
    assert "  channels[0]: alimtalk cannot carry advertising messages" in out
    world.edit("campaigns", CAMPAIGN, channels=["sms"], template_id="gone", segment_id="nope")
    code, out = cli("preview", CAMPAIGN)
    assert code == 1 and '  segment_id: no segment "nope": segments/nope does not exist\n' in out
    assert '  template_id: no template "gone": message_templates/gone does not exist' in out

    world.edit("campaigns", CAMPAIGN, template_id="winback", segment_id="fresh")
    world.documents.set("segments", "fresh", {"name": "never built"})
    code, out = cli("preview", CAMPAIGN)
    assert code == 1 and out.startswith("error: segment fresh has never been built in this warehouse")

    world.documents.set("segments", "fresh", {"name": "built, empty", "computed_at": NOON})
    code, out = cli("preview", CAMPAIGN)
    assert code == 0 and "  audience                                          0" in out

    world.edit("campaigns", CAMPAIGN, segment_id="winback")
    assert cli("preview", CAMPAIGN, "--customer", "c_nobody") == (
        1,
        "error: --customer: not in the campaign's audience: c_nobody\n",
    )
    assert cli("preview", CAMPAIGN, "--at", "tomorrow")[1].startswith("error: --at: expected a time with its offset")
    assert world.rows("audiences.deliveries") == []


def test_preview_notes_a_channel_without_a_sender(world: World) -> None:
    world.person("ann")
    world.commit()
    code, out = Cli(world, frozenset({"email"}))("preview", CAMPAIGN)
    assert code == 0 and "  note: no sender for sms on this deployment" in out.splitlines()


def test_the_script_runs_the_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "campaigns"), "validate", str(EXAMPLES)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok    ") == 5 and f"ok    {EXAMPLES}/policy.yaml (messaging/policy)\n" in result.stdout

"""The campaign-sending benchmark: a small run of each case through its entry point ends with its
issue's last line (17's for the campaign, 18's for AlimTalk and web push) and leaves no file behind;
its fake provider counts a message accepted twice as a duplicate."""

from __future__ import annotations

import math
import os
import re

import pytest

from benchmarks import send
from shared.ports.channels import Message


def test_the_send_bench_runs_and_ends_with_its_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 recipients (two batches), 5 messages per channel through the real adapters, the storm."""
    assert send.main(["--recipients", "1000", "--network", "5"]) == 0
    out = capsys.readouterr().out
    last = out.splitlines()[-1]
    found = re.fullmatch(r"send render ratio: (\d+\.\d\d), 1k planned\+sent in \d+ s, duplicates: (\d+)", last)
    assert found, last
    assert float(found[1]) > 0 and int(found[2]) == 0
    assert re.search(r"storm: a second run, 2 batches each delivered 3 times", out), out
    assert re.search(r"sms +5 in .* \(TwilioSms\)", out) and re.search(r"email +5 in .* \(SmtpEmail\)", out), out
    assert not list(send.WORK_DIR.glob(f"*{os.getpid()}*")), "the generated warehouse or maildir was left behind"


def test_the_alimtalk_and_push_cases_end_with_issue_18s_line(capsys: pytest.CaptureFixture[str]) -> None:
    """2,500 recipients: two full requests and one of 500, none sent again by the storm; 100
    notifications a round, two rounds a side."""
    argv = ["--cases", "alimtalk,push", "--recipients", "2500", "--push", "100", "--rounds", "2"]
    assert send.main(argv) == 0
    out = capsys.readouterr().out
    last = out.splitlines()[-1]
    pattern = r"alimtalk: 2\.5k recipients in (\d+) requests, duplicates: (\d+); push encrypt ratio: (\d+\.\d\d)"
    found = re.fullmatch(pattern, last)
    assert found, last
    assert int(found[1]) == math.ceil(2500 / 1000) and int(found[2]) == 0 and float(found[3]) > 0
    assert "2,500 sent in 3 requests" in out, out
    settled = r"storm: 3 done markers dropped, .*; ([\d,]+) deliveries found settled by their claims, 0 sent"
    storm = re.search(settled, out)
    assert storm and int(storm[1].replace(",", "")) >= 2500, out  # each batch read by one copy at least
    assert "send render ratio" not in out  # the campaign case runs only when asked (or by default)
    assert not list(send.WORK_DIR.glob(f"*{os.getpid()}*")), "the generated warehouse was left behind"


def test_an_unknown_case_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        send.main(["--cases", "alimtalk,sms"])
    assert stopped.value.code == 2
    assert "unknown cases sms: choose from campaign, alimtalk, push" in capsys.readouterr().err


def test_the_fake_provider_counts_a_message_accepted_again_as_a_duplicate() -> None:
    provider = send.Provider("sms")
    first = Message("d" * 32, "sms", "+821020000001", "a", metadata={"run_id": "run-1"})
    other_run = Message("e" * 32, "sms", "+821020000001", "a", metadata={"run_id": "run-2"})
    provider.send(first)
    provider.send(other_run)
    assert provider.duplicates() == 0 and provider.accepted == 2
    found = provider.lookup(first)
    assert found is not None and found.state == "sent"
    provider.send(first)  # the same delivery again: a duplicate by its id and by its address in run-1
    assert provider.duplicates() == 2
    again = Message("f" * 32, "sms", "+821020000001", "b", metadata={"run_id": "run-2"})
    provider.send(again)  # another delivery id to an address run-2 already reached
    assert provider.duplicates() == 3


@pytest.mark.parametrize(
    ("count", "label"),
    [(100_000, "100k"), (10_000, "10k"), (1_000, "1k"), (2_500, "2.5k"), (1_000_000, "1M"), (12_345, "12,345")],
)
def test_the_last_line_names_the_recipients_as_the_other_benches_do(count: int, label: str) -> None:
    assert send.size_label(count) == label

"""The report benchmark: a small run through its entry point ends with its last line, measures the
child's own memory, and leaves nothing behind."""

from __future__ import annotations

import re

import pytest

from benchmarks import report


def test_the_report_bench_runs_and_ends_with_its_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    sizes = ["--sessions", "3000", "--visitors", "2000", "--customers", "1500", "--days", "10", "--deliveries", "500"]
    assert report.main(sizes) == 0
    out = capsys.readouterr().out
    found = re.search(
        r"warehouse: ([\d,]+) raw events, ([\d,]+) profiles, ([\d,]+) segment members, 500 deliveries", out
    )
    assert found and all(int(n.replace(",", "")) > 0 for n in found.groups()), out
    assert re.search(r"page: \d+ KB \(--keep keeps it\)", out), out
    last = out.splitlines()[-1]
    built = re.fullmatch(r"report: built in (\d+\.\d) s, peak ([\d,]+) MB", last)
    assert built, last
    # The child's own peak: far below what the parent used to generate and refine the history.
    assert float(built[1]) > 0 and 50 < int(built[2].replace(",", "")) < 1024
    assert not list(report.WORK_DIR.glob("report-*")) and not list(report.WORK_DIR.glob("page-*"))


def test_peak_memory_is_read_for_this_process() -> None:
    assert 10 < report.peak_mb() < 4096

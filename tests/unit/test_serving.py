"""collect settles the heap once, before its first request: run in a child process, because freezing
the heap and raising the collector's thresholds would change the test runner's own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared import serving

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json
from functions.collect import main
from shared import bootstrap
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
calls = []
real = main.serving.settle_heap
main.serving.settle_heap = lambda: (calls.append(1), real())
bootstrap.bus = lambda: None  # no Pub/Sub client needed to settle the heap
main._ready()
main._ready()
print(json.dumps({"before": before, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "calls": len(calls)}))
"""


def test_collect_settles_the_heap_once_before_serving() -> None:
    env = os.environ | {
        "CDP_SITES": json.dumps({"demo-shop": {"origins": ["https://demo-shop.example"]}}),
        "CDP_IP_SALT": "salt",
        "CDP_BEACON_TOPIC": "beacons",
        "CDP_WAREHOUSE": "duckdb",
        "CDP_PROJECT": "cdp-local",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["before"]["threshold"] == [700, 10, 10] and found["before"]["frozen"] == 0
    assert found["threshold"] == [serving.YOUNG_THRESHOLD, serving.OLDER_THRESHOLD, serving.OLDER_THRESHOLD]
    assert found["frozen"] > 10_000  # the imported libraries, out of the collector's sight
    assert found["calls"] == 1

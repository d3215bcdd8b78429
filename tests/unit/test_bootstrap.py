"""The composition root builds each adapter once per process, however many requests arrive at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from shared.bootstrap import once


def test_concurrent_first_calls_build_once() -> None:
    built: list[int] = []
    start = threading.Barrier(8)

    @once
    def adapter() -> object:
        built.append(1)
        time.sleep(0.05)  # a slow build, like opening a DuckDB file: the others arrive meanwhile
        return object()

    def first_call(_: int) -> object:
        start.wait()
        return adapter()

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(first_call, range(8)))
    assert len(built) == 1 and all(v is values[0] for v in values)
    adapter.cache_clear()
    assert adapter() is not values[0] and len(built) == 2

"""Process settings for a long-running HTTP function that allocates many short-lived objects."""

from __future__ import annotations

import gc

# Container objects allocated between two collections of the youngest generation (Python: 700).
YOUNG_THRESHOLD = 20_000
# Collections of a generation between two of the next (Python: 10 and 10).
OLDER_THRESHOLD = 50


def settle_heap() -> None:
    """Freeze what startup built, and collect young objects less often.

    Python's cyclic collector walks the youngest generation every 700 new container objects and
    the older ones every 10 of those. A beacon request makes a few hundred (event dicts, rows, the
    message), so in collect the collector ran every few requests, and its full collections walked
    the imported libraries, which never become garbage. gc.freeze() moves what exists now out of
    the collector's sight; the higher thresholds make its runs rarer. Reference counting still
    frees at once everything outside a cycle, so memory stays flat. Measured in scripts/bench
    ingest: collect's CPU per request fell from 2.34 to 1.85 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)

"""Referrer classification: medium accuracy of classify_inflow on a public referrer test set.

Usage: `scripts/bench referrers PATH/referer-tests.json [--misses] [--page URL]`.

The test set is Snowplow's `resources/referer-tests.json` (github.com/snowplow-referer-parser/
referer-parser). That repository is GPL-3.0, so neither its referrer database nor its test set is
copied into this one: this script reads the file from wherever a developer put it, e.g.

    git clone --depth 1 https://github.com/snowplow-referer-parser/referer-parser /tmp/referer-parser
    scripts/bench referrers /tmp/referer-parser/resources/referer-tests.json

Each case is a referrer URL and the medium Snowplow expects. `classify_inflow(page, referrer)` runs
with a landing page on another site (`--page`, no campaign parameters), so only the referrer
decides. Snowplow's medium names are mapped to ours (`SNOWPLOW_MEDIUMS`): "email" is our "email"
(webmail), "chatbot" our "ai_assistant", "unknown" (a referrer in no table) our "referral", and
"internal" (the test set's own site) our "internal", which needs `--page` on that site.
It prints cases and correct answers per medium, and the total.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from shared.enrich.inflow import classify_inflow

SNOWPLOW_MEDIUMS = {
    "search": "search",
    "social": "social",
    "email": "email",
    "paid": "paid",
    "chatbot": "ai_assistant",
    "unknown": "referral",
    "internal": "internal",
}


def evaluate(cases: Sequence[dict[str, object]], page: str) -> tuple[Counter[str], Counter[str], list[str]]:
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses: list[str] = []
    for case in cases:
        theirs = str(case.get("medium"))
        expected = SNOWPLOW_MEDIUMS.get(theirs, theirs)
        got = classify_inflow(page, str(case.get("uri") or "")).medium
        total[theirs] += 1
        if got == expected:
            right[theirs] += 1
        else:
            misses.append(f"  {theirs:>8} -> {got:<12} {case.get('source')}: {str(case.get('uri'))[:100]}")
    return total, right, misses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench referrers", description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="path to Snowplow's resources/referer-tests.json")
    parser.add_argument("--page", default="https://shop.example/", help="the landing page (default: %(default)s)")
    parser.add_argument("--misses", action="store_true", help="list the cases classified differently")
    args = parser.parse_args(argv)
    try:
        cases = json.loads(args.tests.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"bench referrers: cannot read {args.tests}: {error}", file=sys.stderr)
        return 1
    total, right, misses = evaluate(cases, args.page)
    print(f"{'medium (theirs)':<16} {'ours':<13} {'right':>5} / {'cases':<5}  accuracy")
    for medium in sorted(total, key=lambda m: -total[m]):
        ours = SNOWPLOW_MEDIUMS.get(medium, medium)
        print(f"{medium:<16} {ours:<13} {right[medium]:>5} / {total[medium]:<5}  {right[medium] / total[medium]:6.1%}")
    all_right, all_cases = sum(right.values()), sum(total.values())
    print(f"{'all':<30} {all_right:>5} / {all_cases:<5}  {all_right / max(all_cases, 1):6.1%}")
    if args.misses:
        print("misses:")
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Publishing: customer-file hashing of 1M generated profiles against a bare hashlib loop.

Cases (one function each; `--cases` picks them, all by default):
- hash: `shared.activation.customer_file.hash_rows` over N generated profiles (default 1,000,000;
  EMAIL, PHONE, FN, LN as refined.profiles and raw.user hold them: lower-case e-mails, E.164
  Korean mobiles, Hangul names with Korea's surname skew and a few Latin ones), in batches of
  10,000 as an upload streams them, against `hashlib.sha256(s.encode()).hexdigest()` over the
  same strings already normalised. Both run on each batch in turn (alternating which goes first),
  so they share whatever load the machine has; only those calls are timed, and every batch's
  digests must be equal. The ratio is bare seconds / our seconds (our rate against the bare
  rate; the target is at least 0.5).
The last line gathers each case's figure, e.g. `publish hash ratio: X.XX`. Usage:
`scripts/bench publish [--quick] [--profiles N] [--batch N] [--seed S] [--cases hash]`.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable, Sequence
from hashlib import sha256
from typing import TypeVar

from shared.activation.customer_file import PROFILE_COLUMNS, hash_rows

FULL_PROFILES = 1_000_000
QUICK_PROFILES = 100_000
BATCH = 10_000  # rows per request Meta accepts, and so per batch an upload hashes
HASH_KEYS = ("EMAIL", "PHONE", "FN", "LN")
TARGET_RATIO = 0.5

# Korean surnames with roughly their shares in the 2015 census (%); the rest share what is left.
SURNAMES = {
    "김": 21.5, "이": 14.7, "박": 8.4, "최": 4.7, "정": 4.3, "강": 2.4, "조": 2.1, "윤": 2.0, "장": 2.0,
    "임": 1.6, "한": 1.5, "오": 1.5, "서": 1.5, "신": 1.4, "권": 1.4, "황": 1.4, "안": 1.3, "송": 1.3,
}  # fmt: skip
RARE_SURNAMES = [
    *"전홍유고문양손배백허남심노하곽성차주우구민류나진지엄채원천방공현함변염여추도소석선설마길연위표명기반왕금옥육인맹",
    *["남궁", "제갈", "선우", "황보", "독고"],
]
SYLLABLES = "민서지현수준하은도윤우예주연진영재아원태성호동혜유채소희승건시나정경상"
LATIN_NAMES = ["Minji", "Seojun", "Jiwoo", "Hyun-woo", "Anna", "José", "Kim", "Lee", "Park", "O'Brien"]
DOMAINS = ["naver.com", "gmail.com", "daum.net", "kakao.com", "hanmail.net", "nate.com", "example.co.kr"]

Profile = dict[str, object]
T = TypeVar("T")


def generated_batch(first: int, count: int, seed: int) -> tuple[list[Profile], list[str]]:
    """`count` profiles numbered from `first`, and their key strings already normalised, key by key.

    The normalised strings are written from what the generator knows (a lower-case address, the
    E.164 digits, the name as given or lower-cased), not by the code under measurement.
    """
    rng = random.Random(seed * 1_000_003 + first)
    surnames = list(SURNAMES) + ["rare"]
    weights = list(SURNAMES.values()) + [100 - sum(SURNAMES.values())]
    email_col, phone_col, fn_col, ln_col = (PROFILE_COLUMNS[key] for key in HASH_KEYS)
    profiles: list[Profile] = []
    normalised: list[str] = []
    for n in range(first, first + count):
        subscriber = rng.randrange(20_000_000, 100_000_000)
        if 59_700_000 <= subscriber < 60_000_000:  # 010-597x to 010-599x are not assigned
            subscriber -= 1_000_000
        phone = f"8210{subscriber}"
        email = f"user{n}.{rng.randrange(1000)}@{rng.choice(DOMAINS)}"
        if rng.random() < 0.05:
            given, family = rng.choice(LATIN_NAMES), rng.choice(LATIN_NAMES)
            given_key = given.lower().replace("-", "").replace("'", "")
            family_key = family.lower().replace("-", "").replace("'", "")
        else:
            family = rng.choices(surnames, weights)[0]
            family = rng.choice(RARE_SURNAMES) if family == "rare" else family
            given = rng.choice(SYLLABLES) + rng.choice(SYLLABLES)
            given_key, family_key = given, family
        profiles.append({email_col: email, phone_col: "+" + phone, fn_col: given, ln_col: family})
        normalised += (email, phone, given_key, family_key)
    return profiles, normalised


def bare_hashes(strings: Sequence[str]) -> list[str]:
    """The floor: SHA-256 hex of strings that need no normalising, in one comprehension."""
    return [sha256(s.encode()).hexdigest() for s in strings]


def timed(run: Callable[..., T], *args: object) -> tuple[T, float, float]:
    """The result, and the wall and CPU seconds of this process the call took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def case_hash(args: argparse.Namespace) -> str:
    """Normalise and hash `args.profiles` profiles, timed against the bare loop batch by batch."""
    ours, bare = [0.0, 0.0], [0.0, 0.0]  # wall and CPU seconds
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for number, first in enumerate(range(0, args.profiles, args.batch)):
        profiles, strings = generated_batch(first, min(args.batch, args.profiles - first), args.seed)
        if number % 2 == 0:
            rows, *ours_s = timed(hash_rows, profiles, HASH_KEYS)
            digests, *bare_s = timed(bare_hashes, strings)
        else:
            digests, *bare_s = timed(bare_hashes, strings)
            rows, *ours_s = timed(hash_rows, profiles, HASH_KEYS)
        ours = [total + part for total, part in zip(ours, ours_s, strict=True)]
        bare = [total + part for total, part in zip(bare, bare_s, strict=True)]
        flat = [digest for row in rows for digest in row]
        if flat != digests:
            wrong = next(i for i, (a, b) in enumerate(zip(flat, digests, strict=True)) if a != b)
            raise SystemExit(f"publish hash: digests differ for {strings[wrong]!r}: the case measured nothing")
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    n = args.profiles
    print(f"hash: {n:,} profiles in batches of {args.batch:,}, keys {', '.join(HASH_KEYS)}")
    print(f"  {'':6} {'wall s':>7} {'CPU s':>7} {'profiles per CPU s':>19}")
    for name, (w, c), what in [("ours", ours, "hash_rows: normalise + SHA-256"),
                               ("bare", bare, f"{len(HASH_KEYS)} x sha256(s.encode()).hexdigest()")]:  # fmt: skip
        print(f"  {name:6} {w:7.2f} {c:7.2f} {n / c:19,.0f}  {what}")
    print(f"  this process had {100 * cpu / wall:.0f} % of a core over the case ({wall:.1f} s, generation included)")
    ratio, wall_ratio = bare[1] / ours[1], bare[0] / ours[0]
    met = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"  ratio {ratio:.2f} in CPU seconds ({wall_ratio:.2f} in wall seconds): target >= {TARGET_RATIO} {met}")
    return f"publish hash ratio: {ratio:.2f}"


CASES: dict[str, Callable[[argparse.Namespace], str]] = {"hash": case_hash}
"""Each case prints its figures and returns its part of the last line, in this order."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench publish", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--profiles", type=int, help=f"generated profiles (default {FULL_PROFILES:,})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_PROFILES:,} profiles")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"profiles per batch (default {BATCH:,})")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run (all)")
    args = parser.parse_args(argv)
    args.profiles = args.profiles or (QUICK_PROFILES if args.quick else FULL_PROFILES)
    if args.profiles <= 0 or args.batch <= 0:
        parser.error("--profiles and --batch must be positive")
    print(f"machine: {os.cpu_count()} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    parts = [CASES[name](args) for name in CASES if name in args.cases]
    print(", ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

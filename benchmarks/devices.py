"""Device classes: accuracy of parse_user_agent's device_type on Matomo device-detector's fixtures.

Usage: `scripts/bench devices PATH/Tests/fixtures [--misses] [--per-class N] [--seed S] [--repo DIR]`.

The corpus is the test fixtures of Matomo's device detector (github.com/matomo-org/device-detector,
`Tests/fixtures/*.yml`): about 38,000 user agents, each with the device type Matomo's model database
gives it. That repository is LGPL-3.0, so nothing of it is copied into this one: this script reads
the folder from wherever a developer put it, e.g.

    git clone --depth 1 https://github.com/matomo-org/device-detector /tmp/device-detector
    scripts/bench devices /tmp/device-detector/Tests/fixtures

Matomo's types are mapped to ours (`MATOMO_CLASSES`): smartphones, phablets and feature phones are
"mobile"; tablets "tablet"; desktops "desktop"; the bots fixture's cases "bot"; every other type
(TVs, consoles, car browsers, wearables, smart speakers and displays, cameras, media players,
peripherals) is "other", the class our schema keeps for screens that are none of the four a
marketer segments on. Cases are left out when our collector could not see what decided Matomo's
answer (`headers`: Client Hints, which collect does not read) or when Matomo has no type either.

`--browsers` keeps only user agents that start as browsers' do ("Mozilla/", "Opera/"): what a
page's tracker sends, without the apps' own HTTP clients (Dalvik, podcast and media players).

The corpus has one case per device model, not per visitor, so its shares are not traffic: read
the per-class lines, not the total, for what a shop would see. By default each class is sampled
(`--per-class`, seeded) so that a run stays under a minute; `--per-class 0` takes every case.
`--repo` measures the parser of another checkout (e.g. a `git worktree` of an older commit).
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

MOBILE, TABLET, DESKTOP, BOT, OTHER = "mobile", "tablet", "desktop", "bot", "other"

MATOMO_CLASSES: dict[str, str] = {
    "smartphone": MOBILE,
    "phablet": MOBILE,
    "feature phone": MOBILE,
    "tablet": TABLET,
    "desktop": DESKTOP,
    "bot": BOT,
    "tv": OTHER,
    "console": OTHER,
    "car browser": OTHER,
    "smart display": OTHER,
    "smart speaker": OTHER,
    "camera": OTHER,
    "portable media player": OTHER,
    "wearable": OTHER,
    "peripheral": OTHER,
}
SHOP_CLASSES = frozenset({MOBILE, TABLET, DESKTOP, BOT})  # what segments and reports split on
BROWSER_PREFIXES = ("Mozilla/", "Opera/")

# The C loader when PyYAML was built with libyaml (about 3x faster on 17 MB); BaseLoader semantics
# either way: every scalar a string, so a user agent such as "1.0" is not read as a number.
_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


@dataclass(frozen=True, slots=True)
class Case:
    theirs: str  # Matomo's device type, or "bot"
    user_agent: str


def matomo_class(case: object) -> str:
    """Matomo's class of one fixture case (a key of MATOMO_CLASSES), or why it is left out."""
    if not isinstance(case, dict) or not isinstance(case.get("user_agent"), str):
        return "malformed"
    if "bot" in case:
        return "bot"
    if case.get("headers"):
        return "client hints"
    device = case.get("device")
    theirs = device.get("type") if isinstance(device, dict) else None
    if not theirs:
        return "no type"
    return str(theirs) if theirs in MATOMO_CLASSES else f"unmapped type {theirs!r}"


def read_cases(cases: Iterable[object]) -> tuple[list[Case], Counter[str]]:
    """The mapped cases of one fixture file, and how many were left out for which reason."""
    kept: list[Case] = []
    excluded: Counter[str] = Counter()
    for case in cases:
        theirs = matomo_class(case)
        if theirs in MATOMO_CLASSES and isinstance(case, dict):
            kept.append(Case(theirs, case["user_agent"]))
        else:
            excluded[theirs] += 1
    return kept, excluded


def load_fixtures(folder: Path) -> tuple[list[Case], Counter[str]]:
    cases: list[Case] = []
    excluded: Counter[str] = Counter()
    files = sorted(folder.glob("*.yml"))
    if not files:
        raise OSError(f"no *.yml files in {folder}")
    for path in files:
        with path.open(encoding="utf-8") as stream:
            kept, left_out = read_cases(yaml.load(stream, Loader=_LOADER) or [])
        cases.extend(kept)
        excluded.update(left_out)
    return cases, excluded


def browsers_only(cases: Iterable[Case]) -> list[Case]:
    return [case for case in cases if case.user_agent.startswith(BROWSER_PREFIXES)]


def sample(cases: Sequence[Case], per_class: int, seed: int) -> list[Case]:
    """At most `per_class` cases of each Matomo class (all when 0), drawn the same way for any parser."""
    if per_class <= 0:
        return list(cases)
    by_class: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_class[case.theirs].append(case)
    rng = random.Random(seed)
    chosen: list[Case] = []
    for theirs in sorted(by_class):
        group = by_class[theirs]
        chosen.extend(group if len(group) <= per_class else rng.sample(group, per_class))
    return chosen


@dataclass
class Result:
    total: Counter[str]
    right: Counter[str]
    wrong_as: dict[str, Counter[str]]  # Matomo's class -> our answer -> cases, for the misses
    misses: list[str]


def evaluate(cases: Iterable[Case], classify: Callable[[str], str]) -> Result:
    result = Result(Counter(), Counter(), defaultdict(Counter), [])
    for case in cases:
        expected = MATOMO_CLASSES[case.theirs]
        got = classify(case.user_agent)
        result.total[case.theirs] += 1
        if got == expected:
            result.right[case.theirs] += 1
        else:
            result.wrong_as[case.theirs][got] += 1
            result.misses.append(f"  {case.theirs:>13} -> {got:<8} {case.user_agent[:140]}")
    return result


def report(result: Result) -> list[str]:
    lines = [f"{'class (theirs)':<22} {'ours':<8} {'right':>5} / {'cases':<5}  accuracy  wrong as"]
    for theirs in sorted(result.total, key=lambda t: (MATOMO_CLASSES[t], -result.total[t])):
        right, total = result.right[theirs], result.total[theirs]
        wrong = ", ".join(f"{got} {n}" for got, n in result.wrong_as[theirs].most_common())
        ours = MATOMO_CLASSES[theirs]
        lines.append(f"{theirs:<22} {ours:<8} {right:>5} / {total:<5}  {right / total:7.1%}  {wrong}")
    for label, keep in (("mobile+tablet+desktop+bot", SHOP_CLASSES), ("all", frozenset(MATOMO_CLASSES.values()))):
        names = [t for t in result.total if MATOMO_CLASSES[t] in keep]
        right, total = sum(result.right[t] for t in names), sum(result.total[t] for t in names)
        lines.append(f"{label:<31} {right:>5} / {total:<5}  {right / max(total, 1):7.1%}")
    return lines


def device_classifier(repo: Path | None) -> tuple[Callable[[str], str], str]:
    """parse_user_agent's device_type, from this checkout or from `repo`, and the file it came from."""
    if repo is not None:
        if "shared" in sys.modules:
            raise RuntimeError("shared is already imported; --repo must come before any import of it")
        sys.path.insert(0, str(repo.resolve()))
    module = importlib.import_module("shared.enrich.user_agent")
    parse = module.parse_user_agent

    def classify(user_agent: str) -> str:
        return str(parse(user_agent).device_type)

    return classify, str(module.__file__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench devices", description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", type=Path, help="path to device-detector's Tests/fixtures folder")
    parser.add_argument("--per-class", type=int, default=600, help="cases per class, 0 for all (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=14, help="seed of the sample (default: %(default)s)")
    parser.add_argument("--repo", type=Path, help="measure the parser of this checkout instead of this one")
    parser.add_argument("--browsers", action="store_true", help="only user agents that start as a browser's")
    parser.add_argument("--misses", action="store_true", help="list the cases classified differently")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        cases, excluded = load_fixtures(args.fixtures)
    except (OSError, yaml.YAMLError) as error:
        print(f"bench devices: cannot read {args.fixtures}: {error}", file=sys.stderr)
        return 1
    classify, source = device_classifier(args.repo)
    if args.browsers:
        cases = browsers_only(cases)
    chosen = sample(cases, args.per_class, args.seed)
    loaded = time.perf_counter()
    result = evaluate(chosen, classify)
    left_out = ", ".join(f"{reason} {n}" for reason, n in excluded.most_common())
    print(f"parser: {source}")
    scope = f"--per-class {args.per_class}{', --browsers' if args.browsers else ''}"
    print(f"cases: {len(cases)} mapped, {len(chosen)} measured ({scope}); left out: {left_out}")
    print("\n".join(report(result)))
    elapsed = time.perf_counter() - started
    print(f"seconds: {elapsed:.1f} ({loaded - started:.1f} reading, {elapsed - (loaded - started):.1f} classifying)")
    if args.misses:
        print("misses:")
        print("\n".join(result.misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Discovery: automatic-k K-Means over 1M generated profiles, end to end, against plain scikit-learn.

N generated profiles with planted clusters (`devstack.synthetic_profiles`, default 1,000,000)
go into `refined.profiles` of a fresh DuckDB file. Then, each in a child process of its own so that
its peak memory is its own:
- discover: `shared.services.discover.discover(engine="sklearn")` with 20 features and k in 2..8,
  end to end: read as Arrow, matrix, choose k, fit, chunked assignment, write `refined.clusters`
  and `refined.profiles.cluster_id`, the documents (in memory here, Firestore in production);
- baseline: the same features read and transformed the same way, then scikit-learn's default
  `KMeans` fitted on all rows for every k the job tried, each scored by the silhouette on the same
  sample rows the job used; the best k's labels are everyone's assignment. It writes nothing.
The last line is `discover seconds: S, peak MB: M, speedup vs baseline: X.XX` (the targets: at most
60 s and 2048 MB for 1M profiles). Usage:
`scripts/bench discover [--quick] [--profiles N] [--skip-baseline] [--rerun] [--keep]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK_DIR = REPO / ".local" / "bench" / "discover"
SEED = 7  # of the generated profiles
AS_OF = date(2026, 11, 1)  # the generated profiles' date
NOW = datetime(2026, 11, 1, 6, tzinfo=UTC)
# 20 of the 23 catalogue features: os and br only restate the device in the generated profiles,
# and avg_rvn_ltv equals avg_rvn there.
FEATURES = (
    "recency_days",
    "odr",
    "rvn",
    "avg_rvn",
    "odr_ltv",
    "rvn_ltv",
    "sessions",
    "page_views",
    "tenure_days",
    "products_viewed",
    "keywords",
    "age",
    "is_member",
    "has_email",
    "has_phone",
    "sex",
    "device",
    "region",
    "ref_media_fst",
    "ref_media_lst",
)
CONFIG = {"features": list(FEATURES), "k_min": 2, "k_max": 8}
TARGET_SECONDS = 60.0
TARGET_MB = 2048
FULL_PROFILES = 1_000_000
QUICK_PROFILES = 100_000


class MemoryDocuments:
    """Firestore as a dict: what the discover job reads and writes, kept in this process."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        found = self.docs.get(collection, {}).get(doc_id)
        return dict(found) if found is not None else None

    def set(self, collection: str, doc_id: str, data: Mapping[str, Any], merge: bool = False) -> None:
        stored = self.docs.setdefault(collection, {})
        stored[doc_id] = {**(stored.get(doc_id, {}) if merge else {}), **data}

    def list(self, collection: str, where: Sequence[tuple[str, str, Any]] = ()) -> list[tuple[str, dict[str, Any]]]:
        if where:
            raise NotImplementedError("the bench's document store does not filter")
        return [(doc_id, dict(doc)) for doc_id, doc in sorted(self.docs.get(collection, {}).items())]

    def delete(self, collection: str, doc_id: str) -> None:
        self.docs.get(collection, {}).pop(doc_id, None)


def silhouette_sample(n: int, config: Any) -> np.ndarray:
    """The rows `shared.discovery.model.fit` scores the silhouette on: the same generator, the same draws.

    fit draws the training sample first (only when n > train_size), then the silhouette sample.
    `check_silhouette_sample` verifies this against fit itself before every run.
    """
    rng = np.random.default_rng(config.seed)
    if n > config.train_size:
        rng.choice(n, config.train_size, replace=False)
    return np.sort(rng.choice(n, min(n, config.sample_size), replace=False))


def check_silhouette_sample() -> None:
    """Fail fast when model.fit no longer draws its silhouette sample the way silhouette_sample does."""
    from shared.discovery import model
    from shared.discovery.features import parse_config

    rng = np.random.default_rng(1)
    points = np.vstack([rng.normal(centre, 0.3, (1000, 3)) for centre in (0.0, 3.0, 6.0)]).astype(np.float32)
    config = parse_config({"train_size": 1000, "sample_size": 500, "k_min": 2, "k_max": 3})
    fitted = model.fit(points, config)
    if not np.array_equal(fitted.sample, silhouette_sample(points.shape[0], config)):
        raise SystemExit("bench discover: the baseline's silhouette sample no longer matches model.fit's draw")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    """This process's peak resident memory (MiB): VmHWM, the high-water mark of its own address space.

    Not getrusage's ru_maxrss: Linux carries the maxrss of the address space a process replaced at
    exec into it, so a child started by a parent that had grown to 1 GB reports at least 1 GB.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: KB on Linux, an upper bound


def child_discover(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The job, as production runs it on DuckDB (shared.bootstrap's warehouse settings)."""
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse
    from shared.schema import table_specs
    from shared.services.discover import discover

    warehouse = DuckDBWarehouse(spec["db"])
    warehouse.ensure_tables(list(table_specs().values()))
    documents = MemoryDocuments()
    cpu, started = _cpu_seconds(), time.perf_counter()
    results = discover(warehouse, documents, NOW, engine="sklearn", config_override=spec["config"])
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    peak = _peak_mb()
    warehouse.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": peak,
        "customers": results["customers"],
        "k": results["k"],
        "silhouette": results["silhouette"],
        "algorithm": results["algorithm"],
        "candidates": results["candidates"],
        "columns": len(results["transform"]["columns"]),
        "features": results["features"],
        "stages": results["seconds"],
        "run_seconds": results["run_seconds"],
        "sizes": sorted((c["size"] for c in results["clusters"]), reverse=True),
    }


def child_baseline(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Plain scikit-learn on the job's matrix: default KMeans on all rows for every k, silhouette-scored."""
    import pyarrow.compute as pc
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    from shared.adapters.duckdb_warehouse import DuckDBWarehouse
    from shared.discovery.features import build_matrix, parse_config
    from shared.discovery.fit import read_features

    config = parse_config(spec["config"])
    warehouse = DuckDBWarehouse(spec["db"])
    cpu, started = _cpu_seconds(), time.perf_counter()
    table = read_features(warehouse, config)
    matrix, _ = build_matrix(table, config)
    sample = silhouette_sample(matrix.shape[0], config)
    candidates = []
    best: tuple[float, int, np.ndarray] | None = None
    for k in spec["ks"]:
        clock = time.perf_counter()
        fitted = KMeans(n_clusters=k, random_state=config.seed).fit(matrix)
        score = float(silhouette_score(matrix[sample], fitted.labels_[sample]))
        candidates.append({"k": k, "silhouette": round(score, 4), "seconds": round(time.perf_counter() - clock, 3)})
        if best is None or score > best[0]:
            best = (score, k, fitted.labels_)
        del fitted
    assert best is not None
    score, k, labels = best
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    peak = _peak_mb()
    customers = pc.utf8_slice_codeunits(table.column("customer_id"), 1).cast("int64").to_numpy()
    np.savez(spec["labels"], customers=customers, labels=labels)
    warehouse.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": peak,
        "customers": int(labels.shape[0]),
        "k": k,
        "silhouette": round(score, 4),
        "candidates": candidates,
        "columns": int(matrix.shape[1]),
    }


CHILDREN = {"discover": child_discover, "baseline": child_baseline}


def child_main() -> None:
    """Entry point of a child process: `python -c ... <role> <spec JSON>`; prints one JSON line."""
    role, spec = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(CHILDREN[role](spec)), flush=True)


def machine_cpu() -> float:
    """CPU seconds all cores spent on anything since boot (user, nice, system, irq, softirq)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def run_child(role: str, spec: Mapping[str, Any], timeout: float | None) -> dict[str, Any] | None:
    """Run one child; its result, with how busy the machine was meanwhile; None when it timed out."""
    command = [sys.executable, "-c", "from benchmarks.discover import child_main; child_main()", role, json.dumps(spec)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, started, own = machine_cpu(), time.monotonic(), children.ru_utime + children.ru_stime
    try:
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    window = time.monotonic() - started
    busy = machine_cpu() - busy
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = children.ru_utime + children.ru_stime - own
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stdout.write(done.stdout)
        raise SystemExit(f"bench discover: the {role} child failed (exit {done.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    result["machine_busy"] = busy / window / (os.cpu_count() or 1)
    result["child_busy"] = own / window / (os.cpu_count() or 1)
    result["process_seconds"] = window
    return result


def generate(path: Path, profiles: int) -> np.ndarray:
    """Write the generated profiles into refined.profiles of a fresh DuckDB file; their planted archetypes."""
    from devstack.synthetic_profiles import synthetic_profiles
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse
    from shared.schema import table_specs

    table, truth = synthetic_profiles(profiles, seed=SEED, as_of=AS_OF)
    warehouse = DuckDBWarehouse(path, idle_release=3600, max_hold=3600)
    warehouse.ensure_tables(list(table_specs().values()))
    warehouse.append_arrow("refined.profiles", table)
    with warehouse.connection() as conn:
        conn.execute("checkpoint")
    warehouse.close()
    return truth


def discover_ari(path: Path, truth: np.ndarray) -> tuple[float, int]:
    """ARI of the job's cluster_id (read back from refined.profiles) against the planted archetypes."""
    import duckdb
    from sklearn.metrics import adjusted_rand_score

    with duckdb.connect(str(path), read_only=True) as conn:
        customers, labels = (
            conn.execute(
                "select cast(substr(customer_id, 2) as bigint), cluster_id from refined.profiles "
                "where cluster_id is not null order by customer_id"
            )
            .fetchnumpy()
            .values()
        )
    return float(adjusted_rand_score(truth[np.asarray(customers)], np.asarray(labels))), len(labels)


def baseline_ari(path: Path, truth: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    with np.load(path) as saved:
        return float(adjusted_rand_score(truth[saved["customers"]], saved["labels"]))


def run_discover(
    spec: Mapping[str, Any], path: Path, truth: np.ndarray, label: str, cores: int | None
) -> dict[str, Any]:
    """One discover child, its ARI read back from the file, and what it says about where the time went."""
    job = run_child("discover", spec, None)
    assert job is not None
    job["ari"], clustered = discover_ari(path, truth)
    if clustered != job["customers"]:
        raise SystemExit(f"bench discover: {clustered:,} profiles got a cluster_id, not {job['customers']:,}")
    print(
        f"{label}: {job['customers']:,} customers in scope (recency < 365 days) x {job['columns']} columns; "
        f"{job['algorithm']}"
    )
    stages = job["stages"]
    other = job["seconds"] - sum(stages.values())
    print(f"{label} stages (s): " + ", ".join(f"{name} {value:.2f}" for name, value in stages.items()) +
          f", other {other:.2f} (ids, explanations, segments, documents)")  # fmt: skip
    print(f"{label} candidates: " + ", ".join(
        f"k={c['k']} {c['silhouette']:.3f} ({c['seconds']:.1f} s)" for c in job["candidates"]))  # fmt: skip
    print(f"{label} cluster sizes: {', '.join(f'{s:,}' for s in job['sizes'])}")
    print(busy_line(job, cores))
    return job


def busy_line(result: Mapping[str, Any], cores: int | None) -> str:
    """How busy the machine was while a child ran, and how much of that was the child (imports and all)."""
    machine, own = result["machine_busy"], result["child_busy"]
    others = max(machine - own, 0.0)
    return (
        f"  machine {100 * machine:.0f} % busy over its {cores} cores while the child ran "
        f"({result['process_seconds']:.1f} s): the child {100 * own:.0f} %, other processes {100 * others:.0f} %"
    )


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench discover", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, help=f"generated profiles (default {FULL_PROFILES:,})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_PROFILES:,} profiles")
    parser.add_argument("--skip-baseline", action="store_true", help="run the discover job only")
    parser.add_argument(
        "--baseline-timeout", type=float, default=1800, help="stop the baseline after this many seconds (1800)"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="also time a second run on the same file, as the next scheduled run finds it",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the DuckDB file (in {WORK_DIR})")
    args = parser.parse_args(argv)
    profiles = args.profiles or (QUICK_PROFILES if args.quick else FULL_PROFILES)

    cores = os.cpu_count()
    print(f"machine: {cores} cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    check_silhouette_sample()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=WORK_DIR))
    try:
        last_line = measure(args, profiles, work, cores)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(last_line)
    return 0


def measure(args: argparse.Namespace, profiles: int, work: Path, cores: int | None) -> str:
    """Generate, run the children, print the figures; the last line, for after the clean-up."""
    path = work / "profiles.duckdb"
    started = time.perf_counter()
    truth = generate(path, profiles)
    print(f"profiles: {profiles:,} generated into {path} in {time.perf_counter() - started:.1f} s")
    print(f"features ({len(FEATURES)}): {', '.join(FEATURES)}; k {CONFIG['k_min']}..{CONFIG['k_max']}")

    spec = {"db": str(path), "config": CONFIG}
    job = run_discover(spec, path, truth, "discover", cores)

    base: dict[str, Any] | None = None
    if not args.skip_baseline:
        base_spec = {**spec, "ks": [c["k"] for c in job["candidates"]], "labels": str(work / "baseline.npz")}
        base = run_child("baseline", base_spec, args.baseline_timeout)
        if base is None:
            print(f"baseline: stopped after {args.baseline_timeout:.0f} s (--baseline-timeout): the speedup is a floor")
        else:
            base["ari"] = baseline_ari(work / "baseline.npz", truth)
            print("baseline candidates: " + ", ".join(
                f"k={c['k']} {c['silhouette']:.3f} ({c['seconds']:.1f} s)" for c in base["candidates"]))  # fmt: skip
            print(busy_line(base, cores))
    rerun = run_discover(spec, path, truth, "discover, 2nd run", cores) if args.rerun else None

    print()
    print(f"{'run':<12} {'seconds':>8} {'CPU s':>7} {'peak MB':>8} {'k':>3} {'silhouette':>10} {'ARI':>6}  scope")
    rows = [("discover", job, "read -> matrix -> k -> fit -> assign -> write clusters, cluster_id, documents")]
    if base is not None:
        rows.append(("baseline", base, "read -> matrix -> KMeans per k on all rows -> labels (writes nothing)"))
    if rerun is not None:
        rows.append(("discover 2nd", rerun, "the same again on the same file, replacing the first run's results"))
    for name, r, scope in rows:
        print(
            f"{name:<12} {r['seconds']:>8.1f} {r['cpu_seconds']:>7.1f} {r['peak_mb']:>8.0f} {r['k']:>3} "
            f"{r['silhouette']:>10.3f} {_fmt(r.get('ari'), '6.3f'):>6}  {scope}"
        )
    if base is None and not args.skip_baseline:
        print(f"{'baseline':<12} {'>' + format(args.baseline_timeout, '.0f'):>8}  (stopped)")
    if base is not None:
        print(f"baseline/discover: {base['seconds'] / job['seconds']:.2f} in wall seconds, "
              f"{base['cpu_seconds'] / job['cpu_seconds']:.2f} in CPU seconds")  # fmt: skip

    seconds, peak = job["seconds"], job["peak_mb"]
    print()
    scale = "" if profiles == FULL_PROFILES else f" (the targets are for {FULL_PROFILES:,} profiles)"
    for name, r in [("discover", job)] + ([("discover, 2nd run", rerun)] if rerun is not None else []):
        fast = "met" if r["seconds"] <= TARGET_SECONDS else "NOT met"
        small = "met" if r["peak_mb"] <= TARGET_MB else "NOT met"
        print(f"targets{scale}, {name}: <= {TARGET_SECONDS:.0f} s {fast}, <= {TARGET_MB} MB peak {small}")
    if args.skip_baseline:
        speedup = "n/a"
    elif base is None:
        speedup = f"{args.baseline_timeout / seconds:.2f}"  # a floor: the baseline did not finish
    else:
        speedup = f"{base['seconds'] / seconds:.2f}"
    return f"discover seconds: {seconds:.1f}, peak MB: {peak:.0f}, speedup vs baseline: {speedup}"


if __name__ == "__main__":
    raise SystemExit(main())

"""K-Means that picks its own k, keeps its cluster ids from run to run, and says what each cluster is.

- **Choosing k**: every candidate k is fitted on a bounded training sample and scored by the
  silhouette on a bounded evaluation sample (both from one seeded generator), so the cost of the
  choice does not grow with the audience; the best k is then refitted on everyone, starting from
  the sample's centroids.
- **Fitting**: KMeans up to `minibatch_threshold` customers, MiniBatchKMeans above it.
- **Assignment** in fixed-size chunks: memory is O(chunk × k), not O(customers × k).
- **Stable ids**: the new centroids are matched to the previous run's by the Hungarian algorithm
  in today's scaled space, over the columns both runs have; unmatched clusters get fresh ids.
- **Explanations**: each centroid's z-scores against the whole population name its most
  distinctive features ("high spend · frequent buyers · mobile").
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances, silhouette_score

from shared.discovery.features import (
    BY_CODE,
    MISSING,
    OTHER,
    SEX_WORDS,
    DiscoveryConfig,
    DiscoveryError,
    Transform,
    original_units,
)

ASSIGN_CHUNK = 65_536
LABEL_THRESHOLD = 0.5  # |z| from which a feature is worth naming
LABEL_TERMS = 3


@dataclass(frozen=True)
class Candidate:
    k: int
    silhouette: float
    inertia: float  # on the training sample
    seconds: float


@dataclass
class Fit:
    k: int
    centers: np.ndarray  # (k, d) in the scaled space
    algorithm: str  # kmeans | minibatch
    candidates: list[Candidate] = field(default_factory=list)
    silhouette: float = float("nan")
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # silhouette rows


def k_range(n: int, distinct: int, config: DiscoveryConfig) -> list[int]:
    """The k values to try; raise DiscoveryError when the audience cannot support them."""
    most = min(n // config.min_cluster_size, distinct)
    if config.k is not None:
        if config.k > most:
            raise DiscoveryError(
                f"too few customers for k={config.k}: {n} customers ({distinct} distinct profiles) allow at most "
                f"k={max(most, 1)} with min_cluster_size {config.min_cluster_size}"
            )
        return [config.k]
    if config.k_min > most:
        raise DiscoveryError(
            f"too few customers for k_min={config.k_min}: {n} customers ({distinct} distinct profiles) allow at "
            f"most k={max(most, 1)} with min_cluster_size {config.min_cluster_size}"
        )
    return list(range(config.k_min, min(config.k_max, most) + 1))


def _estimator(k: int, large: bool, seed: int, init: np.ndarray | None = None) -> KMeans | MiniBatchKMeans:
    if large:
        return MiniBatchKMeans(
            n_clusters=k,
            init="k-means++" if init is None else init,
            n_init=3 if init is None else 1,
            batch_size=4096,
            max_no_improvement=10,
            random_state=seed,
        )
    start = "k-means++" if init is None else init
    # 4 restarts: with 2, about 1 seed in 3 settled in a local optimum that merged two planted
    # archetypes of synthetic_profiles (tests/unit/test_discovery_model.py).
    return KMeans(n_clusters=k, init=start, n_init=4 if init is None else 1, random_state=seed)


def _distinct(rows: np.ndarray, limit: int) -> int:
    """Distinct rows among the first `limit` (enough to tell whether k clusters can exist)."""
    return int(np.unique(rows[:limit], axis=0).shape[0])


def fit(matrix: np.ndarray, config: DiscoveryConfig) -> Fit:
    """Choose k (or take the configured one) and fit it on the whole matrix."""
    n = matrix.shape[0]
    rng = np.random.default_rng(config.seed)
    large = n > config.minibatch_threshold
    train = matrix if n <= config.train_size else matrix[np.sort(rng.choice(n, config.train_size, replace=False))]
    ks = k_range(n, _distinct(train, 20_000), config)
    sample = np.sort(rng.choice(n, min(n, config.sample_size), replace=False))
    evaluation = matrix[sample]
    # One distance matrix for every candidate: silhouette then costs O(sample²) once, not per k.
    distances = pairwise_distances(evaluation)
    candidates: list[Candidate] = []
    best: tuple[float, int, np.ndarray] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicates: fewer distinct centres, scored low
        for k in ks:
            started = time.perf_counter()
            # Full KMeans on the bounded sample: MiniBatchKMeans candidates score k unevenly.
            model = _estimator(k, False, config.seed).fit(train)
            labels = model.predict(evaluation)
            score = (
                float(silhouette_score(distances, labels, metric="precomputed")) if len(np.unique(labels)) > 1 else -1.0
            )
            candidates.append(Candidate(k, score, float(model.inertia_), time.perf_counter() - started))
            if best is None or score > best[0]:
                best = (score, k, np.asarray(model.cluster_centers_, dtype=np.float32))
        assert best is not None
        score, k, centers = best
        if train is not matrix or large:  # refit on everyone, from the sample's centres
            centers = np.asarray(
                _estimator(k, large, config.seed, init=centers).fit(matrix).cluster_centers_, dtype=np.float32
            )
    return Fit(k, centers, "minibatch" if large else "kmeans", candidates, score, sample)


def assign(matrix: np.ndarray, centers: np.ndarray, chunk: int = ASSIGN_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre (index) and its Euclidean distance for every row, `chunk` rows at a time."""
    n = matrix.shape[0]
    labels = np.empty(n, dtype=np.int32)
    distances = np.empty(n, dtype=np.float32)
    centers = np.asarray(centers, dtype=np.float32)
    center_norms = np.einsum("ij,ij->i", centers, centers)
    for start in range(0, n, chunk):
        part = matrix[start : start + chunk]
        d2 = part @ centers.T
        d2 *= -2.0
        d2 += center_norms
        d2 += np.einsum("ij,ij->i", part, part)[:, None]
        nearest = np.argmin(d2, axis=1)
        labels[start : start + len(part)] = nearest
        distances[start : start + len(part)] = np.sqrt(np.maximum(d2[np.arange(len(part)), nearest], 0.0))
    return labels, distances


@dataclass(frozen=True)
class Match:
    ids: list[int]  # the stable id of each centre, in centre order
    previous: list[int | None]  # the previous run's id each centre continues, or None (new)
    distances: list[float | None]  # between matched centres, in today's scaled space


def match_ids(
    centers: np.ndarray,
    sizes: Sequence[int],
    transform: Transform,
    previous: Mapping[str, Any] | None,
) -> Match:
    """Stable ids: each centre takes the id of the previous run's centre it matches best.

    `previous` is the earlier run's {"columns": [...], "clusters": [{"id", "centroid": [...]}]}
    with centroids in transformed, unscaled units. Unmatched centres (k grew, or nothing to match
    on) get the smallest ids neither run uses, biggest cluster first; ids start at 1.
    """
    k = centers.shape[0]
    ids: list[int | None] = [None] * k
    distances: list[float | None] = [None] * k
    old_clusters = list((previous or {}).get("clusters") or [])
    old_columns = list((previous or {}).get("columns") or [])
    common = [j for j, name in enumerate(transform.columns) if name in old_columns]
    if old_clusters and common:
        where = [old_columns.index(transform.columns[j]) for j in common]
        mean = np.asarray(transform.mean)[common]
        scale = (np.asarray(transform.weight) / np.asarray(transform.std))[common]
        old = np.asarray([[float(c["centroid"][i]) for i in where] for c in old_clusters])
        old_scaled = (old - mean) * scale
        new_scaled = np.asarray(centers, dtype=np.float64)[:, common]
        cost = np.sqrt(((new_scaled[:, None, :] - old_scaled[None, :, :]) ** 2).sum(axis=2))
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            ids[r] = int(old_clusters[c]["id"])
            distances[r] = float(cost[r, c])
    previous_ids = list(ids)  # before fresh ids fill the gaps
    used = {int(c["id"]) for c in old_clusters} | {i for i in ids if i is not None}
    fresh = (i for i in range(1, 10_000) if i not in used)
    for r in sorted(range(k), key=lambda r: (-sizes[r], r)):
        if ids[r] is None:
            ids[r] = next(fresh)
    return Match([int(i) for i in ids if i is not None], previous_ids, distances)


def _term(code: str, column: str, z: float, share: float, language: int) -> str | None:
    """The label word of one matrix column for a centre, or None when it says nothing."""
    feature = BY_CODE[code]
    if column.endswith(":missing"):
        return None
    if feature.kind == "category":
        level = column.split("=", 1)[1]
        if z < LABEL_THRESHOLD or share < 0.5 or level in (OTHER, MISSING):
            return None
        if code == "sex" and level in SEX_WORDS:
            return SEX_WORDS[level][language]
        return feature.prefix[language] + level
    if abs(z) < LABEL_THRESHOLD:
        return None
    return (feature.high if z > 0 else feature.low)[language]


def explain(
    centers: np.ndarray,
    sizes: Sequence[int],
    ids: Sequence[int],
    transform: Transform,
) -> list[dict[str, Any]]:
    """Per cluster: size, share, centroid in original units, distinctive features and labels."""
    total = max(int(sum(sizes)), 1)
    summaries = []
    for i in range(centers.shape[0]):
        scaled = np.asarray(centers[i], dtype=np.float64)
        z = transform.zscores(scaled)
        raw = transform.unscale(scaled)
        centroid: dict[str, Any] = {}
        for j, (column, code) in enumerate(zip(transform.columns, transform.sources, strict=True)):
            kind = BY_CODE[code].kind
            if kind == "category":  # a list, not a map: a category value may be no valid Firestore key
                level = column.split("=", 1)[1]
                centroid.setdefault(code, []).append({"value": level, "share": round(float(raw[j]), 4)})
            elif column.endswith(":missing"):
                centroid[f"{code}_missing_share"] = round(float(raw[j]), 4)
            else:
                centroid[code] = round(original_units(code, float(raw[j])), 4)
        order = sorted(range(len(z)), key=lambda j: -abs(float(z[j])))
        labels: list[list[str]] = [[], []]
        named: set[str] = set()
        for j in order:
            code = transform.sources[j]
            if code in named:
                continue
            words = [_term(code, transform.columns[j], float(z[j]), float(raw[j]), lang) for lang in (0, 1)]
            if words[0] is None or words[1] is None:
                continue
            named.add(code)
            labels[0].append(words[0])
            labels[1].append(words[1])
            if len(named) == LABEL_TERMS:
                break
        summaries.append(
            {
                "id": int(ids[i]),
                "size": int(sizes[i]),
                "share": round(int(sizes[i]) / total, 4),
                "label": " · ".join(labels[0]) or "typical customers",
                "label_ko": " · ".join(labels[1]) or "평균적인 고객",
                "centroid": centroid,
                "distinctive": [
                    {"column": transform.columns[j], "z": round(float(z[j]), 3)}
                    for j in order[:6]
                    if abs(float(z[j])) >= 0.1
                ],
                # transformed, unscaled: what the next run matches against
                "centroid_transformed": [round(float(v), 6) for v in raw],
            }
        )
    return summaries

"""A discovery fit, whichever engine runs it: the customers in scope, the Outcome both engines
return, and the local (scikit-learn) engine.

Below both the service (shared/services/discover.py), which picks an engine and publishes the
Outcome, and the BigQuery ML engine (shared/discovery/bigquery_ml.py), which returns the same Outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from shared.discovery import model
from shared.discovery.features import DiscoveryConfig, DiscoveryError, Transform, build_matrix
from shared.ports import Warehouse
from shared.sql import load_sql, parameter_names

# Writes the staged assignment (refined.cluster_staging) once the stable ids of the fit-order
# centres are known: ids[i] is the id of centre i.
Stage = Callable[[Sequence[int]], None]


def used_params(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a statement uses (engines refuse unused ones)."""
    return {key: params[key] for key in parameter_names(sql)}


def run_sql(warehouse: Warehouse, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run sql/discovery/<name>.sql with the parameters it uses."""
    sql = load_sql(f"discovery/{name}")
    return warehouse.query(sql, used_params(sql, params))


def scope_params(config: DiscoveryConfig) -> dict[str, Any]:
    return {"site_id": config.site_id, "active_days": config.active_days}


def read_features(warehouse: Warehouse, config: DiscoveryConfig) -> pa.Table:
    """Every catalogue feature of the customers in scope, as one Arrow table (columnar, no row dicts)."""
    sql = load_sql("discovery/features")
    return warehouse.query_arrow(sql, used_params(sql, scope_params(config)))


def count_in_scope(warehouse: Warehouse, config: DiscoveryConfig) -> int:
    [row] = run_sql(warehouse, "count", scope_params(config))
    return int(row["customers"])


@dataclass
class Outcome:
    """What a fit produced, whichever engine ran it: the input of explain and publish."""

    engine: str  # sklearn | bigquery_ml
    algorithm: str
    customers: int
    k: int
    silhouette: float
    candidates: list[model.Candidate]
    transform: Transform
    centers: np.ndarray  # (k, d) scaled space, in fit order
    sizes: list[int]  # per centre, in fit order
    stage: Stage  # engine-specific
    sample_points: np.ndarray | None = None  # scaled rows of the silhouette sample (for charts)
    sample_labels: np.ndarray | None = None  # fit-order centre index of each sample row
    seconds: dict[str, float] = field(default_factory=dict)


def fit_locally(warehouse: Warehouse, config: DiscoveryConfig, run_id: str, now: datetime) -> Outcome:
    """The scikit-learn path: features → matrix → k → fit → chunked assignment, in this process."""
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    table = read_features(warehouse, config)
    seconds["read"] = time.perf_counter() - clock
    if table.num_rows == 0:
        scope = f"site {config.site_id}" if config.site_id else "any site"
        raise DiscoveryError(f"no customers in scope ({scope}, active_days {config.active_days}): nothing to cluster")
    clock = time.perf_counter()
    matrix, transform = build_matrix(table, config)
    seconds["features"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fitted = model.fit(matrix, config)
    seconds["fit"] = time.perf_counter() - clock
    clock = time.perf_counter()
    labels, distances = model.assign(matrix, fitted.centers)
    seconds["assign"] = time.perf_counter() - clock
    sizes = np.bincount(labels, minlength=fitted.k).tolist()
    keys = table.select(["customer_id", "site_id"])
    sample_points = matrix[fitted.sample]
    sample_labels = labels[fitted.sample]
    del matrix, table

    def stage(ids: Sequence[int]) -> None:
        stable = np.asarray(ids, dtype=np.int64)[labels]
        staged = keys.append_column("cluster_id", pa.array(stable, pa.int64()))
        staged = staged.append_column("distance", pa.array(distances.astype(np.float64), pa.float64()))
        staged = staged.append_column("run_id", pa.array([run_id] * len(stable), pa.string()))
        staged = staged.append_column("computed_at", pa.array([now] * len(stable), pa.timestamp("us", tz="UTC")))
        run_sql(warehouse, "staging_delete", {})
        warehouse.append_arrow("refined.cluster_staging", staged)

    return Outcome(
        engine="sklearn",
        algorithm=fitted.algorithm,
        customers=int(labels.shape[0]),
        k=fitted.k,
        silhouette=fitted.silhouette,
        candidates=fitted.candidates,
        transform=transform,
        centers=fitted.centers,
        sizes=[int(s) for s in sizes],
        stage=stage,
        sample_points=sample_points,
        sample_labels=sample_labels,
        seconds=seconds,
    )

"""Discovery beyond one machine: train and apply k-means in BigQuery ML (sql/ml/).

Used above `bigquery_ml_threshold` customers when the warehouse is BigQuery. The split of work:
- In process, on a bounded deterministic sample (sql/ml/sample.sql): the transform (levels,
  medians, scaling) and the choice of k by silhouette, exactly as the scikit-learn path does.
- In BigQuery, on everyone: the transformed feature table (sql/ml/features.sql), CREATE MODEL
  with that k, and ML.PREDICT into refined.cluster_staging.
Then the model's centroids (ML.CENTROIDS) are mapped into the sample's scaled space, so stable-id
matching and explanations are the same code as the local path; remap.sql writes the stable ids.

OPTIONS of CREATE MODEL take literals only: the SQL files carry `{name}` slots that only code
fills: qualified table names, catalogue column names and the validated k. Values from documents
still travel as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from shared.discovery import model
from shared.discovery.features import BY_CODE, MISSING, OTHER, DiscoveryConfig, DiscoveryError, Transform, build_matrix
from shared.discovery.fit import Outcome, scope_params
from shared.ports import MLWarehouse
from shared.sql import load_sql

MODEL = "refined.discovery_kmeans"
FEATURES_TABLE = "refined.discovery_features"
SAMPLE_ROWS = 200_000
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def model_column(column: str) -> str:
    """A matrix column's name in the BigQuery ML feature table (one-hot columns share their feature's)."""
    code = column.split("=", 1)[0].split(":", 1)[0]
    if code not in BY_CODE:
        raise ValueError(f"{column!r} is not a catalogue feature column")
    return f"{code}__missing" if column.endswith(":missing") else code


def model_columns(transform: Transform) -> list[str]:
    """The distinct feature-table columns the model trains on, in matrix order."""
    out: list[str] = []
    for column in transform.columns:
        name = model_column(column)
        if name not in out:
            out.append(name)
    return out


def render(name: str, warehouse: MLWarehouse, **slots: Any) -> str:
    """sql/ml/<name>.sql with its `{slot}`s filled: qualified names, catalogue columns, integers."""
    names = {
        "model": warehouse.table_id(MODEL),
        "features": warehouse.table_id(FEATURES_TABLE),
        "staging": warehouse.table_id("refined.cluster_staging"),
        "profiles": warehouse.table_id("refined.profiles"),
    }
    for key, value in slots.items():
        if key == "columns":
            if not value or any(not _IDENTIFIER.fullmatch(c) for c in value):
                raise ValueError(f"columns must be catalogue column names, got {value!r}")
            names[key] = ", ".join(value)
        elif key == "num_clusters":
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 50:
                raise ValueError(f"num_clusters must be an integer in 2..50, got {value!r}")
            names[key] = str(value)
        elif key == "scope_features":
            names[key] = str(value)
        else:
            raise ValueError(f"unknown slot {key}")
    return load_sql(f"ml/{name}").format(**names)


def scope_features_sql(warehouse: MLWarehouse) -> str:
    """sql/discovery/features.sql with its table qualified, for use inside sample.sql."""
    text = load_sql("discovery/features")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return body.replace("refined.profiles", warehouse.table_id("refined.profiles"))


def centroid_matrix(rows: Sequence[Mapping[str, Any]], transform: Transform, k: int) -> np.ndarray:
    """ML.CENTROIDS rows → (k, columns) in transformed, unscaled units, in the transform's column order.

    A category's levels outside the transform's (rarer than its top values) add up into "(other)".
    """
    raw = np.zeros((k, len(transform.columns)), dtype=np.float64)
    index = {column: j for j, column in enumerate(transform.columns)}
    for row in rows:
        c = int(row["centroid_id"]) - 1
        feature = str(row["feature"])
        if not 0 <= c < k:
            raise DiscoveryError(f"BigQuery ML returned centroid {c + 1} for k={k}")
        if feature.endswith("__missing"):
            column = f"{feature[: -len('__missing')]}:missing"
            if column in index:
                raw[c, index[column]] = float(row["numerical_value"] or 0.0)
            continue
        if feature in index:
            raw[c, index[feature]] = float(row["numerical_value"] or 0.0)
            continue
        levels = transform.levels.get(feature)
        if levels is None:
            continue
        for item in row.get("categorical_value") or []:
            category = str(item["category"])
            level = category if category in levels else OTHER if category != MISSING else MISSING
            column = f"{feature}={level}"
            if column in index:
                raw[c, index[column]] += float(item["value"] or 0.0)
    return raw


def fit_in_bigquery(ml: MLWarehouse, config: DiscoveryConfig, run_id: str, now: datetime) -> Outcome:
    """The BigQuery ML path; returns the same Outcome as the local path (shared/discovery/fit.py)."""
    scope = scope_params(config)
    sample_rows = min(SAMPLE_ROWS, config.train_size)
    sample = ml.run_qualified(
        render("sample", ml, scope_features=scope_features_sql(ml)),
        {**scope, "seed": config.seed, "sample_rows": sample_rows},
    )
    if sample.num_rows == 0:
        raise DiscoveryError("no customers in scope: nothing to cluster")
    matrix, transform = build_matrix(sample, config)
    local = model.fit(matrix, config)  # the k choice and the scaling, on the sample
    ml.run_qualified(render("features", ml), scope)
    ml.run_qualified(render("create_model", ml, columns=model_columns(transform), num_clusters=local.k))
    rows = ml.run_qualified(render("centroids", ml)).to_pylist()
    centers = transform.scale(centroid_matrix(rows, transform, local.k)).astype(np.float32)
    ml.query(load_sql("discovery/staging_delete"), {})
    ml.run_qualified(render("predict", ml), {"run_id": run_id, "computed_at": now})
    counts = {int(r["cluster_id"]): int(r["size"]) for r in ml.query(load_sql("discovery/cluster_sizes"), {})}
    sizes = [counts.get(c + 1, 0) for c in range(local.k)]
    labels, _ = model.assign(matrix[local.sample], centers)

    def stage(ids: Sequence[int]) -> None:
        ml.run_qualified(render("remap", ml), {"stable_ids": [int(i) for i in ids]})

    return Outcome(
        engine="bigquery_ml",
        algorithm="bigquery_ml_kmeans",
        customers=int(sum(sizes)),
        k=local.k,
        silhouette=local.silhouette,
        candidates=local.candidates,
        transform=transform,
        centers=centers,
        sizes=sizes,
        stage=stage,
        sample_points=matrix[local.sample],
        sample_labels=labels,
    )

"""Discovery: K-Means segments over customer profiles that explain themselves (the `discover` job).

One run: read the config (Firestore `discoveries/config`), read the features of every customer in
scope as Arrow (sql/discovery/features.sql), build the matrix, choose k, fit, assign in chunks,
match ids to the previous run, explain each cluster, stage the assignment, count who moved, then
publish: `refined.clusters`, `refined.profiles.cluster_id`, `discoveries/{run}`, the config's
status, and one TAM segment per cluster (plus one per RFM group). Above `bigquery_ml_threshold`
customers on BigQuery the fit and assignment run in BigQuery ML (shared/discovery/bigquery_ml.py).

Nothing is published until everything before it succeeded: a bad config, too few customers or a
useless feature leave the previous results in place and put the error on the run document and on
the config document. docs/discovery.md is the marketer's and operator's guide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.discovery import model
from shared.discovery.bigquery_ml import fit_in_bigquery
from shared.discovery.features import ConfigError, DiscoveryConfig, DiscoveryError, parse_config
from shared.discovery.fit import count_in_scope, fit_locally, run_sql
from shared.ports import DocumentStore, MLWarehouse, Warehouse
from shared.runs import Run, error_text, recorded
from shared.services.segments import apply_segment
from shared.tam.rules import RFM_GROUPS, user_fields

log = logging.getLogger(__name__)

JOB = "discover"
DISCOVERIES = "discoveries"
CONFIG = "config"
SEGMENTS = "segments"
CLUSTER_SEGMENT = "discovery-cluster-{id}"
RFM_SEGMENT = "discovery-rfm-{slug}"


def _latest(documents: DocumentStore, config_doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The previous successful run's results document, whose centroids today's ids are matched to."""
    run_id = (config_doc or {}).get("latest_run")
    if not isinstance(run_id, str) or not run_id:
        return None
    return documents.get(DISCOVERIES, run_id)


def _match_basis(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not doc:
        return None
    return {
        "columns": (doc.get("transform") or {}).get("columns") or [],
        "clusters": [
            {"id": c["id"], "centroid": c["centroid_transformed"]}
            for c in doc.get("clusters") or []
            if "centroid_transformed" in c
        ],
    }


def cluster_segment(cluster: Mapping[str, Any], config: DiscoveryConfig, run_id: str) -> dict[str, Any]:
    """The TAM segment of one cluster: template kmeans, one condition on cluster_id."""
    definition: dict[str, Any] = {
        "name": f"K-Means {cluster['id']}: {cluster['label_ko']} ({cluster['label']})"[:200],
        "description": (
            f"Discovery cluster {cluster['id']}: {cluster['share']:.1%} of the customers clustered by run {run_id}. "
            "Written by the discover job; edit discoveries/config, not this document."
        )[:200],
        "template": "kmeans",
        "period": {"last_days": config.active_days or 3650},
        "rules": {"all": [{"segmentlet": "cluster_id", "op": "eq", "value": int(cluster["id"])}]},
        "enabled": True,
    }
    if config.site_id:
        definition["site_id"] = config.site_id
    return definition


def rfm_segment(group: str, config: DiscoveryConfig) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "name": f"RFM: {group}",
        "description": "Discovery segment of an RFM group from refinement; written by the discover job.",
        "template": "rfm",
        "period": {"last_days": 365},
        "rules": {"all": [{"segmentlet": "rfm", "op": "eq", "value": group}]},
        "enabled": True,
    }
    if config.site_id:
        definition["site_id"] = config.site_id
    return definition


def publish_segments(
    documents: DocumentStore, clusters: Sequence[Mapping[str, Any]], config: DiscoveryConfig, run_id: str
) -> dict[str, int]:
    """One segment per cluster and per RFM group; a cluster id no longer found is disabled, not deleted."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "retired": 0}
    live = set()
    for cluster in clusters:
        segment_id = CLUSTER_SEGMENT.format(id=cluster["id"])
        live.add(segment_id)
        counts[apply_segment(documents, segment_id, cluster_segment(cluster, config, run_id))] += 1
    for group in RFM_GROUPS:
        slug = group.lower().replace(" ", "-")
        counts[apply_segment(documents, RFM_SEGMENT.format(slug=slug), rfm_segment(group, config))] += 1
    prefix = CLUSTER_SEGMENT.split("{")[0]
    for segment_id, doc in documents.list(SEGMENTS):
        if segment_id.startswith(prefix) and segment_id not in live and doc.get("enabled", True):
            retired = user_fields(doc) | {"enabled": False}
            retired["description"] = f"Retired: discovery run {run_id} found no such cluster."[:200]
            apply_segment(documents, segment_id, retired)
            counts["retired"] += 1
    return counts


def _status(state: str, message: str, now: datetime, **extra: Any) -> dict[str, Any]:
    return {"state": state, "message": message[:2000], "at": now, **extra}


def discover(
    warehouse: Warehouse,
    documents: DocumentStore,
    now: datetime,
    run_id: str | None = None,
    *,
    engine: str = "auto",
    charts_dir: Path | None = None,
    config_override: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One discovery run; returns its results document (also stored as discoveries/{run_id}).

    engine: "auto" (BigQuery ML above the threshold on a warehouse that has it), "sklearn", or
    "bigquery_ml". Raises ConfigError or DiscoveryError for input a retry cannot fix, after
    recording it on the run and config documents; the previous results stay in place.
    """
    run_id = run_id or f"{JOB}-{now:%Y%m%dT%H%M%S%f}"
    results: dict[str, Any] | None = None
    with recorded(documents, Run(job=JOB, run_id=run_id, started_at=now)) as run:
        config_doc = documents.get(DISCOVERIES, CONFIG)
        try:
            config = parse_config(config_override if config_override is not None else config_doc)
            if not config.enabled:
                run.status = "skipped"
                run.details["reason"] = "discoveries/config has enabled: false"
            else:
                results = _discover(warehouse, documents, config, config_doc, now, run_id, engine, charts_dir)
                run.details |= {key: results[key] for key in ("k", "customers", "silhouette", "moved", "engine")}
        except BaseException as exc:
            message = "; ".join(exc.errors) if isinstance(exc, ConfigError) else str(exc)
            kind = "config" if isinstance(exc, ConfigError) else "data" if isinstance(exc, DiscoveryError) else "error"
            run.error = error_text(exc, message)
            run.details["error_kind"] = kind
            errors = exc.errors if isinstance(exc, ConfigError) else [message]
            status = _status("error", message, now, run_id=run_id, errors=errors[:50])
            try:
                documents.set(DISCOVERIES, CONFIG, {"status": status}, merge=True)
            except Exception:  # noqa: BLE001 - the run document still carries the error
                log.exception("could not write the config status", extra={"run_id": run_id})
            raise
    return run.document() if results is None else results


def _discover(
    warehouse: Warehouse,
    documents: DocumentStore,
    config: DiscoveryConfig,
    config_doc: Mapping[str, Any] | None,
    now: datetime,
    run_id: str,
    engine: str,
    charts_dir: Path | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    ml = warehouse if isinstance(warehouse, MLWarehouse) else None
    if engine == "auto":
        engine = "sklearn"
        if ml is not None and count_in_scope(warehouse, config) > config.bigquery_ml_threshold:
            engine = "bigquery_ml"
    if engine == "bigquery_ml":
        if ml is None:
            raise ValueError("engine bigquery_ml needs a warehouse with BigQuery ML (CDP_WAREHOUSE=bigquery)")
        outcome = fit_in_bigquery(ml, config, run_id, now)
    elif engine == "sklearn":
        outcome = fit_locally(warehouse, config, run_id, now)
    else:
        raise ValueError(f"engine must be auto, sklearn or bigquery_ml, not {engine!r}")

    previous = _latest(documents, config_doc)
    match = model.match_ids(outcome.centers, outcome.sizes, outcome.transform, _match_basis(previous))
    clusters = model.explain(outcome.centers, outcome.sizes, match.ids, outcome.transform)
    for cluster, previous_id, distance in zip(clusters, match.previous, match.distances, strict=True):
        cluster["previous_id"] = previous_id
        cluster["match_distance"] = None if distance is None else round(distance, 4)
    clock = time.perf_counter()
    outcome.stage(match.ids)
    [moves] = run_sql(warehouse, "moved", {})
    outcome.seconds["stage"] = time.perf_counter() - clock
    clusters.sort(key=lambda c: c["id"])
    charts: list[str] = []
    if charts_dir is not None and outcome.sample_points is not None and outcome.sample_labels is not None:
        from shared.discovery.charts import write_charts

        by_index = np.asarray(match.ids)[outcome.sample_labels]
        order = np.argsort(match.ids)
        paths = write_charts(
            charts_dir,
            outcome.sample_points,
            by_index,
            outcome.centers[order],
            [match.ids[i] for i in order],
            [f"{c['label']}" for c in clusters],
            outcome.transform.columns,
        )
        charts = [str(p) for p in paths]
    results: dict[str, Any] = {
        "run_id": run_id,
        "computed_at": now,
        "engine": outcome.engine,
        "algorithm": outcome.algorithm,
        "customers": outcome.customers,
        "k": outcome.k,
        "k_chosen_by": "config" if config.k is not None else "silhouette",
        "silhouette": round(outcome.silhouette, 4),
        "candidates": [
            {
                "k": c.k,
                "silhouette": round(c.silhouette, 4),
                "inertia": round(c.inertia, 2),
                "seconds": round(c.seconds, 3),
            }
            for c in outcome.candidates
        ],
        "features": [code for code in config.features if code not in {d["feature"] for d in outcome.transform.dropped}],
        "dropped_features": outcome.transform.dropped,
        "transform": outcome.transform.document(),
        "clusters": clusters,
        "moved": int(moves["moved"] or 0),
        "stayed": int(moves["stayed"] or 0),
        "entered": int(moves["entered"] or 0),
        "left_scope": int(moves["left_scope"] or 0),
        "previous_run": (previous or {}).get("run_id"),
        "scope": {"site_id": config.site_id, "active_days": config.active_days},
        "seconds": {k: round(v, 3) for k, v in outcome.seconds.items()},
        "charts": charts,
    }
    # Publish, each step only after the one before it succeeded: the results document (a failure
    # here changes nothing else), the assignment and the segmentlet, the segments, then the pointer
    # that makes this run the latest.
    documents.set(DISCOVERIES, run_id, results)
    clock = time.perf_counter()
    for name in ("clusters_delete", "clusters", "profiles_clear", "profiles_set"):
        run_sql(warehouse, name, {})
    outcome.seconds["publish"] = time.perf_counter() - clock
    results["seconds"] = {k: round(v, 3) for k, v in outcome.seconds.items()}
    results["segments"] = publish_segments(documents, clusters, config, run_id)
    results["run_seconds"] = round(time.perf_counter() - started, 3)
    documents.set(
        DISCOVERIES,
        run_id,
        {"seconds": results["seconds"], "segments": results["segments"], "run_seconds": results["run_seconds"]},
        merge=True,
    )
    summary = (
        f"{outcome.customers} customers in {outcome.k} clusters (silhouette {outcome.silhouette:.2f}); "
        f"{results['moved']} moved since the previous run"
    )
    documents.set(
        DISCOVERIES,
        CONFIG,
        {"status": _status("ok", summary, now, run_id=run_id, errors=[]), "latest_run": run_id},
        merge=True,
    )
    return results


def job_engine(body: Mapping[str, Any], _run_at: datetime | None = None) -> str:
    """The engine a `jobs` message asks for: {"job": "discover", "engine": "auto"|"sklearn"|"bigquery_ml"}."""
    engine = body.get("engine", "auto")
    if engine not in ("auto", "sklearn", "bigquery_ml"):
        raise ValueError(f"engine: {engine!r} is not auto, sklearn or bigquery_ml")
    return str(engine)


def format_results(results: Mapping[str, Any]) -> str:
    """A plain-text summary for people: k, silhouette, and one line per cluster."""
    lines = [
        f"discovery {results['run_id']}: {results['customers']} customers, k={results['k']} "
        f"({results['k_chosen_by']}), silhouette {results['silhouette']:.3f}, {results['moved']} moved",
        "  candidates: " + ", ".join(f"k={c['k']} {c['silhouette']:.3f}" for c in results["candidates"]),
    ]
    for cluster in results["clusters"]:
        lines.append(f"  cluster {cluster['id']:>2}  {cluster['share']:6.1%}  {cluster['size']:>8}  {cluster['label']}")
    for dropped in results["dropped_features"]:
        lines.append(f"  dropped feature {dropped['feature']}: {dropped['reason']}")
    return "\n".join(lines)

"""sql/discovery and sql/ml: syntax, parameters and the slots only code may fill; the BigQuery ML path
end to end against a stand-in that runs the same statements on DuckDB and k-means in scikit-learn."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlglot
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from devstack.synthetic_profiles import synthetic_profiles
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.discovery import bigquery_ml
from shared.discovery.features import BY_CODE, FEATURES, MISSING, OTHER, Transform, parse_config
from shared.schema import table_specs
from shared.services import discover as discovery
from shared.sql import SQL_DIR, load_sql, parameter_names, to_duckdb
from tests.fakes import FakeDocumentStore

NOW = datetime(2026, 11, 2, 6, 20, tzinfo=UTC)
DISCOVERY_FILES = sorted(p.stem for p in (SQL_DIR / "discovery").glob("*.sql"))
ML_FILES = sorted(p.stem for p in (SQL_DIR / "ml").glob("*.sql"))
# What the code passes to each ML statement.
ML_PARAMS = {
    "sample": {"site_id", "active_days", "seed", "sample_rows"},
    "features": {"site_id", "active_days"},
    "create_model": set(),
    "centroids": set(),
    "predict": {"run_id", "computed_at"},
    "remap": {"stable_ids"},
}
KMEANS_OPTIONS = {
    "model_type", "num_clusters", "kmeans_init_method", "kmeans_init_col", "distance_type", "standardize_features",
    "max_iterations", "early_stop", "min_rel_progress", "warm_start",
}  # fmt: skip


class Named:
    """table_id as the BigQuery adapter's, for rendering."""

    def __init__(self, project: str = "proj") -> None:
        self.project = project

    def table_id(self, table: str) -> str:
        dataset, _, name = table.partition(".")
        return f"{self.project}.cdp_{dataset}.{name}"


def all_features_transform() -> Transform:
    transform = Transform()
    for feature in FEATURES:
        if feature.kind == "category":
            transform.columns += [f"{feature.code}=a", f"{feature.code}={OTHER}"]
        else:
            transform.columns.append(feature.code)
            if feature.kind in ("log", "linear"):
                transform.columns.append(f"{feature.code}:missing")
    return transform


def rendered(name: str) -> str:
    slots: dict[str, Any] = {}
    if name == "create_model":
        slots = {"columns": bigquery_ml.model_columns(all_features_transform()), "num_clusters": 5}
    if name == "sample":
        slots = {"scope_features": bigquery_ml.scope_features_sql(Named())}  # type: ignore[arg-type]
    return bigquery_ml.render(name, Named(), **slots)  # type: ignore[arg-type]


def test_the_services_run_every_file() -> None:
    used = {"features", "count", "staging_delete", "moved", "cluster_sizes", "clusters_delete", "clusters"}
    used |= {"profiles_clear", "profiles_set"}
    assert set(DISCOVERY_FILES) == used
    assert set(ML_FILES) == set(ML_PARAMS)


@pytest.mark.parametrize("name", DISCOVERY_FILES)
def test_discovery_statements_are_portable_and_parameterised(name: str) -> None:
    sql = load_sql(f"discovery/{name}")
    assert len(sqlglot.parse(sql, read="bigquery")) == 1
    assert to_duckdb(sql)
    assert parameter_names(sql) <= {"site_id", "active_days"}
    assert not re.search(r"\{|\}|%s", sql), "values go in as @parameters"
    assert sql.startswith("-- ")


@pytest.mark.parametrize("name", ML_FILES)
def test_ml_statements_parse_as_bigquery_with_the_parameters_the_code_passes(name: str) -> None:
    sql = rendered(name)
    assert "{" not in sql and "}" not in sql, "every slot filled"
    assert "proj.cdp_refined." in sql, "names are qualified by code"
    checked = sql
    if name == "centroids":
        # sqlglot does not know ML.CENTROIDS: check its form, then parse the rest around a table.
        assert re.search(r"from ml\.centroids\(model proj\.cdp_refined\.discovery_kmeans\)", sql)
        checked = sql.replace("ml.centroids(model proj.cdp_refined.discovery_kmeans)", "proj.cdp_refined.centroids")
    [statement] = sqlglot.parse(checked, read="bigquery")
    assert statement is not None
    params = {p.name for p in statement.find_all(sqlglot.exp.Parameter)}
    assert params == ML_PARAMS[name]


def test_create_model_uses_only_documented_kmeans_options() -> None:
    sql = rendered("create_model")
    options = dict(re.findall(r"(\w+)\s*=\s*([^,\n)]+)", sql.split("options", 1)[1].split(") as", 1)[0]))
    assert set(options) <= KMEANS_OPTIONS
    assert options["model_type"].strip() == "'kmeans'" and options["num_clusters"].strip() == "5"


def test_the_feature_table_has_every_model_column() -> None:
    select = load_sql("ml/features")
    produced = set(re.findall(r"\bas (\w+),?$", select, re.MULTILINE))
    assert set(bigquery_ml.model_columns(all_features_transform())) <= produced
    assert {f.code for f in FEATURES} <= produced


@pytest.mark.parametrize(
    ("slots", "message"),
    [
        ({"columns": ["rvn", "age; drop table x"]}, "catalogue column names"),
        ({"columns": []}, "catalogue column names"),
        ({"num_clusters": "5"}, "integer in 2..50"),
        ({"num_clusters": 51}, "integer in 2..50"),
        ({"num_clusters": True}, "integer in 2..50"),
        ({"evil": 1}, "unknown slot"),
    ],
)
def test_render_refuses_anything_but_code_values(slots: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bigquery_ml.render("create_model", Named(), **slots)  # type: ignore[arg-type]


def test_model_columns_are_catalogue_columns() -> None:
    with pytest.raises(ValueError, match="not a catalogue feature"):
        bigquery_ml.model_column("secret=1")
    assert bigquery_ml.model_column("age:missing") == "age__missing"
    assert bigquery_ml.model_column("device=mobile") == "device"


def test_centroid_rows_map_into_the_transform_columns() -> None:
    transform = Transform(
        columns=["rvn", "age", "age:missing", "device=mobile", f"device={OTHER}", f"device={MISSING}"]
    )
    transform.levels = {"device": ["mobile", OTHER, MISSING]}
    rows = [
        {"centroid_id": 1, "feature": "rvn", "numerical_value": 10.5, "categorical_value": []},
        {"centroid_id": 1, "feature": "age", "numerical_value": 33.0, "categorical_value": []},
        {"centroid_id": 1, "feature": "age__missing", "numerical_value": 0.25, "categorical_value": []},
        {
            "centroid_id": 1,
            "feature": "device",
            "numerical_value": None,
            "categorical_value": [
                {"category": "mobile", "value": 0.5},
                {"category": "tablet", "value": 0.2},
                {"category": "desktop", "value": 0.1},
                {"category": MISSING, "value": 0.2},
            ],
        },
        {"centroid_id": 2, "feature": "rvn", "numerical_value": 2.0, "categorical_value": []},
    ]
    raw = bigquery_ml.centroid_matrix(rows, transform, 2)
    assert raw[0].tolist() == pytest.approx([10.5, 33.0, 0.25, 0.5, 0.3, 0.2])
    assert raw[1].tolist() == pytest.approx([2.0, 0, 0, 0, 0, 0])


class StandInML:
    """BigQuery ML on DuckDB: the same rendered statements, k-means by scikit-learn for CREATE MODEL.

    Table names are rendered logical (`refined.x`), which DuckDB has as schema.table.
    """

    def __init__(self, warehouse: DuckDBWarehouse) -> None:
        self.warehouse = warehouse
        self.statements: list[str] = []
        self.labels: np.ndarray | None = None
        self.centroid_rows: list[dict[str, Any]] = []

    def table_id(self, table: str) -> str:
        return table

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.warehouse.query(sql, params)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self.warehouse.query_arrow(sql, params)

    def append_arrow(self, table: str, data: pa.Table) -> int:
        return self.warehouse.append_arrow(table, data)

    def run_qualified(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        self.statements.append(sql)
        params = dict(params or {})
        if "farm_fingerprint" in sql:  # DuckDB has no FARM_FINGERPRINT: the inner scope query, seeded
            inner = load_sql("discovery/features")
            table = self.warehouse.query_arrow(
                inner, {"site_id": params["site_id"], "active_days": params["active_days"]}
            )
            rows = np.random.default_rng(params["seed"]).permutation(table.num_rows)[: params["sample_rows"]]
            return table.take(pa.array(np.sort(rows)))
        if sql.startswith("-- BigQuery ML path, step 2"):
            return self._train(sql)
        if "ml.centroids(" in sql:
            return pa.Table.from_pylist(self.centroid_rows)
        if "ml.predict(" in sql:
            assert self.labels is not None
            keys = self.warehouse.query_arrow("select customer_id, site_id from refined.discovery_features")
            staged = keys.append_column("cluster_id", pa.array(self.labels + 1, pa.int64()))
            staged = staged.append_column("distance", pa.array(np.zeros(len(self.labels)), pa.float64()))
            staged = staged.append_column("run_id", pa.array([params["run_id"]] * len(self.labels)))
            staged = staged.append_column("computed_at", pa.array([params["computed_at"]] * len(self.labels)))
            self.warehouse.append_arrow("refined.cluster_staging", staged)
            return pa.table({})
        return self.warehouse.query_arrow(sql, params)

    def _train(self, sql: str) -> pa.Table:
        k = int(re.search(r"num_clusters = (\d+)", sql).group(1))  # type: ignore[union-attr]
        columns = [c.strip() for c in sql.split("select", 1)[1].split("from", 1)[0].split(",")]
        data = self.warehouse.query_arrow(f"select {', '.join(columns)} from refined.discovery_features")
        blocks, names = [], []
        for name in columns:
            values = data.column(name).to_numpy(zero_copy_only=False)
            if BY_CODE.get(name) and BY_CODE[name].kind == "category":
                for level in sorted(set(values)):
                    blocks.append((values == level).astype(float))
                    names.append((name, level))
            else:
                numbers = values.astype(float)
                blocks.append(np.where(np.isnan(numbers), np.nanmean(numbers), numbers))
                names.append((name, None))
        x = np.column_stack(blocks)
        scaled = (x - x.mean(axis=0)) / np.where(x.std(axis=0) == 0, 1, x.std(axis=0))
        self.labels = KMeans(k, n_init=2, random_state=0).fit_predict(scaled)
        for c in range(k):
            means = x[self.labels == c].mean(axis=0)
            by_feature: dict[str, dict[str, Any]] = {}
            for (name, level), value in zip(names, means, strict=True):
                row = by_feature.setdefault(
                    name, {"centroid_id": c + 1, "feature": name, "numerical_value": None, "categorical_value": []}
                )
                if level is None:
                    row["numerical_value"] = float(value)
                else:
                    row["categorical_value"].append({"category": level, "value": float(value)})
            self.centroid_rows += by_feature.values()
        return pa.table({})


def test_the_bigquery_ml_path_end_to_end_on_a_stand_in() -> None:
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    profiles, truth = synthetic_profiles(4000, seed=3)
    warehouse.append_arrow("refined.profiles", profiles)
    ml = StandInML(warehouse)
    documents = FakeDocumentStore()
    documents.set("discoveries", "config", {"k": 5})

    results = discovery.discover(ml, documents, NOW, run_id="run-ml", engine="bigquery_ml")  # type: ignore[arg-type]

    assert results["engine"] == "bigquery_ml" and results["k"] == 5
    assert any("create or replace model refined.discovery_kmeans" in s for s in ml.statements)
    in_scope = profiles.column("recency_days").to_numpy() < 365  # the default active_days
    assert sum(c["size"] for c in results["clusters"]) == results["customers"] == in_scope.sum()
    truth = truth[in_scope]
    assigned = warehouse.query_arrow(
        "select p.customer_id, p.cluster_id, c.cluster_id as in_clusters from refined.profiles as p "
        "left join refined.clusters as c using (customer_id) where p.recency_days < 365 order by p.customer_id"
    )
    ids = assigned.column("cluster_id").to_numpy()
    assert (ids == assigned.column("in_clusters").to_numpy()).all()
    assert set(ids.tolist()) == {c["id"] for c in results["clusters"]} == {1, 2, 3, 4, 5}
    assert adjusted_rand_score(truth, ids) > 0.8  # planted archetypes recovered through the ML path
    # The explanation comes from the model's centroids: the desktop cluster says so.
    labels = " ".join(c["label"] for c in results["clusters"])
    assert "desktop" in labels or "high spend" in labels
    config = documents.get("discoveries", "config")
    assert config is not None and config["status"]["state"] == "ok" and config["latest_run"] == "run-ml"


def test_auto_engine_stays_local_without_bigquery_ml() -> None:
    warehouse = DuckDBWarehouse(":memory:")
    warehouse.ensure_tables(list(table_specs().values()))
    warehouse.append_arrow("refined.profiles", synthetic_profiles(300, seed=1)[0])
    config = parse_config({"k": 3, "bigquery_ml_threshold": 1000})
    assert config.bigquery_ml_threshold == 1000
    results = discovery.discover(warehouse, FakeDocumentStore(), NOW, config_override={"k": 3})
    assert results["engine"] == "sklearn"

"""Discovery features: the config document's validation and the profiles → matrix transform, on
small hand-built tables shaped like sql/discovery/features.sql's output (numbers as FLOAT64,
flags as INT64, categories as STRING)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from shared.discovery.features import (
    BY_CODE,
    DEFAULT_FEATURES,
    FEATURES,
    MISSING,
    OTHER,
    ConfigError,
    DiscoveryConfig,
    DiscoveryError,
    build_matrix,
    original_units,
    parse_config,
)

# --- parse_config --------------------------------------------------------------------------------


def test_no_document_and_an_empty_one_are_the_defaults() -> None:
    assert parse_config(None) == parse_config({}) == DiscoveryConfig()
    config = parse_config(None)
    assert config.features == DEFAULT_FEATURES and not config.explicit_features
    assert (config.k, config.k_min, config.k_max) == (None, 2, 8)
    assert config.active_days == 365 and config.site_id is None and config.enabled


def test_valid_fields_are_taken() -> None:
    config = parse_config(
        {
            "features": ["rvn", "device", "age"],
            "k": 5.0,  # Firestore hands back whole numbers written from JavaScript as floats
            "active_days": "all",
            "site_id": "shop-1",
            "max_categories": 3,
            "enabled": False,
        }
    )
    assert config.features == ("rvn", "device", "age") and config.explicit_features
    assert config.k == 5 and isinstance(config.k, int)
    assert config.active_days is None and config.site_id == "shop-1" and config.max_categories == 3
    assert not config.enabled
    assert parse_config({"k": "auto"}).k is None
    assert parse_config({"k": None, "active_days": None}).active_days is None


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"colour": "blue"}, "colour: unknown field (known: active_days,"),
        ({"features": ["rvn", "foo"]}, "features[1]: unknown feature 'foo' (known: recency_days, odr,"),
        ({"features": ["rvn", 3]}, "features[1]: unknown feature 3 "),
        ({"features": ["rvn", "age", "rvn"]}, "features[2]: 'rvn' is listed twice"),
        ({"features": []}, "features: expected a non-empty list of feature codes"),
        ({"features": "rvn"}, "features: expected a non-empty list of feature codes"),
        ({"k": 1}, "k: 1 is outside 2..50"),
        ({"k": 51}, "k: 51 is outside 2..50"),
        ({"k_max": 60}, "k_max: 60 is outside 2..50"),
        ({"k_min": 6, "k_max": 3}, "k_min: 6 is above k_max 3"),
        ({"k_min": 9}, "k_min: 9 is above k_max 8"),  # against the default k_max
        ({"k": "five"}, "k: expected a whole number, got 'five'"),
        ({"k": 2.5}, "k: expected a whole number, got 2.5"),
        ({"k": True}, "k: expected a whole number, got True"),
        ({"max_categories": False}, "max_categories: expected a whole number, got False"),
        ({"sample_size": 100}, "sample_size: 100 is outside 500..20000"),
        ({"active_days": 0}, "active_days: 0 is outside 1..36500"),
        ({"seed": [1]}, "seed: expected a whole number, got [1]"),
        ({"site_id": 7}, "site_id: expected a site id (text up to 200 characters)"),
        ({"site_id": ""}, "site_id: expected a site id (text up to 200 characters)"),
        ({"enabled": "yes"}, "enabled: expected true or false, got 'yes'"),
    ],
)
def test_a_bad_field_is_named_by_its_path(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(doc)
    [error] = raised.value.errors
    assert error.startswith(expected), error
    assert str(raised.value) == error


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"colour": 1, "k": 0, "features": ["rvn", "foo"], "enabled": 1})
    errors = raised.value.errors
    assert [e.split(":")[0] for e in errors] == ["colour", "k", "features[1]", "enabled"]
    assert str(raised.value) == "; ".join(errors)
    assert isinstance(raised.value, ValueError)


def test_fields_the_job_writes_back_are_not_input() -> None:
    doc = {
        "k_max": 6,
        "status": {"state": "error", "message": "old"},
        "latest_run": "discover-1",
        "updated_at": "2026-01-01",
    }
    assert parse_config(doc) == DiscoveryConfig(k_max=6)
    assert doc["status"] == {"state": "error", "message": "old"}  # the caller's document is not changed


# --- build_matrix --------------------------------------------------------------------------------

N = 12


def features_table(n: int = N, **columns: list[Any]) -> pa.Table:
    """Every column of sql/discovery/features.sql for n customers: varied defaults, overridable."""
    rng = np.random.default_rng(3)
    data: dict[str, pa.Array] = {
        "customer_id": pa.array([f"c{i:03d}" for i in range(n)], pa.string()),
        "site_id": pa.array(["shop"] * n, pa.string()),
    }
    for feature in FEATURES:
        if feature.kind == "category":
            values: list[Any] = [["a", "b", "c"][i % 3] for i in range(n)]
            data[feature.code] = pa.array(columns.pop(feature.code, values), pa.string())
        elif feature.kind == "flag":
            data[feature.code] = pa.array(columns.pop(feature.code, [i % 2 for i in range(n)]), pa.int64())
        else:
            values = [float(v) for v in np.round(rng.uniform(1, 100, n))]
            data[feature.code] = pa.array(columns.pop(feature.code, values), pa.float64())
    assert not columns, f"not a feature: {sorted(columns)}"
    return pa.table(data)


def explicit(*codes: str, **fields: Any) -> DiscoveryConfig:
    """A config the marketer wrote, choosing these features."""
    return parse_config({"features": list(codes), **fields})


def column(transform: Any, name: str) -> int:
    return transform.columns.index(name)


def test_money_and_counts_are_log1p_transformed() -> None:
    rvn = [0.0, 9.0, 99.0, 999.0, -5.0, 9999.0]  # a negative refund total counts as 0
    matrix, transform = build_matrix(features_table(6, rvn=rvn), explicit("rvn"))
    assert matrix.dtype == np.float32 and matrix.shape == (6, 1)
    logged = np.log1p([0.0, 9.0, 99.0, 999.0, 0.0, 9999.0])
    assert transform.mean[0] == pytest.approx(logged.mean())
    assert transform.std[0] == pytest.approx(logged.std())
    # ln(100) = 4.605: the scaled value of the customer with 99 is (ln 100 − mean) / std.
    assert matrix[2, 0] == pytest.approx((math.log(100.0) - logged.mean()) / logged.std(), rel=1e-6)
    np.testing.assert_allclose(transform.unscale(matrix)[:, 0], logged, rtol=1e-6, atol=1e-6)
    assert original_units("rvn", math.log(100.0)) == pytest.approx(99.0)
    assert original_units("age", 41.5) == 41.5  # linear: as is


def test_linear_features_are_not_logged() -> None:
    age = [20.0, 30.0, 40.0, 50.0]
    _, transform = build_matrix(features_table(4, age=age), explicit("age"))
    assert transform.mean == [35.0] and transform.std[0] == pytest.approx(np.std(age))


def test_categories_are_one_hot_with_top_levels_other_and_missing() -> None:
    device = ["mobile"] * 5 + ["desktop"] * 3 + ["tablet"] * 2 + ["tv", None, None]
    matrix, transform = build_matrix(features_table(13, device=device), explicit("device", max_categories=2))
    levels = ["mobile", "desktop", OTHER, MISSING]
    assert transform.levels == {"device": levels}
    assert transform.columns == [f"device={level}" for level in levels]
    assert transform.sources == ["device"] * 4
    hot = transform.unscale(matrix)
    np.testing.assert_allclose(hot.sum(axis=1), 1.0, atol=1e-6)  # exactly one level per customer
    expected = [0] * 5 + [1] * 3 + [2] * 3 + [3] * 2  # tablet and tv → (other), NULL → (missing)
    assert hot.argmax(axis=1).tolist() == expected
    np.testing.assert_allclose(hot.max(axis=1), 1.0, atol=1e-6)


def test_the_most_common_levels_are_kept_ties_alphabetically() -> None:
    region = ["Seoul"] * 4 + ["Busan"] * 2 + ["Daegu"] * 2 + ["Incheon"]
    _, transform = build_matrix(features_table(9, region=region), explicit("region", max_categories=2))
    assert transform.levels["region"] == ["Seoul", "Busan", OTHER]  # Busan before Daegu; nothing missing
    _, everything = build_matrix(features_table(9, region=region), explicit("region"))
    assert everything.levels["region"] == ["Seoul", "Busan", "Daegu", "Incheon"]  # all fit: no (other)


def test_missing_numbers_get_the_median_and_an_indicator_column() -> None:
    age = [20.0, None, 40.0, 60.0, None, 30.0]
    rvn = [0.0, 9.0, None, 99.0, 9.0, 9.0]
    matrix, transform = build_matrix(features_table(6, age=age, rvn=rvn), explicit("age", "rvn"))
    assert transform.columns == ["age", "age:missing", "rvn", "rvn:missing"]
    assert transform.sources == ["age", "age", "rvn", "rvn"]
    assert transform.medians == {"age": 35.0, "rvn": pytest.approx(math.log(10.0))}  # rvn's in log1p units
    raw = transform.unscale(matrix)
    np.testing.assert_allclose(raw[:, 0], [20, 35, 40, 60, 35, 30], atol=1e-4)
    np.testing.assert_allclose(raw[:, 1], [0, 1, 0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(raw[:, 2], np.log1p([0, 9, 9, 99, 9, 9]), atol=1e-5)
    np.testing.assert_allclose(raw[:, 3], [0, 0, 1, 0, 0, 0], atol=1e-6)


def test_a_null_flag_is_false_and_gets_no_indicator() -> None:
    matrix, transform = build_matrix(features_table(4, is_member=[1, None, 0, 1]), explicit("is_member"))
    assert transform.columns == ["is_member"] and transform.medians == {}
    np.testing.assert_allclose(transform.unscale(matrix)[:, 0], [1, 0, 0, 1], atol=1e-6)


def test_columns_are_standard_scaled_and_a_category_weighs_one_feature() -> None:
    rng = np.random.default_rng(5)
    n = 400
    table = features_table(
        n,
        rvn=[float(v) for v in rng.lognormal(10, 2, n)],
        age=[None if i % 7 == 0 else float(v) for i, v in enumerate(rng.normal(40, 10, n))],
        device=[str(v) for v in rng.choice(["mobile", "desktop", "tablet", "tv"], n)],
        is_member=[int(v) for v in rng.integers(0, 2, n)],
    )
    matrix, transform = build_matrix(table, explicit("rvn", "age", "device", "is_member"))
    assert matrix.shape == (n, len(transform.columns)) == (n, 8)
    np.testing.assert_allclose(matrix.mean(axis=0, dtype=np.float64), 0.0, atol=1e-5)
    std = matrix.std(axis=0, dtype=np.float64)
    for j, (name, source) in enumerate(zip(transform.columns, transform.sources, strict=True)):
        expected = 0.5 if source == "device" else 1.0  # 4 levels: each column 1/√4
        assert std[j] == pytest.approx(expected, rel=1e-4), name
        assert transform.weight[j] == expected
    device = [j for j, s in enumerate(transform.sources) if s == "device"]
    assert (std[device] ** 2).sum() == pytest.approx(1.0, rel=1e-4)  # the block's variance: one feature's
    np.testing.assert_allclose(transform.scale(transform.unscale(matrix)), matrix, atol=1e-5)


@pytest.mark.parametrize(
    ("code", "values", "problem"),
    [
        ("odr", [3.0] * 6, "every customer with a value has the same one (3)"),
        ("age", [41.0, None, 41.0, None, 41.0, 41.0], "every customer with a value has the same one (41)"),
        ("age", [None] * 6, "every value is missing"),
        ("is_member", [None] * 6, "every customer with a value has the same one (0)"),  # NULL is false
        ("device", ["mobile"] * 6, "every customer has the same value (mobile)"),
        ("device", [None] * 6, "every value is missing"),
    ],
)
def test_a_useless_feature_the_marketer_chose_is_an_error(code: str, values: list[Any], problem: str) -> None:
    table = features_table(6, **{code: values})
    with pytest.raises(DiscoveryError) as raised:
        build_matrix(table, explicit("rvn", code))
    assert str(raised.value) == f"feature {code}: {problem}; remove it from discoveries/config features"


def test_a_useless_default_feature_is_dropped_and_reported() -> None:
    table = features_table(6, age=[None] * 6, device=["mobile"] * 6, odr=[2.0] * 6)
    matrix, transform = build_matrix(table, parse_config({"k_max": 3}))
    assert transform.dropped == [
        {"feature": "odr", "reason": "every customer with a value has the same one (2)"},
        {"feature": "age", "reason": "every value is missing"},
        {"feature": "device", "reason": "every customer has the same value (mobile)"},
    ]
    assert not {"odr", "age", "device"} & set(transform.sources)
    kept = [code for code in DEFAULT_FEATURES if code not in ("odr", "age", "device")]
    assert list(dict.fromkeys(transform.sources)) == kept
    assert matrix.shape == (6, len(transform.columns)) and np.isfinite(matrix).all()
    assert transform.document()["dropped"] == transform.dropped


def test_no_usable_feature_is_an_error() -> None:
    constant = {code: ([1.0] * 4 if BY_CODE[code].kind != "category" else ["x"] * 4) for code in DEFAULT_FEATURES}
    with pytest.raises(DiscoveryError) as raised:
        build_matrix(features_table(4, **constant), DiscoveryConfig())
    message = str(raised.value)
    assert message.startswith("no usable feature: recency_days: every customer with a value has the same one (1)")
    assert "; device: every customer has the same value (x)" in message
    # Also when the features were chosen (not from the defaults) but never by the marketer's hand.
    with pytest.raises(DiscoveryError, match=r"^no usable feature: age: every value is missing$"):
        build_matrix(features_table(4, age=[None] * 4), DiscoveryConfig(features=("age",)))
